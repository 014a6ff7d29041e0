"""``protocol: founding-study`` end to end on a small VSR tree with a tiny SBERT model."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest_models import build_tiny_sbert
from data_fixtures import vsr_record, write_vsr

from spatial_probing.pipeline import RunConfig, run

RELATIONS = ("left of", "near", "inside")
OBJECTS = ("cat", "dog", "cup", "box", "car", "bed")


def _lines(n_per: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    out = []
    for r in RELATIONS:
        for i in range(n_per):
            a, b = rng.choice(OBJECTS, 2, replace=False)
            out.append(json.dumps(vsr_record(f"The {a} is {r} the {b}.", r, int(rng.integers(0, 2)),
                                             f"{seed}{i % 40:03d}.jpg")))
    return out


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_founding_study_run_writes_both_tables_and_resumes(tmp_path):
    data = write_vsr(tmp_path / "data", {"train": _lines(60, 0), "dev": _lines(3, 1), "test": _lines(20, 2)})
    model = build_tiny_sbert(tmp_path / "sbert")
    config = RunConfig(out=tmp_path / "run", data_dir=data, cache_dir=tmp_path / "cache", protocol="founding-study",
                       tasks=["vsr-relation"], encoders=["sbert-mpnet", "static:sbert-mpnet"], lexical_floor=["bow:"],
                       model_paths={"sbert-mpnet": model, "static:sbert-mpnet": model}, Cs=[1.0], seeds=[0],
                       n_boot=100, rsa=None, report=False, device="cpu")
    run(config, log=lambda *_: None)
    rep = tmp_path / "run" / "replication"
    founding = pd.read_csv(rep / "founding__sbert-mpnet.csv")
    assert sorted(founding.relation) == sorted(RELATIONS) and (founding.n_samples == 60).all()
    assert (founding.n_positive + founding.n_negative == 60).all() and (founding.n_total == 180).all()
    assert (rep / "founding__static_sbert-mpnet.parquet").exists()
    bow = pd.read_csv(rep / "founding__bow_.csv")  # the lexical floor under the same protocol
    assert sorted(bow.relation) == sorted(RELATIONS)
    summary = pd.read_csv(rep / "summary.csv")
    assert len(summary) == 9 and set(summary.protocol) == {"founding", "corrected"}
    assert set(summary.split) == {"random", "zeroshot"} and (summary.n_relations == 3).all()
    corrected = pd.read_parquet(rep / "corrected.parquet")
    zs = corrected[corrected.split == "zeroshot"]
    assert (zs.n_test == 60).all() and (zs.n_test_positive == 20).all()
    # bag of words sees the relation's words: it finds every relation on the held-out split
    assert (corrected[corrected.encoder == "bow:"].macro_f1 > 0.95).all()
    comparisons = pd.read_csv(rep / "comparisons.csv")
    assert len(comparisons) == 9 and not list(rep.glob("**/*.tmp*"))
    logs: list[str] = []
    run(config, log=logs.append)  # resumed: every encoder's part is current
    assert sum(line.startswith("skip founding study") for line in logs) == 3
    pd.testing.assert_frame_equal(pd.read_csv(rep / "summary.csv"), summary)


def test_founding_study_needs_vsr_relation():
    with pytest.raises(ValueError, match="tasks: \\[vsr-relation\\]"):
        RunConfig(protocol="founding-study", tasks=["stepgame-answer"], encoders=["sbert-mpnet"])
