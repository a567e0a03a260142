"""Progress bars on a terminal only.

Written to a log file (CI, ``nohup``, ``kedro run > run.log``), a bar redrawn many times a second turns
into one very long line of carriage returns; there the logs say what happened instead (node timings,
one line per validation during training).
"""

from __future__ import annotations

import sys

from tqdm.auto import tqdm


def on_terminal() -> bool:
    return sys.stderr.isatty()


def progress_bar(iterable=None, **kwargs):
    """``tqdm`` that draws only on a terminal (an explicit ``disable=True`` still wins)."""
    kwargs["disable"] = bool(kwargs.get("disable")) or not on_terminal()
    return tqdm(iterable, **kwargs)
