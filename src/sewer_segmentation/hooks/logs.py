"""Plain one-line log records when there is no terminal (``kedro run > run.log``, CI, nohup)."""

from __future__ import annotations

import logging
import sys

from kedro.framework.hooks import hook_impl

PLAIN_LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
#: Longest line a plain log writes; Kedro's "Running node: ..." lists every input and output.
MAX_LOG_LINE = 300


class ShortLinesFormatter(logging.Formatter):
    """One plain line per record, each line at most ``MAX_LOG_LINE`` characters (the cut is marked)."""

    def format(self, record: logging.LogRecord) -> str:
        return "\n".join(shorten_line(line) for line in super().format(record).splitlines())


def shorten_line(line: str, limit: int = MAX_LOG_LINE) -> str:
    if len(line) <= limit:
        return line
    keep = limit - len(f" ... (+{len(line)} characters)")
    return f"{line[:keep]} ... (+{len(line) - keep} characters)"


#: The handler of conf/logging.yml that writes to the console: plain lines from the first record on.
CONSOLE_HANDLER = "console"


def plain_handlers_without_terminal(logger: logging.Logger, stream=None) -> int:
    """Replace the rich handlers of ``logger`` by plain stream handlers (one line per record) when
    ``stream`` (stdout) is not a terminal, and cut the console handler's lines at ``MAX_LOG_LINE``;
    returns how many rich handlers were replaced."""
    stream = stream or sys.stdout
    if stream.isatty():
        return 0
    from rich.logging import RichHandler  # noqa: PLC0415

    replaced = 0
    for handler in list(logger.handlers):
        if handler.name == CONSOLE_HANDLER and not isinstance(handler, RichHandler):
            handler.setFormatter(ShortLinesFormatter(PLAIN_LOG_FORMAT, datefmt="%H:%M:%S"))
        elif isinstance(handler, RichHandler):
            plain = logging.StreamHandler(stream)
            plain.setLevel(handler.level)
            plain.setFormatter(ShortLinesFormatter(PLAIN_LOG_FORMAT, datefmt="%H:%M:%S"))
            logger.removeHandler(handler)
            logger.addHandler(plain)
            replaced += 1
    return replaced


def rich_console_on_terminal(logger: logging.Logger, stream=None) -> int:
    """On a terminal, the plain ``console`` handler of ``logger`` becomes Kedro's rich handler (colours,
    tracebacks with their locals); returns how many were replaced."""
    stream = stream or sys.stdout
    if not stream.isatty():
        return 0
    from kedro.logging import RichHandler  # noqa: PLC0415

    replaced = 0
    for handler in list(logger.handlers):
        if handler.name == CONSOLE_HANDLER and not isinstance(handler, RichHandler):
            rich = RichHandler(rich_tracebacks=True)
            rich.setLevel(handler.level)
            logger.removeHandler(handler)
            logger.addHandler(rich)
            replaced += 1
    return replaced


class PlainLogsHook:
    """conf/logging.yml writes plain lines from the first record (a run without a terminal, ``kedro run >
    run.log``, CI, nohup, never sees rich's 80-column panels); on a terminal this hook hands the console
    to Kedro's rich handler once the configuration is loaded. (Kedro only lets conf/logging.yml name
    handlers of ``logging`` and ``kedro.logging``, so the choice is made here.)"""

    @hook_impl
    def after_context_created(self, context) -> None:
        root = logging.getLogger()
        plain_handlers_without_terminal(root)
        rich_console_on_terminal(root)


