"""RSA that tests space: the scene-geometry reference, partial RSA over a bag-of-words RDM, paired encoder tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from spatial_probing.data import load_dataset
from spatial_probing.rsa.inference import bootstrap_samples, paired_bootstrap, partial_spearman
from spatial_probing.rsa.rdm import calc_rdm, to_square
from spatial_probing.rsa.references import bag_of_words_rdm, build_reference
from spatial_probing.rsa.runner import rsa_pairs, with_holm


def test_geometry_reference_reads_the_scene_not_the_words() -> None:
    examples = load_dataset("synthetic", n_scenes=12)
    ref = build_reference("geometry", examples)
    assert ref.keep.all()
    square = to_square(ref.rdm)
    index = {e.id: i for i, e in enumerate(examples)}
    for e in examples:
        if e.variant != "original" or e.relation in ("inside", "contains"):
            continue
        stem = e.id.rsplit("/", 1)[0]
        o, s, c, f = (index[f"{stem}/{v}"] for v in ("original", "swapped", "converse", "foil"))
        assert square[o, f] == 0  # a false claim about the same objects: the scene's offset, not the words'
        assert square[s, c] == 0  # other relation words, same figure and ground
        assert square[o, s] > 0  # same words, the other object first: the opposite offset


def test_bag_of_words_rdm_is_zero_for_the_same_words() -> None:
    rdm = to_square(bag_of_words_rdm(["the red circle is left of the blue square",
                                      "the blue square is left of the red circle", "a green star"]))
    assert rdm[0, 1] < 0.2 and rdm[0, 2] == pytest.approx(1.0)


def _spearman_partial(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> float:
    r = lambda x, y: sps.spearmanr(x, y).statistic  # noqa: E731
    rab, rac, rbc = r(a, b), r(a, c), r(b, c)
    return (rab - rac * rbc) / np.sqrt((1 - rac ** 2) * (1 - rbc ** 2))


def test_partial_spearman_removes_what_the_words_explain() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 4))
    words = calc_rdm(x)
    reference = words + rng.normal(0, 0.05, words.size)  # a reference that the words mostly predict
    lexical_encoder = words + rng.normal(0, 0.01, words.size)
    value, p = partial_spearman(lexical_encoder, reference, words, n_permutations=200)
    assert value == pytest.approx(_spearman_partial(lexical_encoder, reference, words), abs=1e-9)
    assert sps.spearmanr(lexical_encoder, reference).statistic > 0.8 and abs(value) < 0.3
    spatial = calc_rdm(rng.normal(size=(30, 3)))
    value, p = partial_spearman(spatial + rng.normal(0, 0.01, spatial.size), spatial, words, n_permutations=200)
    assert value > 0.8 and p == pytest.approx(1 / 201)


def test_paired_bootstrap_says_which_encoder_fits_better_on_the_same_resamples() -> None:
    rng = np.random.default_rng(1)
    ref = calc_rdm(rng.normal(size=(40, 3)))
    good, noise = ref + rng.normal(0, 0.05, ref.size), calc_rdm(rng.normal(size=(40, 3)))
    sa = bootstrap_samples(good, ref, n_boot=300, seed=0)
    sb = bootstrap_samples(noise, ref, n_boot=300, seed=0)
    lo, hi, p = paired_bootstrap(sa, sb)
    assert lo > 0 and p < 0.01
    lo, hi, p = paired_bootstrap(sa, sa + rng.normal(0, 1e-3, sa.size))
    assert lo < 0 < hi and p > 0.05
    table = pd.DataFrame({"dataset": "d", "encoder": ["A", "B"], "layer": "final", "reference": "geometry",
                          "rdm_method": "cosine", "comparison": "rho_a", "value": [0.9, 0.1], "p_value": [0.001, 0.5],
                          "n_items": 40, "boot": [sa.tolist(), sb.tolist()]})
    pairs = rsa_pairs(table)
    assert len(pairs) == 1 and pairs.iloc[0]["diff"] == pytest.approx(0.8) and pairs.iloc[0].p_holm < 0.01
    holm = with_holm(pd.concat([table, table.assign(reference="relation", p_value=[0.02, 0.9])]))
    assert holm[holm.encoder == "A"].p_holm.tolist() == pytest.approx([0.002, 0.02])
