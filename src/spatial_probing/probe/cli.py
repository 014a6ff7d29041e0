"""``spatial-probing probe``: probe one task with one or more encoders into a run directory."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import typer

from spatial_probing.cli_errors import exit_on, fail, progress_wanted
from spatial_probing.cli_options import ExecutorOption
from spatial_probing.data.errors import DataError


def _model_paths(specs: list[str], encoders: list[str]) -> dict[str, str]:
    """``--model-path DIR`` (one encoder) or ``--model-path NAME=DIR``."""
    out: dict[str, str] = {}
    for spec in specs:
        if "=" in spec:
            name, path = spec.split("=", 1)
            out[name] = path
        elif len(encoders) == 1:
            out[encoders[0]] = spec
        else:
            raise typer.BadParameter("with several encoders write --model-path NAME=DIR", param_hint="--model-path")
    return out


def probe(
    task: str = typer.Option(..., "--task", help="Task name (see `spatial-probing probe-tasks`)."),
    encoder: list[str] = typer.Option(..., "--encoder", help="Encoder name; repeat to compare encoders."),
    layers: str = typer.Option("all", "--layers", help='"all", "last", "final" or "0,6,12".'),
    probe_kind: str = typer.Option("linear", "--probe", help="linear or mlp."),
    seeds: int = typer.Option(5, "--seeds", min=1, help="Number of seeds (0..N-1)."),
    split: str = typer.Option(None, "--split", help="own, zeroshot (VSR) or concept-kfold; default: the task's."),
    out: Path = typer.Option(Path("runs/probe"), "--out", help="Run directory."),
    data_dir: Path = typer.Option(None, "--data-dir", help="Folder holding the datasets."),
    model_path: list[str] = typer.Option([], "--model-path", help="Local weights: DIR or NAME=DIR."),
    cache_dir: Path = typer.Option(None, "--cache-dir", help="Embedding cache (default OUT/cache)."),
    image_dir: Path = typer.Option(None, "--image-dir", help="VSR's COCO images (for image encoders)."),
    max_train: int = typer.Option(None, "--max-train", help="Cap training items (whole groups, seeded)."),
    max_test: int = typer.Option(None, "--max-test", help="Cap test items (whole groups, seeded)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """Probe TASK on every layer of each ENCODER with controls, CIs, MDL and paired comparisons."""
    from spatial_probing.pipeline import RunConfig, check_run_config
    from spatial_probing.probe.engine import ProbeSettings
    from spatial_probing.probe.runner import UnitConfig, run_units
    from spatial_probing.probe.tasks import get_task

    try:
        get_task(task)
        paths_by_encoder = _model_paths(model_path, encoder)
        study = RunConfig(out=out, tasks=[task], encoders=list(encoder), probes=[probe_kind], layers=layers,
                          split=split, seeds=list(range(seeds)), device=device, model_paths=paths_by_encoder,
                          max_train=max_train, max_test=max_test, data_dir=data_dir, image_dir=image_dir, rsa=None,
                          report=False, lexical_floor=[])
        check_run_config(study,  # the same up-front checks as `run` (encoders, layers, model paths, device)
                         weights_how=lambda name: f"with --model-path {name}=DIR (or --model-path DIR for one encoder)")
        settings = ProbeSettings(probe=probe_kind, seeds=tuple(range(seeds)), device=device)
        configs = [UnitConfig(task=task, encoder=e, split=split, layers=study.layers_of(e), settings=settings,
                              max_train=max_train, max_test=max_test) for e in encoder]
        paths = run_units(configs, out, data_dir=data_dir, model_paths=paths_by_encoder,
                          cache_dir=cache_dir, image_dir=image_dir, command=shlex.join(sys.argv),
                          log=typer.echo, show_progress=progress_wanted(quiet))
    except (ValueError, DataError, FileNotFoundError) as err:
        fail(err)
    typer.echo(f"wrote {paths['results']}, {paths['predictions']}, {paths['comparisons']}, {paths['manifest']}")


def probe_tasks() -> None:
    """List the registered probing tasks."""
    from spatial_probing.probe.tasks import list_tasks

    for spec in list_tasks():
        typer.echo(f"{spec.name:28s} {spec.dataset:10s} {spec.input:16s} {spec.description}")


def run_config(config: Path = typer.Argument(..., help="Run config YAML (tasks, encoders, probes, seeds, paths)."),
               quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
               executor: ExecutorOption = None) -> None:
    """Run data → embed → probe → RSA → report for every combination in CONFIG; resumes finished units."""
    from spatial_probing.pipeline import check_run_config, load_run_config, run

    with exit_on(ValueError, DataError, FileNotFoundError):
        loaded = load_run_config(config)
        if executor is not None:
            loaded = loaded.model_copy(update={"executor": executor})
        check_run_config(loaded, source=config)  # every problem at once, before anything is written
        paths = run(loaded, command=shlex.join(sys.argv), log=typer.echo, show_progress=progress_wanted(quiet))
    typer.echo("wrote " + ", ".join(str(paths[k]) for k in ("results", "comparisons", "summary", "manifest")
                                    if k in paths))  # a founding-study run has summary, not results
