"""The labelled scenario suite (tests/labelled_suite.py) judged by diagnose_run through an MCP client:
the accuracy targets of issue 12, the false-alarm rate on healthy/converged runs, and the answer size.
The same figures are printed by benchmarks/bench_verdicts.py into BENCHMARKS.md."""

from __future__ import annotations

import labelled_suite as S
import suite_eval as E
import pytest
from conftest import call


@pytest.fixture(scope="module")
def judged(tmp_path_factory):
    from wandb_lens.app import AppConfig
    from wandb_lens.server import build_server

    runs, labels = S.ensure()
    server = build_server(AppConfig(runs_dirs=[str(runs / "wandb")], cache_dir=str(tmp_path_factory.mktemp("vc"))))

    def one(name):
        r = call(server, "diagnose_run", {"run": name})
        return (None if r.is_error else r.json), len(r.text.encode())

    return labels, E.evaluate(one, labels)


def test_suite_is_large_varied_and_justified(judged):
    labels, _ = judged
    runs = labels["runs"]
    assert len(runs) >= 40
    by = {v: sum(m["verdict"] == v for m in runs.values()) for v in E.VERDICTS}
    assert min(by.values()) >= 4, by
    assert sum(m["source"] == "torch" for m in runs.values()) >= 20
    assert sum(m["held_out"] for m in runs.values()) >= 6
    assert all(m["why"] and len(m["why"]) <= 110 for m in runs.values())


def test_accuracy_and_no_false_alarms(judged):
    _, res = judged
    tuned, held, every = res["tuned"], res["held_out"], res["all"]
    assert tuned["accuracy"] >= 0.95, tuned["wrong"]
    assert every["false_alarms"] == 0, every["wrong"]  # no healthy/converged run called a problem
    assert held["accuracy"] >= 0.8, held["wrong"]
    assert res["max_bytes"] <= 2500
