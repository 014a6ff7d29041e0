"""The lexical-floor encoders bow: and order: — known answers, training-only vocabulary, cache identity, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from spatial_probing.data.schema import Example
from spatial_probing.embed import embed_examples, get_encoder_config, inputs_hash, load_encoder, noun_slots


def ex(i: int, text: str, subject: str | None = None, obj: str | None = None, split: str = "train",
       dataset: str = "synthetic", **kw) -> Example:
    return Example(id=f"t/{i}", dataset=dataset, split=split, text=text, subject=subject, object=obj, **kw)


TRAIN = [ex(0, "The cat is left of the dog.", "cat", "dog"), ex(1, "The dog is right of the cat.", "dog", "cat"),
         ex(2, "A red circle is near a blue square.", "red circle", "blue square")]
ORIGINAL = ex(10, "The cat is left of the dog.", "cat", "dog", "test")
SWAPPED = ex(11, "The dog is left of the cat.", "dog", "cat", "test")
CONVERSE = ex(12, "The dog is right of the cat.", "dog", "cat", "test")  # same meaning as ORIGINAL


def features(name: str, examples: list[Example], train: list[Example] = TRAIN) -> tuple[np.ndarray, list[str]]:
    enc = load_encoder(name).fit(train)
    return enc.encode_examples(examples)["0"], list(enc.vocabulary_)


def test_bow_vocabulary_comes_from_the_training_split_only() -> None:
    x, vocab = features("bow:", [ex(20, "The zebra is left of the dog.", split="test"),
                                 ex(21, "The okapi is left of the dog.", split="test")])
    assert not any("zebra" in t or "okapi" in t for t in vocab)
    assert {"cat", "dog", "cat is", "left of", "a"} <= set(vocab)  # one-letter words are kept ("agent A")
    np.testing.assert_array_equal(x[0], x[1])  # the test-only words give no feature
    assert x[0][vocab.index("dog")] == 1 and x[0][vocab.index("the")] == 2


def test_bow_swapped_arguments_share_every_word_and_differ_only_in_the_bigrams_beside_the_nouns() -> None:
    x, vocab = features("bow:", [ORIGINAL, SWAPPED])
    unigrams = [j for j, t in enumerate(vocab) if " " not in t]
    np.testing.assert_array_equal(x[0, unigrams], x[1, unigrams])  # the same bag of words
    differ = {vocab[j] for j in np.flatnonzero(x[0] != x[1])}
    assert differ == {"cat is", "dog is"}  # bigrams carry local order: that is all bow: sees of it
    cv, _ = features("bow:", [ex(30, "cat and dog"), ex(31, "dog and cat")], train=[ex(32, "cat and dog")])
    assert not np.array_equal(cv[0], cv[1])


def test_order_distinguishes_swapped_arguments_and_puts_the_converse_subject_first() -> None:
    x, vocab = features("order:", [ORIGINAL, SWAPPED, CONVERSE])
    v = len(vocab)
    assert x.shape == (3, 2 * v + 1) and (x.sum(axis=1) == 2).all() and not x[:, -1].any()
    assert not np.array_equal(x[0], x[1])
    first = {vocab[int(np.argmax(row[:v]))] for row in x[1:]}
    assert first == {"dog"}  # "the dog is right of the cat": dog fills the first slot
    np.testing.assert_array_equal(x[1], x[2])  # converse and swapped have the same slots, different meaning
    assert vocab[int(np.argmax(x[0][:v]))] == "cat" and vocab[int(np.argmax(x[0][v:]))] == "dog"


def test_order_reads_surface_order_not_the_subject_field() -> None:
    passive = ex(40, "Left of the dog is a cat.", "cat", "dog")  # subject second in the text
    assert noun_slots(passive) == (("dog", "cat"), "located")
    stepgame = ex(41, "K is above B. B is left of Q. What is the relation of the agent Q to the agent K?", "Q", "K",
                  dataset="stepgame", source={"question": "What is the relation of the agent Q to the agent K?"})
    assert noun_slots(stepgame) == (("q", "k"), "located")  # the question's agents, not the story's first mention
    nested = ex(42, "The hot dog is next to the dog.", "dog", "hot dog")  # an item inside the other
    assert noun_slots(nested) == (("hot dog", "dog"), "located")


def test_order_counts_examples_whose_slots_are_not_found(tmp_path: Path) -> None:
    enc = load_encoder("order:").fit(TRAIN)
    lost = [ex(50, "Nothing to see.", "cat", "dog", "test"), ex(51, "The cat sleeps.", None, None, "test")]
    with pytest.warns(UserWarning, match="not found in 2 of 3 examples"):
        x = embed_examples([ORIGINAL, *lost], enc, cache_dir=tmp_path, show_progress=False)["0"]
    assert (x[1:, :-1] == 0).all() and (x[:, -1] == [0, 1, 1]).all() and x[0].sum() == 2  # only 'unlocated' 
    assert enc.info.slot_counts == {"located": 1, "no-arguments": 1, "not-in-text": 1}
    assert noun_slots(lost[0]) == (None, "not-in-text") and noun_slots(lost[1]) == (None, "no-arguments")


def test_lexical_encoders_go_through_the_cache_deterministically(tmp_path: Path) -> None:
    data = [ORIGINAL, SWAPPED, CONVERSE]
    for name in ("bow:", "order:"):
        enc = load_encoder(name).fit(TRAIN)
        a = np.array(embed_examples(data, enc, cache_dir=tmp_path, show_progress=False)["0"])
        assert len(list(tmp_path.rglob("0.npy"))) >= 1
        again = load_encoder(name).fit(TRAIN)
        assert again.fingerprint() == enc.fingerprint() and again.info.vocabulary_hash == enc.info.vocabulary_hash
        np.testing.assert_array_equal(embed_examples(data, again, cache_dir=tmp_path, show_progress=False)["0"], a)
        np.testing.assert_array_equal(embed_examples(data, again, cache_dir=None, show_progress=False)["0"], a)
        other = load_encoder(name).fit(TRAIN[:1])
        assert other.fingerprint() != enc.fingerprint()  # another vocabulary, another cache entry
        assert other.weights_hash() == enc.weights_hash()  # the resume key: the method, known before fitting
        assert enc.layer_names == ["0"] and enc.info.layer_dims == {"0": a.shape[1]}
    unparsed = [ex(10, ORIGINAL.text, None, None, "test")]  # same text, no slots: order: reads the arguments too
    enc = load_encoder("order:").fit(TRAIN)
    with pytest.warns(UserWarning, match="not found in 1 of 1"):  # once per example list
        assert inputs_hash([ORIGINAL], enc) != inputs_hash(unparsed, enc) != inputs_hash(unparsed, load_encoder("bow:"))
        assert enc.encode_examples(unparsed)["0"].tolist() == [[0.0] * 2 * len(enc.vocabulary_) + [1.0]]


def test_lexical_names_resolve_everywhere_and_misuse_is_a_clear_error() -> None:
    assert get_encoder_config("bow:").control == "bow" and get_encoder_config("order:").kind == "lexical"
    with pytest.raises(ValueError, match="do not nest"):
        get_encoder_config("static:bow:")
    with pytest.raises(ValueError, match="has no weights"):
        load_encoder("bow:", model_path="/models/x")
    with pytest.raises(NotFittedError, match=r"call \.fit"):
        load_encoder("bow:").encode(["a text"])
    with pytest.raises(ValueError, match="not bare texts"):
        load_encoder("order:").fit(TRAIN).encode(["The cat is left of the dog."])
    with pytest.raises(ValueError, match="at least one training example"):
        load_encoder("bow:").fit([])
    with pytest.raises(ValueError, match="nothing to encode"), pytest.warns(UserWarning, match="not found"):
        load_encoder("order:").fit([ex(60, "The cat sleeps.")])
    np.testing.assert_array_equal(load_encoder("bow:").fit(TRAIN).encode(["The cat."])["0"],
                                  load_encoder("bow:").fit(TRAIN).encode_examples([ex(61, "The cat.")])["0"])


def test_embed_cli_fits_the_floor_on_the_training_split(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from spatial_probing.cli import app

    result = CliRunner().invoke(app, ["embed", "--dataset", "synthetic", "--encoder", "bow:", "--split", "test",
                                      "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    manifest = json.loads(next((tmp_path / "manifests").glob("*.json")).read_text())
    fit = manifest["encoder"]["fits"][0]
    from spatial_probing.data import load_dataset

    assert fit["n_examples"] == len(load_dataset("synthetic", split="train")) > 0  # train, though test was embedded
    assert manifest["n_examples"] == len(load_dataset("synthetic", split="test"))
