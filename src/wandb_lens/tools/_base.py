"""Registering tools: read-only annotations, one compact text block, clean errors."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
from collections.abc import Callable

import anyio
import anyio.from_thread
import anyio.lowlevel

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.server.mcpserver.tools.base import Tool
from mcp.types import ToolAnnotations
from pydantic import ValidationError

from .. import budget, identity, progress
from ..compact import dumps
from ..errors import LensError, close_matches
from . import params as param_docs

log = logging.getLogger("wandb_lens.tools")
# destructiveHint is left out: the MCP spec reads it only when readOnlyHint is false, and every tool
# pays its bytes in tools/list on every turn (24 B x 23 tools)
READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)


def add(server, fn: Callable, description: str, name: str | None = None) -> None:
    """Register `fn` as a read-only tool. It returns a dict (sent as compact JSON) or content."""
    tool_name = name or fn.__name__

    @functools.wraps(fn)
    def run(*args, lens_ctx: Context | None = None, **kwargs):
        token = _request_key(lens_ctx)
        who = identity.bind(lens_ctx)  # per-user caches (plots) bind their entries to it
        try:
            with budget.call() as partial:  # long work past the budget answers from what it has
                result = fn(*args, **kwargs)
        except LensError as exc:
            raise ToolError(_scrub(str(exc))) from None
        except ToolError:
            raise
        except (KeyboardInterrupt, SystemExit, GeneratorExit, asyncio.CancelledError):
            raise  # CancelledError: the client cancelled the call (raised by progress.report's check)
        except BaseException as exc:  # a bug or unreadable data: say what, keep serving. BaseException:
            # a panic in a Rust extension (pyo3's PanicException) escaped `except Exception` and ended
            # the whole session, not just this call
            log.error("tool %s failed: %s", tool_name, _scrub(f"{type(exc).__name__}: {exc}"[:500]),
                      exc_info=_request_key_var().get() is None)
            raise ToolError(_scrub(f"{tool_name} failed: {type(exc).__name__}: {exc}"[:500])) from None
        finally:
            identity.current.reset(who)
            if token is not None:
                _request_key_var().reset(token)
        if isinstance(result, dict):
            if partial and "partial" not in result:
                result["partial"] = partial[0] if len(partial) == 1 else partial
            return dumps(result)
        return result

    # the SDK passes the request Context to a parameter annotated with it: HTTP headers live there
    sig = inspect.signature(fn, eval_str=True)  # evaluated in fn's module (Annotated[..., Field(...)] works)
    extra = inspect.Parameter("lens_ctx", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Context)
    run.__signature__ = sig.replace(parameters=[*sig.parameters.values(), extra])
    run.__annotations__ = {**{p.name: p.annotation for p in sig.parameters.values()}, "lens_ctx": Context}
    tool = LensTool.from_function(run, name=tool_name, description=description, annotations=READ_ONLY,
                                  structured_output=False)
    tool.parameters = describe_params(tool_name, _tidy(tool.parameters))
    _install(server, tool)


def _install(server, tool: Tool) -> None:
    """The one place that reaches into the SDK's tool table. MCPServer has no public way to register a
    ready Tool object: `add_tool` builds a plain Tool from a function (losing LensTool's argument checks)
    and the `tools=` constructor argument needs every tool before the server exists (resources and
    prompts register on the server). tests/test_mcp_ecosystem.py checks that LensTool is what runs."""
    manager = server._tool_manager
    if manager.get_tool(tool.name) is not None:
        raise ValueError(f"tool {tool.name!r} registered twice")
    manager._tools[tool.name] = tool


def describe_params(tool: str, schema: dict) -> dict:
    """Give each top-level parameter its short description (tools/params.py) unless it has one."""
    for name, prop in (schema.get("properties") or {}).items():
        if isinstance(prop, dict) and "description" not in prop:
            text = param_docs.describe(tool, name)
            if text:
                schema["properties"][name] = {"description": text, **prop}
    return schema


class LensTool(Tool):
    """The SDK's tool with stricter arguments: an unknown name is refused (the SDK would drop it
    silently, so a misspelt `limt` went unnoticed), NUL bytes are refused, and pydantic's validation
    errors are restated as one line per argument without the schema-library noise."""

    async def run(self, arguments, context, convert_result: bool = False):
        check_arguments(self.name, self.parameters, arguments)
        try:
            with progress.reporting(_progress_sender(context), check=_check_cancelled):
                return await super().run(arguments, context, convert_result=convert_result)
        except UnexpectedToolError:
            raise
        except ToolError as exc:
            if isinstance(exc.__cause__, ValidationError):  # the arguments failed the input schema
                msg = validation_message(self.name, self.parameters, exc.__cause__)
                raise ToolError(f"Error executing tool {self.name}: {msg}") from exc.__cause__
            raise


def _progress_sender(context):
    """A reporter that sends notifications/progress for this call (the SDK drops them when the
    request carried no progressToken; the in-memory client passes its callback without one, so the
    token is not checked here; reports are rate-limited, so the hop costs little). Tools run on worker
    threads (and may fan out to more threads): the reporter hops to the event loop with this loop's
    token and waits until the notification is handed to the transport, so they leave in order."""
    try:
        context.request_context  # noqa: B018  (raises outside a request: in-process calls)
    except ValueError:
        return None
    loop = anyio.lowlevel.current_token()

    def send(done: float, total: float | None, message: str) -> None:
        anyio.from_thread.run(context.report_progress, done, total, message or None, token=loop)

    return send


def _check_cancelled() -> None:
    """Raise the cancellation of the tool call (the client's notifications/cancelled) in the worker
    thread running it; a no-op on threads anyio did not start (they cannot see the call's scope)."""
    try:
        anyio.from_thread.check_cancelled()
    except anyio.NoEventLoopError:
        pass


def _takes(tool: str, params: dict) -> str:
    names = list((params or {}).get("properties") or {})
    if not names:
        return f"{tool} takes no arguments."
    required = set((params or {}).get("required") or [])
    listed = ", ".join(f"{n} (required)" if n in required else n for n in names)
    return f"{tool} takes: {listed}."


def check_arguments(tool: str, params: dict, arguments: dict) -> None:
    """Refuse argument names the tool does not have, and NUL bytes anywhere in the values."""
    known = list((params or {}).get("properties") or {})
    unknown = [k for k in arguments if k not in known]
    if unknown:
        parts = []
        for k in unknown[:5]:
            near = close_matches(str(k), known, n=1)
            parts.append(f"{str(k)[:60]!r}" + (f" (did you mean {near[0]!r}?)" if near else ""))
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        word = "argument" if len(unknown) == 1 else "arguments"
        raise ToolError(f"Error executing tool {tool}: Unknown {word} {', '.join(parts)}{more}. {_takes(tool, params)}")
    for name, value in arguments.items():
        where = _find_nul(value)
        if where is not None:
            raise ToolError(f"Error executing tool {tool}: Invalid argument {name!r}: "
                            f"{'a key' if where else 'the text'} contains a NUL byte (\\x00).")


def _find_nul(value) -> bool | None:
    """None when no string (or object key) in `value` holds a NUL byte; True for a key, False for a value.
    Iterative, so a deeply nested filter cannot exhaust the stack here."""
    stack = [value]
    seen = 0
    while stack and seen < 200_000:
        v = stack.pop()
        seen += 1
        if isinstance(v, str):
            if "\x00" in v:
                return False
        elif isinstance(v, dict):
            for k, item in v.items():
                if isinstance(k, str) and "\x00" in k:
                    return True
                stack.append(item)
        elif isinstance(v, (list, tuple)):
            stack.extend(v)
    return None


def validation_message(tool: str, params: dict, exc: ValidationError) -> str:
    """"Invalid argument 'limit': Input should be a valid integer (got 'x')." One clause per error."""
    errors = exc.errors(include_url=False)
    clauses = []
    for err in errors[:3]:
        loc = [p for p in err.get("loc", ()) if not (isinstance(p, str) and p.startswith("function-"))]
        name = str(loc[0]) if loc else "?"
        path = name + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc[1:])
        if err.get("type") == "missing":
            clauses.append(f"Missing required argument {name!r}.")
            continue
        msg = str(err.get("msg", "invalid value")).split(", unable to")[0]
        got = _short_repr(err.get("input"))
        clauses.append(f"Invalid argument {path!r}: {msg} (got {got}).")
    if len(errors) > 3:
        clauses.append(f"({len(errors) - 3} more problems.)")
    return " ".join(clauses) + " " + _takes(tool, params)


def _short_repr(value, limit: int = 60) -> str:
    text = repr(value)
    if isinstance(value, (list, tuple)) and len(value) > 3:
        text = f"a list of {len(value)} items"
    elif isinstance(value, dict) and len(text) > limit:
        text = f"an object with {len(value)} keys"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _request_key_var():
    from ..sources.cloud.source import request_key

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


@contextlib.contextmanager
def request_key_from(ctx):
    """For resources: the request's Bearer W&B key and identity in force while reading, as for tools."""
    token = _request_key(ctx)
    who = identity.bind(ctx)
    try:
        yield
    finally:
        identity.current.reset(who)
        if token is not None:
            _request_key_var().reset(token)


def scrubbed(text: str) -> str:
    return _scrub(text)


def _scrub(text: str) -> str:
    """Never echo the request's key, whatever the message."""
    key = _request_key_var().get()
    return text.replace(key, "***") if key and len(key) >= 8 else text


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
