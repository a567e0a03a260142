"""``sewer-segmentation predict FRAME...``: masks for a few frames, without a Kedro session.

For people who just want masks: no catalog, no MLflow run, no configuration loaded. The model is chosen
as the predict pipeline chooses it (``best``, ``baseline`` or a round number, from
``data/06_models/<dataset>``); each mask is written as ``<out>/<frame name>.png`` (0/255, the frame's size).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from sewer_segmentation.errors import SewerSegmentationError
from sewer_segmentation.imaging import decode_image, encode_image


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="sewer-segmentation predict", description=__doc__.split("\n\n")[0])
    parser.add_argument("frames", nargs="+", type=Path, help="image files (jpg, png, bmp)")
    parser.add_argument("--model", default="best", help="best (default), baseline or a round number")
    parser.add_argument("--dataset", default="synthetic", help="whose models to use: data/06_models/<dataset>")
    parser.add_argument("--models-root", type=Path, default=None, help="instead of data/06_models/<dataset>")
    parser.add_argument("--out", type=Path, default=Path("predictions"), help="folder for the masks (default: predictions)")
    parser.add_argument("--threshold", type=float, default=0.5)
    return parser.parse_args(argv)


def predict_frames(argv: list[str]) -> list[Path]:
    """Write one mask per frame; returns their paths. Errors are ``SewerSegmentationError``s."""
    from sewer_segmentation.pipelines.predict.nodes import load_chosen_model  # noqa: PLC0415 - torch, models
    from sewer_segmentation.training import predict_probabilities  # noqa: PLC0415

    args = parse_args(argv)
    trained = load_chosen_model(args.model, str(args.models_root or Path("data/06_models") / args.dataset))
    args.out.mkdir(parents=True, exist_ok=True)
    written = []
    for frame in args.frames:
        if not frame.is_file():
            raise SewerSegmentationError(f"{frame}: no such file")
        image = decode_image(frame.read_bytes(), str(frame))
        probability = predict_probabilities(trained.model, [image], trained.model_config, trained.image_size)[0]
        mask = np.where(probability >= args.threshold, 255, 0).astype(np.uint8)
        target = args.out / f"{frame.name}.png"
        target.write_bytes(encode_image(mask, ".png"))
        print(f"{frame} -> {target} (defect area {float((mask > 0).mean()):.1%})")
        written.append(target)
    return written


def main(argv: list[str]) -> int:
    try:
        predict_frames(argv)
    except SewerSegmentationError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    return 0
