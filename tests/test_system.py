"""System metrics from local run logs (stats records, W&B's names) and system_health, through an
MCP client on runs written by real wandb (GPU samples published through wandb's own stats call,
see wandb_lens.demo_extras)."""

from __future__ import annotations

import numpy as np


def test_system_keys_are_history_keys_with_wandb_names(xlens):
    keys = xlens("describe_run", run="input-bound-gpu").json["history"]["keys"]
    assert keys["system/gpu.0.gpu"]["n"] == 30 and keys["system/cpu"]["n"] == 30
    assert {"system/gpu.0.memoryAllocated", "system/memory_percent", "system/proc.memory.rssMB"} <= set(keys)
    f = xlens("curve_features", run="leaky-memory", metrics=["system/gpu.0.memoryAllocated"]).json
    m = f["metrics"]["system/gpu.0.memoryAllocated"]
    assert m["first"] == 20 and m["last"] == 92.5 and m["last_step"] == 290


def test_input_bound_gpu_and_a_slow_stretch(xlens):
    a = xlens("system_health", run="input-bound-gpu").json
    assert a["verdict"] == ["gpu_underused", "slow_steps"]
    f = a["findings"][0]
    assert f["key"] == "system/gpu.0.gpu" and 8 <= f["median_util"] <= 22 and f["reading"].startswith("input-bound")
    # the demo sleeps 20x longer at steps 150-199 (a loaded machine may add stretches of its own)
    assert any(145 <= lo <= 156 and 194 <= hi <= 206 for lo, hi in (g["steps"] for g in a["step_timing"]["slow_stretches"]))
    assert a["gpus"] == 1 and len(xlens("system_health", run="input-bound-gpu").text) <= 3000


def test_growing_memory_is_a_leak(xlens):
    a = xlens("system_health", run="leaky-memory").json
    assert "memory_growing" in a["verdict"] and "gpu_underused" not in a["verdict"]  # (slow_steps: machine load)
    what = {f["what"]: f for f in a["findings"]}
    assert set(what) == {"GPU 0 memory", "process RSS", "host memory"}
    g = what["GPU 0 memory"]
    assert g["from"] < 40 and g["to"] > 85 and g["per_1k_steps"] > 150 and g["full_at_step_est"] > 290


def test_run_without_system_metrics_says_so(xlens):
    a = xlens("system_health", run="crash-raises").json
    assert a["system"].startswith("none: the run log has no system-metric")
    assert "memory_growing" not in a["verdict"] and "gpu_underused" not in a["verdict"]


def test_memory_that_plateaus_after_warm_up_is_not_a_leak():
    from wandb_lens.analysis.system import memory_growth

    t = np.arange(200.0)
    warm = np.minimum(80.0, 20 + t * 3)  # the caching allocator fills up, then stays
    rows_t, rows_s = t.copy(), np.arange(200)
    assert memory_growth({"system/gpu.0.memoryAllocated": (t, warm)}, rows_t, rows_s) == []
    noisy = 30 + 0.2 * t + np.random.default_rng(0).normal(0, 0.5, 200)
    found = memory_growth({"system/gpu.0.memoryAllocated": (t, noisy)}, rows_t, rows_s)
    assert found and 0.15 < found[0]["per_1k_steps"] / 1000 < 0.25
