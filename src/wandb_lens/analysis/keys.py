"""Finding a run's train / validation / learning-rate / gradient-norm keys among common namings.

Matching is on the key's last path parts, case-insensitive: `train/loss`, `train_loss`, `loss`,
`trainer/loss` are train losses; `val/loss`, `val_loss`, `eval/loss`, `validation/loss`,
`eval_loss`, `valid_loss`, `test/loss` are validation losses; `lr`, `learning_rate`, `train/lr`,
`lr-AdamW`, `optimizer/lr` are learning rates; `grad_norm`, `train/grad_norm`, `gradient_norm`,
`grad_norm/total` are gradient norms. Histogram families (`gradients/*`) are never picked here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_VAL = r"(val|valid|validation|eval|evaluation|test|dev|holdout)"
_SEP = r"[/_.\-]"

_PATTERNS: dict[str, list[re.Pattern]] = {
    "val": [
        re.compile(rf"^{_VAL}{_SEP}?loss$", re.I),
        re.compile(rf"^{_VAL}{_SEP}.*loss$", re.I),
        re.compile(rf"^loss{_SEP}{_VAL}$", re.I),
        re.compile(rf"(^|{_SEP}){_VAL}{_SEP}(nll|ce|cross_entropy|mse|perplexity|ppl)$", re.I),
    ],
    "train": [
        re.compile(r"^(train|training|trainer)?[/_.\-]?loss$", re.I),
        re.compile(r"^(train|training|trainer)[/_.\-].*loss$", re.I),
        re.compile(r"^loss[/_.\-](train|total|step)$", re.I),
        re.compile(r"^(train[/_.\-])?(total_loss|nll|ce_loss|mse)$", re.I),
        re.compile(r"loss$", re.I),
    ],
    "lr": [
        re.compile(r"(^|[/_.\-])(lr|learning[_\-]?rate)$", re.I),
        re.compile(r"(^|[/_.\-])(lr|learning[_\-]?rate)[/_.\-\w]*$", re.I),
    ],
    "grad_norm": [
        re.compile(r"(^|[/_.\-])(grad|gradient)s?[_\-]?norm$", re.I),
        re.compile(r"(^|[/_.\-])(grad|gradient)s?[_\-]?norm[/_.\-](total|global|all)$", re.I),
        re.compile(r"(^|[/_.\-])global[_\-]?(grad|gradient)[_\-]?norm$", re.I),
    ],
    "accuracy": [
        re.compile(rf"^{_VAL}{_SEP}?(acc|accuracy)$", re.I),
        re.compile(r"(^|[/_.\-])(acc|accuracy|top1|top1_acc)$", re.I),
    ],
    "throughput": [
        re.compile(r"(samples|tokens|examples|steps|it)(_per_|/|_)(s|sec|second)$", re.I),
        re.compile(r"throughput", re.I),
    ],
}

_LOWER_BETTER = re.compile(r"(loss|error|err|perplexity|ppl|nll|mse|mae|rmse|wer|cer|regret|distance)", re.I)
_HIGHER_BETTER = re.compile(r"(acc|accuracy|f1|auc|bleu|rouge|reward|return|score|map|iou|precision|recall|top1|top5)", re.I)
_NOT_METRICS = ("_step", "_runtime", "_timestamp")


def _is_val(key: str) -> bool:
    return bool(re.search(rf"(^|{_SEP}){_VAL}({_SEP}|$)", key, re.I))


def _usable(keys: Iterable[str]) -> list[str]:
    return [k for k in keys if k not in _NOT_METRICS and not k.startswith(("gradients/", "parameters/", "system/"))]


def find_keys(available: Iterable[str]) -> dict[str, str | None]:
    """{"train", "val", "lr", "grad_norm", "accuracy", "throughput"} -> the best matching key or None."""
    keys = _usable(available)
    out: dict[str, str | None] = {}
    for role, patterns in _PATTERNS.items():
        found = None
        for pat in patterns:
            hits = [k for k in keys if pat.search(k)]
            if role == "train":
                hits = [k for k in hits if not _is_val(k)]
            if role in ("lr", "grad_norm", "throughput"):
                hits = [k for k in hits if not _is_val(k)]
            if hits:
                found = min(hits, key=lambda k: (len(k.split("/")), len(k), k))
                break
        out[role] = found
    return out


def role_of(key: str) -> str | None:
    """'lr', 'grad_norm' or None: which special feature set a key gets."""
    for role in ("lr", "grad_norm"):
        if any(p.search(key) for p in _PATTERNS[role]) and not _is_val(key):
            return role
    return None


def direction_for(key: str) -> str | None:
    """'min' for loss-like names, 'max' for accuracy-like names, None when the name does not say."""
    if role_of(key):
        return None
    if _LOWER_BETTER.search(key):
        return "min"
    if _HIGHER_BETTER.search(key):
        return "max"
    return None


def main_metrics(available: Iterable[str], limit: int = 5) -> list[str]:
    """The metrics worth a look when none are named: train loss, val loss, lr, grad norm, accuracy."""
    found = find_keys(available)
    out = [found[r] for r in ("train", "val", "lr", "grad_norm", "accuracy") if found.get(r)]
    if len(out) < 2:
        rest = [k for k in _usable(available) if k not in out and direction_for(k)]
        out += sorted(rest, key=lambda k: (direction_for(k) != "min", len(k)))[: limit - len(out)]
    return list(dict.fromkeys(out))[:limit]
