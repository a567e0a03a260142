"""One sub-package per pipeline: ``nodes.py`` (pure functions) and ``pipeline.py`` (wiring)."""
