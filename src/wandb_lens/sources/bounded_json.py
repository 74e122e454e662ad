"""JSON values from users' files, bounded in depth: one value too deep is one bad value.

A summary value nested 1,000 deep (crafted, or a framework logging a linked structure) made
`json.loads` raise RecursionError through the scan and broke every run tool; values only somewhat
less deep parsed, then failed later (index cache, answers). `loads` never raises RecursionError:
a value the parser cannot nest that deep, or any part of a value below MAX_DEPTH levels, becomes
the string TOO_DEEP. Everything else in the record, run or call is kept.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 32
TOO_DEEP = f"<nested deeper than {MAX_DEPTH} levels: not read>"


def loads(text: str | bytes, fallback_to_text: bool = True) -> Any:
    """json.loads with the depth bound; text that is not JSON comes back as itself (or raises
    ValueError when `fallback_to_text` is False)."""
    try:
        value = json.loads(text)
    except RecursionError:  # too deep for the parser: cap the text itself, keeping the siblings
        try:
            return json.loads(_cap_text(text))
        except (ValueError, RecursionError):
            return TOO_DEEP
    except ValueError:
        if fallback_to_text:
            return text
        raise
    if isinstance(value, (dict, list)) and may_be_deep(text) and _max_depth(text) > MAX_DEPTH:
        return cut(value)
    return value


_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')
def _max_depth(text: str | bytes) -> int:
    """The deepest nesting of a JSON text, brackets inside strings not counted; vectorised (numpy),
    no Python loop over the text."""
    import numpy as np

    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    a = np.frombuffer(data, dtype=np.uint8)
    if a.size == 0:
        return 0
    quote = a == 0x22
    if 0x5C in data:  # a quote after an odd run of backslashes is escaped, not a delimiter
        idx = np.arange(a.size, dtype=np.int64)
        last_plain = np.maximum.accumulate(np.where(a != 0x5C, idx, -1))
        run = np.zeros(a.size, dtype=np.int64)
        run[1:] = idx[:-1] - last_plain[:-1]
        quote &= run % 2 == 0
    opener = (a == 0x5B) | (a == 0x7B)
    closer = (a == 0x5D) | (a == 0x7D)
    sel = np.flatnonzero(quote | opener | closer)  # only the few bytes that matter from here on
    q = quote[sel]
    outside = (np.cumsum(q) % 2 == 0) & ~q
    step = opener[sel].astype(np.int32) - closer[sel].astype(np.int32)
    step[~outside] = 0
    return int(np.cumsum(step).max()) if step.size else 0


def _cap_text(text: str | bytes) -> str:
    """The JSON text with every array / object opened below MAX_DEPTH levels replaced by the JSON
    string TOO_DEEP (strings skipped whole by the regex, so brackets inside them do not count)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    out: list[str] = []
    depth, pos, skip_from = 0, 0, -1
    for m in _TOKEN.finditer(text):
        tok = m.group()
        if tok in "[{":
            depth += 1
            if depth == MAX_DEPTH + 1 and skip_from < 0:
                out.append(text[pos:m.start()])
                skip_from = m.start()
        elif tok in "]}":
            if depth == MAX_DEPTH + 1 and skip_from >= 0:
                out.append(json.dumps(TOO_DEEP))
                pos, skip_from = m.end(), -1
            depth -= 1
    if skip_from >= 0:  # unbalanced: the rest is cut
        return "".join(out) + json.dumps(TOO_DEEP)
    out.append(text[pos:])
    return "".join(out)


def may_be_deep(text: str | bytes) -> bool:
    """Cheap gate (two C-level counts): fewer openers than MAX_DEPTH cannot nest that deep."""
    if isinstance(text, bytes):
        return text.count(b"[") + text.count(b"{") > MAX_DEPTH
    return text.count("[") + text.count("{") > MAX_DEPTH


def cut(value: Any, max_depth: int = MAX_DEPTH) -> Any:
    """A copy of `value` with every dict / list below `max_depth` levels replaced by TOO_DEEP;
    iterative (no Python recursion, whatever the depth)."""
    if not isinstance(value, (dict, list)):
        return value
    root: Any = {} if isinstance(value, dict) else []
    stack = [(value, root, 1)]
    while stack:
        src, dst, depth = stack.pop()
        items = src.items() if isinstance(src, dict) else enumerate(src)
        for k, v in items:
            if isinstance(v, (dict, list)):
                if depth >= max_depth:
                    v_out: Any = TOO_DEEP
                else:
                    v_out = {} if isinstance(v, dict) else []
                    stack.append((v, v_out, depth + 1))
            else:
                v_out = v
            if isinstance(dst, dict):
                dst[k] = v_out
            else:
                dst.append(v_out)
    return root
