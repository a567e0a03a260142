"""Training and inference with Lightning.

``train_model`` fits a model on cached samples, validates ``scoring_per_epoch`` times per epoch and keeps
the checkpoint with the best **validation** metric (never an evaluation-set metric). An interrupted run
resumes from its last checkpoint when started again with the same configuration and data.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint, TQDMProgressBar
from torch.utils.data import DataLoader

from sewer_segmentation.data import (
    Sample,
    SegmentationDataset,
    build_augmentation,
    check_image_size,
    normalization_for,
    to_model_input,
)
from sewer_segmentation.errors import ConfigurationError
from sewer_segmentation.losses import build_loss
from sewer_segmentation.metrics import (
    confusion_counts,
    metrics_from_counts,
    soft_metrics_from_sums,
    soft_sums,
)
from sewer_segmentation.models import build_model, set_batchnorm_frozen

logger = logging.getLogger(__name__)

SELECTION_METRICS = {"val_iou": "max", "val_dice": "max", "val_soft_iou": "max", "val_soft_dice": "max", "val_loss": "min"}


# --------------------------------------------------------------------------------------------------
# Precision and devices
# --------------------------------------------------------------------------------------------------


def cpu_has_fast_bf16() -> bool:
    """AVX512-BF16 or AMX: bf16 matrix work runs natively (measured ~2x faster training here)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def resolve_precision(setting: str | int, accelerator: str = "auto") -> str:
    """``32``, ``bf16-mixed``, ``16-mixed`` as given; ``auto`` picks the fastest accurate one:
    bf16-mixed on GPUs that support it and on CPUs with native bf16, else 32-bit."""
    setting = str(setting)
    if setting != "auto":
        if setting not in ("32", "32-true", "bf16-mixed", "16-mixed", "bf16-true"):
            raise ConfigurationError(f"precision must be auto, 32, bf16-mixed or 16-mixed; got {setting!r}")
        return setting
    uses_gpu = accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    if uses_gpu:
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "bf16-mixed" if cpu_has_fast_bf16() else "32"


def inference_device(accelerator: str = "auto") -> torch.device:
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


# --------------------------------------------------------------------------------------------------
# Lightning module
# --------------------------------------------------------------------------------------------------


class SegmentationModule(L.LightningModule):
    def __init__(self, model: torch.nn.Module, loss: torch.nn.Module, training: dict, freeze_batchnorm: bool):
        super().__init__()
        self.model = model
        self.loss = loss
        self.training_config = training
        self.freeze_batchnorm = freeze_batchnorm
        self._counts: list[torch.Tensor] = []
        self._soft = torch.zeros(7)
        self._val_loss_sum = torch.zeros(())
        self._val_batches = 0

    def forward(self, x):
        return self.model(x)

    def on_train_epoch_start(self) -> None:
        set_batchnorm_frozen(self.model, self.freeze_batchnorm)

    def training_step(self, batch, batch_idx):
        images, targets, weights = batch
        logits = self(images)
        loss = self.loss(logits, targets, weights)
        self.log("train_loss", loss, on_step=True, on_epoch=False, prog_bar=True, batch_size=len(images))
        return loss

    def on_validation_epoch_start(self) -> None:
        self._counts, self._soft = [], torch.zeros(7, device=self.device)
        self._val_loss_sum, self._val_batches = torch.zeros((), device=self.device), 0

    def validation_step(self, batch, batch_idx):
        images, targets, weights = batch
        logits = self(images)
        self._val_loss_sum += self.loss(logits, targets, weights).detach().float()
        self._val_batches += 1
        probs = torch.sigmoid(logits.float())
        self._counts.append(confusion_counts(probs, targets))
        self._soft += soft_sums(probs, targets)

    def on_validation_epoch_end(self) -> None:
        if not self._counts:
            return
        # Pool counts across processes (DDP) before computing ratios.
        counts = self.trainer.strategy.reduce(torch.cat(self._counts).sum(0), reduce_op="sum")
        soft = self.trainer.strategy.reduce(self._soft, reduce_op="sum")
        loss = self.trainer.strategy.reduce(self._val_loss_sum / max(1, self._val_batches), reduce_op="mean")
        pooled = metrics_from_counts(counts)
        values = {f"val_{k}": float(v) for k, v in pooled.items()}
        values.update({f"val_{k}": v for k, v in soft_metrics_from_sums(soft.cpu()).items()})
        values["val_loss"] = float(loss)
        for name, value in values.items():
            self.log(name, value, prog_bar=name in ("val_iou", "val_loss"), sync_dist=False)

    def configure_optimizers(self):
        params = [p for p in self.model.parameters() if p.requires_grad]
        cfg = self.training_config
        optimizer = torch.optim.AdamW(params, lr=float(cfg["learning_rate"]), weight_decay=float(cfg.get("weight_decay", 0)))
        schedule = cfg.get("lr_schedule", "none")
        if schedule == "cosine":
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, int(cfg["epochs"])))
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
        if schedule not in ("none", None):
            raise ConfigurationError(f"lr_schedule must be 'cosine' or 'none', got {schedule!r}")
        return optimizer


class HistoryCallback(Callback):
    """Collects train loss and validation metrics by global step, and logs them to the active MLflow run."""

    def __init__(self, prefix: str, log_every_n_steps: int = 1, history_file: str | Path | None = None):
        self.prefix = prefix
        self.every = max(1, log_every_n_steps)
        self.history: dict[str, list] = {"train": [], "val": []}
        self.history_file = history_file

    def _to_mlflow(self, trainer, values: dict, step: int) -> None:
        if not trainer.is_global_zero:
            return
        import mlflow  # noqa: PLC0415

        if mlflow.active_run() is not None:
            mlflow.log_metrics({f"{self.prefix}.{k}": float(v) for k, v in values.items()}, step=step)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step % self.every:
            return
        loss = float(outputs["loss"]) if isinstance(outputs, dict) else float(outputs)
        self.history["train"].append({"step": trainer.global_step, "epoch": trainer.current_epoch, "train_loss": loss})
        self._to_mlflow(trainer, {"train_loss": loss}, trainer.global_step)

    def on_train_end(self, trainer, pl_module) -> None:
        # Under ddp_spawn training runs in child processes: hand the history back through a file.
        if self.history_file is not None and trainer.is_global_zero:
            Path(self.history_file).parent.mkdir(parents=True, exist_ok=True)
            Path(self.history_file).write_text(json.dumps(self.history))

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        values = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val_")}
        if values:
            self.history["val"].append({"step": trainer.global_step, "epoch": trainer.current_epoch, **values})
            self._to_mlflow(trainer, values, trainer.global_step)


def _log_history_to_mlflow(history: dict, prefix: str) -> None:
    """Log a history recorded in child processes (they have no MLflow run) from the main process."""
    import mlflow  # noqa: PLC0415

    if mlflow.active_run() is None:
        return
    for record in history.get("train", []) + history.get("val", []):
        values = {f"{prefix}.{k}": float(v) for k, v in record.items() if k not in ("step", "epoch")}
        mlflow.log_metrics(values, step=int(record["step"]))


# --------------------------------------------------------------------------------------------------
# Training entry point
# --------------------------------------------------------------------------------------------------


@dataclass
class TrainedModel:
    """A trained model with everything needed to save, reload and describe it."""

    model: torch.nn.Module
    model_config: dict
    image_size: dict
    metadata: dict = field(default_factory=dict)


def run_fingerprint(*parts) -> str:
    """Stable short hash of configuration and data ids: a checkpoint only resumes the same run."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _loader(dataset, batch_size, shuffle, num_workers, seed) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        drop_last=shuffle and len(dataset) > batch_size,
        generator=generator,
    )


def train_model(
    train_samples: list[Sample],
    val_samples: list[Sample],
    model_config: dict,
    training: dict,
    image_size: dict,
    seed: int,
    stage: str,
    checkpoint_root: str | Path = "data/06_models/checkpoints",
    extra_callbacks: list[Callback] | None = None,
    initial_state: dict | None = None,
) -> TrainedModel:
    """Fit a fresh model; return it with the weights of the best validation checkpoint."""
    height, width = check_image_size(image_size["height"], image_size["width"])
    if not train_samples:
        raise ConfigurationError(f"{stage}: no training images")
    metric = training.get("save_by_metric", "val_iou")
    if metric not in SELECTION_METRICS:
        raise ConfigurationError(f"save_by_metric must be one of {sorted(SELECTION_METRICS)} (validation metrics), got {metric!r}")
    L.seed_everything(seed, workers=True, verbose=False)
    model = build_model(model_config)
    if initial_state is not None:  # fine-tuning from an earlier model instead of a fresh start
        model.load_state_dict(initial_state)
    if training.get("channels_last", True):
        model = model.to(memory_format=torch.channels_last)
    loss = build_loss(training["loss"]["name"], training["loss"].get("args"))
    module = SegmentationModule(model, loss, training, bool(model_config.get("freeze_batchnorm")))

    mean, std = normalization_for(model_config)
    workers = int(training.get("num_workers", 0))
    batch_size = int(training["batch_size"])
    train_loader = _loader(
        SegmentationDataset(train_samples, mean, std, build_augmentation(training.get("augmentation"), seed)),
        batch_size, True, workers, seed,
    )  # fmt: skip
    val_loader = _loader(SegmentationDataset(val_samples, mean, std), batch_size, False, workers, seed) if val_samples else None

    fingerprint = run_fingerprint(stage, model_config, training, image_size, seed,
                                  [s.image_id for s in train_samples], [s.image_id for s in val_samples])  # fmt: skip
    checkpoint_dir = Path(checkpoint_root) / f"{stage}-{fingerprint}"
    history = HistoryCallback(stage, int(training.get("log_every_n_steps", 1)), checkpoint_dir / "history.json")
    callbacks: list[Callback] = [history]
    best = None
    if val_loader is not None:
        best = ModelCheckpoint(
            dirpath=checkpoint_dir, filename="best", monitor=metric, mode=SELECTION_METRICS[metric],
            save_top_k=1, save_last=True, auto_insert_metric_name=False,
        )  # fmt: skip
        callbacks.append(best)
        early = training.get("early_stopping") or {}
        if early.get("enabled"):
            callbacks.append(EarlyStopping(monitor=metric, mode=SELECTION_METRICS[metric], patience=int(early.get("patience", 10))))
    else:
        logger.warning("%s: no validation images; the last epoch's weights are kept", stage)
        callbacks.append(ModelCheckpoint(dirpath=checkpoint_dir, save_last=True, save_top_k=0))
    callbacks += list(extra_callbacks or [])
    if training.get("progress_bar", True):
        callbacks.append(TQDMProgressBar(refresh_rate=max(1, int(training.get("progress_refresh", 1)))))

    scorings = max(1, int(training.get("scoring_per_epoch", 1)))
    steps_per_epoch = max(1, len(train_loader))
    accelerator = training.get("accelerator", "auto")
    precision = resolve_precision(training.get("precision", "auto"), accelerator)
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
    trainer = L.Trainer(
        max_epochs=int(training["epochs"]),
        accelerator=accelerator,
        devices=training.get("devices", "auto"),
        num_nodes=int(training.get("num_nodes", 1)),
        strategy=strategy,
        precision=precision,
        callbacks=callbacks,
        logger=False,
        enable_progress_bar=bool(training.get("progress_bar", True)),
        enable_model_summary=False,
        val_check_interval=1.0 if scorings == 1 or steps_per_epoch < scorings else 1.0 / scorings,
        num_sanity_val_steps=0,
        deterministic="warn",
        log_every_n_steps=1,
        gradient_clip_val=training.get("gradient_clip_val"),
    )
    last = checkpoint_dir / "last.ckpt"
    resume = training.get("resume", True) and last.is_file()
    if resume:
        logger.info("%s: resuming the interrupted run from %s", stage, last)
    logger.info("%s: %d train / %d val images, %dx%d, precision %s, %d epochs",
                stage, len(train_samples), len(val_samples), height, width, precision, int(training["epochs"]))  # fmt: skip
    trainer.fit(module, train_loader, val_loader, ckpt_path=str(last) if resume else None)

    best_score = None
    if best is not None and best.best_model_path:
        state = torch.load(best.best_model_path, map_location="cpu", weights_only=True)["state_dict"]
        module.load_state_dict(state)
        best_score = float(best.best_model_score) if best.best_model_score is not None else None
    history_log = history.history
    if not history_log["train"] and (checkpoint_dir / "history.json").is_file():  # trained in child processes
        history_log = json.loads((checkpoint_dir / "history.json").read_text())
        _log_history_to_mlflow(history_log, stage)
    final_model = module.model.to("cpu").to(memory_format=torch.contiguous_format).eval()
    if trainer.is_global_zero:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)  # finished: nothing left to resume
    metadata = {
        "stage": stage,
        "selected_by": metric,
        "best_validation_score": best_score,
        "epochs": int(training["epochs"]),
        "precision": precision,
        "train_images": len(train_samples),
        "val_images": len(val_samples),
        "seed": seed,
        "history": history_log,
    }
    return TrainedModel(final_model, dict(model_config), {"height": height, "width": width}, metadata)


# --------------------------------------------------------------------------------------------------
# Inference
# --------------------------------------------------------------------------------------------------


@torch.inference_mode()
def predict_probabilities(
    model: torch.nn.Module,
    images: list[np.ndarray],
    model_config: dict,
    image_size: dict,
    batch_size: int = 16,
    precision: str = "auto",
    accelerator: str = "auto",
    flip_tta: bool = False,
) -> list[np.ndarray]:
    """Defect probability per pixel for each frame, at the frame's own size (float32 in [0, 1]).

    Frames are resized to the training size, predicted in batches and the probabilities resized back
    (bilinear). ``flip_tta`` averages with the prediction of the horizontally flipped frame.
    """
    height, width = check_image_size(image_size["height"], image_size["width"])
    device = inference_device(accelerator)
    precision = resolve_precision(precision, accelerator)
    use_bf16 = precision.startswith("bf16")
    model = model.to(device).eval()
    mean, std = normalization_for(model_config)
    out: list[np.ndarray] = []
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        batch = to_model_input(chunk, height, width, mean, std).to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            probs = torch.sigmoid(model(batch).float())
            if flip_tta:
                flipped = torch.sigmoid(model(batch.flip(-1)).float()).flip(-1)
                probs = (probs + flipped) / 2
        for image, prob in zip(chunk, probs):
            h, w = image.shape[:2]
            full = F.interpolate(prob[None].float(), size=(h, w), mode="bilinear", align_corners=False)[0, 0]
            out.append(full.clamp(0, 1).cpu().numpy())
    return out

