"""Plot tools through an MCP client: decoded PNGs, resource links, decimation, bad input.

The demo runs (real wandb offline files) cover the realistic path; a small in-memory run source
covers what the demo does not log (40 runs, one point, all-NaN, per-layer norms, 1,000,000 points).
"""

from __future__ import annotations

import base64
import io
import json
import struct
import subprocess
import sys

import anyio
import numpy as np
import pytest

from conftest import call

ROLES = ["train", "val", "lr", "grad_norm"]


def _png(result) -> tuple[bytes, int, int]:
    blocks = [b for b in result.raw.content if b.type == "image"]
    assert len(blocks) == 1 and blocks[0].mime_type == "image/png"
    data = base64.b64decode(blocks[0].data)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = struct.unpack(">II", data[16:24])
    assert len(data) <= 300_000 and max(w, h) <= 1600
    from PIL import Image

    img = np.asarray(Image.open(io.BytesIO(data)).convert("L"), dtype=np.float64)
    assert img.shape == (h, w)
    assert img.std() > 10 and (img < 128).mean() > 0.005  # not blank: lines and text are drawn
    return data, w, h


def _parts(result):
    assert not result.is_error, result.text
    kinds = [b.type for b in result.raw.content]
    assert kinds == ["image", "text", "resource_link"], kinds
    link = result.raw.content[2]
    return _png(result), json.loads(result.text), link


def _read(server, uri: str):
    from mcp import Client

    async def go():
        async with Client(server) as c:
            return (await c.read_resource(uri)).contents

    return anyio.run(go)


# ----- demo runs ----------------------------------------------------------------------------
def test_overview_image_text_and_link(lens, demo_server):
    (png, w, h), text, link = _parts(lens("plot_overview", run="lens-demo/baseline-cosine"))
    assert [p["metric"] for p in text["panels"]] == ["train/loss", "val/loss", "lr", "grad_norm"]
    assert all(p["step_key"] == "_step" for p in text["panels"])
    val = text["panels"][1]
    assert val["points"] == 40 and val["min"] < val["last"] * 1.5
    assert text["plot"] == link.uri and link.uri.startswith("wandb-lens://plots/") and link.uri.endswith(".png")
    assert link.mime_type == "image/png" and link.size == len(png)
    contents = _read(demo_server, link.uri)
    assert len(contents) == 1 and contents[0].mime_type == "image/png"
    assert base64.b64decode(contents[0].blob) == png
    assert len(lens("plot_overview", run="lens-demo/baseline-cosine").text.encode()) < 1500


def test_identical_request_reuses_cached_image(lens, demo_server):
    first = lens("plot_overview", run="still-improving")
    n = len(demo_server.plot_cache)
    again = lens("plot_overview", run="lens-demo/still-improving")
    assert again.raw.content[2].uri == first.raw.content[2].uri
    assert again.raw.content[0].data == first.raw.content[0].data
    assert len(demo_server.plot_cache) == n
    other = lens("plot_overview", run="still-improving", metrics=["train/loss"])
    assert other.raw.content[2].uri != first.raw.content[2].uri


def test_overview_uses_declared_step_metric_and_explicit_metrics(lens):
    _, text, _ = _parts(lens("plot_overview", run="custom-step-axis"))
    by = {p["metric"]: p for p in text["panels"]}
    assert by["train/loss"]["step_key"] == "trainer/global_step"
    assert by["eval/loss"]["step_key"] == "trainer/global_step" and by["eval/loss"]["points"] == 20
    (_, w, h), text, _ = _parts(lens("plot_overview", run="custom-step-axis", metrics=["train/loss"], step_key="_step"))
    assert [p["step_key"] for p in text["panels"]] == ["_step"] and w > h


def test_overview_marks_spikes_and_huge_values(lens):
    _, text, _ = _parts(lens("plot_overview", run="spiky-bad-batches"))
    loss = text["panels"][0]
    assert loss["metric"] == "train/loss" and loss["spikes"] >= 3 and loss["spike_steps"]
    _, text, _ = _parts(lens("plot_overview", run="lr-too-high"))  # values up to ~1e300 or NaN: still an image
    assert text["panels"][0]["metric"] == "loss"


def test_comparison_of_all_demo_runs_by_role(lens):
    r = lens("plot_comparison", runs=["baseline-cosine", "still-improving", "lr-too-high", "overfit-wide-model",
                                      "plateau-tiny-lr", "spiky-bad-batches", "custom-step-axis", "killed-mid-run"],
             metric="train", highlight="baseline-cosine")
    (_, w, h), text, _ = _parts(r)
    assert len(text["shown"]) == 6 and len(text["left_out"]) == 2
    assert "baseline-cosine" in [s["name"] for s in text["shown"]]
    assert sorted(s["rank"] for s in text["shown"]) == sorted(s["rank"] for s in text["shown"])
    assert {s["metric"] for s in text["shown"]} <= {"train/loss", "loss", "train_loss"}


def test_grad_histogram_heatmap(lens):
    (_, w, h), text, _ = _parts(lens("plot_grad_histograms", run="spiky-bad-batches"))
    assert text["layers_total"] == 2 and text["buckets"] == 24
    assert {r["layer"] for r in text["layers"]} == {"layer0.weight", "layer0.bias"}
    assert all(r["n"] == 24 for r in text["layers"])
    r = lens("plot_grad_histograms", run="baseline-cosine")
    assert r.is_error and "no histogram keys under 'gradients/'" in r.text
    r = lens("plot_grad_histograms", run="spiky-bad-batches", stat="median")
    assert r.is_error and "mean_abs" in r.text


def test_demo_bad_input(lens):
    r = lens("plot_overview", run="baseline-cosin")
    assert r.is_error and "baseline-cosine" in r.text
    r = lens("plot_overview", run="baseline-cosine", step_key="epoch")
    assert r.is_error and "Unknown step_key 'epoch'" in r.text
    r = lens("plot_overview", run="baseline-cosine", metrics=["val/los"])
    assert r.is_error and "val/loss" in r.text
    r = lens("plot_comparison", runs=[], metric="loss")
    assert r.is_error and "non-empty" in r.text
    r = lens("plot_comparison", runs=["baseline-cosine", "nope-run"], metric="train/loss")
    assert r.is_error and "nope-run" in r.text
    r = lens("plot_comparison", runs=["baseline-cosine"], metric="no/such")
    assert r.is_error and "None of the 1 runs logs 'no/such'" in r.text
    r = lens("plot_comparison", runs=["baseline-cosine"], metric="train/loss", highlight="killed-mid-run")
    assert r.is_error and "not one of the runs" in r.text
    r = lens("plot_grad_norm_by_layer", run="baseline-cosine")
    assert r.is_error and "No per-layer gradient-norm keys" in r.text
    assert not lens("list_projects").is_error


def test_tools_list_budget_and_template(demo_server):
    from mcp import Client

    async def go():
        async with Client(demo_server) as c:
            return (await c.list_tools()).tools, (await c.list_resource_templates()).resource_templates

    tools, templates = anyio.run(go)
    mine = [t for t in tools if t.name.startswith("plot_")]
    assert len(mine) == 4
    size = sum(len(t.model_dump_json(by_alias=True, exclude_none=True)) for t in mine)
    # the plot family's share of the 16,000-byte tools/list budget (test_tools_list_snapshot), now
    # with a short description per parameter and step_min/step_max/smoothing
    assert size <= 3400, size
    assert any(t.uri_template == "wandb-lens://plots/{plot_id}.png" for t in templates)


def test_unknown_plot_resource_is_a_clear_error(demo_server):
    with pytest.raises(Exception) as exc:
        _read(demo_server, "wandb-lens://plots/0000000000000000.png")
    assert "not in the cache" in repr(exc.value)


def test_matplotlib_not_imported_at_server_start(demo_dir):
    code = ("import sys; from wandb_lens.server import build_server; from wandb_lens.app import AppConfig; "
            f"build_server(AppConfig(runs_dirs=[{str(demo_dir / 'wandb')!r}])); "
            "print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr[-2000:]


# ----- decimation -----------------------------------------------------------------------------
def test_decimation_keeps_every_bucket_extreme_on_a_million_points():
    from wandb_lens.plotting.decimate import bucket_ids, minmax_indices, minmax_indices_numpy

    rng = np.random.default_rng(3)
    n, buckets = 1_000_000, 700
    x = np.cumsum(rng.integers(1, 4, n)).astype(np.float64)  # uneven steps
    y = np.cumsum(rng.normal(size=n))
    y[rng.integers(0, n, 25)] += 500.0  # single-point spikes
    y[rng.integers(0, n, 25)] -= 500.0
    ids = bucket_ids(x, buckets)
    hi = np.full(buckets, -np.inf)
    lo = np.full(buckets, np.inf)
    np.maximum.at(hi, ids, y)
    np.minimum.at(lo, ids, y)
    for fn in (minmax_indices, minmax_indices_numpy):
        idx = fn(x, y, buckets)
        assert idx.size <= 2 * buckets + 2 and np.all(np.diff(idx) > 0)
        kept_hi = np.full(buckets, -np.inf)
        kept_lo = np.full(buckets, np.inf)
        np.maximum.at(kept_hi, ids[idx], y[idx])
        np.minimum.at(kept_lo, ids[idx], y[idx])
        assert np.array_equal(kept_hi, hi) and np.array_equal(kept_lo, lo)
        assert idx[0] == 0 and idx[-1] == n - 1


# ----- an in-memory source for what the demo does not log ----------------------------------------
class _Source:
    kind = "memory"

    def __init__(self, runs):
        self.runs = runs  # id -> (RunInfo, History)

    def describe_location(self):
        return "memory"

    def list_runs(self, project=None):
        return [info for info, _ in self.runs.values() if project in (None, info.project)]

    def get_run(self, ref):
        from wandb_lens.errors import LensError, suggest

        rid = ref.split("/")[-1]
        if rid in self.runs:
            return self.runs[rid][0]
        raise LensError(suggest("run", rid, list(self.runs)).replace("Unknown run", "No run", 1))

    def history(self, info, keys=None):
        return self.runs[info.id][1]


def _history(series: dict[str, tuple[np.ndarray, np.ndarray]]):
    """A History from {key: (steps, values)}: each key in its own rows, as separate log() calls."""
    from wandb_lens.sources.history import NUMERIC, Column, History

    steps = np.unique(np.concatenate([s for s, _ in series.values()])).astype(np.int64)
    cols = {"_step": Column(NUMERIC, np.arange(steps.size), steps.astype(np.float64))}
    for key, (s, v) in series.items():
        cols[key] = Column(NUMERIC, np.searchsorted(steps, s), np.asarray(v, dtype=np.float64))
    return History(steps, cols)


def _add_histograms(hist, rng):
    """gradients/live (a real spread every 10 steps) and gradients/dead (all mass in the zero bin)."""
    from wandb_lens.sources.history import HISTOGRAM, Column

    rows = np.arange(0, hist.n_rows, 10)
    edges = np.linspace(-1, 1, 33)
    live = [np.histogram(rng.normal(0, 0.3, 500), bins=edges)[0].astype(float) for _ in rows]
    dead_edges = np.linspace(-1e-9, 1e-9, 33)
    dead = [np.eye(32)[16] * 500.0 for _ in rows]
    hist.columns["gradients/live"] = Column(HISTOGRAM, rows, live, [edges] * rows.size)
    hist.columns["gradients/dead"] = Column(HISTOGRAM, rows, dead, [dead_edges] * rows.size)


@pytest.fixture(scope="module")
def mem():
    from wandb_lens.app import App, AppConfig
    from wandb_lens.server import build_server
    from wandb_lens.sources.base import RunInfo

    rng = np.random.default_rng(0)
    runs = {}

    def add(rid, series, **kw):
        runs[rid] = (RunInfo(id=rid, project="mem", name=rid, **kw), _history(series))

    s = np.arange(300)
    for i in range(40):
        add(f"sweep-{i:02d}", {"loss": (s, 2.0 * np.exp(-s / 30) + 0.1 + 0.05 * i + rng.normal(0, 0.01, 300))})
    add("one-point", {"loss": (np.array([7]), np.array([0.5]))})
    add("all-nan", {"loss": (s, np.full(300, np.nan)), "lr": (s, np.full(300, 1e-3))})
    layers = {f"grad_norm/layer{j}": (s, 1.0 + 0.1 * j + rng.normal(0, 0.01, 300)) for j in range(20)}
    layers["grad_norm/layer3"][1][150] = 50.0
    add("layers", {"loss": (s, np.exp(-s / 50)), **layers})
    add("dead-layer", {"loss": (s, np.exp(-s / 50))})
    _add_histograms(runs["dead-layer"][1], rng)
    # noisy minibatch loss near 0.5 for 850 steps, then a rise of 6 decades; val every 50 steps, own rows
    s1k = np.arange(1000)
    boom = 0.5 * rng.lognormal(0, 0.3, 1000)
    boom[850:] *= 10 ** ((s1k[850:] - 850) / 25)
    sv = np.arange(25, 1000, 50)
    add("explodes", {"train/loss": (s1k, boom), "val/loss": (sv, 0.6 * 10 ** (np.maximum(sv - 850, 0) / 25))})
    big = np.arange(1_000_000)
    yb = 1.0 + rng.normal(0, 0.01, big.size)
    yb[123_457] = 9.0
    add("million", {"loss": (big, yb)})
    app = App(AppConfig(runs_dirs=["/nonexistent"]))
    app.use("runs", _Source(runs))
    return build_server(app=app)


def test_forty_runs_plot_six_best_and_name_the_rest(mem):
    refs = [f"sweep-{i:02d}" for i in range(40)]
    (_, w, h), text, _ = _parts(call(mem, "plot_comparison", {"runs": refs, "metric": "loss"}))
    assert text["runs_asked"] == 40 and len(text["shown"]) == 6 and len(text["left_out"]) == 34
    assert [s["name"] for s in text["shown"]] == refs[:6]  # lower final loss for lower i
    r = call(mem, "plot_comparison", {"runs": refs * 2, "metric": "loss"})
    assert r.is_error and "at most 50" in r.text


def test_one_point_and_all_nan_are_drawn_with_a_message(mem):
    _, text, _ = _parts(call(mem, "plot_overview", {"run": "one-point"}))
    assert text["panels"][0]["points"] == 1 and text["panels"][0]["last"] == 0.5
    _, text, _ = _parts(call(mem, "plot_overview", {"run": "all-nan"}))
    loss = next(p for p in text["panels"] if p["metric"] == "loss")
    assert loss["nan_inf"] == 300 and loss["first_nan_step"] == 0
    (_, w, h), text, _ = _parts(call(mem, "plot_overview", {"run": "all-nan", "metrics": ["loss"]}))


def test_grad_norm_small_multiples_cap_at_16(mem):
    (_, w, h), text, _ = _parts(call(mem, "plot_grad_norm_by_layer", {"run": "layers"}))
    assert text["prefix"] == "grad_norm/" and text["layers_total"] == 20 and text["shown"] == 16
    assert text["left_out"] == ["layer16", "layer17", "layer18", "layer19"]
    l3 = next(r for r in text["layers"] if r["metric"] == "layer3")
    assert l3["spikes"] >= 1 and 150 in l3["spike_steps"]
    r = call(mem, "plot_grad_norm_by_layer", {"run": "layers", "prefix": "nope/"})
    assert r.is_error and "grad_norm/" in r.text


def test_million_point_overview_keeps_the_spike(mem):
    _, text, _ = _parts(call(mem, "plot_overview", {"run": "million"}))
    p = text["panels"][0]
    assert p["points"] == 1_000_000 and 123_457 in p["spike_steps"]


def test_comparison_refuses_a_histogram_step_key(lens):
    """Regression: a text or histogram step key passed the 'logged?' check and failed converting."""
    r = lens("plot_comparison", runs=["spiky-bad-batches", "baseline-cosine"], metric="train/loss",
             step_key="gradients/layer0.weight")
    assert r.is_error and "holds histogram values, not a scalar curve" in r.text


def test_heatmap_and_curve_features_agree_on_dead_layers(mem):
    """Regression: the heatmap called a layer dead only when every value was exactly 0, while
    curve_features (analysis.gradients) applies the documented rule; now both use the latter."""
    (_, w, h), text, _ = _parts(call(mem, "plot_grad_histograms", {"run": "dead-layer"}))
    feats = call(mem, "curve_features", {"run": "dead-layer", "metrics": ["gradients/"]}).json
    table = feats["metrics"]["gradients/"]["histograms"]
    assert table["dead_layers"] == ["gradients/dead"]
    assert text["dead_layers"] == ["dead"] and w > 0 and h > 0


# ----- step range, clipped explosions, trend, train + val in one panel -----------------------------
def test_exploding_curve_keeps_its_lead_up_readable(mem):
    _, text, _ = _parts(call(mem, "plot_overview", {"run": "explodes"}))
    assert text["layout"] == ["train/loss + val/loss"]
    train, val = text["panels"]
    cut = train["clipped"]
    lead_up = 0.5 * np.random.default_rng(0).lognormal(0, 0.3, 10_000)  # same law as the lead-up's noise
    assert cut["above"] >= np.quantile(lead_up, 0.99)  # the lead-up's noise is inside the y range
    assert cut["above"] < 10  # ... and the 6 exploded decades are not
    assert 850 < cut["from_step"] < 900 and cut["max"] > 1e5 and 100 < cut["points"] <= 150
    assert val["points"] == 20 and val["step_key"] == "_step"  # own rows, paired by step


def test_step_range_filters_points_and_is_stated(mem, lens):
    _, text, _ = _parts(call(mem, "plot_overview", {"run": "explodes", "step_min": 100, "step_max": 600}))
    train, val = text["panels"]
    assert text["step_range"] == {"min": 100, "max": 600}
    assert train["points"] == 501 and val["points"] == 10 and "clipped" not in train
    assert 100 <= train["min_step"] <= 600
    _, text, _ = _parts(call(mem, "plot_overview", {"run": "explodes", "step_min": 900}))
    assert text["step_range"] == {"min": 900} and text["panels"][0]["points"] == 100
    _, text, _ = _parts(lens("plot_comparison", runs=["baseline-cosine", "still-improving"], metric="val",
                             step_max=100))
    assert text["step_range"] == {"max": 100} and all(r["points"] == 4 for r in text["shown"])
    _, text, _ = _parts(lens("plot_grad_histograms", run="spiky-bad-batches", step_min=300))
    assert text["step_range"] == {"min": 300} and text["buckets"] < 24 and text["steps"][0] >= 300
    assert all(r["n"] < 24 for r in text["layers"])
    _, text, _ = _parts(call(mem, "plot_grad_norm_by_layer", {"run": "layers", "step_max": 99}))
    assert all(r["points"] == 100 for r in text["layers"])
    r = call(mem, "plot_overview", {"run": "explodes", "step_min": 600, "step_max": 100})
    assert r.is_error and "step_min (600) is greater than step_max (100)" in r.text
    r = lens("plot_grad_histograms", run="spiky-bad-batches", step_min=10_000)
    assert r.is_error and "in steps >= 10000 (logged" in r.text


def test_answer_states_the_smoothing(mem):
    _, text, _ = _parts(call(mem, "plot_overview", {"run": "explodes"}))
    assert text["smoothing"].startswith("time-weighted EMA 0.8 as W&B")
    _, text, _ = _parts(call(mem, "plot_overview", {"run": "explodes", "smoothing": 0}))
    assert text["smoothing"].startswith("off")
    r = call(mem, "plot_overview", {"run": "explodes", "smoothing": 1.5})
    assert r.is_error and "smoothing must be a number in [0, 1)" in r.text


def test_twema_matches_wandbs_formula():
    """W&B's documented loop, point by point, against the vectorised version (uneven steps)."""
    import math

    from wandb_lens.plotting.smooth import twema

    rng = np.random.default_rng(1)
    x = np.cumsum(rng.integers(1, 9, 2000)).astype(float)
    y = rng.lognormal(0, 1, 2000)
    for smoothing in (0.3, 0.9, 0.99):
        w = min(math.sqrt(smoothing), 0.999)
        last = debias = 0.0
        want = []
        for i in range(y.size):
            change = (x[i] - x[max(i - 1, 0)]) / (x[-1] - x[0]) * 1000
            last = last * w ** change + y[i]
            debias = debias * w ** change + 1
            want.append(last / debias)
        assert np.allclose(twema(x, y, smoothing), want, rtol=1e-9)


def test_explosion_rule_leaves_ordinary_curves_whole(lens):
    """Spikes that come back down, a descent, an overfit rise: drawn whole, nothing clipped."""
    for run in ("spiky-bad-batches", "overfit-wide-model", "baseline-cosine", "lr-too-high"):
        _, text, _ = _parts(lens("plot_overview", run=run))
        assert not any("clipped" in p for p in text["panels"]), run
    _, text, _ = _parts(lens("plot_overview", run="custom-step-axis"))
    assert text["layout"][0] == "train/loss + eval/loss"
