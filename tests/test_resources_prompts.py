"""Resources, templates and prompts through an MCP client; docs agree with the code they describe."""

from __future__ import annotations

import json
import re

import anyio
import pytest
from mcp import Client

from wandb_lens.resources import DOCS


def _session(server, fn):
    async def go():
        async with Client(server) as c:
            return await fn(c)

    return anyio.run(go)


def _tool_names(server) -> set[str]:
    async def fn(c):
        return {t.name for t in (await c.list_tools()).tools}

    return _session(server, fn)


def test_every_document_lists_reads_back_and_fits(demo_server):
    async def fn(c):
        listed = (await c.list_resources()).resources
        texts = {}
        for r in listed:
            texts[str(r.uri)] = (r, (await c.read_resource(str(r.uri))).contents[0].text)
        return texts

    texts = _session(demo_server, fn)
    assert set(texts) == {f"wandb-lens://docs/{n}" for n in DOCS}
    for uri, (res, text) in texts.items():
        assert res.description and len(res.description) < 140, uri
        assert res.mime_type == "text/markdown"
        assert text.startswith("# ") and 500 < len(text.encode()) <= 12 * 1024, uri


def test_lists_stay_within_budget_and_instructions_are_short(demo_server):
    async def fn(c):
        sizes = 0
        for call in (c.list_resources, c.list_resource_templates, c.list_prompts):
            sizes += len(json.dumps((await call()).model_dump(mode="json", by_alias=True, exclude_none=True),
                                    separators=(",", ":")).encode())
        return sizes, c.instructions

    size, instructions = _session(demo_server, fn)
    assert size <= 6000
    assert instructions and len(instructions) <= 600 and "wandb-lens://docs/tools" in instructions


def test_run_templates_read_back(demo_server, demo_ids):
    rid = demo_ids["overfit-wide-model"]

    async def fn(c):
        templates = {t.uri_template for t in (await c.list_resource_templates()).resource_templates}
        desc = (await c.read_resource(f"wandb-lens://runs/lens-demo/{rid}")).contents[0].text
        png = (await c.read_resource(f"wandb-lens://runs/lens-demo/{rid}/overview.png")).contents[0]
        return templates, desc, png

    templates, desc, png = _session(demo_server, fn)
    assert {"wandb-lens://runs/{project}/{run_id}", "wandb-lens://runs/{project}/{run_id}/overview.png",
            "wandb-lens://plots/{plot_id}.png"} <= templates
    d = json.loads(desc)
    assert d["id"] == rid and d["history"]["keys"]["val_loss"]["n"] == 60
    import base64

    assert png.mime_type == "image/png" and base64.b64decode(png.blob)[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("uri", [
    "wandb-lens://runs/lens-demo/no-such-run",
    "wandb-lens://runs/../../etc/passwd/x",
    "wandb-lens://runs/%2e%2e/%2e%2e",
    "wandb-lens://docs/../../../etc/passwd",
    "wandb-lens://docs/nope",
    "file:///etc/passwd",
])
def test_bad_resource_uris_are_clear_errors(demo_server, uri):
    from mcp.shared.exceptions import MCPError

    async def fn(c):
        with pytest.raises(MCPError) as err:
            await c.read_resource(uri)
        return str(err.value)

    msg = _session(demo_server, fn)
    assert "root:" not in msg  # nothing of /etc/passwd
    assert ("Unknown resource" in msg) or ("No run" in msg and "Runs (8)" in msg)


def test_every_prompt_renders_and_names_real_tools(demo_server):
    tools = _tool_names(demo_server)
    args = {"run": "lens-demo/baseline-cosine", "runs": "baseline-cosine, still-improving", "metric": "val/loss",
            "project": "lens-demo", "eval_id": "0193abcd"}

    async def fn(c):
        out = {}
        for p in (await c.list_prompts()).prompts:
            given = {a.name: args[a.name] for a in (p.arguments or [])}
            res = await c.get_prompt(p.name, given)
            out[p.name] = (p, res.messages[0].content.text)
        return out

    rendered = _session(demo_server, fn)
    assert set(rendered) == {"diagnose_training_run", "compare_training_runs", "project_overview",
                             "eval_error_analysis", "weave_eval_report"}
    for name, (prompt, text) in rendered.items():
        assert prompt.description
        for a in prompt.arguments or []:
            assert args[a.name] in text, (name, a.name)
        called = set(re.findall(r"\b([a-z]+(?:_[a-z]+)+)\(", text))
        assert called and called <= tools, (name, called - tools)


def test_prompt_with_missing_argument_is_an_error(demo_server):
    from mcp.shared.exceptions import MCPError

    async def fn(c):
        with pytest.raises(MCPError) as err:
            await c.get_prompt("diagnose_training_run", {})
        return str(err.value)

    msg = _session(demo_server, fn)
    assert "Missing required arguments" in msg and "run" in msg


TOOL_SHAPE = re.compile(r"^(list|query|describe|curve|diagnose|compare|plot|eval|trace|get)_[a-z_]+$")


def test_docs_name_only_real_tools_and_tools_doc_lists_them_all(demo_server):
    from wandb_lens.resources import doc_text

    from wandb_lens.prompts import PROMPTS

    tools = _tool_names(demo_server)
    prompts = {fn.__name__ for fn, _ in PROMPTS}
    for name in DOCS:
        named = {w for w in re.findall(r"`([a-z_]+)", doc_text(name)) if TOOL_SHAPE.match(w)}
        assert named <= tools | prompts, (name, named - tools - prompts)
    listed = set(re.findall(r"^- `([a-z_]+)`", doc_text("tools"), re.M))
    assert listed == tools
    assert "`diagnose_training_run`" in doc_text("tools")  # prompts are listed too, not as tools


def test_diagnostics_doc_states_the_rules_the_code_applies():
    from wandb_lens.analysis import curves, gradients, verdict
    from wandb_lens.resources import doc_text

    doc = doc_text("training-diagnostics")
    flat = " ".join(doc.split())
    assert f"median of its {2 * curves.K} neighbours, the point itself excluded" in flat
    assert f"above {gradients.EXPLODE:g}x the median" in doc
    assert f"below {gradients.VANISH:g} x the early median" in doc
    from wandb_lens.analysis import noise

    assert f"more than {noise.Z_SPIKE:g} robust standard deviations above the level AND material: at least " \
        f"{noise.MATERIAL:g}x the local level on log scale (z of at least {noise.Z_MATERIAL_LINEAR:g}" in flat
    assert f"max({noise.DAMAGE_Z:g} x the noise of that difference, {(noise.DAMAGE_MIN_RATIO - 1) * 100:.0f}%)" in flat
    assert (f"that set the smoothed trend back ({verdict.DAMAGING_MIN} or more) or are frequent "
            f"({verdict.FREQUENT_MIN} or more at {verdict.FREQUENT_RATE:g} or more per 1k points)") in flat
    assert f"counted after the first {verdict.SKIP_START * 100:g}% of points" in flat
    assert f"a finite sustained rise that starts within {verdict.CAUSE_WINDOW * 100:g}% of the run of a spike" in flat
    assert (f"by more than {curves.DIV_NOISE:g} x its level noise AND by more than {curves.DIV_FRAC * 100:g}% of "
            "max(the descent before the best, |best|)") in flat
    assert f"the drop must be at least {verdict.RL_DROP * 100:g}% of the gain" in flat
    assert f"the LR fell below {verdict.LR_COLLAPSE * 100:g}% of its peak after the peak" in flat
    assert f"max(3 level noise, {verdict.SETTLE * 100:g}% of the descent)" in flat
    for v in verdict.VERDICTS:
        assert f"**{v}**" in doc
    order = [doc.index(f"**{v}**") for v in ("diverged", "overfit", "unstable", "healthy", "plateaued", "converged")]
    assert order == sorted(order)  # the order the rules are checked in verdict.py
