"""Caption-choice items (one image, K captions, one of them true) as :class:`Example` records.

SugarCrepe and ARO give a true caption and one hard negative; What'sUp gives four captions that differ
only in the preposition. Every option becomes one :class:`Example` with ``truth`` saying whether it is
the true caption, ``variant`` saying which option it is (``true``/``negative`` for pairs,
``option0``… otherwise), and ``pair_id`` tying the options of one item together; ``group`` is the
image, so items of one image stay on one side of every split and form one bootstrap cluster.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from spatial_probing.data._read import field_of
from spatial_probing.data.errors import DataError
from spatial_probing.data.schema import DatasetName, Example


def choice_examples(*, dataset: DatasetName, item_id: str, options: Sequence[str], correct: int, image: str | None,
                    group: str, origin: str, source: dict[str, Any], category: str | None = None,
                    relations: Sequence[str | None] | None = None, subject: str | None = None,
                    object: str | None = None) -> list[Example]:
    """The K option records of one item; ``relations[k]`` is the relation option ``k`` states, if known."""
    if len(options) < 2 or not 0 <= correct < len(options):
        raise DataError(f"item {item_id!r}: expected ≥ 2 caption options and a valid true index, got "
                        f"{len(options)} options, true index {correct}")
    names = ["true", "negative"] if len(options) == 2 and correct == 0 else [f"option{k}" for k in range(len(options))]
    return [Example(id=f"{item_id}/{names[k]}", dataset=dataset, split="test", text=text, truth=k == correct,
                    relation=relations[k] if relations is not None else None, category=category,
                    subject=subject, object=object, image=image, group=group, variant=names[k], pair_id=item_id,
                    origin=origin, source=source)
            for k, text in enumerate(options)]


def caption(rec: dict[str, Any], key: str, *, path: Any, record: str) -> str:
    """A non-empty caption string from ``rec[key]``, or a DataError naming file, record and field."""
    value = field_of(rec, key, str, path=path, record=record).strip()
    if not value:
        raise DataError(f"record {record!r}: empty caption; expected a sentence", path=path, key=key)
    return value
