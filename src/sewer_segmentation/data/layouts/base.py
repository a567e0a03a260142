"""What a raw layout is, and what it reads into: ``Layout`` and ``Annotations``.

A raw dataset is ``data/01_raw/<dataset>/``: its frames in ``images/``, optionally box masks in ``masks/``,
and label files whose layout differs by tool (a VIA CSV, YOLO label files, ...). A layout reads its label
files (``LabelFiles``: text files of the raw folder, never outside it) into ``Annotations``: the
hand-drawn shapes per image file, the detection boxes per image (normalized), the class names, the class
filter's counts and every problem found, each naming its file and row. Images stay in ``images/`` and box
masks in ``masks/`` (or are drawn from the layout's boxes). No Kedro here.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from sewer_segmentation.data.annotations import Problem, Shape, YoloBox, class_is_kept
from sewer_segmentation.io.imaging import image_id_of


class LabelFiles(Protocol):
    """The label files of a raw dataset folder (``datasets.RawLabelFilesDataset`` loads one)."""

    def text(self, name: str) -> str | None:
        """A text file of the raw folder (``labels.csv``); None when it is not there."""

    def folder(self, name: str) -> dict[str, Callable[[], str]]:
        """The text files of a sub-folder (``labels/``), by name within it, loaded when called; {} when absent."""


@dataclass
class Annotations:
    """What a layout read. ``polygons`` are keyed by ``label_key`` of the image file name; ``boxes`` by
    image id (``image_id_of``), as normalized centre/size boxes of class ids named by ``box_class_names``."""

    polygons: dict[str, list[Shape]] = field(default_factory=dict)
    listed: list[str] = field(default_factory=list)  # image file names the labels name: each must exist in images/
    boxes: dict[str, list[YoloBox]] = field(default_factory=dict)
    box_class_names: dict[int, str] = field(default_factory=dict)
    problems: list[dict] = field(default_factory=list)
    kept_classes: dict[str, int] = field(default_factory=dict)
    dropped_classes: dict[str, int] = field(default_factory=dict)
    only_dropped_classes: dict[str, list[str]] = field(default_factory=dict)  # label_key -> classes of a frame labelled only with dropped ones
    polygons_by_id: dict[str, list[Shape]] = field(default_factory=dict)  # by image id, where labels name no extension (YOLO segmentation)

    def shapes_of(self, file_name: str) -> list[Shape]:
        """The hand-drawn shapes of the image file ``file_name`` (relative to images/); [] when it has none."""
        return self.polygons.get(label_key(file_name)) or self.polygons_by_id.get(image_id_of(file_name), [])


@dataclass(frozen=True)
class Layout:
    """A raw layout: which label files it reads (for docs and messages), whether they are there, and its reader."""

    files: str
    present: Callable[[LabelFiles], bool]
    read: Callable[[LabelFiles, object], Annotations]  # (label files, DataEngineeringParams)


class ClassTally:
    """The class filter (``data_engineering.classes``) with counts of what it kept and dropped."""

    def __init__(self, keep: list[str], drop: list[str]):
        self.keep, self.drop = keep, drop
        self.kept: Counter = Counter()
        self.dropped: Counter = Counter()

    def admits(self, name: str | None) -> bool:
        kept = class_is_kept(name, self.keep, self.drop)
        (self.kept if kept else self.dropped)[name or "unnamed"] += 1
        return kept


def label_key(name: str) -> str:
    """What a labels file's image name and an image file are matched by: Unicode NFC (macOS writes NFD),
    ``/`` for a Windows ``\\``, and a lower-case extension (``.JPG``). Nothing looser: a name that still
    differs (in the case of its stem, say) is reported, and that image left out, never demoted to the
    weak pool with its polygons lost."""
    name = unicodedata.normalize("NFC", name).replace("\\", "/")
    stem, dot, extension = name.rpartition(".")
    return f"{stem}.{extension.lower()}" if dot else name


def problems_as_dicts(problems: list[Problem]) -> list[dict]:
    return [p.as_dict() for p in problems]
