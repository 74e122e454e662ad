"""The verdict of one run: healthy | unstable | overfit | plateaued | diverged | converged.

Rules, checked in this order on the train curve (and the validation curve when there is one); all
levels are read on the smoothed profile (see curves.py), in the metric's bad direction, on the step
axis; no rule fires on one point:
1. diverged: the train metric turns NaN/Inf and stays so (NaN/Inf at the last point, or at least
   half of the points after the first NaN) - NaN/Inf only before the first finite point is a logging
   artefact, not a divergence; or a sustained rise of the smoothed curve to the end (curves.py
   divergence: large against the noise AND against the run's own descent; for an RL return the
   drop must be >= RL_DROP of the gain). The start is where the smoothed curve leaves its best.
2. overfit: validation's best is before the last 15% of its steps, it then rises (a least-squares trend
   > 3 standard errors) by more than max(3 level noise, 2 point noise, 3% of its best, 10% of its
   descent) to the end, while train fell over the same steps (train read on its profile at the
   validation steps: aligned by step, never by row).
3. unstable: spike events of the noise model (noise.py) that are material, counted after the first
   2% of points and away from LR restarts, and that damage the smoothed trend (>= DAMAGING_MIN of them)
   or are frequent (>= FREQUENT_MIN events at >= FREQUENT_RATE per 1k points); or a finite sustained
   rise (rule 1) that starts within CAUSE_WINDOW of the run of a damaging spike (a bad batch that set
   training back for good: checked before rule 1); or >= 3 isolated NaN/Inf
   points that recovered; or >= 3 gradient-norm explosion events together with a material loss spike.
   Heavy-tailed minibatch noise with a clean smoothed curve is never unstable. An RL return is not
   judged on spikes (episodes vary by design).
4. healthy: train (or validation) still improving: over the last 25% of points the least-squares slope
   goes the good way by > 3 standard errors and moves the metric by > 1% of its current level and by
   > 2% of the run's total descent, or by > 5% of its current level and > 0.5% of the descent (a loss
   that fell orders of magnitude and shrinks further at 1e-12 is not "improving"). Also healthy: the LR is still warming
   up over the last 10% of the run and the curve has not yet descended (too early to judge a plateau).
5. plateaued: flat at the end and (b, checked first) the LR fell below 2% of its peak after the peak,
   before 60% of the run, and the curve gained less than 25% of its descent after that step (dated
   from the LR change); or (a) it never really descended (start level - final level < max(5 level
   noise, 5% of the start level)); or (c) it sits far above its own best (> 15% of the descent + 3
   level noise).
6. converged: flat at the end, after a real descent, near the run's best. "Stop near step X" names the
   step where the smoothed curve settled within max(3 level noise, 5% of the descent) of its final
   level, never a step before the best.
A crashed or running run is judged on the points it has, and the answer says so.
"""

from __future__ import annotations

import numpy as np

from .curves import Curve, _logged, _slope

VERDICTS = ("healthy", "unstable", "overfit", "plateaued", "diverged", "converged")
DAMAGING_MIN = 2
FREQUENT_MIN = 3
FREQUENT_RATE = 2.0  # events per 1k points
SKIP_START = 0.02  # share of points at the start where spikes are not counted (initial transient)
RL_DROP = 0.25
LR_COLLAPSE = 0.02
SETTLE = 0.05
CAUSE_WINDOW = 0.05  # a sustained rise that starts within 5% of the run of a damaging spike is the spike's doing


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
    A positive lower-is-better curve is fitted on its log (multiplicative noise)."""
    nf = c.values.size
    t0 = max(0, nf - max(3, nf // 4))
    ts, tv = c.steps[t0:], c.values[t0:]
    tail_span = float(ts[-1] - ts[0]) if ts.size > 1 else 0.0
    level = abs(float(np.median(tv))) if tv.size else 0.0
    if c.sign > 0 and tv.size >= 3 and float(tv.min()) > 0:
        # multiplicative noise: the trend is fitted on log(values) (heavy right tails tamed), then
        # stated in the metric's units at the tail's median level
        ls, lse = _slope(ts, np.log(tv))
        drop = level * (np.exp(-ls * tail_span / 2) - np.exp(ls * tail_span / 2))
        slope = -drop / tail_span if tail_span else 0.0
        se = level * lse
    else:
        slope, se = _slope(ts, tv)
        drop = -c.sign * slope * tail_span
    d = max(descent, 0.0)
    ok = (drop > 0 and drop > 3 * se * tail_span and drop > 0.01 * level
          and (drop > 0.02 * d or (drop > 0.05 * level and drop > 0.005 * d)))
    return bool(ok), drop, se * tail_span, slope, ts


def counted_spikes(train: Curve, lr: dict | None) -> list[dict]:
    """Material spike events that count for the unstable rule: after the first 2% of points and not
    within the damage window of an LR restart (a warm restart lifts the loss by design)."""
    ev = (train.spikes or {}).get("events") or []
    if not ev:
        return []
    n = train.values.size
    w = (train.spikes or {}).get("window", 5)
    restarts = np.asarray((lr or {}).get("restart_steps") or [], dtype=np.float64)
    out = []
    for e in ev:
        if e["i"] < SKIP_START * n:
            continue
        if restarts.size:
            near = np.abs(np.searchsorted(train.steps, restarts) - e["i"]) <= w
            if near.any():
                continue
        out.append(e)
    return out


def _lr_collapse(lr: dict | None, lr_series) -> float | None:
    """First step after the LR peak where the LR is below LR_COLLAPSE of the peak."""
    if not lr or not lr.get("peak") or lr_series is None:
        return None
    x, y = lr_series
    ok = np.isfinite(y) & (x > lr["peak_step"])
    low = np.flatnonzero(ok & (y < LR_COLLAPSE * lr["peak"]))
    return float(x[low[0]]) if low.size else None


def _diverged_nan(curve: Curve, key: str, lr, grad, lr_series, ev, act) -> bool:
    F = curve.features
    if not F.get("nan_inf") or F.get("nan_leading_only"):
        return False
    if not F.get("nan_to_end") and not F.get("nan_share_after", 0.0) >= 0.5:
        return False
    step = F["first_nan_step"]
    ev.append(f"step {_i(step)}: {key} became NaN/Inf ({F['nan_inf']} of {F['n']} points"
              + (", to the end)" if F.get("nan_to_end") else ")"))
    D = F.get("divergence") or {}
    if D.get("detected") and D["start_step"] < step:
        st = D["start_step"]
        ev.append(f"steps {_i(st)}-{_i(step)}: the lead-up: {key} rose {_g(curve.level_at(st))} -> "
                  f"{_g(curve.values[-1])} before the NaN")
    elif curve.steps.size:
        ev.append(f"steps {_i(curve.steps[0])}-{_i(curve.steps[-1])}: last finite {key} {_g(curve.values[-1])}"
                  f" (best {_g(F['min'] if curve.sign > 0 else F['max'])})")
    lr_now = _lr_at(lr_series, step)
    if lr_now is not None and lr and lr.get("peak"):
        ev.append(f"step {_i(step)}: LR {_g(lr_now)} ({lr_now / lr['peak'] * 100:.0f}% of peak {_g(lr['peak'])})")
    act += [_lr_action(lr), _clip_action(grad),
            f"restart from a checkpoint before step {_i(D['start_step'] if D.get('detected') else step)}; "
            "check that batch for inf/log(0)"]
    return True


def _spike_line(events: list[dict], n_points: int, span: tuple[float, float], tk: str, damaging: int) -> str:
    top = max(events, key=lambda e: e["z"])
    first = min(events, key=lambda e: e["step"])
    rate = 1000.0 * len(events) / max(n_points, 1)
    ratio = f"{top['value'] / top['level']:.1f}x the local level, " if top.get("level") and top["level"] > 0 \
        and top["value"] > 0 else ""
    return (f"steps {_i(span[0])}-{_i(span[1])}: {len(events)} material {tk} spike(s) ({rate:.2g} per 1k points), "
            f"{damaging} set the smoothed trend back; first at step {_i(first['step'])}; largest at step "
            f"{_i(top['step'])}: {_g(top['value'])} ({ratio}robust z {top['z']:.0f})")


def judge(train: Curve, val: Curve | None = None, lr: dict | None = None, grad: dict | None = None,
          lr_series=None, names: dict | None = None, rl: bool = False) -> dict:
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
    if _diverged_nan(train, tk, lr, grad, lr_series, ev, act):
        return {"verdict": "diverged", "evidence": ev, "next_actions": act}
    D = T.get("divergence") or {}
    counted = [] if rl else counted_spikes(train, lr)
    caused = [e for e in counted if e["damage"] and D.get("detected")
              and abs(e["step"] - D["start_step"]) <= CAUSE_WINDOW * span]
    if D.get("detected") and not caused and (not rl or D.get("rise_frac", 0.0) >= RL_DROP):
        st = D["start_step"]
        lvl = train.level_at(st)
        end = float(np.median(train.py[-max(3, train.py.size // 20):]))
        what = "fell" if sign < 0 else "rose"
        ev.append(f"steps {_i(st)}-{_i(s1)}: {tk} (smoothed) {what} {_g(lvl)} -> {_g(end)}{_pct(end, lvl)} and "
                  "stayed there to the end")
        ev.append(f"steps {_i(s0)}-{_i(st)}: it had gone {_g(train.py[0])} -> best {_g(lvl)} first; the rise is "
                  f"{D.get('rise_frac', 0) * 100:.0f}% of that")
        lr_now = _lr_at(lr_series, st)
        if lr_now is not None and lr and lr.get("peak"):
            ev.append(f"step {_i(st)}: LR {_g(lr_now)} (peak {_g(lr['peak'])} at step {_i(lr['peak_step'])})")
        if rl:
            act += [f"keep the policy checkpoint from step ~{_i(st)} (best return)",
                    _lr_action(lr) + " or the policy update size (clip range / KL target)",
                    "check the entropy / exploration schedule around that step"]
        else:
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
        need = max(3 * val.noise_p, 2 * float(val.features.get("noise") or 0.0), 0.03 * abs(float(vb[jv])),
                   0.1 * max(v_descent, 0.0))
        t_at_best = sign * train.level_at(v_best_step)
        t_end = sign * train.level_at(vs1)
        after = val.steps >= v_best_step
        up, up_se = _slope(val.steps[after], val.sign * val.values[after]) if after.sum() >= 3 else (0.0, 1.0)
        if (v_best_step <= vs1 - 0.15 * (vs1 - vs0) and v_rise > need and t_end < t_at_best
                and up > 3 * up_se):
            vb_abs, ve_abs = val.sign * float(vb[jv]), val.sign * v_end
            ev.append(f"steps {_i(v_best_step)}-{_i(vs1)}: {vk} rose {_g(vb_abs)} -> {_g(ve_abs)}{_pct(ve_abs, vb_abs)}"
                      f" while {tk} fell {_g(sign * t_at_best)} -> {_g(sign * t_end)}")
            raw_best = int(np.argmin(val.sign * val.values))
            v_best_step = float(val.steps[raw_best])  # the checkpoint to keep: where the logged val was best
            ev.append(f"step {_i(v_best_step)}: best {vk} {_g(val.values[raw_best])} (smoothed {_g(vb_abs)})")
            ev.append(f"gap {vk}-{tk}: {_g(vb_abs - sign * t_at_best)} at step {_i(v_best_step)} -> "
                      f"{_g(ve_abs - sign * t_end)} at step {_i(vs1)} ({tk} read at the {vk} steps)")
            act += [f"early-stop at step ~{_i(v_best_step)} (best {vk}); keep that checkpoint",
                    "add regularisation (weight decay, dropout, augmentation) or more training data",
                    "or shrink the model: it fits train noise after that step"]
            return {"verdict": "overfit", "evidence": ev, "next_actions": act}

    # 3. unstable ------------------------------------------------------------------------------
    n_pts = train.values.size
    damaging = sum(e["damage"] for e in counted)
    rate = 1000.0 * len(counted) / max(n_pts, 1)
    isolated_nan = int(T.get("nan_inf") or 0) if not T.get("nan_leading_only") else 0
    g_ev = int((grad or {}).get("explosion_events") or 0)
    frequent = len(counted) >= FREQUENT_MIN and rate >= FREQUENT_RATE
    if damaging >= DAMAGING_MIN or frequent or isolated_nan >= 3 or (g_ev >= 3 and counted) or caused:
        if caused:
            st = D["start_step"]
            ev.append(f"step {_i(caused[0]['step'])}: a {tk} spike set the smoothed curve back "
                      f"{_g(train.level_at(st))} -> {_g(float(np.median(train.py[-max(3, train.py.size // 20):])))}"
                      " and it never recovered")
        if counted:
            ev.append(_spike_line(counted, n_pts, (s0, s1), tk, damaging))
            ev.append("largest at steps " + ", ".join(str(_i(e["step"])) for e in sorted(
                counted, key=lambda e: -e["z"])[:5]))
        if isolated_nan:
            ev.append(f"step {_i(T['first_nan_step'])}: {isolated_nan} isolated NaN/Inf {tk} point(s) that recovered")
        if T.get("spikes_late"):
            ev.append(f"steps {_i(s0 + 0.7 * span)}-{_i(s1)}: spikes concentrate in the last 30% of the run")
        if g_ev:
            ev.append(f"steps {', '.join(str(_i(x)) for x in grad['explosion_steps'][:4])}: grad norm above 10x its "
                      f"early median ({g_ev} events)")
        if counted:
            act.append("inspect the batches at steps " + ", ".join(str(_i(e["step"])) for e in sorted(
                counted, key=lambda e: -e["z"])[:3]) + " (bad data, outliers, a loss that can blow up?)")
        act += [_clip_action(grad), _lr_action(lr, "2-3x")]
        return {"verdict": "unstable", "evidence": ev, "next_actions": act}
    quiet = ""
    if counted:
        quiet = (f"; {len(counted)} isolated spike(s) ({rate:.2g} per 1k points) that did not set the trend back: "
                 "minibatch noise")

    # 4-6. improving or flat ---------------------------------------------------------------------
    improving, drop, se, slope, ts = _improving(train, descent)
    v_impr = None
    if val is not None and val.py.size >= 4:
        vb = val.sign * val.py
        v_impr = _improving(val, float(vb[0] - vb.min()))
    lvl0, lvl_best = sign * start_level, sign * best
    best_step = float(train.px[best_i])
    fell = f"steps {_i(s0)}-{_i(best_step)}: {tk} (smoothed) {_g(lvl0)} -> best {_g(lvl_best)}{_pct(lvl_best, lvl0)}"
    clean = f"steps {_i(s0)}-{_i(s1)}: no NaN, no divergence" + (quiet or f", {len(counted)} material spikes")
    warming = bool(lr and lr.get("warmup_steps") and lr.get("peak_step", s0) >= s1 - 0.1 * span)
    if improving or (v_impr and v_impr[0]):
        per_1k = -sign * slope * 1000  # the improvement per 1k steps, whatever the direction
        if improving:
            ev.append(f"steps {_i(ts[0])}-{_i(ts[-1])}: {tk} still moving the good way, {per_1k:+.3g} per 1k steps "
                      f"({drop / max(se, 1e-300):.0f} std errors)")
        else:
            per_1k = -val.sign * v_impr[3] * 1000
            ev.append(f"steps {_i(v_impr[4][0])}-{_i(v_impr[4][-1])}: {vk} still improving, {per_1k:+.3g} per 1k steps"
                      f" ({v_impr[1] / max(v_impr[2], 1e-300):.0f} std errors)")
        ev += [fell, clean]
        act.append(f"train longer: {tk if improving else vk} was still improving ~{abs(per_1k):.3g} per 1k steps "
                   "at the end")
        if lr and lr.get("final_over_peak") is not None and lr["final_over_peak"] < 0.05:
            act.append("with more steps, stretch the LR decay too: it already ended near its floor")
        else:
            act.append("keep the current LR / schedule; compare a 2x longer run")
        return {"verdict": "healthy", "evidence": ev, "next_actions": act}

    final = float(np.median(b[-max(1, b.size // 10):]))
    flat_since = float(T.get("flat_since", ts[0] if ts.size else s0))
    ev_flat = f"steps {_i(flat_since)}-{_i(s1)}: flat, {tk} ~{_g(sign * final)} (tail slope {slope:.3g}/step, within noise)"
    c = _lr_collapse(lr, lr_series)
    if c is not None and c < s0 + 0.6 * span:
        # levels as medians of the logged points (a single smoothed point is too noisy to date from)
        after_c = train.values[(train.steps >= c) & (train.steps <= c + 0.1 * span)]
        end_raw = float(np.median(sign * train.values[-max(3, n_pts // 10):]))
        gained = (float(np.median(sign * after_c)) if after_c.size else sign * train.level_at(c)) - end_raw
        if gained < 0.25 * max(descent, 0.0):
            lr_c = _lr_at(lr_series, c)
            ev += [f"steps {_i(c)}-{_i(s1)}: flat since the LR fell to {_g(lr_c)} ({lr_c / lr['peak'] * 100:.1f}% of "
                   f"peak {_g(lr['peak'])}) at step {_i(c)}, {(c - s0) / span * 100:.0f}% into the run",
                   f"steps {_i(c)}-{_i(s1)}: {tk} {_g(train.level_at(c))} -> {_g(sign * final)} after that step",
                   fell]
            act += [f"the LR collapsed at step {_i(c)}: decay it more slowly or to a higher floor "
                    f"(e.g. 10% of peak); shape now {lr.get('shape', '?')}",
                    f"then train again from the checkpoint at step ~{_i(c)}"]
            return {"verdict": "plateaued", "evidence": ev, "next_actions": act}
    if start_level - final < max(5 * noise, 0.05 * abs(start_level)):
        if warming:  # warm-up is not a plateau: the LR has not reached its peak yet
            ev += [f"steps {_i(s0)}-{_i(s1)}: LR still warming up ({_g(lr['final'])}, peak so far {_g(lr['peak'])}):"
                   f" too early to call a plateau", fell, clean]
            act += ["let it run past the warm-up before judging the curve",
                    "if the loss is still flat once the LR peaks, raise the LR"]
            return {"verdict": "healthy", "evidence": ev, "next_actions": act}
        ev.append(f"steps {_i(s0)}-{_i(s1)}: {tk} barely moved: {_g(lvl0)} -> {_g(sign * final)}{_pct(sign * final, lvl0)}"
                  " (flat from early on)")
        if grad and (grad.get("vanishing") or grad.get("dead")):
            what = "dead" if grad.get("dead") else "vanishing"
            ev.append(f"grad norm {what}: median {_g(grad.get('median', 0))}, final {_g(grad.get('final_median', 0))}")
            act += ["fix the gradient flow, not the LR: check initialisation and activations (dead ReLUs, saturated "
                    "sigmoids/tanh), add normalisation or residual connections",
                    "check that the loss depends on the trained parameters (detached tensors, frozen layers)"]
        else:
            if lr and lr.get("peak"):
                ev.append(f"steps {_i(lr['peak_step'])}-{_i(s1)}: LR peak {_g(lr['peak'])}, final {_g(lr['final'])}")
                act.append(f"raise the learning rate 10x (peak now {_g(lr['peak'])}) and check it is applied")
            else:
                act.append("raise the learning rate (try 10x) and check it reaches the optimizer")
            act.append("check gradients reach the weights (grad norm, dead layers) and that labels match inputs")
        return {"verdict": "plateaued", "evidence": ev, "next_actions": act}
    if final - best > 0.15 * descent + 3 * noise:
        ev += [ev_flat, fell + f"; now {_g(sign * (final - best))} above that best"]
        act += ["it stalled above its own best: lower the LR (or decay it) to settle into the minimum",
                f"restore the checkpoint near step {_i(best_step)}"]
        return {"verdict": "plateaued", "evidence": ev, "next_actions": act}
    settle = _settle_step(train, final, descent)
    stop = max(settle, best_step)
    ev += [fell, f"steps {_i(settle)}-{_i(s1)}: flat within {_g(max(3 * noise, SETTLE * max(descent, 0.0)))} of "
                 f"{tk} ~{_g(sign * final)} (tail slope {slope:.3g}/step, within noise)", clean]
    flat_share = (s1 - stop) / span
    if flat_share > 0.3:
        act.append(f"stop near step {_i(stop)} next time: the last {flat_share * 100:.0f}% of steps did not improve")
    act.append("for a lower loss change the model or data (capacity, more data); the optimizer has done its part")
    return {"verdict": "converged", "evidence": ev, "next_actions": act}


def _settle_step(c: Curve, final: float, descent: float) -> float:
    """First profile step after which the smoothed curve stays within the settle band of its final level."""
    b = c.sign * c.py
    band = max(3 * c.noise_p, SETTLE * max(descent, 0.0), 1e-12)
    out = np.flatnonzero(np.abs(b - final) > band)
    i = int(out[-1]) + 1 if out.size else 0
    return _logged(c.steps, float(c.px[min(i, b.size - 1)]))
