"""Hard negatives: same-scene foils and counterfactual renders, object-pair batches, and why they matter.

The key test: a model that sees only *which objects* a caption or image holds solves random
in-batch negatives well above chance but scores exactly chance (0.5) on the hard negatives.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from spatial_probing.data.synthetic import COLOURS, RELATIONS, SHAPES, SceneObject, generate, holds
from spatial_probing.lab import LabConfig, build_corpus, build_tokenizer
from spatial_probing.lab.config import DataSpec, encoder_name, hn_tag, parse_hn_tag
from spatial_probing.lab.data import counterfactual_objects
from spatial_probing.lab.train import _batches, _contrastive_step, hard_accuracy_by_kind

MAX_LEN = 48


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer(MAX_LEN)


@pytest.fixture(scope="module")
def corpus(tokenizer):
    config = LabConfig.model_validate({"data": {"n_scenes": 240, "probe_n_scenes": 96}})
    c = build_corpus(config.data, tokenizer, max_length=MAX_LEN)
    c.render_images(64, show_progress=False)
    return c


def test_counterfactual_keeps_the_objects_and_falsifies_the_caption() -> None:
    examples = [e for e in generate(n_scenes=len(RELATIONS) * 10, seed=3) if e.variant == "original"]
    for ex in examples:
        before = ex.source["scene"]["objects"]
        after = counterfactual_objects(ex)
        strip = [{k: o[k] for k in ("colour", "shape", "size")} for o in before]
        assert [{k: o[k] for k in ("colour", "shape", "size")} for o in after] == strip
        a, b = (SceneObject(**o) for o in after)
        assert not holds(str(ex.relation), a, b), ex.id
        assert holds(str(ex.relation), *(SceneObject(**o) for o in before))
    directional = [e for e in examples if e.category in ("horizontal", "vertical", "diagonal")]
    for ex in directional:  # the minimal change for a direction: the two objects trade places
        (a, b), (ca, cb) = ex.source["scene"]["objects"], counterfactual_objects(ex)
        assert (ca["x"], ca["y"], cb["x"], cb["y"]) == (b["x"], b["y"], a["x"], a["y"])


def test_corpus_hard_negative_captions_are_false_and_share_the_objects(corpus, tokenizer) -> None:
    symmetric = {str(e.relation) in ("near", "far") for e in corpus.examples}
    assert symmetric == {True, False}
    assert [not ok for ok in corpus.swap_ok.tolist()] == [str(e.relation) in ("near", "far") for e in corpus.examples]
    words = lambda ids: {tokenizer.convert_ids_to_tokens(int(i)) for i in ids if i > 4}  # noqa: E731
    names = {w for n in (*COLOURS, *SHAPES) for w in n.split()}
    for i in range(0, len(corpus), 17):
        objects_a = words(corpus.ids_a[i]) & names
        assert words(corpus.ids_foil[i]) & names == objects_a == words(corpus.ids_swap[i]) & names
    assert corpus.cf_images.shape == corpus.images.shape and not torch.equal(corpus.cf_images, corpus.images)


def test_object_pair_batches(tokenizer) -> None:
    corpus = build_corpus(DataSpec(n_scenes=2400, probe_n_scenes=96, heldout="none"), tokenizer, max_length=MAX_LEN)
    assert corpus.summary["mean_scenes_per_object_pair"] > 3
    gen = torch.Generator().manual_seed(0)
    per_epoch = len(corpus) // 32

    def shared(fraction: float) -> float:
        batches = _batches(corpus.pair, 32, fraction, torch.Generator().manual_seed(0))
        out, seen = [], []
        for _ in range(per_epoch):
            idx, hard = next(batches)
            assert len(idx) == 32 and int(hard.sum()) == round(fraction * 32) and bool(hard[: int(hard.sum())].all())
            pairs = corpus.pair[idx].tolist()
            out += [pairs.count(p) > 1 for p, h in zip(pairs, hard.tolist()) if h or fraction == 0]
            seen += idx.tolist()
        assert len(seen) == len(set(seen))  # an epoch visits each scene at most once
        return float(np.mean(out))

    random_share, grouped_share = shared(0.0), shared(1.0)
    assert grouped_share > 0.8 > 0.2 > random_share  # in random batches almost every object pair is unique
    assert 0 < shared(0.5)
    first = next(_batches(corpus.pair, 32, 0.0, gen))[0]
    assert torch.equal(first, next(_batches(corpus.pair, 32, 0.0, torch.Generator().manual_seed(0)))[0])


class _BagText(nn.Module):
    """A 'text encoder' that sees only the bag of objects: one-hot (colour, shape) at each shape word."""

    def __init__(self, tokenizer) -> None:
        super().__init__()
        vocab = tokenizer.get_vocab()
        self.colour = {vocab[c]: i for i, c in enumerate(COLOURS)}
        self.shape = {vocab[s]: i for i, s in enumerate(SHAPES)}
        self.dim = len(COLOURS) * len(SHAPES)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        out = torch.zeros(*input_ids.shape, self.dim)
        for r, row in enumerate(input_ids.tolist()):
            for t in range(1, len(row)):
                if row[t] in self.shape and row[t - 1] in self.colour:
                    out[r, t, self.colour[row[t - 1]] * len(SHAPES) + self.shape[row[t]]] = 1.0
        return type("Out", (), {"last_hidden_state": out})()


class _BagImage(nn.Module):
    """An 'image encoder' that sees only which objects a scene holds (wherever they are): it reads the
    object one-hot that :func:`_bag_images` writes into the first row of channel 0."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return (images[:, 0].flatten(1)[:, : len(COLOURS) * len(SHAPES)] > 0).float()


def _bag_images(examples) -> torch.Tensor:
    """uint8 'images' whose channel 0 holds the one-hot bag of the scene's objects (positions dropped)."""
    out = torch.zeros(len(examples), 3, 8, 8, dtype=torch.uint8)
    for i, ex in enumerate(examples):
        for o in ex.source["scene"]["objects"]:
            k = list(COLOURS).index(o["colour"]) * len(SHAPES) + SHAPES.index(o["shape"])
            out[i, 0].view(-1)[k] = 255
    return out


def _bag_model(tokenizer, vision: bool) -> nn.ModuleDict:
    heads = nn.ModuleDict({"text_proj": nn.Identity(), "scale": _Scale()})
    if vision:
        heads["image"] = _BagImage()
    return nn.ModuleDict({"encoder": _BagText(tokenizer), "heads": heads})


class _Scale(nn.Module):
    def forward(self) -> torch.Tensor:
        return torch.tensor(10.0)


@pytest.mark.parametrize("objective", ["textcl", "vision"])
def test_a_bag_of_objects_model_solves_random_negatives_but_not_hard_ones(corpus, tokenizer, objective: str) -> None:
    model = _bag_model(tokenizer, objective == "vision")
    # the scene and its counterfactual render, as a bag of objects: what a position-blind image encoder sees
    corpus = replace(corpus, images=_bag_images(corpus.examples), cf_images=_bag_images(corpus.counterfactuals))
    idx = torch.arange(64)
    _, metrics = _contrastive_step(objective, model, corpus, idx, torch.ones(64, dtype=torch.bool),
                                   torch.device("cpu"), all_negatives=True)
    assert metrics["random_acc"] > 10 / 64  # object identity alone finds the partner among random scenes (chance 1/64)
    assert metrics["hard_acc"] == pytest.approx(0.5)  # ... and is exactly at chance against same-scene negatives
    if objective == "vision":
        assert metrics["hard_acc_image"] == pytest.approx(0.5) and metrics["hard_acc_text"] == pytest.approx(0.5)


class _BagWords(nn.Module):
    """A 'text encoder' that sees only the bag of words: the one-hot token id at each position."""

    def __init__(self, tokenizer) -> None:
        super().__init__()
        self.dim = len(tokenizer)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        return type("Out", (), {"last_hidden_state": F.one_hot(input_ids, self.dim).float()})()


def test_hard_accuracy_by_kind_separates_word_foils_from_argument_roles(corpus, tokenizer) -> None:
    model = nn.ModuleDict({"encoder": _BagWords(tokenizer),
                           "heads": nn.ModuleDict({"text_proj": nn.Identity(), "scale": _Scale()})})
    by_kind = hard_accuracy_by_kind("textcl", model, corpus, fraction=1.0, device=torch.device("cpu"),
                                    tr=LabConfig().train, tokenizer=tokenizer)
    assert set(by_kind) == {"horizontal", "vertical", "diagonal", "proximity", "topological"}
    assert by_kind["proximity"] == pytest.approx(1.0)  # "far" for "near": a word tells the foil apart
    for kind in ("horizontal", "vertical", "topological"):  # same words as the positive: roles needed
        assert by_kind[kind] == pytest.approx(0.25), kind  # swapped = the anchor's bag (0), foil ties (0.5)


def test_hard_negative_names_stay_distinct() -> None:
    assert [hn_tag(f) for f in (1.0, 0.5, 0.25)] == ["1", "05", "025"]
    assert [parse_hn_tag(t) for t in ("1", "05", "025")] == [1.0, 0.5, 0.25]
    assert encoder_name("lab", "vision", 0) == "lab-vision-s0"
    assert encoder_name("lab", "vision", 0, 1.0) == "lab-vision-hn1-s0"
    config = LabConfig(hard_negatives=(0.0, 0.5, 1.0), seeds=(0,))
    names = [encoder_name("lab", o, 0, f) for o, f in config.arms()]
    assert names == ["lab-mlm-s0", "lab-textcl-s0", "lab-textcl-hn05-s0", "lab-textcl-hn1-s0", "lab-vision-s0",
                     "lab-vision-hn05-s0", "lab-vision-hn1-s0"]
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        LabConfig(hard_negatives=(1.5,))
    with pytest.raises(ValueError, match="same name tag"):
        LabConfig(hard_negatives=(0.5, 0.501))


def test_vision_check_labels_and_probe_known_answers() -> None:
    from spatial_probing.lab.vision_check import displacement_labels, probe_accuracy

    examples = [e for e in generate(n_scenes=120, seed=5) if e.variant == "original"]
    dx, dy, keep = displacement_labels(examples)
    assert len(keep) == sum(e.category != "topological" for e in examples)  # enclosures have no displacement
    for (sx, sy), i in zip(zip(dx, dy), keep):
        first, second = sorted(examples[i].source["scene"]["objects"], key=lambda o: (o["colour"], o["shape"]))
        assert (sx, sy) == (np.sign(first["x"] - second["x"]), np.sign(first["y"] - second["y"]))
    rng = np.random.default_rng(0)
    readable = np.column_stack([dx + rng.normal(0, 0.1, len(dx)), rng.normal(size=(len(dx), 3))])
    assert probe_accuracy(readable, dx)[0] > 0.95  # the sign is in the features: the probe reads it
    acc, low, high = probe_accuracy(rng.normal(size=(len(dx), 4)), dx)
    assert low < np.bincount(dx + 1).max() / len(dx) + 0.1 and low <= acc <= high  # noise: near the majority class
