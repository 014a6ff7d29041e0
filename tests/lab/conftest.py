"""Fixtures for the lab tests: a tiny lab config and one tiny lab trained once per session."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from spatial_probing.lab import LabConfig, load_lab_config, train_lab
from spatial_probing.lab.train import TrainedEncoder

#: A lab small enough to train all three objectives in seconds (not to learn anything).
TINY = {
    "seeds": [0],
    "hard_negatives": [0],
    "model": {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "intermediate_size": 32, "proj_dim": 8,
              "image_size": 16, "image_channels": [4, 4, 4]},
    "data": {"n_scenes": 96, "probe_n_scenes": 96, "heldout": "none", "eval_n_scenes": 32},
    "train": {"steps": 3, "batch_size": 8, "num_threads": 1},
}


def write_lab_config(folder: Path, **overrides) -> Path:
    """``folder/lab.yaml`` with :data:`TINY` updated by ``overrides`` (top-level keys), ``out: lab``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "lab.yaml"
    path.write_text(yaml.safe_dump({"out": "lab", **TINY, **overrides}))
    return path


@pytest.fixture(scope="session")
def tiny() -> dict:
    """The tiny lab's settings (:data:`TINY`); tests import nothing from this conftest directly."""
    return TINY


@pytest.fixture(scope="session")
def write_lab():
    """:func:`write_lab_config`, as a fixture."""
    return write_lab_config


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_lab(tmp_path_factory: pytest.TempPathFactory) -> tuple[LabConfig, list[TrainedEncoder]]:
    """The tiny lab (mlm, textcl, vision × seed 0) trained into a session folder."""
    config = load_lab_config(write_lab_config(tmp_path_factory.mktemp("tiny-lab")))
    return config, train_lab(config, show_progress=False, log=lambda *_: None)


def _answer_predictions(n_scenes: int = 200) -> pd.DataFrame:
    """vision-hn1 right on every horizontal item; every other arm right on the same fixed half of the items."""
    rows = []
    arms = ["mlm", "textcl", "textcl-hn1", "vision", "vision-hn1"]
    for arm in arms:
        for lab_seed in range(3):
            for i in range(n_scenes):
                kind = "horizontal" if i % 2 else "proximity"
                base_correct = (i // 2) % 2 == 0
                for variant in ("original", "converse"):
                    correct = True if (arm == "vision-hn1" and kind == "horizontal") else base_correct
                    rows.append(dict(dataset="synthetic", task="synthetic-relation", encoder=f"lab-{arm}-s{lab_seed}",
                                     layer="final", probe="linear", seed=0, correct=correct, category=kind,
                                     example_id=f"synthetic/0/scene{i:05d}/{variant}"))
    return pd.DataFrame(rows)


@pytest.fixture(scope="session")
def answer_predictions():
    """:func:`_answer_predictions`, as a fixture (predictions with a known lab answer)."""
    return _answer_predictions
