"""The report on a real (tiny) pipeline run: probe + RSA tables as `spatial-probing run` writes them."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml
from conftest_models import build_tiny_clip, build_tiny_sbert

from spatial_probing.pipeline import load_run_config, run
from spatial_probing.report import build_report, load_run


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.mark.slow  # ~30 s on 2 free cores: two tiny encoders probed and RSA'd for real
def test_report_on_a_real_tiny_run(tmp_path: Path) -> None:
    models = {"sbert-minilm": str(build_tiny_sbert(tmp_path / "sbert")), "clip-text": str(build_tiny_clip(tmp_path /
                                                                                                          "clip"))}
    cfg = {"out": "run", "cache_dir": "cache", "tasks": ["synthetic-relation"], "encoders": list(models),
           "layers": "final", "seeds": [0, 1], "Cs": [1.0], "inner_folds": 2, "mdl_seeds": 1, "n_boot": 100, "max_train": 80,
           "max_test": 40, "device": "cpu", "task_options": {"synthetic-relation": {"n_scenes": 16}},
           "model_paths": models, "rsa": {"n_permutations": 50, "n_boot": 0, "max_items": 40}}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    config = load_run_config(tmp_path / "run.yaml")
    paths = run(config, log=lambda *_: None)
    tables = load_run(config.out)
    assert tables.results is not None and tables.comparisons is not None and tables.rsa is not None
    # `run` builds the report itself once the pipeline has its report step; otherwise build it here
    report = paths.get("report") or build_report(config.out, n_boot=200)
    html = Path(report).read_text(encoding="utf-8")
    for name in ("category_accuracy", "layer_curves", "selectivity_mdl", "rdms", "rsa_curves", "centroid_pca"):
        assert (config.out / "figures" / f"{name}.png").is_file(), name
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))
    assert "Grounded encoder(s) in this run: clip-text" in text
    # the encoder's source, from the manifest, written relative to the run directory (no machine's folders)
    assert os.path.relpath(models["clip-text"], config.out.resolve()) in text and str(models["clip-text"]) not in text
    missing = text.split("Not in this run", 2)[-1]
    assert "no per-k rows" in missing and "no lab encoders" in missing and "rsa.parquet" not in missing
