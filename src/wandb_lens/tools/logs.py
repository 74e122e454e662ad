"""run_logs: a run's console output (tail, pattern matches, the last traceback of a failed run)."""

from __future__ import annotations

from ..compact import dumps
from ..errors import LensError
from . import _base

MAX_BYTES = 3000
FAILED = ("failed", "crashed")


def _console(app, info):
    reader = getattr(app.runs, "console", None)
    if reader is None:
        raise LensError("This run source has no console output to read.")
    return reader(info)


def error_quote(app, info) -> dict | None:
    """For a failed or crashed run: the last traceback's exception line (or the last error-like line)."""
    if info.state not in FAILED:
        return None
    try:
        text = _console(app, info)
    except (LensError, OSError):
        return None
    if text is None:
        return None
    from ..sources.local import console as C

    with text:
        tb = C.last_traceback(text, before=0, after_shown=0)
        if tb and tb["error"]:
            return {"error": tb["error"], "error_from": text.source}
        line = C.last_errorish(text)
    if line:
        return {"error": line["line"], "error_from": f"{text.source} (last error-like line; no Python traceback)"}
    return None


def register(server, app) -> None:
    def run_logs(run: str, tail: int = 30, pattern: str | None = None, max_matches: int = 20,
                 traceback: bool | None = None) -> dict:
        from ..sources.local import console as C

        if not 0 <= tail <= 500:
            raise LensError(f"tail must be 0..500 lines (got {tail}).")
        if not 1 <= max_matches <= 200:
            raise LensError(f"max_matches must be 1..200 (got {max_matches}).")
        rx = C.compile_pattern(pattern) if pattern else None
        info = app.runs.get_run(run)
        out: dict = {"run": info.ref, "name": info.name, "state": info.state}
        text = _console(app, info)
        if text is None:
            where = ("no output.log among the run's files on W&B" if app.runs.kind == "cloud" else
                     "no files/output.log and no console records in the run log")
            out["console"] = (f"none: {where} "
                              "(nothing printed, or console capture off: WANDB_CONSOLE=off or settings console='off')")
            return out
        with text:
            out["source"] = text.source
            out["bytes"] = text.size
            want_tb = traceback if traceback is not None else (info.state in FAILED and rx is None)
            err = C.last_traceback(text, after_shown=min(tail, 10)) if want_tb else None
            if want_tb:
                out["traceback"] = err if err else "none found in the last 8 MB"
                if not err:
                    line = C.last_errorish(text)
                    if line:
                        out["last_error_like_line"] = line
            if rx is not None:
                out["pattern"] = pattern
                out["matches"] = C.search(text, rx, max_matches)
            elif err and err.get("lines_after", 0) <= len(err.get("after", [])):
                pass  # the traceback and the lines after it are the tail: not sent twice
            elif tail:
                if err:
                    err.pop("after", None)
                out["tail"] = C.tail(text, tail)
            out["source"] = text.source  # a remote text may add how it was read (cloud: no HTTP Range)
        return _fit(out)

    _base.add(server, run_logs,
              "A run's console output (output.log, else the log's console records): the last `tail` lines, or "
              "lines matching `pattern` (all counted). Failed/crashed runs (or traceback=true): the last "
              "traceback, its error line, the lines before. Long lines cut (counted).")


def _fit(out: dict) -> dict:
    """Drop the oldest tail lines / last matches until the answer fits MAX_BYTES; say so."""
    dropped = 0
    while len(dumps(out)) > MAX_BYTES - (110 if dropped else 0):  # room for the "fit" note
        tail = out.get("tail", {}).get("lines") if isinstance(out.get("tail"), dict) else None
        m = out.get("matches", {}).get("matches") if isinstance(out.get("matches"), dict) else None
        tb = out.get("traceback") if isinstance(out.get("traceback"), dict) else None
        if tail and len(tail) > 3:
            tail.pop(0)
            out["tail"]["shown"] = len(tail)
        elif m and len(m) > 3:
            m.pop()
            out["matches"]["shown"] = len(m)
        elif tb and tb.get("after"):
            tb["after"].pop(0)
        elif tb and tb.get("before"):
            tb["before"].pop(0)
        else:
            break
        dropped += 1
    if dropped:
        out["fit"] = f"{dropped} lines left out to stay under {MAX_BYTES} B; ask with a smaller tail or a pattern"
    return out
