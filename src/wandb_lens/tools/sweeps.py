"""sweep_analysis: a group or filtered set of runs as one experiment: best runs, the parameters that
varied, and parameter importance for a metric (analysis/importance.py), with a PNG of the metric
against the most important parameters."""

from __future__ import annotations

from collections import Counter

import numpy as np

from .. import identity
from ..analysis import keys as K
from ..analysis import run_filters as rf
from ..analysis.flatten import flatten, short
from ..analysis.importance import FEW_RUNS, importance_table
from ..compact import dumps, rnd
from ..errors import LensError, suggest
from . import _base

MAX_RUNS = 2000
MAX_PARAMS = 30
SHOWN_PARAMS = 8


def _runs(app, project, group, filters, sweep=None) -> tuple[list, str]:
    filt = dict(filters or {})
    for field, value in (("group", group), ("sweep", sweep)):
        if value is not None:
            filt = {"$and": [filt, {field: value}]} if filt else {field: value}
    try:
        rf.check(filt)
    except rf.FilterError as exc:
        raise LensError(str(exc)) from None
    if hasattr(app.runs, "query"):  # W&B cloud: the server filters
        total, runs, _ = app.runs.query(project, filt, None, MAX_RUNS, 0)
        note = f"newest {len(runs)} of {total} runs" if total > len(runs) else ""
    else:
        from .runs import run_doc

        runs = app.runs.list_runs()
        projects = sorted({r.project for r in runs})
        if project is not None and project not in projects:
            raise LensError(suggest("project", project, projects))
        runs = [r for r in runs if project is None or r.project == project]
        pool = runs
        until = rf.deadline()
        try:
            runs = [r for r in runs if rf.matches(run_doc(r), filt, until)]
        except rf.FilterError as exc:
            raise LensError(str(exc)) from None
        if group is not None and not runs:
            raise LensError(suggest("group", group, {r.group for r in pool if r.group}))
        if sweep is not None and not runs:
            raise LensError(_no_sweep(sweep, pool))
        note = ""
    if not runs:
        raise LensError("No runs match" + (f" in project {project!r}" if project else "") + ".")
    return runs, note


def _no_sweep(sweep: str, pool) -> str:
    ids = {r.sweep_id for r in pool if r.sweep_id}
    if not ids:
        return (f"No sweep {sweep!r}: no run here records a sweep id (runs started by `wandb agent` do; "
                "folders of wandb < 0.10 do not). Use group or filters.")
    return suggest("sweep", sweep, ids)


def _metric(runs, metric: str | None) -> str:
    if metric:
        return metric
    for role in ("val", "train"):
        keys = Counter(k for r in runs if (k := rf.summary_roles(r.summary).get(role)))
        if keys:
            return keys.most_common(1)[0][0]
    raise LensError("No validation or loss key in these runs' summaries: pass metric.")


def _params(configs: list[dict]) -> dict[str, list]:
    """Scalar config keys set in at least half the runs that take >= 2 values, most varied first."""
    counts: Counter = Counter()
    for c in configs:
        counts.update(k for k, v in c.items() if not isinstance(v, (dict, list)))
    out = {}
    for k, n in counts.items():
        if n * 2 < len(configs) or k.startswith("_"):
            continue
        vals = [c.get(k) for c in configs]
        if len({repr(v) for v in vals}) >= 2:
            out[k] = vals
    ranked = sorted(out, key=lambda k: -len({repr(v) for v in out[k]}))
    return {k: out[k] for k in sorted(ranked[:MAX_PARAMS])}


def register(server, app) -> None:
    from mcp.server.mcpserver import Image
    from mcp.types import ResourceLink, TextContent

    from ..plotting.cache import Plot, plot_id

    def sweep_analysis(project: str | None = None, sweep: str | None = None, group: str | None = None,
                       filters: dict | None = None, metric: str | None = None, goal: str = "auto") -> list:
        if goal not in ("auto", "min", "max"):
            raise LensError(f"goal must be auto, min or max (got {goal!r}).")
        info = None
        if sweep is not None:
            if not isinstance(sweep, str) or not sweep.strip() or len(sweep) > 200 or "\x00" in sweep:
                raise LensError("sweep must be a sweep id such as 'q7lrwd2x' (or 'project/id').")
            if "/" in sweep:
                project, sweep = sweep.rsplit("/", 1)
                project = project.split("/")[-1]
            if hasattr(app.runs, "sweep"):  # W&B cloud: the sweep's own record (config, metric, state)
                info = app.runs.sweep(project, sweep)
        runs, note = _runs(app, project, group, filters, sweep)
        sweep_metric = (info or {}).get("metric") or {}
        key = _metric(runs, metric or sweep_metric.get("name"))
        if goal == "auto" and key == sweep_metric.get("name") and sweep_metric.get("goal") in ("minimize", "maximize"):
            goal = sweep_metric["goal"][:3]
        vals = np.asarray([_num(flatten(r.summary).get(key)) for r in runs], dtype=np.float64)
        have = np.isfinite(vals)
        if have.sum() < 2:
            pool = Counter(k for r in runs for k, v in flatten(r.summary).items() if _num(v) is not None)
            raise LensError(suggest("metric", key, pool, where=f" in the summaries of these {len(runs)} runs")
                            if not have.any() else f"Only {int(have.sum())} run(s) have {key!r}: nothing to compare.")
        sign = goal if goal != "auto" else (K.direction_for(key) or "min")
        used = [r for r, h in zip(runs, have) if h]
        y = vals[have]
        configs = [flatten(r.config) for r in used]
        params = _params(configs)
        table = importance_table(params, y) if params else []
        order = np.argsort(y if sign == "min" else -y, kind="stable")
        top = [p["param"] for p in table[:3]]
        best = [[used[i].name or used[i].id, rnd(y[i]), {p: short(configs[i].get(p)) for p in top}] for i in order[:5]]
        out = {"runs": len(runs), "runs_with_metric": int(have.sum()), "metric": key, "goal": sign,
               "best": {"cols": ["run", key, "top params"], "rows": best},
               "params": {"cols": ["param", "importance", "correlation", "rank_corr", "values"],
                          "rows": [[p["param"], rnd(p["importance"], 3), _r(p["correlation"]), _r(p["rank_corr"]),
                                    len({repr(v) for v in params[p["param"]]})] for p in table[:SHOWN_PARAMS]],
                          "total": len(table)},
               "how": "importance: random-forest impurity decrease (W&B's panel); correlation: Pearson (W&B's); "
                      "rank_corr: Spearman"}
        if group:
            out["group"] = group
        if sweep is not None:
            out["sweep"] = info or {"id": sweep}
        if not table:
            out["params"] = "none: no config key takes two or more values across these runs"
        if have.sum() < FEW_RUNS:
            out["warning"] = (f"only {int(have.sum())} runs: importances and correlations are noisy; "
                              f"trust them from ~{FEW_RUNS}+ runs")
        if note:
            out["note"] = note
        if not top:
            return [TextContent(type="text", text=dumps(out))]
        sig = sorted((r.ref, r.history_rows, r.state) for r in used)
        owner = identity.current.get()  # a plot is readable by the identity that drew it (plotting/cache.py)
        pid = plot_id("sweep_analysis", {"metric": key, "params": top}, sig, owner)
        cache = server.plot_cache
        plot = cache.get(pid, owner)
        if plot is None:
            png, w, h = _draw(key, y, {p: params[p] for p in top}, [r.name or r.id for r in used], sign)
            plot = cache.put(Plot(pid, png, {}, w, h, owner))
        out["plot"] = plot.uri
        return [Image(data=plot.png, format="png").to_image_content(), TextContent(type="text", text=dumps(out)),
                ResourceLink(type="resource_link", name=f"{plot.id}.png", uri=plot.uri, mime_type="image/png",
                             size=len(plot.png))]

    _base.add(server, sweep_analysis,
              "A sweep (id), group or filtered runs as one experiment: best runs, varied config keys, parameter importance for a "
              "summary metric (random forest + correlation, as W&B's panel), run count; PNG of metric vs top params.")


def _num(v) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v)


def _r(v):
    return None if v is None else rnd(v, 2)


def _draw(metric: str, y: np.ndarray, params: dict[str, list], names: list[str], goal: str):
    from ..analysis.importance import encode
    from ..plotting.render import fmt, new_figure, to_png

    n = len(params)
    fig = new_figure(360 * n + 40, 340)
    best = int(np.argmin(y) if goal == "min" else np.argmax(y))
    for i, (p, vals) in enumerate(params.items()):
        ax = fig.add_subplot(1, n, i + 1)
        x, cat = encode(vals, y)
        ax.scatter(x, y, s=18, color="#1f77b4", alpha=0.75)
        ax.scatter([x[best]], [y[best]], s=70, marker="D", color="#d62728", zorder=3, label=f"best: {names[best]}")
        if cat:
            labels = {}
            for xv, v in zip(x, vals):
                labels[xv] = str(v)[:10]
            ax.set_xticks(sorted(labels), [labels[k] for k in sorted(labels)], fontsize=8)
        else:
            pos = x[np.isfinite(x) & (x > 0)]
            if len(pos) == np.isfinite(x).sum() and len(pos) and pos.max() / pos.min() > 100:
                ax.set_xscale("log")
        ax.set_xlabel(p)
        if i == 0:
            ax.set_ylabel(metric)
            ax.legend(fontsize=8, loc="best")
        ax.grid(alpha=0.3)
        ax.set_title(f"{metric} vs {p}", fontsize=9)
    fig.suptitle(f"{len(y)} runs; best {metric} = {fmt(y[best])} ({goal})", fontsize=10)
    fig.tight_layout()
    png, w, h = to_png(fig)
    return png, w, h
