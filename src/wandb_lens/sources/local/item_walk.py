"""Items of many history or summary records at once, found with numpy instead of one protobuf
object per item.

A history row (or summary delta) is `Record{num, history|summary{item*}}`; each item is
`{key | nested_key*, value_json}`. Parsing those with protobuf costs one Python object per item
(about 1 µs; 50M items in a 1M-step x 50-metric run). Here every record is walked in lock-step
with numpy: one array operation per field position moves all records forward together, so the
cost is a few array passes per item position, not Python work per item. The result is a table of
items: record index, key id, and the byte span of the value text; keys are recognised by their
exact encoded bytes (hashed, then compared byte for byte with one exemplar per key).

Anything off the expected layout (a field we do not know, a key longer than MAX_KEY bytes, an
item without `value_json`, a summary removal, a value that crosses its record) sends that whole
record to `bad`: callers decode those with protobuf as before, so answers never depend on this
fast path being able to read a record.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_KEY = 120  # encoded key bytes (tags + lengths + names) read on the fast path
_PAD = MAX_KEY + 24  # bytes after the last record, so fixed-width gathers never read past the end
_MIX = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93,
                 0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53, 0x94D049BB133111EB, 0xBF58476D1CE4E5B9,
                 0x2545F4914F6CDD1D, 0x9FB21C651E98DF25, 0x60642E2A34326F15, 0xD1B54A32D192ED03,
                 0x8CB92BA72F3D8DD7, 0xABC98388FB8FAC03, 0xE7037ED1A0B428DB, 0xA0761D6478BD642F],
                dtype=np.uint64)


@dataclass
class Items:
    buf: bytes  # the records joined; spans below index into it
    rec: np.ndarray  # int64 record index of each item, items in record order
    key: np.ndarray  # int32 key id (index into `spans`)
    v_start: np.ndarray  # int64 value text start in buf
    v_len: np.ndarray  # int64 value text length
    spans: list[bytes]  # one encoded key (the item's bytes before value_json) per key id
    step_num: np.ndarray  # int64 HistoryRecord.step.num per record (0 when absent)
    bad: np.ndarray  # bool per record: decode it with protobuf instead


def _varint(a: np.ndarray, p: np.ndarray):
    """Varints (up to 4 bytes) at positions p: (value, position after, ok)."""
    b0 = a[p].astype(np.int64)
    val = b0 & 0x7F
    more = b0 >= 0x80
    q = p + 1
    ok = np.ones(p.shape, dtype=bool)
    shift = 7
    for _ in range(3):
        if not more.any():
            return val, q, ok
        b = a[q].astype(np.int64)
        val = np.where(more, val | ((b & 0x7F) << shift), val)
        q = np.where(more, q + 1, q)
        more = more & (b >= 0x80)
        shift += 7
    ok &= ~more
    return val, q, ok


def walk(records: list[bytes], payload_tag: int, history: bool) -> Items:
    """The items of `records` (each a serialized Record whose payload field has tag byte
    `payload_tag`: 0x12 history, 0x1a summary)."""
    n = len(records)
    lens = np.fromiter((len(r) for r in records), dtype=np.int64, count=n)
    starts = np.zeros(n, dtype=np.int64)
    if n:
        np.cumsum(lens[:-1], out=starts[1:])
    buf = b"".join([*records, b"\0" * _PAD])  # padded: varint reads may look a few bytes past the end
    a = np.frombuffer(buf, dtype=np.uint8)
    ends = starts + lens
    bad = np.zeros(n, dtype=bool)
    step_num = np.zeros(n, dtype=np.int64)
    # Record level: optional `num` varint, then the payload field, which must end inside the record.
    p = starts.copy()
    has_num = a[p] == 0x08
    if has_num.any():
        _, q, ok = _varint(a, p[has_num] + 1)
        p[has_num] = q
        bad[has_num] |= ~ok
    bad |= a[p] != payload_tag
    sub_len, sub, ok = _varint(a, p + 1)
    bad |= ~ok
    sub_end = sub + sub_len
    bad |= sub_end > ends
    # Field level inside the payload: items (tag 0x0a) in lock-step; a history step (0x12) read.
    item_rec: list[np.ndarray] = []
    item_k: list[np.ndarray] = []
    item_s: list[np.ndarray] = []
    item_e: list[np.ndarray] = []
    lanes = np.flatnonzero(~bad & (sub < sub_end))
    cur = sub[lanes]
    count = np.zeros(lanes.shape, dtype=np.int64)  # items seen so far in each lane's record
    while lanes.size:
        tag = a[cur]
        ln, body, ok = _varint(a, cur + 1)
        nxt = body + ln
        end = sub_end[lanes]
        ok &= nxt <= end
        is_item = tag == 0x0A
        is_step = (tag == 0x12) if history else np.zeros(lanes.shape, dtype=bool)
        ok &= is_item | is_step
        if is_step.any():
            sl = np.flatnonzero(is_step & ok)
            sb = body[sl]
            has = (ln[sl] > 0) & (a[sb] == 0x08)
            val, _, vok = _varint(a, sb + 1)
            step_num[lanes[sl[has]]] = val[has]
            ok[sl] &= ~has | vok
        bad[lanes[~ok]] = True
        take = ok & is_item
        item_rec.append(lanes[take])
        item_k.append(count[take])
        item_s.append(body[take])
        item_e.append(nxt[take])
        count += take
        keep = ok & (nxt < end)
        lanes = lanes[keep]
        cur = nxt[keep]
        count = count[keep]
    rec = np.concatenate(item_rec) if item_rec else np.zeros(0, dtype=np.int64)
    # place every item at (its record's first slot + its index in the record): record order, no sort
    per_rec = np.bincount(rec, minlength=n)
    first = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(per_rec, out=first[1:])
    dest = first[rec] + (np.concatenate(item_k) if item_k else rec)
    s = np.empty_like(rec)
    e = np.empty_like(rec)
    s[dest] = np.concatenate(item_s) if item_s else rec
    e[dest] = np.concatenate(item_e) if item_e else rec
    rec = np.repeat(np.arange(n, dtype=np.int64), per_rec)
    # Item level: key fields (0x0a key, 0x12 nested_key parts), then value_json (0x82 0x01) to the end.
    pos = s.copy()
    ok = np.ones(rec.shape, dtype=bool)
    for _ in range(17):
        t = a[pos]
        step = (t == 0x0A) | (t == 0x12)
        step &= pos < e
        if not step.any():
            break
        idx = np.flatnonzero(step)
        ln, body, vok = _varint(a, pos[idx] + 1)
        ok[idx] &= vok
        pos[idx] = body + ln
    else:
        ok &= ~(((a[pos] == 0x0A) | (a[pos] == 0x12)) & (pos < e))
    ok &= (a[pos] == 0x82) & (a[pos + 1] == 0x01) & (pos + 2 < e + 1)
    vlen, vstart, vok = _varint(a, pos + 2)
    ok &= vok & (vstart + vlen == e)
    klen = pos - s
    ok &= (klen > 0) & (klen <= MAX_KEY)
    bad[rec[~ok]] = True
    good = ~bad[rec]
    rec, s, klen, vstart, vlen = rec[good], s[good], klen[good], vstart[good], vlen[good]
    key, spans, mismatch = _key_ids(a, s, klen, buf)
    if mismatch.any():
        bad[rec[mismatch]] = True
        good = ~bad[rec]
        rec, key, vstart, vlen = rec[good], key[good], vstart[good], vlen[good]
    return Items(buf, rec, key.astype(np.int32), vstart, vlen, spans, step_num, bad)


def _words(buf: bytes) -> np.ndarray:
    """Every 8-byte little-endian word of `buf`, one per byte offset (an overlapping view, no copy)."""
    return np.ndarray(shape=(max(0, len(buf) - 7),), dtype="<u8", buffer=buf, strides=(1,))


_MASKS = np.array([(1 << (8 * i)) - 1 for i in range(8)] + [(1 << 64) - 1], dtype=np.uint64)


def _masked(w: np.ndarray, nbytes: np.ndarray) -> np.ndarray:
    """`w` keeping only its first `nbytes` (clipped to 0..8) bytes."""
    return w & _MASKS[np.clip(nbytes, 0, 8)]


def _key_ids(a: np.ndarray, s: np.ndarray, klen: np.ndarray, buf: bytes):
    """Key id per item from its encoded key bytes: a hash picks a candidate, then every item's
    bytes are compared with that key's exemplar, so two keys can never be merged."""
    n = s.shape[0]
    key = np.zeros(n, dtype=np.int64)
    mismatch = np.zeros(n, dtype=bool)
    spans: list[bytes] = []
    if not n:
        return key, spans, mismatch
    nwords = int(-(-klen.max() // 8))  # <= MAX_KEY / 8 words: inside the padding
    W = _words(buf)
    words = np.empty((n, nwords), dtype=np.uint64)
    h = klen.astype(np.uint64)
    for k in range(nwords):
        words[:, k] = _masked(W[s + 8 * k], klen - 8 * k)
        h = h ^ (words[:, k] * _MIX[k])
        h = h ^ (h >> np.uint64(29))
    # distinct hashes from a sample, then the rest by binary search (keys are few, items many)
    uniq = np.unique(h[: 1 << 14])
    while True:
        pos = np.minimum(np.searchsorted(uniq, h), uniq.shape[0] - 1)
        missing = uniq[pos] != h
        if not missing.any():
            break
        uniq = np.union1d(uniq, np.unique(h[missing][: 1 << 14]))
    first = np.full(uniq.shape[0], -1, dtype=np.int64)
    first[pos[::-1]] = np.arange(n - 1, -1, -1)  # the first item of each key (last write wins)
    for i in first.tolist():
        spans.append(buf[int(s[i]):int(s[i]) + int(klen[i])])
    key = pos.astype(np.int64)
    mismatch = (words != words[first][key]).any(axis=1)
    return key, spans, mismatch


def numbers(items: Items, sel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(floats, starts_like_a_number) of the items `sel`: the values that start like a JSON number
    parsed by Arrow in one cast (NaN / Infinity too; the same results as Python's float() on JSON
    numbers), NaN elsewhere. Raises ValueError when one of them is not a number after all."""
    import pyarrow as pa
    import pyarrow.compute as pc

    out = np.full(sel.shape[0], np.nan)
    vlen = items.v_len[sel]
    vstart = items.v_start[sel]
    a = np.frombuffer(items.buf, dtype=np.uint8)
    first = a[vstart]
    num = (((first >= 0x30) & (first <= 0x39)) | (first == 0x2D) | (first == 0x4E) | (first == 0x49)) & (vlen > 0)
    idx = np.flatnonzero(num)
    if not idx.size:
        return out, num
    vlen, vstart = vlen[idx], vstart[idx]
    # the texts side by side (Arrow strings need them contiguous): 3 words per value, then squeezed
    width = int(-(-vlen.max() // 8))
    W = _words(items.buf)
    mat = np.empty((idx.shape[0], width), dtype=np.uint64)
    for k in range(width):
        mat[:, k] = W[vstart + 8 * k]
    raw = mat.view(np.uint8).reshape(idx.shape[0], width * 8)
    keep = np.arange(width * 8)[None, :] < vlen[:, None]
    data = raw[keep]
    offsets = np.zeros(idx.shape[0] + 1, dtype=np.int64)
    np.cumsum(vlen, out=offsets[1:])
    arr = pa.Array.from_buffers(pa.large_string(), idx.shape[0], [None, pa.py_buffer(offsets), pa.py_buffer(data)])
    try:
        res = pc.cast(arr, pa.float64())
        # the values buffer as numpy (Array.to_numpy would import pandas, ~0.7 s)
        out[idx] = np.frombuffer(res.buffers()[1], dtype=np.float64, count=len(res), offset=res.offset * 8)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ValueError(str(exc)) from None
    return out, num
