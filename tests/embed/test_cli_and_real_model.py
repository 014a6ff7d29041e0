"""``spatial-probing embed`` end to end, and (optionally) real all-mpnet-base-v2 against sentence-transformers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from conftest_models import SAMPLE_TEXTS
from typer.testing import CliRunner

from spatial_probing.cli import app
from spatial_probing.embed import load_encoder


def test_cli_embeds_a_dataset_into_the_cache_and_reuses_it(tiny, tmp_path):
    args = ["embed", "--dataset", "synthetic", "--encoder", str(tiny["sbert"]), "--split", "test",
            "--layers", "last,final", "--out", str(tmp_path), "--device", "cpu", "--batch-size", "16"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    (manifest,) = (tmp_path / "manifests").glob("*.json")
    info = json.loads(manifest.read_text())
    assert info["dataset"] == "synthetic" and info["split"] == "test" and list(info["layers"]) == ["2", "final"]
    n = info["n_examples"]
    assert n > 0 and info["layers"]["final"]["shape"] == [n, 32] and info["encoder"]["kind"] == "sbert"
    arr = np.load(info["layers"]["final"]["file"], mmap_mode="r")
    assert arr.shape == (n, 32)
    stamp = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.npy")}
    second = CliRunner().invoke(app, args)
    assert second.exit_code == 0, second.output
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.npy")} == stamp  # nothing rewritten


@pytest.mark.parametrize(("args", "message"), [
    (["--encoder", "no-such-encoder"], "unknown encoder 'no-such-encoder'"),
    (["--encoder", "bert"], "--model-path DIR"),
    (["--encoder", "sbert-mpnet", "--layers", "99"], "unknown layer"),
])
def test_cli_errors_are_one_clear_line(tiny, tmp_path, monkeypatch, args, message):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    if "sbert-mpnet" in args:
        args = [*args, "--model-path", str(tiny["sbert"])]
    result = CliRunner().invoke(app, ["embed", "--dataset", "synthetic", "--split", "test", "--out",
                                      str(tmp_path / "o"), *args])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output


@pytest.mark.slow
def test_real_mpnet_matches_sentence_transformers():
    """Runs only when SPATIAL_PROBING_MPNET_DIR names a folder holding all-mpnet-base-v2."""
    path = os.environ.get("SPATIAL_PROBING_MPNET_DIR")
    if not path or not Path(path).is_dir():
        pytest.skip("set SPATIAL_PROBING_MPNET_DIR to an all-mpnet-base-v2 folder (../shared/tools/get-models.sh)")
    from sentence_transformers import SentenceTransformer

    texts = SAMPLE_TEXTS + ["The umbrella is at the right side of the bench.", "The teddy bear is under the bed."]
    enc = load_encoder("sbert-mpnet", model_path=path, device="cpu", batch_size=4)
    assert enc.n_layers == 12 and enc.info.dim == 768
    out = enc.encode(texts, layers="0,12,final")
    ref = SentenceTransformer(path, device="cpu").encode(texts, convert_to_numpy=True, batch_size=4)
    assert np.abs(out["final"] - ref).max() <= 1e-5
    assert out["12"].shape == (len(texts), 768) and not np.allclose(out["0"], out["12"])
