"""The state one server process shares across tool calls: configured sources and caches."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field


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


def _key_configured(config) -> bool:
    """A W&B API key in WANDB_API_KEY or netrc (never read beyond "is there one")."""
    from .sources.cloud.source import configured_key

    return configured_key(config.base_url) is not None


@dataclass
class AppConfig:
    runs_dirs: list[str] = field(default_factory=list)
    cache_dir: str | None = None
    traces_db: str | None = None  # local Weave trace store (SQLite, see wandb_lens.weave_local)
    source: str = "auto"  # "local" | "cloud" | "auto" (cloud when a W&B key is configured and no runs_dirs)
    entity: str | None = None  # cloud source defaults ($WANDB_ENTITY / $WANDB_PROJECT otherwise)
    project: str | None = None
    timeout: float | None = None  # seconds per W&B request
    base_url: str | None = None  # $WANDB_BASE_URL otherwise
    eval_idle_minutes: float = 10.0  # a Weave evaluation with no end and no new call for this long: interrupted


class App:
    def __init__(self, config: AppConfig | None = None):
        self.config = config or AppConfig()
        if self.config.source == "auto":
            self.config.source = "local" if self.config.runs_dirs or not _key_configured(self.config) else "cloud"
        if not self.config.runs_dirs:
            self.config.runs_dirs = default_runs_dirs()
        self._made: dict = {}
        self._lock = threading.Lock()

    def _once(self, name: str, make):
        """Build a source once, even when concurrent first calls race (tools run on worker threads)."""
        with self._lock:
            if name not in self._made:
                self._made[name] = make()
            return self._made[name]

    def use(self, name: str, source) -> None:
        """Put a ready source in place ("runs" or "traces"): tests plug in fakes at the network edge."""
        with self._lock:
            self._made[name] = source

    @property
    def runs(self):
        return self._once("runs", self._make_runs)

    @property
    def traces(self):
        return self._once("traces", self._make_traces)

    def _make_runs(self):
        if self.config.source == "cloud":
            from .sources.cloud.source import CloudRunSource

            c = self.config
            return CloudRunSource(entity=c.entity, project=c.project, base_url=c.base_url, cache_dir=c.cache_dir,
                                  timeout=c.timeout)
        from .sources.local.source import LocalRunSource

        return LocalRunSource(self.config.runs_dirs, self.config.cache_dir)

    def _make_traces(self):
        """Weave traces: the local store given by --traces-db / $WANDB_LENS_TRACES_DB, else W&B cloud
        when the configured source is "cloud"."""
        from .errors import LensError
        from .sources.weave.source import LocalTraceSource

        path = self.config.traces_db or os.environ.get("WANDB_LENS_TRACES_DB")
        if path:
            return LocalTraceSource(path)
        if getattr(self.config, "source", None) == "cloud":
            from .sources.weave.http import CloudTraceSource

            return CloudTraceSource(getattr(self.config, "entity", None), getattr(self.config, "project", None))
        raise LensError("No Weave trace source: start the server with --traces-db PATH (a store written by "
                        "wandb_lens.weave_local.init_local) or with the cloud source.")
