"""Reading a run's series for the diagnostics and plot tools: key checks, step-axis choice, pairing by step."""

from __future__ import annotations

import numpy as np

from ..analysis import keys as K
from ..analysis import step_axis as SA
from ..errors import LensError, suggest
from ..sources.history import HISTOGRAM, MEDIA, NUMERIC, TEXT

DIRECTIONS = ("auto", "min", "max")


class RunData:
    """One run's history with cached step-axis candidates and per-(metric, axis) series."""

    def __init__(self, app, ref: str | None = None, info=None):
        self.info = info if info is not None else app.runs.get_run(ref)
        self.hist = app.runs.history(self.info)
        self._numeric = None
        self._cands = None
        self._xs: dict = {}

    @property
    def name(self) -> str:
        return self.info.name or self.info.id

    def numeric_keys(self) -> list[str]:
        return [k for k in self.hist.keys(NUMERIC) if k not in ("_runtime", "_timestamp")]

    def candidates(self) -> list[dict]:
        if self._cands is None:
            # one column at a time (a lazy history reads each and drops it), facts kept per history
            facts = self.hist.all_facts(self.numeric_keys())
            self._cands = SA.candidates_from(facts, self.info.metrics)
        return self._cands

    def check_metric(self, key: str, what: str = "metric", numeric: bool = False) -> None:
        """An unknown key lists close matches; `numeric=True` also refuses histogram and media keys."""
        if key not in self.hist.columns:
            pool = [k for k in self.hist.columns if k not in ("_runtime", "_timestamp")]
            if numeric:
                pool = [k for k in self.numeric_keys() if not k.startswith("_")] or self.numeric_keys()
            raise LensError(suggest(what, key, pool, where=f" in run {self.info.ref}"))
        kind = self.hist.kind(key)
        if numeric and kind in (HISTOGRAM, MEDIA):
            hint = " (plot_grad_histograms draws histograms)" if kind == HISTOGRAM else ""
            raise LensError(f"{key!r} in run {self.info.ref} holds {kind} values, not a scalar curve{hint}.")
        if kind == TEXT:
            col = self.hist.columns[key]
            ex = str(col.values[0])[:40] if len(col.values) else ""
            raise LensError(f"{key!r} in run {self.info.ref} holds text values (e.g. {ex!r}), not numbers: "
                            "no curve to judge.")

    def xs(self, metric: str, axis: str):
        """x values of `metric` on `axis` (rows where both were logged), or None."""
        if axis not in self.hist.columns or self.hist.kind(axis) != NUMERIC:
            return None
        k = (metric, axis)
        if k not in self._xs:
            self._xs[k] = self.hist.series(metric, axis)
        return self._xs[k][0]

    def axis(self, metric: str, step_key: str | None) -> dict:
        if step_key:
            if step_key not in self.hist.columns or self.hist.kind(step_key) != NUMERIC:
                pool = [c["key"] for c in self.candidates()] + self.numeric_keys()
                raise LensError(suggest("step_key", step_key, pool, where=f" in run {self.info.ref}"))
        return SA.choose(metric, self.candidates(), self.info.metrics, step_key, lambda a: self.xs(metric, a))

    def series(self, metric: str, axis: str) -> tuple[np.ndarray, np.ndarray]:
        self.xs(metric, axis)
        x, y = self._xs[(metric, axis)]
        return x, y

    def is_histogram(self, key: str) -> bool:
        return key in self.hist.columns and self.hist.kind(key) == HISTOGRAM

    def histogram_keys(self, prefix: str | None = None) -> list[str]:
        return [k for k in self.hist.keys(HISTOGRAM) if prefix is None or k.startswith(prefix)]

    def layers(self, keys: list[str]) -> dict:
        out = {}
        for k in keys:
            col = self.hist.columns[k]
            out[k] = (self.hist.steps[col.rows].astype(np.float64), col.values, col.bins or [])
        return out

    def state_note(self) -> str | None:
        st = self.info.state
        last = self.hist.steps[-1] if self.hist.n_rows else None
        if st == "crashed":
            return f"run crashed (no clean exit) at _step {last}: judged on the {self.hist.n_rows} rows it logged"
        if st == "running":
            return f"run still running (last _step {last}): judged on what it has logged so far"
        if st == "failed":
            return f"run failed (exit code {self.info.exit_code}) at _step {last}"
        return None


def direction_of(key: str, direction: str) -> str:
    if direction not in DIRECTIONS:
        raise LensError(f"direction must be one of {', '.join(DIRECTIONS)} (got {direction!r}).")
    if direction != "auto":
        return direction
    return K.direction_for(key) or "auto"


def pick_keys(rd: RunData, train_key: str | None, val_key: str | None) -> tuple[dict, dict]:
    """(role -> key, role -> why it was picked) for train / val / lr / grad_norm."""
    roles = K.resolve_roles(rd.numeric_keys())
    found = {r: roles[r]["key"] for r in ("train", "val", "lr", "grad_norm") if r in roles}
    why = {r: roles[r]["why"] for r in ("train", "val") if r in roles}
    if train_key:
        rd.check_metric(train_key, "train_key")
        found["train"], why["train"] = train_key, "asked for"
    if val_key:
        rd.check_metric(val_key, "val_key")
        found["val"], why["val"] = val_key, "asked for"
    if not found.get("train"):
        if found.get("val"):
            found["train"], found["val"] = found["val"], None
            why["train"] = f"guess: no train loss logged; judged the validation curve {found['train']!r} as the curve"
            why.pop("val", None)
        else:
            pool = rd.numeric_keys()
            raise LensError(f"No loss-like metric found in run {rd.info.ref}; pass train_key. Numeric keys "
                            f"({len(pool)}): {', '.join(sorted(pool)[:15])}{' ...' if len(pool) > 15 else ''}.")
    if found.get("val") == found["train"]:
        found["val"] = None
        why.pop("val", None)
    return found, why
