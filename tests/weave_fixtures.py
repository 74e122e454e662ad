"""Session fixtures for the Weave tools: real evaluations recorded by the weave library into a
local store (wandb_lens.demo_weave), served locally and through a loopback trace-server HTTP API."""

from __future__ import annotations

import pytest

from conftest import call

API_KEY = "wl-test-key-0123456789abcdef"


@pytest.fixture(scope="session")
def weave_db(tmp_path_factory) -> dict:
    """{'path', 'results' (evaluate() summaries by model), 'running' (id of a still-running evaluation)}."""
    from wandb_lens import demo_weave
    from wandb_lens.weave_local import close_local, init_local

    out = tmp_path_factory.mktemp("weave")
    path = str(out / "traces.db")
    results = demo_weave.record(path)
    client = init_local(demo_weave.PROJECT, path)
    try:  # an evaluation that has started and not ended
        running = client.create_call("Evaluation.evaluate", inputs={"model": "pending-model"},
                                     display_name="arith-qa:still-running", use_stack=False)
        client.flush()
    finally:
        close_local(client)
    return {"path": path, "results": results, "running": running.id}


@pytest.fixture(scope="session")
def weave_server(weave_db):
    from wandb_lens.app import AppConfig
    from wandb_lens.server import build_server

    return build_server(AppConfig(traces_db=weave_db["path"]))


@pytest.fixture(scope="session")
def loopback(weave_db):
    from trace_http_server import LoopbackTraceServer

    srv = LoopbackTraceServer(weave_db["path"], API_KEY)
    yield srv
    srv.close()


def cloud_server_for(url: str, key: str = API_KEY, project: str | None = "lens-demo-evals"):
    from wandb_lens.app import App, AppConfig
    from wandb_lens.server import build_server
    from wandb_lens.sources.weave.http import CloudTraceSource

    # the cloud tells a running evaluation from an interrupted one by idle time only: the demo's
    # running one must stay "running" however long the test session takes
    app = App(AppConfig(eval_idle_minutes=1e9))
    app.use("traces", CloudTraceSource("local", project, url=url, api_key=key, timeout=5))
    return build_server(app=app)


@pytest.fixture(scope="session")
def cloud_server(loopback):
    return cloud_server_for(loopback.url)


@pytest.fixture(params=["local", "cloud"])
def wlens(request, weave_server, cloud_server):
    """wlens(tool, **args) -> Result, on the local store and through the loopback HTTP source."""
    server = weave_server if request.param == "local" else cloud_server
    return lambda tool, **args: call(server, tool, args)
