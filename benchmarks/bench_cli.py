"""Command-line start-up benchmark: ``--help`` of every command, and a fully cached ``embed`` rerun.

Each timing is a whole process (``python -m``-style start, imports, work, exit), the median of
``--repeats`` runs; the process's CPU seconds (user + system of the child) are recorded next
to wall seconds because the machine may be shared. Targets: every ``--help`` ≤ 0.5 s, a
cached ``embed`` rerun ≤ 2 s. The load average is logged at the start and end.

Run by hand:  python benchmarks/bench_cli.py [--model-path DIR] [--data-dir DIR] [--cache-dir DIR]
Writes benchmarks/results/cli.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENTRY = "from spatial_probing.cli import app; app()"


def _run(argv: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of one ``spatial-probing ARGV`` process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", ENTRY, *argv], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src"), "HF_HUB_OFFLINE": "1"})
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"spatial-probing {' '.join(argv)} failed:\n{done.stderr[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _timed(argv: list[str], repeats: int) -> dict[str, float]:
    runs = [_run(argv) for _ in range(repeats)]
    return {"wall_s": round(statistics.median(w for w, _ in runs), 3),
            "cpu_s": round(statistics.median(c for _, c in runs), 3), "runs": repeats}


def _commands() -> list[list[str]]:
    """Every command path of the CLI (the group itself first), read from the app."""
    import typer.main

    from spatial_probing.cli import app

    def walk(cmd, prefix):
        yield prefix
        for name, sub in sorted(getattr(cmd, "commands", {}).items()):
            yield from walk(sub, [*prefix, name])

    return list(walk(typer.main.get_command(app), []))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model-path", type=Path, default=Path("/work/models/all-mpnet-base-v2"))
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="embedding cache for the rerun (default: a fresh folder, filled by a cold run first)")
    parser.add_argument("--dataset", choices=("vsr", "synthetic"), default="vsr",
                        help="embed rerun on VSR's random test split (2,195 captions) or the synthetic test split")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "cli.json")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    from spatial_probing.io import atomic_write_json

    load_start = os.getloadavg()
    helps = {" ".join(c) or "(top)": _timed([*c, "--help"], args.repeats) for c in _commands()}
    for name, t in helps.items():
        print(f"{name:14s} --help  {t['wall_s']:.2f} s wall, {t['cpu_s']:.2f} s CPU")
    cache = args.cache_dir or ROOT / "benchmarks" / ".cache-cli"
    data = ["--dataset", "vsr", "--variant", "random", "--split", "test"] if args.dataset == "vsr" else \
        ["--dataset", "synthetic", "--split", "test"]
    embed = ["embed", *data, "--encoder", "sbert-mpnet", "--model-path", str(args.model_path),
             "--data-dir", str(args.data_dir), "--out", str(cache), "--device", "cpu", "--quiet"]
    cold = None
    if args.cache_dir is None:
        shutil.rmtree(cache, ignore_errors=True)
        cold = _timed(embed, 1)
        print(f"embed cold (computes every layer): {cold['wall_s']:.1f} s")
    warm = _timed(embed, args.repeats)
    print(f"embed cached rerun: {warm['wall_s']:.2f} s wall, {warm['cpu_s']:.2f} s CPU")
    result = {
        "benchmark": "CLI start-up: --help of every command and a fully cached embed rerun (whole processes)",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "python": platform.python_version()},
        "load_average": {"start": [round(x, 2) for x in load_start],
                         "end": [round(x, 2) for x in os.getloadavg()]},
        "targets": {"help_wall_s": 0.5, "cached_embed_wall_s": 2.0},
        "help": helps,
        "help_max_wall_s": max(t["wall_s"] for t in helps.values()),
        "embed": {"command": "spatial-probing " + " ".join(embed), "cold": cold, "cached_rerun": warm},
    }
    atomic_write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
