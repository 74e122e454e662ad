"""sweep_analysis on a 16-run sweep group written by real wandb (val/loss falls with log lr and rises
with weight decay; four other keys are noise), and the importance rule on a synthetic sweep."""

from __future__ import annotations

import numpy as np


def test_group_as_one_experiment(xlens):
    r = xlens("sweep_analysis", group="sweep-lr-wd")
    assert not r.is_error, r.text
    assert [b.type for b in r.raw.content] == ["image", "text", "resource_link"]
    a = json_of(r)
    assert a["runs"] == 16 and a["runs_with_metric"] == 16 and a["metric"] == "val/loss" and a["goal"] == "min"
    rows = {p[0]: p for p in a["params"]["rows"]}
    assert set(rows) == {"lr", "weight_decay", "batch_size", "dropout", "warmup_steps", "seed"}
    assert a["params"]["rows"][0][0] == "lr" and rows["lr"][3] < -0.7  # lower loss with higher lr
    assert abs(sum(p[1] for p in a["params"]["rows"]) - 1) < 0.01
    best = a["best"]["rows"][0]
    assert best[1] == min(row[1] for row in a["best"]["rows"]) and "lr" in best[2]
    assert "only 16 runs" in a["warning"] and len(r.texts[0]) <= 3000


def test_unknown_group_and_metric(xlens):
    r = xlens("sweep_analysis", group="sweep-lr")
    assert r.is_error and "sweep-lr-wd" in r.text
    r = xlens("sweep_analysis", group="sweep-lr-wd", metric="val/los")
    assert r.is_error and "val/loss" in r.text


def test_sweep_by_id(xlens):
    """The demo sweep's runs record the agent's sweep id (RunRecord.sweep_id), kept in the run index."""
    from wandb_lens.demo_extras import SWEEP_ID
    from wandb_lens.tour import STEPS

    assert any(args.get("sweep") == SWEEP_ID for _, tool, args in STEPS if tool == "sweep_analysis")  # the tour's

    r0 = xlens("sweep_analysis", sweep=SWEEP_ID)
    assert not r0.is_error, r0.text
    a = json_of(r0)
    assert a["runs"] == 16 and a["sweep"] == {"id": SWEEP_ID} and a["metric"] == "val/loss"
    assert a["params"]["rows"][0][0] == "lr"
    r1 = xlens("query_runs", project="lens-sweep", filters={"sweep": SWEEP_ID}, limit=50)
    assert not r1.is_error, r1.text
    q = json_of(r1)
    assert q["total"] == 16
    d = json_of(xlens("describe_run", run=f"lens-sweep/{q['runs'][0]['id']}"))
    assert d["sweep"] == SWEEP_ID
    r = xlens("sweep_analysis", sweep=SWEEP_ID[:-1] + "z")
    assert r.is_error and f"Unknown sweep {SWEEP_ID[:-1] + 'z'!r}" in r.text and f"Close matches: {SWEEP_ID}" in r.text


def test_importance_ranks_the_two_parameters_that_matter():
    from wandb_lens.analysis.importance import importance_table

    rng = np.random.default_rng(3)
    n = 200
    params = {"lr": list(10 ** rng.uniform(-4, -1, n)), "weight_decay": list(rng.choice([0.0, 1e-3, 1e-2, 3e-2], n)),
              "batch_size": list(rng.choice([16, 32, 64], n).tolist()), "dropout": list(rng.uniform(0, 0.5, n)),
              "optimizer": list(rng.choice(["adam", "sgd", "adamw"], n)), "seed": list(range(n))}
    y = (np.log10(params["lr"]) + 2.5) ** 2 + 30 * np.asarray(params["weight_decay"]) + rng.normal(0, 0.05, n)
    rows = importance_table(params, y)
    assert {rows[0]["param"], rows[1]["param"]} == {"lr", "weight_decay"}
    assert rows[0]["importance"] + rows[1]["importance"] > 0.85
    assert next(r for r in rows if r["param"] == "optimizer")["categorical"]


def json_of(r):
    import json

    return json.loads(r.texts[0])
