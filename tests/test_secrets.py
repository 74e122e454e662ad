"""A canary W&B key, set as WANDB_API_KEY in the server's environment and sent as each request's
`Authorization: Bearer` key, never appears in the server's DEBUG log (stderr), tool results, tool
errors, resource contents, HTTP error bodies or files the server writes; failing calls included:
unknown runs and ids, bad filters, and the cloud source pointed at a dead loopback port (errors name
the URL, never the key)."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import httpx
import pytest

from lens_http import TOKEN, TOKEN_HEADER, LensHTTP, clean_env, free_port, open_session

CANARY = "canary-7f3e9b1c5a2d48e6b0c4f1a9d8e7c6b5"


def _dump(obj) -> str:
    return obj.model_dump_json() if hasattr(obj, "model_dump_json") else json.dumps(obj, default=str)


async def _session_calls(url: str, calls, reads) -> tuple[list, list]:
    """Every call and resource read over one session sending the canary as its W&B key."""
    results, contents = [], []
    with anyio.fail_after(120):
        async with open_session(url, {TOKEN_HEADER: TOKEN, "Authorization": f"Bearer {CANARY}"}) as s:
            for tool, args in calls:
                results.append((tool, args, await s.call_tool(tool, args)))
            listed = await s.list_resources()
            contents.append(listed)
            for uri in reads:
                try:
                    contents.append(await s.read_resource(uri))
                except Exception as exc:  # an unknown resource is an error response: check its text too
                    contents.append({"uri": uri, "error": str(exc)})
            for r in results:
                for block in r[2].content:  # follow the plot's resource link
                    if block.type == "resource_link":
                        contents.append(await s.read_resource(str(block.uri)))
    return results, contents


def _files_without_canary(root: Path) -> int:
    n = 0
    for p in root.rglob("*"):
        if p.is_file():
            n += 1
            assert CANARY.encode() not in p.read_bytes(), f"canary in {p}"
    return n


def test_canary_key_never_leaks_local_source(demo_dir, weave_db, tmp_path):
    srv = LensHTTP(["--runs-dir", str(demo_dir / "wandb"), "--traces-db", weave_db["path"]], tmp_path,
                   env=clean_env(WANDB_API_KEY=CANARY, WANDB_LENS_LOG="DEBUG", WANDB_LENS_TOKEN=TOKEN))
    calls = [("list_projects", {}), ("query_runs", {"project": "lens-demo"}),
             ("describe_run", {"run": "lens-demo/baseline-cosine"}), ("diagnose_run", {"run": "lr-too-high"}),
             ("plot_overview", {"run": "spiky-bad-batches"}), ("eval_health", {}),
             ("describe_run", {"run": "no-such-run"}), ("describe_run", {"run": CANARY}),
             ("query_runs", {"filters": {"config.lr": {"$nope": 1}}}), ("get_call", {"call_id": "no-such-call"}),
             ("compare_runs", {"runs": ["baseline-cosine", "missing-run"]}), ("no_such_tool", {})]
    reads = ["wandb-lens://docs/tools", "wandb-lens://runs/lens-demo/baseline-cosine",
             "wandb-lens://runs/lens-demo/no-such-run", "wandb-lens://plots/000000.png"]
    try:
        results, contents = anyio.run(_session_calls, srv.url, calls, reads)
        # refused requests: the 401 body does not echo what was sent
        r = httpx.post(srv.url, headers={"Authorization": f"Bearer {CANARY}", TOKEN_HEADER: CANARY}, content=b"{}",
                       timeout=10)
        assert r.status_code == 401 and CANARY not in r.text
    finally:
        assert srv.stop() == 0
    errors = [(tool, res) for tool, _, res in results if res.is_error]
    assert {t for t, _ in errors} >= {"describe_run", "query_runs", "get_call", "compare_runs", "no_such_tool"}
    assert not next(res for tool, args, res in results if tool == "plot_overview").is_error
    for tool, args, res in results:
        assert CANARY not in _dump(res), tool
    assert len(contents) >= 5 and all(CANARY not in _dump(c) for c in contents)
    log = srv.stderr()
    assert "DEBUG" in log  # the log was really on at DEBUG
    assert CANARY not in log and CANARY[7:] not in log
    assert _files_without_canary(tmp_path / "cache") > 0


@pytest.mark.parametrize("per_request", [True, False], ids=["bearer-key", "env-key"])
def test_canary_key_never_leaks_cloud_source_down(tmp_path, per_request):
    """W&B and the trace server both unreachable: the errors say where, never with what key."""
    dead, dead_traces = free_port(), free_port()
    env = clean_env(WANDB_API_KEY=None if per_request else CANARY, WANDB_LENS_LOG="DEBUG", WANDB_LENS_TOKEN=TOKEN,
                    WANDB_BASE_URL=f"http://127.0.0.1:{dead}", WF_TRACE_SERVER_URL=f"http://127.0.0.1:{dead_traces}",
                    NETRC=str(tmp_path / "no-netrc"))
    srv = LensHTTP(["--source", "cloud", "--entity", "lens-team", "--project", "lens-demo", "--timeout", "2"],
                   tmp_path, env=env)
    calls = [("query_runs", {}), ("describe_run", {"run": "baseline-cosine"}), ("eval_health", {}),
             ("get_call", {"call_id": "0190"}), ("artifacts", {"run": "baseline-cosine"})]

    async def go():
        headers = {TOKEN_HEADER: TOKEN}
        if per_request:
            headers["Authorization"] = f"Bearer {CANARY}"
        out = []
        with anyio.fail_after(120):
            async with open_session(srv.url, headers) as s:
                for tool, args in calls:
                    out.append((tool, await s.call_tool(tool, args)))
        return out

    try:
        results = anyio.run(go)
    finally:
        assert srv.stop() == 0
    for tool, res in results:
        text = _dump(res)
        assert res.is_error, (tool, text[:300])
        assert CANARY not in text, tool
    texts = {tool: res.content[0].text for tool, res in results}
    assert f"127.0.0.1:{dead}" in texts["query_runs"] and f"127.0.0.1:{dead}" in texts["describe_run"]
    assert f"127.0.0.1:{dead}" in texts["artifacts"]
    assert f"127.0.0.1:{dead_traces}" in texts["eval_health"]
    log = srv.stderr()
    assert "DEBUG" in log and CANARY not in log
    if (tmp_path / "cache").exists():
        _files_without_canary(tmp_path / "cache")


def test_weave_cloud_traces_use_each_requests_own_key(loopback, tmp_path):
    """HTTP mode, cloud traces, no server key: each request reads traces with the key it sent
    (before, the trace source only knew the server's key: a shared server either failed every
    user or read every user's traces with its own key)."""
    from weave_fixtures import API_KEY

    dead = free_port()
    env = clean_env(WANDB_LENS_LOG="DEBUG", WANDB_LENS_TOKEN=TOKEN, WANDB_BASE_URL=f"http://127.0.0.1:{dead}",
                    WF_TRACE_SERVER_URL=loopback.url, NETRC=str(tmp_path / "no-netrc"))
    srv = LensHTTP(["--source", "cloud", "--entity", "local", "--project", "lens-demo-evals"], tmp_path, env=env)

    async def as_user(key):
        headers = {TOKEN_HEADER: TOKEN, **({"Authorization": f"Bearer {key}"} if key else {})}
        async with open_session(srv.url, headers) as s:
            return await s.call_tool("eval_health", {})

    async def go():
        out = {}

        async def one(name, key):
            out[name] = await as_user(key)

        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                tg.start_soon(one, "owner", API_KEY)
                tg.start_soon(one, "stranger", CANARY)
                tg.start_soon(one, "nobody", None)
        return out

    try:
        res = anyio.run(go)
    finally:
        assert srv.stop() == 0
    owner, stranger, nobody = res["owner"], res["stranger"], res["nobody"]
    assert not owner.is_error and json.loads(owner.content[0].text)["total"] >= 2
    assert stranger.is_error and "refused the W&B API key" in stranger.content[0].text
    assert nobody.is_error and "No W&B API key" in nobody.content[0].text
    for r in (owner, stranger, nobody):
        assert CANARY not in _dump(r) and API_KEY not in _dump(r)
    assert CANARY not in srv.stderr() and API_KEY not in srv.stderr()
