"""The project's Kedro hooks, one module per concern (registered in ``settings.py``, in the order given there).

- ``parameters``: bad ``--params`` keys and parameter values stop a run before anything starts;
- ``logs``: plain one-line log records when there is no terminal;
- ``synthetic``: the bundled synthetic dataset and sample predict frames, saved through the catalog when
  missing, and a one-line error for a missing raw dataset;
- ``locks``: one run at a time per dataset and training stage;
- ``tracking``: kedro-mlflow's hook, the run's tags, one child run per stage, the predict pipeline's run;
- ``timings``: seconds per node, saved as the catalog's versioned ``run_timings``;
- ``summary``: the closing summary of every run.

Hooks read datasets' locations from the catalog's configuration (Kedro's ``after_catalog_created``) and
write only through the catalog.
"""

from sewer_segmentation.hooks.locks import StageLockHook
from sewer_segmentation.hooks.logs import PlainLogsHook
from sewer_segmentation.hooks.parameters import ParameterCheckHook
from sewer_segmentation.hooks.summary import RunSummaryHook
from sewer_segmentation.hooks.synthetic import SyntheticDataHook
from sewer_segmentation.hooks.timings import NodeTimingHook
from sewer_segmentation.hooks.tracking import MlflowParamsHook, MlflowTagsHook, PredictionRunHook, StageRunsHook

__all__ = [
    "MlflowParamsHook", "MlflowTagsHook", "NodeTimingHook", "ParameterCheckHook", "PlainLogsHook", "PredictionRunHook",
    "RunSummaryHook", "StageLockHook", "StageRunsHook", "SyntheticDataHook",
]  # fmt: skip
