"""Pure computation on numbers: numpy and pandas only, never MCP or wandb."""
