"""Errors shared by every registry: an unknown name says what was asked for, the close matches, and the known names.

One type for all of them (encoders, tasks, datasets, probes), so a caller — or the CLI — catches one
exception whichever registry refused the name. It subclasses both ``KeyError`` (a failed lookup by
name) and ``ValueError`` (bad input), so existing ``except KeyError`` and ``except ValueError``
handlers keep working.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UnknownNameError(KeyError, ValueError):
    """A name no registry knows; the message suggests close matches (``difflib``) and lists the known names."""

    def __init__(self, what: str, name: str, known: Iterable[str], *, hint: str = "") -> None:
        self.what, self.name, self.known = what, name, sorted(known)
        self.suggestions = close_matches(name, self.known)
        did_you_mean = f"; did you mean {' or '.join(map(repr, self.suggestions))}?" if self.suggestions else ""
        super().__init__(f"unknown {what} {name!r}{did_you_mean}{f' ({hint})' if hint else ''}; "
                         f"expected one of: {', '.join(self.known)}")

    def __str__(self) -> str:  # KeyError's own str() would wrap the message in quotes
        return str(self.args[0])


def close_matches(name: str, known: Iterable[str], n: int = 3) -> list[str]:
    """Up to ``n`` known names that look like ``name`` (difflib ratio ≥ 0.6), best first."""
    return difflib.get_close_matches(name, list(known), n=n, cutoff=0.6)
