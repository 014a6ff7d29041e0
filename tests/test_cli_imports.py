"""The command line starts without the heavy libraries: ``--help`` of every command imports none of them.

Checked by behaviour (what is in ``sys.modules`` in a fresh interpreter), not by timing, so the
tests hold on a loaded machine; ``benchmarks/bench_cli.py`` measures the seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

#: Libraries that each cost a second or more to import.
HEAVY = ("torch", "transformers", "sentence_transformers", "sklearn", "pandas", "scipy", "matplotlib")

_SRC = str(Path(__file__).resolve().parents[1] / "src")


def _fresh_python(code: str) -> dict:
    """Run ``code`` in a new interpreter (this checkout's sources first); it prints one JSON object."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([_SRC, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_importing_the_cli_loads_no_heavy_library():
    loaded = _fresh_python(
        f"import json, sys; import spatial_probing.cli; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    assert loaded == []


def test_help_of_every_command_loads_no_heavy_library():
    code = f"""
import contextlib, io, json, sys
import typer.main
from spatial_probing.cli import app

def paths(cmd, prefix):
    yield prefix
    for name, sub in getattr(cmd, "commands", {{}}).items():
        yield from paths(sub, [*prefix, name])

out = {{}}
for path in paths(typer.main.get_command(app), []):
    with contextlib.redirect_stdout(io.StringIO()) as text:
        try:
            app([*path, "--help"])
        except SystemExit:
            pass
    out[" ".join(path) or "(top)"] = {{"heavy": [m for m in {HEAVY!r} if m in sys.modules],
                                      "usage": "Usage" in text.getvalue()}}
print(json.dumps(out))
"""
    out = _fresh_python(code)
    assert {"(top)", "embed", "probe", "run", "rsa", "report", "lab train", "data summary"} <= set(out)
    assert all(v["usage"] for v in out.values()), out  # each one printed its help
    assert {k: v["heavy"] for k, v in out.items() if v["heavy"]} == {}


@pytest.mark.parametrize("module", ["spatial_probing.probe.engine", "spatial_probing.probe.batched"])
def test_probing_does_not_import_the_embed_stage(module):
    loaded = _fresh_python(f"import json, sys; import {module}; "
                           f"print(json.dumps([m for m in sys.modules if m.startswith('spatial_probing.embed')]))")
    assert loaded == []
