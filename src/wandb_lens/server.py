"""Builds the MCP server: tools, resources and prompts over one App (sources + caches)."""

from __future__ import annotations

from mcp.server import MCPServer

from . import __version__
from . import completions, prompts, resources
from .app import App, AppConfig

INSTRUCTIONS = (
    "wandb-lens gives read-only, compact answers about Weights & Biases training runs (local wandb/ "
    "folders or W&B cloud) and Weave evaluations and traces: find and describe runs, diagnose curves "
    "with a verdict, compare runs, plot them, and summarise evaluations. Read wandb-lens://docs/tools "
    "first to pick a tool. Runs are referenced as run_id, project/run_id or entity/project/run_id. "
    "Every list states its total and whether it was cut."
)


def build_server(config: AppConfig | None = None, app: App | None = None) -> MCPServer:
    from .tools import artifacts, diagnostics, evals, history, logs, plots, runs, sweeps, system

    app = app or App(config)
    server = MCPServer("wandb-lens", instructions=INSTRUCTIONS, version=__version__, log_level="WARNING")
    server.app = app  # type: ignore[attr-defined]
    runs.register(server, app)
    history.register(server, app)
    diagnostics.register(server, app)
    evals.register(server, app)
    plots.register(server, app)
    logs.register(server, app)
    system.register(server, app)
    artifacts.register(server, app)
    sweeps.register(server, app)
    resources.register(server, app)
    prompts.register(server, app)
    completions.register(server, app)
    return server
