"""mask_refinement: the previous model turns the weak pool's box masks into refined masks."""

from . import pipeline  # noqa: F401
