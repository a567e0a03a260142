"""training_stage: train -> predict eval -> score -> plots, one definition for the baseline and every round."""

from . import pipeline  # noqa: F401
