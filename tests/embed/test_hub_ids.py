"""Hub ids and folders as encoder names: kind read from the model's files, revisions pinned, offline errors clear.

The Hugging Face cache is a temporary folder laid out as the hub client writes it
(``models--org--name/snapshots/<rev>/...`` with ``refs/main``), so nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest_models import SAMPLE_TEXTS, build_tiny_bert
from typer.testing import CliRunner

from spatial_probing.cli import app
from spatial_probing.embed import ModelNotFoundError, get_encoder_config, load_encoder
from spatial_probing.embed import resolve as resolve_mod
from spatial_probing.errors import UnknownNameError

REV_MAIN = "a" * 40
REV_OLD = "b" * 40
HUB = {"org/tiny-bert": "bert", "org/tiny-mpnet": "mpnet", "org/tiny-sbert": "sbert", "org/tiny-clip": "clip"}


def _place(cache: Path, repo: str, folder: Path, rev: str, *, main: bool = True) -> Path:
    """Copy a saved model into the hub cache layout under revision ``rev`` (``refs/main`` → it if ``main``)."""
    root = cache / ("models--" + repo.replace("/", "--"))
    snapshot = shutil.copytree(folder, root / "snapshots" / rev)
    if main:
        (root / "refs").mkdir(parents=True, exist_ok=True)
        (root / "refs" / "main").write_text(rev)
    return snapshot


@pytest.fixture(scope="module")
def hub_cache(tiny: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("hf-home")
    cache = home / "hub"
    for repo, kind in HUB.items():
        _place(cache, repo, tiny[kind], REV_MAIN)
    old = build_tiny_bert(tmp_path_factory.mktemp("old-bert") / "bert", seed=1234)  # other weights, older revision
    _place(cache, "org/tiny-bert", old, REV_OLD, main=False)
    return cache


@pytest.fixture
def offline_cache(hub_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(hub_cache.parent))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setattr(resolve_mod, "_probe_result", {})
    return hub_cache


@pytest.mark.parametrize(("name", "kind", "modality", "pooling"), [
    ("org/tiny-bert", "hf", "text", "mean"), ("org/tiny-mpnet", "hf", "text", "mean"),
    ("org/tiny-sbert", "sbert", "text", "mean"), ("org/tiny-clip", "clip", "text", "eos"),
    ("org/tiny-clip#image", "clip", "image", "cls"), ("org/tiny-clip#text+image", "clip", "text+image", "eos"),
])
def test_hub_id_kind_and_pooling_come_from_the_cached_config(offline_cache, name, kind, modality, pooling):
    cfg = get_encoder_config(name)
    assert (cfg.name, cfg.kind, cfg.modality, cfg.pooling) == (name, kind, modality, pooling)
    assert cfg.model_id == name.split("#")[0]


def test_hub_id_encodes_like_its_folder_and_controls_apply(offline_cache, tiny):
    hub = load_encoder("org/tiny-sbert", device="cpu")
    assert hub.resolved.source == "hf:org/tiny-sbert" and hub.resolved.revision == REV_MAIN
    folder = load_encoder(str(tiny["sbert"]), device="cpu")
    np.testing.assert_array_equal(hub.encode(SAMPLE_TEXTS)["final"], folder.encode(SAMPLE_TEXTS)["final"])
    assert hub.weights_hash() == folder.weights_hash()
    static = load_encoder("static:org/tiny-bert", device="cpu")
    assert static.config.control == "static" and static.layer_names == ["0"]


def test_revision_pinning_picks_the_snapshot(offline_cache):
    main, old = load_encoder("org/tiny-bert", device="cpu"), load_encoder(f"org/tiny-bert@{REV_OLD}", device="cpu")
    assert main.resolved.revision == REV_MAIN and old.resolved.revision == REV_OLD
    assert old.config.revision == REV_OLD and old.name == f"org/tiny-bert@{REV_OLD}"
    assert main.weights_hash() != old.weights_hash()  # other weights under the same id
    assert not np.allclose(main.encode(SAMPLE_TEXTS)["final"], old.encode(SAMPLE_TEXTS)["final"])
    with pytest.raises(ModelNotFoundError, match=f"revision {'c' * 40}"):
        load_encoder(f"org/tiny-bert@{'c' * 40}")


def test_missing_hub_id_offline_says_how_to_provide_it(offline_cache):
    with pytest.raises(ModelNotFoundError) as err:
        get_encoder_config("org/not-cached")
    msg = str(err.value)
    assert "'org/not-cached'" in msg and "HF_HUB_OFFLINE" in msg and "--model-path DIR" in msg
    rephrased = str(err.value.provide_with("with the run config's `model_paths: {org/not-cached: DIR}`"))
    assert "model_paths: {org/not-cached: DIR}" in rephrased and "--model-path" not in rephrased


def test_typo_of_a_registered_name_suggests_it(offline_cache):
    with pytest.raises(UnknownNameError, match="did you mean 'sbert-minilm'") as err:
        get_encoder_config("sbert-minlm")
    assert isinstance(err.value, KeyError) and isinstance(err.value, ValueError)
    pinned = get_encoder_config("bert@v1")  # a registered name with a pinned revision
    assert (pinned.name, pinned.model_id, pinned.revision, pinned.pooling) == ("bert@v1", "bert-base-uncased", "v1",
                                                                               "mean")
    with pytest.raises(ValueError, match="unknown modality 'audio'"):
        get_encoder_config("org/tiny-clip#audio")
    with pytest.raises(ValueError, match="needs a CLIP model"):
        get_encoder_config("org/tiny-bert#image")


def test_hub_id_with_model_path_needs_no_cache(tiny, tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    enc = load_encoder("someorg/some-model", model_path=tiny["clip"], device="cpu")
    assert enc.config.kind == "clip" and enc.config.model_id == "someorg/some-model"
    result = CliRunner().invoke(app, [*_embed_args("someorg/some-sbert", tmp_path / "o"), "--model-path",
                                      str(tiny["sbert"])])
    assert result.exit_code == 0, result.output


def _embed_args(encoder: str, out: Path) -> list[str]:
    return ["embed", "--dataset", "synthetic", "--split", "test", "--encoder", encoder, "--layers", "final",
            "--out", str(out), "--device", "cpu"]


@pytest.mark.parametrize("kind", ["bert", "mpnet", "sbert", "clip"])
def test_cli_embeds_with_a_folder_or_a_hub_id(offline_cache, tiny, tmp_path, kind):
    hub_id = next(r for r, k in HUB.items() if k == kind)
    for encoder in (str(tiny[kind]), hub_id):
        result = CliRunner().invoke(app, _embed_args(encoder, tmp_path / kind))
        assert result.exit_code == 0, result.output
    infos = [json.loads(p.read_text()) for p in sorted((tmp_path / kind / "manifests").glob("*.json"))]
    assert len(infos) == 2 and infos[0]["fingerprint"] == infos[1]["fingerprint"]  # same model, same embeddings
    assert {i["encoder"]["source"] for i in infos} == {str(tiny[kind].resolve()), f"hf:{hub_id}"}


def test_cli_resolves_hub_ids_from_hf_home_in_a_fresh_process(hub_cache, tmp_path):
    """The real environment variables, read by the hub client at import: no monkeypatching."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(hub_cache.parent)}
    env.pop("HF_HUB_CACHE", None)
    code = ("import sys; from spatial_probing.cli import app; sys.argv = ['spatial-probing', *sys.argv[1:]]; app()")
    done = subprocess.run([sys.executable, "-c", code, *_embed_args("org/tiny-clip", tmp_path / "o")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    missing = subprocess.run([sys.executable, "-c", code, *_embed_args("org/absent", tmp_path / "o2")], env=env,
                             capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2 and "--model-path DIR" in missing.stderr and "Traceback" not in missing.stderr
