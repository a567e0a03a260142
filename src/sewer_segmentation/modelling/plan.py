"""What a training run is asked to do, checked before anything runs: the ``TrainingPlan`` a stage hands
to training, the budget in steps, and the checks of the training parameters.

No Lightning here: the pipelines and the start-of-run checks import this module, and only the node that
trains imports ``modelling.training``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from sewer_segmentation.data.samples import Sample, scale_boxes
from sewer_segmentation.errors import BadInputError
from sewer_segmentation.io.imaging import resize_mask
from sewer_segmentation.modelling import config
from sewer_segmentation.modelling.inference import TrainedModel
from sewer_segmentation.modelling.metrics import confusion_counts, soft_sums, validation_values

# Validation metrics the kept weights can be chosen by (``modelling/config.py``): all "higher is
# better", so that every comparison of stages reads the same way.
logger = logging.getLogger(__name__)

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
    # The share of a box's rows and columns a defect reaches (1: tight boxes), measured on baseline_train:
    # the box agreement counts coverage up to it, as the projection term asks for it.
    box_reach: float = 1.0
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


def weak_holdout_scoring(images, box_lists, manifest, labelled: list[Sample], training: dict) -> dict:
    """A ``TrainingPlan``'s fields for scoring models on weak_holdout: its frames, their boxes, and the
    ``box_reach`` the box agreement counts coverage up to (the projection term's coverage, measured on the
    hand-labelled samples when the parameters leave it unset; 1 with too few boxes)."""
    from sewer_segmentation.data.boxes import frame_boxes  # noqa: PLC0415 - cv2, only where boxes are read

    box_loss = dict(training.get("box_loss") or {})
    shares = np.empty((0, 3))
    if box_loss.get("projection_coverage") is None:  # not set by the user nor measured for the loss: measure it here
        shares = box_shares(labelled, frame_boxes(box_lists, manifest, [s.image_id for s in labelled]))
    reach = measured_reach(shares, box_loss)
    return {"holdout_images": dict(images), "holdout_boxes": holdout_boxes(images, box_lists, manifest), "box_reach": reach or 1.0}


#: Fewer hand-labelled boxes than this say too little about how a defect fills its box.
MIN_BOXES_FOR_BOX_PRIORS = 5


def box_shares(labelled: list[Sample], boxes: dict) -> np.ndarray:
    """Per box of the hand-labelled samples (``boxes``: their ``FrameBoxes``), at the training size the box
    losses see, three shares of it the hand-drawn mask covers: its pixels, its rows and its columns
    (``K x 3``). Rows and columns below 1 say the boxes are looser than the defects."""
    shares = []
    for sample in labelled:
        frame = boxes.get(sample.image_id)
        if frame is None:
            continue
        height, width = sample.target.shape
        resized = (height, width) if (height, width) != (frame.height, frame.width) else (None, None)
        for x0, y0, x1, y1 in np.round(scale_boxes(frame.boxes, (frame.height, frame.width), *resized)).astype(int):
            region = sample.target[max(0, y0) : min(height, y1), max(0, x0) : min(width, x1)] >= 0.5
            if region.size:
                shares.append((region.mean(), region.any(axis=1).mean(), region.any(axis=0).mean()))
    return np.asarray(shares, np.float64).reshape(-1, 3)


def with_measured_box_priors(training: dict, labelled: list[Sample], boxes: dict, stage: str) -> dict:
    """``training`` with what the box losses assume about a box measured on the hand-labelled samples,
    where the parameters leave it unset (null):

    - ``box_loss.fill_range``: the ``fill_quantiles`` of the shares of their boxes their polygons cover;
    - ``box_loss.projection_coverage``: the ``projection_quantile`` of the shares of their boxes' rows
      and columns the polygons reach (1 for boxes drawn tight, lower for padded or loose ones, which ask the
      projection term for less).

    Too few boxes leave both unset (the fill term is then off, the projection term asks for every row and
    column), and the log says so."""
    box_loss = dict(training.get("box_loss") or {})
    wanted = {"fill_range": bool(box_loss.get("fill")) and box_loss.get("fill_range") is None,
              "projection_coverage": bool(box_loss.get("projection")) and box_loss.get("projection_coverage") is None}  # fmt: skip
    if not any(wanted.values()):
        return training
    shares = box_shares(labelled, boxes)
    if len(shares) < MIN_BOXES_FOR_BOX_PRIORS:
        logger.warning("%s: only %d boxes on hand-labelled frames; the box fill term is off and the projection term asks for every "
                       "row and column (set box_loss.fill_range and box_loss.projection_coverage to choose)", stage, len(shares))  # fmt: skip
        return training
    measured = {}
    if wanted["fill_range"]:
        low, high = (float(np.quantile(shares[:, 0], q)) for q in box_loss.get("fill_quantiles", (0.1, 0.9)))
        measured["fill_range"] = [low, high]
        logger.info("%s: the hand-drawn masks cover %.2f to %.2f of their boxes (%d boxes of baseline_train); the fill term holds the "
                    "weak pool's masks to that range", stage, low, high, len(shares))  # fmt: skip
    coverage = measured_reach(shares, box_loss) if wanted["projection_coverage"] else None
    if wanted["projection_coverage"] and coverage is None:
        logger.warning("%s: only %d of %d boxes on hand-labelled frames hold a hand-drawn defect; the projection term asks for every row "
                       "and column (set box_loss.projection_coverage to choose)", stage, int((shares[:, 0] > 0).sum()), len(shares))  # fmt: skip
    if coverage is not None:
        measured["projection_coverage"] = coverage
        logger.info("%s: the hand-drawn masks reach %.2f of their boxes' rows and columns (quantile %g over %d boxes of baseline_train); "
                    "the projection term asks the weak pool's masks for as much", stage, coverage, box_loss.get("projection_quantile", 0.5),
                    len(shares))  # fmt: skip
    return {**training, "box_loss": {**box_loss, **measured}}


def measured_reach(shares: np.ndarray, box_loss: dict) -> float | None:
    """The share of a box's rows and columns a defect reaches: ``box_loss.projection_coverage`` when set,
    else the ``projection_quantile`` of the row and column shares (``box_shares``) of the hand-labelled
    boxes that hold a defect (a box the polygons miss is a false box, not a loose one); None with fewer
    than ``MIN_BOXES_FOR_BOX_PRIORS`` such boxes."""
    if box_loss.get("projection_coverage") is not None:
        return float(box_loss["projection_coverage"])
    holding = shares[shares[:, 0] > 0]
    if len(holding) < MIN_BOXES_FOR_BOX_PRIORS:
        return None
    return float(np.quantile(holding[:, 1:], box_loss.get("projection_quantile", 0.5)))


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
