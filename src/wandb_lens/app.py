"""The state one server process shares across tool calls: configured sources and caches."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property


def default_runs_dirs() -> list[str]:
    """`./wandb` when it exists, then `$WANDB_DIR` (its `wandb/` folder), else `./wandb`."""
    found = []
    if os.path.isdir("wandb"):
        found.append(os.path.abspath("wandb"))
    env = os.environ.get("WANDB_DIR")
    if env:
        sub = os.path.join(env, "wandb")
        found.append(os.path.abspath(sub if os.path.isdir(sub) else env))
    return found or [os.path.abspath("wandb")]


@dataclass
class AppConfig:
    runs_dirs: list[str] = field(default_factory=list)
    cache_dir: str | None = None


class App:
    def __init__(self, config: AppConfig | None = None):
        self.config = config or AppConfig()
        if not self.config.runs_dirs:
            self.config.runs_dirs = default_runs_dirs()

    @cached_property
    def runs(self):
        from .sources.local import LocalRunSource

        return LocalRunSource(self.config.runs_dirs, self.config.cache_dir)
