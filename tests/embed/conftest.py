"""Fixtures for the embed tests: tiny models built once per session, the hub kept offline."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest_models import SAMPLE_TEXTS, build_tiny_models

from spatial_probing.data.schema import Example


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Folders of tiny random BERT, MPNet, SBERT (MPNet + mean + normalise) and CLIP models."""
    return build_tiny_models(tmp_path_factory.mktemp("tiny-models"))


@pytest.fixture
def examples() -> list[Example]:
    return [Example(id=f"t/{i}", dataset="vsr", split="train", text=t, image=f"{i}.jpg") for i, t in enumerate(SAMPLE_TEXTS)]
