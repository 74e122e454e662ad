"""A cloud run's console output: its `output.log` file, found with the GraphQL `run.files(["output.log"])`
sends (RunFiles) and read from the file's download URL with HTTP Range requests, so a tail or a traceback
search fetches only the bytes near the end (the same backward windows the local reader uses on disk).
A server that ignores Range gets one bounded download: at most DOWNLOAD_CAP bytes, the last ones kept,
and the answer's source says so. The W&B key goes only to W&B's own host, never across a redirect."""

from __future__ import annotations

import base64
import urllib.error
import urllib.request
from urllib.parse import urlparse

from ...errors import LensError

DOWNLOAD_CAP = 32 << 20  # without Range: keep at most the last 32 MB of the file
DOWNLOAD_MAX = 256 << 20  # without Range: read at most this much of the stream, else a clear error
SEARCH_CAP = 32 << 20  # a pattern search reads at most the last 32 MB (stated)


class RemoteText:
    """console.Text's interface over a file on W&B: read(start, end) is a Range request (the suffix
    already fetched is kept, so the growing windows from the end cost only their new bytes)."""

    def __init__(self, source: str, url: str, size: int, headers: dict, timeout: float):
        self.full_size = size
        self.offset = max(0, size - SEARCH_CAP)  # reads are relative to here
        self.size = size - self.offset
        self.source = source
        self._url, self._headers, self._timeout = url, headers, timeout
        self._suffix = b""  # the bytes [size - len(_suffix), size) already fetched
        self._whole: bytes | None = None  # the server ignored Range: what one bounded download kept
        self.fetched = 0

    def read(self, start: int, end: int) -> bytes:
        if start == 0 and self.offset and "searched" not in self.source:  # a read reached the window's start
            self.source += f" (searched its last {self.size / 1e6:.1f} of {self.full_size / 1e6:.1f} MB)"
        lo, hi = start + self.offset, end + self.offset
        if self._whole is not None:
            base = self.full_size - len(self._whole)
            return self._whole[max(0, lo - base):max(0, hi - base)]
        have = self.full_size - len(self._suffix)
        if hi == self.full_size and lo < have:
            self._suffix = self._get(lo, have) + self._suffix
            return self._suffix[lo - (self.full_size - len(self._suffix)):]
        if hi == self.full_size:
            return self._suffix[lo - have:]
        return self._get(lo, hi)

    def _get(self, lo: int, hi: int) -> bytes:
        if hi <= lo:
            return b""
        req = urllib.request.Request(self._url, headers={"Range": f"bytes={lo}-{hi - 1}"})
        for k, v in self._headers.items():
            req.add_unredirected_header(k, v)  # the key never follows a redirect to another host
        try:
            with urllib.request.urlopen(req, timeout=self._timeout) as resp:
                if resp.status == 206:
                    data = resp.read(hi - lo + 1)
                    self.fetched += len(data)
                    return data[: hi - lo]
                self._whole = _bounded(resp, self)  # 200: the whole file; keep its end
        except (urllib.error.URLError, OSError) as exc:
            raise LensError(f"Could not download output.log from W&B: {getattr(exc, 'reason', exc)}.") from None
        self.source += f" (server ignored HTTP Range: downloaded {self.fetched / 1e6:.1f} MB"
        self.source += f", kept the last {len(self._whole) / 1e6:.0f} MB)" if self.fetched > len(self._whole) else ")"
        return self.read(lo - self.offset, hi - self.offset)

    def close(self) -> None:
        self._suffix, self._whole = b"", None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _bounded(resp, text: RemoteText) -> bytes:
    from collections import deque

    keep: deque = deque()
    kept = 0
    while True:
        chunk = resp.read(1 << 20)
        if not chunk:
            return b"".join(keep)[-DOWNLOAD_CAP:]
        text.fetched += len(chunk)
        if text.fetched > DOWNLOAD_MAX:
            raise LensError(f"W&B sent output.log whole (it ignored the HTTP Range request) and it is larger than "
                            f"the {DOWNLOAD_MAX >> 20} MB read without Range ({text.full_size / 1e6:,.0f} MB): "
                            "not read. Download it with run.file('output.log').download().")
        keep.append(chunk)
        kept += len(chunk)
        while kept - len(keep[0]) >= DOWNLOAD_CAP:
            kept -= len(keep.popleft())


def console(src, run) -> RemoteText | None:
    """The run's output.log on W&B as a RemoteText, or None when the run has none."""
    s = src._session()
    wrun = s.wruns.get((run.entity, run.project, run.id))
    if wrun is None:
        run = src.get_run(f"{run.entity}/{run.project}/{run.id}")
        wrun = s.wruns[(run.entity, run.project, run.id)]

    def go():
        from wandb.apis import public

        files = public.Files(s.api._service_api, wrun, ["output.log"], per_page=1)
        return next((f for f in files if f.name == "output.log"), None)

    f = src._guard(go, f"listing the files of {run.ref}", s.key)
    if f is None or not f.url:
        return None
    headers = {}
    base, target = urlparse(src.base_url), urlparse(f.url)
    if target.scheme not in ("http", "https"):  # never file:// or other local readers
        raise LensError(f"W&B listed output.log of {run.ref} at a non-HTTP address ({target.scheme}:): not read.")
    if (target.scheme, target.netloc) == (base.scheme, base.netloc):  # W&B's own file URL: needs the key
        headers["Authorization"] = "Basic " + base64.b64encode(f"api:{s.key}".encode()).decode()
    return RemoteText("output.log from W&B", f.url, int(f.size or 0), headers, src.timeout)
