"""Project CLI: Kedro's own ``run`` with two project-specific changes.

1. ``--params`` accepts ``key:value`` as well as ``key=value``, so the documented
   ``kedro run --pipeline=refine --params=round:2`` works (Kedro 1.7 only splits on ``=``).
2. Errors meant for the user (bad input, missing model, offline weights...) are printed as one
   clear message with a non-zero exit instead of a traceback; so are an unknown ``--pipeline`` and an
   ``--env`` without a folder under ``conf/``, checked before a session (and an MLflow store) starts.

Every other option of Kedro's ``run`` is kept as it is: the command object is copied and only the
``--params`` callback and the command callback are wrapped.
"""

from __future__ import annotations

import copy
import difflib
import functools
import os
from pathlib import Path
from typing import Any

import click
from kedro.framework.cli.project import run as kedro_run

from sewer_segmentation.errors import ConfigurationError, SewerSegmentationError


def normalize_param_items(value: str) -> str:
    """Rewrite ``key:value`` items of a ``--params`` string as ``key=value``.

    An item that already has ``=`` is left alone, so values that contain ``:`` (``model=runs:/x``)
    keep working; only an item with no ``=`` is split on its first ``:``.
    """
    items = []
    for item in value.split(","):
        if "=" not in item and ":" in item:
            key, _, val = item.partition(":")
            item = f"{key}={val}"
        items.append(item)
    return ",".join(items)


def accepting_colon(kedro_callback):
    """Kedro's own ``--params`` callback, given ``key:value`` items rewritten as ``key=value``."""

    @functools.wraps(kedro_callback)
    def callback(ctx: click.Context, param: Any, value: Any) -> Any:
        return kedro_callback(ctx, param, normalize_param_items(value) if isinstance(value, str) else value)

    return callback


def _find_user_error(exc: BaseException) -> Exception | None:
    """Walk the exception chain: Kedro may wrap a node's exception in its own. Kedro's own parameter
    validation error counts too (the project's ParameterCheckHook normally refuses the value first)."""
    from kedro.validation.exceptions import ParameterValidationError  # noqa: PLC0415

    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, SewerSegmentationError | ParameterValidationError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def check_run_options(options: dict, registered: list[str], conf_root: Path) -> None:
    """An unknown pipeline or environment, named with the ones that exist, before anything starts."""
    several = options.get("pipelines") or []  # Kedro's callback has split it into a list already
    asked = [options.get("pipeline"), *(several.split(",") if isinstance(several, str) else several)]
    for name in (n.strip() for n in asked if n and n.strip()):
        if name not in registered:
            close = difflib.get_close_matches(name, registered, 2)
            hint = f" (did you mean {' or '.join(close)}?)" if close else ""
            raise ConfigurationError(f"no pipeline named {name!r}{hint}; the pipelines are: {', '.join(sorted(registered))}")
    env = options.get("env") or os.environ.get("KEDRO_ENV")
    if env and conf_root.is_dir() and not (conf_root / env).is_dir():  # an archive (--conf-source x.tar.gz): Kedro checks it
        found = sorted(p.name for p in conf_root.iterdir() if p.is_dir())
        raise ConfigurationError(f"--env {env}: there is no folder {conf_root / env}; the environments are: {', '.join(found) or 'none'}")


def _check_run_options(options: dict) -> None:
    from kedro.framework.project import pipelines, settings  # noqa: PLC0415 - loaded once the project is bootstrapped

    check_run_options(options, list(pipelines), Path(options.get("conf_source") or settings.CONF_SOURCE))


def _with_clear_user_errors(callback):
    @functools.wraps(callback)
    def wrapper(*args, **kwargs):
        try:
            _check_run_options(kwargs)
            if kwargs.get("pipeline") and not kwargs.get("pipelines"):
                # `--pipeline=baseline` is this project's documented command; Kedro 1.7 runs it exactly as
                # `--pipelines=baseline` but calls the option deprecated on every run, so it is passed on so
                kwargs = {**kwargs, "pipelines": [kwargs["pipeline"]], "pipeline": None}
            return callback(*args, **kwargs)
        except (KeyboardInterrupt, SystemExit) as exc:
            if not isinstance(exc, SystemExit) or exc.code not in (0, None):
                from sewer_segmentation.tracking.runs import end_active_runs_killed  # noqa: PLC0415

                end_active_runs_killed()  # else MLflow's exit handler records the interrupted run as FINISHED
            raise
        except Exception as exc:  # noqa: BLE001 - re-raised unless it is a user error
            user_error = _find_user_error(exc)
            if user_error is None:
                raise
            one_line = "; ".join(line.strip() for line in str(user_error).splitlines() if line.strip())
            raise click.ClickException(f"{type(user_error).__name__}: {one_line}") from None

    return wrapper


def _build_run_command() -> click.Command:
    command = copy.copy(kedro_run)
    command.params = [copy.copy(p) for p in kedro_run.params]
    for option in command.params:
        if option.name == "params":
            option.callback = accepting_colon(option.callback)
            option.help = (option.help or "") + " Both key=value and key:value are accepted."
    command.callback = _with_clear_user_errors(kedro_run.callback)
    return command


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, name=__file__)
def cli() -> None:
    """Project-specific command line tools."""


run = _build_run_command()
cli.add_command(run, "run")
