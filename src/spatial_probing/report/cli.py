"""``spatial-probing report RUN_DIR``: the HTML report (and figures) of a run directory."""

from __future__ import annotations

from pathlib import Path

import typer

from spatial_probing.cli_errors import exit_on, progress_wanted


def report(run_dir: Path = typer.Argument(..., help="A run directory written by `spatial-probing run`."),
           out: Path | None = typer.Option(None, "--out", help="Where to write the HTML (default RUN_DIR/report.html)."),
           partial: bool = typer.Option(False, "--partial", help="Report what can be read even when some files "
                                        "cannot (they are listed under 'Not in this run')."),
           quiet: bool = typer.Option(False, "--quiet", help="No progress bars.")) -> None:
    """Write one self-contained HTML report of RUN_DIR (figures also as PNG/SVG under RUN_DIR/figures).

    Exits with status 2 and the list of unreadable files when some cannot be read, unless --partial."""
    from spatial_probing.report import build_report
    from spatial_probing.report.tables import NotARunDirectory, UnreadableRunError

    with exit_on(NotARunDirectory, UnreadableRunError):
        path = build_report(run_dir, out=out, partial=partial, show_progress=progress_wanted(quiet))
    typer.echo(str(path))
