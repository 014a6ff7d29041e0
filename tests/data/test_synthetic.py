from collections import Counter

import numpy as np
import pytest

from spatial_probing.data import DataError, load_dataset, open_image
from spatial_probing.data.synthetic import CONVERSE, RELATIONS, SceneObject, generate, heldout_combinations, holds


def test_deterministic_and_balanced():
    a, b = generate(96, seed=3), generate(96, seed=3)
    assert a == b and generate(96, seed=4) != a
    originals = [e for e in a if e.variant == "original"]
    assert Counter(e.relation for e in originals) == {r: 8 for r in RELATIONS}


def test_variants_truth_matches_geometry():
    for e in generate(120, seed=1):
        objs = {f"{o['colour']} {o['shape']}": SceneObject(**o) for o in e.source["scene"]["objects"]}
        assert e.truth == holds(e.relation, objs[e.subject], objs[e.object])
        if e.variant in ("original", "converse"):
            assert e.truth
        if e.variant == "foil":
            assert not e.truth


def test_minimal_pairs_share_scene_and_swap_arguments():
    by_scene: dict[str, dict] = {}
    for e in generate(24, seed=0):
        by_scene.setdefault(e.pair_id, {})[e.variant] = e
    for fam in by_scene.values():
        o, s, c = fam["original"], fam["swapped"], fam["converse"]
        assert (s.subject, s.object) == (o.object, o.subject) and s.relation == o.relation
        assert c.relation == CONVERSE[o.relation] and len({x.split for x in fam.values()}) == 1


def test_holds_examples():
    a, b = SceneObject("red", "circle", 0, 0), SceneObject("blue", "square", 1, 1)
    assert holds("lower-left", a, b) and holds("near", a, b) and not holds("left", a, b) and not holds("far", a, b)
    assert holds("upper-right", b, a)


def test_compositional_split_holds_out_combinations():
    held = heldout_combinations(0)
    for e in generate(240, seed=0, split_scheme="compositional"):
        objs = {(o["colour"], o["shape"]) for o in e.source["scene"]["objects"]}
        assert (e.split == "test") == bool(objs & held)


def test_images_render_and_differ():
    examples = load_dataset("synthetic", n_scenes=12, seed=0)
    img = np.asarray(open_image(examples[0]))
    assert img.shape == (224, 224, 3) and (img < 250).any()
    assert not np.array_equal(img, np.asarray(open_image(examples[4])))
    assert np.array_equal(img, np.asarray(open_image(examples[1])))  # same scene, same picture


def test_bad_arguments():
    with pytest.raises(DataError, match="n_scenes"):
        generate(0)
    with pytest.raises(DataError, match="unknown synthetic relation"):
        generate(10, relations=("beside",))
    with pytest.raises(DataError, match="COCO"):
        vsr_like = generate(1)[0].model_copy(update={"image": "x.jpg", "dataset": "vsr"})
        open_image(vsr_like)
