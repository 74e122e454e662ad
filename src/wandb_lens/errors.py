"""The one exception type tools turn into a clean MCP tool error."""

from __future__ import annotations

import difflib


class LensError(Exception):
    """A problem with the request or the data, stated for the agent: what is wrong, what exists."""


def close_matches(word: str, candidates, n: int = 5) -> list[str]:
    pool = sorted({str(c) for c in candidates})
    found = difflib.get_close_matches(word, pool, n=n, cutoff=0.5)
    if len(found) < n:
        low = word.lower()
        found += [c for c in pool if low and low in c.lower() and c not in found][: n - len(found)]
    return found


def suggest(what: str, word: str, candidates, shown: int = 10, where: str = "") -> str:
    """'Unknown metric 'x' in run p/r. Close matches: a, b. Available (12): ...'"""
    pool = sorted({str(c) for c in candidates})
    near = close_matches(word, pool)
    text = f"Unknown {what} {word!r}{where}."
    if near:
        text += " Close matches: " + ", ".join(near) + "."
    if not pool:
        return text + f" There is no {what} to choose from."
    listed = ", ".join(pool[:shown])
    more = f", ... ({len(pool) - shown} more)" if len(pool) > shown else ""
    return text + f" Available ({len(pool)}): {listed}{more}."
