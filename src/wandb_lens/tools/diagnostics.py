"""Diagnostics tools: curve_features, diagnose_run, compare_runs. Computation lives in analysis/."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..analysis import keys as K
from ..analysis.compare import at_common_steps, differing_config, rank, tied
from ..analysis.curves import analyse
from ..analysis.diagnose import diagnose
from ..analysis.flatten import flatten, is_scalar, short
from ..analysis.gradients import grad_norm_features, layer_table
from ..analysis.schedule import lr_features
from ..errors import LensError
from . import _base
from .logs import error_quote
from .run_data import RunData, direction_of, pick_keys

MAX_METRICS = 8
MAX_RUNS = 50
SHORTLIST = 6
_LR_KEEP = ("n", "first", "last", "min", "min_step", "max", "max_step", "nan_inf", "first_nan_step", "note")


def _features(rd: RunData, metric: str, step_key: str | None, direction: str) -> tuple[dict, dict]:
    """(features of one metric, its step-axis choice)."""
    if metric.endswith(("/*", "/")) or rd.is_histogram(metric):
        prefix = metric.rstrip("*")
        hk = [metric] if rd.is_histogram(metric) else rd.histogram_keys(prefix)
        if not hk:
            raise LensError(f"No histogram keys under {prefix!r} in run {rd.info.ref} "
                            f"(histogram keys: {len(rd.histogram_keys())}).")
        return {"histograms": layer_table(rd.layers(hk))}, {"key": "_step", "why": "histograms are read on _step"}
    rd.check_metric(metric)
    ax = rd.axis(metric, step_key)
    x, y = rd.series(metric, ax["key"])
    role = K.role_of(metric)
    # an explicit direction wins, then the name (loss -> min, accuracy -> max), then the data
    f = dict(analyse(x, y, direction_of(metric, direction)).features)
    if role == "lr":
        f = {k: v for k, v in f.items() if k in _LR_KEEP}
        f["schedule"] = lr_features(x, y)
    elif role == "grad_norm":
        f["grad_rule"] = grad_norm_features(x, y)
    if f["n"] == 0:
        f["note"] = f"{metric!r} has no points on step axis {ax['key']!r}"
    return f, ax


def _diagnose(rd: RunData, step_key: str | None, train_key: str | None, val_key: str | None) -> dict:
    keys, why = pick_keys(rd, train_key, val_key)
    tk, vk = keys["train"], keys.get("val")
    ax = rd.axis(tk, step_key)
    notes = [ax["note"]] if ax.get("note") else []
    x, y = rd.series(tk, ax["key"])
    if np.isfinite(y).sum() < 5 and not np.any(~np.isfinite(y)):
        raise LensError(f"{tk!r} has {int(np.isfinite(y).sum())} finite point(s) on {ax['key']!r} in run "
                        f"{rd.info.ref}: at least 5 are needed to judge a curve.")
    val_xy = None
    if vk:
        vx = rd.xs(vk, ax["key"])
        v_axis = ax["key"]
        if vx is None or vx.size < 4:
            v_axis = rd.axis(vk, None)["key"]
            if v_axis != ax["key"]:
                notes.append(f"{vk!r} is not logged with {ax['key']!r}; read on {v_axis!r}")
        val_xy = rd.series(vk, v_axis)

    def on_train_axis(key: str) -> tuple[np.ndarray, np.ndarray]:
        """LR / grad norm on the train metric's x-axis when logged with it (their steps are compared)."""
        own_x = rd.xs(key, "_step")
        x_here = rd.xs(key, ax["key"])
        use = ax["key"] if x_here is not None and own_x is not None and x_here.size >= 0.8 * own_x.size \
            else rd.axis(key, step_key)["key"]
        return rd.series(key, use)

    lr_xy = on_train_axis(keys["lr"]) if keys.get("lr") else None
    grad_xy = on_train_axis(keys["grad_norm"]) if keys.get("grad_norm") else None
    cfg = {k: v for k, v in flatten(rd.info.config).items() if is_scalar(v)}
    res = diagnose((x, y), direction_of(tk, "auto"), keys, why, val_xy, direction_of(vk, "auto") if vk else "auto",
                   lr_xy, grad_xy, rl=K.is_return(tk) and not train_key, config=cfg)
    notes += res.pop("notes")
    if res.pop("_val_judged") and vk:
        res["alignment"] = f"{tk} read at the {vk} steps by interpolation of its smoothed curve on {ax['key']!r}"
    st = rd.state_note()
    if st:
        notes.append(st)
    out: dict[str, Any] = {"run": rd.info.ref, "name": rd.name, "state": rd.info.state, "verdict": res.pop("verdict"),
                           "evidence": res.pop("evidence"), "next_actions": res.pop("next_actions"),
                           "step_key": ax["key"], "step_key_why": ax["why"], **res}
    if notes:
        out["note"] = "; ".join(notes)
    return out


def register(server, app) -> None:
    def curve_features(run: str, metrics: list[str] | None = None, step_key: str | None = None,
                       direction: str = "auto") -> dict:
        rd = RunData(app, run)
        direction_of("x", direction)
        asked = list(dict.fromkeys(metrics or []))
        names = asked or K.main_metrics(rd.numeric_keys())
        if not asked and rd.histogram_keys("gradients/"):
            names.append("gradients/*")
        if not names:
            raise LensError(f"No metrics to describe in run {rd.info.ref}; pass metrics. Numeric keys: "
                            + ", ".join(sorted(rd.numeric_keys())[:15]))
        out: dict[str, Any] = {"run": rd.info.ref, "name": rd.name, "state": rd.info.state, "metrics": {}}
        axes: dict[str, dict] = {}
        for m in names[:MAX_METRICS]:
            f, ax = _features(rd, m, step_key, direction)
            out["metrics"][m] = f
            axes[m] = ax
        if len(names) > MAX_METRICS:
            out["metrics_total"] = len(names)
            out["note"] = f"first {MAX_METRICS} of {len(names)} metrics; ask for the rest by name"
        keys_used = {ax["key"] for ax in axes.values()}
        main = next(iter(axes.values()))
        out["step_key"] = main["key"] if len(keys_used) == 1 else {m: ax["key"] for m, ax in axes.items()}
        out["step_key_why"] = main["why"]
        notes = sorted({ax["note"] for ax in axes.values() if ax.get("note")})
        if notes:
            out["step_key_note"] = "; ".join(notes)
        st = rd.state_note()
        if st:
            out["state_note"] = st
        return out

    def diagnose_run(run: str, step_key: str | None = None, train_key: str | None = None,
                     val_key: str | None = None) -> dict:
        rd = RunData(app, run)
        out = _diagnose(rd, step_key, train_key, val_key)
        out.update(error_quote(app, rd.info) or {})  # a failed / crashed run: its console's error line
        return out

    def compare_runs(runs: list[str], metric: str | None = None, step_key: str | None = None,
                     direction: str = "auto", group_by: str | None = None) -> dict:
        refs = list(dict.fromkeys(runs or []))
        if len(refs) < 2:
            raise LensError("compare_runs needs at least 2 distinct runs.")
        if len(refs) > MAX_RUNS:
            raise LensError(f"compare_runs takes at most {MAX_RUNS} runs (got {len(refs)}): narrow them with "
                            "query_runs (filters / order) first.")
        rds = [RunData(app, r) for r in refs]
        notes = []
        projects = sorted({rd.info.project for rd in rds})
        if len(projects) > 1:
            notes.append(f"runs come from {len(projects)} projects ({', '.join(projects[:5])}): compared anyway")
        roles = ("train", "val", "lr", "grad_norm", "accuracy", "throughput")
        keyed: dict[str, str | None]
        if metric is None or (metric in roles and not any(metric in rd.hist.columns for rd in rds)):
            found = {rd.info.ref: K.find_keys(rd.numeric_keys()) for rd in rds}
            role = metric or ("val" if sum(bool(f.get("val")) for f in found.values()) * 2 >= len(rds) else "train")
            keyed = {ref: (f.get(role) if isinstance(f.get(role), str) else None) for ref, f in found.items()}
            if not any(keyed.values()):
                raise LensError(f"None of the runs logs a {role} metric that wandb-lens recognises; pass metric.")
            names = sorted({k for k in keyed.values() if k})
            metric = names[0] if len(names) == 1 else role
            why = f"each run's own {role} key" if len(names) > 1 else f"the runs' {role} key"
        else:
            keyed = {rd.info.ref: metric for rd in rds}
            why = "asked for"
        d = direction_of(next(k for k in keyed.values() if k), direction)
        label = {rd.info.ref: f"{rd.name} ({rd.info.id})" if rd.name != rd.info.id else rd.info.id for rd in rds}
        feats, curves, rows, missing, axes = {}, {}, {}, [], set()
        for rd in rds:
            lab = label[rd.info.ref]
            key = keyed[rd.info.ref]
            if key is None or key not in rd.hist.columns:
                missing.append(lab)
                continue
            rd.check_metric(key)
            ax = rd.axis(key, step_key)
            axes.add(ax["key"])
            if ax.get("note"):
                notes.append(f"{lab}: {ax['note']}")
            x, y = rd.series(key, ax["key"])
            c = analyse(x, y, d)
            feats[lab], curves[lab] = c.features, c
            try:
                verdict = _diagnose(rd, step_key, None, None)["verdict"]
            except (LensError, ValueError, IndexError, FloatingPointError):  # a run it cannot judge: no verdict
                verdict = None
            F = c.features
            rows[lab] = {"run": lab, "final_mean": F.get("final_mean"), "final_std": F.get("final_std"),
                         "best": F.get("min") if (F.get("direction") or d) != "max" else F.get("max"),
                         "best_step": F.get("min_step") if (F.get("direction") or d) != "max" else F.get("max_step"),
                         "tail_slope": F.get("tail_slope"), "smoothness": F.get("smoothness"),
                         "spikes": F.get("spike_count"), "nan_inf": F.get("nan_inf") or None, "verdict": verdict}
            if rd.info.state in ("failed", "crashed"):
                rows[lab]["state"] = rd.info.state
        if not feats:
            raise LensError(f"None of the runs logs {metric!r}.")
        if d == "auto":
            d = next(iter(feats.values())).get("direction", "min")
        last = {lab for lab, row in rows.items() if row["verdict"] == "diverged" or row.get("state") == "failed"}
        order = rank(feats, d, last)
        table = []
        for i, lab in enumerate(order):
            row = rows[lab]
            if i + 1 < len(order) and tied(feats[lab], feats[order[i + 1]]):
                row["tied_with_next"] = True
            table.append(row)
        configs = {label[rd.info.ref]: {k: v for k, v in flatten(rd.info.config).items()
                                        if is_scalar(v) and not k.startswith("_")} for rd in rds}
        diff, n_diff = differing_config(configs, limit=20)
        for row in table:
            cfg = {k: short(diff[k][row["run"]]) for k in list(diff)[:4] if diff[k].get(row["run"]) is not None}
            if cfg:
                row["config"] = cfg
        used = {label[ref]: k for ref, k in keyed.items() if k}
        out: dict[str, Any] = {"metric": metric, "metric_why": why, "direction": d,
                               "step_key": axes.pop() if len(axes) == 1 else sorted(axes),
                               "runs": len(rds), "ranking": table,
                               "tie_rule": "final-10% means within 2x the larger std/noise tie, smoother first; "
                                           "diverged/failed last",
                               "config_differs": list(diff)}
        if len(set(used.values())) > 1:  # each run's own key, on its row
            for row in table:
                row["key"] = used.get(row["run"])
        if n_diff > len(diff):
            out["config_differs_total"] = n_diff
        short_list = order[:SHORTLIST]
        common = at_common_steps({lab: (curves[lab].px, curves[lab].py) for lab in short_list})
        if common:
            common["method"] += " of each run's smoothed curve"
            if len(order) > SHORTLIST:
                common["shown"] = f"top {SHORTLIST} of {len(order)}"
            out["at_common_steps"] = common
        if group_by:
            out["groups"] = _groups(group_by, rds, label, feats, configs, d)
        if missing:
            out["missing_metric"] = {"count": len(missing), "runs": missing[:10]}
        if notes:
            out["note"] = "; ".join(notes)[:600]
        return out

    _base.add(server, curve_features,
              "Shape of training curves: first/last/min/max with steps, final-10% mean/std, noise, robust spikes, "
              "slopes per step, plateaus, divergence start, NaN; LR schedule (warmup, decay shape, floor); grad-norm "
              "rules; per-layer histogram stats ('gradients/*'). Default metrics: loss, val, lr, grad norm.")
    _base.add(server, diagnose_run,
              "Verdict for one run: healthy|unstable|overfit|plateaued|diverged|converged, with evidence tied to step "
              "ranges and concrete next actions. Train/val/lr/grad-norm keys are found automatically.")
    _base.add(server, compare_runs,
              "Rank 2-50 runs on one metric (a key, or a role train|val|lr|grad_norm matched per run; default val): final-10% mean, best and step, tail "
              "slope, spikes, verdict; noise-aware ties; values at common steps; config keys that differ. "
              "group_by='config.seed' averages repeated seeds.")


def _groups(group_by: str, rds, label, feats, configs, d) -> dict:
    key = group_by[len("config."):] if group_by.startswith("config.") else group_by
    seed_like = "seed" in key.lower()
    groups: dict[str, list[str]] = {}
    diff, _ = differing_config(configs, limit=1000)
    for rd in rds:
        lab = label[rd.info.ref]
        if lab not in feats:
            continue
        cfg = configs[lab]
        if seed_like:
            gid = ", ".join(f"{k}={short(cfg.get(k))}" for k in diff if k != key) or "all"
        elif key in ("group", "run.group"):
            gid = rd.info.group or "(none)"
        else:
            if key not in cfg and key not in diff:
                raise LensError(f"group_by {group_by!r}: no run has config key {key!r}.")
            gid = f"{key}={short(cfg.get(key))}"
        groups.setdefault(gid, []).append(lab)
    sign = -1.0 if d == "max" else 1.0
    out = []
    for gid, labs in groups.items():
        vals = np.array([feats[lab]["final_mean"] for lab in labs if feats[lab].get("final_mean") is not None],
                        dtype=np.float64)
        vals = vals[np.isfinite(vals)]
        row = {"group": gid, "runs": len(labs), "mean": float(vals.mean()) if vals.size else None,
               "std": float(vals.std(ddof=1)) if vals.size > 1 else None}
        if vals.size:
            finite = [lab for lab in labs if feats[lab].get("final_mean") is not None
                      and np.isfinite(feats[lab]["final_mean"])]
            row["best_run"] = min(finite, key=lambda lab: sign * float(feats[lab]["final_mean"]))
        out.append(row)
    out.sort(key=lambda r: (r["mean"] is None, sign * (r["mean"] or 0.0)))
    how = (f"runs sharing every other differing config key, averaged over {key}" if seed_like
           else f"runs grouped by {key}")
    return {"by": how, "rows": out[:20], "total": len(out), "note": "a gap within 2x the larger std is noise"}
