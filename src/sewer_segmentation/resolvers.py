"""OmegaConf resolvers used in ``conf/`` (registered in ``settings.py``).

``model_folder_name`` names the predict pipeline's output folder after the chosen model.
"""

from __future__ import annotations


def model_folder_name(choice) -> str:
    """Output folder of the predict pipeline: ``baseline``, ``round_<n>`` or the MLflow run id."""
    text = str(choice).strip()
    return f"round_{text}" if text.isdigit() else text


CUSTOM_RESOLVERS = {
    "model_folder_name": model_folder_name,
}
