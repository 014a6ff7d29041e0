"""Lab data: vocabulary coverage, training scenes disjoint from probing scenes, hold-outs really held out."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spatial_probing.data import load_dataset
from spatial_probing.data.synthetic import CONVERSE, heldout_combinations
from spatial_probing.lab import build_corpus, build_tokenizer, build_vocab, check_probe_data
from spatial_probing.lab.config import DataSpec
from spatial_probing.lab.data import image_batch

MAX_LEN = 48


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer(MAX_LEN)


def _objects(examples) -> set[tuple]:
    return {tuple(sorted(tuple(sorted(o.items())) for o in e.source["scene"]["objects"])) for e in examples}


def test_vocabulary_covers_every_probe_caption(tokenizer) -> None:
    vocab = build_vocab()
    assert len(vocab) == len(set(vocab)) and vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    texts = [e.text for e in load_dataset("synthetic", n_scenes=240, seed=7)]  # all four caption variants
    ids = tokenizer(texts)["input_ids"]
    assert not any(tokenizer.unk_token_id in row for row in ids)
    assert tokenizer.decode(ids[0], skip_special_tokens=True) == texts[0].lower()  # word-level round trip


def test_training_scenes_are_disjoint_from_the_probe_scenes(tokenizer) -> None:
    # n_scenes large enough that some generated scenes repeat probe scenes exactly and must be dropped
    spec = DataSpec(n_scenes=2400, seed=1, probe_seed=0, probe_n_scenes=480, heldout="none")
    corpus = build_corpus(spec, tokenizer, max_length=MAX_LEN)
    probe = load_dataset("synthetic")  # what the synthetic tasks probe by default: seed 0, 480 scenes
    assert not _objects(corpus.examples) & _objects(probe)
    dropped = corpus.summary["dropped"]["probe_duplicate"]
    assert dropped > 0 and len(corpus) == 2400 - dropped
    assert all(e.truth and e.variant == "original" for e in corpus.examples)  # true captions only
    assert len(corpus.captions_b) == len(corpus) and corpus.ids_a.shape == (len(corpus), MAX_LEN)


def test_heldout_evaluation_scenes_are_new_to_training_and_probing(tokenizer) -> None:
    spec = DataSpec(n_scenes=2400, probe_n_scenes=480, eval_n_scenes=600, heldout="none")
    train = build_corpus(spec, tokenizer, max_length=MAX_LEN)
    held = build_corpus(spec, tokenizer, max_length=MAX_LEN, held_out=True)
    assert held.summary["seed"] == spec.eval_seed and held.summary["dropped"]["probe_duplicate"] > 0
    assert not _objects(held.examples) & (_objects(train.examples) | _objects(load_dataset("synthetic")))
    with pytest.raises(ValueError, match="eval_seed"):
        DataSpec(eval_seed=1)


def test_compositional_holdout_removes_every_probe_test_combination(tokenizer) -> None:
    spec = DataSpec(n_scenes=600, heldout="compositional")
    corpus = build_corpus(spec, tokenizer, max_length=MAX_LEN)
    held = heldout_combinations(spec.probe_seed)
    seen = {(o["colour"], o["shape"]) for e in corpus.examples for o in e.source["scene"]["objects"]}
    assert not seen & held and corpus.summary["dropped"]["heldout_combination"] > 0
    test = load_dataset("synthetic", split="test", split_scheme="compositional")
    test_combos = {(o["colour"], o["shape"]) for e in test for o in e.source["scene"]["objects"]}
    assert held <= test_combos  # the probe's test objects are exactly the ones the encoder never saw
    for text in corpus.captions_a + corpus.captions_b:
        assert not any(f"{c} {s}" in text for c, s in held)


def test_heldout_relations_and_their_converses_are_absent(tokenizer) -> None:
    spec = DataSpec(n_scenes=600, heldout_relations=("upper-left", "near"), heldout="none")
    corpus = build_corpus(spec, tokenizer, max_length=MAX_LEN)
    absent = {"upper-left", CONVERSE["upper-left"], "near"}
    assert not absent & {str(e.relation) for e in corpus.examples}
    assert not any(p in t for t in corpus.captions_a + corpus.captions_b
                   for p in ("to the upper left of", "diagonally down and right of", "close to"))
    assert set(corpus.summary["relations"]) == {"left", "right", "above", "below", "upper-right", "lower-left",
                                                "far", "inside", "contains"}


def test_images_are_rendered_once_as_uint8_and_scaled_per_batch(tokenizer) -> None:
    corpus = build_corpus(DataSpec(n_scenes=24, heldout="none"), tokenizer, max_length=MAX_LEN)
    images = corpus.render_images(16, show_progress=False)
    assert images.dtype == torch.uint8 and images.shape == (24, 3, 16, 16)
    assert corpus.render_images(16, show_progress=False) is images
    x = image_batch(images[:4])
    assert x.dtype == torch.float32 and x.min() >= -1 and x.max() <= 1
    assert np.isclose(float(x.max()), 1.0)  # white background → +1
    assert len({images[i].numpy().tobytes() for i in range(24)}) == 24  # every scene draws differently


def test_too_few_scenes_after_holdouts_is_an_error(tokenizer) -> None:
    with pytest.raises(ValueError, match="training scene"):
        build_corpus(DataSpec(n_scenes=12, heldout_relations=tuple(CONVERSE), heldout="none"), tokenizer,
                     max_length=MAX_LEN)


def test_probe_tasks_must_read_the_scenes_kept_out_of_training() -> None:
    spec = DataSpec(probe_seed=0, probe_n_scenes=480)
    check_probe_data(spec, {"synthetic-relation": {}, "synthetic-argument-order": {"n_scenes": 240},
                            "vsr-relation": {"seed": 9}})
    with pytest.raises(ValueError, match=r"task_options\.synthetic-relation\.seed is 1 .*probe_seed is 0"):
        check_probe_data(spec, {"synthetic-relation": {"seed": 1}})
    with pytest.raises(ValueError, match=r"synthetic-argument-order\.n_scenes is 960 .*raise data\.probe_n_scenes"):
        check_probe_data(spec, {"synthetic-argument-order": {"n_scenes": 960}})
