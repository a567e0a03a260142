"""The parameter models of the data layer: ``image_size``, ``data_engineering`` and ``synthetic``
(``params.py`` gathers every section; docs/parameters.md lists them)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from sewer_segmentation.schema import Section, one_of


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
    action: Literal["drop", "group"] = Field(
        "drop", description="drop: keep one frame per cluster; group: keep every frame of a cluster, all in one split (docs/data.md)")


class SplitParams(Section):
    """``data_engineering.split``."""

    eval_fraction: float = Field(0.5, gt=0, lt=1, description="of hand-labelled images")
    val_fraction: float = Field(0.25, gt=0, lt=1, description="of the hand-labelled images eval leaves")
    weak_holdout_fraction: float = Field(0.15, ge=0, lt=1, description="of the box-only clusters, held out to score models")
    stable: bool = Field(True, description="a frame keeps the split of the last manifest drawn with the same seed and fractions")
    group_by: str | None = Field(None, description="a regex on the image file name: frames with one match (its first group) share a split")
    group_by_column: str | None = Field(
        None, description="a column of data/01_raw/<dataset>/metadata.csv (one row per frame: file, then yours): frames with one value share a split")

    @field_validator("group_by")
    @classmethod
    def _a_regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a regular expression ({exc})") from None
        return value


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

        return one_of(value, ["auto", *LAYOUTS], "layout")


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
    exposure_copies: int = Field(0, ge=0, le=10, description="more shots of each hand-labelled frame at other exposures (dedupe.action)")

    @model_validator(mode="after")
    def _labelled_within_the_frames(self) -> SyntheticParams:
        if self.num_hand_labelled > self.num_images:
            raise ValueError(f"num_hand_labelled ({self.num_hand_labelled}) must not exceed num_images ({self.num_images})")
        return self


class ExportReviewParams(Section):
    """``export_review``: a round's refined masks out to labelling tools (``data/review.py``)."""

    threshold: float = Field(0.5, gt=0, lt=1, description="a refined mask's pixels at or above it are defect")
    category: str = Field("defect", min_length=1, description="the label name in the exported files")
    source: Literal["refined", "predictions"] = Field(
        "refined", description="refined: round r's refined masks; predictions: the predict pipeline's masks of predict.model on predict.input_folder")
    model: str = Field("best", description="predictions: the predict pipeline's model choice (set by predict_model)")
    input_folder: str = Field("data/01_raw/inference", description="predictions: its folder of frames (set by inference_folder)")

    @field_validator("model", mode="before")
    @classmethod
    def _round_number_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value
