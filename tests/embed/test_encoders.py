"""Encoders on tiny random models: layer counts, shapes, pooling, determinism, controls, input checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest_models import SAMPLE_TEXTS as TEXTS
from conftest_models import TINY_HIDDEN, TINY_LAYERS, TINY_PROJECTION
from PIL import Image

from spatial_probing.embed import EncoderConfig, load_encoder, select_layers


def _image(seed: int, size=(40, 56)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8))


def _clip(tiny, modality, pooling="eos", **kw):
    return load_encoder(EncoderConfig(name=f"clip-{modality}", kind="clip", model_id=str(tiny["clip"]),
                                      modality=modality, pooling=pooling, **kw), device="cpu")


@pytest.mark.parametrize("model", ["bert", "mpnet", "sbert"])
def test_text_encoders_give_every_layer_as_float32(tiny, model):
    enc = load_encoder(str(tiny[model]), device="cpu", batch_size=4)
    assert enc.layer_names == [str(i) for i in range(TINY_LAYERS + 1)] + ["final"]
    out = enc.encode(TEXTS)
    assert list(out) == enc.layer_names
    for arr in out.values():
        assert arr.dtype == np.float32 and arr.shape == (len(TEXTS), TINY_HIDDEN) and np.isfinite(arr).all()
    # layers differ from each other (a real forward pass, not copies) ...
    assert not np.allclose(out["0"], out[str(TINY_LAYERS)])
    # ... identical texts give identical rows, different texts different rows
    np.testing.assert_array_equal(out["final"][0], out["final"][5])
    assert not np.allclose(out["final"][0], out["final"][1])
    info = enc.info
    assert info.n_layers == TINY_LAYERS and info.dim == TINY_HIDDEN and len(info.weights_hash) == 64
    assert info.model_dump()["layer_dims"]["final"] == TINY_HIDDEN


def test_results_do_not_depend_on_batching_or_order(tiny):
    a = load_encoder(str(tiny["bert"]), device="cpu", batch_size=1).encode(TEXTS)
    b = load_encoder(str(tiny["bert"]), device="cpu", batch_size=64).encode(TEXTS[::-1])
    for k in a:
        np.testing.assert_allclose(a[k], b[k][::-1], atol=1e-5)


def test_mean_and_cls_pooling_match_transformers(tiny):
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny["bert"])
    model = AutoModel.from_pretrained(tiny["bert"]).eval()
    with torch.no_grad():
        hidden = model(**tok([TEXTS[3]], return_tensors="pt"), output_hidden_states=True).hidden_states
    mean = load_encoder(EncoderConfig(name="m", kind="hf", model_id=str(tiny["bert"]), pooling="mean")).encode(TEXTS)
    cls = load_encoder(EncoderConfig(name="c", kind="hf", model_id=str(tiny["bert"]), pooling="cls")).encode(TEXTS)
    for layer in range(TINY_LAYERS + 1):
        np.testing.assert_allclose(mean[str(layer)][3], hidden[layer][0].mean(0).numpy(), atol=1e-5)
        np.testing.assert_allclose(cls[str(layer)][3], hidden[layer][0, 0].numpy(), atol=1e-5)
    np.testing.assert_array_equal(mean["final"], mean[str(TINY_LAYERS)])
    assert not np.allclose(mean["1"], cls["1"])


def test_sbert_final_equals_sentence_transformers_encode(tiny):
    from sentence_transformers import SentenceTransformer

    ours = load_encoder(str(tiny["sbert"]), device="cpu", batch_size=2).encode(TEXTS, layers="final")["final"]
    ref = SentenceTransformer(str(tiny["sbert"]), device="cpu").encode(TEXTS, convert_to_numpy=True)
    np.testing.assert_allclose(ours, ref, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_clip_text_tower_pools_at_end_of_text_and_projects(tiny):
    from transformers import AutoTokenizer, CLIPModel

    enc = _clip(tiny, "text")
    assert enc.layer_names == [str(i) for i in range(TINY_LAYERS + 1)] + ["final"]
    out = enc.encode(TEXTS)
    assert out["final"].shape == (len(TEXTS), TINY_PROJECTION) and out["1"].shape == (len(TEXTS), TINY_HIDDEN)
    tok, model = AutoTokenizer.from_pretrained(tiny["clip"]), CLIPModel.from_pretrained(tiny["clip"]).eval()
    feats = tok([TEXTS[3]], return_tensors="pt")
    with torch.no_grad():
        o = model.get_text_features(**feats, output_hidden_states=True)
    eos = int((feats["input_ids"][0] == tok.eos_token_id).nonzero()[0])
    np.testing.assert_allclose(out["final"][3], o.pooler_output[0].numpy(), atol=1e-5)
    for layer in range(TINY_LAYERS + 1):
        np.testing.assert_allclose(out[str(layer)][3], o.hidden_states[layer][0, eos].numpy(), atol=1e-5)


def test_clip_image_tower_takes_pil_images(tiny):
    from transformers import AutoImageProcessor, CLIPModel

    enc = _clip(tiny, "image", pooling="cls")
    images = [_image(0), _image(1, (80, 30)), _image(0)]
    out = enc.encode(images=images)
    assert out["final"].shape == (3, TINY_PROJECTION) and out["0"].shape == (3, TINY_HIDDEN)
    model = CLIPModel.from_pretrained(tiny["clip"]).eval()
    pixels = AutoImageProcessor.from_pretrained(tiny["clip"], backend="pil")(images=images[1:2], return_tensors="pt")
    with torch.no_grad():
        ref = model.get_image_features(**pixels).pooler_output[0].numpy()
    np.testing.assert_allclose(out["final"][1], ref, atol=1e-5)
    np.testing.assert_array_equal(out["final"][0], out["final"][2])


def test_clip_text_plus_image_joint_representations(tiny):
    enc = _clip(tiny, "text+image")
    assert enc.layer_names[:3] == ["concat", "sum", "product"]
    images = [_image(i) for i in range(len(TEXTS))]
    out = enc.encode(TEXTS, images)
    t = _clip(tiny, "text").encode(TEXTS, layers="final")["final"]
    v = _clip(tiny, "image", pooling="cls").encode(images=images, layers="final")["final"]
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    np.testing.assert_allclose(out["concat"], np.hstack([t, v]), atol=1e-5)
    np.testing.assert_allclose(out["sum"], t + v, atol=1e-5)
    np.testing.assert_allclose(out["product"], t * v, atol=1e-5)
    assert enc.info.layer_dims["concat"] == 2 * TINY_PROJECTION
    # the same caption with different images gives different joint vectors
    assert not np.allclose(out["product"][0], out["product"][5])


@pytest.mark.parametrize("model", ["bert", "sbert", "clip"])
def test_random_init_control_is_seeded_and_differs_from_pretrained(tiny, model):
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    pre = load_encoder(str(tiny[model])).encode(TEXTS, layers="final")["final"]
    r0 = load_encoder(f"random-init:{tiny[model]}").encode(TEXTS, layers="final")["final"]
    r0_again = load_encoder(f"random-init:{tiny[model]}").encode(TEXTS, layers="final")["final"]
    assert torch.equal(torch.rand(1), before), "re-initialisation must not disturb the caller's RNG"
    cfg = load_encoder(f"random-init:{tiny[model]}").config.model_copy(update={"seed": 7})
    r7 = load_encoder(cfg).encode(TEXTS, layers="final")["final"]
    np.testing.assert_array_equal(r0, r0_again)
    assert not np.allclose(r0, pre, atol=1e-3) and not np.allclose(r0, r7, atol=1e-3)


@pytest.mark.parametrize("model", ["bert", "sbert", "clip"])
def test_static_control_is_mean_of_input_token_embeddings(tiny, model):
    from transformers import AutoModel, AutoTokenizer, CLIPModel

    enc = load_encoder(f"static:{tiny[model]}")
    assert enc.layer_names == ["0"] and enc.config.pooling == "static"
    out = enc.encode(TEXTS)
    assert list(out) == ["0"] and out["0"].shape == (len(TEXTS), TINY_HIDDEN)
    tok = AutoTokenizer.from_pretrained(tiny[model])
    base = CLIPModel.from_pretrained(tiny[model]).text_model if model == "clip" else AutoModel.from_pretrained(
        tiny[model])
    feats = tok([TEXTS[2]], return_special_tokens_mask=True)
    ids = [i for i, s in zip(feats["input_ids"][0], feats["special_tokens_mask"][0]) if not s]
    with torch.no_grad():
        ref = base.get_input_embeddings()(torch.tensor(ids)).mean(0).numpy()
    np.testing.assert_allclose(out["0"][2], ref, atol=1e-6)
    # order-free bag of tokens: a permutation of the words gives the same vector
    swap = enc.encode(["dog the of left is cat the", "the cat is left of the dog"])["0"]
    np.testing.assert_allclose(swap[0], swap[1], atol=1e-6)


def test_encode_rejects_wrong_inputs(tiny):
    text = load_encoder(str(tiny["bert"]))
    with pytest.raises(ValueError, match="takes texts="):
        text.encode(images=[_image(0)])
    with pytest.raises(TypeError, match=r"texts\[1\]: expected str"):
        text.encode(["ok", 3])
    with pytest.raises(ValueError, match="0 inputs"):
        text.encode([])
    with pytest.raises(ValueError, match="unknown layer.*7"):
        text.encode(["a"], layers="0,7")
    joint = _clip(tiny, "text+image")
    with pytest.raises(ValueError, match="one image per text"):
        joint.encode(["a", "b"], [_image(0)])
    with pytest.raises(TypeError, match="PIL"):
        _clip(tiny, "image", pooling="cls").encode(images=[np.zeros((4, 4, 3))])


def test_select_layers():
    names = ["0", "1", "2", "12", "final"]
    assert select_layers("all", names) == names
    assert select_layers("last", names) == ["12"]
    assert select_layers("final", names) == ["final"]
    assert select_layers("0, 12,0", names) == ["0", "12"]
    assert select_layers("last,final", names) == ["12", "final"]
    assert select_layers(["2", 1], names) == ["2", "1"]
    assert select_layers("last", ["concat", "sum", "product"]) == ["concat"]
    with pytest.raises(ValueError, match="empty layer selector"):
        select_layers(" , ", names)
    with pytest.raises(ValueError, match="this encoder has 0, 1, 2, 12, final"):
        select_layers("13", names)


def test_unavailable_device_is_an_error_not_a_silent_fallback(tiny):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(ValueError, match="CUDA is not available"):
        load_encoder(str(tiny["bert"]), device="cuda")
    assert load_encoder(str(tiny["bert"]), device="auto").device.type in {"cpu", "mps"}
