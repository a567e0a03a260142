import numpy as np
import pytest
from kedro.io.core import DatasetError

from sewer_segmentation.datasets import FolderDataset, ImageDataset, TextFileDataset
from sewer_segmentation.errors import BadInputError
from sewer_segmentation.io.files import list_versions

MASKS = {"type": "sewer_segmentation.datasets.ImageDataset", "kind": "mask"}


def mask(value):
    return np.full((4, 5), value, np.uint8)


def test_image_round_trip_and_clear_error_on_corrupt_file(tmp_path):
    image = np.random.default_rng(0).integers(0, 255, (6, 7, 3), dtype=np.uint8)
    ds = ImageDataset(str(tmp_path / "a.png"))
    ds.save(image)
    assert (ds.load() == image).all()
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(DatasetError, match="bad.jpg: unreadable") as err:
        ImageDataset(str(tmp_path / "bad.jpg")).load()
    assert isinstance(err.value.__cause__, BadInputError)


def test_truncated_jpeg_is_detected(tmp_path):
    image = np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    ImageDataset(str(tmp_path / "full.jpg")).save(image)
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match="cut.jpg: unreadable or truncated image"):
        ImageDataset(str(tmp_path / "cut.jpg")).load()


def test_folder_save_replaces_content_without_leaving_stale_files(tmp_path):
    ds = FolderDataset(path=str(tmp_path / "masks"), dataset=MASKS, filename_suffix=".png")
    ds.save({"a": mask(255), "b": mask(0)})
    ds.save({"c": mask(255)})
    assert sorted(ds.load()) == ["c"]
    assert [p.name for p in tmp_path.iterdir()] == ["masks"]  # no temporary folders left behind


def test_a_failed_save_leaves_the_previous_content_intact(tmp_path):
    ds = FolderDataset(path=str(tmp_path / "masks"), dataset=MASKS, filename_suffix=".png")
    ds.save({"a": mask(255), "b": mask(255)})

    def boom():
        raise RuntimeError("killed mid-save")

    with pytest.raises(DatasetError, match="killed mid-save"):
        ds.save({"a": mask(0), "z": boom})
    loaded = ds.load()
    assert sorted(loaded) == ["a", "b"] and loaded["a"]().max() == 255
    assert [p.name for p in tmp_path.iterdir()] == ["masks"]


def test_versioned_folders_keep_every_version_and_load_the_newest(tmp_path):
    root = tmp_path / "hybrid"
    ds = FolderDataset(path=str(root), dataset=MASKS, filename_suffix=".png", versioned_folders=True)
    ds.save({"a": mask(0)})
    first = list_versions(root)
    (root / first[0] / "a.png").stat()
    ds.save({"a": mask(255), "b": mask(255)})
    versions = list_versions(root)
    assert len(versions) == 2 and versions[0] == first[0]
    assert sorted(ds.load()) == ["a", "b"]
    pinned = FolderDataset(path=str(root), dataset=MASKS, filename_suffix=".png", versioned_folders=True, load_version=first[0])
    assert pinned.load()["a"]().max() == 0
    # an incomplete (temporary) folder is never taken for a version
    (root / ".2099-01-01T00.00.00.000000Z.abc.tmp").mkdir()
    assert list_versions(root) == versions


def test_optional_folder_and_file(tmp_path):
    assert FolderDataset(path=str(tmp_path / "none"), dataset=MASKS, optional=True).load() == {}
    with pytest.raises(DatasetError, match="No files found"):
        FolderDataset(path=str(tmp_path / "none"), dataset=MASKS).load()
    assert TextFileDataset(str(tmp_path / "labels.csv"), optional=True).load() is None
    with pytest.raises(DatasetError, match="does not exist"):
        TextFileDataset(str(tmp_path / "labels.csv")).load()


def test_partition_ids_cannot_escape_the_folder(tmp_path):
    ds = FolderDataset(path=str(tmp_path / "masks"), dataset=MASKS, filename_suffix=".png")
    with pytest.raises(DatasetError, match="escape"):
        ds.save({"../evil": mask(0)})


def test_reports_are_written_atomically_and_round_trip(tmp_path):
    import pandas as pd

    from sewer_segmentation.datasets import CSVFileDataset, JSONFileDataset

    report = JSONFileDataset(str(tmp_path / "r" / "metrics.json"))
    report.save({"iou": np.float32(0.5), "ids": np.arange(2)})
    assert report.load() == {"iou": 0.5, "ids": [0, 1]}
    table = CSVFileDataset(str(tmp_path / "r" / "t.csv"))
    table.save(pd.DataFrame({"a": [1, 2]}))
    assert table.load().a.tolist() == [1, 2]
    with pytest.raises(DatasetError):  # an unserializable report fails before touching the old file
        report.save({"bad": object()})
    assert report.load()["iou"] == 0.5
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["metrics.json", "t.csv"]


def test_refined_masks_round_trip_as_mask_and_weight_per_image(tmp_path):
    from sewer_segmentation.datasets import RefinedMasksDataset  # noqa: PLC0415
    from sewer_segmentation.refinement.masks import RefinedMasks  # noqa: PLC0415

    soft = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    weight = np.full((3, 4), 255, np.uint8)
    dataset = RefinedMasksDataset(path=str(tmp_path / "round_1"), versioned_folders=True, filename_suffix=".png",
                                  dataset={"type": "sewer_segmentation.datasets.ImageDataset", "kind": "soft_mask"})  # fmt: skip
    dataset.save(RefinedMasks.of({"001": (soft, weight), "b c": (255 - soft, weight // 2)}))
    version = list_versions(str(tmp_path / "round_1"))[0]
    assert sorted(p.name for p in (tmp_path / "round_1" / version).iterdir()) == ["masks", "weights"]
    loaded = dataset.load()
    assert loaded.ids() == ["001", "b c"]
    assert np.array_equal(loaded.mask("001"), soft) and np.array_equal(loaded.weights["b c"](), weight // 2)
    (tmp_path / "round_1" / version / "weights" / "001.png").unlink()  # a weight map lost
    with pytest.raises(DatasetError, match="001 lack a mask or a weight map") as failure:
        RefinedMasksDataset(path=str(tmp_path / "round_1"), versioned_folders=True, filename_suffix=".png",
                            dataset={"type": "sewer_segmentation.datasets.ImageDataset", "kind": "soft_mask"}).load()  # fmt: skip
    assert isinstance(failure.value.__cause__, BadInputError)  # one line from the CLI, naming the folder


def test_the_synthetic_dataset_and_sample_frames_are_saved_through_their_datasets(tmp_path):
    from sewer_segmentation.data.synthetic import SyntheticConfig  # noqa: PLC0415
    from sewer_segmentation.datasets import SampleFramesDataset, SyntheticDatasetFolders  # noqa: PLC0415

    stale = tmp_path / "synthetic_ground_truth"
    stale.mkdir()
    (stale / "left_from_another_dataset.png").write_bytes(b"x")
    synthetic = SyntheticDatasetFolders(path=str(tmp_path / "synthetic"), ground_truth_path=str(stale))
    assert not synthetic.exists()
    synthetic.save(SyntheticConfig(num_images=6, num_hand_labelled=3, width=64, height=64, seed=1))
    assert synthetic.exists() and len(list((tmp_path / "synthetic/images").iterdir())) == 6
    assert sorted(p.name for p in stale.iterdir()) == sorted(f"{p.stem}.png" for p in (tmp_path / "synthetic/images").iterdir())
    with pytest.raises(DatasetError, match="read through the raw datasets"):
        synthetic.load()

    samples = SampleFramesDataset(path=str(tmp_path / "inference"))
    samples.save(3)
    assert samples.exists() and len(list((tmp_path / "inference").iterdir())) == 3


def test_hooks_find_a_dataset_location_in_the_catalog_configuration_inside_wrappers():
    from sewer_segmentation.hooks.context import dataset_location  # noqa: PLC0415

    conf = {
        "table": {"type": "pandas.CSVDataset", "filepath": "data/a.csv"},
        "folder": {"type": "FolderDataset", "path": "data/b"},
        "wrapped": {"type": "kedro_mlflow.io.artifacts.MlflowArtifactDataset", "dataset": {"type": "x", "filepath": "data/c.png"}},
        "memory": {"type": "MemoryDataset"},
    }
    assert [dataset_location(conf, n) for n in ("table", "folder", "wrapped", "memory", "absent")] == ["data/a.csv", "data/b", "data/c.png", None, None]


def test_kedro_viz_previews_of_the_project_datasets(tmp_path):
    """kedro-viz shows a dataset's ``preview()`` by its return type's name: reports as text, tables, JSON, images."""
    import base64  # noqa: PLC0415
    import inspect  # noqa: PLC0415
    import json  # noqa: PLC0415

    import pandas as pd  # noqa: PLC0415

    from sewer_segmentation.datasets import CSVFileDataset, JSONFileDataset  # noqa: PLC0415
    from sewer_segmentation.io.imaging import decode_image  # noqa: PLC0415

    text = TextFileDataset(filepath=str(tmp_path / "report.md"))
    text.save("# Report\n<b>3</b> frames")
    table = CSVFileDataset(filepath=str(tmp_path / "t.csv"))
    table.save(pd.DataFrame({"image_id": [f"{i:03d}" for i in range(30)], "iou": [i / 30 for i in range(30)]}))
    report = JSONFileDataset(filepath=str(tmp_path / "m.json"))
    report.save({"mean_iou": 0.5, "per_split": {"eval": 12}})
    image = ImageDataset(filepath=str(tmp_path / "gallery.png"))
    image.save(np.full((1200, 600, 3), 200, np.uint8))

    assert text.preview() == "<pre># Report\n&lt;b&gt;3&lt;/b&gt; frames</pre>"
    rows = table.preview(nrows=5)
    assert rows["columns"] == ["image_id", "iou"] and [r[0] for r in rows["data"]] == ["000", "001", "002", "003", "004"]
    assert json.loads(report.preview()) == {"mean_iou": 0.5, "per_split": {"eval": 12}}
    shown = decode_image(base64.b64decode(image.preview()), "preview")
    assert shown.shape == (800, 400, 3) and int(shown[0, 0, 0]) == 200  # the long side brought to 800 px
    names = {type(d).__name__: str(inspect.signature(d.preview).return_annotation) for d in (text, table, report, image)}
    assert names == {"TextFileDataset": "HTMLPreview", "CSVFileDataset": "TablePreview", "JSONFileDataset": "JSONPreview",
                     "ImageDataset": "ImagePreview"}  # fmt: skip
