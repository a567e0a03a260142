"""baseline_training: a model trained on hand-labelled images, evaluated once on eval."""

from . import pipeline  # noqa: F401
