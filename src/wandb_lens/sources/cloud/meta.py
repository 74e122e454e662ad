"""W&B's run attributes (GraphQL) as wandb-lens run fields: times, history-key kinds, and the
define_metric declarations W&B keeps in config._wandb.m as MetricRecord field numbers."""

from __future__ import annotations

from datetime import datetime, timezone

from ..history import HISTOGRAM, MEDIA, NUMERIC, TEXT


def parse_time(text) -> float | None:
    if not text:
        return None
    try:
        t = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.timestamp()


def kind_of(index_entry: dict) -> str:
    counts: dict[str, int] = {}
    for t in index_entry.get("typeCounts") or []:
        counts[str(t.get("type"))] = counts.get(str(t.get("type")), 0) + int(t.get("count") or 0)
    if not counts:
        return NUMERIC
    top = max(counts, key=counts.get)
    if top in ("number", "boolean", "nan", "int", "float"):
        return NUMERIC
    if top == "histogram":
        return HISTOGRAM
    if top in ("string",):
        return TEXT
    return MEDIA


SUMMARY_CODES = {1: "min", 2: "max", 3: "mean", 4: "best", 5: "last", 8: "first"}


def metric_defs(wandb_cfg) -> list[dict]:
    """define_metric declarations from config._wandb.m (W&B stores MetricRecord field numbers)."""
    if isinstance(wandb_cfg, dict) and "value" in wandb_cfg and isinstance(wandb_cfg["value"], dict):
        wandb_cfg = wandb_cfg["value"]
    entries = (wandb_cfg or {}).get("m") if isinstance(wandb_cfg, dict) else None
    if not isinstance(entries, list):
        return []
    names = [e.get("1") or e.get("2") for e in entries if isinstance(e, dict)]
    out = []
    for e in entries:
        if not isinstance(e, dict):
            continue
        name = e.get("1") or e.get("2")
        if not name:
            continue
        d: dict = {"name": name}
        if e.get("2") and not e.get("1"):
            d["glob"] = True
        step = e.get("4")
        if not step and isinstance(e.get("5"), int) and 0 < e["5"] <= len(names):
            step = names[e["5"] - 1]
        if step:
            d["step_metric"] = step
        summ = [SUMMARY_CODES[c] for c in e.get("7") or [] if c in SUMMARY_CODES]
        if summ:
            d["summary"] = summ
        if e.get("8") in (1, 2):
            d["goal"] = "minimize" if e["8"] == 1 else "maximize"
        out.append(d)
    return out


def index_answer(run) -> dict:
    """describe_run's history part from the run's history keys index (attached as run._cloud)."""
    keys_out: dict[str, dict] = {}
    monotonic = {}
    for key, k in (getattr(run, "_cloud", {}).get("keys") or {}).items():
        if key in ("_runtime", "_timestamp"):
            continue
        kind = kind_of(k)
        n = int(sum(int(t.get("count") or 0) for t in k.get("typeCounts") or []))
        entry: dict = {"n": n} if kind == NUMERIC else {"n": n, "kind": kind}
        last = k.get("previousValue")
        if kind == NUMERIC and isinstance(last, (int, float)) and not isinstance(last, bool):
            entry["last"] = float(last)
        keys_out[key] = entry
        if kind == NUMERIC:
            monotonic[key] = (bool(k.get("monotonic")), last)
    return {"rows": run.history_rows, "keys": keys_out, "monotonic": monotonic,
            "note": "per-key counts, types and last values from W&B's history keys index (no history "
                    "download); min/max/step ranges appear once a curve tool has fetched the run's history"}
