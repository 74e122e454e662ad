"""plot_comparison: one metric of several runs overlaid, ranked as compare_runs ranks them."""

from __future__ import annotations

from typing import Any

from ..errors import LensError, suggest
from .plots import (MAX_COMPARE, MAX_OVERLAY, _features, _line, _numbers, _range_text, clipped_facts,
                    in_window, stated_range)


def resolve_runs(app, runs) -> list:
    if not isinstance(runs, list) or not runs:
        raise LensError("runs must be a non-empty list of run references (run_id or project/run_id).")
    if len(runs) > MAX_COMPARE:
        raise LensError(f"{len(runs)} runs asked; plot_comparison takes at most {MAX_COMPARE}. Narrow the list "
                        "with query_runs first.")
    infos, seen, errors = [], set(), []
    for ref in runs:
        try:
            info = app.runs.get_run(ref)
        except LensError as exc:
            errors.append(str(exc))
            continue
        if info.ref not in seen:
            seen.add(info.ref)
            infos.append(info)
    if errors:
        raise LensError(" ".join(errors[:3]) + (f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""))
    return infos


def highlight_ref(app, infos, highlight):
    if highlight is None:
        return None
    info = app.runs.get_run(highlight)
    if info.ref not in {i.ref for i in infos}:
        raise LensError(f"highlight {highlight!r} is not one of the runs asked for.")
    return info.ref


def _direction(metric: str, feats: dict) -> str:
    from ..analysis.keys import direction_for

    named = direction_for(metric)
    if named:
        return named
    votes = [f.get("direction") for f in feats.values()]
    return "max" if votes.count("max") > votes.count("min") else "min"


def _label(info, taken: set) -> str:
    label = info.name or info.id
    if label in taken:
        label = f"{label} ({info.id})"
    taken.add(label)
    return label


ROLES = ("train", "val", "lr", "grad_norm", "accuracy", "throughput")


def comparison(app, infos, metric, step_key, hl, win=None, smoothing=0.0):
    from ..analysis.compare import rank
    from ..analysis.keys import find_keys
    from ..plotting.render import Panel, fmt, grid
    from .run_data import RunData

    rds = {i.ref: RunData(app, info=i) for i in infos}
    by_role = metric in ROLES and not any(metric in rd.hist.columns for rd in rds.values())
    data, missing = {}, []
    for info in infos:
        rd = rds[info.ref]
        key = find_keys(rd.numeric_keys()).get(metric) if by_role else metric
        col = rd.hist.columns.get(key) if key else None
        if col is None or (step_key is not None and step_key != "_step" and step_key not in rd.hist.columns):
            missing.append(info.name or info.id)
            continue
        rd.check_metric(key, numeric=True)
        if step_key is not None and step_key != "_step":
            rd.check_metric(step_key, "step_key", numeric=True)  # a text or histogram column is no axis
        data[info.ref] = (info, rd, key)
    if not data:
        pool = sorted({k for rd in list(rds.values())[:10] for k in rd.numeric_keys()})
        what = f"{metric!r}" + (f" with step key {step_key!r}" if step_key else "")
        raise LensError(f"None of the {len(infos)} runs logs {what}. " + suggest("metric", metric, pool))
    axis_note = ""
    if step_key is None:
        chosen = {ref: rd.axis(k, None)["key"] for ref, (i, rd, k) in data.items()}
        keys = set(chosen.values())
        step_key = keys.pop() if len(keys) == 1 else "_step"
        if len(set(chosen.values())) > 1:
            axis_note = f"step keys differ ({', '.join(sorted(set(chosen.values())))}): drawn on _step"
    series, feats = {}, {}
    for ref, (info, rd, key) in data.items():
        x, y, _ = in_window(*rd.series(key, step_key), win)
        series[ref] = (x, y)
        feats[ref] = _features(x, y, key) if y.size else {"n": 0}
    direction = _direction(next(iter(data.values()))[2], feats)
    order = rank(feats, direction)
    order += [r for r in data if r not in order]
    shown = order[:MAX_OVERLAY]
    if hl and hl in data and hl not in shown:
        shown = shown[: MAX_OVERLAY - 1] + [hl]
    left_out = [data[r][0].name or data[r][0].id for r in order if r not in shown]
    mixed = len({k for _, _, k in data.values()}) > 1
    lines, rows, taken, by_label = [], [], set(), {}
    for ref in shown:
        info, _, key = data[ref]
        x, y = series[ref]
        f = feats[ref]
        label = _label(info, taken) + (f" [{key}]" if mixed else "")
        lines.append(_line(label, x, y, f, bold=(ref == hl), spikes=(ref == hl or len(shown) == 1), key=key))
        row = dict(_numbers(f, key, step_key, int(y.size)), run=ref, name=info.name, rank=order.index(ref) + 1,
                   final_mean=f.get("final_mean"))
        row.pop("step_key")
        if not mixed:
            row.pop("metric")
        rows.append(row)
        by_label[label] = row
    best = data[order[0]][0]
    caption = (f"{len(shown)} of {len(data)} runs · best ({direction}): {best.name or best.id}, "
               f"final-10% mean {fmt(feats[order[0]].get('final_mean'))}")
    footer_bits = []
    if left_out:
        footer_bits.append(f"left out ({len(left_out)}, ranked lower): " + ", ".join(left_out[:8])
                           + (" ..." if len(left_out) > 8 else ""))
    if missing:
        footer_bits.append(f"no {metric}: " + ", ".join(missing[:6]) + (" ..." if len(missing) > 6 else ""))
    if axis_note:
        footer_bits.append(axis_note)
    title = f"{metric} across runs" + (" (each run's own key for this role)" if by_role else "")
    if win is not None:
        title += f", steps {_range_text(win)}"
    empty = "no finite values in any run" + (f" in steps {_range_text(win)}" if win is not None else "")
    panel = Panel(metric, step_key, lines, caption, empty, smoothing=smoothing)
    png, w, h = grid([panel], ncols=1, panel_w=1000, panel_h=560, title=title,
                     footer=" | ".join(footer_bits), legend=True)
    clipped_facts([panel], by_label)
    text: dict[str, Any] = {"metric": metric, "step_key": step_key, "direction": direction, "runs_asked": len(infos),
                            "shown": rows, "rank": "final-10% mean; gaps within 2x final std are ties, won by the "
                            "smoother run"}
    stated_range(text, win, smoothing)
    if left_out:
        text["left_out"] = left_out
    if missing:
        text["missing_metric"] = missing
    if axis_note:
        text["note"] = axis_note
    return png, w, h, text
