"""Command line: `wandb-lens serve | call | demo`."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys


def _source_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runs-dir", action="append", metavar="DIR",
                   help="folder holding W&B runs (repeatable; default ./wandb, then $WANDB_DIR)")
    p.add_argument("--cache-dir", metavar="DIR", help="cache folder (default $WANDB_LENS_CACHE_DIR or ~/.cache/wandb-lens)")
    p.add_argument("--traces-db", metavar="PATH", help="local Weave trace store (SQLite) for the eval/trace tools")
    p.add_argument("--source", choices=["auto", "local", "cloud"], default="auto",
                   help="runs from local wandb/ folders or W&B cloud (default auto: cloud when an API key is "
                        "configured and no --runs-dir is given)")
    p.add_argument("--entity", help="W&B entity for the cloud source (default $WANDB_ENTITY, else the key's own)")
    p.add_argument("--project", help="default W&B project for the cloud source (default $WANDB_PROJECT)")
    p.add_argument("--timeout", type=float, metavar="S",
                   help="seconds per W&B request before a clear error (default $WANDB_LENS_TIMEOUT or 20)")


def _config(args):
    from .app import AppConfig

    return AppConfig(runs_dirs=args.runs_dir or [], cache_dir=args.cache_dir, traces_db=args.traces_db,
                     source=args.source, entity=args.entity, project=args.project, timeout=args.timeout)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wandb-lens", description="MCP server over W&B runs and Weave traces.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the MCP server (stdio by default)")
    serve.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8765)
    serve.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                       help="HTTP: a host name clients use to reach the server, besides loopback and --host "
                            "(repeatable; other Host/Origin headers are refused: DNS-rebinding protection)")
    serve.add_argument("--auth-token", metavar="TOKEN",
                       help="HTTP: shared token every request must send as the `X-Wandb-Lens-Token` header "
                            "(default $WANDB_LENS_TOKEN; required to bind a non-loopback address; prefer the "
                            "variable: arguments are visible to other local users)")
    _source_args(serve)
    call = sub.add_parser("call", help="run one tool in-process and print its result")
    call.add_argument("tool")
    call.add_argument("arguments", nargs="?", default="{}", help="JSON object of arguments")
    _source_args(call)
    demo = sub.add_parser("demo", help="write a demo project of real offline W&B runs")
    demo.add_argument("--out", default="demo-data", help="folder to write into (default ./demo-data)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=os.environ.get("WANDB_LENS_LOG", "WARNING"),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.command == "serve":
        return _serve(args)
    if args.command == "call":
        return _call(args)
    if args.command == "demo":
        from .demo import write_demo

        return write_demo(args.out)
    return 2


def _serve(args) -> int:
    from .server import build_server

    token = None
    if args.transport == "http":
        from . import http_mode

        token = args.auth_token or os.environ.get(http_mode.TOKEN_ENV) or None
        refusal = http_mode.check_bind(args.host, token)
        if refusal:  # before building anything: a misconfigured deployment fails at once, saying why
            print(f"wandb-lens: {refusal}", file=sys.stderr)
            return 2
    server = build_server(_config(args))
    try:
        if args.transport == "stdio":
            server.run("stdio")
        else:
            http_mode.serve(server, host=args.host, port=args.port, token=token,
                            transport_security=_transport_security(args.host, args.allow_host))
    finally:
        _exit_past_stuck_workers()
    return 0


def _exit_past_stuck_workers(grace_s: float = 2.0) -> None:
    """The server is done (stdin closed, stop signal): if a worker thread is still stuck in a tool call
    (a read that never returns), exit now instead of waiting for it forever at interpreter shutdown."""
    import threading
    import time

    deadline = time.monotonic() + grace_s
    for t in threading.enumerate():
        if t is not threading.current_thread() and not t.daemon:
            t.join(max(0.0, deadline - time.monotonic()))
    if any(t.is_alive() and not t.daemon and t is not threading.current_thread() for t in threading.enumerate()):
        logging.getLogger("wandb_lens").warning("a worker thread is stuck (a read that never returns): exiting anyway")
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def _transport_security(bind_host: str, allow_hosts: list[str]):
    """DNS-rebinding protection for every HTTP bind (the SDK enables it only for loopback host strings, so
    `--host 0.0.0.0` would answer any web page's request): Host/Origin must name loopback, the bind
    host, or an --allow-host name, on any port."""
    from mcp.server.transport_security import TransportSecuritySettings

    names = ["127.0.0.1", "localhost", "[::1]"]
    if bind_host not in ("", "0.0.0.0", "::", "127.0.0.1", "localhost", "::1"):
        names.append(f"[{bind_host}]" if ":" in bind_host else bind_host)
    names += allow_hosts
    hosts = [h for name in names for h in (name, f"{name}:*")]
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts,
                                     allowed_origins=[f"{scheme}://{h}" for scheme in ("http", "https") for h in hosts])


def _call(args) -> int:
    import anyio

    from .server import build_server

    try:
        arguments = json.loads(args.arguments)
    except ValueError as exc:
        print(f"arguments must be a JSON object: {exc}", file=sys.stderr)
        return 2
    if not isinstance(arguments, dict):
        print("arguments must be a JSON object", file=sys.stderr)
        return 2
    server = build_server(_config(args))

    async def run() -> tuple[int, list[str]]:
        from mcp import Client

        async with Client(server) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            if args.tool not in names:
                print(f"Unknown tool {args.tool!r}. Tools: {', '.join(sorted(names))}", file=sys.stderr)
                return 2, []
            result = await client.call_tool(args.tool, arguments)
            lines = [block.text if block.type == "text" else f"[{block.type} content: {getattr(block, 'mime_type', '')}]"
                     for block in result.content]
            return (1 if result.is_error else 0), lines

    code, lines = anyio.run(run)
    return _print_lines(lines, code)


def _print_lines(lines: list[str], code: int) -> int:
    """Print the answer; a reader that stopped early (`wandb-lens call ... | head`) ends the command
    quietly with the status of a process killed by SIGPIPE, not a BrokenPipeError traceback."""
    try:
        for line in lines:
            print(line)
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the interpreter's final flush must not fail again
        return 128 + 13
    return code
