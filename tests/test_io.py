"""Atomic writes: all or nothing, and files as readable as a plain open() would make them."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from spatial_probing.io import atomic_path, atomic_write_json, atomic_write_text


def test_failed_write_leaves_the_old_file_and_no_temp(tmp_path: Path) -> None:
    target = atomic_write_text(tmp_path / "a.txt", "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["a.txt"]


def test_written_files_follow_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = atomic_write_json(tmp_path / "sub" / "m.json", {"b": 1, "a": 2})
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert path.read_text() == '{\n  "a": 2,\n  "b": 1\n}\n'
