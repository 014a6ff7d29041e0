"""``spatial-probing data ...``: summaries, downloads and exports of the benchmark data."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from spatial_probing.cli_errors import fail, progress_wanted
from spatial_probing.data import DATASETS, DataError, LoadReport, load_dataset
from spatial_probing.data.summary import summarize

app = typer.Typer(no_args_is_help=True, help="Load, summarise and download the benchmark datasets.")
console = Console(stderr=True)

DataDir = Annotated[Optional[Path], typer.Option("--data-dir", envvar="SPATIAL_PROBING_DATA",
                                                 help="Folder holding vsr/, stepgame/, spartqa/, sugarcrepe/, aro/, whatsup/.")]
#: Variants summarised by default when none is asked for.
DEFAULT_VARIANTS = {"vsr": ["random", "zeroshot"], "stepgame": ["clean"], "spartqa": [None], "synthetic": [None]}


@app.command()
def summary(
    dataset: Annotated[str, typer.Option(help=f"One of {sorted(DATASETS)}.")],
    data_dir: DataDir = None,
    variant: Annotated[Optional[list[str]], typer.Option(help="VSR random|zeroshot; StepGame clean|noise|train_version; SugarCrepe change type; What'sUp subset.")] = None,
    split: Annotated[Optional[str], typer.Option(help="Only this split.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one machine-readable JSON object.")] = False,
    skip_invalid: Annotated[bool, typer.Option("--skip-invalid", help="Skip invalid records and report the count.")] = False,
    image_dir: Annotated[Optional[Path], typer.Option("--image-dir", help="VSR: folder of COCO images to check.")] = None,
) -> None:
    """Counts per split, label, relation, meta-category and hop count k."""
    report = LoadReport()
    out: dict[str, object] = {"dataset": dataset, "variants": {}}
    try:
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            for v in variant or DEFAULT_VARIANTS.get(dataset, [None]):
                examples = load_dataset(dataset, data_dir=data_dir, variant=v, split=split,
                                        skip_invalid=skip_invalid, report=report)
                out["variants"][v or "default"] = summarize(examples, image_dir=image_dir)  # type: ignore[index]
    except DataError as err:
        fail(err)
    per_variant = out["variants"].values()  # type: ignore[union-attr]
    out["n_relations"] = len(set().union(*(v["per_relation"] for v in per_variant)))
    out["n_categories"] = len(set().union(*(v["per_category"] for v in per_variant)))
    out.update(report.to_dict())
    if as_json:
        typer.echo(json.dumps(out, indent=2))
        return
    for name, s in out["variants"].items():  # type: ignore[union-attr]
        table = Table(title=f"{dataset} / {name}: {s['total']} examples, {s['n_relations']} relations, "
                            f"{s['n_categories']} categories")
        table.add_column("count of")
        table.add_column("values")
        for key in ("splits", "per_truth_label", "per_category", "per_k", "per_question_type", "per_variant"):
            if s[key]:
                table.add_row(key, ", ".join(f"{k}: {n}" for k, n in s[key].items()))
        if s["images"]["distinct"]:
            table.add_row("images", f"{s['images']['present']} of {s['images']['distinct']} found"
                          + ("" if image_dir else " (pass --image-dir with the COCO-2017 images for image encoders)"))
        Console().print(table)
    for note in report.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    for path, n in report.skipped.items():
        console.print(f"[yellow]skipped:[/] {n} invalid record(s) in {path}", highlight=False)


@app.command()
def download(
    dataset: Annotated[str, typer.Argument(help="vsr, stepgame, spartqa, sugarcrepe, aro or whatsup.")],
    to: Annotated[Path, typer.Option("--to", help="Destination data directory.")],
    base_url: Annotated[Optional[str], typer.Option(help="Replace the upstream root URL (a mirror).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Fetch files that already exist again.")] = False,
    sha256: Annotated[Optional[list[str]], typer.Option(
        "--sha256", help="FILE=HEX (FILE relative to DIR/<dataset>/): verify this file's checksum; repeatable.")] = None,
    list_only: Annotated[bool, typer.Option("--list", help="Only print where each file lives; fetch nothing.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars.")] = False,
) -> None:
    """Download a benchmark from its canonical upstream location (pinned commit); print where the archives
    that cannot be fetched here live (Google Drive, image zips) and verify checksums of the files present."""
    try:
        from spatial_probing.data import download as dl

        checksums = dict(_checksum(s) for s in sha256 or [])
        lines = dl.sources(dataset, base_url=base_url)
        written = [] if list_only else dl.download(dataset, to, base_url=base_url, overwrite=overwrite,
                                                   checksums=checksums, show_progress=progress_wanted(quiet))
    except DataError as err:
        fail(err)
    for line in lines:
        typer.echo(line.replace("DIR/", f"{to}/"))
    if not list_only:
        console.print(f"{len(written)} file(s) written under {to}; {len(checksums)} checksum(s) verified; "
                      f"use --data-dir {to}")


def _checksum(spec: str) -> tuple[str, str]:
    name, sep, digest = spec.partition("=")
    if not sep or not name or len(digest.strip()) != 64:
        raise DataError(f"--sha256 {spec!r}: expected FILE=HEX with a 64-digit SHA-256")
    return name.strip(), digest.strip().lower()


@app.command()
def export(
    dataset: Annotated[str, typer.Option(help=f"One of {sorted(DATASETS)}.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for examples.jsonl (and images/ for synthetic).")],
    data_dir: DataDir = None,
    variant: Annotated[Optional[str], typer.Option()] = None,
    n_scenes: Annotated[int, typer.Option(help="Synthetic only: number of scenes.")] = 480,
    seed: Annotated[int, typer.Option(help="Synthetic only: generator seed.")] = 0,
) -> None:
    """Write the loaded examples as JSON lines (synthetic: plus one PNG per scene)."""
    from spatial_probing.data.synthetic import write_images
    from spatial_probing.io import atomic_write_text

    extra = {"n_scenes": n_scenes, "seed": seed} if dataset == "synthetic" else {}
    try:
        examples = load_dataset(dataset, data_dir=data_dir, variant=variant, **extra)
    except DataError as err:
        fail(err)
    atomic_write_text(out / "examples.jsonl", "".join(e.model_dump_json() + "\n" for e in examples))
    n_images = write_images(examples, out / "images") if dataset == "synthetic" else 0
    console.print(f"{len(examples)} examples → {out / 'examples.jsonl'}" + (f", {n_images} images" if n_images else ""))
