"""Key roles (analysis/keys.py) on the names real frameworks log; each case is a framework's default."""

from __future__ import annotations

import pytest

from wandb_lens.analysis.keys import direction_for, find_keys, resolve_roles

CASES = [
    # Lightning: self.log("train_loss", on_step=True, on_epoch=True) + LearningRateMonitor
    (["train_loss_step", "train_loss_epoch", "val_loss", "lr-Adam", "trainer/global_step", "epoch"],
     {"train": "train_loss_step", "val": "val_loss", "lr": "lr-Adam"}),
    # HF Trainer
    (["train/loss", "eval/loss", "train/learning_rate", "train/grad_norm", "train/global_step", "train/epoch"],
     {"train": "train/loss", "val": "eval/loss", "lr": "train/learning_rate", "grad_norm": "train/grad_norm"}),
    # Keras WandbCallback / WandbMetricsLogger
    (["loss", "val_loss", "epoch", "lr"], {"train": "loss", "val": "val_loss", "lr": "lr"}),
    (["epoch/loss", "epoch/val_loss", "epoch/learning_rate", "epoch/epoch", "batch/loss", "batch/batch_step"],
     {"train": "batch/loss", "val": "epoch/val_loss", "lr": "epoch/learning_rate"}),
    # timm / custom loops
    (["train_loss_avg", "val_loss_avg", "lr"], {"train": "train_loss_avg", "val": "val_loss_avg"}),
    # Lightning grad_norm() utility
    (["train/loss", "grad_2.0_norm_total"], {"train": "train/loss", "grad_norm": "grad_2.0_norm_total"}),
    # SB3 PPO: judged on the return, not on its losses
    (["rollout/ep_rew_mean", "train/value_loss", "train/policy_gradient_loss", "train/loss", "train/learning_rate"],
     {"train": "rollout/ep_rew_mean", "return": "rollout/ep_rew_mean", "lr": "train/learning_rate"}),
    (["episode_reward", "episode_length"], {"train": "episode_reward"}),
]


@pytest.mark.parametrize("keys,expect", CASES)
def test_framework_default_keys(keys, expect):
    found = find_keys(keys)
    assert {r: found[r] for r in expect} == expect
    roles = resolve_roles(keys)
    assert not roles["train"].get("guess") and roles["train"]["why"]


def test_yolo_components_are_a_stated_guess():
    roles = resolve_roles(["train/box_loss", "train/obj_loss", "train/cls_loss", "val/box_loss", "metrics/mAP_0.5",
                           "x/lr0"])
    assert roles["train"]["key"] == "train/box_loss" and roles["train"]["guess"]
    assert "no total train loss" in roles["train"]["why"] and roles["lr"]["key"] == "x/lr0"
    assert roles["val"]["key"] == "val/box_loss"


def test_directions_of_likelihoods_and_returns():
    assert [direction_for(k) for k in ("elbo", "neg_elbo", "nll", "log_likelihood", "rollout/ep_rew_mean",
                                       "metrics/mAP_0.5", "train_loss_step")] == [
        "max", "min", "min", "max", "max", "max", "min"]


def test_role_names_are_stable_for_query_runs():
    assert tuple(find_keys(())) == ("train", "val", "lr", "grad_norm", "accuracy", "throughput", "return")
