"""Builds the MCP server: tools, resources and prompts over one App (sources + caches)."""

from __future__ import annotations

from mcp.server import MCPServer

from . import __version__
from .app import App, AppConfig

INSTRUCTIONS = (
    "wandb-lens reads Weights & Biases training runs (local wandb/ folders or W&B cloud) and answers "
    "with compact JSON: find runs with query_runs, inspect one with describe_run. Runs are referenced "
    "as run_id, project/run_id or entity/project/run_id."
)


def build_server(config: AppConfig | None = None, app: App | None = None) -> MCPServer:
    from .tools import _base, diagnostics, evals, plots, runs

    app = app or App(config)
    server = MCPServer("wandb-lens", instructions=INSTRUCTIONS, version=__version__, log_level="WARNING")
    server.app = app  # type: ignore[attr-defined]
    runs.register(server, app)
    diagnostics.register(server, app)
    evals.register(server, app)
    plots.register(server, app)
    _base.tidy_schemas(server)
    return server
