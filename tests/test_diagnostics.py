"""diagnose_run / curve_features / compare_runs through an in-memory MCP client, on runs written by
real tiny numpy trainings through wandb (offline) — see tests/scenarios.py for each run's dynamics (the
whole labelled suite, numpy and PyTorch, is judged in tests/test_verdict_suite.py).
Feature rules are also checked directly on synthetic curves with known answers.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import labelled_suite
import scenarios
from conftest import call

LABELLED = {name: verdict for name, (verdict, _) in scenarios.scenarios().items()}
LABELLED["killed-converging"] = "converged"


@pytest.fixture(scope="session")
def scen(tmp_path_factory):
    from wandb_lens.app import AppConfig
    from wandb_lens.server import build_server

    out, labels = labelled_suite.ensure()  # generated once, cached (tests/labelled_suite.py)
    runs = labels["runs"]
    made = {k: m for k, m in runs.items() if m["source"] == "numpy" and not m["held_out"]}
    held = {k: m for k, m in runs.items() if m["source"] == "numpy" and m["held_out"]}
    server = build_server(AppConfig(runs_dirs=[str(out / "wandb")], cache_dir=str(tmp_path_factory.mktemp("dcache"))))
    return {"server": server, "made": made, "extra": labels["extras"], "held": held}


@pytest.fixture
def dx(scen):
    return lambda tool, **args: call(scen["server"], tool, args)


def _nm(label: str) -> str:
    """The run name of a compare_runs label `name (id)`."""
    return label.rsplit(" (", 1)[0]


def ok(res):
    assert not res.is_error, res.text
    return res.json


# ----- the labelled suite -----------------------------------------------------------------------
def test_suite_covers_every_verdict_several_times():
    counts = {v: list(LABELLED.values()).count(v) for v in set(LABELLED.values())}
    assert set(counts) == {"healthy", "unstable", "overfit", "plateaued", "diverged", "converged"}
    assert len(LABELLED) >= 24 and min(counts.values()) >= 4


@pytest.mark.parametrize("name", sorted(LABELLED))
def test_verdict(dx, name):
    res = dx("diagnose_run", run=name)
    out = ok(res)
    assert out["verdict"] == LABELLED[name], json.dumps(out)[:1500]
    assert len(res.text.encode()) <= 2500
    assert out["evidence"] and all("step" in e for e in out["evidence"])
    assert out["next_actions"]
    assert out["step_key"] and out["step_key_why"]


@pytest.mark.parametrize("name", ["heldout-converged", "heldout-overfit"])
def test_held_out_runs_judged_right(dx, scen, name):
    assert ok(dx("diagnose_run", run=name))["verdict"] == scen["held"][name]["verdict"]


def test_killed_run_says_it_crashed(dx):
    out = ok(dx("diagnose_run", run="killed-converging"))
    assert out["state"] == "crashed"
    assert "crashed" in out["note"] and "judged on" in out["note"]
    assert 400 <= out["train"]["n"] <= 502


def test_custom_step_metric_is_used_and_said(dx):
    out = ok(dx("diagnose_run", run="cvg-stepmetric"))
    assert out["step_key"] == "trainer/global_step"
    assert "define_metric" in out["step_key_why"]
    # steps are in samples (batch 16 x 400 steps), not _step rows
    assert out["train"]["min_step"] % 16 == 0 and out["train"]["min_step"] > 400
    explicit = ok(dx("diagnose_run", run="cvg-stepmetric", step_key="_step"))
    assert explicit["step_key"] == "_step" and explicit["step_key_why"] == "asked for"


def test_overfit_evidence_pairs_train_and_val_by_step(dx):
    out = ok(dx("diagnose_run", run="ovf-linear"))
    assert out["keys"] == {"train": "train_loss", "val": "val_loss", "lr": "learning_rate"}
    assert out["val"]["n"] == 60 and out["train"]["n"] == 1500  # val in its own log() calls every 25 steps
    assert "interpolation" in out["alignment"]
    assert any("early-stop at step" in a for a in out["next_actions"])
    best = out["val"]["min_step"]
    assert any(f"step {best}" in e for e in out["evidence"])


def test_diverged_run_names_first_nan_step(dx):
    out = ok(dx("diagnose_run", run="div-nan-loss"))
    assert out["train"]["nan_inf"] > 0
    assert any("NaN/Inf" in e for e in out["evidence"])
    assert any("lower the peak LR" in a for a in out["next_actions"])


def test_explicit_keys_and_unknown_keys(dx):
    out = ok(dx("diagnose_run", run="ovf-linear", train_key="train_loss", val_key="val_loss"))
    assert out["verdict"] == "overfit"
    res = dx("diagnose_run", run="ovf-linear", val_key="val_los")
    assert res.is_error and "val_loss" in res.text and "Close matches" in res.text


# ----- curve_features -------------------------------------------------------------------------------
def test_curve_features_defaults_and_budget(dx):
    res = dx("curve_features", run="cvg-cosine")
    out = ok(res)
    assert list(out["metrics"]) == ["train/loss", "val/loss", "lr", "grad_norm"]
    assert len(res.text.encode()) <= 1500 * len(out["metrics"])
    sched = out["metrics"]["lr"]["schedule"]
    assert sched["shape"] == "cosine" and sched["warmup_steps"] > 0
    assert abs(sched["floor"] - 0.0005) < 0.0003  # the training decays to 1% of the 0.05 peak
    assert "explosion" in out["metrics"]["grad_norm"]["grad_rule"]
    for f in out["metrics"].values():
        assert f["n"] > 0


def test_curve_features_spikes_on_bad_batches(dx):
    f = ok(dx("curve_features", run="uns-bad-batches", metrics=["train/loss"]))["metrics"]["train/loss"]
    assert f["spike_count"] >= 3
    assert len(f["spikes"]) <= 5 and all(s["z"] > 6 for s in f["spikes"])


def test_histograms_layers_found_anywhere_and_dead(dx):
    out = ok(dx("curve_features", run="odd-keys"))
    h = out["metrics"]["gradients/*"]["histograms"]
    assert h["layers_total"] == 3  # gradients/late.weight first appears at step 60
    assert "gradients/late.weight" in h["layers"]
    assert h["dead_layers"] == ["gradients/layer9.dead"]
    assert h["layers"]["gradients/late.weight"]["steps"][0] == 60


def test_bad_metrics_say_what_they_could_not_judge(dx):
    m = ok(dx("curve_features", run="odd-keys", metrics=["const", "allnan", "rare", "single"]))["metrics"]
    assert m["const"]["note"] == "constant value" and m["const"]["spike_count"] == 0
    assert m["allnan"]["nan_inf"] == 120 and "no finite" in m["allnan"]["note"]
    assert m["rare"]["n"] == 2 and "no shape" in m["rare"]["note"]
    assert m["single"]["n"] == 1
    res = dx("curve_features", run="odd-keys", metrics=["phase"])
    assert res.is_error and "text values" in res.text
    res = dx("curve_features", run="odd-keys", metrics=["los"])
    assert res.is_error and "Close matches: loss" in res.text
    res = dx("curve_features", run="odd-keys", direction="up")
    assert res.is_error and "direction" in res.text


def test_non_monotonic_step_key_is_flagged(dx):
    out = ok(dx("curve_features", run="odd-keys", metrics=["loss"], step_key="epoch"))
    assert out["step_key"] == "epoch"
    assert "decreases 2 time(s)" in out["step_key_note"]
    res = dx("curve_features", run="odd-keys", metrics=["loss"], step_key="epoc")
    assert res.is_error and "epoch" in res.text


def test_diagnose_bad_inputs(dx):
    res = dx("diagnose_run", run="odd-keys", train_key="rare")
    assert res.is_error and "at least 5" in res.text
    out = ok(dx("diagnose_run", run="odd-keys", train_key="allnan"))
    assert out["verdict"] == "diverged"
    res = dx("diagnose_run", run="no-such-run")
    assert res.is_error and "No run" in res.text


# ----- compare_runs ---------------------------------------------------------------------------------
def test_compare_ranks_and_lists_differing_config(dx):
    runs = ["hlt-slow", "cvg-cosine", "uns-bad-batches", "pla-lr-collapse"]
    out = ok(dx("compare_runs", runs=runs))
    assert out["metric"] == "val/loss" and out["direction"] == "min"
    order = [_nm(r["run"]) for r in out["ranking"]]
    assert order[:2] == ["cvg-cosine", "hlt-slow"]
    # a late bad batch leaves uns-bad-batches' final validation ~5.8 +- 0.13: within 2 std of the plateaued
    # run's 5.86, so the two are tied and the smoother (plateaued) one ranks first
    assert order[2:] == ["pla-lr-collapse", "uns-bad-batches"] and out["ranking"][2]["tied_with_next"] is True
    verdicts = {_nm(r["run"]): r["verdict"] for r in out["ranking"]}
    assert verdicts == {n: LABELLED[n] for n in runs}
    assert set(out["config_differs"]) == {"lr", "schedule", "seed", "steps"}
    assert "batch_size" not in out["config_differs"]
    assert out["at_common_steps"]["steps"] and len(out["at_common_steps"]["values"]) == 4


def test_compare_ties_go_to_the_smoother_run():
    from wandb_lens.analysis.compare import rank

    feats = {"noisy": {"final_mean": 0.100, "final_std": 0.02, "smoothness": 0.3, "spike_count": 2},
             "smooth": {"final_mean": 0.110, "final_std": 0.01, "smoothness": 0.05, "spike_count": 0},
             "worse": {"final_mean": 0.300, "final_std": 0.01, "smoothness": 0.01},
             "nan": {"final_mean": float("nan"), "final_std": 0.0}}
    assert rank(feats, "min") == ["smooth", "noisy", "worse", "nan"]
    assert rank({"a": {"final_mean": 0.9, "final_std": 0.01}, "b": {"final_mean": 0.5, "final_std": 0.01}}, "max") == ["a", "b"]


def test_compare_group_by_seed_aggregates(dx, scen):
    runs = [f"seed-{t}{s}" for t in "ab" for s in range(3)]
    res = dx("compare_runs", runs=runs, group_by="config.seed")
    out = ok(res)
    g = out["groups"]
    assert g["total"] == 2 and all(r["runs"] == 3 and r["std"] is not None for r in g["rows"])
    assert g["rows"][0]["group"] == "lr=0.02"  # the faster LR reaches a lower loss in 200 steps
    assert g["rows"][0]["mean"] < g["rows"][1]["mean"]


def test_compare_budget_for_20_runs_and_limits(dx, scen):
    names = sorted(LABELLED)[:20]
    res = dx("compare_runs", runs=names)
    out = ok(res)
    assert len(res.text.encode()) <= 6000
    assert len(out["ranking"]) + out.get("missing_metric", {}).get("count", 0) == 20
    res = dx("compare_runs", runs=[f"r{i}" for i in range(51)])
    assert res.is_error and "at most 50" in res.text
    res = dx("compare_runs", runs=["hlt-slow"])
    assert res.is_error and "at least 2" in res.text


def test_compare_across_projects_says_so(dx):
    out = ok(dx("compare_runs", runs=["ovf-linear", "cvg-cosine"], metric="val_loss"))
    assert "2 projects" in out["note"]
    assert [_nm(r) for r in out["missing_metric"]["runs"]] == ["cvg-cosine"]


def test_descriptions_are_short(scen):
    import anyio
    from mcp import Client

    async def go():
        async with Client(scen["server"]) as c:
            return (await c.list_tools()).tools

    tools = {t.name: t for t in anyio.run(go)}
    for name in ("curve_features", "diagnose_run", "compare_runs"):
        assert len(tools[name].description) <= 350, name
        assert tools[name].annotations.read_only_hint is True


# ----- feature correctness on synthetic curves --------------------------------------------------------
def test_spike_found_at_known_step_in_50_points():
    from wandb_lens.analysis.curves import curve_features

    rng = np.random.default_rng(0)
    s = np.arange(50) * 10
    y = np.exp(-np.arange(50) / 15) + 0.02 * rng.normal(size=50)
    y[31] += 0.4
    f = curve_features(s, y)
    assert f["spike_count"] == 1 and f["spikes"][0]["step"] == 310


def test_no_spikes_in_clean_noise_and_level_shift_is_not_a_spike():
    from wandb_lens.analysis.curves import curve_features

    rng = np.random.default_rng(1)
    y = 1.0 + 0.05 * rng.normal(size=2000)
    y[1000:] -= 0.5
    assert curve_features(np.arange(2000), y)["spike_count"] == 0


def test_divergence_start_is_where_the_rise_begins():
    from wandb_lens.analysis.curves import curve_features

    rng = np.random.default_rng(2)
    s = np.arange(3000) * 10
    y = np.exp(-s / 3000) + 0.02 * rng.normal(size=3000)
    y[1200:] += (s[1200:] - 12000) / 10000
    d = curve_features(s, y, "min")["divergence"]
    assert d["detected"] and 11400 <= d["start_step"] <= 12600  # the true start +-2% of the run


def test_cosine_floor_warmup_in_steps_and_shapes():
    from wandb_lens.analysis.schedule import lr_features

    t = np.arange(1000)
    warm, peak, floor = 50, 0.1, 1e-3
    lr = np.where(t < warm, peak * (t + 1) / warm,
                  floor + 0.5 * (peak - floor) * (1 + np.cos(np.pi * (t - warm) / (1000 - warm))))
    f = lr_features(t * 4, lr)  # logged every 4 steps: warmup is in steps, not points
    assert f["shape"] == "cosine" and f["warmup_steps"] == 196
    assert abs(f["floor"] - floor) < 0.3 * floor
    assert lr_features(t, 0.1 * 0.995**t)["shape"] == "exponential"
    assert lr_features(t, np.where(t < 500, 0.1, 0.01))["shape"] == "step"
    assert lr_features(t, 0.1 / np.sqrt(t + 10))["shape"] == "inverse-sqrt"
    assert lr_features(t, np.full(1000, 3e-4))["shape"] == "constant"
    restarts = lr_features(t, 0.1 * (1 + np.cos(np.pi * (t % 250) / 250)) / 2 + 1e-4)
    assert restarts["restart_steps"] == [250, 500, 750]


def test_grad_norm_rules():
    from wandb_lens.analysis.gradients import grad_norm_features

    rng = np.random.default_rng(3)
    g = 1 + 0.1 * rng.random(1000)
    assert grad_norm_features(np.arange(1000), g)["explosion"] is False
    g2 = g.copy()
    g2[[300, 600, 900]] = 50
    f = grad_norm_features(np.arange(1000), g2)
    assert f["explosion"] and f["explosion_events"] == 3 and f["explosion_steps"] == [300, 600, 900]
    v = np.geomspace(1, 1e-5, 1000)
    assert grad_norm_features(np.arange(1000), v)["vanishing"] is True


def test_step_axis_choice():
    from wandb_lens.analysis.step_axis import choose

    cands = [{"key": "_step", "why": "known step key"}, {"key": "global_step", "why": "known step key"}]
    xs = {"_step": np.arange(10.0), "global_step": np.array([0, 1, 2, 3, 4, 50, 51, 52, 53, 54.0])}
    c = choose("loss", cands, [], None, xs.get)
    assert c["key"] == "_step" and "global_step" in c["note"]
    defs = [{"name": "loss", "step_metric": "global_step"}]
    assert choose("loss", cands, defs, None, xs.get)["key"] == "global_step"
    assert choose("loss", cands, defs, "_step", xs.get)["why"] == "asked for"


def test_find_keys_common_namings():
    from wandb_lens.analysis.keys import find_keys

    assert find_keys(["train/loss", "eval/loss", "train/learning_rate", "train/grad_norm"]) == {
        "train": "train/loss", "val": "eval/loss", "lr": "train/learning_rate", "grad_norm": "train/grad_norm",
        "accuracy": None, "throughput": None, "return": None}
    f = find_keys(["loss", "validation/loss", "lr-AdamW", "samples_per_sec", "val/acc"])
    assert (f["train"], f["val"], f["lr"], f["throughput"], f["accuracy"]) == (
        "loss", "validation/loss", "lr-AdamW", "samples_per_sec", "val/acc")


def test_compare_diverged_run_never_ranks_first():
    """Regression: a diverged run's huge final std tied it with every run, and it won on smoothness."""
    from wandb_lens.analysis.compare import rank

    feats = {"ok": {"final_mean": 0.09, "final_std": 0.001, "smoothness": 0.01},
             "blown": {"final_mean": 2.6e286, "final_std": 1e287, "smoothness": 1e-9, "divergence": {"detected": True}},
             "meh": {"final_mean": 0.2, "final_std": 0.01, "smoothness": 0.02}}
    assert rank(feats, "min") == ["ok", "meh", "blown"]


def test_compare_matches_each_runs_own_validation_key(lens):
    """Demo runs name validation loss val/loss or val_loss: by default each run's own key is used."""
    out = lens("compare_runs", runs=["baseline-cosine", "plateau-tiny-lr", "overfit-wide-model"]).json
    keys = {_nm(r["run"]): r["key"] for r in out["ranking"]}
    assert out["metric"] == "val" and keys["baseline-cosine"] == "val/loss"
    assert keys["plateau-tiny-lr"] == "val_loss" and "missing_metric" not in out
    assert [_nm(r["run"]) for r in out["ranking"]] == ["baseline-cosine", "overfit-wide-model", "plateau-tiny-lr"]
    assert all(r["run"].endswith(")") for r in out["ranking"])  # always `name (id)`
    one = lens("compare_runs", runs=["baseline-cosine", "still-improving"], metric="train").json
    assert one["metric"] == "train/loss" and "keys" not in one


def test_step_metric_declared_for_other_keys_is_not_used_for_train():
    """Regression: define_metric("val/*", step_metric="epoch") made train/loss read on epoch."""
    import numpy as np

    from wandb_lens.analysis.step_axis import candidates, choose

    n = 100
    numeric = {"_step": np.arange(n, dtype=float), "epoch": np.repeat(np.arange(10.0), 10),
               "train/loss": np.linspace(1, 0, n), "val/loss": np.linspace(1, 0, n)}
    defs = [{"name": "val/*", "glob": True, "step_metric": "epoch"}]
    cands = candidates(numeric, defs)
    xs = {k: v for k, v in numeric.items()}
    assert choose("train/loss", cands, defs, None, lambda k: xs.get(k))["key"] == "_step"
    assert choose("val/loss", cands, defs, None, lambda k: xs.get(k))["key"] == "epoch"


def test_all_nan_train_with_validation_is_diverged_not_a_crash(dx):
    """Regression: an all-NaN train metric with a validation key crashed judge() (IndexError)."""
    out = ok(dx("diagnose_run", run="odd-keys", train_key="allnan", val_key="loss"))
    assert out["verdict"] == "diverged" and "finite point" in out["evidence"][0]


def test_profile_positions_are_reported_as_logged_steps():
    """Regression: divergence start / plateaus came from bucket means (e.g. 250012.5), not real steps."""
    import numpy as np

    from wandb_lens.analysis.curves import curve_features

    s = np.arange(0, 300_000, 3.0)
    y = np.exp(-s / 1e5) + 0.01 * np.random.default_rng(0).normal(size=s.size)
    y[60_000:] += (s[60_000:] - 180_000) / 1e5
    f = curve_features(s, y, "min")
    start = f["divergence"]["start_step"]
    assert f["divergence"]["detected"] and start % 3 == 0 and 170_000 <= start <= 200_000
    assert all(a % 3 == 0 and b % 3 == 0 for a, b in f["plateaus"])


def test_common_steps_keep_fractional_axes():
    """Regression: values at common steps rounded an epoch axis (0.5 .. 3.0) to integers, even below
    the runs' first step."""
    import numpy as np

    from wandb_lens.analysis.compare import at_common_steps

    x = np.linspace(0.5, 3.0, 26)
    out = at_common_steps({"a": (x, x * 2), "b": (x, x * 3)})
    assert out["steps"][0] == 0.5 and out["steps"][-1] == 3.0 and len(out["steps"]) == 5
    assert out["values"]["a"][0] == 1.0


def test_compare_ranks_marked_runs_last_and_few_points_keep_a_noise():
    """A run that died (diverged verdict) ranks last whatever its last value; two runs with 4 validation
    points each (final std over 3 points ~0) still get a noise estimate for the tie test."""
    from wandb_lens.analysis.compare import rank, tied

    feats = {"died-at-6": {"final_mean": 0.01, "final_std": 0.0}, "ok": {"final_mean": 0.5, "final_std": 0.01},
             "ok2": {"final_mean": 0.6, "final_std": 0.01}}
    assert rank(feats, "min", {"died-at-6"}) == ["ok", "ok2", "died-at-6"]
    a = {"final_mean": 1.00, "final_std": 0.0, "final_noise": 0.05}
    b = {"final_mean": 1.06, "final_std": 0.0, "final_noise": 0.04}
    assert tied(a, b) and not tied(a, {**b, "final_mean": 1.2})
