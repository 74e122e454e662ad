"""The parquet cache of a big history, written as the decode goes (the writer side; `history.py`
reads it).

A cold decode hands over its rows a chunk at a time (`Spill.add`: one History of a few tens of
thousands of rows, written to an Arrow IPC file and dropped), so no process ever holds the whole
history. When the scan ends, `write_parts` writes the chunks into one parquet file, one row group
per chunk, under the schema of the whole run: the same layout as `history.to_arrow` (`_step`
int64 first, then one column per key in order of first appearance, nulls where a key was not
logged; kinds, order and damage in the schema metadata), so readers cannot tell the two apart.

A key whose kind differs between chunks is joined as `History.append` joins two Histories (the
numeric reading kept when there is one). The file appears whole or not at all: written under a
temporary name, then renamed.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from .history import HISTOGRAM, MEDIA, NUMERIC, History, to_arrow


@dataclass
class Part:
    """One chunk of rows spilled to an Arrow IPC file, in row order among the others."""

    path: str
    n_rows: int
    kinds: dict[str, str]  # every column of the chunk (`_step` included), in its order
    damage: list[str] = field(default_factory=list)

    def to_tuple(self) -> tuple:  # plain values: a worker process pickles these
        return (self.path, self.n_rows, self.kinds, self.damage)


class Spill:
    """Chunks of decoded rows written to `folder` as they come (file names start with `prefix`)."""

    def __init__(self, folder: Path, prefix: str):
        self.folder = Path(folder)
        self.prefix = prefix
        self.parts: list[Part] = []
        self.folder.mkdir(parents=True, exist_ok=True)

    def add(self, hist: History) -> None:
        import pyarrow as pa

        table = to_arrow(hist)
        path = self.folder / f"{self.prefix}{len(self.parts):05d}.arrow"
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        self.parts.append(Part(str(path), hist.n_rows, {k: c.kind for k, c in hist.columns.items()}, list(hist.damage)))


def _arrow_type(kind: str):
    import pyarrow as pa

    if kind == NUMERIC:
        return pa.float64()
    if kind == HISTOGRAM:
        return pa.struct([("values", pa.list_(pa.float64())), ("bins", pa.list_(pa.float64()))])
    return pa.string()  # text, media


def plan(parts: list[Part]) -> tuple[dict[str, str], dict[str, set[int]]]:
    """(final kind per key in order of first appearance, which parts give each key its values),
    as `History.append` would join the parts one after another."""
    kinds: dict[str, str] = {}
    use: dict[str, set[int]] = {}
    for i, part in enumerate(parts):
        for key, kind in part.kinds.items():
            cur = kinds.get(key)
            if cur is None:
                kinds[key], use[key] = kind, {i}
            elif cur == kind:
                use[key].add(i)
            elif not (cur == NUMERIC or kind != NUMERIC):  # text before, numbers now: the numbers win
                kinds[key], use[key] = kind, {i}
    # a one-pass decode folds histograms and media last: so here, whichever chunk they begin in
    folded = [k for k, kind in kinds.items() if kind in (HISTOGRAM, MEDIA)]
    kinds = {**{k: v for k, v in kinds.items() if v not in (HISTOGRAM, MEDIA)}, **{k: kinds[k] for k in folded}}
    return kinds, use


def merged_damage(damage: list[str]) -> list[str]:
    """The parts' damage lines, the 'N history record(s) ... left out' counts summed into one."""
    tail = " history record(s) passed their CRC but could not be decoded: left out"
    counts = [int(d.split(" ", 1)[0]) for d in damage if d.endswith(tail)]
    rest = [d for d in damage if not d.endswith(tail)]
    return rest + ([f"{sum(counts)}{tail}"] if counts else [])


def cached_part(path: Path, meta_key: bytes) -> tuple[Part, dict] | None:
    """(the rows of a parquet cache file as a Part, its stored metadata), or None when unreadable:
    a grown run's new rows are appended after it without reading it whole (`write_parts`)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
        smeta = pf.schema_arrow.metadata or {}
        stored = json.loads(smeta.get(b"wandb_lens_kinds", b"{}"))
        order = json.loads(smeta.get(b"wandb_lens_order", b"[]"))
        names = pf.schema_arrow.names
        if sorted(order) != sorted(names):
            order = names
        kinds = {k: NUMERIC if k == "_step" else stored.get(k, NUMERIC) for k in order}
        damage = json.loads(smeta.get(b"wandb_lens_damage", b"[]"))
        return Part(str(path), pf.metadata.num_rows, kinds, damage), json.loads(smeta[meta_key])
    except (OSError, KeyError, TypeError, ValueError, pa.ArrowException):
        return None


def _tables(part: Part):
    """The part's rows as tables: an IPC chunk whole, a parquet file a row group at a time."""
    import pyarrow as pa

    if part.path.endswith(".parquet"):
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(part.path)
        for i in range(pf.metadata.num_row_groups):
            yield pf.read_row_group(i)
        return
    with pa.OSFile(part.path, "rb") as src:  # read into memory (not mapped): one chunk resident at a time
        yield pa.ipc.open_file(src).read_all()


def _read(part: Part):
    import pyarrow as pa

    return pa.concat_tables(list(_tables(part)))


def write_parts(parts: list[Part], path: Path, meta_key: bytes, meta: dict) -> int:
    """Write the parts as one parquet cache file at `path` (atomically); returns its rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    kinds, use = plan(parts)
    keys = [k for k in kinds if k != "_step"]
    types = {k: _arrow_type(kinds[k]) for k in keys}
    fields = [pa.field("_step", pa.int64())] + [pa.field(k, types[k]) for k in keys]
    damage = merged_damage([d for p in parts for d in p.damage])
    smeta = {b"wandb_lens_kinds": json.dumps({k: kinds[k] for k in keys}).encode(),
             b"wandb_lens_order": json.dumps(list(kinds)).encode(),
             meta_key: json.dumps(meta).encode()}
    if damage:
        smeta[b"wandb_lens_damage"] = json.dumps(damage).encode()
    schema = pa.schema(fields, metadata=smeta)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
    rows = 0
    try:
        # dictionary pages only for text: on float columns they cost most of the write and save nothing
        text = [k for k in keys if kinds[k] not in (NUMERIC, HISTOGRAM)]
        with pq.ParquetWriter(str(tmp), schema, use_dictionary=text or False) as writer:
            for i, part in enumerate(parts):
                if not part.n_rows:
                    continue
                for table in _tables(part):
                    n = table.num_rows
                    arrays = [table.column("_step").combine_chunks().cast(pa.int64())]
                    for key in keys:
                        if i in use[key] and key in table.column_names:
                            arr = table.column(key).combine_chunks()
                            arrays.append(arr if arr.type == types[key] else arr.cast(types[key]))
                        else:
                            arrays.append(pa.nulls(n, types[key]))
                    writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
                    rows += n
                    del table, arrays
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return rows


def read_parts(parts: list[Part]) -> History:
    """The parts as one History in memory (every column decoded): for a cache that could not be
    written, and for tests."""
    from .history import from_arrow

    out: History | None = None
    for part in parts:
        hist = from_arrow(_read(part))
        out = hist if out is None else out.append(hist)
    out = out if out is not None else History()
    order = [k for k in plan(parts)[0] if k in out.columns]
    return History(out.steps, {k: out.columns[k] for k in order}, merged_damage(out.damage))
