"""final_training: a fresh model on refined + hand-labelled masks, evaluated on eval."""

from . import pipeline  # noqa: F401
