"""The ``spatial-probing`` command: a thin typer layer over the library API.

Each pipeline stage contributes its commands from its own ``cli`` module.
"""

from __future__ import annotations

from pathlib import Path

import typer

from spatial_probing.cli_errors import exit_on, progress_wanted
from spatial_probing.data.cli import app as data_app
from spatial_probing.embed.cli import embed as embed_command
from spatial_probing.lab.cli import app as lab_app
from spatial_probing.probe.cli import probe as probe_command
from spatial_probing.probe.cli import probe_tasks as probe_tasks_command
from spatial_probing.probe.cli import run_config as run_command
from spatial_probing.report.cli import report as report_command
from spatial_probing.rsa.cli import meaning as meaning_command
from spatial_probing.rsa.cli import rsa as rsa_command

app = typer.Typer(
    no_args_is_help=True,
    help="Probing classifiers and RSA for spatial relations in text embeddings (CLIP vs BERT/SBERT).",
    pretty_exceptions_show_locals=False,
)
app.add_typer(data_app, name="data")
app.add_typer(lab_app, name="lab")
app.command("embed")(embed_command)
app.command("probe")(probe_command)
app.command("probe-tasks")(probe_tasks_command)
app.command("run")(run_command)
app.command("report")(report_command)
app.command("rsa")(rsa_command)
app.command("meaning")(meaning_command)


@app.command()
def demo(out: Path = typer.Option(Path("demo-output"), "--out", help="Where the demo writes its outputs."),
         device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or mps."),
         quiet: bool = typer.Option(False, "--quiet", help="No progress bars.")) -> None:
    """The main job on the embedded default (synthetic scenes, offline encoders, the grounding lab): data →
    embed → probe → RSA → report under OUT; re-running resumes."""
    import shlex
    import sys
    import time

    from spatial_probing.data import DataError
    from spatial_probing.demo import run_demo

    start = time.perf_counter()
    with exit_on(ValueError, DataError, FileNotFoundError):
        paths = run_demo(out, device=device, command=shlex.join(sys.argv), log=typer.echo, show_progress=progress_wanted(quiet))
    typer.echo(f"demo finished in {time.perf_counter() - start:.0f} s; tables, figures and caches under {out}/")
    typer.echo(f"report: {paths['report'].resolve()}")
