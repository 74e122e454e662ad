"""Knowledge served as MCP resources: markdown documents shipped in the package, plus templates
that expose a run's description (and its overview plot) by URI."""

from __future__ import annotations

from mcp.server.mcpserver import Context  # resolved by name for the resources' ctx parameter

from importlib import resources as _res

DOCS: dict[str, str] = {
    "tools": "Which wandb-lens tool answers which question, one line each. Read first.",
    "wandb-gotchas": "W&B API traps (history AND semantics, sampling, summary access...) as wrong/right pairs.",
    "weave-gotchas": "Weave API traps (status and status_counts paths, parent filter, usage...) as wrong/right pairs.",
    "training-diagnostics": "Reading loss, validation, LR, grad-norm and histogram curves; the exact diagnose_run rules.",
    "step-axis": "Choosing the x-axis of a curve, pairing series by step, and why it matters.",
    "weave-evaluations": "The Weave evaluation call tree and where each number lives.",
}


def doc_text(name: str) -> str:
    return _res.files(__package__).joinpath("docs", f"{name}.md").read_text(encoding="utf-8")


def register(server, app) -> None:
    for name, description in DOCS.items():
        server.resource(f"wandb-lens://docs/{name}", name=name, description=description,
                        mime_type="text/markdown")(_reader(name))

    @server.resource("wandb-lens://runs/{project}/{run_id}", name="run",
                     description="A run's describe_run answer (JSON).", mime_type="application/json")
    def run_resource(project: str, run_id: str, ctx: Context) -> str:
        from mcp.server.mcpserver.exceptions import ResourceError

        from ..compact import dumps
        from ..errors import LensError
        from ..tools._base import request_key_from, scrubbed
        from ..tools.runs import describe

        with request_key_from(ctx):  # HTTP mode: the caller's own W&B key, as for tools
            try:
                return dumps(describe(app, run_ref(project, run_id)))
            except LensError as exc:
                raise ResourceError(scrubbed(str(exc))) from None


def run_ref(project: str, run_id: str) -> str:
    from ..errors import LensError

    for part in (project, run_id):
        if not part or "/" in part or "\\" in part or part in (".", "..") or "\x00" in part:
            raise LensError(f"Invalid run URI part {part!r}: use wandb-lens://runs/<project>/<run_id>.")
    return f"{project}/{run_id}"


def _reader(name: str):
    def read() -> str:
        return doc_text(name)

    read.__name__ = f"doc_{name.replace('-', '_')}"
    return read
