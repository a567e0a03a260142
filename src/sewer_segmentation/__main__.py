"""Entry point for ``python -m sewer_segmentation`` and the ``sewer-segmentation`` script.

``sewer-segmentation predict FRAME...`` writes masks without a Kedro session (``quick_predict.py``); any
other arguments go to the project's Kedro commands (``sewer-segmentation run``).
"""

import sys
from pathlib import Path
from typing import Any


def main(*args, **kwargs) -> Any:
    if sys.argv[1:2] == ["predict"]:  # masks for a few frames, without a Kedro session
        from sewer_segmentation.quick_predict import main as predict  # noqa: PLC0415

        sys.exit(predict(sys.argv[2:]))
    # Kedro only for its commands: importing it configures logging and prints its banner
    from kedro.framework.cli.utils import find_run_command  # noqa: PLC0415
    from kedro.framework.project import configure_project  # noqa: PLC0415

    package_name = Path(__file__).parent.name
    configure_project(package_name)
    kwargs["standalone_mode"] = not hasattr(sys, "ps1")
    run = find_run_command(package_name)
    return run(*args, **kwargs)


if __name__ == "__main__":
    main()
