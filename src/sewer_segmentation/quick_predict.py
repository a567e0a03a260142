"""``sewer-segmentation predict FRAME...``: masks for a few frames, without a Kedro session.

For people who just want masks: no catalog, no MLflow run, no Kedro configuration. The model is chosen as the predict
pipeline chooses it (``best``, ``baseline`` or a round number, from ``data/06_models/<dataset>``; or a registered
model, ``models:/sewer-segmentation-<dataset>@best``, or an MLflow run id, from ``--tracking-uri``); each
mask is written as ``<out>/<frame stem>.png`` (0/255, the frame's size; frames that share a stem keep
their folders in the name: ``mask_names``).
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
from functools import partial
from pathlib import Path

import numpy as np

from sewer_segmentation.errors import SewerSegmentationError
from sewer_segmentation.io.imaging import decode_image, encode_image, has_image_extension
from sewer_segmentation.stage import Stage


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="sewer-segmentation predict", description=__doc__.split("\n\n")[0])
    parser.add_argument("frames", nargs="+", help="image files (jpg, png, bmp), folders of them, or glob patterns ('frames/**/*.jpg')")
    parser.add_argument("--model", default="best", help="best (default), baseline, a round number, models:/NAME@ALIAS or an MLflow run id")
    parser.add_argument("--tracking-uri", default="sqlite:///mlflow.db", help="the MLflow store of models:/ URIs and run ids")
    parser.add_argument("--dataset", default="synthetic", help="whose models to use: data/06_models/<dataset>")
    parser.add_argument("--models-root", type=Path, default=None, help="instead of data/06_models/<dataset>")
    parser.add_argument("--out", type=Path, default=Path("predictions"), help="folder for the masks (default: predictions)")
    parser.add_argument("--threshold", type=probability, default=0.5, help="probability a defect pixel needs (0 to 1, default 0.5)")
    return parser.parse_args(argv)


def probability(text: str) -> float:
    """An argparse type: a number from 0 to 1 (``nan`` fails the comparison too, as the parameter models refuse it)."""
    value = float(text)  # argparse turns a ValueError into "invalid probability value"
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be a number from 0 to 1, got {text!r}")
    return value


def write_masks(argv: list[str]) -> tuple[list[Path], list[str]]:
    """Write one mask per readable frame; returns the masks written and one error line per frame that
    failed. A missing model is a ``SewerSegmentationError``."""
    from sewer_segmentation.modelling.inference import predict_frames  # noqa: PLC0415 - torch, only once arguments parsed
    from sewer_segmentation.tracking.registry import load_chosen_model  # noqa: PLC0415 - no Kedro

    args = parse_args(argv)
    root = args.models_root or Path("data/06_models") / args.dataset
    try:
        trained = load_chosen_model(args.model, str(root), args.tracking_uri)
    except SewerSegmentationError as exc:
        if args.model != "best" and Stage.from_name(args.model) is None:  # a models:/ URI or a run id
            raise type(exc)(f"{exc} (pass --tracking-uri with the MLflow store that holds it)") from None
        raise type(exc)(f"{exc} (models are looked for in {os.path.abspath(root)}: run this inside the project, or pass "
                        "--models-root DIR or --dataset NAME)") from None  # fmt: skip
    frames, missing = expand_frames(args.frames)
    readers = {str(frame): partial(_decode, frame) for frame in frames}
    args.out.mkdir(parents=True, exist_ok=True)
    written, names = [], mask_names(list(readers))
    for prediction in predict_frames(trained, readers, {"batch_size": 8}):
        if prediction.error:
            missing.append(f"{prediction.image_id}: {prediction.error}")
            continue
        mask = np.where(prediction.probability >= args.threshold, 255, 0).astype(np.uint8)
        target = args.out / f"{names[prediction.image_id]}.png"
        target.write_bytes(encode_image(mask, ".png"))
        print(f"{prediction.image_id} -> {target} (defect area {float((mask > 0).mean()):.1%})")
        written.append(target)
    return written, missing


def expand_frames(arguments: list[str]) -> tuple[list[Path], list[str]]:
    """The image files the arguments name: files as given, every image below a folder, and the images a glob
    pattern matches (``**`` for any depth); one error line per argument that names none."""
    frames, problems = [], []
    for argument in arguments:
        path = Path(argument)
        if path.is_file():
            found = [path]
        elif path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and has_image_extension(p.name))
        elif glob.has_magic(argument):
            found = sorted(Path(p) for p in glob.glob(argument, recursive=True) if Path(p).is_file() and has_image_extension(p))
        else:
            problems.append(f"{argument}: no such file or folder")
            continue
        if not found:
            problems.append(f"{argument}: no image files (jpg, jpeg, png, bmp) {'in this folder' if path.is_dir() else 'match'}")
        frames += [f for f in found if f not in frames]
    return frames, problems


def mask_names(frames: list[str]) -> dict[str, str]:
    """The name each frame's mask gets (``.png`` added): its stem (``a.jpg`` -> ``a``); where two frames
    share a stem, their paths below the folder they share, joined by ``__`` (``d1/a.jpg`` ->
    ``d1__a``), with the extension kept if that is all that differs (``a.jpg``, ``a.png``). No mask
    overwrites another."""
    paths = {frame: Path(os.path.abspath(frame)) for frame in frames}
    by_stem: dict[str, list[str]] = {}
    for frame, path in paths.items():
        by_stem.setdefault(path.stem, []).append(frame)
    names = {}
    for stem, group in by_stem.items():
        if len(group) == 1:
            names[group[0]] = stem
            continue
        common = Path(os.path.commonpath([str(paths[f].parent) for f in group]))
        relative = {f: paths[f].relative_to(common) for f in group}
        joined = {f: "__".join((*r.parent.parts, r.stem)) for f, r in relative.items()}
        for f in group:
            clash = sum(v == joined[f] for v in joined.values()) > 1
            names[f] = "__".join((*relative[f].parent.parts, relative[f].name)) if clash else joined[f]
    return names


def _decode(frame: Path) -> np.ndarray:
    return decode_image(frame.read_bytes(), str(frame))


def main(argv: list[str]) -> int:
    try:
        _, failed = write_masks(argv)
    except SewerSegmentationError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    for line in failed:
        print(f"Error: {line}", file=sys.stderr)
    return 1 if failed else 0
