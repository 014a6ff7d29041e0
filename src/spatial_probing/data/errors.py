"""Errors raised for bad input data: each names the file, line or key, and what was expected."""

from __future__ import annotations

import os
from collections.abc import Iterable

from spatial_probing.errors import UnknownNameError


class DataError(ValueError):
    """Bad or missing input data.

    The message always says where (file, line, key) and what was expected, so a
    user can fix the file without reading the loader's code.
    """

    def __init__(self, message: str, *, path: str | os.PathLike[str] | None = None,
                 line: int | None = None, key: str | None = None) -> None:
        where = []
        if path is not None:
            where.append(str(path) + (f":{line}" if line is not None else ""))
        if key is not None:
            where.append(f"field {key!r}")
        self.path, self.line, self.key = path, line, key
        super().__init__((", ".join(where) + ": " if where else "") + message)


class UnknownDatasetError(DataError, UnknownNameError):
    """A dataset name no loader is registered under: a :class:`DataError` (what data commands catch) and an
    :class:`~spatial_probing.errors.UnknownNameError` (what every registry raises), with close-match suggestions."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        UnknownNameError.__init__(self, "dataset", name, known)
        self.path, self.line, self.key = None, None, None

    def __str__(self) -> str:
        return str(self.args[0])
