"""The parameter models of the refinement layer: ``mask_refinement`` and its methods' sections
(each method's own model sits in its module; ``params.py`` gathers every section)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sewer_segmentation.schema import Section, located, nearest_hint, one_of


class AutoRefinementParams(Section):
    thresholds: list[float] = Field([0.2, 0.3, 0.4, 0.5, 0.6, 0.7], description="candidates of the threshold method")
    methods: list[str] = Field(["grabcut", "box_prior", "seed", "box"], description="the other candidates")
    box_margin: float = Field(1.0, ge=0, description="standard errors a candidate must beat the box masks by")

    @field_validator("thresholds")
    @classmethod
    def _probabilities(cls, value: list[float]) -> list[float]:
        if any(not 0 < t < 1 for t in value):
            raise ValueError("every threshold must be between 0 and 1")
        return value

    @field_validator("methods")
    @classmethod
    def _registered(cls, value: list[str]) -> list[str]:
        from sewer_segmentation.refinement.registry import REFINEMENT_METHODS  # noqa: PLC0415

        for name in value:
            one_of(name, [m for m in REFINEMENT_METHODS if m != "threshold"], "refinement method")
        return value


class MaskRefinementParams(Section):
    """``mask_refinement``: how box masks become refined masks. Each refinement method's own settings sit
    under its name (``threshold: {...}``), validated by that method's parameter model."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False, frozen=True)

    method: str = Field("auto", description="auto, or a name of refinement.registry.REFINEMENT_METHODS")
    auto: AutoRefinementParams = AutoRefinementParams()
    n_jobs: int | Literal["auto"] = Field("auto", description="threads for refinement (auto: every core)")
    gallery_cases: int = Field(6, ge=0)

    @field_validator("method")
    @classmethod
    def _known_method(cls, value: str) -> str:
        from sewer_segmentation.refinement.registry import REFINEMENT_METHODS  # noqa: PLC0415

        return one_of(value, ["auto", *REFINEMENT_METHODS], "refinement method")

    @field_validator("n_jobs")
    @classmethod
    def _positive_jobs(cls, value: int | str) -> int | str:
        if value != "auto" and value < 1:
            raise ValueError("must be auto or at least 1")
        return value

    @model_validator(mode="before")
    @classmethod
    def _method_sections(cls, data: Any) -> Any:
        """Keys beyond the fields are method sections: each validated by its method's model."""
        from sewer_segmentation.refinement.registry import REFINEMENT_METHODS  # noqa: PLC0415

        if not isinstance(data, dict):
            return data
        out = dict(data)
        for key, value in data.items():
            if key in cls.model_fields:
                continue
            if key not in REFINEMENT_METHODS:
                known = [*cls.model_fields, *REFINEMENT_METHODS]
                raise ValueError(f"unknown key {key!r}{nearest_hint(key, known)}; keys: {', '.join(known)}")
            try:
                out[key] = REFINEMENT_METHODS[key].params.model_validate(value or {})
            except ValidationError as exc:
                raise located(exc, key) from None
        return out

    def method_params(self, name: str) -> BaseModel:
        """The settings of refinement method ``name`` (its model's defaults when the section is absent)."""
        from sewer_segmentation.refinement.registry import REFINEMENT_METHODS  # noqa: PLC0415

        given = (self.model_extra or {}).get(name)
        return given if given is not None else REFINEMENT_METHODS[name].params()
