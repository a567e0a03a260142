"""OmegaConf resolvers used in ``conf/`` (registered in ``settings.py``).

``model_folder_name`` and ``input_folder_name`` name the predict pipeline's output folder after the
chosen model and the folder of frames it predicted; ``review_folder`` names export_review's after what it exports.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from sewer_segmentation.stage import Stage


def model_folder_name(choice) -> str:
    """Output folder of the predict pipeline: ``baseline``, ``round_<n>``, ``best``, the MLflow run id, or a
    model URI as one folder name (``models:/sewer-segmentation-x@best`` -> ``models_sewer-segmentation-x@best``)."""
    text = str(choice).strip()
    stage = Stage.from_name(text)
    if stage is not None:
        return stage.name
    return re.sub(r"[^\w.@+-]+", "_", text).strip("_") or "model"


def input_folder_name(folder) -> str:
    """``<folder name>-<8 hex digits of its absolute path>``: predicting a second folder never overwrites
    the first's results, even when both are called ``frames``."""
    path = os.path.abspath(str(folder))
    return f"{Path(path).name or 'frames'}-{hashlib.sha1(path.encode()).hexdigest()[:8]}"


def review_folder(source, round_number, predict_folder) -> str:
    """Where export_review writes under ``review/``: ``round_<r>`` for refined masks, or
    ``predictions/<model>/<folder>`` (the predict pipeline's own output folder names) for predictions."""
    return f"predictions/{predict_folder}" if str(source) == "predictions" else f"round_{round_number}"


CUSTOM_RESOLVERS = {
    "model_folder_name": model_folder_name,
    "input_folder_name": input_folder_name,
    "review_folder": review_folder,
}
