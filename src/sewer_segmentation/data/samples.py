"""Training data: decode (and resize) once, crop and augment on the fly.

``load_samples`` decodes every image and mask once and, with ``image_size.mode: resize``, resizes it to
the training size; with ``mode: native`` frames stay at their own scale and every draw is a crop of the
training size (``FrameSize``). The arrays stay in memory (``H x W x 3`` uint8 per image: a 704x576 frame
takes about 1.2 MB, its target and weight map 1.6 MB each). Each draw then only runs the albumentations
pipeline and normalization, never the JPEG decoder.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from sewer_segmentation.data.boxes import FrameBoxes
from sewer_segmentation.data.config import ImageSizeParams
from sewer_segmentation.errors import BadInputError
from sewer_segmentation.io.imaging import resize_image, resize_mask
from sewer_segmentation.progress import progress_bar
from sewer_segmentation.schema import plain

if TYPE_CHECKING:
    import albumentations as A

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class FrameSize:
    """``image_size`` parameters, checked. ``resize``: every frame is resized to ``height x width`` for
    training and prediction (the probabilities resized back). ``native``: training draws ``height x
    width`` crops of frames at their own scale (``box_bias`` of them centred on a defect pixel of the
    target or a box), and prediction runs by tiles of that size overlapping by ``overlap`` pixels
    (``modelling/tiling.py``); frames smaller than a crop are padded, never resized."""

    height: int
    width: int
    mode: str = "resize"
    box_bias: float = 0.5
    overlap: int = 64

    @property
    def native(self) -> bool:
        return self.mode == "native"

    @property
    def resize(self) -> tuple[int | None, int | None]:
        """(height, width) frames are resized to when loaded; (None, None) keeps them at their own size."""
        return (None, None) if self.native else (self.height, self.width)


def frame_size(image_size: ImageSizeParams | dict) -> FrameSize:
    """The ``image_size`` parameters (validated by ``params.ImageSizeParams``, or a trained model's saved
    ``image_size``) as a ``FrameSize``."""
    size = plain(image_size)
    height, width = int(size["height"]), int(size["width"])
    crop, tile = size.get("crop") or {}, size.get("tile") or {}
    overlap = tile.get("overlap")
    return FrameSize(height, width, size.get("mode", "resize"), float(crop.get("box_bias", 0.5)),
                     default_overlap(height, width) if overlap is None else int(overlap))  # fmt: skip


def default_overlap(height: int, width: int) -> int:
    """64 pixels, or the largest multiple of 32 up to half the tile's shorter side for small tiles."""
    return min(64, min(height, width) // 2 // 32 * 32)


#: Frames more than this many times the training size (in height or width) lose thin defects to resizing.
DOWNSCALE_WARNING = 3.0


def downscale_warning(heights, widths, size: FrameSize) -> str | None:
    """A warning when ``resize`` shrinks the median frame more than ``DOWNSCALE_WARNING`` times, naming
    the remedies; None otherwise (and always in native mode)."""
    if size.native or not len(heights):
        return None
    height, width = float(np.median(heights)), float(np.median(widths))
    factor = max(height / size.height, width / size.width)
    if factor <= DOWNSCALE_WARNING:
        return None
    return (f"frames are {width:.0f}x{height:.0f} (median) and image_size resizes them {factor:.1f}x down to {size.width}x{size.height}: "
            "thin defects vanish at that scale. Use a larger image_size, or --params=image_size.mode=native,image_size.height=256,"
            "image_size.width=256 (crops at the frames' own scale, tiled prediction; docs/training.md, section 7)")  # fmt: skip


def normalization_for(model_config: dict) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean/std of the encoder's pretraining data: ImageNet statistics (what every smp encoder's
    ``imagenet`` weights expect), unless ``model.normalization: {mean: [...], std: [...]}`` says otherwise.
    (smp can look these up, but only by asking the model hub, which fails offline.)"""
    custom = model_config.get("normalization") or {}
    return tuple(custom.get("mean", IMAGENET_MEAN)), tuple(custom.get("std", IMAGENET_STD))


@dataclass
class Sample:
    image_id: str
    image: np.ndarray  # H x W x 3 uint8 at training size
    target: np.ndarray  # H x W float32 in [0, 1]
    weight: np.ndarray | None = None  # H x W float32, per-pixel loss weight
    # Box supervision (weak-pool frames): the frame's boxes at training size, K x 4 (x0, y0, x1, y1)
    # float32, and whether the boxes are this sample's label (the box losses apply to it).
    boxes: np.ndarray | None = None
    box_supervised: bool = False


def _to_unit(mask: np.ndarray) -> np.ndarray:
    return mask.astype(np.float32) / 255.0


def load_samples(
    images: Mapping[str, Callable],
    masks: Mapping[str, Callable],
    height: int | None,
    width: int | None,
    weights: Mapping[str, Callable] | None = None,
    description: str = "load",
) -> list[Sample]:
    """Decode every image/mask pair once and resize it to ``height x width`` (``None``: keep the frame's
    own size, ``FrameSize.resize`` of native mode). Every image must have a mask (and a weight map when
    ``weights`` is given); a missing one is an error naming the image."""
    missing = sorted(set(images) ^ set(masks))
    if missing:
        raise BadInputError(f"{description}: images and masks do not match for {', '.join(missing[:10])}")
    samples = []
    for image_id in progress_bar(sorted(images), desc=description, unit="img", leave=False):
        image = images[image_id]()
        mask = masks[image_id]()
        if mask.shape[:2] != image.shape[:2]:
            raise BadInputError(f"{description}: mask of {image_id} is {mask.shape[:2]}, image is {image.shape[:2]}")
        weight = None
        if weights is not None:
            if image_id not in weights:
                raise BadInputError(f"{description}: no weight map for {image_id}")
            weight = _to_unit(weights[image_id]())
            if weight.shape[:2] != image.shape[:2]:
                raise BadInputError(f"{description}: weight map of {image_id} is {weight.shape[:2]}, image is {image.shape[:2]}")
            weight = _sized_mask(weight, height, width)
        samples.append(Sample(image_id, _sized_image(image, height, width), _sized_mask(_to_unit(mask), height, width), weight))
    return samples


def _sized_image(image: np.ndarray, height: int | None, width: int | None) -> np.ndarray:
    return image if height is None else resize_image(image, height, width)


def _sized_mask(mask: np.ndarray, height: int | None, width: int | None) -> np.ndarray:
    return mask if height is None else resize_mask(mask, height, width)


def scale_boxes(boxes: np.ndarray, source_shape: tuple[int, int], height: int | None, width: int | None) -> np.ndarray:
    """Pixel boxes ``K x 4`` of a frame of ``source_shape`` (h, w) at the training size (``None``: the
    frame's own), float32."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    if height is None:
        return boxes
    sy, sx = height / source_shape[0], width / source_shape[1]
    return boxes * np.array([sx, sy, sx, sy], np.float32)


def load_box_samples(
    images: Mapping[str, Callable],
    boxes: Mapping[str, FrameBoxes],
    height: int | None,
    width: int | None,
    masks: Mapping[str, Callable] | None = None,
    weights: Mapping[str, Callable] | None = None,
    description: str = "load boxes",
) -> list[Sample]:
    """Box-supervised samples of ``images``: each frame's boxes at training size. With ``masks`` (refined
    masks, and their ``weights``) the mask losses apply too; without, the target is empty with weight 0,
    so only the box losses teach."""
    missing = sorted(set(images) - set(boxes))
    if missing:
        raise BadInputError(f"{description}: no box list for {', '.join(missing[:10])} (run `kedro run --pipeline=data_engineering`)")
    if masks is not None:
        samples = load_samples(images, masks, height, width, weights, description)
    else:
        samples = []
        for image_id in progress_bar(sorted(images), desc=description, unit="img", leave=False):
            image = _sized_image(images[image_id](), height, width)
            zeros = np.zeros(image.shape[:2], np.float32)
            samples.append(Sample(image_id, image, zeros, zeros.copy()))
    for sample in samples:
        frame = boxes[sample.image_id]
        sample.boxes = scale_boxes(frame.boxes, (frame.height, frame.width), height, width)
        sample.box_supervised = True
    return samples


def build_augmentation(config: dict | None, seed: int | None = None, with_boxes: bool = False,
                       crop: FrameSize | None = None) -> A.Compose | None:  # fmt: skip
    """Albumentations pipeline from parameters; geometric transforms move masks and weights with the image
    (and, ``with_boxes``, the boxes: a rotated box becomes the box around it, clipped to the frame).
    ``crop`` (native mode) first cuts a crop of its size: padded where the frame is smaller (weight 0
    there), centred on a defect pixel of the ``mask`` (the dataset's focus mask) with chance
    ``crop.box_bias``, anywhere otherwise; then the augmentation applies to the crop, which stays in the
    pipeline even with augmentation off. ``seed`` makes the sequence reproducible (albumentations has
    its own generators)."""
    import albumentations as A  # noqa: PLC0415 - about 1 s to import; prediction never needs it

    transforms = _crop_transforms(crop) if crop is not None else []
    if config and config.get("enabled", True):
        transforms += _augmentation_transforms(config)
    if not transforms:
        return None
    boxes = A.BboxParams(format="pascal_voc", clip=True, filter_invalid_bboxes=True, min_area=1.0) if with_boxes else None
    return A.Compose(transforms, bbox_params=boxes, seed=seed)


def _crop_transforms(crop: FrameSize) -> list:
    import albumentations as A  # noqa: PLC0415

    h, w = crop.height, crop.width
    pad = A.PadIfNeeded(min_height=h, min_width=w, position="top_left", border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=0)
    focused = A.CropNonEmptyMaskIfExists(height=h, width=w, p=crop.box_bias)
    anywhere = A.RandomCrop(height=h, width=w, p=1 - crop.box_bias)
    return [pad, A.OneOf([focused, anywhere], p=1.0)]


def _augmentation_transforms(config: dict) -> list:
    import albumentations as A  # noqa: PLC0415

    transforms = []
    if config.get("hflip", 0) > 0:
        transforms.append(A.HorizontalFlip(p=config["hflip"]))
    if config.get("vflip", 0) > 0:
        transforms.append(A.VerticalFlip(p=config["vflip"]))
    rotate, shift, scale = config.get("rotate_limit", 0), config.get("shift_limit", 0), config.get("scale_limit", 0)
    if rotate or shift or scale:
        transforms.append(
            A.Affine(
                rotate=(-rotate, rotate),
                translate_percent=(-shift, shift),
                scale=(1 - scale, 1 + scale),
                border_mode=0,
                p=config.get("affine_p", 0.7),
            )
        )
    if config.get("brightness_contrast", 0) > 0:
        limit = config["brightness_contrast"]
        transforms.append(A.RandomBrightnessContrast(brightness_limit=limit, contrast_limit=limit, p=0.5))
    if config.get("noise_p", 0) > 0:
        transforms.append(A.GaussNoise(std_range=(0.02, 0.08), p=config["noise_p"]))
    return transforms


def focus_mask(sample: Sample) -> np.ndarray:
    """Where a crop centred on a defect may be centred: the target's defect pixels and, for a
    box-supervised frame, its boxes (uint8 0/1, the frame's size)."""
    focus = (sample.target >= 0.5).astype(np.uint8)
    if sample.box_supervised and sample.boxes is not None:
        for x0, y0, x1, y1 in np.round(sample.boxes).astype(int):
            focus[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)] = 1
    return focus


class SegmentationDataset(Dataset):
    """Cached samples -> ``(image CHW float, target 1HW float, weight 1HW float)`` tensors.

    ``max_boxes`` (box supervision) adds ``boxes`` (``max_boxes x 4``, padded with empty rows),
    ``box_supervised`` (0/1) and ``lab`` (``3HW``, CIE LAB colours of the augmented frame, for the pairwise
    term) to each item; boxes move with the image under augmentation (which must then be built
    ``with_boxes``). ``crops`` (native mode: the augmentation starts with ``build_augmentation``'s crop)
    hands the crop its focus mask (``focus_mask``)."""

    def __init__(self, samples: list[Sample], mean, std, augmentation: A.Compose | None = None, max_boxes: int = 0,
                 crops: bool = False):  # fmt: skip
        self.samples = samples
        self.augmentation = augmentation
        self.crops = bool(crops)
        self.mean = np.asarray(mean, np.float32) * 255.0
        self.std = np.asarray(std, np.float32) * 255.0
        self.max_boxes = int(max_boxes)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        s = self.samples[index]
        image, target = s.image, s.target
        weight = s.weight if s.weight is not None else np.ones_like(target)
        boxes = s.boxes if s.boxes is not None else np.zeros((0, 4), np.float32)
        if self.augmentation is not None:
            extra = {"bboxes": boxes} if self.max_boxes else {}
            if self.crops:
                extra["mask"] = focus_mask(s)
            out = self.augmentation(image=image, masks=[target, weight], **extra)
            image, (target, weight) = out["image"], out["masks"]
            boxes = out.get("bboxes", boxes)
        tensors = (
            torch.from_numpy(np.ascontiguousarray(((image.astype(np.float32) - self.mean) / self.std).transpose(2, 0, 1))),
            torch.from_numpy(np.ascontiguousarray(target, dtype=np.float32))[None],
            torch.from_numpy(np.ascontiguousarray(weight, dtype=np.float32))[None],
        )
        if not self.max_boxes:
            return tensors
        kept = np.asarray(boxes, np.float32).reshape(-1, 4)[: self.max_boxes]
        if self.crops:  # which projections still hold (modelling/box_losses.py): a box at the crop's edge may be cut
            kept = np.concatenate([kept, projection_flags(kept, *target.shape[:2])], axis=1)
        padded = np.zeros((self.max_boxes, kept.shape[1]), np.float32)
        padded[: len(kept)] = kept
        lab = cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)  # L 0..100, a/b in LAB units
        return (*tensors, torch.from_numpy(padded), torch.tensor(float(s.box_supervised)),
                torch.from_numpy(np.ascontiguousarray(lab.transpose(2, 0, 1))))  # fmt: skip


def projection_flags(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """``K x 2`` (rows_hold, columns_hold) for boxes of a crop: a box touching the crop's left or right
    edge may have been cut there, so its defect need no longer cross every row (and top or bottom: every
    column). A box at the frame's own edge is counted as cut too when the crop shares that edge."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    cut_sideways = (boxes[:, 0] <= 0.5) | (boxes[:, 2] >= width - 0.5)
    cut_vertically = (boxes[:, 1] <= 0.5) | (boxes[:, 3] >= height - 0.5)
    return np.stack([~cut_sideways, ~cut_vertically], axis=1).astype(np.float32)


def max_boxes_of(samples: list[Sample]) -> int:
    """How many box rows a batch needs: the most boxes of any box-supervised sample (0: no box supervision)."""
    supervised = [s for s in samples if s.box_supervised]
    if not supervised:
        return 0
    return max(1, *(len(s.boxes) for s in supervised if s.boxes is not None))


def to_model_input(images: list[np.ndarray], height: int | None, width: int | None, mean, std) -> torch.Tensor:
    """Resize (``None``: keep the size; the frames must then share it) and normalize frames for
    inference: ``N x 3 x height x width``."""
    mean = np.asarray(mean, np.float32) * 255.0
    std = np.asarray(std, np.float32) * 255.0
    batch = np.stack([(_sized_image(im, height, width).astype(np.float32) - mean) / std for im in images])
    return torch.from_numpy(batch.transpose(0, 3, 1, 2).copy())


def training_datasets(train: list[Sample], val: list[Sample], augmentation: dict | None, normalization: tuple, seed: int,
                      size: FrameSize) -> tuple[SegmentationDataset, SegmentationDataset | None]:  # fmt: skip
    """What a stage trains and validates on, in one call: the training samples augmented (boxes move with
    the frame when any sample is box-supervised; native crops centred on defects in native mode), and the
    validation samples as they are (None without any)."""
    max_boxes = max_boxes_of(train)
    crop = size if size.native else None
    transform = build_augmentation(augmentation, seed, with_boxes=max_boxes > 0, crop=crop)
    train_set = SegmentationDataset(train, *normalization, transform, max_boxes, crops=crop is not None)
    return train_set, (SegmentationDataset(val, *normalization) if val else None)
