"""The parameter models of the modelling layer: ``model``, ``inference``, ``model_selection``,
``baseline_training`` and ``final_training`` (``params.py`` gathers every section)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from sewer_segmentation.schema import PRECISIONS, Section, known_precision, nearest_hint, one_of


class NormalizationParams(Section):
    mean: tuple[float, float, float] = Field(description="per channel, 0..1")
    std: tuple[float, float, float] = Field(description="per channel, above 0")

    @field_validator("std")
    @classmethod
    def _positive(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        if min(value) <= 0:
            raise ValueError("every std must be above 0")
        return value


class ModelParams(Section):
    """``model``: the segmentation network, shared by every stage."""

    architecture: str = Field("UNetAttention", description="UNetAttention or any segmentation-models-pytorch class")
    encoder_name: str = Field("resnet18", description="an encoder of segmentation-models-pytorch")
    encoder_weights: str | None = Field(None, description="null (train from scratch), imagenet, or a local .pth/.safetensors file")
    in_channels: int = Field(3, ge=1)
    classes: int = Field(1, ge=1)
    freeze_encoder: bool = False
    freeze_batchnorm: bool = False
    normalization: NormalizationParams | None = Field(None, description="null: ImageNet mean/std")
    args: dict[str, Any] = Field(default_factory=dict, description="any other keyword argument of the architecture")

    @field_validator("architecture")
    @classmethod
    def _known_architecture(cls, value: str) -> str:
        from sewer_segmentation.modelling.models import architecture_names  # noqa: PLC0415 - segmentation-models-pytorch

        return one_of(value, architecture_names(), "architecture")

    @field_validator("encoder_name")
    @classmethod
    def _known_encoder(cls, value: str) -> str:
        from sewer_segmentation.modelling.models import encoder_names  # noqa: PLC0415 - segmentation-models-pytorch

        if value.startswith("tu-"):  # any timm model through smp's universal encoder
            return value
        return one_of(value, encoder_names(), "encoder")


class InferenceParams(Section):
    """``inference``: prediction on eval, baseline_val and the weak pool."""

    batch_size: int = Field(16, ge=1)
    precision: str = Field("auto", description=f"one of {', '.join(PRECISIONS)}")
    flip_tta: bool = Field(False, description="average with the horizontally flipped prediction")
    gallery_cases: int = Field(4, ge=0, description="best and worst eval images shown in the gallery")

    @field_validator("precision", mode="before")
    @classmethod
    def _known_precision(cls, value: Any) -> str:
        return known_precision(value)


class ModelSelectionParams(Section):
    """``model_selection``: what a round's trained model and its start are scored by."""

    signal: Literal["validation", "box_agreement", "combined"] = "combined"


class LossParams(Section):
    name: str = Field("tversky", description="a name of modelling.losses.LOSSES")
    args: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of the loss")

    @field_validator("name")
    @classmethod
    def _known_loss(cls, value: str) -> str:
        from sewer_segmentation.modelling.losses import loss_key  # noqa: PLC0415 - torch

        loss_key(value)  # raises ValueError naming the choices
        return value

    @model_validator(mode="after")
    def _arguments_the_loss_takes(self) -> LossParams:
        from sewer_segmentation.modelling.losses import build_loss  # noqa: PLC0415 - torch

        try:
            build_loss(self.name, self.args)
        except TypeError as exc:
            raise ValueError(f"loss {self.name!r} does not take these args: {exc}") from None
        return self


class BoxLossParams(Section):
    """The box losses' weights (0 turns a term off) and the pairwise term's neighbourhood."""

    projection: float = Field(1.0, ge=0)
    background: float = Field(1.0, ge=0)
    pairwise: float = Field(1.0, ge=0)
    dilation: int = Field(2, ge=1)
    theta: float = Field(2.0, gt=0)
    similarity: float = Field(0.3, ge=0, le=1)
    fill: float = Field(1.0, ge=0, description="weight of the fill term: the share of each box the mask covers stays in fill_range")
    fill_range: tuple[float, float] | None = Field(
        None, description="null: measured on baseline_train (fill_quantiles of its boxes' shares covered by the hand-drawn masks)")
    fill_quantiles: tuple[float, float] = Field((0.1, 0.9), description="the quantiles of those shares that bound fill_range")
    projection_coverage: float | None = Field(
        None, gt=0, le=1, description="share of a box's rows and columns the projection term asks the mask to reach; null: measured on "
        "baseline_train (the projection_quantile of the shares its polygons reach: 1 for boxes drawn tight, about 0.95 for the "
        "synthetic boxes, lower for loose ones)")  # fmt: skip
    projection_quantile: float = Field(0.5, ge=0, le=1, description="the quantile of those shares that sets projection_coverage (0.5, the "
                                       "median: chosen on bench/rounds_only.py, docs/training.md section 4)")

    @field_validator("fill_range", "fill_quantiles")
    @classmethod
    def _ordered_shares(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and not 0 <= value[0] <= value[1] <= 1:
            raise ValueError("expected [low, high] with 0 <= low <= high <= 1")
        return value


class AugmentationParams(Section):
    enabled: bool = True
    hflip: float = Field(0.5, ge=0, le=1)
    vflip: float = Field(0.0, ge=0, le=1)
    rotate_limit: float = Field(10, ge=0, le=180, description="degrees")
    shift_limit: float = Field(0.05, ge=0, lt=1)
    scale_limit: float = Field(0.1, ge=0, lt=1)
    affine_p: float = Field(0.7, ge=0, le=1)
    brightness_contrast: float = Field(0.2, ge=0, le=1)
    noise_p: float = Field(0.2, ge=0, le=1)


#: Validation metrics the kept weights can be chosen by (all higher-is-better).
SELECTION_METRICS = ("val_mean_iou", "val_iou", "val_dice", "val_soft_iou", "val_soft_dice")


class TrainingParams(Section):
    """``baseline_training.training`` (and, with ``final_training.training_overrides``, a round's)."""

    steps: int = Field(250, ge=1, description="optimizer steps")
    epochs: int | None = Field(None, ge=1, description="train by epochs instead (wins over steps)")
    batch_size: int = Field(8, ge=1)
    learning_rate: float = Field(0.001, gt=0)
    weight_decay: float = Field(0.0001, ge=0)
    lr_schedule: Literal["cosine", "none"] = "cosine"
    warmup_fraction: float = Field(0.05, ge=0, le=1)
    warmup_steps: int | None = Field(None, ge=0)
    loss: LossParams = Field(default_factory=LossParams)  # built when used: checking it imports torch and smp
    box_loss: BoxLossParams = BoxLossParams()
    validations: int = Field(10, ge=1)
    val_every_steps: int | None = Field(None, ge=1)
    scoring_per_epoch: int = Field(1, ge=1)
    save_by_metric: Literal[SELECTION_METRICS] = "val_mean_iou"  # type: ignore[valid-type]
    checkpoint_every_seconds: float = Field(120, ge=0)
    gradient_clip_val: float | None = Field(None, gt=0)
    log_every_n_steps: int = Field(1, ge=1)
    precision: str = Field("auto", description=f"one of {', '.join(PRECISIONS)}")
    accelerator: str = Field("auto", description="auto | cpu | gpu (Lightning)")
    devices: int | str | list[int] = Field("auto", description="auto, a count, or device ids (Lightning)")
    num_nodes: int = Field(1, ge=1)
    strategy: str = Field("auto", description="auto | ddp | ... (Lightning)")
    num_workers: int = Field(0, ge=0)
    channels_last: bool = True
    resume: bool = True
    progress_bar: bool = True
    augmentation: AugmentationParams = AugmentationParams()

    @field_validator("precision", mode="before")
    @classmethod
    def _known_precision(cls, value: Any) -> str:
        return known_precision(value)


class JointParams(Section):
    enabled: bool = Field(False, description="the baseline also trains on the weak pool's boxes")
    labelled_share: float = Field(0.5, gt=0, lt=1)


class BaselineTrainingParams(Section):
    joint: JointParams = JointParams()
    training: TrainingParams = Field(default_factory=TrainingParams)


class RoundGuardParams(Section):
    """``final_training.round_guard`` (``modelling/round_guard.py``)."""

    rule: Literal["not_worse", "better"] = "not_worse"
    standard_errors: float = Field(1.0, ge=0, description="not_worse: the tolerance, in standard errors of the difference")
    min_improvement: float = Field(0.01, description="better: the gain the trained weights must show")


class OracleParams(Section):
    enabled: bool = False


class FinalTrainingParams(Section):
    """``final_training``: a refinement round's training."""

    init_from: Literal["best", "fresh"] = "best"
    round_guard: RoundGuardParams = RoundGuardParams()
    labelled_share: float | None = Field(0.5, gt=0, lt=1)
    weak_targets: Literal["refined", "boxes", "both"] = "both"
    training_overrides: dict[str, Any] = Field(default_factory=dict, description="keys of baseline_training.training")
    oracle: OracleParams = OracleParams()

    @field_validator("training_overrides")
    @classmethod
    def _training_keys_with_valid_values(cls, overrides: dict[str, Any]) -> dict[str, Any]:
        blank = TrainingParams.model_construct()
        for key, value in overrides.items():
            if key not in TrainingParams.model_fields:
                raise ValueError(f"{key!r} is not a training parameter{nearest_hint(key, TrainingParams.model_fields)}")
            # its errors are placed under this field by pydantic: final_training.training_overrides.steps
            TrainingParams.__pydantic_validator__.validate_assignment(blank, key, value)
        return overrides

    def training(self, baseline: TrainingParams) -> TrainingParams:
        """The baseline's training parameters with this round's overrides (a step budget in the overrides
        replaces an epoch budget of the baseline, and the other way round)."""
        merged = {**baseline.as_dict(), **self.training_overrides}
        if "steps" in self.training_overrides and self.training_overrides.get("epochs") is None:
            merged["epochs"] = None
        return TrainingParams.model_validate(merged)


class SuggestParams(Section):
    """``suggest``: which weak-pool frames to hand-label next (``modelling/acquisition.py``)."""

    budget: int = Field(12, ge=1, description="frames to suggest (at most one per near-duplicate cluster or group)")
    method: Literal["uncertainty", "uncertain_pixels", "disagreement", "diversity", "hybrid", "uncertain_clusters", "typical", "stratified",
                    "largest_boxes", "random"] = Field(
        "uncertain_pixels", description="uncertainty (mean box entropy), uncertain_pixels (total box entropy), "
        "disagreement (the model's mask against the frame's own boxes), "
        "diversity (k-center on encoder features), hybrid (k-center among the most uncertain), "
        "uncertain_clusters (k-means on the features of the frames with the most uncertain pixels, the most uncertain of each cluster), "
        "typical (TypiClust: the densest frame of each cluster no labelled frame is in), "
        "stratified (the most uncertain frame of each box-size stratum), largest_boxes (the frames whose boxes cover most, no model asked), "
        "random")
    candidate_factor: int = Field(3, ge=1, description="hybrid and uncertain_clusters: their candidates, this many times budget most uncertain frames")
