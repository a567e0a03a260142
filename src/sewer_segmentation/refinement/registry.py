"""The refinement methods by name: each one a small unit with its own parameter model.

A method maps ``(probability map p, binary box mask b, its parameters, the frame)`` of one image, all at
the image's own size, to a soft target mask in [0, 1] and a per-pixel loss weight in [0, 1]
(``method.RefinementMethod``). Adding one is one new file in this folder (its parameter model, its
``refine`` function and a ``METHOD``) and one line in ``REFINEMENT_METHODS``: ``mask_refinement.<name>``
then holds its settings (its model's defaults when absent), ``mask_refinement.method: <name>`` uses it, and
``auto`` weighs it once it is named in ``mask_refinement.auto.methods``.
"""

from __future__ import annotations

from sewer_segmentation.refinement import box, box_prior, grabcut, seed, threshold
from sewer_segmentation.refinement.method import RefinementMethod

#: Every refinement method, by the name configuration uses; ``auto``'s ties go to the earlier one.
REFINEMENT_METHODS: dict[str, RefinementMethod] = {
    "threshold": threshold.METHOD,
    "grabcut": grabcut.METHOD,
    "box_prior": box_prior.METHOD,
    "seed": seed.METHOD,
    "box": box.METHOD,
}
