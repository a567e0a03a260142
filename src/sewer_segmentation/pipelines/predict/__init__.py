"""predict: a chosen model applied to a folder of new frames."""

from . import pipeline  # noqa: F401
