"""The bad-input catalogue: every tool (as tools/list names them) against hostile arguments, through
one in-memory MCP client session on real demo runs and the real demo Weave store.

For each input the answer is a tool error that says what was wrong (no traceback, no pydantic
noise, no generic crash text) or a correct answer; the server answers the next request; and no
answer holds anything from outside the configured roots (a canary file and a whole run folder sit
right beside the runs folder, and a symlink inside the root points at that run).
Per-tool input counts (for RELIABILITY.md): `python tests/test_bad_input.py`.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time

import pytest

from hostile import CANARY, INSIDE, OUTSIDE, alive, build_env, check

SIZE_LIMIT = 200_000  # bytes of text in any answer, whatever was asked
RUN_REF = {"run", "runs", "highlight", "eval_id", "eval_ids", "call_id"}  # must name something that exists


def valid_args(env) -> dict[str, dict]:
    """Arguments each tool answers without error: the mutations start from these."""
    e1, e2 = env.evals[:2]
    two = ["baseline-cosine", "still-improving"]
    return {
        "list_projects": {}, "query_runs": {}, "describe_run": {"run": "baseline-cosine"},
        "curve_features": {"run": "baseline-cosine"}, "diagnose_run": {"run": "baseline-cosine"},
        "compare_runs": {"runs": two}, "plot_overview": {"run": "baseline-cosine"},
        "plot_comparison": {"runs": two, "metric": "val"}, "plot_grad_histograms": {"run": "spiky-bad-batches"},
        "plot_grad_norm_by_layer": {"run": "spiky-bad-batches", "prefix": "train/"}, "eval_health": {}, "eval_efficiency": {},
        "eval_results": {"eval_id": e1}, "compare_evals": {"eval_ids": [e1, e2]}, "trace_stats": {},
        "get_call": {"call_id": e1}, "run_logs": {"run": "baseline-cosine"}, "query_calls": {},
        "call_schema": {"op": "Evaluation.predict_and_score"}, "system_health": {"run": "baseline-cosine"},
        "artifacts": {"project": "lens-demo"}, "sweep_analysis": {"group": "lr-sweep"},
        "get_history": {"run": "baseline-cosine", "keys": ["train/loss"]},
    }


def hostile_strings(env) -> list[str]:
    run_file = next(env.outside_run.glob("run-*.wandb"), env.outside_run / "run-x.wandb")
    return [
        "", " ", "../../../../etc/passwd", "/etc/passwd", "..%2F..%2F..%2Fetc%2Fpasswd",
        "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "..\\..\\windows\\win.ini", "~root/.ssh/id_rsa", "file:///etc/passwd",
        "weave:///../../../etc/passwd", f"../outside/{env.outside_run.name}", str(run_file), str(env.canary_file),
        f"lens-demo/../{OUTSIDE}", "offline-run-20990101_000000-linkedout", OUTSIDE,
        "\u202e\u0007\x1b[31m\r\n\t", "😀ñ漢字\ufeff\u200b", "\ud7ff\ue000\U0010fffd", "x" * 10_000,
        "$(id)`id`", "'; DROP TABLE calls; --", "%", "_", "*", "lens-demo/*", "a/b/c/d",
    ]


WRONG = {  # values of the wrong JSON type for each schema type
    "string": [12345, 1.5, True, ["a"], {"a": 1}],
    "integer": ["ten", 1.5, [1], {"n": 1}, "1e3x"],
    "number": ["ten", [1], {"n": 1}, "1e3x"],
    "boolean": ["maybe", 2, [True], {"b": True}],
    "array": ["not-a-list", 7, {"a": 1}, [1, None]],
    "object": ["not-an-object", 7, [1, 2]],
}


def cases_for(env, name: str, schema: dict) -> list[tuple[str, dict, list[str] | None]]:
    """(label, arguments, substrings the error must contain, or None: an error or a correct answer)."""
    base = valid_args(env)[name]
    props = schema.get("properties", {})
    required = schema.get("required", [])
    out: list[tuple[str, dict, list[str] | None]] = []
    for r in required:
        args = {k: v for k, v in base.items() if k != r}
        out.append((f"missing {r}", args, ["Missing required argument", repr(r)]))
    near = ["did you mean 'limit'"] if "limit" in props else []
    out.append(("extra misspelt", {**base, "limt": 5}, ["Unknown argument 'limt'", *near, "takes"]))
    out.append(("extra hidden ctx", {**base, "lens_ctx": {"headers": {}}}, ["Unknown argument 'lens_ctx'"]))
    out.append(("extra many", {**base, **{f"x{i}": i for i in range(50)}}, ["Unknown arguments", "and 45 more"]))
    strings = hostile_strings(env)
    for p, sch in props.items():
        kind = sch["type"]
        for bad in WRONG[kind]:
            if kind == "string" and bad is None:
                continue
            out.append((f"{p} wrong type {type(bad).__name__}", {**base, p: bad}, ["Invalid argument", f"'{p}"]))
        if kind == "string":
            out.append((f"{p} NUL", {**base, p: "a\x00b"}, ["NUL byte", repr(p)]))
            for s in strings:
                expect = ["Error executing tool"] if p in RUN_REF else None
                out.append((f"{p} hostile {s[:20]!r}", {**base, p: s}, expect))
        elif kind in ("integer", "number"):
            for n in (-1, 0, -10**12, 10**12, 2**63, 10**40) + ((0.5, -1e300, 1e300) if kind == "number" else ()):
                out.append((f"{p}={n}", {**base, p: n}, None))
        elif kind == "array":
            out.append((f"{p} empty", {**base, p: []}, None))
            out.append((f"{p} NUL item", {**base, p: ["ok", "a\x00"]}, ["NUL byte", repr(p)]))
            out.append((f"{p} 10k distinct", {**base, p: [f"k{i}" for i in range(10_000)]}, None))
            out.append((f"{p} 10k same", {**base, p: (base.get(p) or ["train/loss"])[:1] * 10_000}, None))
            for s in strings[:16]:
                expect = ["Error executing tool"] if p in RUN_REF else None
                out.append((f"{p} item {s[:20]!r}", {**base, p: [s, *(base.get(p) or [])]}, expect))
        elif kind == "object":
            out.append((f"{p} empty", {**base, p: {}}, None))
            deep: dict = {"state": "finished"}
            for _ in range(60):
                deep = {"$and": [deep]}
            out.append((f"{p} 60 deep", {**base, p: deep}, ["nested deeper than"]))
            wide = {f"config.k{i}": i for i in range(5_000)}
            out.append((f"{p} 5k keys", {**base, p: wide}, None))
            out.append((f"{p} NUL key", {**base, p: {"name\x00": 1}}, ["NUL byte"]))
        elif kind == "boolean":
            out.append((f"{p}=true", {**base, p: True}, None))
        elif kind == "number":
            for n in (-1, 0, 0.5, 1, -1e308, 1e308, 5e-324, 2**63):
                out.append((f"{p}={n}", {**base, p: n}, None))
    return out


@pytest.fixture(scope="module")
def env(tmp_path_factory, demo_dir, demo_ids, weave_db):
    e = build_env(tmp_path_factory.mktemp("bad-input"), demo_dir, demo_ids, weave_db["path"])
    yield e
    e.session.close()


@pytest.fixture(scope="module")
def schemas(env) -> dict[str, dict]:
    return {t.name: t.input_schema for t in env.session.tools()}


EXPECTED_TOOLS = sorted(["list_projects", "query_runs", "describe_run", "curve_features", "diagnose_run",
                         "compare_runs", "plot_overview", "plot_comparison", "plot_grad_histograms",
                         "plot_grad_norm_by_layer", "eval_health", "eval_results", "compare_evals",
                         "eval_efficiency", "trace_stats", "get_call", "run_logs", "query_calls",
                         "call_schema", "system_health", "artifacts", "sweep_analysis", "get_history"])


def test_catalogue_covers_every_listed_tool(env, schemas):
    assert sorted(schemas) == EXPECTED_TOOLS  # a new tool must be added to valid_args()
    for name, args in valid_args(env).items():
        r = check(env, env.call(name, args), name)
        assert not r.is_error, f"{name} {args}: {r.text[:300]}"


@pytest.mark.parametrize("tool", EXPECTED_TOOLS)
def test_bad_input_catalogue(env, schemas, tool):
    cases = cases_for(env, tool, schemas[tool])
    assert len(cases) >= 3
    for label, args, needles in cases:
        t0 = time.monotonic()
        r = check(env, env.call(tool, args), tool, args)
        took = time.monotonic() - t0
        assert took < 10, f"{tool} {label}: {took:.1f} s"
        assert sum(len(t) for t in r.texts) < SIZE_LIMIT, f"{tool} {label}: answer of {len(r.text)} bytes"
        if needles is not None:
            assert r.is_error, f"{tool} {label}: expected an error, got {r.text[:200]}"
            for n in needles:
                assert n in r.text, f"{tool} {label}: {n!r} not in {r.text[:400]}"
    alive(env)


# ----- the argument policy ------------------------------------------------------------------------
def test_unknown_argument_is_named_with_the_valid_ones(env):
    r = env.call("query_runs", {"limt": 5})
    assert r.is_error
    assert r.text == ("Error executing tool query_runs: Unknown argument 'limt' (did you mean 'limit'?). "
                      "query_runs takes: project, filters, order, limit, offset, metrics, config_keys.")
    r = env.call("list_projects", {"verbose": True})
    assert r.is_error and r.text.endswith("Unknown argument 'verbose'. list_projects takes no arguments.")
    r = env.call("describe_run", {"run_id": "baseline-cosine"})
    assert "Unknown argument 'run_id' (did you mean 'run'?)" in r.text and "run (required)" in r.text


def test_validation_errors_read_cleanly(env):
    r = env.call("query_runs", {"limit": "x"})
    assert r.text == ("Error executing tool query_runs: Invalid argument 'limit': Input should be a valid integer "
                      "(got 'x'). query_runs takes: project, filters, order, limit, offset, metrics, config_keys.")
    r = env.call("describe_run", {})
    assert r.text == "Error executing tool describe_run: Missing required argument 'run'. describe_run takes: run (required)."
    r = env.call("compare_runs", {"runs": ["a", 5]})
    assert "Invalid argument 'runs[1]': Input should be a valid string (got 5)." in r.text
    r = env.call("compare_runs", {"runs": list(range(10))})
    assert r.text.count("Invalid argument") == 3 and "(7 more problems.)" in r.text
    for text in (r.text, env.call("eval_results", {"eval_id": "x", "only_failed": "maybe"}).text):
        assert "errors.pydantic.dev" not in text and "input_value" not in text and "Arguments\n" not in text


def test_nul_bytes_are_refused_before_any_lookup(env):
    # a NUL once reached SQLite's LIKE, which stops at it: eval_health(name="\x00") listed every evaluation
    r = env.call("eval_health", {"name": "\x00"})
    assert r.is_error and "Invalid argument 'name': the text contains a NUL byte" in r.text
    r = env.call("query_runs", {"filters": {"$or": [{"name": "x"}, {"tags": {"$in": ["a\x00"]}}]}})
    assert r.is_error and "'filters'" in r.text and "NUL" in r.text


# ----- regressions for what the catalogue found --------------------------------------------------
def test_since_far_in_the_past_is_a_clear_error(env):
    # was: "trace_stats failed: OverflowError: Python int too large to convert to C int"
    for tool, since in (("trace_stats", "99999999999d"), ("eval_health", "100000000w"),
                        ("eval_health", "9" * 40 + "s")):
        r = check(env, env.call(tool, {"since": since}), tool)
        assert r.is_error and "reaches back before year 1" in r.text, r.text
    out = env.call("eval_health", {"since": "0001-01-01"}).json
    assert out["total"] == env.all_evals == 3


def test_name_substring_is_literal_not_a_like_pattern(env):
    # was: '%' and '_' went into SQL LIKE as wildcards, so name="%" matched every evaluation
    assert env.call("eval_health", {"name": "%"}).json["total"] == 0
    assert env.call("eval_health", {"name": "_"}).json["total"] == 0
    assert env.call("eval_health", {"name": "\\"}).json["total"] == 0
    assert env.call("eval_health", {"name": "CALCULATOR"}).json["total"] == 1


def test_column_lists_are_bounded(env):
    # was: 10,000 metric names were echoed back in "columns" (a 100 KB answer)
    r = env.call("query_runs", {"metrics": [f"m{i}" for i in range(10_000)]})
    assert r.is_error and "metrics takes at most 30 keys (got 10000)" in r.text
    r = env.call("query_runs", {"config_keys": ["lr"] * 31})
    assert r.is_error and "config_keys takes at most 30" in r.text
    # was: every key named in a 5,000-key filter came back as a column
    out = env.call("query_runs", {"filters": {f"config.k{i}": i for i in range(5_000)}}).json
    assert out["total"] == 0 and len(out["columns"]["config"]) == 30
    assert env.call("query_runs", {"metrics": ["val/loss"], "config_keys": ["lr"]}).json["columns"] == {
        "summary": ["val/loss"], "config": ["lr"]}


def test_filter_operator_arguments_are_checked(env):
    # were: accepted, matching nothing ($gt [1]) or everything ($exists {...})
    r = env.call("query_runs", {"filters": {"config.lr": {"$gt": [1]}}})
    assert r.is_error and "$gt on 'config.lr' takes a number or a string, got a list" in r.text
    r = env.call("query_runs", {"filters": {"config.lr": {"$exists": {"a": 1}}}})
    assert r.is_error and "$exists on 'config.lr' takes true or false, got an object" in r.text
    assert env.call("query_runs", {"filters": {"config.lr": {"$exists": True, "$gt": 0.01}}}).json["total"] == 3


def test_limits_negative_zero_and_huge(env):
    r = env.call("query_runs", {"limit": -1})
    assert r.is_error and "limit must be >= 1" in r.text
    out = env.call("query_runs", {"limit": 10**12}).json
    assert out["returned"] == len(INSIDE) and "capped at 200" in out["note"]
    out = env.call("query_runs", {"offset": 10**12}).json
    assert out["total"] == len(INSIDE) and out["runs"] == [] and out["truncated"] is False
    assert env.call("eval_health", {"limit": 10**40}).json["returned"] == env.all_evals
    assert "limit must be >= 1" in env.call("eval_results", {"eval_id": env.evals[0], "limit": 0}).text
    assert "depth must be 0, 1 or 2" in env.call("get_call", {"call_id": env.evals[0], "depth": 10**12}).text


# ----- $regex: refused or time-limited --------------------------------------------------------------
@pytest.mark.parametrize("pattern,needle", [
    ("(a+)+$", "nested quantifier"), ("(x*y*)*z", "nested quantifier"), ("(.*a){25}", "nested quantifier"),
    (r"(\w+)\1", "backreference"),
    # no nested quantifier, yet 4^n paths: the match timeout stops it (stdlib re would run for hours)
    ("^(?:.|.|.|.)*[0-9]$", "took longer than 1 s"),
])
def test_catastrophic_regex_is_refused_or_time_limited(env, pattern, needle):
    t0 = time.monotonic()
    r = check(env, env.call("query_runs", {"filters": {"name": {"$regex": pattern}}}), "query_runs")
    assert time.monotonic() - t0 < 5
    assert r.is_error and needle in r.text, r.text
    alive(env)


def test_regex_budget_is_per_query_not_per_value():
    from wandb_lens.analysis import run_filters as rf

    docs = [{"name": "a" * 30 + "!"} for _ in range(50)]
    t0 = time.monotonic()
    with pytest.raises(rf.FilterError, match="took longer than"):
        until = rf.deadline()
        [d for d in docs if rf.matches(d, {"name": {"$regex": "^(a|aa)+$"}}, until)]
    assert time.monotonic() - t0 < rf.REGEX_BUDGET_S + 1.5
    assert rf.matches({"name": "baseline"}, {"name": {"$regex": "^base"}}, rf.deadline())


# ----- filters nested 1,000 deep ------------------------------------------------------------------
def test_filter_nested_1000_deep_over_stdio(env):
    """The SDK client cannot even serialise 1,000 levels, so a raw client writes the JSON-RPC line.
    The transport's JSON parser refuses nesting past its limit and drops the line (an SDK behaviour:
    no parse-error reply on stdio); what matters here is that the server stays up and answers the
    next request at once. 40 levels (80 JSON levels) are parsed and answered with the filter error."""
    from mcp.types import LATEST_PROTOCOL_VERSION

    proc = subprocess.Popen(
        [sys.executable, "-m", "wandb_lens", "serve", "--runs-dir", str(env.root), "--cache-dir",
         str(env.base / "cache-stdio")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "WANDB_LENS_TRACES_DB": ""})

    def send(text: str) -> None:
        proc.stdin.write(text.encode() + b"\n")
        proc.stdin.flush()

    def answer(want_id: int, timeout: float) -> dict | None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            ready, _, _ = select.select([proc.stdout], [], [], max(0.0, end - time.monotonic()))
            if not ready:
                return None
            line = proc.stdout.readline()
            if not line:
                return None
            msg = json.loads(line)
            if msg.get("id") == want_id:
                return msg
        return None

    def deep_call(rid: int, depth: int) -> str:
        filt = '{"$and":[' * depth + '{"state":"finished"}' + "]}" * depth
        return ('{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"query_runs",'
                '"arguments":{"filters":%s}}}' % (rid, filt))

    try:
        send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": LATEST_PROTOCOL_VERSION, "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}}))
        assert answer(1, 60) is not None
        send(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        send(deep_call(2, 1000))
        send(deep_call(3, 100_000))
        send(deep_call(4, 40))
        r4 = answer(4, 30)
        assert r4 is not None and r4["result"]["isError"] is True
        assert "Filter nested deeper than 32 levels" in r4["result"]["content"][0]["text"]
        t0 = time.monotonic()
        send(json.dumps({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
                         "params": {"name": "list_projects", "arguments": {}}}))
        r5 = answer(5, 30)
        assert r5 is not None and time.monotonic() - t0 < 5
        assert json.loads(r5["result"]["content"][0]["text"])["runs_total"] == len(INSIDE)
        assert proc.poll() is None
    finally:
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    err = proc.stderr.read().decode()
    assert "Traceback" not in err and CANARY not in err


# ----- resource URIs ------------------------------------------------------------------------------
RESOURCE_URIS = [
    "wandb-lens://runs/../../etc/passwd", "wandb-lens://runs/..%2F..%2Fetc/passwd", "wandb-lens://runs/%2E%2E/%2E%2E",
    "wandb-lens://runs/lens-demo/..", "wandb-lens://runs/lens-demo/%00", "wandb-lens://runs//etc/passwd",
    "wandb-lens://runs/lens-demo/../outside", "wandb-lens://runs/lens-demo/%2e%2e%2foutside",
    "wandb-lens://docs/../../../../etc/passwd", "wandb-lens://docs/..%2F..%2Fpyproject", "wandb-lens://docs/tools%00",
    "wandb-lens://docs/%2Fetc%2Fpasswd", "wandb-lens://plots/..%2F..%2Fetc%2Fpasswd.png", "wandb-lens://plots/../../x.png",
    "wandb-lens://runs/lens-demo/..%2Fx/overview.png", "file:///etc/passwd", "wandb-lens://runs/lens-demo/\u202e",
    f"wandb-lens://runs/lens-demo/{OUTSIDE}", "wandb-lens://runs/lens-demo/linkedout",
    "wandb-lens://runs/lens-demo/offline-run-20990101_000000-linkedout/overview.png",
    "wandb-lens://docs/" + "a" * 5_000,
]


def test_resource_uris_with_traversal_are_refused(env):
    from mcp.shared.exceptions import MCPError

    for uri in RESOURCE_URIS:
        with pytest.raises(MCPError) as info:
            env.session.read(uri)
        text = str(info.value)
        assert "Traceback" not in text and CANARY not in text and "root:x:0:0" not in text, uri
    ok = env.session.read("wandb-lens://runs/lens-demo/baseline-cosine")
    assert json.loads(ok.contents[0].text)["name"] == "baseline-cosine"
    alive(env)


def test_nothing_outside_the_roots_is_listed(env, demo_ids):
    runs = env.call("query_runs", {"limit": 200}).json
    assert runs["total"] == len(INSIDE)
    assert {r.get("name") for r in runs["runs"]} == set(INSIDE)
    r = env.call("describe_run", {"run": demo_ids[OUTSIDE]})
    assert r.is_error and "No run" in r.text


def _count_inputs() -> None:  # pragma: no cover - `python tests/test_bad_input.py` prints the catalogue size
    from types import SimpleNamespace

    schemas = json.loads(open(os.path.join(os.path.dirname(__file__), "snapshots", "tools_list.json")).read())
    fake = SimpleNamespace(evals=["e1", "e2"], outside_run=__import__("pathlib").Path("/x/outside/run"),
                           canary_file="/x/canary.txt")
    total = 0
    for t in schemas["tools"]:
        n = len(cases_for(fake, t["name"], t["inputSchema"]))
        total += n
        print(f"{t['name']:<26}{n:>5}")
    print(f"{'total':<26}{total:>5}")


if __name__ == "__main__":
    _count_inputs()


# ----- hypothesis: arguments generated from each tool's input schema --------------------------------
FUZZ_EXAMPLES = int(os.environ.get("WANDB_LENS_FUZZ_EXAMPLES", "30"))  # `make fuzz` raises it


def _hints(env) -> dict[str, list]:
    runs = [*INSIDE, *(f"lens-demo/{n}" for n in INSIDE)]
    keys = ["train/loss", "val/loss", "lr", "grad_norm", "_step", "train/grad_norm", "eval/loss", "trainer/global_step",
            "gradients/", "gradients/*", "train", "val", "grad_norm/"]
    return {
        "run": runs, "runs": runs, "highlight": runs, "metrics": keys, "metric": keys, "step_key": keys,
        "train_key": keys, "val_key": keys, "prefix": keys, "eval_id": env.evals, "eval_ids": env.evals,
        "call_id": env.evals, "direction": ["auto", "min", "max"], "stat": ["mean_abs", "max_abs", "std"],
        "project": ["lens-demo", "lens-demo-evals", "local/lens-demo-evals"], "since": ["7d", "2025-01-01", "1h", "0s"],
        "op": ["Evaluation.evaluate", "exact_match", "calculator-v2"], "name": ["calc", "guesser", "arith"],
        "order": ["-summary.val/loss", "+created_at", "config.lr", "-name"], "group_by": ["config.seed", "config.lr"],
        "config_keys": ["lr", "seed", "steps"],
    }


def _strategy(env, schema: dict):
    from hypothesis import strategies as st

    hints = _hints(env)
    hostile = st.sampled_from(hostile_strings(env))
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**15, 10**15), st.floats(allow_nan=False),
                        st.text(max_size=20))

    def text_for(prop: str):
        if not hints.get(prop):
            return st.one_of(hostile, st.text(max_size=30))
        return _weighted(7, st.sampled_from(hints[prop]), st.one_of(hostile, st.text(max_size=30)))

    fields = st.sampled_from(["state", "name", "tags", "group", "config.lr", "config.seed", "summary.val/loss",
                              "summary_metrics.train/loss", "created_at", "config.optimizer"])
    regexes = st.sampled_from(["^base", "loss$", "(a+)+$", "^(?:.|.|.|.)*[0-9]$", "[", "(?i)SPIKY", r"\d{2,}"])
    cond = st.one_of(
        scalars,
        st.dictionaries(st.sampled_from(["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$exists"]), scalars,
                        min_size=1, max_size=2),
        st.builds(lambda xs: {"$in": xs}, st.lists(scalars, max_size=4)),
        st.builds(lambda r: {"$regex": r}, regexes),
        st.builds(lambda k, v: {k: v}, st.sampled_from(["$where", "$elemMatch", "$size"]), scalars),
    )
    leaf = st.dictionaries(fields, cond, min_size=1, max_size=3)
    filters = st.recursive(leaf, lambda sub: st.builds(lambda op, xs: {op: xs},
                                                       st.sampled_from(["$and", "$or", "$nor"]),
                                                       st.lists(sub, max_size=3)), max_leaves=8)

    def value_for(prop: str, sch: dict):
        kind = sch.get("type")
        if kind == "string":
            right = text_for(prop)
        elif kind == "integer":
            right = st.one_of(st.integers(-3, 300), st.sampled_from([0, 10**12, -10**12, 2**63, 10**40]))
        elif kind == "boolean":
            right = st.booleans()
        elif kind == "array":
            right = st.lists(text_for(prop), min_size=prop.endswith("s") and 2, max_size=5)
        else:
            right = st.one_of(filters, st.dictionaries(st.text(max_size=10), scalars, max_size=3))
        wrong = st.one_of(scalars, st.lists(scalars, max_size=3), st.dictionaries(st.text(max_size=5), scalars, max_size=2))
        return _weighted(8, right, wrong)  # mostly the right type, so calls get past validation

    props = schema.get("properties", {})
    required = set(schema.get("required", []))
    base = st.fixed_dictionaries({p: value_for(p, s) for p, s in props.items() if p in required},
                                 optional={p: value_for(p, s) for p, s in props.items() if p not in required})
    extra = st.dictionaries(st.sampled_from(["limt", "runs_", "x", "lens_ctx", "filter", ""]), scalars, max_size=1)
    return _weighted(8, base, st.builds(lambda a, b: {**a, **b}, base, extra))


def _weighted(tenths: int, likely, other):
    """`likely` in `tenths`/10 of the draws (one_of would pick each branch equally)."""
    from hypothesis import strategies as st

    return st.integers(0, 9).flatmap(lambda i: likely if i < tenths else other)


@pytest.mark.parametrize("tool", EXPECTED_TOOLS)
def test_schema_fuzz(env, schemas, tool):
    from hypothesis import HealthCheck, given, settings

    seen = {"n": 0, "errors": 0}

    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(_strategy(env, schemas[tool]))
    def one(args):
        t0 = time.monotonic()
        r = check(env, env.call(tool, args), tool, args)
        assert time.monotonic() - t0 < 10, f"{tool} {args!r:.300}"
        assert sum(len(t) for t in r.texts) < SIZE_LIMIT
        seen["n"] += 1
        seen["errors"] += r.is_error
        if os.environ.get("WANDB_LENS_FUZZ_SHOW"):
            print(repr(args)[:150], "->", r.text[:150].replace("Error executing tool", ""))

    one()
    alive(env)
    print(f"{tool}: {seen['n']} calls, {seen['errors']} tool errors")  # the split shows with -s
    assert seen["n"] >= min(FUZZ_EXAMPLES, 10)


# ----- a Rust panic in a plotting extension -------------------------------------------------------
def test_constant_step_key_plot_does_not_end_the_session(env):
    # was: tsdownsample panicked ("nb_bins >= 2") on a constant x; pyo3's PanicException is a
    # BaseException, so it passed `except Exception` and ended the client's whole session
    args = {"runs": ["baseline-cosine", "still-improving"], "metric": "train/loss", "step_key": "lr"}
    r = check(env, env.call("plot_comparison", args), "plot_comparison")
    assert not r.is_error and json.loads(r.texts[0])["step_key"] == "lr"
    alive(env)


def test_minmax_decimation_survives_inputs_tsdownsample_panics_on():
    import numpy as np

    from wandb_lens.plotting.decimate import minmax_indices, minmax_indices_numpy

    y = np.sin(np.arange(5000.0))
    for x, n in ((np.zeros(5000), 100), (np.arange(5000.0), 1), (np.linspace(0, 1e-300, 5000), 100),
                 (np.r_[np.zeros(4999), 1e308], 100)):
        idx = minmax_indices(x, y, n)
        assert np.array_equal(idx, minmax_indices_numpy(x, y, n))
        assert idx[0] == 0 and idx[-1] == 4999


def test_a_panic_inside_any_tool_is_a_tool_error(tmp_path):
    """A real tsdownsample panic raised inside a registered tool: one clean error, the session goes on."""
    import numpy as np
    from mcp.server import MCPServer

    from hostile import Session
    from wandb_lens.tools import _base

    def panics(n: int = 2) -> dict:
        from tsdownsample import MinMaxDownsampler

        MinMaxDownsampler().downsample(np.zeros(1000), np.arange(1000.0), n_out=n)
        return {"ok": True}

    def fine() -> dict:
        return {"ok": True}

    server = MCPServer("panic-test")
    _base.add(server, panics, "raises a Rust panic")
    _base.add(server, fine, "answers")
    s = Session(server)
    try:
        r = s.call("panics", {})
        assert r.is_error and r.text.startswith("Error executing tool panics: panics failed: PanicException")
        assert s.call("fine", {}).json == {"ok": True}
    finally:
        s.close()
