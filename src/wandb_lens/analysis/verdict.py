"""The verdict of one run: healthy | unstable | overfit | plateaued | diverged | converged.

Rules, checked in this order on the train curve (and the validation curve when there is one); all
levels are read on the smoothed profile (see curves.py), in the metric's bad direction, on the step axis:
1. diverged: the train (or validation) metric has NaN/Inf, or a sustained rise to the end (curves.py
   divergence: rise > max(6 noise, 10% of scale) from its best, still up at the end).
2. overfit: validation's best is before the last 15% of its steps, it then rises (a least-squares trend
   > 3 standard errors) by more than max(3 profile noise, 2 point noise, 2% of its best, 5% of its
   descent) to the end, while train fell over the same steps
   (train read on its profile at the validation steps: aligned by step, never by row).
3. unstable: >= 3 recovered spike events in train, or >= 2 with spikes concentrating late (rate in the
   last 30% > 2x before), or >= 3 gradient-norm explosion events (gradients.py rule).
4. healthy: train (or validation) still improving: over the last 25% of points the least-squares slope
   goes the good way by > 3 standard errors and moves the metric by > 1% of its current level and by
   > 2% of the run's total descent or > 5% of its current level.
5. plateaued: flat at the end and (a) never really descended (start level - final level < max(5 noise,
   5% of the start level): flat from early on), or (b, checked first) the LR had already collapsed below 2% of its peak where the curve
   went flat, before 60% of the run, or (c) it sits far above its own best (> 10% of the descent + 2 noise).
6. converged: flat at the end, after a real descent, near the run's best.
A crashed or running run is judged on the points it has, and the answer says so.
"""

from __future__ import annotations

import numpy as np

from .curves import Curve, _slope

VERDICTS = ("healthy", "unstable", "overfit", "plateaued", "diverged", "converged")


def _i(x: float) -> int:
    return int(round(float(x)))


def _pct(new: float, old: float) -> str:
    if old == 0:
        return ""
    if old > 0 and new / old >= 10:
        return f" (x{new / old:.3g})"
    return f" ({(new - old) / abs(old) * 100:+.0f}%)"


def _g(x: float) -> str:
    return f"{float(x):.4g}"


def _lr_at(lr_series, step: float) -> float | None:
    if lr_series is None or len(lr_series[0]) == 0:
        return None
    x, y = lr_series
    ok = np.isfinite(y)
    if not ok.any():
        return None
    return float(np.interp(step, x[ok], y[ok]))


def _clip_action(grad: dict | None) -> str:
    if grad and grad.get("median"):
        return f"add gradient clipping at max-norm ~{_g(2 * grad['median'])} (2x the median grad norm {_g(grad['median'])})"
    return "add gradient clipping (max-norm 1.0 is a common start; log grad_norm to tune it)"


def _lr_action(lr: dict | None, factor: str = "3x") -> str:
    if lr and lr.get("peak"):
        return f"lower the peak LR {factor} (peak {_g(lr['peak'])} at step {_i(lr['peak_step'])})"
    return f"lower the learning rate {factor}"


def _improving(c: Curve, descent: float):
    """(still improving?, drop over the last 25% of points, its std error, slope, tail steps).

    Improving: the least-squares slope over the last 25% of points goes the good way by more than 3
    standard errors, moves the metric by > 1% of its current level, and by > 2% of the run's descent or
    > 5% of its current level.
    """
    nf = c.values.size
    t0 = max(0, nf - max(3, nf // 4))
    ts, tv = c.steps[t0:], c.values[t0:]
    slope, se = _slope(ts, tv)
    tail_span = float(ts[-1] - ts[0]) if ts.size > 1 else 0.0
    drop = -c.sign * slope * tail_span
    level = abs(float(np.median(tv))) if tv.size else 0.0
    ok = (drop > 0 and drop > 3 * se * tail_span and drop > 0.01 * level
          and (drop > 0.02 * max(descent, 0.0) or drop > 0.05 * level))
    return bool(ok), drop, se * tail_span, slope, ts


def judge(train: Curve, val: Curve | None = None, lr: dict | None = None, grad: dict | None = None,
          lr_series=None, names: dict | None = None) -> dict:
    names = names or {}
    tk, vk = names.get("train", "train"), names.get("val", "val")
    T = train.features
    ev: list[str] = []
    act: list[str] = []
    s0, s1 = float(train.steps[0]), float(train.steps[-1])
    span = max(s1 - s0, 1e-12)
    sign = train.sign
    b = sign * train.py
    best_i = int(np.argmin(b))
    start_level = float(b[0])
    best = float(b[best_i])
    descent = start_level - best
    noise = train.noise_p

    # 1. diverged -----------------------------------------------------------------------------
    for curve, key in ((train, tk), (val, vk)):
        if curve is None:
            continue
        F = curve.features
        if F.get("nan_inf"):
            step = F["first_nan_step"]
            ev.append(f"step {_i(step)}: {key} became NaN/Inf ({F['nan_inf']} of {F['n']} points"
                      + (", to the end)" if F.get("nan_to_end") else ")"))
            if curve.steps.size:
                ev.append(f"steps {_i(curve.steps[0])}-{_i(curve.steps[-1])}: last finite {key} {_g(curve.values[-1])}"
                          f" (best {_g(F['min'] if curve.sign > 0 else F['max'])})")
            lr_now = _lr_at(lr_series, step)
            if lr_now is not None and lr and lr.get("peak"):
                ev.append(f"step {_i(step)}: LR {_g(lr_now)} ({lr_now / lr['peak'] * 100:.0f}% of peak {_g(lr['peak'])})")
            act += [_lr_action(lr), _clip_action(grad),
                    f"restart from a checkpoint before step {_i(step)}; check that batch for inf/log(0)"]
            return {"verdict": "diverged", "evidence": ev, "next_actions": act}
    D = T.get("divergence") or {}
    if D.get("detected"):
        st = D["start_step"]
        lvl = train.level_at(st)
        end = float(np.median(train.py[-max(3, train.py.size // 20):]))
        ev.append(f"steps {_i(st)}-{_i(s1)}: {tk} rose {_g(lvl)} -> {_g(end)}{_pct(end, lvl)} and stayed up to the end")
        ev.append(f"steps {_i(s0)}-{_i(st)}: it had fallen {_g(train.py[0])} -> {_g(lvl)} first")
        lr_now = _lr_at(lr_series, st)
        if lr_now is not None and lr and lr.get("peak"):
            ev.append(f"step {_i(st)}: LR {_g(lr_now)} (peak {_g(lr['peak'])} at step {_i(lr['peak_step'])})")
        act += [_lr_action(lr), _clip_action(grad), f"resume from the checkpoint at step ~{_i(st)} with a lower LR"]
        if lr and lr.get("warmup_steps", 0) and abs(st - lr["peak_step"]) < 0.15 * span:
            act.append(f"lengthen warmup (now {_i(lr['warmup_steps'])} steps): the rise starts at the LR peak")
        return {"verdict": "diverged", "evidence": ev, "next_actions": act}

    # 2. overfit -------------------------------------------------------------------------------
    if val is not None and val.py.size >= 4 and val.features.get("spike_count") is not None:
        vb = val.sign * val.py
        jv = int(np.argmin(vb))
        vs0, vs1 = float(val.px[0]), float(val.px[-1])
        v_best_step = float(val.px[jv])
        tail = max(1, vb.size // 10)
        v_end = float(np.median(vb[-tail:]))
        v_rise = v_end - float(vb[jv])
        v_descent = float(vb[0] - vb[jv])
        need = max(3 * val.noise_p, 2 * float(val.features.get("noise") or 0.0), 0.02 * abs(float(vb[jv])),
                   0.05 * max(v_descent, 0.0))
        t_at_best = sign * train.level_at(v_best_step)
        t_end = sign * train.level_at(vs1)
        after = val.steps >= v_best_step
        up, up_se = _slope(val.steps[after], val.sign * val.values[after]) if after.sum() >= 3 else (0.0, 1.0)
        if (v_best_step <= vs1 - 0.15 * (vs1 - vs0) and v_rise > need and t_end < t_at_best
                and up > 3 * up_se):
            vb_abs, ve_abs = val.sign * float(vb[jv]), val.sign * v_end
            ev.append(f"steps {_i(v_best_step)}-{_i(vs1)}: {vk} rose {_g(vb_abs)} -> {_g(ve_abs)}{_pct(ve_abs, vb_abs)}"
                      f" while {tk} fell {_g(sign * t_at_best)} -> {_g(sign * t_end)}")
            ev.append(f"step {_i(v_best_step)}: best {vk} {_g(vb_abs)}")
            ev.append(f"gap {vk}-{tk}: {_g(vb_abs - sign * t_at_best)} at step {_i(v_best_step)} -> "
                      f"{_g(ve_abs - sign * t_end)} at step {_i(vs1)} ({tk} read at the {vk} steps)")
            act += [f"early-stop at step ~{_i(v_best_step)} (best {vk}); keep that checkpoint",
                    "add regularisation (weight decay, dropout, augmentation) or more training data",
                    "or shrink the model: it fits train noise after that step"]
            return {"verdict": "overfit", "evidence": ev, "next_actions": act}

    # 3. unstable ------------------------------------------------------------------------------
    n_sp = int(T.get("spike_count") or 0)
    g_ev = int((grad or {}).get("explosion_events") or 0)
    if n_sp >= 3 or (n_sp >= 2 and T.get("spikes_late")) or g_ev >= 3:
        sp = T.get("spikes") or []
        if n_sp:
            top = sp[0]
            spike_steps = sorted(_i(x["step"]) for x in sp)
            ev.append(f"steps {spike_steps[0]}-{spike_steps[-1]}: {n_sp} {tk} spikes that recovered; largest at step "
                      f"{_i(top['step'])}: {_g(top['value'])} (robust z {top['z']:.0f})")
        if T.get("spikes_late"):
            ev.append(f"steps {_i(s0 + 0.7 * span)}-{_i(s1)}: spikes concentrate in the last 30% of the run")
        if g_ev:
            ev.append(f"steps {', '.join(str(_i(x)) for x in grad['explosion_steps'][:4])}: grad norm above 10x its "
                      f"early median ({g_ev} events)")
        act += [_clip_action(grad), _lr_action(lr, "2-3x")]
        if sp:
            act.append("inspect the batches at steps " + ", ".join(str(_i(x["step"])) for x in sp[:3])
                       + " (bad data or outliers?)")
        return {"verdict": "unstable", "evidence": ev, "next_actions": act}

    # 4-6. improving or flat ---------------------------------------------------------------------
    improving, drop, se, slope, ts = _improving(train, descent)
    v_impr = None
    if val is not None and val.py.size >= 4:
        vb = val.sign * val.py
        v_impr = _improving(val, float(vb[0] - vb.min()))
    lvl0, lvl_best = sign * start_level, sign * best
    fell = f"steps {_i(s0)}-{_i(train.px[best_i])}: {tk} {_g(lvl0)} -> best {_g(lvl_best)}{_pct(lvl_best, lvl0)}"
    if improving or (v_impr and v_impr[0]):
        per_1k = -sign * slope * 1000  # the improvement per 1k steps, whatever the direction
        if improving:
            ev.append(f"steps {_i(ts[0])}-{_i(ts[-1])}: {tk} still moving the good way, {per_1k:+.3g} per 1k steps "
                      f"({drop / max(se, 1e-300):.0f} std errors)")
        else:
            per_1k = -val.sign * v_impr[3] * 1000
            ev.append(f"steps {_i(v_impr[4][0])}-{_i(v_impr[4][-1])}: {vk} still improving, {per_1k:+.3g} per 1k steps"
                      f" ({v_impr[1] / max(v_impr[2], 1e-300):.0f} std errors)")
        ev.append(fell)
        ev.append(f"steps {_i(s0)}-{_i(s1)}: no NaN, {n_sp} spike(s), no divergence")
        act.append(f"train longer: {tk if improving else vk} was still improving ~{abs(per_1k):.3g} per 1k steps "
                   "at the end")
        if lr and lr.get("final_over_peak") is not None and lr["final_over_peak"] < 0.05:
            act.append("with more steps, stretch the LR decay too: it already ended near its floor")
        else:
            act.append("keep the current LR / schedule; compare a 2x longer run")
        return {"verdict": "healthy", "evidence": ev, "next_actions": act}

    flat_since = float(T.get("flat_since", ts[0] if ts.size else s0))
    final = float(np.median(b[-max(1, b.size // 10):]))
    ev_flat = f"steps {_i(flat_since)}-{_i(s1)}: flat, {tk} ~{_g(sign * final)} (tail slope {slope:.3g}/step, within noise)"
    lr_flat = _lr_at(lr_series, flat_since)
    if (lr and lr.get("peak") and lr_flat is not None and lr_flat < 0.02 * lr["peak"]
            and flat_since < s0 + 0.6 * span):
        ev += [fell, ev_flat,
               f"step {_i(flat_since)}: LR already {_g(lr_flat)} ({lr_flat / lr['peak'] * 100:.1f}% of peak {_g(lr['peak'])})"]
        act += [f"the LR collapsed by step {_i(flat_since)}: decay it more slowly or to a higher floor "
                f"(e.g. 10% of peak); shape now {lr.get('shape', '?')}",
                "then train again from the checkpoint before the collapse"]
        return {"verdict": "plateaued", "evidence": ev, "next_actions": act}
    if start_level - final < max(5 * noise, 0.05 * abs(start_level)):
        ev.append(f"steps {_i(s0)}-{_i(s1)}: {tk} barely moved: {_g(lvl0)} -> {_g(sign * final)}{_pct(sign * final, lvl0)}"
                  " (flat from early on)")
        if lr and lr.get("peak"):
            ev.append(f"steps {_i(lr['peak_step'])}-{_i(s1)}: LR peak {_g(lr['peak'])}, final {_g(lr['final'])}")
            act.append(f"raise the learning rate 10x (peak now {_g(lr['peak'])}) and check it is applied")
        else:
            act.append("raise the learning rate (try 10x) and check it reaches the optimizer")
        act.append("check gradients reach the weights (grad norm, dead layers) and that labels match inputs")
        return {"verdict": "plateaued", "evidence": ev, "next_actions": act}
    if final - best > 0.1 * descent + 2 * noise:
        ev += [ev_flat, fell + f"; now {_g(sign * (final - best))} above that best"]
        act += ["it stalled above its own best: lower the LR (or decay it) to settle into the minimum",
                f"restore the checkpoint near step {_i(train.px[best_i])}"]
        return {"verdict": "plateaued", "evidence": ev, "next_actions": act}
    ev += [fell, ev_flat]
    flat_share = (s1 - flat_since) / span
    if flat_share > 0.3:
        act.append(f"stop near step {_i(flat_since)} next time: the last {flat_share * 100:.0f}% of steps did not improve")
    act.append("for a lower loss change the model or data (capacity, more data); the optimizer has done its part")
    return {"verdict": "converged", "evidence": ev, "next_actions": act}
