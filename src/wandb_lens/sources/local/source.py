"""The embedded default: runs read from the `wandb/` folders W&B writes on disk.

Finds run folders (`offline-run-*`, `run-*`; never `latest-run`) under the configured roots,
reads each `run-<id>.wandb` log, and keeps two caches: a small JSON index per run (metadata,
config, summary) so listing never decodes histories, and the decoded history as parquet. Both
are keyed by the file's path, size and mtime and checked against the file's content (fingerprint.py:
a replaced log is read afresh); a run that is still growing is decoded incrementally from the byte
where the last pass stopped. Logs are opened through `safe_open` (regular files inside the roots).
"""

from __future__ import annotations

import hashlib
import json
import logging
import mmap
import os
import threading
import time
from collections import OrderedDict
from pathlib import Path

from ... import budget, progress
from ...errors import LensError, suggest
from ..base import RunInfo, no_such_run, parse_ref
from ..history import History
from ..safe_open import UnsafeFile, check_regular, open_regular, read_head
from .fingerprint import prefix_fingerprint, same_prefix
from . import legacy, resume, system
from .run_file import RunScan
from .run_state import finish_called, run_state
from .unreadable import adopt_neighbour_project, unreadable_info

log = logging.getLogger("wandb_lens.local")

MAX_DEPTH = 3
DECODER_VERSION = 2  # 2: JSON-object values (wandb < 0.18) split into keys; older parquet caches are re-decoded
BACKGROUND_INDEX_BYTES = 64 << 20  # a listing never waits for the first index of a bigger log
HEAD_BYTES = 256 << 10  # the records at the head of a log: header, run (with config), environment
INDEX_VERSION = 5  # 3: with the prefix fingerprint (fingerprint.py); 4: summary_records, cli_version; 5: sweep_id


def default_cache_dir() -> Path:
    env = os.environ.get("WANDB_LENS_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "wandb-lens"


def _run_dirs(root: Path) -> list[Path]:
    """Run folders under `root`, at most MAX_DEPTH levels down, never through symlinks."""
    found: list[Path] = []
    stack = [(root, 0)]
    while stack:
        folder, depth = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        if any(e.name.startswith("run-") and e.name.endswith(".wandb") for e in entries) or (
                folder != root and legacy.is_legacy({e.name for e in entries})):
            found.append(folder)
            continue
        if depth >= MAX_DEPTH:
            continue
        for e in entries:
            if e.is_symlink() or not e.is_dir(follow_symlinks=False) or e.name.startswith("."):
                continue
            if e.name in ("files", "logs", "tmp", "node_modules", "__pycache__"):
                continue
            stack.append((Path(e.path), depth + 1))
    return found


def _wandb_file(folder: Path) -> Path | None:
    """The run's log: `run-<id>.wandb`, or for the old layout its wandb-history.jsonl (or summary)."""
    files = sorted(p for p in folder.glob("run-*.wandb") if not p.is_symlink())
    if files:
        return files[0]
    try:
        names = set(os.listdir(folder))
    except OSError:
        return None
    return legacy.primary_file(folder) if legacy.is_legacy(names) else None


class LocalRunSource:
    kind = "local"

    def __init__(self, roots: list[str | os.PathLike], cache_dir: str | os.PathLike | None = None):
        self.roots = [Path(r).expanduser().resolve() for r in roots]
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self._scans: dict[str, tuple[int, int, RunScan]] = {}
        self._histories: OrderedDict[str, tuple[int, int, History]] = OrderedDict()
        self._lock = threading.RLock()
        self._jobs: dict = {}  # path -> DecodeJob running for it
        self._scan_locks: dict[str, threading.Lock] = {}
        self._listing: tuple[float, list[Path]] | None = None

    # ----- discovery -------------------------------------------------------------------
    def describe_location(self) -> str:
        return ", ".join(str(r) for r in self.roots)

    def _check_roots(self) -> None:
        missing = [str(r) for r in self.roots if not r.is_dir()]
        if missing and len(missing) == len(self.roots):
            raise LensError(
                f"Runs directory not found: {', '.join(missing)}. Point wandb-lens at the folder that "
                "holds your wandb/ runs with --runs-dir (or WANDB_DIR)."
            )

    def _discover(self) -> list[Path]:
        """Run files under the roots; the folder walk is reused for 2 s, files are re-checked."""
        now = time.monotonic()
        if self._listing is None or now - self._listing[0] > 2.0:
            self._check_roots()
            files: list[Path] = []
            seen: set[str] = set()
            for root in self.roots:
                for folder in _run_dirs(root):
                    path = _wandb_file(folder)
                    if path is not None and str(path) not in seen:
                        seen.add(str(path))
                        files.append(path)
            self._listing = (now, files)
        return self._listing[1]

    def list_runs(self, project: str | None = None) -> list[RunInfo]:
        runs = resume.merge_listing(self._folder_runs())
        runs.sort(key=lambda r: (r.created_at or 0, r.id), reverse=True)
        if project is not None:
            runs = [r for r in runs if r.project == project]
        return runs

    def _folder_runs(self) -> list[RunInfo]:
        """One RunInfo per run folder (a resumed run's folders apart)."""
        with self._lock:
            files = self._discover()
        runs = []
        started = time.monotonic()
        helper = self._index_helper(files)
        try:
            for i, path in enumerate(files):
                if str(path) not in self._scans or time.monotonic() - started > 0.2:  # a cold index: say how far
                    progress.report(i, len(files), f"indexing runs: {i:,} of {len(files):,}")
                if helper is not None:
                    helper.before(path)
                info = self._info_once(path, wait=False)
                if info is not None:
                    runs.append(info)
        finally:
            if helper is not None:
                helper.close()
        adopt_neighbour_project(runs)
        return runs

    def _index_helper(self, files: list[Path]):
        """A second process for the cold logs of a big listing (index_pool), or None."""
        from . import index_pool

        unknown = [p for p in files if p.suffix == ".wandb" and str(p) not in self._scans]
        if len(unknown) < index_pool.MIN_FILES:
            return None
        cold = []
        for p in unknown:  # never indexed (no disk index), small enough for the request path
            try:
                if (0 < os.stat(p).st_size <= BACKGROUND_INDEX_BYTES
                        and not (self.cache_dir / "index" / f"{self._cache_name(p)}.json").exists()):
                    cold.append(p)
            except OSError:
                continue
        return index_pool.start(cold, self.roots, self.cache_dir)

    def _info_once(self, path: Path, wait: bool = True) -> RunInfo | None:
        """A file's index is built by one thread at a time; other files and calls are not held up.

        With `wait=False` (listing), a log with more than BACKGROUND_INDEX_BYTES not yet indexed is
        indexed by a background thread, and meanwhile listed from its head (id, name, project,
        config) in state "indexing": a big new run never holds up the listing of the others.
        """
        with self._lock:
            lock = self._scan_locks.setdefault(str(path), threading.Lock())
        if not wait and path.suffix == ".wandb" and self._unindexed_bytes(path) > BACKGROUND_INDEX_BYTES:
            if lock.acquire(blocking=False):
                threading.Thread(target=self._index_and_release, args=(path, lock), daemon=True,
                                 name=f"wandb-lens index {path.name}").start()
            return self._head_info(path)
        if not lock.acquire(blocking=False):  # another thread builds this index (a listing's background pass)
            self._wait_for_index(path, lock)
        try:
            return self._info(path)
        finally:
            lock.release()

    def _wait_for_index(self, path: Path, lock: threading.Lock) -> None:
        """Acquire `lock`, held by the thread indexing `path`: meanwhile say so (a progress report is
        also the call's cancellation point), and past the call's budget answer that it is indexing."""
        started = time.monotonic()
        while not lock.acquire(timeout=0.25):
            waited = time.monotonic() - started
            try:
                mb = os.stat(path).st_size / 1e6
            except OSError:
                mb = 0.0
            progress.report(waited, None, f"waiting for the first index of {path.name} ({mb:,.0f} MB)")
            if budget.remaining() == 0:
                raise LensError(f"Run log {path.name} ({mb:,.0f} MB) is still being indexed for the first time "
                                f"(waited {waited:,.0f} s of this call's budget); the index goes on in the "
                                "background: ask again in a minute.")

    def _index_and_release(self, path: Path, lock: threading.Lock) -> None:
        try:
            self._info(path)
        except Exception as exc:  # the next foreground call reads it again and reports what failed
            log.warning("background index of %s failed: %r", path, exc)
        finally:
            lock.release()

    def _unindexed_bytes(self, path: Path) -> int:
        """Bytes of the log past what the memory or disk index has read (0 when it cannot be told)."""
        try:
            size = os.stat(path).st_size
        except OSError:
            return 0
        cached = self._scans.get(str(path))
        if cached is not None:
            return size - cached[2].end_offset
        try:
            doc = json.loads((self.cache_dir / "index" / f"{self._cache_name(path)}.json").read_text())
            if doc.get("v") == INDEX_VERSION and doc["path"] == str(path):
                return size - int(doc["scan"]["end_offset"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        return size

    def _head_info(self, path: Path) -> RunInfo | None:
        """What the first records of a log say (run record, config), for a run still being indexed."""
        from . import run_file
        from .wandb_file import NotAWandbFile

        try:
            head = read_head(path, HEAD_BYTES, self.roots)
            scan, _ = run_file.scan(head, want_summary=False)
            size_mb = os.stat(path).st_size / 1e6
        except (OSError, NotAWandbFile):  # unreadable (UnsafeFile too) or not a log: the background
            return None  # pass will say what it is; damaged records are the scan's own damage notes
        return RunInfo(
            id=scan.run_id or path.stem[4:], project=scan.project or "uncategorized", entity=scan.entity,
            name=scan.name or scan.run_id, group=scan.group, sweep_id=scan.sweep_id, job_type=scan.job_type, tags=list(scan.tags),
            notes=scan.notes, host=scan.host, created_at=scan.start_time, state="indexing", config=scan.config,
            damage=[f"still being indexed ({size_mb:,.0f} MB log): summary, history and state not read yet"],
            wandb_version=scan.wandb_version, environment=scan.environment, location=path.parent.name,
            path=str(path),
        )

    def projects(self) -> list[str]:
        return sorted({r.project for r in self.list_runs()})

    def get_run(self, ref: str) -> RunInfo:
        entity, project, run_id = parse_ref(ref)
        with self._lock:
            files = self._discover()
        # by id first: only the logs named run-<id>.wandb are indexed, not every run in the folder
        named = [info for info in map(self._info_once, [p for p in files if p.stem == f"run-{run_id}"]) if info]
        hits = [r for r in named if r.id == run_id and (project is None or r.project == project)
                and (entity is None or r.entity in ("", entity))]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1 and len({(h.entity, h.project) for h in hits}) == 1:
            return resume.merge(hits)  # one run id in several folders: a resumed run
        singles = self._folder_runs()
        by_folder = [r for r in singles if r.location == run_id and (project is None or r.project == project)]
        if len(by_folder) == 1:  # a resumed run's folder, addressed by its folder name
            return by_folder[0]
        runs = resume.merge_listing(singles)
        runs.sort(key=lambda r: (r.created_at or 0, r.id), reverse=True)
        if project is not None and not any(r.project == project for r in runs):
            raise LensError(suggest("project", project, {r.project for r in runs}))
        pool = [r for r in runs if (project is None or r.project == project) and (entity is None or r.entity in ("", entity))]
        hits = [r for r in pool if r.id == run_id] or [r for r in pool if r.name == run_id]
        if len(hits) == 1 and hits[0].state == "indexing":  # this run's own call waits for its index
            return self._info_once(Path(hits[0].path)) or hits[0]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            refs = ", ".join(f"{h.project}/{h.id} ({h.location})" for h in hits[:10])
            raise LensError(f"Run reference {ref!r} is ambiguous: it matches {len(hits)} runs: {refs}. Use project/run_id.")
        where = f" in project {project!r}" if project else ""
        raise LensError(no_such_run(run_id, where, pool))

    # ----- reading -----------------------------------------------------------------------
    def _cache_name(self, path: Path) -> str:
        return hashlib.sha1(str(path).encode()).hexdigest()[:20]

    def _info(self, path: Path) -> RunInfo | None:
        folder = path.parent.name
        legacy_state = None
        try:
            st = check_regular(path, self.roots)  # also on a cache hit: the path may now lead elsewhere
            if path.suffix == ".wandb":
                scan = self._scan(path, st)
            else:
                scan, _, legacy_state = legacy.scan_legacy(path.parent, self.roots)
        except UnsafeFile as exc:  # a FIFO, directory or escaping symlink named like a run log
            if exc.reason == "no longer exists":
                return None
            return unreadable_info(path, None, exc, self.roots)
        except Exception as exc:  # one bad file is one run in state "unreadable", never a failed listing
            log.info("run file %s could not be read: %r", path, exc)
            return unreadable_info(path, st, exc, self.roots)
        runtime = scan.exit_runtime
        if runtime is None and scan.last_timestamp and scan.start_time:
            runtime = max(0.0, scan.last_timestamp - scan.start_time)
        summary = {k: v for k, v in scan.summary.items() if not k.startswith("_")}
        return RunInfo(
            id=scan.run_id or path.stem[4:], project=scan.project or "uncategorized", entity=scan.entity,
            name=scan.name or scan.run_id, group=scan.group, sweep_id=scan.sweep_id, job_type=scan.job_type, tags=list(scan.tags),
            notes=scan.notes, host=scan.host, created_at=scan.start_time, runtime_s=runtime,
            state=legacy_state or run_state(scan, st.st_mtime, path.parent, self.roots),
            finish_called=finish_called(scan), summary_derived=scan.summary_derived, config=scan.config, summary=summary, metrics=scan.metrics,
            history_rows=scan.history_rows, last_step=scan.last_step, damage=list(scan.damage),
            truncated=scan.truncated, wandb_version=scan.wandb_version, environment=scan.environment,
            location=folder, exit_code=scan.exit_code, path=str(path),
        )

    def _scan(self, path: Path, st: os.stat_result) -> RunScan | None:
        """Metadata and summary, from memory, the disk index, or a pass over the log (index_walk: history
        not read; the full scan where the walk cannot be exact, or over the new bytes of a grown log)."""
        from . import index_walk, run_file

        key = str(path)
        cached = self._scans.get(key)  # (size, mtime_ns, scan, fingerprint of scan.end_offset bytes)
        if cached and cached[0] == st.st_size and cached[1] == st.st_mtime_ns:
            return cached[2]
        index_path = self.cache_dir / "index" / f"{self._cache_name(path)}.json"
        if cached is None:
            try:
                doc = json.loads(index_path.read_text())
                if doc.get("v") == INDEX_VERSION and doc["path"] == key:
                    cached = (doc["size"], doc["mtime_ns"], RunScan.from_json(doc["scan"]), doc["fp"])
            except (OSError, ValueError, KeyError, TypeError):
                cached = None
        with open_regular(path, self.roots) as f:
            st = f.stat
            if cached and not same_prefix(f, cached[2].end_offset, cached[3]):
                cached = None  # another file now (replaced, rewritten): never splice onto its scan
            if cached and cached[0] == st.st_size and cached[1] == st.st_mtime_ns:
                self._scans[key] = cached
                return cached[2]
            previous = None
            if cached and cached[0] < st.st_size and not cached[2].damage:
                previous = cached[2]  # the same log, grown: continue where the last pass stopped
            new_mb = (st.st_size - (previous.end_offset if previous else 0)) / 1e6
            if new_mb > 16:  # a big log to index (seconds): say so before the pass starts
                progress.report(0, new_mb, f"indexing {path.name}: {new_mb:,.0f} MB")
            data = f.map()
            try:
                scan, why = (None, "grown log: continued from the last pass") if previous else \
                    index_walk.walk(data, label=f"indexing {path.name}")
                if scan is None:  # cut, damaged, summary derived from history, or grown: the full scan
                    scan, _ = run_file.scan(data, previous=previous, label=f"indexing {path.name}")
                    scan.index_method = f"scan: {why}"
                fp = prefix_fingerprint(data, scan.end_offset)
            finally:
                if isinstance(data, mmap.mmap):
                    data.close()
        self._scans[key] = (st.st_size, st.st_mtime_ns, scan, fp)
        _write_atomic(
            index_path,
            json.dumps({"v": INDEX_VERSION, "path": key, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                        "fp": fp, "scan": scan.to_json()}, default=_json_default).encode(),
        )
        return scan

    def history(self, run: RunInfo, keys: list[str] | None = None) -> History:
        """The run's history; columns are read from the cache when a tool asks for them.

        One decode per file at a time, on a thread of its own (decode_job.py) that later calls for
        the same run wait for too; the source-wide lock is held only around the memory cache, so a
        cold decode of a big run (seconds) never stalls listings or other runs' calls. A call whose
        budget runs out first answers from the rows decoded so far and says so (`budget`)."""
        if run.state == "unreadable":
            return History(damage=list(run.damage))
        if run.segments:
            return resume.join_histories([(seg.location, self.history(seg)) for seg in run.segments])
        path = self._path_of(run)
        key = str(path)
        try:
            hist = self._history_of(path, key, run)
            if getattr(hist, "partial", False):  # system metrics would mean a pass over the whole log now
                return hist
            return system.with_system(hist, path, self.roots, self.cache_dir)
        except UnsafeFile as exc:  # swapped for a FIFO, a directory or an escaping symlink
            raise LensError(f"Run {run.ref} cannot be read: {path.name}: {exc.reason}.") from None

    def _history_of(self, path: Path, key: str, run: RunInfo) -> History:
        from .decode_job import Cancelled

        while True:
            st = check_regular(path, self.roots)
            with self._lock:
                mem = self._histories.get(key)
                if mem and mem[0] == st.st_size and mem[1] == st.st_mtime_ns:
                    self._histories.move_to_end(key)
                    return mem[2]
                if path.suffix != ".wandb":
                    job = None
                else:
                    job = self._jobs.get(key)
                    if job is None or job.finished or not job.attach():
                        job = self._start_job(path, key, st, mem)
                        job.attach()
            if job is None:
                return self._remember(key, st, self._legacy_history(path))
            try:
                hist, partial = job.wait()
            except Cancelled:  # the decode this call joined was stopped for a cancelled call: again
                continue
            if partial:
                hist.partial = True
                budget.mark_partial(_partial_note(hist, run, st.st_size))
            return hist

    def _start_job(self, path: Path, key: str, st, mem):
        from .decode_job import DecodeJob

        def work(job: DecodeJob) -> History:
            try:
                return self._remember(key, st, self._load_history(path, st, mem, job))
            finally:
                with self._lock:
                    if self._jobs.get(key) is job:
                        del self._jobs[key]

        job = DecodeJob(work, f"wandb-lens decode {path.name}")
        self._jobs[key] = job
        return job.start()

    def _remember(self, key: str, st, hist: History) -> History:
        with self._lock:
            self._histories[key] = (st.st_size, st.st_mtime_ns, hist)
            while len(self._histories) > 8:
                self._histories.popitem(last=False)
        return hist

    def _path_of(self, run: RunInfo) -> Path:
        if run.path:  # the very file the run's metadata came from: never another folder's log
            return Path(run.path)
        for root in self.roots:
            for folder in (root / run.location, root / "wandb" / run.location):
                path = folder / f"run-{run.id}.wandb"
                if path.is_file() and not path.is_symlink():
                    return path
        for root in self.roots:
            for folder in _run_dirs(root):
                if folder.name == run.location:
                    path = _wandb_file(folder)
                    if path:
                        return path
        raise LensError(f"Run {run.ref} is no longer on disk (folder {run.location}).")

    # ----- console, system metrics, artifacts: records.py / console.py, read apart from the scan --
    def system_series(self, run: RunInfo) -> dict:
        """{system/<key>: (unix times, values)}: the raw samples of the run's system metrics."""
        return system.series(self._path_of(run), self.roots, self.cache_dir)

    def artifact_catalog(self, project: str):
        """Logged and used artifacts of a project's runs, versions inferred (sources/local/artifacts.py)."""
        from . import artifacts

        return artifacts.catalog(self.list_runs(project),
                                 lambda r: artifacts.from_run(self._path_of(r), self.roots, r.id))

    def console(self, run: RunInfo):
        """The run's console text (`files/output.log`, else the log's console records), or None."""
        from . import console, records

        path = self._path_of(run)
        text = console.open_output_log(str(path.parent / "files" / "output.log"), self.roots)
        if text is None and path.suffix != ".wandb":  # old layout: files sit in the run folder
            text = console.open_output_log(str(path.parent / "output.log"), self.roots)
        if text is None:
            fragments = records.console_fragments(path, self.roots)
            text = console.from_records(fragments) if fragments else None
        return text

    def _legacy_history(self, path: Path) -> History:
        from .history_decode import decode_history

        return decode_history(legacy.scan_legacy(path.parent, self.roots)[1])

    def _load_history(self, path: Path, st, mem, job=None) -> History:

        from . import history_stream, parallel_decode, run_file
        from .history_decode import HistoryBuilder
        from ..history import open_cached, write_cached

        pq_path = self.cache_dir / "history" / f"{self._cache_name(path)}.parquet"
        base: History | None = None
        meta: dict = {}
        if mem is not None and mem[0] <= st.st_size:
            base, meta = mem[2], getattr(mem[2], "_meta", {})
        else:
            hit = open_cached(pq_path, b"wandb_lens")  # lazy: columns are read when a tool asks
            if hit is not None:
                cached, meta = hit
                if (meta.get("path") == str(path) and meta.get("size", 1 << 62) <= st.st_size
                        and meta.get("decoder") == DECODER_VERSION):
                    base = cached
        with open_regular(path, self.roots) as f:
            st = f.stat
            if base is not None and not same_prefix(f, meta.get("end_offset", -1), meta.get("fp")):
                base = None  # the cached rows are another file's (replaced by a larger one): start afresh
            if base is not None and meta.get("size") == st.st_size and meta.get("mtime_ns") == st.st_mtime_ns:
                base._meta = meta
                return base
            offset = 0
            if base is not None and meta.get("end_offset") and not meta.get("damaged"):
                offset = int(meta["end_offset"])
            else:
                base = None
            mb = max(st.st_size - offset, 0) / 1e6
            progress.report(0, mb, f"decoding {path.name}: 0 of {mb:,.1f} MB")
            data = f.map()
            try:
                prefix = history_stream.Prefix()
                if job is not None:  # the rows decoded so far, for a call whose budget runs out
                    job.snapshot = lambda: _after(base, prefix.snapshot())
                if not offset and st.st_size >= history_stream.MIN_BYTES:  # big and cold: streamed to the cache
                    log_file = parallel_decode.LogFile.of(f.fd, st.st_size)
                    streamed = history_stream.decode_to_cache(
                        log_file, path, st, pq_path, b"wandb_lens", f"decoding {path.name}", mb,
                        lambda end, damaged: _history_meta(path, st, end, damaged, prefix_fingerprint(data, end)),
                        prefix, self.cache_dir)
                    if streamed is not None:
                        progress.report(mb, mb, f"decoded {path.name}: {mb:,.1f} MB")
                        return streamed[0]
                mid = parallel_decode.split_point(st.st_size) if not offset else None
                if mid is not None:  # a big cold log: two processes, split at a block boundary
                    scan = parallel_decode.decode_split(data, path, st, mid, f"decoding {path.name}", mb,
                                                        prefix=prefix)
                    new = scan.history
                else:
                    start = RunScan(end_offset=offset) if offset else None
                    builder = HistoryBuilder()
                    prefix.follow(builder, None)
                    scan, _ = run_file.scan(data, previous=start, want_summary=False, history_sink=builder.add,
                                            label=f"decoding {path.name}")
                    new = builder.finish()
                progress.report(mb, mb, f"decoded {path.name}: {mb:,.1f} MB")
                fp = prefix_fingerprint(data, scan.end_offset)
            finally:
                if isinstance(data, mmap.mmap):
                    data.close()
        old_meta = meta
        meta = _history_meta(path, st, scan.end_offset, bool(scan.damage), fp)
        if base is not None and st.st_size >= history_stream.MIN_BYTES:  # a big run grew: append to its file
            grown = history_stream.append_to_cache(pq_path, b"wandb_lens", old_meta, new, meta)
            if grown is not None:
                return grown
        hist = base.append(new) if base is not None else new
        hist._meta = meta
        try:
            write_cached(hist, pq_path, b"wandb_lens", meta)
        except OSError as exc:  # a read-only cache must not stop the answer
            log.warning("could not write history cache %s: %s", pq_path, exc)
            return hist
        # kept in memory as lazy columns over the file just written: tools read the few they need
        lazy = open_cached(pq_path, b"wandb_lens")
        if lazy is None or lazy[0].n_rows != hist.n_rows:
            return hist
        lazy[0]._meta = meta
        return lazy[0]


def _after(base: History | None, new: History | None) -> History | None:
    return new if base is None or new is None else base.append(new)


def _history_meta(path: Path, st, end_offset: int, damaged: bool, fp) -> dict:
    """What a history cache file records of the log it was decoded from."""
    return {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "end_offset": end_offset,
            "damaged": damaged, "fp": fp, "decoder": DECODER_VERSION}


def _json_default(value):
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _write_atomic(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("could not write cache %s: %s", path, exc)


def _partial_note(hist: History, run: RunInfo, size: int) -> dict:
    """What a partial answer covers, why, and that the next call is whole."""
    steps = hist.steps
    note: dict = {"rows": hist.n_rows, "of_rows": run.history_rows,
                  "steps": [int(steps[0]), int(steps[-1])] if len(steps) else None, "of_last_step": run.last_step,
                  "why": f"the first decode of this run's {size / 1e6:,.0f} MB log was still running when the "
                         f"call's {budget.seconds():g} s budget (WANDB_LENS_CALL_BUDGET_S) ran out; system "
                         "metrics not read yet",
                  "next": "the decode goes on in the background: the next call answers from the whole run"}
    return {k: v for k, v in note.items() if v is not None}
