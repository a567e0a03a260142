"""Data a fresh clone needs, saved through the catalog when missing: the bundled synthetic dataset
(``synthetic_dataset``) and sample frames for the predict pipeline (``inference_samples``); and one line
instead of Kedro's tracebacks when a named raw dataset is missing."""

from __future__ import annotations

import logging
from pathlib import Path

from kedro.framework.hooks import hook_impl

from sewer_segmentation.errors import ConfigurationError
from sewer_segmentation.hooks.context import RunContext
from sewer_segmentation.hooks.tracking import end_mlflow_run_failed

#: Sample frames for the predict pipeline (catalog ``inference_samples``).
SAMPLE_FRAMES = 12

logger = logging.getLogger(__name__)


def check_raw_dataset(images: Path, dataset: str) -> None:
    """One line naming the datasets that exist when ``images`` (a raw dataset's images/ folder) is missing or empty."""
    if images.is_dir() and any(images.iterdir()):
        return
    raw_root = images.parent.parent
    available = sorted(p.name for p in raw_root.glob("*") if (p / "images").is_dir()) if raw_root.is_dir() else []
    problem = "is empty" if images.is_dir() else "does not exist"
    raise ConfigurationError(
        f"{images} {problem}: dataset {dataset!r} needs an images/ folder (see README 'Raw data layouts'). "
        f"Datasets found in {raw_root}: {', '.join(available) or 'none'}"
    )


class SyntheticDataHook(RunContext):
    """Before a run: the synthetic dataset is generated when it is selected and missing, so ``kedro run`` on a
    fresh clone works with no data at hand; the default predict folder gets sample frames; a real dataset
    that is missing stops the run in one line; plain ``kedro run`` refuses a round other than 1."""

    @hook_impl
    def before_pipeline_run(self, run_params, pipeline, catalog) -> None:
        try:
            self._prepare(run_params.get("pipeline_names") or ["__default__"], pipeline, catalog)
        except Exception:
            end_mlflow_run_failed()  # kedro-mlflow may have opened it already; no error hook follows
            raise

    def _prepare(self, names: list[str], pipeline, catalog) -> None:
        if "__default__" in names and int(self.params.get("round", 1)) != 1:
            raise ConfigurationError(
                "plain `kedro run` trains the baseline and refinement round 1; "
                "for a later round run `kedro run --pipeline=refine --params=round:N`"
            )
        reads = pipeline.inputs()
        default_folder = self.location("inference_images") == self.location("inference_samples")
        if "inference_images" in reads and default_folder and not catalog.exists("inference_samples"):
            catalog.save("inference_samples", SAMPLE_FRAMES)
            logger.info("Wrote %d sample frames to %s for the predict pipeline", SAMPLE_FRAMES, self.location("inference_samples"))
        dataset = str(self.params.get("dataset"))
        if dataset != "synthetic":
            if "raw_images" in reads:
                check_raw_dataset(Path(self.location("raw_images") or "images"), dataset)
            return
        if catalog.exists("synthetic_dataset"):
            return
        from sewer_segmentation.data.synthetic import SyntheticConfig  # noqa: PLC0415 - the generator, only when it runs

        options = dict(self.params.get("synthetic") or {})
        logger.info("Generating the synthetic dataset in %s (%s)", self.location("synthetic_dataset"), options)
        catalog.save("synthetic_dataset", SyntheticConfig(**options))
        logger.info("Synthetic dataset written")
