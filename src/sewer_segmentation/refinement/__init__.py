"""Turning box masks into refined masks with a model's predictions."""
