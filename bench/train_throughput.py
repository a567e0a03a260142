"""Training throughput of the configured model, and data-loader throughput against a naive loader.

    python bench/train_throughput.py [--steps 3] [--batch-size 4] [--env base]

Model: the `model` parameters of conf/<env>. For each size (the configured demo size and 512x704),
precision (fp32, bf16 autocast) and memory format (channels_last on/off) it times `--steps` optimizer
steps after one warm-up step and prints images/s.

Loader: images/s of the project's loader (decode + resize once, then augment per access) against a
reference loader that decodes and resizes the full-size JPEG on every access with no workers, as the
original experiment did; both read the same synthetic 704x512 frames in the same run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from sewer_segmentation.data.samples import SegmentationDataset, build_augmentation, load_samples
from sewer_segmentation.data.synthetic import SyntheticConfig, draw_frame
from sewer_segmentation.datasets import ImageDataset
from sewer_segmentation.io.imaging import decode_image, decode_mask, encode_image, resize_image, resize_mask
from sewer_segmentation.modelling.losses import build_loss
from sewer_segmentation.modelling.models import build_model

ROOT = Path(__file__).resolve().parents[1]


def load_parameters(env: str) -> dict:
    params = yaml.safe_load((ROOT / "conf/base/parameters_baseline_training.yml").read_text())
    override = ROOT / f"conf/{env}/parameters_baseline_training.yml"
    if env != "base" and override.is_file():
        params.update(yaml.safe_load(override.read_text()))
    return params


def train_rate(model_config, height, width, batch_size, steps, bf16, channels_last) -> float:
    torch.manual_seed(0)
    model = build_model({**model_config, "encoder_weights": None}).train()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    loss_fn = build_loss("tversky")
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], 1e-3)
    x = torch.randn(batch_size, 3, height, width).to(memory_format=fmt)
    y = (torch.rand(batch_size, 1, height, width) > 0.7).float()

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
        loss = loss_fn(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch_size / (time.perf_counter() - start)


def loader_rates(n_images: int, height: int, width: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        config = SyntheticConfig(width=704, height=512)
        for i in range(n_images):
            frame = draw_frame(config, i)
            (tmp / f"{i}.jpg").write_bytes(encode_image(frame.image, ".jpg", 92))
            (tmp / f"{i}.png").write_bytes(encode_image(frame.truth, ".png"))
        augmentation = build_augmentation({"hflip": 0.5, "rotate_limit": 10, "shift_limit": 0.05, "scale_limit": 0.1,
                                           "brightness_contrast": 0.2, "noise_p": 0.2}, seed=0)  # fmt: skip
        epochs = 3
        mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

        # Project loader: decode once (counted), then every epoch only augments.
        start = time.perf_counter()
        images = {str(i): ImageDataset(str(tmp / f"{i}.jpg")).load for i in range(n_images)}
        masks = {str(i): ImageDataset(str(tmp / f"{i}.png"), kind="mask").load for i in range(n_images)}
        dataset = SegmentationDataset(load_samples(images, masks, height, width), mean, std, augmentation)
        for _ in range(epochs):
            for k in range(len(dataset)):
                dataset[k]
        cached = epochs * n_images / (time.perf_counter() - start)

        # Reference: decode and resize the full-size files on every access.
        start = time.perf_counter()
        for _ in range(epochs):
            for i in range(n_images):
                image = resize_image(decode_image((tmp / f"{i}.jpg").read_bytes()), height, width)
                mask = resize_mask(decode_mask((tmp / f"{i}.png").read_bytes()), height, width)
                out = augmentation(image=image, mask=mask)
                ((out["image"].astype(np.float32) - 123.0) / 58.0).transpose(2, 0, 1)
        reference = epochs * n_images / (time.perf_counter() - start)
    return cached, reference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--env", default="base")
    parser.add_argument("--loader-images", type=int, default=40)
    args = parser.parse_args()
    params = load_parameters(args.env)
    model_config = params["model"]
    demo = (params["image_size"]["height"], params["image_size"]["width"])
    print(f"model: {model_config['architecture']} / {model_config['encoder_name']}, torch threads {torch.get_num_threads()}")
    print(f"{'size':>9} {'precision':>9} {'channels_last':>13} {'images/s':>9}")
    for height, width in (demo, (512, 704)):
        for bf16 in (False, True):
            for channels_last in (False, True):
                rate = train_rate(model_config, height, width, args.batch_size, args.steps, bf16, channels_last)
                print(f"{height}x{width:<5} {'bf16' if bf16 else 'fp32':>9} {str(channels_last):>13} {rate:9.1f}", flush=True)
    cached, reference = loader_rates(args.loader_images, *demo)
    print(f"loader at {demo[0]}x{demo[1]} from 704x512 JPEGs, 3 epochs: project {cached:.0f} images/s, "
          f"decode-every-access reference {reference:.0f} images/s, ratio {cached / reference:.1f}x")  # fmt: skip


if __name__ == "__main__":
    main()
