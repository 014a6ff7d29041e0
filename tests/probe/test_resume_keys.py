"""Resuming reuses a finished part only when config, weights, data and the probing-format version all match."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest_models import build_tiny_bert

from spatial_probing.data.schema import Example
from spatial_probing.io import sha256_bytes
from spatial_probing.probe import runner
from spatial_probing.probe.engine import ProbeSettings
from spatial_probing.probe.runner import UnitConfig, run_units

UNIT = UnitConfig(task="synthetic-relation", encoder="static:bert", layers="all",
                  settings=ProbeSettings(seeds=(0,), Cs=(1.0,), mdl_seeds=0, n_boot=100, device="cpu"),
                  load_kwargs={"n_scenes": 24})


@pytest.fixture(scope="module")
def bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("resume") / "bert")


def _run(out: Path, bert: Path, unit: UnitConfig = UNIT) -> list[str]:
    log: list[str] = []
    run_units([unit], out, model_paths={"static:bert": bert}, show_progress=False, log=log.append)
    return log


def _skipped(log: list[str]) -> bool:
    return any(line.startswith("skip probe") for line in log)


def test_resume_recomputes_after_a_format_bump_or_a_data_change(tmp_path: Path, bert: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "run"
    assert not _skipped(_run(out, bert))
    assert _skipped(_run(out, bert))  # nothing changed: reused

    monkeypatch.setattr(runner, "PROBE_FORMAT_VERSION", runner.PROBE_FORMAT_VERSION + 1)
    assert not _skipped(_run(out, bert))  # the probing code's version changed: recomputed
    assert _skipped(_run(out, bert))

    original = runner.task_examples

    def edited(*args, **kwargs) -> list[Example]:  # as if one caption in the data files had been edited
        examples = original(*args, **kwargs)
        return [examples[0].model_copy(update={"text": examples[0].text + " (edited)"}), *examples[1:]]

    monkeypatch.setattr(runner, "task_examples", edited)
    assert not _skipped(_run(out, bert))  # same config and weights, other data: recomputed
    assert _skipped(_run(out, bert))


def test_precision_reaches_the_units_and_keys_only_reduced_ones():
    """fp32 units keep their pre-precision digest (their part files resume); a bf16 unit is a different unit."""
    from spatial_probing.pipeline import RunConfig

    fp32 = RunConfig(tasks=["vsr-relation"], encoders=["sbert-mpnet"]).units()[0]
    bf16 = RunConfig(tasks=["vsr-relation"], encoders=["sbert-mpnet"], precision="bf16").units()[0]
    assert fp32.precision == "fp32" and bf16.precision == "bf16"
    assert fp32.digest() == sha256_bytes(fp32.model_dump_json(exclude={"precision"}).encode())[:16]
    assert bf16.digest() != fp32.digest()
