"""Files and versioned folders written atomically (no Kedro): what the datasets and the stage lookup share.

A file is written under a temporary name and renamed into place; a versioned folder is a sortable
timestamp, complete once it has its final name.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path

VERSION_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}\.\d{2}\.\d{2}\.\d{6}Z$")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
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
