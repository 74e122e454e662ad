"""A summary for a log that has no summary record: the last logged value of each history key.

wandb versions before wandb-core kept the summary in memory and wrote it to the log only at a
clean exit, so a killed run's log holds its history but no summary. W&B shows the last logged
values then; so do we, marked as derived. Keys nested by `wandb.log({"a": {"b": x}})` keep their
nesting; a histogram's items (`_type`, `values`, `bins`) come from the same row.
"""

from __future__ import annotations

from .run_file import _loads, _set_nested


def last_values(summary: dict, records: list[bytes], parse) -> int:
    """Fill `summary` (on top of what it holds) from history records, newest first; returns the
    number of records that could not be decoded."""
    seen: set[tuple[str, ...]] = set()
    bad = 0
    for rec in reversed(records):
        try:
            items = parse(rec).history.item
        except Exception:  # passed its CRC yet undecodable: skip it
            bad += 1
            continue
        for item in items:
            path = tuple(item.nested_key) or (item.key,)
            if path in seen or path[0] == "_wandb":
                continue
            seen.add(path)
            _set_nested(summary, list(path), _loads(item.value_json))
    return bad
