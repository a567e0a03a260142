"""The parameter models of the scaling layer: ``engine`` and ``ray`` (``conf/base/parameters.yml``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, RootModel, field_validator

from sewer_segmentation.schema import Section


class EngineName(RootModel[Literal["local", "ray"]]):
    """``engine``: where refining the weak pool and the predict pipeline run: ``local`` (this process) or
    ``ray`` (a Ray cluster, ``ray.address``; needs ``pip install -e ".[ray]"``)."""


class RayParams(Section):
    """``ray``: the Ray cluster and its pools, used when ``engine: ray`` (docs/scaling.md)."""

    address: str = Field("local", description="local (a cluster on this machine), auto (the running one), or ray://host:port")
    concurrency: int = Field(1, ge=1, description="prediction actors; each holds the model once")
    num_gpus: float = Field(0, ge=0, description="GPUs per prediction actor (0.5: two actors share one)")
    num_cpus: float = Field(1, gt=0, description="CPUs per prediction actor (its torch threads)")
    batch_size: int | None = Field(None, ge=1, description="frames per prediction call; null: the job's own batch size (the same masks as local)")
    refine_batch_size: int = Field(16, ge=1, description="frames per CPU task of the second stage (refine, or threshold and write)")
    refine_concurrency: int | None = Field(None, ge=1, description="CPU tasks at once in the second stage; null: as many as the cluster's CPUs allow")

    @field_validator("address")
    @classmethod
    def _known_address(cls, value: str) -> str:
        if value not in ("local", "auto") and not value.startswith("ray://") and ":" not in value:
            raise ValueError("must be local, auto, ray://host:port or host:port")
        return value
