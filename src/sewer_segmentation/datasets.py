"""Kedro datasets of the project: images and masks, folders of them, optional raw files.

All writes are atomic: a file is written under a temporary name and renamed into place; a folder is
written as a whole under a temporary name and swapped in. A run killed at any moment leaves either the
previous content or the new one, never a mix.
"""

from __future__ import annotations

import base64
import html
import json
import os
import shutil
import uuid
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io.core import AbstractDataset, DatasetError
from kedro_datasets._typing import HTMLPreview, ImagePreview, JSONPreview, TablePreview  # kedro-viz's preview types (its docs name this module)
from kedro_datasets.partitions import PartitionedDataset

from sewer_segmentation.io.files import StagedFolder, StagingArea, atomic_write_bytes, new_version, remove_leftovers, version_dir
from sewer_segmentation.io.imaging import encode_image, read_file, resize_image, write_file


class ImageDataset(AbstractDataset[Any, Any]):
    """One image or mask file, loaded as a numpy array.

    Args:
        filepath: local path of the file.
        kind: ``image`` (RGB uint8), ``mask`` (binarized to 0/255 at ``threshold``) or
            ``soft_mask`` (grey levels kept).
        threshold: binarization threshold for ``kind: mask``.
    """

    def __init__(self, filepath: str, kind: str = "image", threshold: int = 128, metadata: dict | None = None):
        if kind not in ("image", "mask", "soft_mask"):
            raise DatasetError(f"ImageDataset kind must be image, mask or soft_mask, got {kind!r}")
        self._filepath = Path(filepath)
        self._kind = kind
        self._threshold = threshold
        self.metadata = metadata

    def load(self):
        return read_file(self._filepath, self._kind, self._threshold)

    def file_spec(self) -> dict[str, Any]:
        """Where and how this file loads (``io.imaging.read_file``'s arguments): what a Ray worker needs to
        read it itself."""
        return {"path": str(self._filepath), "kind": self._kind, "threshold": self._threshold}

    def save(self, data) -> None:
        write_file(self._filepath, data)

    def _exists(self) -> bool:
        return Path(self._filepath).is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "kind": self._kind}

    def preview(self, max_side: int = 800) -> ImagePreview:
        """kedro-viz's image preview: the file as a base64 PNG, at most ``max_side`` pixels a side."""
        image = self.load()
        scale = max_side / max(image.shape[:2])
        if scale < 1:
            image = resize_image(image, round(image.shape[0] * scale), round(image.shape[1] * scale))
        return ImagePreview(base64.b64encode(encode_image(image, ".png")).decode("ascii"))


class TextFileDataset(AbstractDataset[str, str]):
    """A UTF-8 text file; with ``optional: true`` a missing file loads as ``None`` instead of failing.
    With ``confine_to_parent: true`` a link to a file outside the file's own folder is refused (a raw
    dataset's ``labels.csv`` or ``data.yaml``), as ``FolderDataset`` confines the files of its folder."""

    def __init__(self, filepath: str, optional: bool = False, confine_to_parent: bool = False, metadata: dict | None = None):
        self._filepath = Path(filepath)
        self._optional = optional
        self._confine = confine_to_parent
        self.metadata = metadata

    def load(self) -> str | None:
        from sewer_segmentation.errors import BadInputError  # noqa: PLC0415

        path = Path(self._filepath)
        if not path.is_file():
            if self._optional:
                return None
            raise DatasetError(f"{self._filepath} does not exist")
        if self._confine and not path.resolve().is_relative_to(path.parent.resolve()):
            raise BadInputError(f"{path}: a link to {path.resolve()}, outside the dataset folder; copy the file in instead")
        data = path.read_bytes()
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise BadInputError(f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); save it as UTF-8, "
                                f"e.g. `iconv -f latin1 -t utf-8 {path.name} > fixed && mv fixed {path.name}`") from None  # fmt: skip

    def save(self, data: str) -> None:
        atomic_write_bytes(self._filepath, data.encode("utf-8"))

    def _exists(self) -> bool:
        return Path(self._filepath).is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "optional": self._optional, "confine_to_parent": self._confine}

    def preview(self) -> HTMLPreview:
        """kedro-viz's HTML preview: the text as it is (a report in Markdown, labels.csv)."""
        return HTMLPreview(f"<pre>{html.escape(self.load() or '')}</pre>")


class RawLabelFiles:
    """The label files of a raw dataset folder, as a layout reads them (``data.layouts.base.LabelFiles``):
    strict UTF-8, and a link leading out of the dataset folder is refused, naming the file."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def text(self, name: str) -> str | None:
        return TextFileDataset(str(self.root / name), optional=True, confine_to_parent=True).load()

    def folder(self, name: str) -> dict[str, Any]:
        return FolderDataset(path=str(self.root / name), dataset={"type": TextFileDataset}, optional=True, confine_to_parent=True).load()


class RawLabelFilesDataset(AbstractDataset[RawLabelFiles, None]):
    """Loads a ``RawLabelFiles`` of the raw dataset folder ``path`` (files are read when a layout asks); read-only."""

    def __init__(self, path: str, metadata: dict | None = None):
        self._path = path
        self.metadata = metadata

    def load(self) -> RawLabelFiles:
        return RawLabelFiles(self._path)

    def save(self, data) -> None:
        raise DatasetError("raw label files are never written by the project")

    def _describe(self) -> dict[str, Any]:
        return {"path": self._path}


class SyntheticDatasetFolders(AbstractDataset[Any, None]):
    """The bundled synthetic dataset: a raw dataset folder (in the layout its config names) and the true
    masks beside it. ``save(SyntheticConfig)`` generates both (``data/synthetic.py``: each written under a
    temporary name and renamed into place, so an interrupted generation is redone next time). Write-only:
    the catalog's raw datasets read what it wrote."""

    def __init__(self, path: str, ground_truth_path: str, metadata: dict | None = None):
        self._path, self._ground_truth_path = Path(path), Path(ground_truth_path)
        self.metadata = metadata

    def load(self) -> None:
        raise DatasetError(f"{self._path}: the synthetic dataset is read through the raw datasets (raw_images, raw_label_files)")

    def save(self, data) -> None:
        from sewer_segmentation.data.synthetic import write_dataset  # noqa: PLC0415 - the generator, only when it runs

        if self._ground_truth_path.exists() and not self._path.exists():
            shutil.rmtree(self._ground_truth_path)  # left from an earlier dataset: it must match the frames
        write_dataset(data, self._path, self._ground_truth_path)

    def _exists(self) -> bool:
        return self._path.exists()

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path), "ground_truth_path": str(self._ground_truth_path)}


class SampleFramesDataset(AbstractDataset[Any, None]):
    """A folder of sample frames for the predict pipeline (JPEG and PNG at several sizes, ``data/synthetic.py``):
    ``save(count)`` writes ``count`` frames under a temporary name and renames the folder into place.
    Write-only: ``inference_images`` reads them."""

    def __init__(self, path: str, metadata: dict | None = None):
        self._path = Path(path)
        self.metadata = metadata

    def load(self) -> None:
        raise DatasetError(f"{self._path}: sample frames are read through inference_images")

    def save(self, data: int) -> None:
        from sewer_segmentation.data.synthetic import write_inference_samples  # noqa: PLC0415

        write_inference_samples(self._path, count=int(data))

    def _exists(self) -> bool:
        return self._path.exists()

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}


class JSONFileDataset(AbstractDataset[Any, Any]):
    """A JSON file written atomically (reports are regenerated in place: never half-written)."""

    def __init__(self, filepath: str, indent: int | None = 2, metadata: dict | None = None):
        self._filepath = Path(filepath)
        self._indent = indent
        self.metadata = metadata

    def load(self) -> Any:
        return json.loads(self._filepath.read_text(encoding="utf-8"))

    def save(self, data: Any) -> None:
        atomic_write_bytes(self._filepath, json.dumps(data, indent=self._indent, default=_json_default).encode("utf-8"))

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}

    def preview(self) -> JSONPreview:
        """kedro-viz's JSON preview: the file's content."""
        return JSONPreview(json.dumps(self.load(), default=_json_default))


def _json_default(value: Any) -> Any:
    """numpy scalars and arrays in reports."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


#: Columns that hold file names or image ids: read back as text, never as numbers (``001.jpg`` has id
#: ``001``, which pandas would otherwise turn into the integer 1).
TEXT_COLUMNS = ("image_id", "class", "file", "source_file", "mask_source", "representative", "members", "image", "phash")


class CSVFileDataset(AbstractDataset[Any, Any]):
    """A pandas table as CSV (no index), written atomically; id and file-name columns load as text.
    ``missing_hint``: the command that writes the table, named in the error when it is missing;
    ``optional: true``: a missing table loads as None."""

    def __init__(self, filepath: str, metadata: dict | None = None, missing_hint: str | None = None, optional: bool = False):
        self._filepath = Path(filepath)
        self.metadata = metadata
        self._missing_hint = missing_hint
        self._optional = bool(optional)

    def load(self):
        import pandas as pd  # noqa: PLC0415

        if self._optional and not self._filepath.is_file():
            return None
        if self._missing_hint and not self._filepath.is_file():
            from sewer_segmentation.errors import MissingArtifactError  # noqa: PLC0415

            raise MissingArtifactError(f"{self._filepath} does not exist. Run `{self._missing_hint}` first.")

        text = dict.fromkeys(TEXT_COLUMNS, str)
        return pd.read_csv(self._filepath, dtype=text)

    def save(self, data) -> None:
        atomic_write_bytes(self._filepath, data.to_csv(index=False).encode("utf-8"))

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}

    def preview(self, nrows: int = 20) -> TablePreview:
        """kedro-viz's table preview: the first ``nrows`` rows (pandas' ``split`` layout)."""
        table = self.load()
        return TablePreview({} if table is None else table.head(nrows).to_dict(orient="split"))


class FolderDataset(PartitionedDataset):
    """A folder of files (Kedro ``PartitionedDataset``) with three additions.

    - ``optional: true``: a missing or empty folder loads as ``{}`` (raw folders a layout may not have).
    - ``may_be_empty: true``: a folder that was written empty loads as ``{}`` (a missing one still fails
      with ``missing_hint``): the weak pool of a dataset whose frames are all hand-labelled.
    - Saving is atomic: the whole folder is written under a temporary name and then swapped in, so the
      folder never mixes files of two runs and a killed run leaves the previous content intact.
    - ``missing_hint``: the command that makes the folder, named in the error when it is missing.
    - ``confine_to_parent: true``: files that are links leading outside the folder's parent (the raw
      dataset folder) fail to load, naming the file, like path escapes in labels.csv.
    - ``versioned_folders: true``: each save writes a new sub-folder ``<path>/<timestamp>/``; loading
      reads the newest complete one (or ``load_version``). Earlier versions are never touched.

    Only local paths are supported (atomic renames).
    """

    def __init__(
        self,
        path: str,
        dataset: Any,
        optional: bool = False,
        versioned_folders: bool = False,
        load_version: str | None = None,
        missing_hint: str | None = None,
        confine_to_parent: bool = False,
        may_be_empty: bool = False,
        **kwargs: Any,
    ):
        super().__init__(path=path, dataset=dataset, **kwargs)
        self._confine_to = str(Path(path).parent) if confine_to_parent else None
        self._missing_hint = missing_hint
        self._root = path
        self._optional = optional
        self._may_be_empty = may_be_empty
        self._versioned_folders = versioned_folders
        self._load_version = load_version

    # -- loading ---------------------------------------------------------------------------------
    def resolve_load_path(self) -> str | None:
        if not self._versioned_folders:
            return self._root
        folder = version_dir(self._root, self._load_version)
        return None if folder is None else str(folder)

    def load(self) -> dict[str, Any]:
        target = self.resolve_load_path()
        if target is None or not Path(target).is_dir() or not any(Path(target).iterdir()):
            if self._optional or (self._may_be_empty and target is not None and Path(target).is_dir()):
                return {}
            if self._missing_hint:
                from sewer_segmentation.errors import MissingArtifactError  # noqa: PLC0415

                if target is not None and Path(target).is_dir():  # written, but empty
                    raise MissingArtifactError(f"{target} is empty: the last `{self._missing_hint}` run put no images there "
                                               "(its data_report.md lists the files it left out, and why)")  # fmt: skip
                raise MissingArtifactError(f"no files in {target or self._root}. Run `{self._missing_hint}` first.")
            raise DatasetError(f"No files found in '{target or self._root}'")
        self._path = target
        try:
            partitions = super().load()
        finally:
            self._path = self._root
        return partitions if self._confine_to is None else self._confined(partitions, target)

    def _confined(self, partitions: dict[str, Any], folder: str) -> dict[str, Any]:
        """Partitions whose file (after following symlinks) lies outside ``confine_to`` load as an error
        naming the file, like the path escapes of labels.csv: the dataset must hold its own data."""
        root = os.path.realpath(self._confine_to)
        out = {}
        for pid, load in partitions.items():
            path = os.path.join(folder, pid + (self._filename_suffix or ""))
            real = os.path.realpath(path)
            if os.path.commonpath([root, real]) != root:
                out[pid] = _refuse(f"{path}: a link to {real}, outside the dataset folder {self._confine_to}; copy the file in instead")
            else:
                out[pid] = load
        return out

    # -- saving ----------------------------------------------------------------------------------
    def save(self, data: dict[str, Any] | StagedFolder) -> None:
        if isinstance(data, StagedFolder):
            self._commit(data.path)
            return
        for partition_id in data:
            if PurePosixPath(partition_id).is_absolute() or ".." in PurePosixPath(partition_id).parts:
                raise DatasetError(f"partition id {partition_id!r} would escape {self._root}")
        final = Path(self._root) / new_version() if self._versioned_folders else Path(self._root)
        final.parent.mkdir(parents=True, exist_ok=True)
        remove_leftovers(final.parent, None if self._versioned_folders else final.name)
        tmp = final.parent / f".{final.name}.{uuid.uuid4().hex}.tmp"
        tmp.mkdir()
        self._path = str(tmp)
        try:
            super().save(data)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        finally:
            self._path = self._root
        _swap_in(tmp, final)
        self._invalidate_caches()

    def _commit(self, staged: Path) -> None:
        """Rename a folder that workers wrote in place (``StagingArea.new_folder``) into the folder's place."""
        final = Path(self._root) / new_version() if self._versioned_folders else Path(self._root)
        if staged.parent.resolve() != final.parent.resolve() or not staged.is_dir():
            raise DatasetError(f"{staged} is not a staged folder of {self._root} (make it with this folder's staging dataset)")
        _swap_in(staged, final)
        self._invalidate_caches()

    def _exists(self) -> bool:
        target = self.resolve_load_path()
        return target is not None and Path(target).is_dir()

    def _describe(self) -> dict[str, Any]:
        return {**super()._describe(), "optional": self._optional, "versioned_folders": self._versioned_folders}


class RefinedMasksDataset(FolderDataset):
    """A round's refined masks (``refinement.masks.RefinedMasks``: soft mask and weight map per weak image),
    stored as ``masks/<id>.png`` and ``weights/<id>.png`` in a ``FolderDataset`` (atomic, versioned)."""

    def load(self):
        from sewer_segmentation.errors import BadInputError  # noqa: PLC0415 - datasets import no project logic at load
        from sewer_segmentation.refinement.masks import RefinedMasks  # noqa: PLC0415

        try:
            return RefinedMasks.from_partitions(super().load(), where=str(self.resolve_load_path()))
        except ValueError as exc:
            raise BadInputError(str(exc)) from None

    def save(self, data) -> None:
        super().save(data if isinstance(data, StagedFolder) else data.to_partitions())


class StagingAreaDataset(AbstractDataset[Any, None]):
    """Where Ray workers write a folder's next content (``io.files.StagingArea``): give it the folder's
    ``path`` (and ``versioned_folders``); the node writes through it and returns a ``StagedFolder``, which
    the folder's own dataset commits with one rename. Loading makes nothing on disk."""

    def __init__(self, path: str, versioned_folders: bool = False, metadata: dict | None = None):
        self._path, self._versioned = path, versioned_folders
        self.metadata = metadata

    def load(self) -> StagingArea:
        return StagingArea(self._path, self._versioned)

    def save(self, data) -> None:
        raise DatasetError("a staging area is read only: save the StagedFolder to the folder's own dataset")

    def _describe(self) -> dict[str, Any]:
        return {"path": self._path, "versioned_folders": self._versioned}


def _refuse(message: str):
    def load():
        from sewer_segmentation.errors import BadInputError  # noqa: PLC0415

        raise DatasetError(message) from BadInputError(message)

    return load


def _swap_in(tmp: Path, final: Path) -> None:
    """Move the finished folder ``tmp`` to ``final``, replacing what was there."""
    if not final.exists():
        os.replace(tmp, final)
        return
    trash = final.parent / f".{final.name}.{uuid.uuid4().hex}.old"
    os.replace(final, trash)
    os.replace(tmp, final)
    shutil.rmtree(trash, ignore_errors=True)


class SegmentationModelDataset(AbstractDataset):
    """A trained model, versioned: ``<path>/<timestamp>/{model.safetensors, model_config.json}``.

    - Saving writes a new version (never overwrites) in a temporary folder renamed into place, so only
      complete versions exist; with ``log_to_mlflow`` the model is also logged as an MLflow pyfunc model
      ``<artifact_path>_pyfunc`` (TorchScript, ``tracking/registry.py``) in the stage's child run,
      registered as ``registered_model_name`` (aliases ``@baseline``, ``@round_<r>`` and ``@best``);
      ``registry.load_logged_model`` reads it back.
    - Loading reads the newest version (or ``load_version``). When none exists the error says which
      command makes one (``missing_hint``).
    """

    def __init__(
        self,
        path: str,
        load_version: str | None = None,
        log_to_mlflow: bool = False,
        artifact_path: str = "model",
        missing_hint: str | None = None,
        registered_model_name: str | None = None,
        metadata: dict | None = None,
    ):
        self._root = path
        self._load_version = load_version
        self._log_to_mlflow = log_to_mlflow
        self._artifact_path = artifact_path
        self._registered_model_name = registered_model_name
        self._missing_hint = missing_hint
        self.metadata = metadata

    def load(self):
        from sewer_segmentation.errors import MissingArtifactError  # noqa: PLC0415
        from sewer_segmentation.modelling.inference import load_trained_model  # noqa: PLC0415

        folder = version_dir(self._root, self._load_version)
        if folder is None or not folder.is_dir():
            hint = f" Run `{self._missing_hint}` first." if self._missing_hint else ""
            raise MissingArtifactError(f"no trained model in {self._root}.{hint}")
        return load_trained_model(folder)

    def save(self, data) -> None:
        from sewer_segmentation.modelling.models import save_model  # noqa: PLC0415

        version = new_version()
        final = Path(self._root) / version
        final.parent.mkdir(parents=True, exist_ok=True)
        remove_leftovers(final.parent)
        tmp = final.parent / f".{version}.{uuid.uuid4().hex}.tmp"
        try:
            extra = {"image_size": data.image_size, "metadata": {k: v for k, v in data.metadata.items() if k != "history"}}
            save_model(data.model, data.model_config, tmp, extra=extra)
            os.replace(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if self._log_to_mlflow:
            import mlflow  # noqa: PLC0415

            if mlflow.active_run() is not None:
                mlflow.set_tag(f"{self._artifact_path}.version", version)
                self._log_pyfunc(data, version)

    def _log_pyfunc(self, data, version: str) -> None:
        """The model as an MLflow pyfunc model in its stage's child run, registered, with the registry
        aliases updated. Only this copy goes to MLflow: the safetensors files stay in the project's folder."""
        import mlflow  # noqa: PLC0415

        from sewer_segmentation.tracking.registry import log_pyfunc_model, update_aliases  # noqa: PLC0415
        from sewer_segmentation.tracking.runs import stage_run  # noqa: PLC0415

        stage = Path(self._root).name
        tags = {"stage": stage, "model_version": version}
        score = data.metadata.get("best_validation_score")
        if score is not None:
            tags["validation_score"] = f"{float(score):.4f}"
        with stage_run(stage):
            mlflow.set_tag("model_version", version)
            log_pyfunc_model(data, f"{self._artifact_path}_pyfunc", self._registered_model_name, tags)
        if self._registered_model_name:
            update_aliases(self._registered_model_name, Path(self._root).parent)

    def _exists(self) -> bool:
        folder = version_dir(self._root, self._load_version)
        return folder is not None and folder.is_dir()

    def _describe(self) -> dict[str, Any]:
        return {"path": self._root, "load_version": self._load_version, "log_to_mlflow": self._log_to_mlflow}


class SavedStagesDataset(AbstractDataset):
    """Every stage saved under ``models_root`` (its newest version), as ``{stage: () -> TrainedModel}`` in
    stage order: a model is read only when its loader is called. Read-only."""

    def __init__(self, models_root: str, metadata: dict | None = None):
        self._models_root = models_root
        self.metadata = metadata

    def load(self) -> dict:
        from sewer_segmentation.io.stages import saved_stages  # noqa: PLC0415
        from sewer_segmentation.modelling.inference import load_trained_model  # noqa: PLC0415 - torch, only when loaded
        from sewer_segmentation.stage import Stage  # noqa: PLC0415

        saved = sorted(saved_stages(self._models_root).items(), key=lambda item: Stage.parse(item[0]))
        return {stage: partial(load_trained_model, folder) for stage, folder in saved}

    def save(self, data) -> None:
        from sewer_segmentation.errors import ConfigurationError  # noqa: PLC0415

        raise ConfigurationError("the saved stages are read from the models folder; they are written one by one by each stage")

    def _describe(self) -> dict[str, Any]:
        return {"models_root": self._models_root}


class RefiningModelDataset(AbstractDataset):
    """Loads the model a round refines with and starts from (``best_model_before``); read-only. With
    ``up_to_round``, the newest stage up to and including round ``round`` instead (what ``suggest_labels``
    ranks the weak pool with)."""

    def __init__(self, models_root: str, round: int | str, up_to_round: bool = False, metadata: dict | None = None):  # noqa: A002
        self._models_root = models_root
        self._round = round
        self._up_to_round = up_to_round
        self.metadata = metadata

    def load(self):
        from sewer_segmentation.io.stages import best_model_before, newest_stage_up_to  # noqa: PLC0415 - torch and the models, only when loaded

        pick = newest_stage_up_to if self._up_to_round else best_model_before
        stage, folder = pick(self._models_root, self._round)
        trained = SegmentationModelDataset(path=str(folder.parent), load_version=folder.name).load()
        trained.metadata["stage"] = stage
        return trained

    def save(self, data) -> None:
        from sewer_segmentation.errors import ConfigurationError  # noqa: PLC0415

        raise ConfigurationError("the refining model is chosen from saved models; it is never written")

    def _describe(self) -> dict[str, Any]:
        return {"models_root": self._models_root, "round": self._round}
