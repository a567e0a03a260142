"""Training with Lightning (inference lives in ``inference.py``).

``train_model`` fits a model on cached samples for a budget of optimizer steps (``training.steps``; or
``epochs``, turned into steps), validates ``validations`` times and keeps the weights of the best
**validation** metric (never an evaluation-set metric). An interrupted run resumes from its last
checkpoint when started again with the same configuration and data.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import time
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, TQDMProgressBar
from torch.utils.data import DataLoader, Sampler

from sewer_segmentation.data.config import ImageSizeParams
from sewer_segmentation.data.samples import (
    FrameSize,
    Sample,
    SegmentationDataset,
    frame_size,
    normalization_for,
    training_datasets,
)
from sewer_segmentation.errors import BadInputError, TrainingDivergedError
from sewer_segmentation.io.files import explaining_a_full_disk
from sewer_segmentation.modelling.box_losses import BoxSupervisionLoss
from sewer_segmentation.modelling.config import ModelParams, TrainingParams
from sewer_segmentation.modelling.inference import TrainedModel, cpu_has_fast_bf16, inference_device, resolve_precision
from sewer_segmentation.modelling.losses import build_loss
from sewer_segmentation.modelling.metrics import (
    confusion_counts,
    metrics_from_counts,
    soft_metrics_from_sums,
    soft_sums,
    validation_values,
)
from sewer_segmentation.modelling.models import build_model, set_batchnorm_frozen
from sewer_segmentation.modelling.plan import SELECTION_METRICS, resolve_budget
from sewer_segmentation.modelling.precision import probe_precision
from sewer_segmentation.modelling.tiling import predict_tiled
from sewer_segmentation.progress import on_terminal
from sewer_segmentation.schema import plain

logger = logging.getLogger(__name__)
# Lightning sets its loggers to INFO when imported, after the project's logging configuration: its "GPU
# available" lines and its litlogger tip would reach every run's log. Warnings still do.
for _name in ("lightning.pytorch", "pytorch_lightning"):
    logging.getLogger(_name).setLevel(max(logging.getLogger(_name).level, logging.WARNING))


def _quiet_lightning() -> None:
    """Lightning's setup notes ("GPU available: False", a tip about another logger) say nothing about
    this run. Set just before each Trainer: Kedro's logging configuration resets these child loggers
    whenever it is applied, so a level set at import time does not last."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # Lightning 2.6 calls a torch API it deprecated itself; nothing a user can act on.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)", category=Warning)



# --------------------------------------------------------------------------------------------------
# Lightning module
# --------------------------------------------------------------------------------------------------


class SegmentationModule(L.LightningModule):
    def __init__(self, model: torch.nn.Module, loss: torch.nn.Module, training: dict, freeze_batchnorm: bool, total_steps: int,
                 box_loss: BoxSupervisionLoss | None = None, tiles: FrameSize | None = None):  # fmt: skip
        super().__init__()
        self.model = model
        self.tiles = tiles  # native mode: validation frames (one per batch) are predicted by tiles
        self.loss = loss
        self.box_loss = box_loss
        self.training_config = training
        self.freeze_batchnorm = freeze_batchnorm
        self.total_steps = int(total_steps)
        self._counts: list[torch.Tensor] = []
        self._soft = torch.zeros(7)
        self._val_loss_sum = torch.zeros(())
        self._val_batches = 0

    def forward(self, x):
        return self.model(x)

    def on_train_epoch_start(self) -> None:
        set_batchnorm_frozen(self.model, self.freeze_batchnorm)

    def training_step(self, batch, batch_idx):
        images, targets, weights = batch[:3]
        logits = self(images)
        # Box-supervised frames carry weight 0 where they have no mask target, so the mask loss skips them.
        loss = self.loss(logits, targets, weights)
        if self.box_loss is not None and len(batch) == 6:
            box_term, _ = self.box_loss(logits, *batch[3:])
            self.log("train_box_loss", box_term, on_step=True, on_epoch=False, batch_size=len(images))
            loss = loss + box_term
        self.log("train_loss", loss, on_step=True, on_epoch=False, prog_bar=True, batch_size=len(images))
        return loss

    def on_validation_epoch_start(self) -> None:
        self._counts, self._soft = [], torch.zeros(7, device=self.device)
        self._val_loss_sum, self._val_batches = torch.zeros((), device=self.device), 0

    def validation_step(self, batch, batch_idx):
        images, targets, weights = batch
        logits = validation_logits(self.model, images, self.tiles, int(self.training_config["batch_size"]))
        self._val_loss_sum += self.loss(logits, targets, weights).detach().float()
        self._val_batches += 1
        probs = torch.sigmoid(logits.float())
        self._counts.append(confusion_counts(probs, targets))
        self._soft += soft_sums(probs, targets)

    def on_validation_epoch_end(self) -> None:
        if not self._counts:
            return
        # Pool counts across processes (DDP) before computing ratios.
        per_image = torch.cat(self._counts)
        counts = self.trainer.strategy.reduce(per_image.sum(0), reduce_op="sum")
        image_iou = self.trainer.strategy.reduce(
            torch.stack([metrics_from_counts(per_image)["iou"].sum(), torch.tensor(float(len(per_image)), device=self.device)]),
            reduce_op="sum",
        )
        soft = self.trainer.strategy.reduce(self._soft, reduce_op="sum")
        loss = self.trainer.strategy.reduce(self._val_loss_sum / max(1, self._val_batches), reduce_op="mean")
        values = {f"val_{k}": float(v) for k, v in metrics_from_counts(counts).items()}
        values["val_mean_iou"] = float(image_iou[0] / image_iou[1].clamp_min(1))
        values.update({f"val_{k}": v for k, v in soft_metrics_from_sums(soft.cpu()).items()})
        values["val_loss"] = float(loss)
        for name, value in values.items():
            self.log(name, value, prog_bar=name in ("val_mean_iou", "val_loss"), sync_dist=False)

    def configure_optimizers(self):
        params = [p for p in self.model.parameters() if p.requires_grad]
        cfg = self.training_config
        optimizer = torch.optim.AdamW(params, lr=float(cfg["learning_rate"]), weight_decay=float(cfg.get("weight_decay", 0)))
        schedule = cfg.get("lr_schedule", "cosine")
        factor = lr_factor_fn(self.total_steps, warmup_steps(cfg, self.total_steps), schedule == "cosine")
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def warmup_steps(training: dict, total_steps: int) -> int:
    """``warmup_steps`` if given, else ``warmup_fraction`` (default 5 %) of the run."""
    if training.get("warmup_steps") is not None:
        return max(0, int(training["warmup_steps"]))
    return int(round(float(training.get("warmup_fraction", 0.05)) * total_steps))


def lr_factor_fn(total_steps: int, warmup: int, cosine: bool):
    """Learning-rate factor per optimizer step: linear warm-up, then cosine decay to 1 % (or flat)."""

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if not cosine:
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


class StepSampler(Sampler[int]):
    """``count`` sample indices for a whole run (one Lightning "epoch" is the whole step budget).

    Without weights: consecutive seeded permutations of the data, so every image is seen equally often.
    With ``weights`` (one per sample): drawn with replacement in proportion to them, which is how the
    hand-labelled images get their share of every batch in refinement rounds.
    """

    def __init__(self, n: int, count: int, seed: int, weights: list[float] | None = None):
        self.n, self.count, self.seed, self.epoch = int(n), int(count), int(seed), 0
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.double)

    def __len__(self) -> int:
        return self.count

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning; only with several processes does a run last more than one epoch."""
        self.epoch = int(epoch)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + 1_000_003 * self.epoch)
        if self.weights is not None:
            yield from torch.multinomial(self.weights, self.count, replacement=True, generator=generator).tolist()
            return
        given = 0
        while given < self.count:
            for index in torch.randperm(self.n, generator=generator).tolist()[: self.count - given]:
                yield index
                given += 1


class BestWeights(Callback):
    """Keeps the weights of the best validation so far, in memory (no checkpoint file per validation).

    With ``initial_score`` (fine-tuning), the starting weights are the first candidate, and trained
    weights replace them only when they beat them by more than ``min_improvement``: a round that does
    not help hands back the model it started from (``model_selection.signal: validation``; under another
    signal the margin is -inf and the stage compares trained and starting weights itself, in
    ``training_stage.nodes``). Scores only rise. Its state travels in the resume checkpoint.
    """

    def __init__(self, monitor: str, mode: str, initial_state: dict | None = None, initial_score: float | None = None,
                 min_improvement: float = 0.0, path: Path | None = None):  # fmt: skip
        self.monitor, self.mode, self.min_improvement, self.path = monitor, mode, float(min_improvement), path
        self.best_state = initial_state
        self.best_score = initial_score
        self.best_step = 0 if initial_score is not None else None
        self.from_initial = initial_score is not None

    def _better(self, score: float) -> bool:
        if not math.isfinite(score):  # a diverged validation never becomes the kept weights
            return False
        if self.best_score is None:
            return True
        margin = self.min_improvement if self.from_initial else 0.0
        return score > self.best_score + margin if self.mode == "max" else score < self.best_score - margin

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        score = float(trainer.callback_metrics[self.monitor])
        if self._better(score):
            self.best_score, self.best_step, self.from_initial = score, trainer.global_step, False
            self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in pl_module.model.state_dict().items()}

    def state_dict(self) -> dict:
        return {"best_state": self.best_state, "best_score": self.best_score, "best_step": self.best_step, "from_initial": self.from_initial}

    def load_state_dict(self, state_dict: dict) -> None:
        self.best_state, self.best_score = state_dict["best_state"], state_dict["best_score"]
        self.best_step, self.from_initial = state_dict["best_step"], state_dict["from_initial"]

    def on_fit_end(self, trainer, pl_module) -> None:
        # Under ddp_spawn this runs in a child process: hand the best weights back through a file.
        if self.path is not None and trainer.is_global_zero and self.best_state is not None:
            torch.save(self.state_dict(), self.path)


class ResumeCheckpoint(Callback):
    """Writes ``last.ckpt`` (weights, optimizer, step, best weights) after a validation, at most every
    ``every_seconds``: enough to resume after a crash, without a full checkpoint per validation."""

    def __init__(self, path: Path, every_seconds: float):
        self.path, self.every_seconds = Path(path), float(every_seconds)
        self._last = time.monotonic()

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or time.monotonic() - self._last < self.every_seconds:
            return
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")  # unique per process
        try:
            with explaining_a_full_disk(self.path):
                trainer.save_checkpoint(tmp, weights_only=False)
        except BaseException:
            tmp.unlink(missing_ok=True)  # a partial checkpoint is never left to be resumed from
            raise
        if trainer.is_global_zero:
            os.replace(tmp, self.path)
        self._last = time.monotonic()


def pace_text(steps: int, seconds: float, remaining_steps: int, batch_size: int | None) -> str:
    """``, 12.5 images/s, about 1 min 20 s left`` from the steps trained so far in ``seconds`` (validation
    included); empty before the first step."""
    if steps <= 0 or seconds <= 0:
        return ""
    left = max(0, remaining_steps) * seconds / steps
    rate = f", {steps * batch_size / seconds:.1f} images/s" if batch_size else f", {steps / seconds:.2f} steps/s"
    minutes, secs = divmod(round(left), 60)
    return rate + (f", about {minutes} min {secs} s left" if minutes else f", about {secs} s left")


class HistoryCallback(Callback):
    """Collects train loss and validation metrics by optimizer step; sends them to the active MLflow run
    (the stage's own child run, ``hooks.StageRunsHook``: the names are the same in every stage) in batches
    (at each validation and at the end), never one request per step."""

    def __init__(self, prefix: str, log_every_n_steps: int = 1, history_file: str | Path | None = None, batch_size: int | None = None):
        self.prefix = prefix
        self.every = max(1, log_every_n_steps)
        self.history: dict[str, list] = {"train": [], "val": []}
        self.history_file = history_file
        self.batch_size = batch_size
        self._pending: list[tuple[str, float, int]] = []
        self._start: tuple[float, int] | None = None  # (time, step) when this process began training

    def on_train_start(self, trainer, pl_module) -> None:
        self._start = (time.perf_counter(), trainer.global_step)

    def _flush(self, trainer) -> None:
        if not trainer.is_global_zero or not self._pending:
            return
        _log_metrics_batch(self._pending)
        self._pending = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if step % self.every:
            return
        loss = float(outputs["loss"]) if isinstance(outputs, dict) else float(outputs)
        self.history["train"].append({"step": step, "train_loss": loss})
        self._pending.append(("train_loss", loss, step))

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        values = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val_")}
        if values:
            self.history["val"].append({"step": trainer.global_step, **values})
            if trainer.is_global_zero:
                loss = self.history["train"][-1]["train_loss"] if self.history["train"] else float("nan")
                pace = pace_text(trainer.global_step - self._start[1], time.perf_counter() - self._start[0], trainer.max_steps - trainer.global_step,
                                 self.batch_size) if self._start else ""  # fmt: skip
                logger.info("%s step %d/%d: train_loss %.3f, val_mean_iou %.3f, val_loss %.3f%s", self.prefix, trainer.global_step,
                            trainer.max_steps, loss, values.get("val_mean_iou", float("nan")), values.get("val_loss", float("nan")), pace)  # fmt: skip
            self._pending += [(k, v, trainer.global_step) for k, v in values.items()]
        self._flush(trainer)

    def on_train_end(self, trainer, pl_module) -> None:
        self._flush(trainer)
        # Under ddp_spawn training runs in child processes: hand the history back through a file.
        if self.history_file is not None and trainer.is_global_zero:
            Path(self.history_file).parent.mkdir(parents=True, exist_ok=True)
            Path(self.history_file).write_text(json.dumps(self.history))


def _log_metrics_batch(values: list[tuple[str, float, int]]) -> None:
    """(name, value, step) triples to the active MLflow run, 1000 per request (MLflow's batch limit)."""
    import mlflow  # noqa: PLC0415
    from mlflow.entities import Metric  # noqa: PLC0415

    run = mlflow.active_run()
    if run is None or not values:
        return
    now = int(time.time() * 1000)
    metrics = [Metric(name, float(value), now, int(step)) for name, value, step in values]
    client = mlflow.tracking.MlflowClient()
    for start in range(0, len(metrics), 1000):
        client.log_batch(run.info.run_id, metrics=metrics[start : start + 1000], synchronous=True)


def _log_history_to_mlflow(history: dict) -> None:
    """Log a history recorded in child processes (they have no MLflow run) from the main process."""
    values = [(k, float(v), int(r["step"])) for r in history.get("train", []) + history.get("val", [])
              for k, v in r.items() if k not in ("step", "epoch")]  # fmt: skip
    _log_metrics_batch(values)


# --------------------------------------------------------------------------------------------------
# Training entry point
# --------------------------------------------------------------------------------------------------


def run_fingerprint(*parts) -> str:
    """Stable short hash of configuration and data: a checkpoint only resumes the same run."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def samples_digest(samples: list[Sample]) -> str:
    """Hash of the ids, pixels and targets of a set of samples (two datasets with the same file names
    never share a resume checkpoint)."""
    digest = hashlib.sha256()
    for s in samples:
        digest.update(s.image_id.encode())
        for array in (s.image, s.target, s.weight, s.boxes):
            if array is not None:
                digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


def _loader(dataset, batch_size, num_workers, sampler=None) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        shuffle=False,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        drop_last=False,
    )


def validation_logits(model: torch.nn.Module, images: torch.Tensor, tiles: FrameSize | None, batch_size: int) -> torch.Tensor:
    """Logits of a validation batch: the model on the batch (resize mode), or on one whole frame by
    overlapping tiles (native mode: validation frames keep their own size, one per batch), as eval is
    predicted."""
    if tiles is None:
        return model(images)
    return torch.stack([predict_tiled(model, image, tiles.height, tiles.width, tiles.overlap, batch_size) for image in images])


@torch.inference_mode()
def scored_validation(model: torch.nn.Module, samples: list[Sample], mean, std, metric: str, batch_size: int = 16,
                      device: torch.device | None = None, precision: str = "32", tiles: FrameSize | None = None) -> tuple[float, dict[str, float]]:  # fmt: skip
    """The validation metric of ``model`` on cached samples, computed as the validation loop does, on
    the training device and at the training precision, and the IoU of each image (``{image_id: iou}``:
    the noise of a comparison between two models on these images, ``modelling/round_guard.py``). It
    scores the starting weights of a fine-tuning run before any step, to compare like for like with the
    validations that follow, and the kept weights after the last."""
    device = device or torch.device("cpu")
    model.to(device).eval()
    dataset = SegmentationDataset(samples, mean, std)
    counts, soft = [], torch.zeros(7)
    dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision)
    step = 1 if tiles is not None else batch_size  # native frames differ in size: one per batch
    for start in range(0, len(dataset), step):
        images, targets, _ = (torch.stack(t) for t in zip(*[dataset[i] for i in range(start, min(len(dataset), start + step))], strict=True))
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            logits = validation_logits(model, images.to(device), tiles, batch_size)
        probs = torch.sigmoid(logits.float()).cpu()
        counts.append(confusion_counts(probs, targets))
        soft += soft_sums(probs, targets)
    model.to("cpu")
    counts = torch.cat(counts)
    values = validation_values(counts, soft)
    per_image = metrics_from_counts(counts)["iou"].tolist()
    return values[metric], {s.image_id: round(float(v), 5) for s, v in zip(samples, per_image, strict=True)}


def validation_score(model: torch.nn.Module, samples: list[Sample], mean, std, metric: str, batch_size: int = 16,
                     device: torch.device | None = None, precision: str = "32", tiles: FrameSize | None = None) -> float:  # fmt: skip
    """The validation metric alone of ``scored_validation``."""
    return scored_validation(model, samples, mean, std, metric, batch_size, device, precision, tiles)[0]


def _training_precision(training: dict, model_config: dict, image_size: dict) -> str:
    """``precision: auto`` is measured on this device for this model, batch and size (cached)."""
    accelerator = training.get("accelerator", "auto")
    precision = str(training.get("precision", "auto"))
    if precision == "auto":
        precision = probe_precision(model_config, image_size, int(training["batch_size"]), inference_device(accelerator),
                                    bool(training.get("channels_last", True)), cpu_has_fast_bf16())  # fmt: skip
    return resolve_precision(precision, accelerator)


def check_finite_weights(model: torch.nn.Module, stage: str) -> None:
    """A model whose weights hold NaN or inf is never saved, registered or made ``best``: the run stops."""
    bad = [name for name, tensor in model.state_dict().items() if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]
    if bad:
        raise TrainingDivergedError(f"{stage}: training diverged, the weights hold NaN or inf ({', '.join(bad[:3])}); nothing was saved. "
                                    "Lower training.learning_rate, set gradient_clip_val, or use precision 32")  # fmt: skip


def build_box_loss(training: dict) -> BoxSupervisionLoss:
    """The box terms with their weights from ``training.box_loss`` (see modelling/box_losses.py)."""
    return BoxSupervisionLoss(**dict(training.get("box_loss") or {}))


def score_on_validation(trained: TrainedModel, val_samples: list[Sample], training: dict, precision: str) -> tuple[float, dict[str, float]]:
    """``scored_validation`` of a saved model, fed the way it was trained, by the selection metric of ``training``."""
    size = frame_size(trained.image_size)
    metric = training.get("save_by_metric", "val_mean_iou")
    return _score_on_validation(trained.model, val_samples, trained.model_config, training, metric, precision, size if size.native else None)


def _score_on_validation(model: torch.nn.Module, val_samples: list[Sample], model_config: dict, training: dict, metric: str, precision: str,
                         tiles: FrameSize | None) -> tuple[float, dict[str, float]]:  # fmt: skip
    mean, std = normalization_for(model_config)
    device = inference_device(training.get("accelerator", "auto"))
    return scored_validation(model, val_samples, mean, std, metric, int(training["batch_size"]), device, precision, tiles)


def _starting_model(model_config: dict, training: dict, initial_state: dict | None, val_samples: list[Sample], metric: str,
                    precision: str, stage: str, tiles: FrameSize | None) -> tuple[torch.nn.Module, float | None, dict]:  # fmt: skip
    """A fresh model, or one fine-tuned from ``initial_state`` with those weights' validation score and
    per-image IoU."""
    model = build_model(model_config)
    initial_score, per_image = None, {}
    if initial_state is not None:
        model.load_state_dict(initial_state)
        if val_samples:
            initial_score, per_image = _score_on_validation(model, val_samples, model_config, training, metric, precision, tiles)
            model.train()  # scoring switched to eval mode; training must start in train mode
            logger.info("%s: the starting weights score %s %.4f on validation", stage, metric, initial_score)
    if training.get("channels_last", True):
        model = model.to(memory_format=torch.channels_last)
    return model, initial_score, per_image


def _trainer(training: dict, steps: int, val_interval: int, precision: str, callbacks: list[Callback], progress: bool, stage: str) -> L.Trainer:
    strategy = training.get("strategy", "auto")
    if strategy == "ddp":
        # Kedro runs the whole pipeline in this process: training processes must be spawned for fit()
        # and end with it, or every process would run (and write) the rest of the pipeline.
        logger.info("%s: strategy ddp runs as ddp_spawn inside a Kedro pipeline", stage)
        strategy = "ddp_spawn"
    if strategy == "ddp_spawn":
        # Spawning hands every tensor to the children; passing one file descriptor per tensor fails
        # ("bad value(s) in fds_to_keep"), sharing through the file system does not.
        torch.multiprocessing.set_sharing_strategy("file_system")
    _quiet_lightning()
    return L.Trainer(
        # One pass of the sampler is the whole budget; with several processes each sees a share of it,
        # and further passes fill the budget up to `steps` optimizer steps.
        max_epochs=-1,
        max_steps=steps,
        accelerator=training.get("accelerator", "auto"),
        devices=training.get("devices", "auto"),
        num_nodes=int(training.get("num_nodes", 1)),
        strategy=strategy,
        precision=precision,
        callbacks=callbacks,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=progress,
        enable_model_summary=False,
        val_check_interval=val_interval,
        check_val_every_n_epoch=None,
        num_sanity_val_steps=0,
        deterministic="warn",
        log_every_n_steps=1,
        gradient_clip_val=training.get("gradient_clip_val"),
    )


def readable_checkpoint(path: Path, stage: str) -> bool:
    """Whether the resume checkpoint loads with ``weights_only=True`` (tensors and plain values only, no
    pickled code). A truncated file (a full disk, a kill during the write of an older version) or a
    foreign one is moved aside, and training starts over, saying so: every rerun would fail on it."""
    try:
        torch.load(path, map_location="cpu", weights_only=True)
        return True
    except Exception as exc:  # noqa: BLE001 - any unreadable checkpoint is set aside the same way
        # beside the run's folder, which is removed when the run finishes
        aside = path.parent.with_name(f"{path.parent.name}-{path.name}.unreadable-{os.getpid()}-{int(time.time())}")
        path.replace(aside)
        reason = str(exc).splitlines()[0][:200]
        logger.warning("%s: the resume checkpoint %s cannot be read (%s): moved aside to %s; training starts over", stage, path, reason, aside.name)
        return False


def _load_best_weights(module: SegmentationModule, best: BestWeights, checkpoint_dir: Path) -> tuple[float | None, int | None, bool]:
    """Put the best validated weights into ``module``; returns their score, step and whether they are the
    starting weights. Rank 0 wrote them at the end of fit; under ddp_spawn that was a child process and
    this process's callback never saw them, so the file is the answer whenever it exists."""
    best_file = checkpoint_dir / "best.pt"
    chosen = torch.load(best_file, map_location="cpu", weights_only=True) if best_file.is_file() else best.state_dict()
    if chosen["best_state"] is None:
        return None, None, False
    module.model.load_state_dict(chosen["best_state"])
    return chosen["best_score"], chosen["best_step"], chosen["from_initial"]


def _data_loaders(train_samples: list[Sample], val_samples: list[Sample], training: dict, normalization: tuple, steps: int, seed: int,
                  sample_weights: list[float] | None, size: FrameSize) -> tuple[DataLoader, DataLoader | None]:  # fmt: skip
    """Training batches drawn by ``StepSampler`` (exactly ``steps`` batches, augmented, cropped in native
    mode; with boxes when any sample is box-supervised), and the validation batches (None without
    validation images; one whole frame per batch in native mode)."""
    batch_size, workers = int(training["batch_size"]), int(training.get("num_workers", 0))
    sampler = StepSampler(len(train_samples), steps * batch_size, seed, sample_weights)
    train_set, val_set = training_datasets(train_samples, val_samples, training.get("augmentation"), normalization, seed, size)
    train = _loader(train_set, batch_size, workers, sampler)
    val = _loader(val_set, 1 if size.native else batch_size, workers) if val_set is not None else None
    return train, val


def _final_history(history: HistoryCallback, checkpoint_dir: Path, stage: str) -> dict:
    """The run's history; trained in child processes (ddp_spawn), it comes back through rank 0's file and
    is logged to MLflow here, by the process that holds the run."""
    if history.history["train"] or not (checkpoint_dir / "history.json").is_file():
        return history.history
    history_log = json.loads((checkpoint_dir / "history.json").read_text())
    _log_history_to_mlflow(history_log)
    return history_log


def train_model(train_samples: list[Sample], val_samples: list[Sample], model_config: ModelParams | dict, training: TrainingParams | dict,
                image_size: ImageSizeParams | dict, seed: int, stage: str, checkpoint_root: str | Path = "data/06_models/checkpoints",
                extra_callbacks: list[Callback] | None = None, initial_state: dict | None = None, sample_weights: list[float] | None = None,
                min_improvement: float = 0.0, keep_last: bool = False) -> TrainedModel:  # fmt: skip
    """Train for ``training.steps`` optimizer steps (or ``epochs``); return the best validated weights.

    ``initial_state`` fine-tunes from earlier weights: they are scored on validation first and kept unless
    training beats them by ``min_improvement``. ``sample_weights`` (one per training sample) sets how often
    each sample is drawn. Box-supervised samples also train through the box losses (``training.box_loss``).
    ``keep_last`` keeps the last step's weights, not the best validated ones (the ceiling of
    ``bench/quality.py``). Parameters arrive as their models or as plain dicts.
    """
    model_config, training, image_size = plain(model_config), plain(training), plain(image_size)
    size = frame_size(image_size)
    tiles = size if size.native else None
    if not train_samples:
        raise BadInputError(f"{stage}: no training images")
    metric = training.get("save_by_metric", "val_mean_iou")
    steps, val_interval = resolve_budget(training, len(train_samples))
    batch_size = int(training["batch_size"])
    precision = _training_precision(training, model_config, image_size)  # before seeding: the probe draws numbers
    L.seed_everything(seed, workers=True, verbose=False)
    model, initial_score, initial_per_image = _starting_model(model_config, training, initial_state, val_samples, metric, precision, stage, tiles)
    module = _module(model, model_config, training, steps, any(s.box_supervised for s in train_samples), tiles)
    train_loader, val_loader = _data_loaders(train_samples, val_samples, training, normalization_for(model_config), steps, seed, sample_weights, size)
    fingerprint = run_fingerprint(stage, model_config, training, image_size, seed, min_improvement, sample_weights, keep_last,
                                  samples_digest(train_samples), samples_digest(val_samples))  # fmt: skip
    checkpoint_dir = Path(checkpoint_root) / f"{stage}-{fingerprint}"
    if val_loader is None:
        logger.warning("%s: no validation images; the last step's weights are kept", stage)
    history, best, callbacks, progress = _callbacks(stage, training, model, (metric, initial_score, min_improvement), checkpoint_dir, extra_callbacks)
    trainer = _trainer(training, steps, val_interval, precision, callbacks, progress, stage)
    _log_start(stage, len(train_samples), len(val_samples), size, precision, steps, batch_size, val_interval)
    _fit(trainer, module, (train_loader, val_loader), checkpoint_dir, bool(training.get("resume", True)), stage)

    best_score, best_step, kept_initial = (None, None, False) if keep_last else _load_best_weights(module, best, checkpoint_dir)
    history_log = _final_history(history, checkpoint_dir, stage)
    final_model = _finished_model(trainer, module, checkpoint_dir, stage)
    # The kept weights' IoU per validation image, beside the start's: the round guard's noise estimate.
    per_image = _score_on_validation(final_model, val_samples, model_config, training, metric, precision, tiles)[1] if val_samples else {}
    final_model.eval()
    if kept_initial:
        logger.warning("%s: no validation beat the starting weights by more than %.3f; they are kept", stage, min_improvement)
    return TrainedModel(final_model, dict(model_config), size_metadata(size), {
        "stage": stage, "selected_by": "last" if keep_last else metric, "box_supervised_images": sum(s.box_supervised for s in train_samples),
        "best_validation_score": best_score, "best_step": best_step, "initial_validation_score": initial_score,
        "validation_per_image": per_image, "initial_validation_per_image": initial_per_image, "kept_initial_weights": kept_initial,
        "steps": steps, "batch_size": batch_size, "precision": precision, "train_images": len(train_samples),
        "val_images": len(val_samples), "seed": seed, "history": history_log,
    })  # fmt: skip


def _module(model: torch.nn.Module, model_config: dict, training: dict, steps: int, box_supervised: bool, tiles) -> SegmentationModule:
    """The Lightning module: the model with its loss, and the box losses when some samples are box-supervised."""
    loss = build_loss(training["loss"]["name"], training["loss"].get("args"))
    box_loss = build_box_loss(training) if box_supervised else None
    return SegmentationModule(model, loss, training, bool(model_config.get("freeze_batchnorm")), steps, box_loss, tiles)


def _finished_model(trainer: L.Trainer, module: L.LightningModule, checkpoint_dir: Path, stage: str) -> torch.nn.Module:
    """The trained model on the CPU in eval mode, its weights checked finite; the resume point removed
    (finished: nothing left to resume)."""
    model = module.model.to("cpu").to(memory_format=torch.contiguous_format).eval()
    check_finite_weights(model, stage)
    if trainer.is_global_zero:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return model


def _fit(trainer: L.Trainer, module: L.LightningModule, loaders: tuple, checkpoint_dir: Path, resume: bool, stage: str) -> None:
    """Train, from the interrupted run's resume point in ``checkpoint_dir`` when there is a readable one."""
    last = checkpoint_dir / "last.ckpt"
    resume = resume and last.is_file() and readable_checkpoint(last, stage)
    if resume:
        logger.info("%s: resuming the interrupted run from %s", stage, last)
    (checkpoint_dir / "best.pt").unlink(missing_ok=True)
    trainer.fit(module, *loaders, ckpt_path=str(last) if resume else None, weights_only=True)  # no pickled code


def _log_start(stage: str, train: int, val: int, size, precision: str, steps: int, batch_size: int, val_interval: int) -> None:
    shape = f"{size.height}x{size.width} crops of native frames" if size.native else f"{size.height}x{size.width}"
    logger.info("%s: %d train / %d val images, %s, precision %s, %d steps of batch %d, validation every %d steps",
                stage, train, val, shape, precision, steps, batch_size, val_interval)  # fmt: skip


def _callbacks(stage: str, training: dict, model: torch.nn.Module, selection: tuple, checkpoint_dir: Path, extra: list | None) -> tuple:
    """The run's callbacks in its checkpoint folder: the history, the best weights (the starting weights
    count when they were scored: ``selection`` is (metric, initial score, min improvement)), the resume
    point, ``extra`` and a progress bar on a terminal. Returns (history, best, callbacks, progress)."""
    metric, initial_score, min_improvement = selection
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    history = HistoryCallback(stage, int(training.get("log_every_n_steps", 1)), checkpoint_dir / "history.json", int(training["batch_size"]))
    start = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()} if initial_score is not None else None
    best = BestWeights(metric, SELECTION_METRICS[metric], start, initial_score, min_improvement, checkpoint_dir / "best.pt")
    callbacks: list[Callback] = [history, best, ResumeCheckpoint(checkpoint_dir / "last.ckpt", float(training.get("checkpoint_every_seconds", 60)))]
    callbacks += list(extra or [])
    # Without a terminal (a log file, CI) a bar redrawn every step would flood the log: HistoryCallback
    # logs one line per validation instead.
    progress = bool(training.get("progress_bar", True)) and on_terminal()
    if progress:
        callbacks.append(TQDMProgressBar(refresh_rate=1))
    return history, best, callbacks, progress


def size_metadata(size: FrameSize) -> dict:
    """The ``image_size`` a trained model is saved with: what prediction needs to feed it frames."""
    if not size.native:
        return {"height": size.height, "width": size.width}
    return {"height": size.height, "width": size.width, "mode": "native", "tile": {"overlap": size.overlap}}
