"""A third-party client: the MCP Inspector CLI (Node) drives `wandb-lens serve` over stdio.

`mcp-inspector-cli --cli <command> --method tools/list` and `--method tools/call --tool-name X
--tool-arg k=v` on the demo runs and Weave evaluations, one call per tool family. The pinned CLI is installed with npm
into a cache outside the repo (scripts/npm_tools.py). Without node/npm these tests skip locally
and fail when CI is set (.ci/run sets it).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import npm_tools  # noqa: E402

# One line per tool family: tool, arguments, check(tools/call result as JSON) -> true when right.
FAMILIES = [
    ("list_projects", {},
     lambda r: _json(r)["projects"][0]["project"] == "lens-demo" and _json(r)["runs_total"] == 8),
    ("query_runs", {"project": "lens-demo", "filters": {"state": {"$in": ["failed", "crashed"]}}, "limit": 5},
     lambda r: {run["name"] for run in _json(r)["runs"]} == {"lr-too-high", "killed-mid-run"}),
    ("describe_run", {"run": "lens-demo/baseline-cosine"},
     lambda r: _json(r)["history"]["keys"]["val/loss"]["n"] == 40),
    ("diagnose_run", {"run": "lens-demo/lr-too-high"}, lambda r: _json(r)["verdict"] == "diverged"),
    ("plot_overview", {"run": "lens-demo/baseline-cosine"},
     lambda r: _png(r) and "train/loss" in {p["metric"] for p in _json(r)["panels"]}),
    ("eval_health", {}, lambda r: {"calculator-v2", "guesser-v1"} <= _column(_json(r)["evals"], "model")),
]


def _json(result: dict):
    return json.loads(next(b["text"] for b in result["content"] if b["type"] == "text"))


def _png(result: dict) -> bool:
    images = [b for b in result["content"] if b["type"] == "image"]
    return bool(images) and all(b["mimeType"] == "image/png" and base64.b64decode(b["data"])[:8] == b"\x89PNG\r\n\x1a\n"
                                for b in images)


def _column(table: dict, name: str) -> set:
    return {row[table["cols"].index(name)] for row in table["rows"]}


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def inspector_cli() -> str:
    try:
        return npm_tools.tool("mcp-inspector-cli")
    except npm_tools.NpmToolsUnavailable as exc:
        reason = str(exc)
    if _in_ci():
        pytest.fail(f"MCP Inspector CLI unavailable in CI: {reason}", pytrace=False)
    pytest.skip(f"MCP Inspector CLI unavailable (fails under CI=true): {reason}")


@pytest.fixture(scope="session")
def inspector_answers(inspector_cli, demo_dir, weave_db, tmp_path_factory) -> dict:
    """Every Inspector invocation run at once (each is a server start, ~3 s): key -> (exit, stdout, stderr)."""
    exe = Path(sys.executable).with_name("wandb-lens")
    server = [str(exe)] if exe.exists() else [sys.executable, "-m", "wandb_lens"]
    server += ["serve", "--runs-dir", str(demo_dir / "wandb"), "--traces-db", weave_db["path"],
               "--cache-dir", str(tmp_path_factory.mktemp("cache"))]
    jobs = {"tools/list": ["--method", "tools/list"]}
    for tool, args, _ in FAMILIES:
        # values go through JSON.parse in the CLI: JSON-encode all of them (strings too) to keep types
        pairs = [f"{k}={json.dumps(v)}" for k, v in args.items()]
        jobs[tool] = ["--method", "tools/call", "--tool-name", tool] + (["--tool-arg", *pairs] if pairs else [])

    def run(argv):
        proc = subprocess.run([inspector_cli, "--cli", *server, *argv], capture_output=True, text=True,
                              timeout=180, cwd=tmp_path_factory.mktemp("inspector-cwd"))
        return proc.returncode, proc.stdout, proc.stderr

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        return dict(zip(jobs, pool.map(run, jobs.values())))


def _answer(inspector_answers, key) -> dict:
    code, out, err = inspector_answers[key]
    assert code == 0, f"mcp-inspector-cli {key} exited {code}:\n{err[-3000:]}"
    return json.loads(out)


def test_inspector_tools_list(inspector_answers):
    tools = _answer(inspector_answers, "tools/list")["tools"]
    names = [t["name"] for t in tools]
    assert {f[0] for f in FAMILIES} <= set(names)
    for t in tools:
        assert t["description"] and t["inputSchema"]["type"] == "object", t["name"]
        assert t["annotations"]["readOnlyHint"] is True, t["name"]


@pytest.mark.parametrize("tool", [f[0] for f in FAMILIES])
def test_inspector_tools_call(inspector_answers, tool):
    check = {f[0]: f[2] for f in FAMILIES}[tool]
    result = _answer(inspector_answers, tool)
    assert result["isError"] is False, result
    assert check(result), json.dumps(result)[:2000]
