"""MCP Bundle entry point: `uv run --directory <bundle> server/main.py [--runs-dir DIR ...]`.

The host (Claude Desktop) starts this with the values the user picked at install time: run folders as
arguments (a multiple-choice directory picker expands to one argument per folder), the trace store,
cache folder and W&B key as environment variables. A field left empty arrives as an empty string (or
not at all) and is dropped here, so the server falls back to its own defaults.
"""

from __future__ import annotations

import os
import sys

PLACEHOLDER = "${user_config."  # a host that did not substitute a field passes it through verbatim


def _args(argv: list[str]) -> list[str]:
    values = [a for a in argv if a.strip() and not a.startswith(PLACEHOLDER)]
    dirs = [a for a in values if a != "--runs-dir"]
    return ["serve", *[part for d in dirs for part in ("--runs-dir", d)]]


def main() -> int:
    for name in ("WANDB_LENS_TRACES_DB", "WANDB_LENS_CACHE_DIR", "WANDB_API_KEY"):
        value = os.environ.get(name, "")
        if not value.strip() or value.startswith(PLACEHOLDER):
            os.environ.pop(name, None)
    from wandb_lens.cli import main as cli_main

    return cli_main(_args(sys.argv[1:]))


if __name__ == "__main__":
    sys.exit(main())
