"""The content-keyed embedding cache: hits, misses, invalidation, corruption recovery, images."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from spatial_probing.data.schema import Example
from spatial_probing.data.synthetic import generate
from spatial_probing.embed import CacheCorruptionWarning, EncoderConfig, embed_examples, load_encoder


class Spy:
    """Wraps an encoder's ``_encode`` to record which layers were computed."""

    def __init__(self, encoder):
        self.calls: list[list[str]] = []
        inner = encoder._encode

        def spy(texts, images, layers, show_progress):
            self.calls.append(list(layers))
            return inner(texts, images, layers, show_progress)

        encoder._encode = spy


def _npy_files(root):
    return sorted(p for p in root.rglob("*.npy"))


def test_second_run_is_served_from_memory_mapped_cache(tiny, examples, tmp_path):
    enc = load_encoder(str(tiny["bert"]))
    spy = Spy(enc)
    first = embed_examples(examples, enc, cache_dir=tmp_path, show_progress=False)
    assert spy.calls == [["0", "1", "2", "final"]] and len(_npy_files(tmp_path)) == 4
    fresh = load_encoder(str(tiny["bert"]))  # a re-run: new encoder object, weights never loaded
    spy2 = Spy(fresh)
    second = embed_examples(examples, fresh, cache_dir=tmp_path, show_progress=False)
    assert spy2.calls == [] and fresh._model is None
    for k in first:
        assert isinstance(second[k], np.memmap) and not second[k].flags.writeable
        np.testing.assert_array_equal(first[k], second[k])
    assert not list(tmp_path.rglob("*.tmp")), "no temporary files are left behind"
    assert (next(tmp_path.glob("*/encoder.json"))).is_file()


def test_only_missing_layers_are_computed_in_one_pass(tiny, examples, tmp_path):
    enc = load_encoder(str(tiny["bert"]))
    spy = Spy(enc)
    last = embed_examples(examples, enc, layers="last", cache_dir=tmp_path, show_progress=False)
    out = embed_examples(examples, enc, layers="all", cache_dir=tmp_path, show_progress=False)
    assert spy.calls == [["2"], ["0", "1", "final"]]
    np.testing.assert_array_equal(last["2"], out["2"])
    assert list(out) == ["0", "1", "2", "final"]


def test_key_covers_inputs_weights_pooling_and_control_but_not_the_name(tiny, examples, tmp_path):
    def run(cfg_or_name, exs=examples):
        enc = load_encoder(cfg_or_name)
        spy = Spy(enc)
        embed_examples(exs, enc, layers="final", cache_dir=tmp_path, show_progress=False)
        return spy.calls

    path = str(tiny["bert"])
    assert run(path) == [["final"]]
    assert run(EncoderConfig(name="another-name", kind="hf", model_id=path)) == []  # same content → shared
    changed = [examples[0].model_copy(update={"text": "The dog is left of the cat."}), *examples[1:]]
    assert run(path, changed) == [["final"]]
    assert run(path, examples[::-1]) == [["final"]]  # order is part of the input
    assert run(EncoderConfig(name="cls", kind="hf", model_id=path, pooling="cls")) == [["final"]]
    assert run(f"random-init:{path}") == [["final"]]
    seeded = EncoderConfig(name="r", kind="hf", model_id=path, control="random-init", seed=3)
    assert run(seeded) == [["final"]] and run(seeded) == []


@pytest.mark.parametrize("damage", ["truncate", "flip", "drop-meta", "garbage-meta", "drop-npy"])
def test_corrupt_entries_are_reported_and_recomputed(tiny, examples, tmp_path, damage):
    enc = load_encoder(str(tiny["bert"]))
    ref = {k: np.array(v) for k, v in embed_examples(examples, enc, layers="final", cache_dir=tmp_path,
                                                     show_progress=False).items()}
    (npy,) = _npy_files(tmp_path)
    meta = npy.with_suffix(".json")
    data = npy.read_bytes()
    if damage == "truncate":
        npy.write_bytes(data[: len(data) - 37])
    elif damage == "flip":
        npy.write_bytes(data[:-5] + bytes([data[-5] ^ 0xFF]) + data[-4:])
    elif damage == "drop-meta":
        meta.unlink()
    elif damage == "garbage-meta":
        meta.write_text("{not json")
    else:
        npy.unlink()
    spy = Spy(enc)
    with pytest.warns(CacheCorruptionWarning, match=f"corrupt embedding cache entry .*{npy.name}"):
        again = embed_examples(examples, enc, layers="final", cache_dir=tmp_path, show_progress=False)
    assert spy.calls == [["final"]]
    np.testing.assert_array_equal(again["final"], ref["final"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheCorruptionWarning)  # repaired: a clean hit now
        embed_examples(examples, enc, layers="final", cache_dir=tmp_path, show_progress=False)
    assert spy.calls == [["final"]]


def test_no_cache_dir_computes_directly(tiny, examples, tmp_path):
    enc = load_encoder(str(tiny["sbert"]))
    out = embed_examples(examples, enc, layers="0,final", cache_dir=None, show_progress=False)
    assert set(out) == {"0", "final"} and not isinstance(out["final"], np.memmap)


def test_images_of_synthetic_scenes_are_rendered_and_cached(tiny, tmp_path):
    exs = [e for e in generate(n_scenes=6, seed=0) if e.split is not None][:12]
    joint = load_encoder(EncoderConfig(name="cti", kind="clip", model_id=str(tiny["clip"]),
                                       modality="text+image", pooling="eos"))
    out = embed_examples(exs, joint, cache_dir=tmp_path, show_progress=False)
    assert out["concat"].shape == (len(exs), 32)
    image = load_encoder(EncoderConfig(name="ci", kind="clip", model_id=str(tiny["clip"]), modality="image",
                                       pooling="cls"))
    spy = Spy(image)
    first = embed_examples(exs, image, layers="final", cache_dir=tmp_path, show_progress=False)
    embed_examples(exs, image, layers="final", cache_dir=tmp_path, show_progress=False)
    assert len(spy.calls) == 1
    same_scene = [i for i, e in enumerate(exs) if e.image == exs[0].image]
    assert len(same_scene) > 1
    np.testing.assert_array_equal(first["final"][same_scene[0]], first["final"][same_scene[1]])


def test_missing_image_names_the_file(tiny, tmp_path):
    from spatial_probing.data import DataError

    image = load_encoder(EncoderConfig(name="ci", kind="clip", model_id=str(tiny["clip"]), modality="image",
                                       pooling="cls"))
    ex = [Example(id="vsr/x/1", dataset="vsr", split="train", text="a cat", image="000000000001.jpg")]
    with pytest.raises(DataError, match="000000000001.jpg"):
        embed_examples(ex, image, cache_dir=tmp_path, image_dir=tmp_path, show_progress=False)
    with pytest.raises(ValueError, match="no examples"):
        embed_examples([], image, cache_dir=tmp_path)
