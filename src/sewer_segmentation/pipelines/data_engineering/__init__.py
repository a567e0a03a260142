"""data_engineering: raw folders -> validated, de-duplicated, split datasets and a data report."""

from . import pipeline  # noqa: F401
