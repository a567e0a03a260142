"""engine: ray on a local Ray cluster: the same bytes as the local engine, failures named, dead actors replaced."""

import os
import signal
import sys
import threading
import time
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import ray  # an extra, installed for the tests (pyproject's dev extra): a missing Ray fails here, never skips

from sewer_segmentation.data.synthetic import SyntheticConfig, box_mask, draw_frame
from sewer_segmentation.datasets import FolderDataset, ImageDataset, RefinedMasksDataset
from sewer_segmentation.errors import BadInputError
from sewer_segmentation.io.files import StagedFolder, StagingArea
from sewer_segmentation.io.imaging import encode_image
from sewer_segmentation.modelling.inference import load_trained_model
from sewer_segmentation.modelling.models import build_model, save_model
from sewer_segmentation.pipelines.mask_refinement.nodes import predict_pool, write_refined_frame
from sewer_segmentation.refinement.masks import RefinedMasks
from sewer_segmentation.refinement.methods import refine_pool
from sewer_segmentation.refinement.registry import REFINEMENT_METHODS
from sewer_segmentation.scaling.config import RayParams
from sewer_segmentation.scaling.ray_engine import FrameJob, check_pool_fits, file_of, ray_session, run_frames

pytestmark = pytest.mark.slow
INFERENCE = {"batch_size": 4, "precision": "32", "flip_tta": False}
PARAMS = RayParams(concurrency=1, num_cpus=1, refine_batch_size=3)


@pytest.fixture(scope="module")
def cluster():
    with ray_session(PARAMS):  # one local cluster for the module (run_frames then leaves it running)
        yield


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    """13 frames of 64x96 (a last batch of 1) as files, and an untrained model saved as a stage is."""
    root = tmp_path_factory.mktemp("pool")
    for sub in ("images", "box_masks"):
        (root / sub).mkdir()
    for i in range(13):
        frame = draw_frame(SyntheticConfig(width=96, height=64, seed=5), i)
        (root / "images" / f"f{i:02d}.png").write_bytes(encode_image(frame.image, ".png"))
        (root / "box_masks" / f"f{i:02d}.png").write_bytes(encode_image(box_mask(frame.boxes, frame.truth.shape), ".png"))
    config = {"architecture": "Unet", "encoder_name": "resnet18", "encoder_weights": None, "in_channels": 3, "classes": 1,
              "args": {"decoder_channels": [32, 16, 16, 8, 8]}}  # fmt: skip
    save_model(build_model(config), config, root / "model", {"image_size": {"mode": "resize", "height": 64, "width": 96}})
    images = FolderDataset(str(root / "images"), {"type": ImageDataset, "kind": "image"}, filename_suffix=".png").load()
    boxes = FolderDataset(str(root / "box_masks"), {"type": ImageDataset, "kind": "mask"}, filename_suffix=".png").load()
    return root, load_trained_model(root / "model"), images, boxes


def files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*.png"))}


def refine_on_ray(root, trained, images, boxes, method, name, params=PARAMS, on_row=None):
    jobs = [FrameJob(i, file_of(images[i], "frames"), {"box": file_of(boxes[i], "box masks")}) for i in sorted(images)]
    folder = StagingArea(str(root / name), versioned=True).new_folder()
    statuses = run_frames(jobs, trained, INFERENCE, partial(write_refined_frame, method=method, params={}, folder=str(folder)), params, on_row=on_row)
    return folder, statuses


def test_every_refinement_method_writes_the_same_bytes_on_ray_as_locally(cluster, pool, tmp_path):
    root, trained, images, boxes = pool
    probabilities, failures = predict_pool(trained, images, INFERENCE)
    assert failures.empty
    for method in REFINEMENT_METHODS:
        local = tmp_path / f"local-{method}"
        RefinedMasksDataset(str(local), {"type": ImageDataset, "kind": "soft_mask"}, filename_suffix=".png").save(
            RefinedMasks.of(refine_pool(probabilities, images, boxes, method, {})))
        folder, statuses = refine_on_ray(root, trained, images, boxes, method, f"ray-{method}")
        assert [s for s in statuses if "error" in s] == []
        assert files(folder) == files(local), method
        assert len(files(folder)) == 26  # a mask and a weight map per frame
    # a threshold between 0 and 1 makes a mask that is neither empty nor full: the comparison has content
    some = np.frombuffer(files(tmp_path / "local-threshold")["masks/f00.png"], np.uint8)
    assert some.size > 0


def test_a_frame_that_fails_is_named_and_left_out_and_the_others_are_written(cluster, pool, tmp_path):
    root, trained, images, boxes = pool
    broken = tmp_path / "broken"
    (broken / "images").mkdir(parents=True)
    (broken / "box_masks").mkdir()
    for i, load in images.items():
        source = Path(file_of(load, "frames")["path"])
        (broken / "images" / source.name).write_bytes(b"not a png" if i == "f03" else source.read_bytes())
        if i != "f07":  # f07 has no box mask: it fails in the second stage
            (broken / "box_masks" / source.name).write_bytes(Path(file_of(boxes[i], "box masks")["path"]).read_bytes())
    images = FolderDataset(str(broken / "images"), {"type": ImageDataset, "kind": "image"}, filename_suffix=".png").load()
    jobs = [FrameJob(i, file_of(images[i], "frames"), {"box": {"path": str(broken / "box_masks" / f"{i}.png"), "kind": "mask", "threshold": 128}})
            for i in sorted(images)]  # fmt: skip
    folder = StagingArea(str(tmp_path / "out"), versioned=True).new_folder()
    statuses = run_frames(jobs, trained, INFERENCE, partial(write_refined_frame, method="threshold", params={}, folder=str(folder)), PARAMS)
    errors = {s["image_id"]: s["error"] for s in statuses if "error" in s}
    assert sorted(errors) == ["f03", "f07"]
    _, local = predict_pool(trained, images, INFERENCE)  # the local engine names the unreadable frame in the same words
    assert errors["f03"] == local.set_index("image_id").loc["f03", "error"] == "unreadable: unreadable image (not a JPEG, PNG or BMP file, or corrupt header)"
    assert "f07.png" in errors["f07"]
    written = {p.stem for p in (folder / "masks").iterdir()}
    assert written == set(images) - {"f03", "f07"}


def prediction_actor_pids() -> list[int]:
    """Processes of this machine whose title (Ray sets it) names the prediction actor."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and b"FramePredictor" in (entry / "cmdline").read_bytes():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def test_a_killed_prediction_actor_is_replaced_and_every_frame_still_comes_back(cluster, pool):
    root, trained, images, boxes = pool
    many = {f"{i}-{k}": load for k in range(4) for i, load in images.items()}  # 52 frames, one per call: the kill lands mid-job
    many_boxes = {f"{i}-{k}": load for k in range(4) for i, load in boxes.items()}
    killed: list[int] = []
    seen: set[int] = set()

    def kill_the_actor_once_it_works():
        deadline = time.time() + 120
        while not killed and time.time() < deadline:
            pids = prediction_actor_pids()
            if pids:
                time.sleep(0.3)  # inside its first calls
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
            time.sleep(0.02)

    killer = threading.Thread(target=kill_the_actor_once_it_works, daemon=True)
    killer.start()
    params = RayParams(concurrency=1, num_cpus=1, refine_batch_size=1, batch_size=1)
    folder, statuses = refine_on_ray(root, trained, many, many_boxes, "threshold", "killed", params, on_row=lambda row: seen.add(int(row["worker"])))
    killer.join()
    assert killed, "the prediction actor was never seen running"
    assert sorted(s["image_id"] for s in statuses if "error" not in s) == sorted(many)
    assert len(files(folder)) == 2 * len(many)
    assert seen - set(killed), "no frame came from the restarted actor"


def test_the_staged_version_is_committed_by_one_rename_and_a_failed_job_leaves_no_version(pool, tmp_path):
    root = tmp_path / "hybrid"
    dataset = RefinedMasksDataset(str(root), {"type": ImageDataset, "kind": "soft_mask"}, versioned_folders=True, filename_suffix=".png")
    dataset.save(RefinedMasks.of({"a": (np.zeros((4, 4), np.uint8), np.full((4, 4), 255, np.uint8))}))
    first = sorted(p.name for p in root.iterdir())
    staged = StagingArea(str(root), versioned=True).new_folder()
    (staged / "masks").mkdir()
    (staged / "weights").mkdir()
    (staged / "masks/b.png").write_bytes(encode_image(np.full((4, 4), 9, np.uint8)))
    (staged / "weights/b.png").write_bytes(encode_image(np.full((4, 4), 255, np.uint8)))
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) == first  # not a version until committed
    dataset.save(StagedFolder(staged))
    assert dataset.load().ids() == ["b"] and int(dataset.load().mask("b")[0, 0]) == 9
    # a staged folder a killed run left behind is cleared by the next staging; earlier versions stay
    leftover = StagingArea(str(root), versioned=True).new_folder()
    StagingArea(str(root), versioned=True).new_folder()
    assert not leftover.exists() and len([p for p in root.iterdir() if not p.name.startswith(".")]) == 2
    with pytest.raises(Exception, match="not a staged folder"):
        dataset.save(StagedFolder(tmp_path))


def test_a_pool_the_cluster_cannot_hold_is_refused_before_it_waits_forever():
    with pytest.raises(BadInputError, match="GPUs asked for, the Ray cluster has 0"):
        check_pool_fits({"CPU": 8.0}, RayParams(num_gpus=1))
    with pytest.raises(BadInputError, match="CPUs asked for, the Ray cluster has 2"):
        check_pool_fits({"CPU": 2.0}, RayParams(concurrency=3))
    check_pool_fits({"CPU": 8.0, "GPU": 2.0}, RayParams(num_gpus=1, concurrency=2))


def test_without_ray_installed_engine_ray_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(BadInputError, match=r'pip install -e "\.\[ray\]"'), ray_session(PARAMS):
        pass


def test_ray_is_a_real_dependency_of_these_tests():
    assert ray.__version__


def test_a_cluster_that_cannot_be_reached_is_one_line_naming_the_address(monkeypatch):
    def unreachable(**kwargs):
        raise ConnectionError("Could not find any running Ray instance.\nmore details")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", unreachable)
    with pytest.raises(BadInputError, match=r"^ray.address=auto: no Ray cluster there \(Could not find any running Ray instance.\). Start one"), \
            ray_session(RayParams(address="auto")):  # fmt: skip
        pass
