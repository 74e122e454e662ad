"""W&B cloud runs through `wandb.Api`, with a per-user parquet history cache."""
