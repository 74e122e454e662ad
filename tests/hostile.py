"""Shared by the bad-input catalogue and the reader fuzzers: a server whose roots hold a few real
demo runs and a copy of the demo Weave store, with canaries just outside those roots, and one
long-lived in-memory MCP client session on it (so "the server still answers the next request" is
the same session, and thousands of calls stay fast)."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import anyio.from_thread

from conftest import Result

CANARY = "WLCANARY-7f3c2a91e4"  # written next to the runs folder, outside every configured root
PASSWD_MARK = "root:x:0:0"  # what /etc/passwd would show if it were ever read
INSIDE = ("baseline-cosine", "still-improving", "spiky-bad-batches", "custom-step-axis")
OUTSIDE = "overfit-wide-model"  # a real run folder beside the root: never listed, never read
CALL_LIMIT_S = 20.0  # one tools/call must answer within this, whatever the input
# the SDK's crash wrapper says only "Error executing tool X"; ours says "X failed: KeyError: ..."
_CRASH = re.compile(r"\bfailed: [A-Za-z_.]*(Error|Exception|Interrupt|Exit)\b")


class Session:
    """One MCP client session kept open on a portal thread; call() and read() block."""

    def __init__(self, server):
        from mcp import Client

        self._portal_cm = anyio.from_thread.start_blocking_portal()
        self.portal = self._portal_cm.__enter__()
        self._client_cm = self.portal.wrap_async_context_manager(Client(server))
        self.client = self._client_cm.__enter__()

    def call(self, tool: str, args: dict, limit: float = CALL_LIMIT_S) -> Result:
        async def go():
            with anyio.fail_after(limit):
                return await self.client.call_tool(tool, args)

        return Result(self.portal.call(go))

    def read(self, uri: str):
        async def go():
            with anyio.fail_after(CALL_LIMIT_S):
                return await self.client.read_resource(uri)

        return self.portal.call(go)

    def tools(self) -> list:
        return self.portal.call(self.client.list_tools).tools

    def close(self) -> None:
        self._client_cm.__exit__(None, None, None)
        self._portal_cm.__exit__(None, None, None)


@dataclass
class Env:
    base: Path
    root: Path
    outside_run: Path
    canary_file: Path
    traces: Path
    server: object
    session: Session
    secrets: list[str] = field(default_factory=list)  # strings no answer may contain
    evals: list[str] = field(default_factory=list)  # the finished demo evaluations' call ids
    all_evals: int = 0  # evaluations in the store, the running one included

    def call(self, tool: str, args: dict, limit: float = CALL_LIMIT_S) -> Result:
        return self.session.call(tool, args, limit)


def build_env(base: Path, demo_dir: Path, demo_ids: dict, traces_db: str) -> Env:
    from wandb_lens.app import AppConfig
    from wandb_lens.server import build_server

    root = base / "wandb"
    root.mkdir(parents=True)
    for name in INSIDE:
        src = next((demo_dir / "wandb").glob(f"*-{demo_ids[name]}"))
        shutil.copytree(src, root / src.name)
    src = next((demo_dir / "wandb").glob(f"*-{demo_ids[OUTSIDE]}"))
    outside_run = base / "outside" / src.name
    shutil.copytree(src, outside_run)
    canary_file = base / "canary.txt"
    canary_file.write_text(f"{CANARY}\n")
    (base / "outside" / "notes.json").write_text(json.dumps({"secret": CANARY}))
    # a symlink inside the root that points at the outside run: run discovery never follows links
    (root / "offline-run-20990101_000000-linkedout").symlink_to(outside_run, target_is_directory=True)
    traces = base / "traces" / "traces.db"
    traces.parent.mkdir()
    shutil.copy(traces_db, traces)
    server = build_server(AppConfig(runs_dirs=[str(root)], cache_dir=str(base / "cache"), traces_db=str(traces)))
    session = Session(server)
    env = Env(base, root, outside_run, canary_file, traces, server, session,
              secrets=[CANARY, PASSWD_MARK, demo_ids[OUTSIDE], OUTSIDE])
    out = env.call("eval_health", {}).json
    status = out["evals"]["cols"].index("status")
    env.evals = [row[0] for row in out["evals"]["rows"] if row[status] != "running"]
    env.all_evals = len(out["evals"]["rows"])
    return env


def check(env: Env, res: Result, tool: str, args: dict | None = None) -> Result:
    """The contract for any input: a clean tool error or valid JSON, and nothing from outside the roots
    (a secret the arguments themselves name may be echoed back: "No run 'x'")."""
    blob = "\n".join(res.texts)
    asked = json.dumps(args or {}, ensure_ascii=False)
    for secret in env.secrets:
        assert secret in asked or secret not in blob, f"{tool} answered with {secret!r} (outside the roots): {blob[:300]}"
    if res.is_error:
        text = res.text
        assert text.strip(), f"{tool}: empty error"
        assert "Traceback" not in text and "Internal error" not in text, text
        assert text.strip() != f"Error executing tool {tool}", f"{tool} crashed (the SDK's generic message)"
        assert not _CRASH.search(text), f"{tool} crashed: {text[:300]}"
        assert "pydantic" not in text and "type=" not in text, f"{tool}: validation noise: {text[:300]}"
    else:
        assert res.texts, f"{tool}: no text block"
        for t in res.texts:
            json.loads(t)
    return res


def alive(env: Env) -> None:
    """The server still answers the next request, correctly."""
    r = env.call("list_projects", {})
    assert not r.is_error and r.json["runs_total"] == len(INSIDE), r.text[:300]
