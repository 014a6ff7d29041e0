"""Probe targets whose answer is not spelled out in the words (registered from :mod:`.tasks`).

Every task shipped before these can be solved from the words: "left of" names the relation. The
targets here are built so that a lexical shortcut either cannot work or gives itself away:

* **scene geometry** (``synthetic-geometry-dx``/``-dy``/``-distance``): the sign of the subject's
  displacement from the object and a near/far bin, read from the scene, trained and tested on
  disjoint wordings (split ``heldout-wording``: unseen templates *and* unseen paraphrases).
* **converse transfer** (``synthetic-converse-transfer``, ``vsr-converse-transfer``): the label is a
  geometric fact in a canonical object order (is the alphabetically first object left of the
  other?); training captions use one member of each converse pair ("left of"), test captions the
  other ("right of"). A rule that reads the first noun learns "first noun first → yes" and is
  exactly wrong on every test item (below chance); meaning transfers.
* **argument order v2** (``synthetic-argument-order-v2``): minimal pairs in one template and phrase,
  the subject first in exactly half of the scenes, ≥ 1,000 test pairs by default.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from spatial_probing.data.converse import (
    SYNTHETIC_TRANSFER_FAMILIES, VSR_TRANSFER_FAMILIES, parse_caption, transfer_fact,
)
from spatial_probing.data.schema import Example
from spatial_probing.data.synthetic import TEMPLATES
from spatial_probing.probe.splits import converse_side, wording_side
from spatial_probing.probe.tasks import ArgumentOrderTask, ProbeItems, ProbingTask, TaskSpec

#: Wordings held out for testing by ``heldout-wording``: one subject-first and one subject-second template,
#: and the third paraphrase of every relation (e.g. "higher up than", "a long way from", "enclosed by").
HELDOUT_TEMPLATES: tuple[int, ...] = (2, 5)
HELDOUT_PHRASES: tuple[int, ...] = (2,)


def _sign(v: int) -> str:
    return "positive" if v > 0 else "negative" if v < 0 else "zero"


class _ItemSplitTask(ProbingTask):
    """A task whose items carry a task-assigned side (``train``/``test``) instead of the dataset split."""

    def side(self, e: Example) -> str | None:
        """``train``/``test`` for an item on that side of the split, None to leave it out."""
        raise NotImplementedError

    def keep(self, e: Example) -> bool:
        """Keep an example when it carries the label and falls on one side of the task's split."""
        return self.label(e) is not None and self.side(e) is not None

    def items(self, examples: Sequence[Example]) -> ProbeItems:
        """The base items, with each item's split replaced by its side."""
        items = super().items(examples)
        items.splits = [str(self.side(e)) for e in items.examples]
        return items


    def why_not(self, e: Example) -> str | None:
        """Why ``e`` is not an item (None when it is one)."""
        if not e.truth:
            return "false caption (its words contradict the scene)"
        if self.label(e) is None:
            return f"no {self.spec.label} label"
        return None if self.side(e) is not None else f"on neither side of the {self.spec.split} split"

    def skip_reasons(self, examples: Sequence[Example]) -> dict[str, int]:
        """Reason → count for every loaded example that is not an item."""
        used = {e.id for e in self.items(examples).examples}
        reasons = Counter(self.why_not(e) or "test caption of an image/scene with a training caption"
                          for e in examples if e.id not in used)
        return dict(reasons.most_common())


class GeometryTask(_ItemSplitTask):
    """Scene geometry of a true caption's subject relative to its object, on held-out wordings.

    ``key`` is ``dx`` or ``dy`` (label: sign, 3-way) or ``distance_bin`` (near/far). Only true
    captions are used (for a false caption the words contradict the scene and no text encoder can
    know the answer). Sides come from :func:`~spatial_probing.probe.splits.wording_side`; a scene has
    one wording, so train and test scenes are disjoint too.
    """

    def __init__(self, spec: TaskSpec, key: str) -> None:
        super().__init__(spec)
        self.key = key

    def label(self, e: Example) -> str | None:
        """The sign (or bin) of ``source[key]`` for a true caption; None for a false one."""
        if not e.truth or self.key not in e.source:
            return None
        value = e.source[self.key]
        return value if self.key == "distance_bin" else _sign(int(value))

    def side(self, e: Example) -> str | None:
        """``train``/``test`` by wording (:func:`~spatial_probing.probe.splits.wording_side`)."""
        if "template" not in e.source:
            return None
        return wording_side(int(e.source["template"]), int(e.source["phrase"]), heldout_templates=HELDOUT_TEMPLATES,
                            heldout_phrases=HELDOUT_PHRASES)


class ConverseTransferTask(_ItemSplitTask):
    """Is the canonically first object (alphabetical name) the subject of the fact the caption states?

    Label ``yes``/``no`` for true captions whose relation belongs to a converse-transfer family
    (:data:`~spatial_probing.data.converse.VSR_TRANSFER_FAMILIES` or the synthetic ones): "X left
    of Y" states "X left of Y" (yes iff X sorts first), "X right of Y" states "Y left of X" (yes
    iff Y sorts first). Training items use the direct member, test items the exchanged member
    (:func:`~spatial_probing.probe.splits.converse_side`), on the dataset's train and test splits.
    """

    def _fact(self, e: Example) -> tuple[str, bool] | None:
        if not e.truth or e.relation is None:
            return None
        return transfer_fact(e.relation, self.spec.dataset)

    def why_not(self, e: Example) -> str | None:
        """Why ``e`` is not an item: a relation outside the families, an unparsed caption, or the base reasons."""
        if e.truth and e.relation is not None and self._fact(e) is None:
            return f"relation {e.relation!r} is in no converse-transfer family"
        if self.spec.dataset == "vsr" and e.truth and self._fact(e) is not None:
            parsed = parse_caption(e.text, str(e.relation))
            if isinstance(parsed, str):
                return parsed
        return super().why_not(e)

    def _arguments(self, e: Example) -> tuple[str, str] | None:
        if self.spec.dataset == "vsr":
            parsed = parse_caption(e.text, str(e.relation))
            return None if isinstance(parsed, str) else (parsed.subject.lower(), parsed.object.lower())
        return (str(e.subject), str(e.object)) if e.subject and e.object and e.subject != e.object else None

    def label(self, e: Example) -> str | None:
        """``yes`` when the stated fact's own subject sorts first; None outside the families or unparsed."""
        fact, args = self._fact(e), self._arguments(e)
        if fact is None or args is None:
            return None
        subj, obj = args[::-1] if fact[1] else args  # the fact's own subject and object
        return "yes" if subj < obj else "no"

    def side(self, e: Example) -> str | None:
        """``train`` for a direct member on a training split, ``test`` for an exchanged one on a test split."""
        families = (VSR_TRANSFER_FAMILIES if self.spec.dataset == "vsr" else SYNTHETIC_TRANSFER_FAMILIES).values()
        if self._fact(e) is None:
            return None
        return converse_side(str(e.relation), e.split, train_relations=[r for f in families for r in f[0]],
                             test_relations=[r for f in families for r in f[1]], train_splits=self.spec.train_splits,
                             test_splits=self.spec.test_splits)

    def control_type(self, e: Example) -> str:
        """The (subject, object) nouns as written."""
        args = self._arguments(e)
        return "|".join(args) if args else str(e.group or e.id)

    def items(self, examples: Sequence[Example]) -> ProbeItems:
        """Items on both sides, minus test captions of an image/scene that has a training caption too."""
        train_groups = {e.group for e in examples if self.keep(e) and self.side(e) == "train"}
        items = super().items([e for e in examples if self.side(e) != "test" or e.group not in train_groups])
        items.concepts = [self._arguments(e) or ("", "") for e in items.examples]
        return items


_GEOMETRY_CEILING = (
    " Lexical ceiling: the relation words fix the {what} for every directional and topological caption "
    "({examples}); only {free} captions leave it to the scene. The held-out paraphrase keeps some trained words "
    "(left/right recur in all horizontal and diagonal paraphrases), so a bag of words is NOT at chance here: compare "
    "an encoder with the bow:/order: floor, not with chance.")


def _geometry_spec(name: str, what: str, examples: str, free: str) -> TaskSpec:
    return TaskSpec(
        name=name, dataset="synthetic", split="heldout-wording", label=what, report_by=("relation", "category"),
        control_type="(subject, object) pair", load_kwargs={"n_scenes": 1440},
        description=f"Synthetic scenes, true captions: the {what}, read from the scene; trained on "
                    f"{len(TEMPLATES) - len(HELDOUT_TEMPLATES)} templates × 2 paraphrases and tested on "
                    f"{len(HELDOUT_TEMPLATES)} unseen templates × the unseen third paraphrase."
                    + _GEOMETRY_CEILING.format(what=what, examples=examples, free=free))


GEOMETRY_TASKS = (
    GeometryTask(_geometry_spec("synthetic-geometry-dx", "sign of dx (subject − object, x right)",
                                "'left of' → negative, 'above' → zero", "near/far"), "dx"),
    GeometryTask(_geometry_spec("synthetic-geometry-dy", "sign of dy (subject − object, y up)",
                                "'above' → positive, 'left of' → zero", "near/far"), "dy"),
    GeometryTask(_geometry_spec("synthetic-geometry-distance",
                                "near/far bin (Chebyshev distance ≤ 1 is near)",
                                "'near', 'far', 'inside' → near or far", "directional"), "distance_bin"),
)

CONVERSE_TRANSFER_TASKS = (
    ConverseTransferTask(TaskSpec(
        name="synthetic-converse-transfer", dataset="synthetic", split="converse-transfer", chance=0.5,
        label="is the alphabetically first object the subject of the stated fact (left/above/upper-left/"
              "upper-right/inside)", report_by=("relation", "category"), control_type="(subject, object) pair",
        load_kwargs={"design": "converse-twins", "n_scenes": 960}, train_splits=("train",), test_splits=("test",),
        description="Converse twins (same shape twice, colours exchanged between twins): train on captions "
                    "with left/above/upper-left/upper-right/inside, test on right/below/lower-right/lower-left/"
                    "contains. By construction a bag of words (unigrams and bigrams) is at chance (every "
                    "caption's twin has the same n-grams and the opposite label) and a first-noun rule scores 0 "
                    "(it learns 'first noun first → yes', which every test item reverses).")),
    ConverseTransferTask(TaskSpec(
        name="vsr-converse-transfer", dataset="vsr", split="converse-transfer", chance=0.5,
        label="is the alphabetically first object the subject of the stated fact",
        report_by=("relation", "category"), control_type="(subject, object) pair",
        train_splits=("train",), test_splits=("test",),
        description="VSR (random split), true captions of 6 converse families (left of, above, in front of, "
                    "inside, part of, surrounding): train on one member ('left of', 'over', ...), test on the "
                    "other ('right of', 'under', ...); test captions of an image with a training caption are "
                    "left out. A first-noun rule scores exactly 0, but a bag of words is not at chance: noun "
                    "pairs carry world regularities (umbrellas are above people) and VSR does not balance them "
                    "as the synthetic twins do. Read it against the bow: floor, never against chance.")),
)

ARGUMENT_ORDER_V2 = ArgumentOrderTask(TaskSpec(
    name="synthetic-argument-order-v2", dataset="synthetic", input="pair-difference", chance=0.5,
    load_kwargs={"n_scenes": 7200}, label="argument order", report_by=("relation", "category"),
    control_type="ordered (subject, object) pair",
    description="Synthetic minimal pairs (A rel B vs B rel A, one template and phrase per pair): from "
                "e(original) − e(swapped), is the alphabetically first object the subject? The subject is the "
                "first noun in exactly half of the scenes, so neither a bag of words (the pair shares its words; "
                "its bigrams show which noun is first, not which is the subject) nor a first-noun rule beats "
                "chance. 7,200 scenes give ≥ 1,000 test pairs."))

TARGET_TASKS: tuple[ProbingTask, ...] = (*GEOMETRY_TASKS, *CONVERSE_TRANSFER_TASKS, ARGUMENT_ORDER_V2)
