"""Training data: decode and resize once, augment on the fly.

``load_samples`` decodes every image and mask once and resizes it to the training size; the arrays stay
in memory (``H x W x 3`` uint8 per image: 512x704 frames take about 1 MB each). Each epoch then only
runs the albumentations pipeline and normalization, never the JPEG decoder.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import albumentations as A
import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from sewer_segmentation.data.boxes import FrameBoxes
from sewer_segmentation.errors import BadInputError, ConfigurationError
from sewer_segmentation.io.imaging import resize_image, resize_mask
from sewer_segmentation.progress import progress_bar

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def check_image_size(height: int, width: int) -> tuple[int, int]:
    """Encoders downsample 5 times: both sides must be positive multiples of 32."""
    height, width = int(height), int(width)
    if height <= 0 or width <= 0 or height % 32 or width % 32:
        raise ConfigurationError(
            f"image_size must be multiples of 32, got height={height}, width={width}; "
            f"nearest valid: height={max(32, round(height / 32) * 32)}, width={max(32, round(width / 32) * 32)}"
        )
    return height, width


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
    height: int,
    width: int,
    weights: Mapping[str, Callable] | None = None,
    description: str = "load",
) -> list[Sample]:
    """Decode and resize every image/mask pair once. Every image must have a mask (and a weight map
    when ``weights`` is given); a missing one is an error naming the image."""
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
            weight = resize_mask(_to_unit(weights[image_id]()), height, width)
        samples.append(
            Sample(image_id, resize_image(image, height, width), resize_mask(_to_unit(mask), height, width), weight)
        )
    return samples


def scale_boxes(boxes: np.ndarray, source_shape: tuple[int, int], height: int, width: int) -> np.ndarray:
    """Pixel boxes ``K x 4`` of a frame of ``source_shape`` (h, w) at the training size, float32."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    sy, sx = height / source_shape[0], width / source_shape[1]
    return boxes * np.array([sx, sy, sx, sy], np.float32)


def load_box_samples(
    images: Mapping[str, Callable],
    boxes: Mapping[str, FrameBoxes],
    height: int,
    width: int,
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
            zeros = np.zeros((height, width), np.float32)
            samples.append(Sample(image_id, resize_image(images[image_id](), height, width), zeros, zeros.copy()))
    for sample in samples:
        frame = boxes[sample.image_id]
        sample.boxes = scale_boxes(frame.boxes, (frame.height, frame.width), height, width)
        sample.box_supervised = True
    return samples


def build_augmentation(config: dict | None, seed: int | None = None, with_boxes: bool = False) -> A.Compose | None:
    """Albumentations pipeline from parameters; geometric transforms move masks and weights with the image
    (and, ``with_boxes``, the boxes: a rotated box becomes the box around it, clipped to the frame).
    ``seed`` makes the augmentation sequence reproducible (albumentations has its own generators)."""
    if not config or not config.get("enabled", True):
        return None
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
    if not transforms:
        return None
    boxes = A.BboxParams(format="pascal_voc", clip=True, filter_invalid_bboxes=True, min_area=1.0) if with_boxes else None
    return A.Compose(transforms, bbox_params=boxes, seed=seed)


class SegmentationDataset(Dataset):
    """Cached samples -> ``(image CHW float, target 1HW float, weight 1HW float)`` tensors.

    ``max_boxes`` (box supervision) adds ``boxes`` (``max_boxes x 4``, padded with empty rows),
    ``box_supervised`` (0/1) and ``lab`` (``3HW``, CIE LAB colours of the augmented frame, for the pairwise
    term) to each item; boxes move with the image under augmentation (which must then be built
    ``with_boxes``)."""

    def __init__(self, samples: list[Sample], mean, std, augmentation: A.Compose | None = None, max_boxes: int = 0):
        self.samples = samples
        self.augmentation = augmentation
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
        padded = np.zeros((self.max_boxes, 4), np.float32)
        kept = np.asarray(boxes, np.float32).reshape(-1, 4)[: self.max_boxes]
        padded[: len(kept)] = kept
        lab = cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)  # L 0..100, a/b in LAB units
        return (*tensors, torch.from_numpy(padded), torch.tensor(float(s.box_supervised)),
                torch.from_numpy(np.ascontiguousarray(lab.transpose(2, 0, 1))))  # fmt: skip


def max_boxes_of(samples: list[Sample]) -> int:
    """How many box rows a batch needs: the most boxes of any box-supervised sample (0: no box supervision)."""
    supervised = [s for s in samples if s.box_supervised]
    if not supervised:
        return 0
    return max(1, *(len(s.boxes) for s in supervised if s.boxes is not None))


def to_model_input(images: list[np.ndarray], height: int, width: int, mean, std) -> torch.Tensor:
    """Resize and normalize full-size frames for inference: ``N x 3 x height x width``."""
    mean = np.asarray(mean, np.float32) * 255.0
    std = np.asarray(std, np.float32) * 255.0
    batch = np.stack([(resize_image(im, height, width).astype(np.float32) - mean) / std for im in images])
    return torch.from_numpy(batch.transpose(0, 3, 1, 2).copy())
