"""Files and versioned folders written atomically (no Kedro): what the datasets and the stage lookup share.

A file is written under a temporary name and renamed into place; a versioned folder is a sortable
timestamp, complete once it has its final name.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

VERSION_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}\.\d{2}\.\d{2}\.\d{6}Z$")


#: Below this much free space a failed write is taken for a full disk (torch and safetensors report one as
#: ``RuntimeError: unexpected pos`` or a short write, not as ENOSPC).
FULL_DISK_BYTES = 64 * 2**20


def _existing_parent(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


@contextmanager
def explaining_a_full_disk(path: str | Path):
    """Turn a write failure on a full disk into one line naming where space ran out; anything else as it was."""
    try:
        yield
    except (OSError, RuntimeError) as exc:
        where = _existing_parent(Path(path).absolute())
        free = shutil.disk_usage(where).free
        if getattr(exc, "errno", None) == errno.ENOSPC or free < FULL_DISK_BYTES:
            from sewer_segmentation.errors import StorageFullError  # noqa: PLC0415

            raise StorageFullError(f"no space left on the disk holding {where} ({free / 2**20:.0f} MB free) while writing {Path(path).name}: "
                                   "free some space (older versions under data/06_models/ and data/04_feature/ can go) and run "
                                   "the same command again; earlier results are intact") from exc  # fmt: skip
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with explaining_a_full_disk(path):
            tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def remove_leftovers(folder: Path, target: str | None = None) -> None:
    """Delete temporary siblings a killed run left in ``folder``: ``.<target>.<id>.tmp``/``.old`` folders
    (or, with ``target=None``, those of any version). Runs before a new save of the same output."""
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        name = path.name
        if not name.startswith(".") or not name.endswith((".tmp", ".old")):
            continue
        stem = name[1:].rsplit(".", 2)[0]
        if (target is None and VERSION_PATTERN.match(stem)) or stem == target:
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)


def new_version() -> str:
    """A sortable timestamp, like Kedro's dataset versions but with microseconds (no collisions)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H.%M.%S.%fZ")


def version_dir(root: str | Path, load_version: str | None = None) -> Path | None:
    """``root/<load_version>``, or the newest complete version in ``root``; None when there is none."""
    if load_version:
        return Path(root) / load_version
    versions = list_versions(root)
    return Path(root) / versions[-1] if versions else None


def list_versions(folder: str | Path) -> list[str]:
    """Complete versions in ``folder``, oldest first (incomplete ones still carry a temporary name)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and VERSION_PATTERN.match(p.name))


# --------------------------------------------------------------------------------------------------
# Folders written in place by other processes (Ray workers), then committed by one rename
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StagedFolder:
    """A folder's complete new content, already written (by Ray workers) into ``path``, a temporary sibling
    of the folder; saving it to the folder's dataset renames it into place (the commit)."""

    path: Path


@dataclass(frozen=True)
class StagingArea:
    """Where workers may write a folder's next content: ``new_folder()`` makes a fresh temporary sibling of
    ``root`` (inside it, for versioned folders), named so that the next save of the folder clears it if the
    run dies before the commit. Nothing is made until asked for (the local engine never asks)."""

    root: str
    versioned: bool = False

    def new_folder(self) -> Path:
        root = Path(self.root)
        parent, name = (root, new_version()) if self.versioned else (root.parent, root.name)
        parent.mkdir(parents=True, exist_ok=True)
        remove_leftovers(parent, None if self.versioned else name)
        folder = parent / f".{name}.{uuid.uuid4().hex}.tmp"
        folder.mkdir()
        return folder


@contextmanager
def staged_folders(*areas: StagingArea):
    """A new folder in each staging area for the block; all removed if the block fails (nothing half-written
    stays behind to be mistaken for output), kept for the datasets to commit when it succeeds."""
    folders = [area.new_folder() for area in areas]
    try:
        yield folders
    except BaseException:
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
        raise
