"""What a training run is asked to do, checked before anything runs: the ``TrainingPlan`` a stage hands
to training, the budget in steps, and the checks of the training parameters.

No Lightning here: the pipelines and the start-of-run checks import this module, and only the node that
trains imports ``modelling.training``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from sewer_segmentation.data.samples import Sample
from sewer_segmentation.errors import BadInputError
from sewer_segmentation.io.imaging import resize_mask
from sewer_segmentation.modelling import config
from sewer_segmentation.modelling.inference import TrainedModel
from sewer_segmentation.modelling.metrics import confusion_counts, soft_sums, validation_values

# Validation metrics the kept weights can be chosen by (``modelling/config.py``): all "higher is
# better", so that every comparison of stages reads the same way.
SELECTION_METRICS = dict.fromkeys(config.SELECTION_METRICS, "max")


@dataclass
class TrainingPlan:
    """What one training stage trains and how: everything ``train_model`` needs besides the seed.

    Made by the stage's own node (``plan_baseline_training``, ``plan_round_training``) after its inputs
    were checked; trained by the shared ``training_stage`` pipeline.
    """

    stage: str
    train: list[Sample]
    val: list[Sample]
    model_config: dict
    training: dict
    image_size: dict
    initial_state: dict | None = None  # fine-tuning: the starting weights (scored on validation first)
    sample_weights: list[float] | None = None  # per training sample: how often it is drawn
    # A round: the model the stage before handed on (the start; its weights are ``initial_state`` when
    # fine-tuning), and the guard that decides whether the trained weights or the start are handed on.
    previous_model: TrainedModel | None = None
    guard: config.RoundGuardParams = field(default_factory=config.RoundGuardParams)
    starts_from: dict | None = None  # metadata of the model fine-tuned from, to tell whether the stage beat it
    # The box masks of the validation images scored as a predictor, by the selection metric: a model
    # below it is worse than the boxes it was given (flagged in the log, rounds.md and the run summary).
    box_validation_score: float | None = None
    # The weak_holdout frames (loaders) and their boxes (K x 4 at full size): the trained model (and the
    # start of a fine-tuning run) is scored on how well its masks agree with them (modelling/box_agreement.py).
    holdout_images: dict = field(default_factory=dict)
    holdout_boxes: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)  # added to the trained model's metadata


def box_validation_score(val: list[Sample], val_box_masks, metric: str) -> float | None:
    """The validation metric of the box masks themselves (``val_box_masks``: loaders of the box masks of
    ``val``'s images, resized to the samples' size; the frames are not decoded again), computed as
    validation scores a model; None without images."""
    if not val:
        return None
    missing = sorted(s.image_id for s in val if s.image_id not in val_box_masks)
    if missing:
        raise BadInputError(f"baseline_val: no box mask for {', '.join(missing[:5])}; run `kedro run --pipeline=data_engineering` again")
    counts, soft = [], torch.zeros(7)
    for s in val:  # one by one: in native mode every frame has its own size
        box = resize_mask(val_box_masks[s.image_id]().astype(np.float32) / 255.0, *s.target.shape)
        predicted, target = torch.from_numpy(box)[None, None], torch.from_numpy(s.target)[None, None]
        counts.append(confusion_counts(predicted, target))
        soft += soft_sums(predicted, target)
    return validation_values(torch.cat(counts), soft)[metric]


def holdout_boxes(images, box_lists, manifest) -> dict:
    """The boxes (``K x 4``, full-size pixels) of every weak_holdout frame in ``images``."""
    from sewer_segmentation.data.boxes import frame_boxes  # noqa: PLC0415 - cv2, only where boxes are read

    return {image_id: found.boxes for image_id, found in frame_boxes(box_lists, manifest, list(images)).items()}


def labelled_sampling_weights(n_weak: int, n_labelled: int, labelled_share: float | None) -> list[float] | None:
    """Per-sample draw weights giving the hand-labelled images ``labelled_share`` of all draws (weak
    images first, then labelled); None draws every image equally often."""
    if labelled_share is None or n_weak == 0 or n_labelled == 0:
        return None
    share = float(labelled_share)
    return [(1 - share) / n_weak] * n_weak + [share / n_labelled] * n_labelled


def resolve_budget(training: dict, n_train: int) -> tuple[int, int]:
    """(optimizer steps, steps between validations) from ``steps``/``validations`` or, when ``epochs`` is
    set, from epochs over ``n_train`` images (``scoring_per_epoch`` validations per epoch)."""
    batch_size = int(training["batch_size"])
    epochs = training.get("epochs")
    if epochs is not None:
        steps = int(epochs) * max(1, math.ceil(n_train / batch_size))
        validations = int(epochs) * max(1, int(training.get("scoring_per_epoch", 1)))
    else:
        steps = int(training["steps"])
        validations = max(1, int(training.get("validations", 10)))
    every = training.get("val_every_steps")
    interval = int(every) if every else max(1, steps // validations)
    return steps, min(interval, steps)
