"""What several hooks read of a run: its parameters (plain values), the project folder, and where the catalog
puts a dataset, from the catalog's configuration (Kedro's ``after_catalog_created`` hands it to hooks)."""

from __future__ import annotations

from pathlib import Path

from kedro.framework.hooks import hook_impl

from sewer_segmentation.params import plain_params


def dataset_location(conf_catalog: dict, name: str) -> str | None:
    """The ``filepath`` or ``path`` of dataset ``name`` in the resolved catalog configuration, or None;
    it looks inside kedro-mlflow's wrappers (``MlflowArtifactDataset``'s ``dataset``)."""
    entry = conf_catalog.get(name)
    while isinstance(entry, dict):
        location = entry.get("filepath") or entry.get("path")
        if location:
            return str(location)
        entry = entry.get("dataset")
    return None


class RunContext:
    """The base of the hooks that read the run's parameters (``params``), the project folder
    (``project_path``) or a dataset's location (``location(name)``)."""

    def __init__(self) -> None:
        self.params: dict = {}
        self.project_path = Path.cwd()
        self._conf_catalog: dict = {}

    @hook_impl
    def after_context_created(self, context) -> None:
        self.params, self.project_path = plain_params(context.params), Path(context.project_path)

    @hook_impl
    def after_catalog_created(self, catalog, conf_catalog) -> None:
        self._conf_catalog = conf_catalog

    def location(self, name: str) -> str | None:
        return dataset_location(self._conf_catalog, name)
