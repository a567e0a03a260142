"""Per-frame jobs on Ray Data (``engine: ray``): predict over a pool of actors, finish each frame on CPU.

A job is a list of frames (``FrameJob``: id, the file to read, and what the second stage needs). It runs as
a Ray Dataset in two streaming stages:

1. **predict**: ``ray.concurrency`` actors, each holding the model once (``ray.num_gpus`` GPUs and
   ``ray.num_cpus`` CPUs each). One call predicts one batch, and the batches are exactly the ones the local
   engine forms (ids sorted, ``batch_size`` at a time): the same probabilities, byte for byte.
2. **finish**: CPU tasks take each frame's probability map (float32, exact) and do the job's own work
   on it (refine it and write the mask, or threshold it and write mask and overlay), writing straight into
   the output's staging folder (``io.files.StagingArea``) on storage every worker reaches.

The driver gathers one small status row per frame, never a mask; the node that called it commits the
staged folder with one rename once every frame is accounted for. A dead actor is restarted and its batch
retried, a lost task is retried (Ray Data's defaults); a frame whose own work fails comes back with its
error, named and left out, as on the local engine. Ray is imported only here and only when used.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from sewer_segmentation.errors import BadInputError
from sewer_segmentation.io.imaging import read_file
from sewer_segmentation.modelling.inference import TrainedModel, load_trained_model, predict_frames
from sewer_segmentation.progress import progress_bar
from sewer_segmentation.scaling.config import RayParams
from sewer_segmentation.schema import plain

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FrameJob:
    """One frame of a job: its id, the frame's file (``io.imaging.read_file`` arguments) and what the
    finishing stage needs for it (plain values: box file, output name...)."""

    image_id: str
    frame: dict
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class FrameResult:
    """What the finishing stage gets per frame: the job, and its probability map (float32 in [0, 1], the
    frame's size) or why there is none."""

    image_id: str
    frame: dict
    extra: dict
    probability: np.ndarray | None
    error: str | None


def file_of(load: Callable[[], Any], what: str) -> dict:
    """The file behind a partition loader (``datasets.ImageDataset.file_spec``): Ray workers read frames
    by path, so frames held only in memory cannot go to them."""
    spec = getattr(getattr(load, "__self__", None), "file_spec", None)
    if spec is None:
        raise BadInputError(f"engine ray reads {what} from files, but {what} are not a folder of image files here: use engine local")
    return spec()


@contextmanager
def ray_session(params: RayParams) -> Iterator[float]:
    """Ray connected to ``params.address`` for the block; yields the seconds ``ray.init`` took (0 when Ray
    was running already, which it is then left). Ray's own progress bars are off: the job draws one."""
    try:
        import ray  # noqa: PLC0415 - an extra: the local engine never imports it
    except ImportError:
        raise BadInputError('engine ray needs Ray: pip install -e ".[ray]" (or set engine: local)') from None
    started = time.perf_counter()
    ours = not ray.is_initialized()
    if ours:
        try:
            ray.init(address=params.address, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=True)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise BadInputError(f"ray.address={params.address}: no Ray cluster there ({str(exc).splitlines()[0]}). Start one with "
                                "`ray start --head` (then ray.address=auto), or use ray.address=local") from None  # fmt: skip
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    try:
        yield time.perf_counter() - started if ours else 0.0
    finally:
        if ours:
            ray.shutdown()


def batches_of(jobs: list[FrameJob], batch_size: int) -> list[dict]:
    """The rows of the predict stage: one per batch, the batches the local engine forms (sorted ids)."""
    ordered = sorted(jobs, key=lambda job: job.image_id)
    return [{"ids": [j.image_id for j in chunk], "frames": [json.dumps(j.frame) for j in chunk], "extras": [json.dumps(j.extra) for j in chunk]}
            for chunk in (ordered[start : start + batch_size] for start in range(0, len(ordered), batch_size))]  # fmt: skip


def model_source(trained: TrainedModel) -> str | TrainedModel:
    """What each actor loads the model from: the saved version's folder (read from the shared storage, as
    the frames are), or the model itself where it has no folder (one loaded from MLflow)."""
    folder = Path(str(trained.metadata.get("path", "")))
    return str(folder.resolve()) if (folder / "model.safetensors").is_file() else trained


class FramePredictor:
    """A prediction actor: loads the model once, then predicts one batch of frames per call."""

    def __init__(self, model: str | TrainedModel, inference: dict):
        self.trained = load_trained_model(model) if isinstance(model, str) else model
        self.inference = inference

    def __call__(self, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out: dict[str, list] = {"image_id": [], "frame": [], "extra": [], "probability": [], "error": [], "worker": []}
        for ids, frames, extras in zip(rows["ids"], rows["frames"], rows["extras"], strict=True):
            specs = {i: json.loads(f) for i, f in zip(ids, frames, strict=True)}
            loaders = {i: partial(read_file, **spec) for i, spec in specs.items()}
            extra_of = dict(zip(ids, extras, strict=True))
            for prediction in predict_frames(self.trained, loaders, self.inference):
                out["image_id"].append(prediction.image_id)
                out["frame"].append(json.dumps(specs[prediction.image_id]))
                out["extra"].append(extra_of[prediction.image_id])
                out["probability"].append(b"" if prediction.error else _float_bytes(prediction.probability))
                out["error"].append(prediction.error or "")
                out["worker"].append(os.getpid())
        return _columns(out)


def _columns(out: dict[str, list]) -> dict[str, np.ndarray]:
    """A batch for Ray Data: each list as a column (objects: text and bytes; ``worker``: the process id)."""
    return {key: np.array(values, dtype=object if key != "worker" else np.int64) for key, values in out.items()}


def _float_bytes(probability: np.ndarray) -> bytes:
    """A probability map as exact bytes (height, width, then float32 values): the finishing stage thresholds
    and scores it as the local engine does, so nothing may be rounded on the way."""
    height, width = probability.shape
    return np.array([height, width], np.int64).tobytes() + np.ascontiguousarray(probability, np.float32).tobytes()


def _from_float_bytes(data) -> np.ndarray:
    data = bytes(data)
    height, width = np.frombuffer(data[:16], np.int64)
    return np.frombuffer(data[16:], np.float32).reshape(int(height), int(width))


def finish_batch(rows: dict[str, np.ndarray], finish: Callable[[FrameResult], dict]) -> dict[str, np.ndarray]:
    """The second stage over a batch of predicted frames: ``finish`` per frame; its failure is that frame's
    error (named, the frame left out), never the batch's."""
    out: dict[str, list] = {"image_id": [], "result": [], "worker": []}
    for i, image_id in enumerate(rows["image_id"]):
        png, error = rows["probability"][i], rows["error"][i] or None
        result = FrameResult(str(image_id), json.loads(rows["frame"][i]), json.loads(rows["extra"][i]), None if error else _from_float_bytes(png), error)
        if result.error:
            status = {"image_id": result.image_id, "error": result.error}
        else:
            try:
                status = {"image_id": result.image_id, **finish(result)}
            except Exception as exc:  # noqa: BLE001 - one frame's failure is reported with its name
                status = {"image_id": result.image_id, "error": f"{type(exc).__name__}: {exc}"}
        out["image_id"].append(result.image_id)
        out["result"].append(json.dumps(status))
        out["worker"].append(int(rows["worker"][i]))
    return _columns(out)


def check_pool_fits(resources: dict, params: RayParams) -> None:
    """Refuse a prediction pool the cluster cannot hold (Ray would wait for it forever), and warn when it
    leaves no CPU for the second stage (which then waits until prediction is over)."""
    cpus, gpus = float(resources.get("CPU", 0)), float(resources.get("GPU", 0))
    if params.num_gpus > 0 and gpus < params.num_gpus * params.concurrency:
        raise BadInputError(f"ray.num_gpus={params.num_gpus:g} x ray.concurrency={params.concurrency} GPUs asked for, the Ray cluster has {gpus:g}: "
                            "lower them, or set ray.num_gpus=0 to predict on CPUs")  # fmt: skip
    if cpus < params.num_cpus * params.concurrency:
        raise BadInputError(f"ray.num_cpus={params.num_cpus:g} x ray.concurrency={params.concurrency} CPUs asked for, the Ray cluster has {cpus:g}: lower them")
    if cpus < params.num_cpus * params.concurrency + 1:
        logger.warning("The prediction actors take all %g CPUs of the Ray cluster: frames are refined only after every frame is predicted "
                       "(lower ray.concurrency or ray.num_cpus to overlap the two)", cpus)  # fmt: skip


def run_frames(
    jobs: list[FrameJob], trained: TrainedModel, inference: Any, finish: Callable[[FrameResult], dict], params: RayParams,
    description: str | None = None, on_row: Callable[[dict], None] | None = None,
) -> list[dict]:  # fmt: skip
    """Every frame of ``jobs`` through the two stages on the Ray cluster ``params.address``: one status row
    per frame (``image_id``, what ``finish`` returned or ``error``), in no set order. ``on_row`` sees each
    raw row as it arrives (the worker's pid under ``worker``). Fails, naming them, if frames are missing."""
    import ray  # noqa: PLC0415

    inference = plain(inference)
    batch_size = params.batch_size or int(inference.get("batch_size", 16))
    rows = batches_of(jobs, batch_size)
    statuses: list[dict] = []
    with ray_session(params):
        check_pool_fits(ray.cluster_resources(), params)
        dataset = ray.data.from_items(rows, override_num_blocks=max(1, min(len(rows), 32 * params.concurrency)))
        # Ray Data's defaults restart a dead actor and retry its batch, and retry a lost task
        dataset = dataset.map_batches(FramePredictor, fn_constructor_kwargs={"model": model_source(trained), "inference": inference},
                                      batch_size=1, compute=ray.data.ActorPoolStrategy(size=params.concurrency),
                                      num_cpus=params.num_cpus, num_gpus=params.num_gpus)  # fmt: skip
        dataset = dataset.map_batches(finish_batch, fn_kwargs={"finish": finish}, batch_size=params.refine_batch_size, num_cpus=1,
                                      compute=ray.data.TaskPoolStrategy(size=params.refine_concurrency))  # fmt: skip
        for row in progress_bar(dataset.iter_rows(), total=len(jobs), desc=description, unit="img", disable=description is None):
            if on_row is not None:
                on_row(row)
            statuses.append(json.loads(row["result"]))
    missing = sorted({j.image_id for j in jobs} - {s["image_id"] for s in statuses})
    if missing:
        raise RuntimeError(f"the Ray job returned no status for {len(missing)} frames ({', '.join(missing[:5])}): nothing was committed")
    return statuses
