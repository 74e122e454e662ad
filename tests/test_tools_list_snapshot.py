"""The whole tools/list answer is pinned: names, descriptions and schemas change only on purpose.

Regenerate with `make snapshot` and review the diff. The compact size is what every agent pays on
every turn: it must stay within the budget (a deterministic size, so a test may assert it).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import snapshot_tools_list as snap  # noqa: E402

BUDGET = 16_000


def _wire(tmp_path) -> dict:
    (tmp_path / "wandb").mkdir()
    return snap.wire_tools_list([*snap.lens_command(), "serve", "--runs-dir", str(tmp_path / "wandb")],
                                env=snap.clean_env(str(tmp_path / "cache")))


def test_tools_list_matches_snapshot_and_budget(tmp_path):
    live = _wire(tmp_path)
    pinned = json.loads(snap.SNAPSHOT.read_text())
    names_live = [t["name"] for t in live["tools"]]
    names_pinned = [t["name"] for t in pinned["tools"]]
    assert names_live == names_pinned, "tools added/removed/reordered: run `make snapshot` and review"
    for a, b in zip(live["tools"], pinned["tools"]):
        assert a == b, f"tool {a['name']!r} changed: run `make snapshot` and review the diff"
    assert live == pinned
    size = snap.compact_size(live)
    assert size <= BUDGET, f"tools/list is {size:,} bytes, over the {BUDGET:,} budget"


def test_schemas_carry_no_noise():
    """No pydantic titles, no `default: null`, every tool read-only with a short description."""
    pinned = json.loads(snap.SNAPSHOT.read_text())
    text = json.dumps(pinned)
    assert '"title"' not in text and '"default": null' not in text
    for tool in pinned["tools"]:
        assert tool["annotations"]["readOnlyHint"] is True, tool["name"]
        assert 20 <= len(tool["description"]) <= 400, tool["name"]


def test_every_parameter_has_a_short_description():
    """Agents read the schema: each parameter of each tool says what it takes (tools/params.py)."""
    pinned = json.loads(snap.SNAPSHOT.read_text())
    missing, long = [], []
    for tool in pinned["tools"]:
        for name, prop in tool["inputSchema"].get("properties", {}).items():
            text = prop.get("description", "")
            if not text:
                missing.append(f"{tool['name']}.{name}")
            elif len(text) > 80:
                long.append(f"{tool['name']}.{name} ({len(text)} chars)")
    assert not missing, f"parameters without a description (add them to tools/params.py): {missing}"
    assert not long, f"parameter descriptions over 80 characters: {long}"
