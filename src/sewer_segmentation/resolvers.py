"""OmegaConf resolvers used in ``conf/`` (registered in ``settings.py``).

They let the catalog derive the folders of a refinement round from the ``round`` parameter.
"""

from __future__ import annotations


def previous_round_name(round_number: int | str) -> str:
    """Folder name of the model that refines masks for ``round_number``.

    Round 1 refines with the baseline model, round r > 1 with the final model of round r - 1.
    """
    round_number = int(round_number)
    if round_number < 1:
        raise ValueError(f"round must be 1 or more, got {round_number}")
    return "baseline" if round_number == 1 else f"round_{round_number - 1}"


def previous_round_command(round_number: int | str) -> str:
    """The command that makes the model ``round_number`` refines with."""
    round_number = int(round_number)
    if round_number <= 1:
        return "kedro run --pipeline=baseline"
    return f"kedro run --pipeline=refine --params=round:{round_number - 1}"


def model_folder_name(choice) -> str:
    """Output folder of the predict pipeline: ``baseline``, ``round_<n>`` or the MLflow run id."""
    text = str(choice).strip()
    return f"round_{text}" if text.isdigit() else text


CUSTOM_RESOLVERS = {
    "model_folder_name": model_folder_name,
    "previous_round": previous_round_name,
    "previous_round_command": previous_round_command,
}
