"""wandb-lens: an MCP server that reads W&B runs and Weave traces for LLM agents."""

__version__ = "0.1.0"
