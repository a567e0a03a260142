"""suggest_labels: which weak-pool frames to hand-label next."""

from . import pipeline  # noqa: F401
