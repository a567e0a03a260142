"""Training data: decode and resize once, augment on the fly.

``load_samples`` decodes every image and mask once and resizes it to the training size; the arrays stay
in memory (``H x W x 3`` uint8 per image: 512x704 frames take about 1 MB each). Each epoch then only
runs the albumentations pipeline and normalization, never the JPEG decoder.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import albumentations as A
import numpy as np
import torch
from torch.utils.data import Dataset

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


def build_augmentation(config: dict | None, seed: int | None = None) -> A.Compose | None:
    """Albumentations pipeline from parameters; geometric transforms move masks and weights with the image.
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
    return A.Compose(transforms, seed=seed) if transforms else None


class SegmentationDataset(Dataset):
    """Cached samples -> ``(image CHW float, target 1HW float, weight 1HW float)`` tensors."""

    def __init__(self, samples: list[Sample], mean, std, augmentation: A.Compose | None = None):
        self.samples = samples
        self.augmentation = augmentation
        self.mean = np.asarray(mean, np.float32) * 255.0
        self.std = np.asarray(std, np.float32) * 255.0

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        s = self.samples[index]
        image, target = s.image, s.target
        weight = s.weight if s.weight is not None else np.ones_like(target)
        if self.augmentation is not None:
            out = self.augmentation(image=image, masks=[target, weight])
            image, (target, weight) = out["image"], out["masks"]
        image = (image.astype(np.float32) - self.mean) / self.std
        return (
            torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
            torch.from_numpy(np.ascontiguousarray(target, dtype=np.float32))[None],
            torch.from_numpy(np.ascontiguousarray(weight, dtype=np.float32))[None],
        )


def to_model_input(images: list[np.ndarray], height: int, width: int, mean, std) -> torch.Tensor:
    """Resize and normalize full-size frames for inference: ``N x 3 x height x width``."""
    mean = np.asarray(mean, np.float32) * 255.0
    std = np.asarray(std, np.float32) * 255.0
    batch = np.stack([(resize_image(im, height, width).astype(np.float32) - mean) / std for im in images])
    return torch.from_numpy(batch.transpose(0, 3, 1, 2).copy())
