"""Shared fixtures: demo runs written once per session by the real wandb library (offline)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import anyio
import pytest

os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("WANDB_MODE", "offline")
# once any test imported weave, wandb.init would start Weave tracing and log in to W&B (a
# GetPassWarning password prompt with no terminal, 33 of them in test_diagnostics): test runs trace nothing
os.environ.setdefault("WANDB_DISABLE_WEAVE", "true")
os.environ.setdefault("WANDB_ERROR_REPORTING", "false")  # no crash reports to sentry.io from test runs


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory) -> Path:
    """A folder holding `wandb/` with the demo project's runs (see wandb_lens.demo)."""
    from wandb_lens.demo import write_runs

    out = tmp_path_factory.mktemp("demo")
    ids = write_runs(out)
    (out / "ids.json").write_text(json.dumps(ids))
    return out


@pytest.fixture(scope="session")
def demo_ids(demo_dir) -> dict[str, str]:
    return json.loads((demo_dir / "ids.json").read_text())


@pytest.fixture(scope="session")
def extras_dir(tmp_path_factory) -> Path:
    """Runs with console output (one raises), system metrics, artifacts and a 12-run sweep group,
    written by real wandb in one child process (see wandb_lens.demo_extras)."""
    from wandb_lens.demo_extras import write_extras

    out = tmp_path_factory.mktemp("extras")
    write_extras(out)
    return out


@pytest.fixture(scope="session")
def extras_server(extras_dir, tmp_path_factory):
    from wandb_lens.app import AppConfig
    from wandb_lens.server import build_server

    return build_server(AppConfig(runs_dirs=[str(extras_dir / "wandb")], cache_dir=str(tmp_path_factory.mktemp("xc"))))


@pytest.fixture
def xlens(extras_server):
    """xlens(tool, **args) -> Result on the extras runs."""
    return lambda tool, **args: call(extras_server, tool, args)


@pytest.fixture(scope="session")
def demo_server(demo_dir, tmp_path_factory):
    from wandb_lens.app import AppConfig
    from wandb_lens.server import build_server

    cache = tmp_path_factory.mktemp("cache")
    return build_server(AppConfig(runs_dirs=[str(demo_dir / "wandb")], cache_dir=str(cache)))


class Result:
    def __init__(self, raw):
        self.raw = raw
        self.is_error = bool(raw.is_error)
        self.texts = [b.text for b in raw.content if b.type == "text"]
        self.text = self.texts[0] if self.texts else ""

    @property
    def json(self):
        return json.loads(self.text)


def call(server, tool: str, args: dict | None = None) -> Result:
    """One tools/call through an in-memory MCP client session."""
    from mcp import Client

    async def go():
        async with Client(server) as client:
            return await client.call_tool(tool, args or {})

    return Result(anyio.run(go))


@pytest.fixture
def lens(demo_server):
    """lens(tool, **args) -> Result, through an in-memory MCP client."""
    return lambda tool, **args: call(demo_server, tool, args)


from weave_fixtures import cloud_server, loopback, weave_db, weave_server, wlens  # noqa: E402,F401  (issue 5)
