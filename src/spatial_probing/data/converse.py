"""Converse relations (``X REL Y`` ⇔ ``Y CONVERSE(REL) X``) and a parser for VSR's "The X is REL the Y." captions.

Why: the meaning-over-words index and the converse-transfer tasks need, for a caption, a paraphrase
with the same meaning in other words ("the Y is right of the X" for "the X is left of the Y") and the
argument swap with the same words and another meaning. Both need a relation's converse, decided here
once, relation by relation, and documented.

Every VSR relation (the 66 of ``rel_meta_category_dict.txt`` plus ``congruent``) is classified as

* **converse** — another VSR relation states the same fact with the arguments exchanged
  (``left of`` ↔ ``right of``). The map need not be an involution: ``in`` → ``contains`` (a
  container contains what is in it), but ``contains`` → ``inside``.
* **symmetric** — ``X REL Y`` ⇔ ``Y REL X`` (``near``, ``touching``): the converse paraphrase would be
  the argument swap itself, so such a relation gives no (same meaning, other words) triple.
* **none** — no VSR relation states the converse (motion and path relations such as ``toward``,
  three-place ``between``, part/whole locations such as ``at the edge of``), with the reason.

Synthetic relations come from :mod:`spatial_probing.data.synthetic` (every one has a converse; ``near``
and ``far`` are symmetric).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Literal

from spatial_probing.data.synthetic import CONVERSE as SYNTHETIC_CONVERSE

ConverseKind = Literal["converse", "symmetric", "none"]

#: VSR relation → converse relation (a *different* VSR relation stating the same fact, arguments exchanged).
VSR_CONVERSE: dict[str, str] = {
    "left of": "right of", "right of": "left of",
    "at the left side of": "at the right side of", "at the right side of": "at the left side of",
    "above": "below", "below": "above",
    "over": "under", "under": "over",
    "on top of": "beneath", "beneath": "on top of",
    "in front of": "behind", "behind": "in front of",
    "ahead of": "behind",  # "X is ahead of Y" = "Y is behind X"
    "inside": "contains", "contains": "inside",
    "within": "contains", "in": "contains",  # what is within/in Y is contained by Y
    "surrounding": "enclosed by", "enclosed by": "surrounding",
    "part of": "has as a part", "has as a part": "part of",
    "consists of": "part of",  # "X consists of Y" = "Y is part of X"
}

#: Symmetric VSR relations: the converse paraphrase equals the argument swap.
VSR_SYMMETRIC: frozenset[str] = frozenset({
    "adjacent to", "alongside", "at the side of", "beside", "next to", "by", "close to", "near", "far from",
    "far away from", "connected to", "detached from", "touching", "parallel to", "perpendicular to",
    "across from", "opposite to", "congruent",
})

#: VSR relations with no converse among VSR's relations, and why.
VSR_NO_CONVERSE: dict[str, str] = {
    **{r: "motion or path relation: no static converse" for r in (
        "off", "past", "toward", "down", "deep down", "up", "away from", "along", "from", "into", "to", "across",
        "through", "down from", "out of", "beyond", "after")},
    "around": "ambiguous ('near' or 'surrounding'): no single converse",
    "attached to": "directed attachment; VSR has no 'has attached' relation",
    "against": "support/leaning is directed; VSR has no converse relation",
    "at the edge of": "part/region of the object: no converse relation",
    "at the back of": "ambiguous ('behind' or 'at the rear part of'): no single converse",
    "in the middle of": "part/region of the object: no converse relation",
    "facing": "orientation of the subject only: the object need not face back",
    "facing away from": "orientation of the subject only",
    "on": "support and contact: 'under' would drop the contact",
    "at": "location without a direction: no converse relation",
    "with": "accompaniment: no spatial converse",
    "among": "the object is plural: no converse",
    "between": "three-place relation: no converse",
    "outside": "no VSR relation states 'does not contain'",
}

#: VSR relations written as a verb ("The X contains the Y."); every other relation follows "is".
VERB_RELATIONS: frozenset[str] = frozenset({"contains", "consists of", "has as a part"})


def converse_kind(relation: str, dataset: str = "vsr") -> ConverseKind:
    """``converse``, ``symmetric`` or ``none`` for ``relation`` of ``dataset`` (``vsr`` or ``synthetic``).

    Raises ``KeyError`` for a relation this module has not classified (never a silent guess).
    """
    if dataset == "synthetic":
        conv = SYNTHETIC_CONVERSE[relation]
        return "symmetric" if conv == relation else "converse"
    if dataset != "vsr":
        raise ValueError(f"dataset={dataset!r}: converses are defined for 'vsr' and 'synthetic'")
    if relation in VSR_CONVERSE:
        return "converse"
    if relation in VSR_SYMMETRIC:
        return "symmetric"
    if relation in VSR_NO_CONVERSE:
        return "none"
    raise KeyError(f"VSR relation {relation!r} is not classified in spatial_probing.data.converse")


def converse_of(relation: str, dataset: str = "vsr") -> str | None:
    """The converse relation (``relation`` itself when symmetric), or None when it has none."""
    kind = converse_kind(relation, dataset)
    if kind == "none":
        return None
    if kind == "symmetric":
        return relation
    return SYNTHETIC_CONVERSE[relation] if dataset == "synthetic" else VSR_CONVERSE[relation]


def no_converse_reason(relation: str, dataset: str = "vsr") -> str | None:
    """Why ``relation`` gives no (converse, swap) triple: None when it does."""
    kind = converse_kind(relation, dataset)
    if kind == "symmetric":
        return "symmetric relation (the converse is the argument swap)"
    if kind == "none":
        return f"no converse: {VSR_NO_CONVERSE[relation]}"
    return None


@dataclass(frozen=True)
class ParsedCaption:
    """``The {subject} is {relation} the {object}.`` (or the verb form for :data:`VERB_RELATIONS`)."""

    subject: str
    relation: str
    object: str


def render_caption(subject: str, relation: str, obj: str) -> str:
    """VSR's caption form: ``The cat is left of the dog.`` / ``The box contains the cat.``"""
    link = relation if relation in VERB_RELATIONS else f"is {relation}"
    return f"The {subject} {link} the {obj}."


def parse_caption(caption: str, relation: str) -> ParsedCaption | str:
    """Parse a VSR caption whose record names ``relation``; returns the parse or the reason it failed.

    Accepted: ``The X is REL the Y.`` and, for :data:`VERB_RELATIONS`, ``The X REL the Y.`` (exact
    articles and final full stop, as VSR writes 10,972 of its 10,972 captions).
    """
    link = re.escape(relation) if relation in VERB_RELATIONS else r"is " + re.escape(relation)
    m = re.fullmatch(rf"The (?P<x>.+?) {link} the (?P<y>.+?)\.", caption.strip())
    if m is None:
        return f"caption is not 'The X {'REL' if relation in VERB_RELATIONS else 'is REL'} the Y.'"
    x, y = m.group("x").strip(), m.group("y").strip()
    if x.lower() == y.lower():
        return "subject and object are the same noun (the swap would not change the caption)"
    return ParsedCaption(x, relation, y)


@dataclass(frozen=True)
class Triple:
    """One caption, its converse paraphrase (same meaning, other words) and its argument swap (same words)."""

    original: str
    converse: str
    swapped: str
    relation: str


def vsr_triple(caption: str, relation: str) -> Triple | str:
    """The (original, converse, swapped) triple of a VSR caption, or the reason there is none."""
    try:
        why = no_converse_reason(relation, "vsr")
    except KeyError as err:
        return str(err.args[0])
    if why is not None:
        return why
    parsed = parse_caption(caption, relation)
    if isinstance(parsed, str):
        return parsed
    conv = VSR_CONVERSE[relation]
    return Triple(caption.strip(), render_caption(parsed.object, conv, parsed.subject),
                  render_caption(parsed.object, relation, parsed.subject), relation)


def parse_report(records: list[tuple[str, str]]) -> dict[str, object]:
    """How many (caption, relation) records parse and give triples, with skip reasons counted."""
    reasons: Counter[str] = Counter()
    parsed = triples = 0
    for caption, relation in records:
        p = parse_caption(caption, relation)
        parsed += not isinstance(p, str)
        t = vsr_triple(caption, relation)
        if isinstance(t, str):
            reasons[t] += 1
        else:
            triples += 1
    return {"n": len(records), "parsed": parsed, "unparsed": len(records) - parsed, "triples": triples,
            "skipped": len(records) - triples, "skip_reasons": dict(reasons.most_common())}


#: Converse-transfer families for VSR: fact → (relations stating it as "X fact Y", relations stating it
#: with the arguments exchanged). A probe trains on the first member and is tested on the second.
VSR_TRANSFER_FAMILIES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "left of": (("left of", "at the left side of"), ("right of", "at the right side of")),
    "above": (("above", "over", "on top of"), ("below", "under", "beneath")),
    "in front of": (("in front of", "ahead of"), ("behind",)),
    "inside": (("inside", "within", "in"), ("contains",)),
    "part of": (("part of",), ("has as a part", "consists of")),
    "surrounding": (("surrounding",), ("enclosed by",)),
}
#: Synthetic converse-transfer families: fact → (train member, test member).
SYNTHETIC_TRANSFER_FAMILIES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "left": (("left",), ("right",)), "above": (("above",), ("below",)),
    "upper-left": (("upper-left",), ("lower-right",)), "upper-right": (("upper-right",), ("lower-left",)),
    "inside": (("inside",), ("contains",)),
}


def transfer_fact(relation: str, dataset: str = "vsr") -> tuple[str, bool] | None:
    """``(fact, exchanged)``: the converse-transfer fact ``relation`` states, and whether it states it with the
    arguments exchanged ("X right of Y" states "Y left of X"); None when it belongs to no family."""
    families = VSR_TRANSFER_FAMILIES if dataset == "vsr" else SYNTHETIC_TRANSFER_FAMILIES
    for fact, (direct, exchanged) in families.items():
        if relation in direct:
            return fact, False
        if relation in exchanged:
            return fact, True
    return None
