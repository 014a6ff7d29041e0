"""Strict readers for upstream files, with an opt-in skip-and-count mode.

Every problem becomes a :class:`DataError` naming the file, the line or key and
what was expected. With ``skip_invalid`` the bad record is skipped instead and
counted in the :class:`LoadReport`, which the caller shows to the user.
"""

from __future__ import annotations

import json
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spatial_probing.data.errors import DataError


class DataWarning(UserWarning):
    """A documented data oddity was handled, or invalid records were skipped."""


@dataclass
class LoadReport:
    """What a loader did beyond reading records: skips, files read, oddity rules applied."""

    files: list[str] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)
    first_errors: list[str] = field(default_factory=list)

    def note(self, message: str) -> None:
        """Record a documented rule that was applied, and warn so it is never silent."""
        if message not in self.notes:
            self.notes.append(message)
            warnings.warn(message, DataWarning, stacklevel=3)

    def skip(self, path: Path, error: DataError) -> None:
        """Count a skipped invalid record (kept only with ``skip_invalid``)."""
        self.skipped[str(path)] += 1
        if len(self.first_errors) < 5:
            self.first_errors.append(str(error))

    def warn_skipped(self) -> None:
        """Emit one warning per file with skipped records."""
        for path, n in self.skipped.items():
            warnings.warn(f"{path}: skipped {n} invalid record(s) (--skip-invalid); first: "
                          f"{self.first_errors[0] if self.first_errors else '?'}", DataWarning, stacklevel=3)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view for ``data summary --json``."""
        return {"files": self.files, "skipped": dict(self.skipped), "notes": self.notes,
                "first_errors": self.first_errors}


def require_file(path: Path, what: str) -> Path:
    """Return ``path`` if it is a non-empty file, else raise a DataError saying what it should be."""
    if not path.is_file():
        raise DataError(f"file not found; expected {what}", path=path)
    if path.stat().st_size == 0:
        raise DataError(f"file is empty; expected {what}", path=path)
    return path


def iter_jsonl(path: Path, report: LoadReport, *, skip_invalid: bool) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each non-blank line of a JSON-lines file."""
    report.files.append(str(path))
    n = 0
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                if not isinstance(obj, dict):
                    raise DataError(f"expected a JSON object, got {type(obj).__name__}", path=path, line=lineno)
            except json.JSONDecodeError as exc:
                err = DataError(f"malformed JSON ({exc.msg} at column {exc.colno}); expected one JSON object per line",
                                path=path, line=lineno)
                if not skip_invalid:
                    raise err from None
                report.skip(path, err)
                continue
            except DataError as err:
                if not skip_invalid:
                    raise
                report.skip(path, err)
                continue
            n += 1
            yield lineno, obj
    if n == 0 and not report.skipped.get(str(path)):
        raise DataError("no records; expected at least one JSON object per line", path=path)


def load_json(path: Path, report: LoadReport) -> Any:
    """Parse a whole JSON file, naming the file and position on failure."""
    report.files.append(str(path))
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise DataError(f"malformed JSON ({exc.msg}, column {exc.colno})", path=path, line=exc.lineno) from None


def field_of(obj: dict[str, Any], key: str, types: type | tuple[type, ...], *, path: Path,
             line: int | None = None, record: str | None = None) -> Any:
    """Return ``obj[key]`` checked against ``types``, or raise naming the file, line/record and key."""
    where = f"record {record!r}: " if record is not None else ""
    if key not in obj:
        raise DataError(f"{where}missing required field; present fields: {sorted(obj)}", path=path, line=line, key=key)
    value = obj[key]
    if not isinstance(value, types) or isinstance(value, bool) and bool not in _as_tuple(types):
        names = "/".join(t.__name__ for t in _as_tuple(types))
        raise DataError(f"{where}expected {names}, got {type(value).__name__} {value!r:.60}",
                        path=path, line=line, key=key)
    return value


def _as_tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)
