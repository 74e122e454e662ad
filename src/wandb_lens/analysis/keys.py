"""Finding a run's train / validation / learning-rate / gradient-norm / return keys among the names
real frameworks log, and saying why each was picked.

Matching is case-insensitive on the whole key. A suffix `_step` / `_epoch` / `_avg` / `_mean`
(Lightning's `train_loss_step` / `train_loss_epoch` pair, `*_loss_avg`) is read off first; the
per-step variant is preferred (more points; the `_epoch` one is its epoch mean).
- train: by name (`train/loss` HF Trainer, `train_loss` / `train_loss_step` Lightning, `loss`
  Keras and plain logging, `batch/loss` / `epoch/loss` Keras' WandbMetricsLogger, `total_loss`,
  `trainer/loss`, `train/nll`, `neg_elbo`); else, a GUESS stated as one: a train-side component loss
  (`train/box_loss` of YOLO, which logs no total), then any non-validation key ending in `loss`,
  then NLL / ELBO / perplexity keys.
- val: `val/loss`, `val_loss`, `eval/loss`, `eval_loss`, `validation/loss`, `valid_loss`,
  `test/loss`, `epoch/val_loss`, ... by name; else (a guess) a validation key ending in loss / nll / ppl.
- lr: `lr`, `learning_rate`, `train/learning_rate`, `lr-Adam` (Lightning LearningRateMonitor),
  `x/lr0` (YOLOv5), `lr/pg0`, `epoch/learning_rate`.
- grad_norm: `grad_norm`, `train/grad_norm`, `gradient_norm`, `grad_norm/total`, `grad_2.0_norm_total`.
- return (RL, higher is better): `rollout/ep_rew_mean`, `charts/episodic_return`, `episode_reward`,
  `episode_return`, `return`, `reward`, `mean_reward`. An RL run is judged on its return, not on its
  policy / value losses (those do not fall as an agent learns).
Histogram families (`gradients/*`, `parameters/*`) and `system/*` are never picked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_VAL = r"(val|valid|validation|eval|evaluation|test|dev|holdout)"
_SEP = r"[/_.\-]"
_SUFFIX = re.compile(r"^(.+?)[/_.\-](step|epoch|avg|mean)$", re.I)
# preference among suffix variants of one name: the per-step curve first, the epoch mean last
_SUFFIX_ORDER = {"step": 0, "": 1, "avg": 2, "mean": 2, "epoch": 3}

_TRAIN_NAMES = (
    "train/loss", "train_loss", "training_loss", "training/loss", "trainer/loss", "train/total_loss",
    "train_total_loss", "loss/train", "loss/total", "batch/loss", "loss", "total_loss", "epoch/loss",
    "train/nll", "train_nll", "nll", "neg_elbo", "train/neg_elbo", "nelbo", "loss_avg",
)
_VAL_NAMES = (
    "val/loss", "val_loss", "eval/loss", "eval_loss", "validation/loss", "validation_loss", "valid/loss",
    "valid_loss", "test/loss", "test_loss", "dev/loss", "dev_loss", "loss/val", "loss/validation",
    "epoch/val_loss", "val/total_loss", "val_total_loss", "val/nll", "val_nll", "eval/nll",
)
_RETURN = re.compile(r"(^|/)(ep_rew_mean|episodic_return|episode_reward|episode_return|ep_ret|ep_reward|"
                     r"mean_reward|mean_return|avg_return|average_return|returns?|rewards?|episode/reward|"
                     r"episode/return)$", re.I)

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
        re.compile(r"(^|[/_.\-])grad_[\d.]+_norm[/_.\-]?total$", re.I),
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

_LOWER_BETTER = re.compile(r"(loss|error|err|perplexity|ppl|nll|nelbo|neg_|mse|mae|rmse|wer|cer|regret|distance)",
                           re.I)
_HIGHER_BETTER = re.compile(r"(acc|accuracy|f1|auc|bleu|rouge|reward|return|ep_rew|score|map|iou|precision|recall|"
                            r"top1|top5|elbo|likelihood|loglik)", re.I)
_NOT_METRICS = ("_step", "_runtime", "_timestamp")
ROLES = ("train", "val", "lr", "grad_norm", "accuracy", "throughput", "return")


def _is_val(key: str) -> bool:
    return bool(re.search(rf"(^|{_SEP}){_VAL}({_SEP}|$)", key, re.I)) or key.lower().startswith("val_")


def _usable(keys: Iterable[str]) -> list[str]:
    return [k for k in keys if k not in _NOT_METRICS and not k.startswith(("gradients/", "parameters/", "system/"))]


def _split(key: str) -> tuple[str, str]:
    """('train_loss', 'step') for 'train_loss_step'; (key, '') when no suffix is read off."""
    m = _SUFFIX.match(key)
    if m and re.search(r"(loss|nll|elbo)$", m.group(1), re.I):
        return m.group(1).lower(), m.group(2).lower()
    return key.lower(), ""


def _by_name(keys: list[str], names: tuple[str, ...]) -> str | None:
    rank = {n: i for i, n in enumerate(names)}
    hits = [(rank[base], _SUFFIX_ORDER[suf], len(k), k) for k in keys for base, suf in [_split(k)] if base in rank]
    return min(hits)[3] if hits else None


def _first_pattern(keys: list[str], role: str) -> str | None:
    for pat in _PATTERNS[role]:
        hits = [k for k in keys if pat.search(k)]
        if role in ("train", "lr", "grad_norm", "throughput"):
            hits = [k for k in hits if not _is_val(k)]
        if hits:
            return min(hits, key=lambda k: (len(k.split("/")), _SUFFIX_ORDER[_split(k)[1]], len(k), k))
    return None


def _train(keys: list[str], returns: str | None) -> dict | None:
    named = _by_name([k for k in keys if not _is_val(k)], _TRAIN_NAMES)
    rl_losses = [k for k in keys if re.search(r"(policy|value|entropy|actor|critic|q)[_\-]?(gradient_)?loss", k, re.I)]
    if returns and (rl_losses or not named):
        why = "RL run: judged on the episode return (higher is better); policy/value losses do not track progress"
        return {"key": returns, "why": why}
    if named:
        suf = _split(named)[1]
        why = "train loss by name"
        if suf == "step":
            why += f" (per-step; {_split(named)[0]}_epoch would be its epoch mean)"
        return {"key": named, "why": why}
    train_side = [k for k in keys if not _is_val(k)]
    comps = [k for k in train_side if re.match(r"^(train|training)[/_.\-].*loss", k, re.I)]
    if comps:
        pick = min(comps, key=lambda k: (_SUFFIX_ORDER[_split(k)[1]], len(k), k))
        return {"key": pick, "guess": True,
                "why": f"guess: no total train loss logged; judged {pick!r}, one of {len(comps)} train loss terms "
                       f"({', '.join(sorted(comps)[:4])})"}
    pick = _first_pattern(keys, "train")
    if pick:
        return {"key": pick, "guess": True, "why": f"guess: {pick!r} is the closest loss-like name"}
    other = [k for k in train_side if re.search(r"(nll|elbo|perplexity|ppl|log_?likelihood)$", k, re.I)]
    if other:
        pick = min(other, key=lambda k: (len(k), k))
        return {"key": pick, "guess": True, "why": f"guess: no loss logged; judged {pick!r}"}
    return None


def _val(keys: list[str]) -> dict | None:
    named = _by_name(keys, _VAL_NAMES)
    if named:
        return {"key": named, "why": "validation loss by name"}
    pick = _first_pattern(keys, "val")
    if pick:
        return {"key": pick, "guess": True, "why": f"guess: {pick!r} is the closest validation loss"}
    return None


def resolve_roles(available: Iterable[str]) -> dict[str, dict]:
    """role -> {"key", "why", "guess" (only when the key is a guess)} for the roles found."""
    keys = _usable(available)
    out: dict[str, dict] = {}
    rets = [k for k in keys if _RETURN.search(k)]
    ret = min(rets, key=lambda k: (_is_val(k), "eval" in k.lower(), len(k.split("/")) > 2, len(k), k)) if rets \
        else None
    if ret:
        out["return"] = {"key": ret, "why": "episode return by name (higher is better)"}
    t = _train(keys, ret)
    if t:
        out["train"] = t
    v = _val(keys)
    if v and (not t or v["key"] != t["key"]):
        out["val"] = v
    for role in ("lr", "grad_norm", "accuracy", "throughput"):
        k = _first_pattern(keys, role)
        if k:
            out[role] = {"key": k, "why": f"{role} by name"}
    return out


def find_keys(available: Iterable[str]) -> dict[str, str | None]:
    """{"train", "val", "lr", "grad_norm", "accuracy", "throughput", "return"} -> the best key or None."""
    found = resolve_roles(available)
    return {role: (found[role]["key"] if role in found else None) for role in ROLES}


def role_of(key: str) -> str | None:
    """'lr', 'grad_norm' or None: which special feature set a key gets."""
    for role in ("lr", "grad_norm"):
        if any(p.search(key) for p in _PATTERNS[role]) and not _is_val(key):
            return role
    return None


def is_return(key: str) -> bool:
    """An RL episode return / reward key (higher is better, noisy by design)."""
    return bool(_RETURN.search(key))


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
    out = [found[r] for r in ("train", "val", "lr", "grad_norm", "accuracy", "return") if found.get(r)]
    if len(out) < 2:
        rest = [k for k in _usable(available) if k not in out and direction_for(k)]
        out += sorted(rest, key=lambda k: (direction_for(k) != "min", len(k)))[: limit - len(out)]
    return list(dict.fromkeys(out))[:limit]
