"""final_training: a round's model, fine-tuned from the best so far (or fresh) on refined + hand-labelled masks,
evaluated on eval; the oracle and the rounds report."""

from . import pipeline  # noqa: F401
