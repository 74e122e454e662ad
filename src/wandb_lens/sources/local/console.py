"""A run's console output: the tail, lines matching a pattern, and the last Python traceback.

The text is `files/output.log` (what W&B shows as the run's Logs) when it exists; otherwise the
run log's own console records (`output_raw`, old `output`, `output_logger`), joined in order.
A tail and a traceback search read backwards from the end of the file in growing windows, never
the whole file; only a pattern search reads it all, in chunks, with a match budget.
A carriage return (progress bars) keeps what a terminal would show: the text after the last `\\r`.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass

LINE_CHARS = 240  # longer lines are cut (and counted)
TAIL_WINDOW = 64 * 1024
MAX_BACK = 8 * 1024 * 1024  # a tail or traceback search reads at most this much from the end
CHUNK = 4 * 1024 * 1024
SEARCH_SECONDS = 5.0

_TB = re.compile(rb"^(?P<prefix>[^\n]{0,40}?)Traceback \(most recent call last\):[ \t]*\r?$", re.M)
_CHAIN = ("During handling of the above exception", "The above exception was the direct cause")
_ERRORISH = re.compile(r"(?i)(error|exception|killed|segmentation fault|out of memory|fatal|abort|nan detected)")


class Text:
    """Read access to console text: a file (seekable from the end) or bytes held in memory."""

    def __init__(self, source: str, *, fd: int | None = None, data: bytes | None = None, size: int = 0):
        self.source = source
        self._fd = fd
        self._data = data
        self.size = size if data is None else len(data)

    def read(self, start: int, end: int) -> bytes:
        if self._data is not None:
            return self._data[start:end]
        return os.pread(self._fd, end - start, start)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_output_log(path: str, roots) -> Text | None:
    """`files/output.log` as a Text, or None when absent or refused (safe_open: regular, inside a root)."""
    from ..safe_open import open_regular

    try:
        f = open_regular(path, roots)
    except OSError:
        return None
    return Text("files/output.log", fd=f.fd, size=f.size)


def from_records(fragments: list[str]) -> Text:
    """Console records (fragments, `\\n` often a record of its own) as one text."""
    return Text("console records in the run log", data="".join(fragments).encode("utf-8", "replace"))


@dataclass
class Lines:
    lines: list[str]
    cut: int  # lines longer than LINE_CHARS, shortened


def _decode(raw: bytes, cut_to: int = LINE_CHARS) -> Lines:
    out, cut = [], 0
    for b in raw.split(b"\n"):
        s = b.decode("utf-8", "replace").rstrip("\r")
        if "\r" in s:
            s = s.rsplit("\r", 1)[-1]
        if len(s) > cut_to:
            s = s[: cut_to - 1] + "…"
            cut += 1
        out.append(s)
    return Lines(out, cut)


def _window_from_end(text: Text, need_lines: int) -> tuple[bytes, bool]:
    """The last bytes holding at least `need_lines` whole lines (fewer at the start of the text).
    Returns (bytes starting at a line start, reached_start)."""
    size = text.size
    end = size
    # a trailing newline ends the last line: it does not start an empty one
    back = TAIL_WINDOW
    while True:
        start = max(0, end - back)
        raw = text.read(start, end)
        body = raw[:-1] if raw.endswith(b"\n") else raw
        if start == 0:
            return body, True
        nl = body.count(b"\n")
        if nl >= need_lines + 1 or back >= MAX_BACK:
            first = body.find(b"\n")
            return body[first + 1:], False
        back *= 4


def tail(text: Text, n: int) -> dict:
    if text.size == 0 or n <= 0:
        return {"lines": [], "shown": 0}
    raw, at_start = _window_from_end(text, n)
    got = _decode(raw)
    lines = got.lines[-n:]
    out = {"lines": lines, "shown": len(lines)}
    if at_start:
        out["lines_total"] = len(got.lines)
    if got.cut:
        out["lines_cut"] = sum(1 for s in lines if s.endswith("…"))
    return out


def search(text: Text, pattern, budget: int) -> dict:
    """Lines matching `pattern` (numbered from 1), the first `budget` of them; matching lines are
    counted to the end unless the time budget runs out. The regex runs over whole chunks."""
    matches: list[list] = []
    total = 0
    lines_before = 0  # lines in the chunks already searched
    pos = 0
    carry = b""
    started = time.monotonic()
    complete = True
    while pos < text.size:
        raw = carry + text.read(pos, min(text.size, pos + CHUNK))
        pos = min(text.size, pos + CHUNK)
        if pos < text.size:
            last = raw.rfind(b"\n")
            if last < 0:
                carry = raw
                continue
            raw, carry = raw[: last + 1], raw[last + 1:]
        chunk = raw.decode("utf-8", "replace")
        at = 0
        counted_to, line_no = 0, lines_before
        while True:
            try:
                m = pattern.search(chunk, at, timeout=max(0.05, SEARCH_SECONDS - (time.monotonic() - started)))
            except TimeoutError:
                from ...errors import LensError

                raise LensError(f"pattern took longer than {SEARCH_SECONDS:g} s (it backtracks heavily on "
                                "these lines); anchor it or avoid overlapping alternatives.") from None
            if m is None:
                break
            total += 1
            start = chunk.rfind("\n", 0, m.start()) + 1
            end = chunk.find("\n", m.start())
            end = len(chunk) if end < 0 else end
            if len(matches) < budget:
                line_no += chunk.count("\n", counted_to, start)
                counted_to = start
                matches.append([line_no + 1, _decode(chunk[start:end].encode("utf-8")).lines[0]])
            at = end + 1
            if at >= len(chunk):
                break
        lines_before += chunk.count("\n") + (0 if chunk.endswith("\n") else 1)
        if time.monotonic() - started > SEARCH_SECONDS and pos < text.size:
            complete = False
            break
    out: dict = {"matches": matches, "shown": len(matches)}
    if complete:
        out["total"] = total
        out["lines_searched"] = lines_before
    else:
        out["total_at_least"] = total
        out["note"] = f"search stopped after {SEARCH_SECONDS:g} s at byte {pos} of {text.size}"
    return out


def compile_pattern(pattern: str):
    """A case-insensitive, multi-line regex (the `regex` package, searched with a timeout)."""
    import regex

    from ...analysis.run_filters import FilterError, compile_regex
    from ...errors import LensError

    try:
        return compile_regex(pattern, f"pattern {pattern[:60]!r}", regex.I | regex.M)
    except FilterError as exc:
        raise LensError(str(exc)) from None


def last_traceback(text: Text, before: int = 6, max_frames_lines: int = 16, after_shown: int = 10) -> dict | None:
    """The last Python traceback: its exception line, the traceback (middle frames cut) and the
    lines before it. None when there is none in the last MAX_BACK bytes."""
    back = TAIL_WINDOW * 4
    while True:
        start = max(0, text.size - back)
        raw = text.read(start, text.size)
        hits = list(_TB.finditer(raw))
        if start > 0:
            hits = [h for h in hits if h.start() > 0 and raw[h.start() - 1:h.start()] == b"\n"]
        if hits:
            break
        if start == 0 or back >= MAX_BACK:
            return None
        back *= 4
    hit = hits[-1]
    prefix = hit.group("prefix").decode("utf-8", "replace")
    body = _decode(raw[hit.start():], cut_to=LINE_CHARS).lines
    if prefix.strip():  # e.g. torchrun's "[rank0]: " before every line of that rank
        body = [s[len(prefix):] if s.startswith(prefix) else s for s in body]
    else:
        prefix = ""
    tb, exc_at, rest = _traceback_block(body)
    error = tb[exc_at] if exc_at > 0 else ""
    head = raw[max(0, hit.start() - 8192):hit.start()]
    pre = _decode(head.rstrip(b"\n")).lines if head else []
    if head and hit.start() - 8192 > 0:
        pre = pre[1:]
    chained = any(any(c in s for c in _CHAIN) for s in pre[-3:])
    shown = tb
    cut = 0
    if len(tb) > max_frames_lines:
        keep_head = 3
        keep_tail = max_frames_lines - keep_head
        cut = len(tb) - keep_head - keep_tail
        shown = tb[:keep_head] + [f"... ({cut} traceback lines cut)"] + tb[-keep_tail:]
    out = {"error": error, "traceback": shown, "before": [s for s in pre if s.strip()][-before:]}
    if prefix:
        out["line_prefix"] = prefix
    if cut:
        out["traceback_lines"] = len(tb)
    if chained:
        out["chained"] = "raised while handling an earlier exception (shown above it in the log)"
    after = [s for s in rest if s.strip()]
    if after:
        out["lines_after"] = len(after)
        out["after"] = after[-after_shown:] if after_shown else []
    return out


_LOGLINE = re.compile(r"^(\S+ ?[\[(]?\d{4}-\d\d-\d\d|wandb:|\[rank\d+\]|\d+%\|)")


def _traceback_block(lines: list[str]) -> tuple[list[str], int, list[str]]:
    """(traceback lines, index of the exception line, lines after): the header, indented frame
    lines, then the exception line and its message's continuation up to a blank line (<= 4 lines)."""
    i = 1
    while i < len(lines) and (lines[i].startswith((" ", "\t")) or not lines[i].strip()):
        i += 1
    if i >= len(lines):
        return lines, -1, []
    j = i + 1
    while (j < len(lines) and j - i < 5 and lines[j].strip() and not lines[j].startswith("Traceback")
           and not _LOGLINE.match(lines[j])):
        j += 1
    return lines[:j], i, lines[j:]


def last_errorish(text: Text, n: int = 200) -> dict | None:
    """No traceback: the last line that reads like an error, among the last `n` lines."""
    raw, _ = _window_from_end(text, n)
    lines = _decode(raw).lines[-n:]
    for k in range(len(lines) - 1, -1, -1):
        if _ERRORISH.search(lines[k]):
            return {"line": lines[k], "lines_from_end": len(lines) - 1 - k}
    return None
