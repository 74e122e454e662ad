"""System health from a run's system metrics and step timing: an underused GPU while steps run
(input-bound), GPU or host memory that keeps growing (a leak), and stretches where steps slow down.

Inputs are plain arrays: system samples {"system/<key>": (unix times, values)} as W&B names them,
and the history rows' (`_step`, `_timestamp`). Rules, stated in the answer:
- GPU underused: median utilisation of `gpu.N.gpu` while steps run < 50 %; "input-bound" when the
  CPU median is >= 80 % at the same time.
- Leak: after the first 10 % of samples (allocator warm-up), the value rises with time (Spearman
  rho >= 0.9), by >= 10 % of its start (>= 5 points for a percentage), and still rises in the last
  half (>= 30 % of the growth there): a plateau after warm-up is not a leak.
- Slow steps: seconds per step, smoothed by a running median over w rows (w = max(5, rows/50)),
  above 2x the run's median for at least w rows.
"""

from __future__ import annotations

import re

import numpy as np

GPU_UTIL = re.compile(r"^system/gpu\.(\d+)\.gpu$")
LOW_UTIL = 50.0
CPU_BUSY = 80.0
MEMORY_KEYS = (  # (pattern, label, is a percentage)
    (re.compile(r"^system/gpu\.(\d+)\.memoryAllocated$"), "GPU {0} memory", True),
    (re.compile(r"^system/gpu\.(\d+)\.memoryAllocatedBytes$"), "GPU {0} memory", False),
    (re.compile(r"^system/proc\.memory\.rssMB$"), "process RSS", False),
    (re.compile(r"^system/(memory_percent|memory)$"), "host memory", True),
)


def _at_steps(times: np.ndarray, row_t: np.ndarray, row_s: np.ndarray) -> np.ndarray:
    """The step logged last at or before each time (the first step for earlier times)."""
    if not len(row_t):
        return np.zeros(len(times), dtype=np.int64)
    i = np.clip(np.searchsorted(row_t, times, side="right") - 1, 0, len(row_t) - 1)
    return row_s[i]


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 3:
        return 0.0
    rx = np.argsort(np.argsort(x, kind="stable"), kind="stable").astype(float)
    ry = np.argsort(np.argsort(y, kind="stable"), kind="stable").astype(float)
    if rx.std() == 0 or ry.std() == 0:
        return 0.0
    return float(np.corrcoef(rx, ry)[0, 1])


def gpu_use(series: dict, row_t: np.ndarray, row_s: np.ndarray) -> list[dict]:
    """One finding per GPU whose median utilisation while steps ran is below LOW_UTIL."""
    out = []
    t0, t1 = (row_t[0], row_t[-1]) if len(row_t) else (-np.inf, np.inf)
    cpu = series.get("system/cpu")
    for key in sorted(k for k in series if GPU_UTIL.match(k)):
        t, v = series[key]
        keep = (t >= t0) & (t <= t1) & np.isfinite(v)
        if keep.sum() < 3:
            continue
        med = float(np.median(v[keep]))
        if med >= LOW_UTIL:
            continue
        steps = _at_steps(t[keep], row_t, row_s)
        f = {"check": "gpu_underused", "key": key, "median_util": med, "p90_util": float(np.percentile(v[keep], 90)),
             "samples": int(keep.sum()), "steps": [int(steps[0]), int(steps[-1])]}
        if cpu is not None:
            ct, cv = cpu
            ck = (ct >= t0) & (ct <= t1) & np.isfinite(cv)
            if ck.sum():
                f["cpu_median"] = float(np.median(cv[ck]))
        busy = f.get("cpu_median", 0) >= CPU_BUSY
        f["reading"] = ("input-bound: CPU saturated while the GPU waits" if busy
                        else "GPU idle: data loading, host-device copies, small batches or syncs")
        out.append(f)
    return out


def memory_growth(series: dict, row_t: np.ndarray, row_s: np.ndarray) -> list[dict]:
    """Memory series that keep rising through the run (one per device / kind)."""
    out, seen = [], set()
    for pattern, label, pct in MEMORY_KEYS:
        for key in sorted(series):
            m = pattern.match(key)
            if not m:
                continue
            name = label.format(*m.groups())
            if name in seen:  # gpu.N.memoryAllocated and ...Bytes: judge one of the two
                continue
            seen.add(name)
            t, v = series[key]
            ok = np.isfinite(v)
            t, v = t[ok], v[ok]
            if len(v) < 8:
                continue
            skip = max(1, len(v) // 10)
            t, v = t[skip:], v[skip:]
            n = len(v)
            q = max(1, n // 5)
            start, end = float(np.median(v[:q])), float(np.median(v[-q:]))
            growth = end - start
            rho = _spearman(t, v)
            half = n // 2
            late = float(np.median(v[-q:]) - np.median(v[half:half + q]))
            big = growth >= (5.0 if pct else max(0.1 * abs(start), 1e-9))
            if not (rho >= 0.9 and big and growth > 0 and late >= 0.3 * growth):
                continue
            steps = _at_steps(np.array([t[0], t[-1]]), row_t, row_s)
            hours = max((t[-1] - t[0]) / 3600.0, 1e-9)
            f = {"check": "memory_growing", "key": key, "what": name, "from": start, "to": end,
                 "steps": [int(steps[0]), int(steps[1])], "rho": rho, "per_hour": growth / hours}
            span = int(steps[1] - steps[0])
            if span > 0:
                f["per_1k_steps"] = growth / span * 1000
                if pct and end < 100:
                    f["full_at_step_est"] = int(steps[1] + (100 - end) / (growth / span))
            out.append(f)
    return out


def slow_steps(row_t: np.ndarray, row_s: np.ndarray, max_segments: int = 3) -> dict | None:
    """Stretches where seconds per step exceed 2x the run's median (running median over w rows)."""
    ok = np.isfinite(row_t)
    t, s = row_t[ok], row_s[ok]
    if len(t) < 20:
        return None
    ds = np.diff(s).astype(float)
    dt = np.diff(t)
    good = ds > 0
    if good.sum() < 19:
        return None
    per = dt[good] / ds[good]
    at = s[1:][good]
    w = max(5, len(per) // 50)
    pad = np.pad(per, (w // 2, w - 1 - w // 2), mode="edge")
    smooth = np.median(np.lib.stride_tricks.sliding_window_view(pad, w), axis=1)
    base = float(np.median(per))
    if base <= 0:
        return None
    slow = smooth > 2 * base
    segs = []
    i = 0
    while i < len(slow):
        if slow[i]:
            j = i
            while j + 1 < len(slow) and slow[j + 1]:
                j += 1
            if j - i + 1 >= w:
                segs.append({"steps": [int(at[i]), int(at[j])], "x_slower": float(np.median(per[i:j + 1]) / base),
                             "seconds": float(np.sum(per[i:j + 1] * ds[good][i:j + 1]))})
            i = j + 1
        else:
            i += 1
    segs.sort(key=lambda g: -g["seconds"])
    return {"median_s_per_step": base, "steps_per_s": 1 / base, "window_rows": w,
            "slow_stretches": segs[:max_segments], "slow_stretches_total": len(segs)}


RULES = {
    "gpu_underused": "median gpu.N.gpu < 50% while steps run; input-bound when CPU median >= 80%",
    "memory_growing": ("rises after the first 10% of samples (rho >= 0.9, by >= 10% or 5 points) and still in the "
                       "last half; usual causes: tensors kept across steps (a loss appended without .item()), "
                       "a growing cache, data held by the loader"),
    "slow_steps": "seconds/step (running median over window_rows rows) > 2x the run's median",
}


def headline(series: dict, row_t: np.ndarray) -> dict:
    """Mean / max of the main system keys while steps ran: {key: [mean, max, samples]}."""
    keys = [k for k in series if GPU_UTIL.match(k) or any(p.match(k) for p, _, _ in MEMORY_KEYS)
            or k in ("system/cpu", "system/disk.in", "system/network.recv")]
    t0, t1 = (row_t[0], row_t[-1]) if len(row_t) else (-np.inf, np.inf)
    out = {}
    for k in sorted(keys)[:12]:
        t, v = series[k]
        keep = (t >= t0) & (t <= t1) & np.isfinite(v)
        if keep.any():
            out[k] = [float(np.mean(v[keep])), float(np.max(v[keep])), int(keep.sum())]
    return out
