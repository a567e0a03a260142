"""Refining a weak pool on this machine: the local engine against Ray (1 and 2 prediction actors).

    python bench/scale.py [--frames 5000] [--method grabcut] [--unique 250]

Writes ``--frames`` synthetic 128x160 frames and their box masks as files (``--unique`` drawn frames,
repeated under new ids), saves an untrained model of the default configuration (UNetAttention, resnet18;
weights do not change the cost), then refines the pool with method ``--method``:

- **local**: ``predict_pool`` (batches of ``inference.batch_size``, every core) then ``refine_pool`` on
  every core, the masks written as ``RefinedMasksDataset`` writes them;
- **ray**: ``scaling.ray_engine.run_frames`` with 1 and with 2 prediction actors (each ``num_cpus: 1``),
  refinement in CPU tasks, each worker writing its masks.

It prints frames/s for each (``ray.init`` excluded, and printed apart), the ratio to local, and checks that
every engine wrote the same bytes. The last line is ``local=<f/s> ray1=<f/s> ray2=<f/s> init=<s>``.

    python bench/scale.py --data-engineering 1000 4000

times ``kedro run --pipeline=data_engineering`` on that many generated 704x576 frames instead, per node
(docs/scaling.md extrapolates both to a million frames).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import tempfile
import time
from functools import partial
from pathlib import Path

import cv2
import yaml
from _project import fresh_project, kedro_run

from sewer_segmentation.data.synthetic import SyntheticConfig, box_mask, draw_frame, write_dataset
from sewer_segmentation.datasets import FolderDataset, ImageDataset, RefinedMasksDataset
from sewer_segmentation.io.files import StagedFolder, StagingArea
from sewer_segmentation.io.imaging import encode_image
from sewer_segmentation.modelling.inference import load_trained_model
from sewer_segmentation.modelling.models import build_model, save_model
from sewer_segmentation.pipelines.mask_refinement.nodes import predict_pool, write_refined_frame
from sewer_segmentation.refinement.masks import RefinedMasks
from sewer_segmentation.refinement.methods import refine_pool
from sewer_segmentation.scaling.config import RayParams
from sewer_segmentation.scaling.ray_engine import FrameJob, file_of, ray_session, run_frames

ROOT = Path(__file__).resolve().parents[1]
HEIGHT, WIDTH = 128, 160


def write_pool(folder: Path, frames: int, unique: int) -> None:
    """``images/`` and ``box_masks/`` of ``frames`` frames: ``unique`` drawn ones, repeated under new ids."""
    (folder / "images").mkdir(parents=True)
    (folder / "box_masks").mkdir()
    drawn = []
    for i in range(unique):
        frame = draw_frame(SyntheticConfig(width=WIDTH, height=HEIGHT), i)
        drawn.append((encode_image(frame.image, ".png"), encode_image(box_mask(frame.boxes, frame.truth.shape), ".png")))
    for k in range(frames):
        image, box = drawn[k % unique]
        (folder / "images" / f"f{k:06d}.png").write_bytes(image)
        (folder / "box_masks" / f"f{k:06d}.png").write_bytes(box)


def default_model(folder: Path):
    config = yaml.safe_load((ROOT / "conf/base/parameters_baseline_training.yml").read_text())["model"]
    save_model(build_model(config), config, folder, {"image_size": {"mode": "resize", "height": HEIGHT, "width": WIDTH}})
    return load_trained_model(folder)


def digest(folder: Path) -> str:
    """Of the newest version's files, names (within the version) and bytes."""
    version = sorted(p for p in folder.iterdir() if p.is_dir())[-1]
    sha = hashlib.sha256()
    for path in sorted(version.rglob("*.png")):
        sha.update(path.relative_to(version).as_posix().encode() + path.read_bytes())
    return sha.hexdigest()


def data_engineering_cost(frames: int, width: int, height: int) -> None:
    """``kedro run --pipeline=data_engineering`` on ``frames`` generated frames of ``width`` x ``height``
    (a tenth hand-labelled): seconds per node and per frame (the run's ``run_timings.json``)."""
    project = fresh_project("scale-de-")
    try:
        raw = project / "data/01_raw/scale"
        write_dataset(SyntheticConfig(num_images=frames, num_hand_labelled=max(10, frames // 10), width=width, height=height), raw,
                      raw.parent / "scale_ground_truth")  # fmt: skip
        seconds = kedro_run(project, "--pipeline=data_engineering", "--params=dataset=scale")
        (timings,) = (project / "data/08_reporting/scale/run_timings.json").glob("*/run_timings.json")
        nodes = json.loads(timings.read_text())["seconds_by_node"]
        print(f"data_engineering, {frames} frames of {width}x{height}: {seconds:.1f} s for the whole `kedro run` ({1000 * seconds / frames:.1f} ms/frame)")
        for name, value in sorted(nodes.items(), key=lambda kv: -kv[1])[:6]:
            print(f"  {name}: {value:.1f} s ({1000 * value / frames:.2f} ms/frame)")
        rest = seconds - sum(nodes.values())
        print(f"  outside the nodes (start-up, reading and writing the split folders): {rest:.1f} s ({1000 * rest / frames:.1f} ms/frame)")
    finally:
        shutil.rmtree(project, ignore_errors=True)


def differences(a: Path, b: Path) -> str:
    """Which files of the newest versions of ``a`` and ``b`` differ, and by how many pixels (up to 5 named)."""
    va, vb = (sorted(p for p in f.iterdir() if p.is_dir())[-1] for f in (a, b))
    named = []
    for path in sorted(va.rglob("*.png")):
        other = vb / path.relative_to(va)
        if not other.is_file():
            named.append(f"{path.relative_to(va)} missing")
        elif other.read_bytes() != path.read_bytes():
            x, y = (cv2.imread(str(p), cv2.IMREAD_UNCHANGED).astype(int) for p in (path, other))
            named.append(f"{path.relative_to(va)}: {int((x != y).sum())} pixels, by up to {int(abs(x - y).max())}")
    return f"{len(named)} files differ" + (f" ({'; '.join(named[:5])})" if named else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=5000)
    parser.add_argument("--unique", type=int, default=250)
    parser.add_argument("--method", default="grabcut")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--data-engineering", type=int, nargs="*", metavar="N",
                        help="instead: time data_engineering on N generated 704x576 frames (each N given)")
    args = parser.parse_args()
    if args.data_engineering:
        for frames in args.data_engineering:
            data_engineering_cost(frames, 704, 576)
        return
    work = Path(tempfile.mkdtemp(prefix="scale-bench-"))
    try:
        write_pool(work / "pool", args.frames, min(args.unique, args.frames))
        trained = default_model(work / "model")
        images = FolderDataset(str(work / "pool/images"), {"type": ImageDataset, "kind": "image"}, filename_suffix=".png").load()
        boxes = FolderDataset(str(work / "pool/box_masks"), {"type": ImageDataset, "kind": "mask"}, filename_suffix=".png").load()
        inference = {"batch_size": args.batch_size, "precision": "32", "flip_tta": False}
        speeds, digests = {}, {}

        start = time.perf_counter()
        probabilities, _ = predict_pool(trained, images, inference)
        predicted = time.perf_counter()
        refined = refine_pool(probabilities, images, boxes, args.method, {}, n_jobs="auto")
        out = RefinedMasksDataset(str(work / "local"), {"type": ImageDataset, "kind": "soft_mask"}, versioned_folders=True, filename_suffix=".png")
        out.save(RefinedMasks.of(refined))
        end = time.perf_counter()
        speeds["local"] = args.frames / (end - start)
        digests["local"] = digest(work / "local")
        print(f"local: {speeds['local']:.1f} frames/s (predict {1000 * (predicted - start) / args.frames:.1f} ms/frame on every core, "
              f"refine and write {1000 * (end - predicted) / args.frames:.1f} ms/frame on every core)", flush=True)  # fmt: skip

        jobs = [FrameJob(i, file_of(images[i], "frames"), {"box": file_of(boxes[i], "box masks")}) for i in sorted(images)]
        for actors in (1, 2):
            params = RayParams(concurrency=actors, num_cpus=1)
            with ray_session(params) as init_seconds:
                staging = StagingArea(str(work / f"ray{actors}"), versioned=True)
                start = time.perf_counter()
                folder = staging.new_folder()
                finish = partial(write_refined_frame, method=args.method, params={}, folder=str(folder))
                statuses = run_frames(jobs, trained, inference, finish, params)
                RefinedMasksDataset(str(work / f"ray{actors}"), {"type": ImageDataset, "kind": "soft_mask"}, versioned_folders=True).save(StagedFolder(folder))
                speeds[f"ray{actors}"] = args.frames / (time.perf_counter() - start)
            failed = [s for s in statuses if "error" in s]
            digests[f"ray{actors}"] = digest(work / f"ray{actors}")
            print(f"ray, {actors} prediction actor(s): {speeds[f'ray{actors}']:.1f} frames/s ({speeds[f'ray{actors}'] / speeds['local']:.2f} x local), "
                  f"ray.init {init_seconds:.1f} s, {len(failed)} failed", flush=True)  # fmt: skip
        same = len(set(digests.values())) == 1
        print(f"{args.frames} frames of {WIDTH}x{HEIGHT}, method {args.method}, batch {args.batch_size}: the same bytes on every engine: {same}")
        if not same:
            for name in ("ray1", "ray2"):
                print(f"{name} vs local: {differences(work / 'local', work / name)}")
            raise SystemExit(f"the engines wrote different masks: {digests}")
        print(f"local={speeds['local']:.1f} ray1={speeds['ray1']:.1f} ray2={speeds['ray2']:.1f} init={init_seconds:.1f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
