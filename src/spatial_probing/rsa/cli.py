"""``spatial-probing rsa CONFIG.yaml``: only the RSA step of a run config."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import typer

from spatial_probing.cli_errors import exit_on, progress_wanted
from spatial_probing.cli_options import ExecutorOption
from spatial_probing.data.errors import DataError


def rsa(config: Path = typer.Argument(..., help="Run config YAML (its `rsa:` section; tasks, encoders, paths)."),
        quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
        executor: ExecutorOption = None) -> None:
    """RDMs of every layer vs ground-truth references (permutation p, bootstrap CI); resumes finished units."""
    from spatial_probing.pipeline import check_run_config, load_run_config, run_rsa_step

    with exit_on(ValueError, DataError, FileNotFoundError):
        loaded = load_run_config(config)
        if executor is not None:
            loaded = loaded.model_copy(update={"executor": executor})
        check_run_config(loaded, source=config)  # every problem at once, before anything is written
        paths = run_rsa_step(loaded, command=shlex.join(sys.argv), log=typer.echo, show_progress=progress_wanted(quiet))
    typer.echo(f"wrote {paths['rsa']}, {paths['rsa_csv']}, {paths['rsa_manifest']} and rdms/")


def meaning(config: Path = typer.Argument(..., help="Run config YAML (its `meaning:` section; tasks, encoders, "
                                                     "paths).")) -> None:
    """Meaning over words: share of caption triples nearer their converse paraphrase than their argument swap."""
    from spatial_probing.pipeline import check_run_config, load_run_config, run_meaning_step

    with exit_on(ValueError, DataError, FileNotFoundError):
        loaded = load_run_config(config)
        check_run_config(loaded, source=config)  # every problem at once, before anything is written
        paths = run_meaning_step(loaded, command=shlex.join(sys.argv), log=typer.echo)
    typer.echo(f"wrote {paths['meaning']}, {paths['meaning_csv']} and {paths['meaning_manifest']}")
