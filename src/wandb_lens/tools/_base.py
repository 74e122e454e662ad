"""Registering tools: read-only annotations, one compact text block, clean errors."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

from ..compact import dumps
from ..errors import LensError

log = logging.getLogger("wandb_lens.tools")
READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, open_world_hint=False)


def add(server, fn: Callable, description: str, name: str | None = None) -> None:
    """Register `fn` as a read-only tool. It returns a dict (sent as compact JSON) or content."""
    tool_name = name or fn.__name__

    @functools.wraps(fn)
    def run(*args, lens_ctx: Context | None = None, **kwargs):
        token = _request_key(lens_ctx)
        try:
            result = fn(*args, **kwargs)
        except LensError as exc:
            raise ToolError(_scrub(str(exc))) from None
        except ToolError:
            raise
        except Exception as exc:  # a bug or unreadable data: say what, keep serving
            log.error("tool %s failed: %s", tool_name, _scrub(f"{type(exc).__name__}: {exc}"[:500]),
                      exc_info=_request_key_var().get() is None)
            raise ToolError(_scrub(f"{tool_name} failed: {type(exc).__name__}: {exc}"[:500])) from None
        finally:
            if token is not None:
                _request_key_var().reset(token)
        if isinstance(result, dict):
            return dumps(result)
        return result

    # the SDK passes the request Context to a parameter annotated with it: HTTP headers live there
    sig = inspect.signature(fn)
    extra = inspect.Parameter("lens_ctx", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Context)
    run.__signature__ = sig.replace(parameters=[*sig.parameters.values(), extra])
    run.__annotations__ = {**getattr(fn, "__annotations__", {}), "lens_ctx": Context}
    server.add_tool(run, name=tool_name, description=description, annotations=READ_ONLY, structured_output=False)


def _request_key_var():
    from ..sources.cloud import request_key

    return request_key


def _request_key(ctx):
    """HTTP mode: a W&B key sent as `Authorization: Bearer <key>` is used for this call only."""
    try:
        headers = ctx.headers if ctx is not None else None
    except Exception:  # no request context (in-process calls)
        headers = None
    if not headers:
        return None
    auth = headers.get("authorization") or headers.get("Authorization") or ""
    if not auth.lower().startswith("bearer "):
        return None
    key = auth[7:].strip()
    return _request_key_var().set(key) if key else None


def _scrub(text: str) -> str:
    """Never echo the request's key, whatever the message."""
    key = _request_key_var().get()
    return text.replace(key, "***") if key and len(key) >= 8 else text


def tidy_schemas(server) -> None:
    """Drop pydantic's noise (titles, `default: null`) from every input schema."""
    for tool in server._tool_manager.list_tools():
        tool.parameters = _tidy(tool.parameters)


def _tidy(node):
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k == "title" and isinstance(v, str):
                continue
            if k == "default" and v is None:
                continue
            out[k] = _tidy(v)
        if "anyOf" in out:  # Optional[X] -> X: the null branch says nothing an agent needs
            branches = [b for b in out["anyOf"] if b != {"type": "null"}]
            if len(branches) == 1:
                merged = {**{k: v for k, v in out.items() if k != "anyOf"}, **branches[0]}
                return merged
            out["anyOf"] = branches
        return out
    if isinstance(node, list):
        return [_tidy(v) for v in node]
    return node
