"""Every parameter of the project as a typed model: one source of truth for what a value may be.

Each section of ``conf/base/parameters*.yml`` is a Pydantic model here, and the nodes take these models as
the type hints of their ``params:`` inputs. Kedro converts and validates them before the first node runs
(Kedro's parameter validation); ``hooks.ParameterCheckHook`` validates the same models a moment earlier,
only to print each problem as one line (the key, the value, what is allowed). Nothing else checks a
parameter: the code after a node's boundary trusts what it is given. ``docs/parameters.md`` is generated
from these models (``python -m sewer_segmentation.params``; a test keeps it in sync).

Choices that come from a registry (losses, refinement methods, raw layouts, architectures) are checked
against the registry when validated, so a method registered later (a toy one in the tests) is accepted.
No Kedro here: Pydantic, and the registries' modules.
"""

from __future__ import annotations

import difflib
import typing
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, ValidationError, field_validator, model_validator

#: Precisions training and inference accept (``auto``: measured for training, chosen for inference).
PRECISIONS = ("auto", "32", "32-true", "bf16-mixed", "bf16-true", "16-mixed")


class Section(BaseModel):
    """A parameter section: unknown keys are refused, floats must be finite, values never change."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    def as_dict(self) -> dict[str, Any]:
        """The section as plain values (what the modelling code, model metadata and MLflow take)."""
        return self.model_dump(mode="python")


def plain(config: Any) -> dict[str, Any]:
    """A parameter section as a plain dict, whether it arrives as its model (from a node's validated
    inputs) or as a dict (a notebook, a model's saved metadata): what the modelling code reads."""
    if isinstance(config, BaseModel):
        return config.model_dump(mode="python")
    return dict(config or {})


def plain_params(params: dict) -> dict:
    """A run's whole parameters as plain values (hooks, MLflow logging, tests): Kedro hands the sections
    the nodes are typed with as their models, anywhere in the tree."""

    def plain_value(value: Any) -> Any:
        if isinstance(value, BaseModel):
            return plain(value)
        return {k: plain_value(v) for k, v in value.items()} if isinstance(value, dict) else value

    return plain_value(dict(params))


def as_model(model: type[BaseModel], value: Any) -> BaseModel:
    """``value`` as ``model``: itself when it is one already, else validated (a dict from a notebook or a test)."""
    return value if isinstance(value, model) else model.model_validate(value or {})


def _precision(value: Any) -> str:
    text = str(value)
    if text not in PRECISIONS:
        raise ValueError(f"must be one of {', '.join(PRECISIONS)}")
    return text


def _one_of(value: str, choices, what: str) -> str:
    if value not in choices:
        close = difflib.get_close_matches(str(value), list(choices), 1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ValueError(f"unknown {what}{hint}; choose one of {', '.join(choices)}")
    return value


# --------------------------------------------------------------------------------------------------
# Top level: dataset, seed, round
# --------------------------------------------------------------------------------------------------


class DatasetName(RootModel[str]):
    """``dataset``: the name of a folder of ``data/01_raw/`` (never a path: derived files would leave the
    dataset's own folders)."""

    @field_validator("root")
    @classmethod
    def _a_folder_name(cls, value: str) -> str:
        if not value or "/" in value or "\\" in value or ":" in value or value.startswith(".") or value != value.strip():
            raise ValueError("a dataset is the name of a folder in data/01_raw/ (no path separators, no ':', no leading '.')")
        return value


class Seed(RootModel[int]):
    """``seed``: of every random choice (splits, training, augmentation)."""

    root: int = Field(ge=0, le=2**32 - 1)


class RoundNumber(RootModel[int]):
    """``round``: refinement round, 1 or more."""

    root: int = Field(ge=1)


# --------------------------------------------------------------------------------------------------
# Shared: image size, model, inference, model selection
# --------------------------------------------------------------------------------------------------


class CropParams(Section):
    box_bias: float = Field(0.5, ge=0, le=1, description="native: share of crops centred on a defect pixel")


class TileParams(Section):
    overlap: int | None = Field(None, ge=0, multiple_of=32, description="native: pixels neighbouring prediction tiles share (null: 64, or half a small tile)")


class ImageSizeParams(Section):
    """``image_size``: how frames meet the model (docs/training.md, section 7)."""

    mode: Literal["resize", "native"] = Field("resize", description="resize every frame, or crops and tiles at the frames' own scale")
    height: int = Field(128, gt=0, multiple_of=32, description="pixels (encoders downsample 5 times: a multiple of 32)")
    width: int = Field(160, gt=0, multiple_of=32, description="pixels (a multiple of 32)")
    crop: CropParams = CropParams()
    tile: TileParams = TileParams()

    @model_validator(mode="after")
    def _overlap_below_the_tile(self) -> ImageSizeParams:
        overlap = self.tile.overlap
        if self.mode == "native" and overlap is not None and overlap >= min(self.height, self.width):
            raise ValueError(f"tile.overlap {overlap} must be below the tile size {self.height}x{self.width}")
        return self


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

        return _one_of(value, architecture_names(), "architecture")

    @field_validator("encoder_name")
    @classmethod
    def _known_encoder(cls, value: str) -> str:
        from sewer_segmentation.modelling.models import encoder_names  # noqa: PLC0415 - segmentation-models-pytorch

        if value.startswith("tu-"):  # any timm model through smp's universal encoder
            return value
        return _one_of(value, encoder_names(), "encoder")


class InferenceParams(Section):
    """``inference``: prediction on eval, baseline_val and the weak pool."""

    batch_size: int = Field(16, ge=1)
    precision: str = Field("auto", description=f"one of {', '.join(PRECISIONS)}")
    flip_tta: bool = Field(False, description="average with the horizontally flipped prediction")
    gallery_cases: int = Field(4, ge=0, description="best and worst eval images shown in the gallery")

    @field_validator("precision", mode="before")
    @classmethod
    def _known_precision(cls, value: Any) -> str:
        return _precision(value)


class ModelSelectionParams(Section):
    """``model_selection``: what a round's trained model and its start are scored by."""

    signal: Literal["validation", "box_agreement", "combined"] = "combined"


# --------------------------------------------------------------------------------------------------
# data_engineering and the synthetic dataset
# --------------------------------------------------------------------------------------------------


class ClassFilterParams(Section):
    keep: list[str] = Field(default_factory=list, description="when not empty, only these classes")
    drop: list[str] = Field(default_factory=list)


class ViaParams(Section):
    class_attribute: str = Field("class", description="region_attributes key that names the class")
    polyline_thickness: int = Field(3, ge=1, description="pixels")


class DedupeParams(Section):
    """``data_engineering.dedupe``: near-duplicates (docs/data.md)."""

    method: Literal["aligned", "phash", "dhash", "ahash", "whash"] = "aligned"
    min_similarity: float = Field(0.88, gt=0, le=1, description="aligned: correlation at or above which two frames are one scene")
    candidates: int = Field(3, ge=1, description="aligned: nearest frames each frame is aligned with")
    hash_size: int = Field(8, ge=2, description="hashes: 8 -> 64-bit hashes")
    max_distance: int = Field(6, ge=0, description="hashes: Hamming distance at or under which frames are near-duplicates")
    drop_duplicates: bool = Field(True, description="keep one image per cluster")


class SplitParams(Section):
    """``data_engineering.split``."""

    eval_fraction: float = Field(0.5, gt=0, lt=1, description="of hand-labelled images")
    val_fraction: float = Field(0.25, gt=0, lt=1, description="of the hand-labelled images eval leaves")
    weak_holdout_fraction: float = Field(0.15, ge=0, lt=1, description="of the box-only clusters, held out to score models")


class ReportParams(Section):
    gallery_samples: int = Field(8, ge=0)
    gallery_clusters: int = Field(4, ge=0)


class DataEngineeringParams(Section):
    """``data_engineering``: validation, duplicates, splits."""

    layout: str = Field("auto", description="the raw dataset's layout (a name of data.layouts.LAYOUTS), or auto: the one whose files are there")
    on_bad_file: Literal["skip", "error"] = "skip"
    classes: ClassFilterParams = ClassFilterParams()
    via: ViaParams = ViaParams()
    drop_images_without_boxes: bool = True
    dedupe: DedupeParams = DedupeParams()
    split: SplitParams = SplitParams()
    report: ReportParams = ReportParams()

    @field_validator("layout")
    @classmethod
    def _known_layout(cls, value: str) -> str:
        from sewer_segmentation.data.layouts import LAYOUTS  # noqa: PLC0415 - the registry imports the parsers

        return _one_of(value, ["auto", *LAYOUTS], "layout")


class SyntheticParams(Section):
    """``synthetic``: the bundled dataset, generated when ``dataset: synthetic`` and its folder is missing."""

    num_images: int = Field(300, ge=3)
    num_hand_labelled: int = Field(60, ge=3)
    width: int = Field(320, ge=64)
    height: int = Field(240, ge=64)
    defect_class: Literal["Deformation", "Obstacle", "Disconnect", "Deposition", "Crack"] = "Deposition"
    seed: int = Field(7, ge=0)
    duplicate_fraction: float = Field(0.05, ge=0, le=1)
    junk_fraction: float = Field(0.02, ge=0, le=1)
    false_box_fraction: float = Field(0.05, ge=0, le=1)
    text_overlay_fraction: float = Field(0.5, ge=0, le=1)
    distractor_fraction: float = Field(0.4, ge=0, le=1)
    layout: Literal["via", "yolo"] = "via"
    other_class_box_fraction: float = Field(0.0, ge=0, le=1)
    wall_texture: float = Field(0.0, ge=0)
    stains_in_boxes: float = Field(0.0, ge=0, le=1)
    defect_opacity: float = Field(1.0, gt=0, le=1)

    @model_validator(mode="after")
    def _labelled_within_the_frames(self) -> SyntheticParams:
        if self.num_hand_labelled > self.num_images:
            raise ValueError(f"num_hand_labelled ({self.num_hand_labelled}) must not exceed num_images ({self.num_images})")
        return self


# --------------------------------------------------------------------------------------------------
# Training (baseline_training, final_training)
# --------------------------------------------------------------------------------------------------


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
    loss: LossParams = LossParams()
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
        return _precision(value)


class JointParams(Section):
    enabled: bool = Field(False, description="the baseline also trains on the weak pool's boxes")
    labelled_share: float = Field(0.5, gt=0, lt=1)


class BaselineTrainingParams(Section):
    joint: JointParams = JointParams()
    training: TrainingParams = TrainingParams()


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
                raise ValueError(f"{key!r} is not a training parameter{_nearest(key, TrainingParams.model_fields)}")
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


# --------------------------------------------------------------------------------------------------
# mask_refinement and predict
# --------------------------------------------------------------------------------------------------


class AutoRefinementParams(Section):
    thresholds: list[float] = Field([0.2, 0.3, 0.4, 0.5, 0.6, 0.7], description="candidates of the threshold method")
    methods: list[str] = Field(["grabcut", "box_prior", "seed", "box"], description="the other candidates")
    box_margin: float = Field(1.0, ge=0, description="standard errors a candidate must beat the box masks by")

    @field_validator("thresholds")
    @classmethod
    def _probabilities(cls, value: list[float]) -> list[float]:
        if any(not 0 < t < 1 for t in value):
            raise ValueError("every threshold must be between 0 and 1")
        return value

    @field_validator("methods")
    @classmethod
    def _registered(cls, value: list[str]) -> list[str]:
        from sewer_segmentation.refinement.registry import REFINEMENT_METHODS  # noqa: PLC0415

        for name in value:
            _one_of(name, [m for m in REFINEMENT_METHODS if m != "threshold"], "refinement method")
        return value


class ShardParams(Section):
    index: int = Field(0, ge=0)
    count: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _index_within_count(self) -> ShardParams:
        if self.index >= self.count:
            raise ValueError(f"shard index must be in 0..count-1, got index={self.index}, count={self.count}")
        return self


class MaskRefinementParams(Section):
    """``mask_refinement``: how box masks become refined masks. Each refinement method's own settings sit
    under its name (``threshold: {...}``), validated by that method's parameter model."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False, frozen=True)

    method: str = Field("auto", description="auto, or a name of refinement.registry.REFINEMENT_METHODS")
    auto: AutoRefinementParams = AutoRefinementParams()
    n_jobs: int | Literal["auto"] = Field("auto", description="threads for refinement (auto: every core)")
    gallery_cases: int = Field(6, ge=0)
    shard: ShardParams = ShardParams()

    @field_validator("method")
    @classmethod
    def _known_method(cls, value: str) -> str:
        from sewer_segmentation.refinement.registry import REFINEMENT_METHODS  # noqa: PLC0415

        return _one_of(value, ["auto", *REFINEMENT_METHODS], "refinement method")

    @field_validator("n_jobs")
    @classmethod
    def _positive_jobs(cls, value: int | str) -> int | str:
        if value != "auto" and value < 1:
            raise ValueError("must be auto or at least 1")
        return value

    @model_validator(mode="before")
    @classmethod
    def _method_sections(cls, data: Any) -> Any:
        """Keys beyond the fields are method sections: each validated by its method's model."""
        from sewer_segmentation.refinement.registry import REFINEMENT_METHODS  # noqa: PLC0415

        if not isinstance(data, dict):
            return data
        out = dict(data)
        for key, value in data.items():
            if key in cls.model_fields:
                continue
            if key not in REFINEMENT_METHODS:
                known = [*cls.model_fields, *REFINEMENT_METHODS]
                raise ValueError(f"unknown key {key!r}{_nearest(key, known)}; keys: {', '.join(known)}")
            try:
                out[key] = REFINEMENT_METHODS[key].params.model_validate(value or {})
            except ValidationError as exc:
                raise _located(exc, key) from None
        return out

    def method_params(self, name: str) -> BaseModel:
        """The settings of refinement method ``name`` (its model's defaults when the section is absent)."""
        from sewer_segmentation.refinement.registry import REFINEMENT_METHODS  # noqa: PLC0415

        given = (self.model_extra or {}).get(name)
        return given if given is not None else REFINEMENT_METHODS[name].params()


class PredictParams(Section):
    """``predict``: the predict pipeline."""

    model: str = Field("best", description="best, baseline, a round number, or an MLflow run id")
    input_folder: str = Field("data/01_raw/inference", description="folder of new frames")
    models_root: str
    tracking_uri: str | None = Field("sqlite:///mlflow.db", description="where MLflow run ids are looked up")
    threshold: float = Field(0.5, ge=0, le=1)
    batch_size: int = Field(16, ge=1)
    precision: str = Field("auto", description=f"one of {', '.join(PRECISIONS)}")
    flip_tta: bool = False

    @field_validator("precision", mode="before")
    @classmethod
    def _known_precision(cls, value: Any) -> str:
        return _precision(value)

    @field_validator("model", mode="before")
    @classmethod
    def _round_number_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _located(exc: ValidationError, *parents: str) -> ValidationError:
    """``exc`` with its errors placed under ``parents``: a nested section checked by a validator reports
    its full key (``mask_refinement.threshold.band``), as a field of the model would."""
    errors = [{"type": e["type"], "loc": (*parents, *e["loc"]), "input": e.get("input"), **({"ctx": e["ctx"]} if "ctx" in e else {})}
              for e in exc.errors()]  # fmt: skip
    return ValidationError.from_exception_data(exc.title, errors)


def _nearest(key: str, known) -> str:
    close = difflib.get_close_matches(key, list(known), 1)
    return f" (did you mean {close[0]}?)" if close else ""


#: Keys checked by ``hooks.ParameterCheckHook`` the same way, beyond the nodes' typed inputs: sections no
#: node takes (a hook reads them), and the top-level scalars. Nodes take those as plain ``int`` / ``str``, so
#: that ``context.params`` in a notebook holds ``42``, not a model wrapping it.
HOOK_SECTIONS: dict[str, type[BaseModel]] = {"synthetic": SyntheticParams, "dataset": DatasetName, "seed": Seed, "round": RoundNumber}



# --------------------------------------------------------------------------------------------------
# Problems as one line each
# --------------------------------------------------------------------------------------------------


_MISSING = object()


def lookup(params: dict, key: str) -> Any:
    """``params`` at the dotted ``key`` (``baseline_training.training``); ``_MISSING`` when absent."""
    node: Any = params
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _fields_at(model: type[BaseModel], path: tuple) -> list[str]:
    """The field names of the (sub-)model at ``path`` inside ``model`` (for the nearest-name hint)."""
    for part in path:
        field = model.model_fields.get(str(part))
        nested = getattr(field, "annotation", None) if field else None
        candidates = [nested, *getattr(nested, "__args__", ())]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if model is None:
            return []
    return list(model.model_fields)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def problems_of(key: str, model: type[BaseModel], value: Any) -> list[str]:
    """Why ``value`` is not a valid ``model`` for parameter ``key``: one line per problem, naming the full
    key, the value given and what is allowed (empty when it is valid)."""
    try:
        model.model_validate(value)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            loc = tuple(part for part in error["loc"] if part != "root")
            where = ".".join([key, *map(str, loc)])
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                hint = _nearest(str(loc[-1]), _fields_at(model, loc[:-1])) if loc else ""
                lines.append(f"{where}: no such parameter{hint}")
            else:
                if error["type"] == "multiple_of" and isinstance(error.get("input"), int):  # say which value would do
                    step = error["ctx"]["multiple_of"]
                    message += f" (nearest: {max(step, round(error['input'] / step) * step)})"
                lines.append(f"{where}={_shown(error.get('input'))}: {message}")
        return lines
    return []


def parameter_problems(params: dict, requirements: dict[str, type[BaseModel]]) -> list[str]:
    """Every problem of ``params`` (the loaded configuration) against the models ``requirements`` names
    per dotted key (what Kedro found in the nodes' type hints, plus ``HOOK_SECTIONS``)."""
    lines = []
    for key, model in sorted(requirements.items()):
        value = lookup(params, key)
        optional = type(None) in typing.get_args(model)  # ``Model | None``: None is allowed
        model = next((a for a in typing.get_args(model) if isinstance(a, type) and issubclass(a, BaseModel)), model)
        if value is not _MISSING and not (optional and value is None):
            lines += problems_of(key, model, value)
    return lines


if __name__ == "__main__":  # python -m sewer_segmentation.params > docs/parameters.md
    from sewer_segmentation.parameters_doc import parameters_markdown  # noqa: PLC0415

    print(parameters_markdown(), end="")
