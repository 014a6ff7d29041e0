"""Reference (model) RDMs from ground truth, picked by name.

* ``relation``  — 0 for two items with the same relation, 1 otherwise (every dataset with relations);
* ``category``  — 0 for the same meta-category (VSR's 7, the synthetic scheme, StepGame's
  cardinal/diagonal/overlap), 1 otherwise;
* ``direction`` — Euclidean distance between the 2-D direction vectors of the items' relations
  (StepGame: ``STEPGAME_DIRECTIONS``, where ``overlap`` is the zero vector; synthetic:
  ``RELATION_DIRECTIONS``). Synthetic ``near``/``far``/``inside``/``contains`` have no direction:
  those items are *excluded* from this reference (and its comparison), and the count is reported
  in :attr:`Reference.note`;
* ``converse``  — synthetic minimal pairs: each caption is read as a proposition
  ``(relation, subject, object)`` normalised so that a sentence and its converse coincide
  (``A left-of B`` ≡ ``B right-of A``; ``near``/``far`` are symmetric, so there a swapped caption
  states the same thing). Within one scene, two captions stating the same proposition (original
  and converse) get 0 and captions stating different ones (swapped, foil) get 1; pairs from
  different scenes are NaN (left out), and inference permutes/resamples within scenes. A high
  similarity means the encoder groups captions by meaning rather than by shared words (the
  swapped caption has exactly the original's words, the converse different relation words).

* ``geometry`` — synthetic scenes: the grid offset ``(dx, dy)`` of the caption's subject from its
  object *as the scene has them* (``Example.source["scene"]["objects"]``), whatever the caption
  claims: Euclidean distance between the items' offsets. A true and a false caption about the
  same two objects in the same order get the same offset; the swapped and the converse caption
  (the other object first) get the opposite one. Unlike ``direction`` (the relation word's
  vector), a false caption's offset is the scene's, not its words'. Items whose objects cannot
  be found are excluded. StepGame: the grid offset of the question's first agent from its second,
  composed along the story's statements (:mod:`spatial_probing.data.stepgame_geometry`, here, where it is
  used), e.g. ``(2, -1)``: its magnitude is in no word of
  the question, and the label (the ``direction`` reference) gives only its sign pattern. Items whose
  offset is not derivable (a statement on the path in an unread template shape) are excluded.

:func:`bag_of_words_rdm` is the lexical RDM partial RSA controls for (cosine distance of unigram +
bigram counts of the texts).

Condition-structured references also carry a condition-level RDM (``labels`` × ``labels``) for
heatmaps; for ``converse`` it is the mean within-scene dissimilarity between caption variants.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from spatial_probing.data.schema import STEPGAME_DIRECTIONS, Example
from spatial_probing.data.synthetic import CONVERSE, RELATION_DIRECTIONS

REFERENCES = ("relation", "category", "direction", "converse", "geometry")
_DIRECTIONS: dict[str, dict[str, tuple[int, int] | None]] = {
    "stepgame": dict(STEPGAME_DIRECTIONS), "synthetic": dict(RELATION_DIRECTIONS)}


class NotApplicable(ValueError):
    """The reference cannot be built from these examples (the message says why)."""


@dataclass(frozen=True)
class Reference:
    """A reference RDM over the items it applies to.

    Attributes:
        name: the reference's name.
        keep: boolean mask over the input examples: the items this reference covers.
        rdm: condensed float64 RDM over the kept items (NaN: the pair does not count).
        labels, condition_rdm: condition names and the condition-level RDM (for reports).
        groups: permutation/bootstrap blocks over the kept items, or None (free exchange).
        note: what was excluded and why ("" when nothing was).
    """

    name: str
    keep: np.ndarray
    rdm: np.ndarray
    labels: np.ndarray
    condition_rdm: np.ndarray
    groups: np.ndarray | None = None
    note: str = ""


def _by_condition(name: str, examples: Sequence[Example], condition: Callable[[Example], str | None],
                  matrix: Callable[[np.ndarray], np.ndarray], missing: str) -> Reference:
    conds = [condition(e) for e in examples]
    keep = np.array([c is not None for c in conds], dtype=bool)
    dropped = int((~keep).sum())
    if keep.sum() < 3:
        raise NotApplicable(f"reference {name!r}: only {int(keep.sum())} of {len(examples)} items have {missing}; "
                            "need at least 3")
    labels, codes = np.unique(np.array([c for c in conds if c is not None], dtype=str), return_inverse=True)
    if labels.size < 2:
        raise NotApplicable(f"reference {name!r}: every item has the same value {labels[0]!r}; need 2 or more")
    cond_rdm = matrix(labels)
    i, j = np.triu_indices(codes.size, k=1)
    note = f"excluded {dropped} of {len(examples)} items without {missing}" if dropped else ""
    return Reference(name, keep, cond_rdm[codes[i], codes[j]].astype(np.float64), labels, cond_rdm, None, note)


def _different(labels: np.ndarray) -> np.ndarray:
    return 1.0 - np.eye(labels.size)


def _direction(examples: Sequence[Example]) -> Reference:
    datasets = {e.dataset for e in examples}
    if len(datasets) != 1 or next(iter(datasets)) not in _DIRECTIONS:
        raise NotApplicable(f"reference 'direction': needs StepGame or synthetic items (direction vectors), "
                            f"got {sorted(datasets)}")
    table = _DIRECTIONS[next(iter(datasets))]

    def vectors(labels: np.ndarray) -> np.ndarray:
        v = np.array([table[r] for r in labels], dtype=np.float64)
        return np.sqrt(((v[:, None, :] - v[None, :, :]) ** 2).sum(-1))

    return _by_condition("direction", examples, lambda e: e.relation if table.get(str(e.relation)) else None,
                         vectors, "a relation with a direction (" +
                         ", ".join(sorted(r for r, d in table.items() if d is None) or ["none lack one"]) +
                         " have none)")


def _proposition(e: Example) -> tuple[str, str, str]:
    own, flipped = (str(e.relation), str(e.subject), str(e.object)), (CONVERSE[str(e.relation)], str(e.object),
                                                                        str(e.subject))
    return min(own, flipped)


def _converse(examples: Sequence[Example]) -> Reference:
    keep = np.array([e.dataset == "synthetic" and e.relation in CONVERSE and bool(e.subject and e.object)
                     and bool(e.group) and bool(e.variant) for e in examples], dtype=bool)
    kept = [e for e, k in zip(examples, keep) if k]
    sizes: dict[str, int] = {}
    for e in kept:
        sizes[str(e.group)] = sizes.get(str(e.group), 0) + 1
    multi = {g for g, s in sizes.items() if s >= 2}
    keep &= np.array([str(e.group) in multi for e in examples], dtype=bool)
    kept = [e for e, k in zip(examples, keep) if k]
    if len(multi) < 2:
        raise NotApplicable("reference 'converse': needs synthetic scenes with at least 2 caption variants each "
                            f"(subject, object, relation, variant); found {len(multi)} such scene(s)")
    groups = np.array([str(e.group) for e in kept])
    props = [_proposition(e) for e in kept]
    prop_codes = np.unique(np.array(["\x1f".join(p) for p in props]), return_inverse=True)[1]
    i, j = np.triu_indices(len(kept), k=1)
    rdm = np.where(groups[i] == groups[j], (prop_codes[i] != prop_codes[j]).astype(np.float64), np.nan)
    variants = np.array([str(e.variant) for e in kept])
    labels, vcodes = np.unique(variants, return_inverse=True)
    within = ~np.isnan(rdm)
    sums, counts = np.zeros((labels.size,) * 2), np.zeros((labels.size,) * 2)
    for a_, b_ in ((vcodes[i][within], vcodes[j][within]), (vcodes[j][within], vcodes[i][within])):
        np.add.at(sums, (a_, b_), rdm[within])
        np.add.at(counts, (a_, b_), 1)
    with np.errstate(invalid="ignore"):
        cond = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    np.fill_diagonal(cond, 0.0)  # a condition with itself (no two captions of one variant share a scene)
    dropped = len(examples) - len(kept)
    note = (f"excluded {dropped} of {len(examples)} items (not synthetic minimal-pair captions, or alone in their "
            "scene)") if dropped else ""
    return Reference("converse", keep, rdm, labels, cond, groups, note)


def _offset(e: Example) -> tuple[tuple[float, float] | None, str]:
    """``(offset, status)``: the scene's ``(dx, dy)`` of the caption's subject relative to its object, or None with
    why (``not-derivable``; StepGame also ``disagrees``, when the story contradicts the label: no offset then,
    rather than overriding the label).

    Synthetic: from the scene's object coordinates. StepGame: the question's first agent from its second, composed
    along the story (:func:`~spatial_probing.data.stepgame_geometry.checked_offset`).
    """
    if e.dataset == "stepgame":
        from spatial_probing.data.stepgame_geometry import checked_offset

        if e.subject is None or e.object is None or e.relation is None:
            return None, "not-derivable"
        offset, status = checked_offset(e.source.get("story") or [], str(e.subject), str(e.object), str(e.relation))
        return (None if offset is None else (float(offset[0]), float(offset[1]))), status
    objects = (e.source.get("scene") or {}).get("objects") or []
    where = {f"{o.get('colour')} {o.get('shape')}": (o.get("x"), o.get("y")) for o in objects if isinstance(o, dict)}
    a, b = where.get(str(e.subject)), where.get(str(e.object))
    if a is None or b is None or None in a + b:
        return None, "not-derivable"
    return (float(a[0] - b[0]), float(a[1] - b[1])), "composed"


def _geometry(examples: Sequence[Example]) -> Reference:
    found = [_offset(e) for e in examples]
    offsets = [o for o, _ in found]
    keep = np.array([o is not None for o in offsets], dtype=bool)
    if keep.sum() < 3:
        raise NotApplicable(f"reference 'geometry': only {int(keep.sum())} of {len(examples)} items have scene "
                            "coordinates for their subject and object (synthetic scenes) or an offset composed "
                            "along the story (StepGame); need at least 3")
    v = np.array([o for o in offsets if o is not None])
    if np.all(v == v[0]):
        raise NotApplicable("reference 'geometry': every item has the same offset; need 2 or more")
    labels, codes = np.unique([f"{dx:+.0f},{dy:+.0f}" for dx, dy in v], return_inverse=True)
    centres = np.array([[float(t) for t in lab.split(",")] for lab in labels])
    cond = np.sqrt(((centres[:, None] - centres[None]) ** 2).sum(-1))
    i, j = np.triu_indices(len(v), k=1)
    rdm = np.sqrt(((v[i] - v[j]) ** 2).sum(-1))
    dropped = int((~keep).sum())
    note = f"excluded {dropped} of {len(examples)} items without scene coordinates or offset" if dropped else ""
    contradicted = sum(status == "disagrees" for _, status in found)
    if contradicted:  # said, not hidden: these stories place the pair where their label does not
        note += f" ({contradicted} of them compose an offset whose sign contradicts their label)"
    return Reference("geometry", keep, rdm, labels, cond, None, note)


def bag_of_words_rdm(texts: Sequence[str]) -> np.ndarray:
    """Condensed cosine-distance RDM of unigram + bigram counts: what the words alone make similar."""
    from sklearn.feature_extraction.text import CountVectorizer

    counts = CountVectorizer(ngram_range=(1, 2), lowercase=True).fit_transform(list(texts)).astype(np.float64)
    x = counts.toarray()
    norms = np.linalg.norm(x, axis=1)
    x = x / np.where(norms > 0, norms, 1.0)[:, None]
    i, j = np.triu_indices(len(texts), k=1)
    return 1.0 - np.einsum("ij,ij->i", x[i], x[j])


_BUILDERS: dict[str, Callable[[Sequence[Example]], Reference]] = {
    "relation": lambda ex: _by_condition("relation", ex, lambda e: e.relation, _different, "a relation"),
    "category": lambda ex: _by_condition("category", ex, lambda e: e.category, _different, "a category"),
    "direction": _direction,
    "converse": _converse,
    "geometry": _geometry,
}


def build_reference(name: str, examples: Sequence[Example]) -> Reference:
    """The reference ``name`` over ``examples`` (:class:`NotApplicable` if these items cannot have it)."""
    if name not in _BUILDERS:
        raise ValueError(f"unknown reference {name!r}; expected one of {list(REFERENCES)}")
    return _BUILDERS[name](list(examples))


def applicable_references(examples: Sequence[Example], names: Sequence[str] | None = None
                          ) -> tuple[dict[str, Reference], dict[str, str]]:
    """``(built, skipped)``: every named (default: every known) reference that applies, and why the rest do not."""
    built: dict[str, Reference] = {}
    skipped: dict[str, str] = {}
    for name in names if names is not None else REFERENCES:
        try:
            built[name] = build_reference(name, examples)
        except NotApplicable as err:
            skipped[name] = str(err)
    return built, skipped
