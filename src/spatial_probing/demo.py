"""The main job on the embedded default: synthetic scenes → lab → embed → probe → RSA → report.

The demo's configuration is data (``spatial_probing/configs/demo.yaml`` and ``lab-demo.yaml``);
:func:`run_demo` copies both into ``OUT/configs/`` and runs them with :func:`spatial_probing.pipeline.run`,
so ``spatial-probing run OUT/configs/demo.yaml`` reproduces (and resumes) the demo exactly.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from spatial_probing.io import atomic_write_json, atomic_write_text

DEMO_CONFIGS = ("demo.yaml", "lab-demo.yaml")


def write_demo_configs(out: str | Path) -> Path:
    """Copy the packaged demo configs to ``out/configs``; returns the run config's path."""
    folder = Path(out) / "configs"
    for name in DEMO_CONFIGS:
        atomic_write_text(folder / name, resources.files("spatial_probing").joinpath("configs", name).read_text())
    return folder / DEMO_CONFIGS[0]


def export_scenes(out: str | Path) -> int:
    """Write the demo's synthetic scenes (captions, rendered PNGs, summary) to ``out/data`` for inspection."""
    from spatial_probing.data import load_dataset
    from spatial_probing.data.summary import summarize
    from spatial_probing.data.synthetic import write_images

    examples = load_dataset("synthetic")
    data = Path(out) / "data"
    atomic_write_text(data / "examples.jsonl", "".join(e.model_dump_json() + "\n" for e in examples))
    write_images(examples, data / "images")
    atomic_write_json(data / "summary.json", summarize(examples))
    return len(examples)


def run_demo(out: str | Path = "demo-output", *, device: str | None = None, command: str = "",
             log=print, show_progress: bool = True) -> dict[str, Path]:
    """Run the demo into ``out`` (resuming a previous run there) and return the paths it wrote."""
    from spatial_probing.pipeline import load_run_config, run

    n = export_scenes(out)
    log(f"synthetic scenes: {n} captions → {Path(out) / 'data'}")
    config = load_run_config(write_demo_configs(out))
    if device is not None:
        config = config.model_copy(update={"device": device})
    return run(config, command=command, log=log, show_progress=show_progress)
