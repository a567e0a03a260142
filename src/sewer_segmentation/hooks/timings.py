"""Seconds per node and per pipeline namespace of every run, logged and saved as the catalog's versioned
``run_timings`` (a run of one pipeline never overwrites another's): where the time goes, without a profiler."""

from __future__ import annotations

import logging
import time

from kedro.framework.hooks import hook_impl

logger = logging.getLogger(__name__)


def timing_summary(pipelines: list[str], total_seconds: float, durations: dict[str, float]) -> dict:
    """The saved record: seconds in total, per namespace (``baseline``, ``round``, ...) and per node."""
    by_namespace: dict[str, float] = {}
    for name, seconds in durations.items():
        namespace = name.split(".", 1)[0] if "." in name else "(none)"
        by_namespace[namespace] = round(by_namespace.get(namespace, 0.0) + seconds, 3)
    return {"pipelines": pipelines, "total_seconds": round(total_seconds, 3), "seconds_by_namespace": by_namespace, "seconds_by_node": durations}


class NodeTimingHook:
    """Log how long each node took; after each run save the timings to the catalog's ``run_timings``."""

    def __init__(self) -> None:
        self._started: dict[str, float] = {}
        self._durations: dict[str, float] = {}
        self._run_start = 0.0

    @hook_impl
    def before_pipeline_run(self, run_params, pipeline, catalog) -> None:
        self._durations, self._run_start = {}, time.perf_counter()

    @hook_impl
    def before_node_run(self, node, catalog, inputs, is_async, run_id) -> None:
        self._started[node.name] = time.perf_counter()

    @hook_impl
    def after_node_run(self, node, catalog, inputs, outputs, is_async, run_id) -> None:
        seconds = time.perf_counter() - self._started.pop(node.name, time.perf_counter())
        self._durations[node.name] = round(seconds, 3)
        logger.info("%s took %.1f s", node.name, seconds)

    @hook_impl
    def after_pipeline_run(self, run_params, run_result, pipeline, catalog) -> None:
        summary = timing_summary(run_params.get("pipeline_names") or ["__default__"], time.perf_counter() - self._run_start, self._durations)
        catalog.save("run_timings", summary)
