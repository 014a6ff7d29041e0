"""The ``spatial-probing`` command: a thin typer layer over the library API.

Each pipeline stage contributes its commands from its own ``cli`` module.
"""

from __future__ import annotations

from pathlib import Path

import typer

from spatial_probing.data.cli import app as data_app
from spatial_probing.embed.cli import embed as embed_command
from spatial_probing.lab.cli import app as lab_app
from spatial_probing.probe.cli import probe as probe_command
from spatial_probing.probe.cli import probe_tasks as probe_tasks_command
from spatial_probing.probe.cli import run_config as run_command
from spatial_probing.report.cli import report as report_command
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


@app.command()
def demo(out: Path = typer.Option(Path("demo-output"), "--out", help="Where the demo writes its outputs.")) -> None:
    """The main job on the embedded default (synthetic scenes): writes its outputs under OUT."""
    from spatial_probing.data import load_dataset
    from spatial_probing.data.summary import summarize
    from spatial_probing.data.synthetic import write_images
    from spatial_probing.io import atomic_write_json, atomic_write_text

    examples = load_dataset("synthetic")
    atomic_write_text(out / "data" / "examples.jsonl", "".join(e.model_dump_json() + "\n" for e in examples))
    write_images(examples, out / "data" / "images")
    atomic_write_json(out / "data" / "summary.json", summarize(examples))
    typer.echo(f"synthetic scenes: {len(examples)} captions → {out / 'data'} (summary.json, examples.jsonl, images/)")
