"""Rendering PNGs for the plot tools (matplotlib, imported lazily on first render)."""
