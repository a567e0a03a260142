"""Errors that carry a message meant for the person running the pipeline.

The project CLI prints these without a traceback: they describe a problem with the input data
or the configuration, not a bug.
"""


class SewerSegmentationError(Exception):
    """Base class for user-facing errors."""


class BadInputError(SewerSegmentationError):
    """Raw data that cannot be used (unreadable file, wrong size, malformed annotation...)."""


class ConfigurationError(SewerSegmentationError):
    """A parameter value that cannot work (image size not a multiple of 32, unknown loss...)."""


class MissingArtifactError(SewerSegmentationError):
    """An output of an earlier pipeline (a model, a refinement round) does not exist yet."""


class RunLockedError(SewerSegmentationError):
    """Another run of the same dataset and stage is in progress."""


class TrainingDivergedError(SewerSegmentationError):
    """Training ended with weights that hold NaN or inf."""


class StorageFullError(SewerSegmentationError):
    """A write failed because the disk holding the project's data is full."""
