"""The final summary from a run's summary deltas, a batch of records at a time.

wandb writes a summary delta with every history row (repeating the row's items), so a long run has
millions of them; only the newest event of each key matters. The items of a batch are found with
numpy (`item_walk`), and per key only its newest update (or removal) is kept, so the cost is a few
array passes per batch, not Python work per item. Records the walk cannot read (removals, an
unexpected field) are parsed with protobuf. The result is what applying every delta in order gives:
newest first, a removal in a record beating an update of the same key in that record, the first of
two updates of one key in one record winning.
"""

from __future__ import annotations

from typing import Any

import numpy as np

BATCH_BYTES = 4 << 20
SMALL_BATCH = 16  # records merged with protobuf instead of the array walk
_REMOVED = object()
_BAD = object()  # an encoded key protobuf cannot read


def summary_key(item):
    """One key for updates and removals alike: the name for a flat key, a tuple for a nested one."""
    nk = item.nested_key
    return nk[0] if len(nk) == 1 else (tuple(nk) if nk else item.key)


class SummaryMerge:
    def __init__(self) -> None:
        self.n_records = 0
        self.newest: dict[Any, tuple[int, int, Any]] = {}  # key -> (record, position, text | _REMOVED)
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._span_keys: dict[bytes, Any] = {}

    def add(self, record: bytes) -> None:
        self._pending.append(record)
        self._pending_bytes += len(record)
        if self._pending_bytes >= BATCH_BYTES:
            self.flush()

    def extend(self, records: list[bytes]) -> None:
        """Records already gathered into a batch (`index_walk`): merged at once, in order after those added."""
        self.flush()
        if records:
            self._batch(records)

    def flush(self) -> None:
        if self._pending:
            self._batch(self._pending)
            self._pending = []
            self._pending_bytes = 0

    def _offer(self, key, rec: int, pos: int, value) -> None:
        cur = self.newest.get(key)
        if cur is None or rec > cur[0] or (rec == cur[0] and pos < cur[1]):
            self.newest[key] = (rec, pos, value)

    def _batch(self, records: list[bytes]) -> None:
        from . import item_walk

        base = self.n_records
        if len(records) <= SMALL_BATCH and self._parsed(records, base):
            return
        self.n_records += len(records)
        items = item_walk.walk(records, 0x1A, history=False)
        span_keys = [self._key_of_span(span) for span in items.spans]
        bad_span = np.asarray([k is _BAD for k in span_keys] or [False])
        if bad_span.any():
            items.bad[items.rec[bad_span[items.key]]] = True
        good = np.flatnonzero(~items.bad[items.rec])
        if good.size:
            rec = items.rec[good]
            # newest record first, the first item of a key within a record: the key's newest update
            pos_in_rec = np.arange(good.size) - np.searchsorted(rec, rec)
            order = np.lexsort((pos_in_rec, -rec))
            _, first = np.unique(items.key[good][order], return_index=True)
            for j in order[first].tolist():
                i = int(good[j])
                start, n = int(items.v_start[i]), int(items.v_len[i])
                self._offer(span_keys[int(items.key[i])], base + int(rec[j]), int(pos_in_rec[j]),
                            items.buf[start:start + n].decode("utf-8", "replace"))
        slow = np.flatnonzero(items.bad)
        if slow.size:
            from wandb.proto import wandb_internal_pb2 as pb

            for i in slow.tolist():
                try:
                    s = pb.Record.FromString(records[i]).summary
                except Exception:  # passed its CRC yet undecodable: skip it
                    continue
                for j, item in enumerate(s.remove):
                    self._offer(summary_key(item), base + i, -1 - j, _REMOVED)
                for j, item in enumerate(s.update):
                    self._offer(summary_key(item), base + i, j, item.value_json)

    def _parsed(self, records: list[bytes], base: int) -> bool:
        """A few records (wandb < 0.19 writes one summary record, at exit) read with protobuf: the
        array walk costs about a millisecond however few records it is given. False (nothing taken)
        when one does not parse: the batch then goes the array way, which says what it can read."""
        from wandb.proto import wandb_internal_pb2 as pb

        try:
            parsed = [pb.Record.FromString(r).summary for r in records]
        except Exception:
            return False
        self.n_records += len(records)
        for i, s in enumerate(parsed):
            for j, item in enumerate(s.remove):
                self._offer(summary_key(item), base + i, -1 - j, _REMOVED)
            for j, item in enumerate(s.update):
                self._offer(summary_key(item), base + i, j, item.value_json)
        return True

    def _key_of_span(self, span: bytes):
        key = self._span_keys.get(span)
        if key is None:
            from wandb.proto import wandb_internal_pb2 as pb

            try:
                key = summary_key(pb.SummaryItem.FromString(span))
            except Exception:
                key = _BAD  # not readable as a key: the record goes the protobuf way
            self._span_keys[span] = key
        return key

    def apply(self, summary: dict) -> None:
        """Apply the newest event of every key to `summary` (updates newest first, then removals)."""
        from .run_file import _del_nested, _loads, _set_nested

        self.flush()
        events = sorted(self.newest.items(), key=lambda kv: (-kv[1][0], kv[1][1]))
        removed = []
        for key, (_, _, value) in events:
            if value is _REMOVED:
                removed.append(key)
                continue
            path = list(key) if isinstance(key, tuple) else [key]
            if path[0] == "_wandb":
                if path == ["_wandb", "runtime"]:
                    summary["_runtime_wandb"] = _loads(value)
                continue
            _set_nested(summary, path, _loads(value))
        for key in removed:
            _del_nested(summary, list(key) if isinstance(key, tuple) else [key])
