"""A fully cached ``spatial-probing embed`` rerun serves the cache without loading a model or torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from spatial_probing.cli import app

_SRC = str(Path(__file__).resolve().parents[2] / "src")


def test_cached_embed_rerun_loads_neither_the_model_nor_torch(tiny, tmp_path):
    args = ["embed", "--dataset", "synthetic", "--encoder", str(tiny["sbert"]), "--split", "test",
            "--layers", "all", "--out", str(tmp_path), "--device", "cpu"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    (manifest,) = (tmp_path / "manifests").glob("*.json")
    assert json.loads(manifest.read_text())["device"] == "cpu"  # computed: the model ran on the CPU
    code = ("import json, sys\nfrom spatial_probing.cli import app\n"
            f"try:\n    app({args!r})\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "print(json.dumps([m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules]))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([_SRC, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
    info = json.loads(manifest.read_text())
    assert info["device"] is None and info["n_examples"] > 0  # nothing computed, every layer from the cache
