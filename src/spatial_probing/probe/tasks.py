"""Probing tasks: validated metadata (:class:`TaskSpec`) plus one class per task type, in a registry.

A task turns a dataset's :class:`Example` records into probe items: a label, a control type
(see :mod:`spatial_probing.probe.controls`), a leakage group, report subsets, and how an item's
features are made from embedded examples (one example, or the difference of a minimal pair).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from spatial_probing.data import load_dataset
from spatial_probing.data.schema import DatasetName, Example
from spatial_probing.errors import UnknownNameError
from spatial_probing.probe.splits import TASK_DEFINED_POLICIES

SubsetKind = Literal["relation", "category", "k", "question_type"]


class TaskSpec(BaseModel):
    """What a probing task is: its data, input, label, split policy, metric and chance level.

    Attributes:
        name: registry name (``--task``).
        dataset: the dataset it reads.
        input: what is embedded: ``text``; ``text+image`` (needs an image-text encoder; with a text
            encoder the same task is the text-only control); ``pair-difference`` (embedding of one
            member of a minimal pair minus the other's).
        label: the label, in words.
        split: default split policy (``own``, ``zeroshot``, ``concept-kfold``).
        metric: the headline metric.
        chance: expected accuracy of uniform guessing, or None for 1/#classes of the data.
        report_by: subsets reported separately (with intervals) besides the whole test set.
        control_type: the lexical type the control labels are a random function of.
        load_kwargs: passed to ``load_dataset``.
        train_splits, test_splits: which dataset splits the ``own`` policy trains and tests on.
        inner_cv: how inner CV folds are grouped: ``group`` (``Example.group``: image, story, scene) or
            ``concept`` (no subject/object concept on both sides; VSR, whose default split is concept-disjoint).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    dataset: DatasetName
    description: str
    input: Literal["text", "text+image", "pair-difference"] = "text"
    label: str
    split: Literal["own", "zeroshot", "concept-kfold", "heldout-wording", "converse-transfer"] = "own"
    metric: Literal["accuracy", "macro_f1"] = "accuracy"
    chance: float | None = Field(default=None, gt=0, le=1)
    report_by: tuple[SubsetKind, ...] = ()
    control_type: str
    load_kwargs: dict[str, Any] = Field(default_factory=dict)
    train_splits: tuple[str, ...] = ("train",)
    test_splits: tuple[str, ...] = ("test",)
    inner_cv: Literal["group", "concept"] = "group"


@dataclass
class ProbeItems:
    """Probe items built from embedded examples: ``features = emb[rows_a] (− emb[rows_b])``."""

    ids: list[str]
    labels: np.ndarray
    control_types: list[str]
    groups: list[str]
    splits: list[str]
    concepts: list[tuple[str, str]]
    subsets: dict[str, list[str | None]]
    rows_a: np.ndarray
    rows_b: np.ndarray | None = None
    examples: list[Example] = field(default_factory=list)

    def features(self, emb: np.ndarray) -> np.ndarray:
        """Item features from the ``(n_examples, d)`` embeddings of :attr:`examples`."""
        x = emb[self.rows_a]
        return x - emb[self.rows_b] if self.rows_b is not None else x


def _subset_value(e: Example, kind: str) -> str | None:
    value = getattr(e, kind)
    return None if value is None else str(value)


class ProbingTask:
    """Base task: one probe item per example; subclasses choose the label and control type."""

    spec: TaskSpec

    def __init__(self, spec: TaskSpec) -> None:
        self.spec = spec

    def load(self, data_dir: str | Path | None = None, *, split: str | None = None, **kwargs: Any) -> list[Example]:
        """Load the dataset (VSR's zero-shot files for the ``zeroshot`` policy)."""
        kw = {**self.spec.load_kwargs, **kwargs}
        if split in TASK_DEFINED_POLICIES and split != self.spec.split:
            raise ValueError(f"task {self.spec.name!r}: split {split!r} is defined by the tasks built for it "
                             f"(those whose spec.split is {split!r}); this task's default is {self.spec.split!r}")
        if (split or self.spec.split) == "zeroshot":
            if self.spec.dataset != "vsr":
                raise ValueError(f"task {self.spec.name!r}: the zeroshot split exists for VSR only")
            kw["variant"] = "zeroshot"
        return load_dataset(self.spec.dataset, data_dir=data_dir, **kw)

    def keep(self, e: Example) -> bool:
        return self.label(e) is not None

    def label(self, e: Example) -> str | None:
        raise NotImplementedError

    def control_type(self, e: Example) -> str:
        return f"{e.subject}|{e.object}" if e.subject and e.object else str(e.group or e.id)

    def skip_reasons(self, examples: Sequence[Example]) -> dict[str, int]:
        """Why loaded examples are not used (reason → count), for the run manifest: never a silent drop."""
        used = {e.id for e in self.items(examples).examples}
        n = sum(e.id not in used for e in examples)
        return {f"not used by the task (no {self.spec.label} label)": n} if n else {}

    def items(self, examples: Sequence[Example]) -> ProbeItems:
        """Probe items of the usable examples; :attr:`ProbeItems.examples` are what gets embedded."""
        kept = [e for e in examples if self.keep(e)]
        if not kept:
            raise ValueError(f"task {self.spec.name!r}: none of the {len(examples)} examples carries its label "
                             f"({self.spec.label})")
        return ProbeItems(
            ids=[e.id for e in kept], labels=np.asarray([self.label(e) for e in kept], dtype=object),
            control_types=[self.control_type(e) for e in kept], groups=[str(e.group or e.id) for e in kept],
            splits=[e.split for e in kept], concepts=[(str(e.subject or e.group), str(e.object or e.group)) for e in kept],
            subsets={k: [_subset_value(e, k) for e in kept] for k in self.spec.report_by},
            rows_a=np.arange(len(kept)), examples=kept)


class FieldTask(ProbingTask):
    """Label = one Example field (relation, category, answer)."""

    def __init__(self, spec: TaskSpec, field_name: str, where: dict[str, Any] | None = None) -> None:
        super().__init__(spec)
        self.field_name = field_name
        self.where = where or {}

    def keep(self, e: Example) -> bool:
        return all(getattr(e, k) == v for k, v in self.where.items()) and self.label(e) is not None

    def label(self, e: Example) -> str | None:
        value = getattr(e, self.field_name)
        return None if value is None else str(value)


class TruthTask(ProbingTask):
    """Is the caption true of its image/scene (``true``/``false``)."""

    def label(self, e: Example) -> str | None:
        return None if e.truth is None else ("true" if e.truth else "false")

    def control_type(self, e: Example) -> str:
        """The relation: it recurs between train and test even when the concepts do not (zero-shot split)."""
        return str(e.relation or e.group or e.id)


class SubjectControlFieldTask(FieldTask):
    """A :class:`FieldTask` whose control type is the subject alone (synthetic scenes: the (subject, object)
    pairs of a few hundred scenes rarely recur between train and test, the coloured shapes always do)."""

    def control_type(self, e: Example) -> str:
        return str(e.subject or e.group or e.id)


class SpartQATask(FieldTask):
    """SpartQA answers for one question type; the control type is the story."""

    def control_type(self, e: Example) -> str:
        return str(e.group or e.id)


class ArgumentOrderTask(ProbingTask):
    """Minimal pairs (``A rel B`` original, ``B rel A`` swapped), one item per pair.

    Features are ``e(original) − e(swapped)``; the label says whether the original's subject name
    sorts before its object name (``subject-first``) or not (``object-first``). Which object is
    the subject is random per scene, so the label is balanced and cannot be read from either
    bag of words — the two captions share their words, and a bag-of-words encoder gives a
    difference without the information (expected: chance). Decoding it needs a representation
    that binds objects to argument roles. The control type is the ordered (subject, object) pair.
    """

    def items(self, examples: Sequence[Example]) -> ProbeItems:
        members: dict[str, dict[str, int]] = {}
        kept = [e for e in examples if e.pair_id and e.variant in ("original", "swapped") and e.subject and e.object]
        for i, e in enumerate(kept):
            members.setdefault(e.pair_id, {})[e.variant] = i  # type: ignore[index, arg-type]
        pairs = sorted(p for p, m in members.items() if len(m) == 2)
        if not pairs:
            raise ValueError(f"task {self.spec.name!r}: no complete (original, swapped) minimal pairs in "
                             f"{len(examples)} examples")
        a = np.array([members[p]["original"] for p in pairs])
        b = np.array([members[p]["swapped"] for p in pairs])
        orig = [kept[i] for i in a]
        return ProbeItems(
            ids=[f"{e.pair_id}/argument-order" for e in orig],
            labels=np.asarray(["subject-first" if str(e.subject) < str(e.object) else "object-first" for e in orig],
                              dtype=object),
            control_types=[f"{e.subject}|{e.object}" for e in orig], groups=[str(e.group or e.pair_id) for e in orig],
            splits=[e.split for e in orig], concepts=[(str(e.subject), str(e.object)) for e in orig],
            subsets={k: [_subset_value(e, k) for e in orig] for k in self.spec.report_by},
            rows_a=a, rows_b=b, examples=kept)


TASKS: dict[str, ProbingTask] = {}


def register_task(task: ProbingTask) -> ProbingTask:
    """Add a task to the registry under ``task.spec.name``."""
    TASKS[task.spec.name] = task
    return task


def get_task(name: str) -> ProbingTask:
    """The registered task called ``name`` (a clear error listing the known names otherwise)."""
    if name not in TASKS:
        raise UnknownNameError("task", name, TASKS)
    return TASKS[name]


def list_tasks() -> list[TaskSpec]:
    return [TASKS[n].spec for n in sorted(TASKS)]


_SO = "(subject, object) pair"
#: VSR by default: the concept-disjoint (zero-shot) split, inner CV grouped by concept (issue 11, item 6).
_VSR: dict[str, Any] = {"split": "zeroshot", "inner_cv": "concept"}
register_task(FieldTask(TaskSpec(
    name="vsr-relation", dataset="vsr", description="VSR: which of the 66 relations the caption expresses (text).",
    label="relation", report_by=("relation", "category"), control_type=_SO, **_VSR), "relation"))
register_task(FieldTask(TaskSpec(
    name="vsr-category", dataset="vsr", description="VSR: the relation's meta-category, 7-way (text).",
    label="category", report_by=("category",), control_type=_SO, **_VSR), "category"))
register_task(TruthTask(TaskSpec(
    name="vsr-truth", dataset="vsr", input="text+image", chance=0.5,
    description="VSR: is the caption true of its image? From CLIP text+image; from a text-only encoder the "
                "same task is the control that should come out at chance.",
    label="truth", report_by=("relation", "category"), control_type="relation", **_VSR)))
register_task(FieldTask(TaskSpec(
    name="stepgame-answer", dataset="stepgame", description="StepGame: the 9-way answer relation from "
    "story+question, reported per number of hops k.", label="answer relation", chance=1 / 9,
    report_by=("k", "relation"), control_type="(subject, object) agent pair of the question",
    load_kwargs={"k": [1, 2, 3, 4, 5]}), "relation"))
for _qt in ("FR", "FB", "YN", "CO"):
    register_task(SpartQATask(TaskSpec(
        name=f"spartqa-{_qt.lower()}", dataset="spartqa", description=f"SpartQA-Human: the answer to {_qt} questions "
        f"from story+question.", label="answer", control_type="story", report_by=("question_type",),
        test_splits=("test",)), "answer", where={"question_type": _qt}))
register_task(SubjectControlFieldTask(TaskSpec(
    name="synthetic-relation", dataset="synthetic", description="Synthetic scenes: which of 12 relations the "
    "caption expresses (all caption variants; scenes never straddle train/test).", label="relation",
    report_by=("relation", "category"), control_type="subject object"), "relation"))
register_task(ArgumentOrderTask(TaskSpec(
    name="synthetic-argument-order", dataset="synthetic", input="pair-difference", chance=0.5,
    description="Synthetic minimal pairs (A rel B vs B rel A): from e(original) − e(swapped), is the "
    "alphabetically first object the subject? Same design as synthetic-argument-order-v2 (the generator now "
    "writes a pair in one template and phrase, subject first in half the scenes) at the 480-scene default "
    "(~70 test pairs); kept under this name for existing configs, notebooks and the lab.",
    label="argument order", report_by=("relation", "category"), control_type="ordered (subject, object) pair")))

from spatial_probing.probe.targets import TARGET_TASKS  # noqa: E402  (targets subclass the classes above)

for _t in TARGET_TASKS:
    register_task(_t)
