"""One typed record for every dataset, plus the relation vocabularies.

Every loader returns :class:`Example` records, so the embed and probe stages
never see dataset-specific dicts. ``source`` keeps the raw upstream fields and
``origin`` the file and line, for provenance and for error messages.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

DatasetName = Literal["vsr", "stepgame", "spartqa", "synthetic", "sugarcrepe", "aro", "whatsup"]

#: StepGame's 9 answer labels and their 2-D direction vectors (x right, y up).
STEPGAME_DIRECTIONS: dict[str, tuple[int, int]] = {
    "left": (-1, 0),
    "right": (1, 0),
    "above": (0, 1),
    "below": (0, -1),
    "upper-left": (-1, 1),
    "upper-right": (1, 1),
    "lower-left": (-1, -1),
    "lower-right": (1, -1),
    "overlap": (0, 0),
}

#: SpartQA question types.
SPARTQA_QTYPES = ("FR", "FB", "YN", "CO")


class Example(BaseModel):
    """One probing item: a caption or a story+question with its spatial labels.

    Attributes:
        id: unique within the dataset (e.g. ``vsr/random/train/12``).
        dataset: which benchmark it comes from.
        split: the dataset's own split name (``train``, ``dev``/``valid``, ``test``).
        text: what the encoder reads: a caption, or story and question joined.
        relation: the spatial relation the item is about (VSR relation, StepGame
            answer, synthetic relation, SpartQA FR answer), if any.
        category: the relation's meta-category (VSR's 7, or the synthetic scheme).
        subject, object: the relation's arguments where known.
        truth: whether the caption is true of its image/scene (VSR ``label``).
        k: number of reasoning hops (StepGame).
        question_type, answer: SpartQA's question type and normalised answer.
        image: an image reference (a COCO file name, or ``synthetic:<scene>``).
        group: the unit that must never be split across probe train and test
            (an image, a story, a scene).
        variant, pair_id: minimal-pair bookkeeping (``original``/``swapped``/``converse``).
        origin: ``file:line`` the record was read from.
        source: the raw upstream fields, untouched.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    dataset: DatasetName
    split: str
    text: str = Field(min_length=1)
    relation: str | None = None
    category: str | None = None
    subject: str | None = None
    object: str | None = None
    truth: bool | None = None
    k: int | None = Field(default=None, ge=0)
    question_type: str | None = None
    answer: str | None = None
    image: str | None = None
    group: str | None = None
    variant: str | None = None
    pair_id: str | None = None
    origin: str | None = None
    source: dict[str, Any] = Field(default_factory=dict)
