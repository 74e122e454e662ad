"""Who is asking, for binding per-user cache entries (rendered plots) to the identity that made them.

In HTTP mode a request's identity is a keyed hash of its W&B key (`Authorization: Bearer`), else of
the shared lens token (`X-Wandb-Lens-Token`), else "anonymous" (loopback without a token; stdio and
in-process calls are the one local user). The hash is keyed with a secret drawn at process start,
so neither identities nor the ids derived with `keyed_id` can be computed from public facts (tool
arguments, run ids, step counts): an id seen by one user does not open another user's entry, and
an id cannot be guessed by a client that never received it.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import secrets

_SECRET = secrets.token_bytes(32)  # per process: ids die with it, as the in-memory caches do
LOCAL = "local"

current: contextvars.ContextVar[str] = contextvars.ContextVar("wandb_lens_identity", default=LOCAL)


def keyed_id(*parts: str, length: int = 32) -> str:
    """A hex id of `parts` under the per-process secret (not derivable without it)."""
    mac = hmac.new(_SECRET, "\x00".join(parts).encode("utf-8", "surrogatepass"), hashlib.sha256)
    return mac.hexdigest()[:length]


def of_headers(headers) -> str:
    """The identity of a request with these HTTP headers (None: not an HTTP request)."""
    if not headers:
        return LOCAL
    auth = headers.get("authorization") or headers.get("Authorization") or ""
    if auth.lower().startswith("bearer ") and auth[7:].strip():
        return "wandb:" + keyed_id("wandb-key", auth[7:].strip())
    token = headers.get("x-wandb-lens-token") or headers.get("X-Wandb-Lens-Token") or ""
    if token.strip():
        return "token:" + keyed_id("lens-token", token.strip())
    return "anonymous"


def of_ctx(ctx) -> str:
    """The identity of the request behind an MCP `Context` (None or no request: local)."""
    try:
        headers = ctx.headers if ctx is not None else None
    except Exception:  # no request context (in-process calls)
        headers = None
    return of_headers(headers)


def bind(ctx) -> contextvars.Token:
    """Make the identity of the request behind `ctx` current; reset with `current.reset(token)`."""
    return current.set(of_ctx(ctx))
