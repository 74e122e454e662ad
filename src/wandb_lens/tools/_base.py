"""Registering tools: read-only annotations, one compact text block, clean errors."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

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
    def run(*args, **kwargs):
        try:
            result = fn(*args, **kwargs)
        except LensError as exc:
            raise ToolError(str(exc)) from None
        except ToolError:
            raise
        except Exception as exc:  # a bug or unreadable data: say what, keep serving
            log.exception("tool %s failed", tool_name)
            raise ToolError(f"{tool_name} failed: {type(exc).__name__}: {exc}"[:500]) from None
        if isinstance(result, dict):
            return dumps(result)
        return result

    server.add_tool(run, name=tool_name, description=description, annotations=READ_ONLY, structured_output=False)


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
