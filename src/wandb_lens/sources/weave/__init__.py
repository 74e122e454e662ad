"""Weave traces: a local SQLite trace store (also a real WeaveClient's backend) and W&B's cloud trace server."""
