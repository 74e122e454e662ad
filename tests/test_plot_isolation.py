"""Plot resources bound to the identity that drew them (issue 15), over real streamable HTTP.

A shared server (token on) over the demo runs. Three clients: two with their own W&B key
(`Authorization: Bearer`) and one with the token only. Each draws or tries to read the others'
`wandb-lens://plots/<id>.png`: only the identity that drew a plot reads it; the ids are keyed
hashes (a per-process secret), so the same request by two users gets two unrelated ids.
"""

from __future__ import annotations

import hashlib
import json

import anyio
import pytest
from mcp.shared.exceptions import MCPError

from lens_http import TOKEN, TOKEN_HEADER, LensHTTP, clean_env, open_session

KEY_A = "a" * 40
KEY_B = "b" * 40


@pytest.fixture(scope="module")
def shared_server(demo_dir, tmp_path_factory):
    srv = LensHTTP(["--runs-dir", str(demo_dir / "wandb")], tmp_path_factory.mktemp("plots-iso"),
                   env=clean_env(WANDB_LENS_TOKEN=TOKEN))
    yield srv
    srv.stop()


def _headers(key: str | None) -> dict:
    h = {TOKEN_HEADER: TOKEN}
    if key:
        h["Authorization"] = f"Bearer {key}"
    return h


async def _draw(url: str, key: str | None) -> str:
    async with open_session(url, _headers(key)) as s:
        out = await s.call_tool("plot_overview", {"run": "lens-demo/baseline-cosine"})
        assert not out.is_error, out.content
        return next(b.uri for b in out.content if b.type == "resource_link")


async def _read(url: str, key: str | None, uri: str):
    async with open_session(url, _headers(key)) as s:
        try:
            res = await s.read_resource(uri)
        except MCPError as exc:
            return str(exc)
        return res.contents[0].blob


def test_a_plot_is_read_only_by_the_identity_that_drew_it(shared_server):
    url = shared_server.url

    async def go():
        with anyio.fail_after(120):
            uri_a = await _draw(url, KEY_A)
            uri_b = await _draw(url, KEY_B)
            uri_t = await _draw(url, None)
            assert len({uri_a, uri_b, uri_t}) == 3  # same request, three identities, three ids
            own = await _read(url, KEY_A, uri_a)
            assert isinstance(own, str) and len(own) > 1000  # base64 PNG
            for key, uri in ((KEY_B, uri_a), (None, uri_a), (KEY_A, uri_b), (KEY_A, uri_t)):
                denied = await _read(url, key, uri)
                assert "not in the cache" in denied, (key, uri, denied[:80])
            assert (await _read(url, None, uri_t))[:10] == own[:10]  # the token-only user reads its own

    anyio.run(go)


def test_plot_ids_cannot_be_derived_from_public_facts():
    """The old id was sha256 of the request and the run's public facts; the new one needs the secret."""
    from wandb_lens.plotting.cache import plot_id

    args, sig = {"step_key": None, "metrics": None}, [("lens-demo/x", 840, 838, "finished")]
    doc = json.dumps({"tool": "plot_overview", "args": args, "data": sig}, sort_keys=True, default=str)
    pid = plot_id("plot_overview", args, sig, "local")
    assert len(pid) == 32 and pid != hashlib.sha256(doc.encode()).hexdigest()[:32]
    assert pid != plot_id("plot_overview", args, sig, "anonymous")
