"""Pure aggregation over Weave evaluation calls (plain dicts in the trace server's JSON shape).

No mcp / wandb / weave imports: the tools fetch calls from a trace source and hand them here.
Facts this relies on (data-formats.md §3): descendant counts live at `summary.status_counts`
(keys may be enum reprs: normalised), token usage at `summary.usage[model]` with prompt/input and
completion/output spellings, per-row scores at `output["scores"][scorer]`, scorer aggregates in the
evaluate call's output, and a scorer that raises fails its whole row (output None, exception set).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from typing import Any

NOT_SCORERS = ("output", "model_output", "model_latency")
STATUSES = ("success", "error", "running", "descendant_error")


def norm_status(s: Any) -> str:
    """'success' | TraceStatus.SUCCESS | 'TraceStatus.ERROR' -> 'success' / 'error' / ..."""
    text = str(getattr(s, "value", s) or "").strip()
    if "." in text:
        text = text.rsplit(".", 1)[-1]
    return text.lower()


def status_counts(summary: dict | None) -> dict[str, int]:
    out: dict[str, int] = {}
    for k, v in ((summary or {}).get("status_counts") or {}).items():
        if isinstance(v, (int, float)):
            key = norm_status(k)
            out[key] = out.get(key, 0) + int(v)
    return out


def call_status(call: dict) -> str:
    """The server-derived status, or derived here the same way when a source lacks it."""
    weave = (call.get("summary") or {}).get("weave") or {}
    if weave.get("status"):
        return norm_status(weave["status"])
    if call.get("exception"):
        return "error"
    if not call.get("ended_at"):
        return "running"
    return "descendant_error" if status_counts(call.get("summary")).get("error", 0) > 0 else "success"


def tokens(summary: dict | None) -> dict:
    """Token totals over `summary.usage` (all models): input, output, total, requests, models."""
    usage = (summary or {}).get("usage") or {}
    tin = tout = tot = req = 0
    models = []
    for model, u in usage.items():
        if not isinstance(u, dict):
            continue
        models.append(model)
        i = _n(u.get("input_tokens", u.get("prompt_tokens")))
        o = _n(u.get("output_tokens", u.get("completion_tokens")))
        t = _n(u.get("total_tokens"))
        tin, tout, tot, req = tin + i, tout + o, tot + (t or i + o), req + _n(u.get("requests"))
    if not models:
        return {}
    return {"input": tin, "output": tout, "total": tot, "requests": req, "models": sorted(models)}


def cost(summary: dict | None) -> float | None:
    """Total cost from `summary.weave.costs` (present only when the source computes costs)."""
    costs = ((summary or {}).get("weave") or {}).get("costs")
    if not isinstance(costs, dict) or not costs:
        return None
    total = 0.0
    for c in costs.values():
        if isinstance(c, dict):
            total += float(c.get("prompt_tokens_total_cost") or 0) + float(c.get("completion_tokens_total_cost") or 0)
    return total


def _n(v) -> int:
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else 0


def flatten_scores(scores: Any, prefix: str = "") -> dict[str, Any]:
    """{"exact": {"correct": True}, "len": 0.5} -> {"exact.correct": True, "len": 0.5}."""
    out: dict[str, Any] = {}
    if isinstance(scores, dict):
        if "_type" in scores or "_class_name" in scores:  # a serialised object: keep its fields
            scores = {k: v for k, v in scores.items() if not k.startswith("_")}
        for k, v in scores.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, dict):
                out.update(flatten_scores(v, key))
            elif isinstance(v, (bool, int, float, str)) or v is None:
                out[key] = v
    elif prefix:
        out[prefix] = scores
    return out


def scorer_aggregates(output: Any) -> dict[str, dict]:
    """The evaluate call's output -> {scorer.key: {true_fraction, true_count} | {mean}}."""
    out: dict[str, dict] = {}
    if not isinstance(output, dict):
        return out
    for scorer, agg in output.items():
        if scorer in NOT_SCORERS:
            continue
        _collect(agg, scorer, out)
    return out


def _collect(node: Any, path: str, out: dict) -> None:
    if not isinstance(node, dict):
        return
    leaf = {k: node[k] for k in ("true_fraction", "true_count", "mean") if isinstance(node.get(k), (int, float))}
    if leaf:
        out[path] = leaf
        return
    for k, v in node.items():
        _collect(v, f"{path}.{k}", out)


def parse_exception(exc: Any) -> dict:
    """weave's exception JSON string -> {type, message's first line, where (innermost function)}."""
    if not exc:
        return {}
    data = None
    if isinstance(exc, str):
        try:
            data = json.loads(exc)
        except ValueError:
            data = None
    elif isinstance(exc, dict):
        data = exc
    if not isinstance(data, dict):
        text = str(exc).strip()
        return {"type": "Exception", "line": (text.splitlines() or [""])[0][:200]}
    msg = str(data.get("message") or "").strip()
    out = {"type": str(data.get("type") or "Exception"), "line": (msg.splitlines() or [""])[0][:200]}
    tb = data.get("traceback")
    if isinstance(tb, list) and tb and isinstance(tb[-1], dict) and tb[-1].get("function_name"):
        out["where"] = tb[-1]["function_name"]
    return out


def row_passed(flat_scores: dict, failed: bool) -> bool | None:
    """A row passes when it did not fail and every boolean score is True; None with no boolean score."""
    if failed:
        return False
    bools = [v for v in flat_scores.values() if isinstance(v, bool)]
    return all(bools) if bools else None


def numeric_mean(flat_scores: dict) -> float | None:
    vals = [float(v) for v in flat_scores.values() if isinstance(v, (int, float)) and math.isfinite(float(v))]
    return sum(vals) / len(vals) if vals else None


def row_score(r: dict) -> float | None:
    """One row's score for best / worst: failed rows lowest; else the share of boolean scores that
    are true, or the mean numeric score when there is no boolean one."""
    if r.get("failed"):
        return -1.0
    vals = r.get("scores") or {}
    bools = [v for v in vals.values() if isinstance(v, bool)]
    if bools:
        return sum(bools) / len(bools)
    return numeric_mean(vals)


def per_scorer(rows: list[dict]) -> dict[str, dict]:
    """Aggregates of flattened per-row scores over rows that have them (failed rows have none)."""
    acc: dict[str, list] = {}
    for r in rows:
        for k, v in (r.get("scores") or {}).items():
            acc.setdefault(k, []).append(v)
    out = {}
    for k, vals in acc.items():
        bools = [v for v in vals if isinstance(v, bool)]
        nums = [float(v) for v in vals if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if bools:
            out[k] = {"n": len(bools), "true": sum(bools), "true_fraction": sum(bools) / len(bools)}
        elif nums:
            out[k] = {"n": len(nums), "mean": sum(nums) / len(nums), "min": min(nums), "max": max(nums)}
    return out


def error_histogram(failed: list[dict], examples: int = 3, groups: int = 8) -> list[dict]:
    """[{type, line, where, count, rows: [example ids]}] for failed rows, commonest first; at most
    `groups` groups, the rest summed into one {"other": n rows, "groups": m} entry."""
    by: dict[tuple, dict] = {}
    for r in failed:
        e = r.get("error") or {}
        key = (e.get("type"), e.get("line"), e.get("where"))
        g = by.setdefault(key, {"type": key[0], "line": key[1], "where": key[2], "count": 0, "rows": []})
        g["count"] += 1
        if len(g["rows"]) < examples:
            g["rows"].append(r.get("row"))
    ranked = sorted(by.values(), key=lambda g: -g["count"])
    if len(ranked) > groups:
        rest = ranked[groups - 1:]
        ranked = ranked[:groups - 1] + [{"other": sum(g["count"] for g in rest), "groups": len(rest),
                                         "types": sorted({str(g["type"]) for g in rest})[:5]}]
    return ranked


def rate(num: int, den: int) -> float | None:
    return num / den if den else None


def per_success(value: float | None, successes: int) -> float | str | None:
    """Efficiency per successful row; zero successes is stated, never a division crash."""
    if value is None:
        return None
    if successes <= 0:
        return "no successful rows"
    return value / successes


def compare(evals: list[dict], max_rows: int = 30) -> dict:
    """Rows of several evaluations over the same dataset, matched by row key, every trial kept.

    `evals`: [{"id", "label", "rows": [{"row", "trial", "passed", "scores", "failed"}]}]. A row is
    matched when every evaluation has it; all its trials count. Solve rate = passed trials / trials
    of the matched rows (never above 1); per row, `passes` = "k/n" trials passed per evaluation.
    """
    labels = [e["label"] for e in evals]
    by_row: dict[str, dict[str, list]] = {}
    order: list[str] = []
    for e in evals:
        for r in e["rows"]:
            if r["row"] not in by_row:
                by_row[r["row"]] = {}
                order.append(r["row"])
            by_row[r["row"]].setdefault(e["label"], []).append(r)
    common = [k for k in order if len(by_row[k]) == len(evals)]
    all_fail, only_one, rows_out = [], Counter(), []
    only_rows: dict[str, list] = {}
    for k in common:
        cells = by_row[k]
        known = [lab for lab in labels if any(r["passed"] is not None for r in cells[lab])]
        solved = [lab for lab in known if any(r["passed"] is True for r in cells[lab])]
        if known and not solved:
            all_fail.append(k)
        if len(solved) == 1 and len(evals) > 1:
            only_one[solved[0]] += 1
            only_rows.setdefault(solved[0], []).append(k)
        scored = {}
        for lab in labels:
            vals = [v for v in (row_score(r) for r in cells[lab]) if v is not None]
            if vals:
                scored[lab] = sum(vals) / len(vals)
        passes = {lab: f"{sum(r['passed'] is True for r in cells[lab])}/{len(cells[lab])}" for lab in labels}
        row: dict[str, Any] = {"row": k, "passes": passes}
        if len(set(scored.values())) > 1:
            top, low = max(scored.values()), min(scored.values())
            row["best"] = [lab for lab, v in scored.items() if v == top]
            row["worst"] = [lab for lab, v in scored.items() if v == low]
        if len(set(passes.values())) > 1 or "best" in row:
            rows_out.append(row)
    common_set = set(common)
    trials = {e["label"]: [r for r in e["rows"] if r["row"] in common_set] for e in evals}
    out: dict[str, Any] = {
        "rows_matched": len(common),
        "rows_unmatched": len(order) - len(common),
        "trials_matched": {lab: len(t) for lab, t in trials.items()},
        "solve_rate": {lab: rate(sum(r["passed"] is True for r in t), len(t)) for lab, t in trials.items()},
        "all_fail": {"count": len(all_fail), "rows": all_fail[:max_rows]},
        "only_one_solves": {lab: {"count": only_one[lab], "rows": only_rows[lab][:max_rows]} for lab in only_one},
        "disagreements": {"total": len(rows_out), "truncated": len(rows_out) > max_rows, "rows": rows_out[:max_rows]},
        "score_means": _score_deltas(evals, labels),
    }
    return out


def _score_deltas(evals: list[dict], labels: list[str]) -> dict:
    base = labels[0]
    means: dict[str, dict[str, float]] = {}
    for e in evals:
        for k, agg in per_scorer([r for r in e["rows"] if not r.get("failed")]).items():
            means.setdefault(k, {})[e["label"]] = agg.get("true_fraction", agg.get("mean"))
    out = {}
    for k, per in means.items():
        entry: dict[str, Any] = dict(per)
        if base in per and len(per) > 1:
            entry["delta_vs_" + base] = {lab: v - per[base] for lab, v in per.items() if lab != base}
        out[k] = entry
    return out


def model_labels(models: list[dict]) -> list[str]:
    """Labels telling models apart: the class (or op) name, plus the attributes whose values differ
    among the models of that class: three QAModel(model_name=...) read 'QAModel(model_name=a)' ..."""
    bases = [str(m.get("op") or m.get("class") or "?") for m in models]
    out = []
    for m, b in zip(models, bases):
        same = [x for x, y in zip(models, bases) if y == b]
        attrs = m.get("attrs") or {}
        keys = [k for k in attrs
                if len({json.dumps((x.get("attrs") or {}).get(k), default=str) for x in same}) > 1]
        out.append(f"{b}({', '.join(f'{k}={attrs[k]}' for k in keys)})" if keys else b)
    return out
