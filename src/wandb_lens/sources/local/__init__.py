"""Local W&B runs: the `wandb/` folders W&B writes on disk (the `.wandb` log, its index and parquet history cache)."""
