"""The generator's wording design: shared template/phrase per scene, balanced argument order, geometry, twins."""

from collections import Counter

import pytest
from sklearn.feature_extraction.text import CountVectorizer

from spatial_probing.data import DataError, load_dataset
from spatial_probing.data.synthetic import (
    PHRASES, RELATIONS, SUBJECT_FIRST, TEMPLATES, SceneObject, generate, generate_converse_twins, holds,
)


def test_templates_half_subject_first() -> None:
    assert sum(SUBJECT_FIRST) * 2 == len(TEMPLATES)


def test_scene_shares_template_and_phrase_and_subject_first_is_exactly_half() -> None:
    examples = generate(192, seed=5)
    by_scene: dict[str, list] = {}
    for e in examples:
        by_scene.setdefault(e.pair_id, []).append(e)
    for fam in by_scene.values():
        assert len({(e.source["template"], e.source["phrase"]) for e in fam}) == 1
        o = next(e for e in fam if e.variant == "original")
        c = next(e for e in fam if e.variant == "converse")
        assert PHRASES[o.relation].index(PHRASES[o.relation][o.source["phrase"]]) == \
            PHRASES[c.relation].index(PHRASES[c.relation][c.source["phrase"]])
        first_noun = o.subject if o.text.lower().index(o.subject) < o.text.lower().index(o.object) else o.object
        assert (first_noun == o.subject) == o.source["subject_first"]
    originals = [e for e in examples if e.variant == "original"]
    per_relation = Counter((e.relation, e.source["subject_first"]) for e in originals)
    assert all(per_relation[(r, True)] == per_relation[(r, False)] == 8 for r in RELATIONS)


def test_geometry_fields_match_the_scene() -> None:
    for e in generate(60, seed=2):
        objs = {f"{o['colour']} {o['shape']}": SceneObject(**o) for o in e.source["scene"]["objects"]}
        s, o = objs[e.subject], objs[e.object]
        assert (e.source["dx"], e.source["dy"]) == (s.x - o.x, s.y - o.y)
        assert e.source["distance"] == max(abs(s.x - o.x), abs(s.y - o.y))
        assert e.source["distance_bin"] == ("near" if e.source["distance"] <= 1 else "far")
        if e.relation == "left" and e.truth:
            assert e.source["dx"] < 0 and e.source["dy"] == 0


def _ngrams(text: str, token_pattern: str) -> Counter:
    vec = CountVectorizer(ngram_range=(1, 2), token_pattern=token_pattern).fit([text])
    return Counter(dict(zip(vec.get_feature_names_out(), vec.transform([text]).toarray()[0])))


@pytest.mark.parametrize("token_pattern", [r"(?u)\b\w\w+\b", r"(?u)\b\w+\b"])
def test_twins_have_the_same_words_and_bigrams_and_opposite_facts(token_pattern: str) -> None:
    examples = generate_converse_twins(16, seed=1)
    assert len(examples) == 16 * 2 * 4
    by_key: dict[tuple, dict] = {}
    for e in examples:
        by_key.setdefault((e.group, e.variant), {})[e.pair_id[-1]] = e
    for (group, variant), twins in by_key.items():
        x, y = twins["a"], twins["b"]
        assert x.split == y.split and x.source["template"] == y.source["template"] and x.relation == y.relation
        assert _ngrams(x.text, token_pattern) == _ngrams(y.text, token_pattern)
        assert x.subject.split()[1] == x.object.split()[1]  # one shape, two colours
        if variant == "original":  # the same caption frame states opposite facts about the canonical order
            def fact(e):
                objs = {f"{o['colour']} {o['shape']}": SceneObject(**o) for o in e.source["scene"]["objects"]}
                first, second = sorted(objs)
                return holds(e.relation, objs[first], objs[second])
            assert fact(x) != fact(y) and x.truth and y.truth
    assert {e.split for e in examples} == {"train", "test"}


def test_twins_design_through_the_loader_and_bad_design() -> None:
    assert len(load_dataset("synthetic", n_scenes=20, design="converse-twins")) == 10 * 2 * 4
    with pytest.raises(DataError, match="design"):
        load_dataset("synthetic", design="mirror")
    with pytest.raises(DataError, match="n_twins"):
        generate_converse_twins(0)
