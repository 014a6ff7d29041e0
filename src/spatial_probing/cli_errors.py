"""How every command reports bad input: one line ``error: …`` on stderr and exit status 2, no traceback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer


def fail(err: Exception) -> NoReturn:
    """Print ``error: <message>`` to stderr and exit with status 2."""
    message = err.args[0] if isinstance(err, KeyError) and err.args else err  # KeyError's str() adds quotes
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2) from None


@contextmanager
def exit_on(*errors: type[Exception]) -> Iterator[None]:
    """Turn the listed exception types raised inside the block into :func:`fail`."""
    try:
        yield
    except errors as err:
        fail(err)


def progress_wanted(quiet: bool) -> bool:
    """Progress bars unless ``--quiet``, and only on a terminal: logs, pipes and CI get the per-unit lines alone."""
    import sys

    return not quiet and sys.stderr.isatty()
