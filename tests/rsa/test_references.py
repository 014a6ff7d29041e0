"""Reference RDMs on tiny hand-made examples with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from spatial_probing.data import load_dataset
from spatial_probing.data.schema import Example
from spatial_probing.rsa import NotApplicable, applicable_references, build_reference


def ex(i: int, dataset: str = "synthetic", **kw) -> Example:
    return Example(id=f"{dataset}/{i}", dataset=dataset, split="test", text=f"caption {i}", **kw)


def test_relation_and_category_are_same_or_different() -> None:
    items = [ex(0, "vsr", relation="left of", category="Adjacency"),
             ex(1, "vsr", relation="right of", category="Adjacency"),
             ex(2, "vsr", relation="on top of", category="Topological"),
             ex(3, "vsr", relation="left of", category="Adjacency")]
    # pairs in condensed order: 01 02 03 12 13 23
    rel = build_reference("relation", items)
    np.testing.assert_array_equal(rel.rdm, [1, 1, 0, 1, 1, 1])
    assert list(rel.labels) == ["left of", "on top of", "right of"] and rel.groups is None and rel.note == ""
    cat = build_reference("category", items)
    np.testing.assert_array_equal(cat.rdm, [0, 1, 0, 1, 0, 1])
    np.testing.assert_array_equal(cat.condition_rdm, [[0, 1], [1, 0]])


def test_stepgame_direction_distances() -> None:
    items = [ex(0, "stepgame", relation="left"), ex(1, "stepgame", relation="right"),
             ex(2, "stepgame", relation="upper-right"), ex(3, "stepgame", relation="overlap")]
    ref = build_reference("direction", items)
    # left(-1,0) right(1,0) upper-right(1,1) overlap(0,0): 01 02 03 12 13 23
    np.testing.assert_allclose(ref.rdm, [2, np.sqrt(5), 1, 1, 1, np.sqrt(2)])
    assert ref.keep.all()


def test_synthetic_direction_excludes_undirected_relations_and_says_so() -> None:
    items = [ex(0, relation="left"), ex(1, relation="near"), ex(2, relation="above"), ex(3, relation="inside"),
             ex(4, relation="lower-right")]
    ref = build_reference("direction", items)
    np.testing.assert_array_equal(ref.keep, [True, False, True, False, True])
    np.testing.assert_allclose(ref.rdm, [np.sqrt(2), np.sqrt(5), np.sqrt(5)])  # left-above, left-lr, above-lr
    assert "excluded 2 of 5 items" in ref.note and "near" in ref.note and "inside" in ref.note


def _scene(s: str, relation: str, converse: str, foil: str) -> list[Example]:
    spec = {"original": (relation, "A", "B"), "swapped": (relation, "B", "A"), "converse": (converse, "B", "A"),
            "foil": (foil, "A", "B")}
    return [ex(hash((s, v)) % 10**6, relation=r, subject=f"{s}{a}", object=f"{s}{b}", group=s, pair_id=s, variant=v)
            for v, (r, a, b) in spec.items()]


def test_converse_reference_is_same_proposition_within_scene() -> None:
    items = _scene("s1", "left", "right", "above") + _scene("s2", "near", "near", "far")
    ref = build_reference("converse", items)
    sq = np.full((8, 8), np.nan)
    sq[np.triu_indices(8, k=1)] = ref.rdm
    # scene 1 (asymmetric): original ≡ converse; swapped and foil state other things
    assert sq[0, 2] == 0 and sq[0, 1] == 1 and sq[0, 3] == 1 and sq[1, 2] == 1
    # scene 2 (near is symmetric): original ≡ swapped ≡ converse; foil differs
    assert sq[4, 5] == 0 and sq[4, 6] == 0 and sq[5, 6] == 0 and sq[4, 7] == 1
    assert np.isnan(sq[:4, 4:]).all()  # cross-scene pairs do not count
    assert list(ref.groups) == ["s1"] * 4 + ["s2"] * 4
    assert list(ref.labels) == ["converse", "foil", "original", "swapped"]
    assert ref.condition_rdm[2, 0] == 0 and ref.condition_rdm[2, 1] == 1 and ref.condition_rdm[2, 3] == 0.5


def test_applicability_on_real_synthetic_and_errors() -> None:
    examples = load_dataset("synthetic", n_scenes=24)
    built, skipped = applicable_references(examples)
    assert set(built) == {"relation", "category", "direction", "converse", "geometry"} and not skipped
    assert built["direction"].keep.sum() == sum(e.relation not in ("near", "far", "inside", "contains")
                                                for e in examples)
    vsr = [ex(i, "vsr", relation=r, category="c") for i, r in enumerate(["left of", "near", "on"])]
    built, skipped = applicable_references(vsr)
    assert set(built) == {"relation"}
    assert "StepGame or synthetic" in skipped["direction"] and "same value" in skipped["category"]
    assert "minimal-pair" in skipped["converse"] or "scene" in skipped["converse"]
    with pytest.raises(NotApplicable, match="only 2 of 3 items have a relation"):
        build_reference("relation", [ex(0, "vsr", relation="a"), ex(1, "vsr", relation="b"), ex(2, "vsr")])
    with pytest.raises(ValueError, match="unknown reference 'shape'"):
        build_reference("shape", vsr)
