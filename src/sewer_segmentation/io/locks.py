"""One run at a time per dataset and stage: a lock file per (dataset, stage), with who holds it.

Two identical ``baseline_training`` runs would otherwise share one resume checkpoint, and the second
would "resume" from the first's live file. The lock is an OS file lock (``filelock``): it is released
when the process ends, however it ends, so a killed run never leaves a stale lock behind. A note beside
the lock file says who holds it (process, host, since when), for the message the second run prints.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from filelock import FileLock, Timeout

from sewer_segmentation.errors import RunLockedError


class StageLock:
    """The lock of ``stage`` of ``dataset`` under ``root`` (``data/06_models``): ``acquire`` waits up
    to ``wait_seconds`` (0: not at all), then raises ``RunLockedError`` naming the holder."""

    def __init__(self, root: str | Path, dataset: str, stage: str, wait_seconds: float = 0.0):
        folder = Path(root) / dataset / ".locks"
        self.path = folder / f"{stage}.lock"
        self.note = folder / f"{stage}.holder.json"
        self.stage, self.dataset, self.wait_seconds = stage, dataset, float(wait_seconds)
        self._lock: FileLock | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.path), timeout=self.wait_seconds)
        try:
            lock.acquire()
        except Timeout:
            raise RunLockedError(
                f"another run is training {self.stage} of dataset {self.dataset} ({self.holder()}; lock {self.path}). "
                "Wait for it to end, or pass --params=run_lock_wait_seconds=600 to wait up to 10 minutes"
            ) from None
        self._lock = lock
        self.note.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}))

    def holder(self) -> str:
        try:
            note = json.loads(self.note.read_text())
            return f"process {note['pid']} on {note['host']}, since {note['since']}"
        except (OSError, ValueError, KeyError):
            return "holder unknown"

    def release(self) -> None:
        if self._lock is not None:
            self.note.unlink(missing_ok=True)
            self._lock.release()
            self._lock = None
