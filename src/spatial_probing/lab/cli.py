"""``spatial-probing lab ...``: train the grounding lab's matched encoders and compare their objectives."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from spatial_probing.cli_errors import fail, progress_wanted

app = typer.Typer(no_args_is_help=True, help="Grounding lab: matched small encoders trained with MLM, text-only "
                                             "contrastive and visual contrastive objectives.")


@app.command()
def train(
    config: Annotated[Path, typer.Argument(help="Lab config YAML (objectives, seeds, model, data, train).")],
    out: Annotated[Optional[Path], typer.Option("--out", help="Output folder (default: the config's out).")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto | cpu | cuda | mps (default: the config's).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Retrain even encoders already trained with the same "
                                                        "settings.")] = False,
    workers: Annotated[Optional[int], typer.Option("--workers", min=1, help="Encoders trained at once, each in its "
                                                   "own process (default: the config's train.workers; the weights "
                                                   "do not depend on it).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars.")] = False,
) -> None:
    """Train every objective × seed of CONFIG (reusing encoders already trained with the same settings)."""
    import os

    # before torch loads OpenMP: threads waiting for a core sleep instead of spinning. On a shared CPU,
    # spinning took 228 CPU-s for 400 steps of one arm that costs 42 CPU-s with it (29 Nov 2026, load 8).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from spatial_probing.lab.config import load_lab_config
    from spatial_probing.lab.train import REGISTRY_FILE, train_lab

    try:
        lab = load_lab_config(config)
        if workers is not None:
            lab = lab.model_copy(update={"train": lab.train.model_copy(update={"workers": workers})})
        trained = train_lab(lab, out=out, device=device, force=force, show_progress=progress_wanted(quiet),
                            command=shlex.join(sys.argv), log=typer.echo)
    except (ValueError, OSError) as err:
        fail(err)
    folder = out if out is not None else lab.out
    reused = sum(t.reused for t in trained)
    typer.echo(f"{len(trained)} encoder(s) ({reused} reused) in {folder}; registry: {folder / REGISTRY_FILE} "
               f"(run configs: encoder_registries: [{folder / REGISTRY_FILE}])")


@app.command()
def compare(
    run_dir: Annotated[Path, typer.Argument(help="A probe run folder holding results.parquet (and predictions).")],
    metric: Annotated[str, typer.Option(help="Metric compared between objectives.")] = "accuracy",
    n_permutations: Annotated[int, typer.Option("--n-permutations", min=100, help="Sign-flip resamples.")] = 10000,
) -> None:
    """Per-arm means with intervals across lab seeds, paired tests between arms, and (with predictions) the lab's
    answer per relation kind (``lab_answer.csv``: seeds × scenes intervals, Holm, verdicts, convergence flags)."""
    import json

    import pandas as pd

    from spatial_probing.io import atomic_path
    from spatial_probing.lab.compare import lab_answer, lab_outputs, objective_comparisons, objective_summary

    try:
        results = pd.read_parquet(run_dir / "results.parquet")
        preds_path = run_dir / "predictions.parquet"
        predictions = pd.read_parquet(preds_path) if preds_path.is_file() else None
        summary = objective_summary(results)
        comparisons = objective_comparisons(results, predictions, metric=metric, n_permutations=n_permutations)
        tables = {"lab_objectives.csv": summary, "lab_comparisons.csv": comparisons}
        if predictions is not None:
            manifest_path = run_dir / "manifest.json"
            manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.is_file() else {}
            outputs = lab_outputs(manifest.get("config", {}).get("encoder_registries", []))
            tables["lab_answer.csv"] = lab_answer(predictions, training=outputs.get("training"))
    except (ValueError, OSError) as err:
        fail(err)
    for name, table in tables.items():
        with atomic_path(run_dir / name) as tmp:
            table.to_csv(tmp, index=False)
    typer.echo(f"{len(summary)} arm rows, {len(comparisons)} paired comparisons"
               + (f", {len(tables['lab_answer.csv'])} answer rows" if "lab_answer.csv" in tables else "")
               + f" → {', '.join(str(run_dir / n) for n in tables)}")
