"""Figures stay readable: titles wrapped inside the figure, many categories cut to the informative ones."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from spatial_probing.report.figures import MAX_LABELS, fig_category_accuracy, wrap_titles
from spatial_probing.report.summary import RunAnalysis
from spatial_probing.report.tables import RunTables


def test_long_titles_are_wrapped_inside_the_figure() -> None:
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.set_title("vsr-relation: highest is sbert-mpnet-with-a-long-name on a-very-long-relation-name (0.93) " * 2)
    wrap_titles(fig)
    fig.canvas.draw()
    box = ax.title.get_window_extent(renderer=fig.canvas.get_renderer())
    assert "\n" in ax.get_title() and box.x0 >= 0 and box.x1 <= fig.bbox.x1
    plt.close(fig)


def test_a_panel_with_many_categories_shows_the_most_different_ones(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    cats = [f"relation-{i:02d}" for i in range(40)]
    rows = []
    for enc in ("clip-text", "sbert-mpnet"):
        for c in cats:
            acc = 0.5 if enc == "sbert-mpnet" or c not in ("relation-03", "relation-17") else 0.95
            acc += rng.normal(0, 0.01)
            rows += [{"dataset": "vsr", "task": "vsr-relation", "encoder": enc, "layer": "final", "probe": "linear",
                      "seed": 0, "subset_kind": "category", "subset": c, "metric": m, "value": v,
                      "ci_low": v - 0.05, "ci_high": v + 0.05, "n_test": 30}
                     for m, v in (("accuracy", acc), ("majority", 0.3), ("selectivity", 0.1))]
        rows.append({"dataset": "vsr", "task": "vsr-relation", "encoder": enc, "layer": "final", "probe": "linear",
                     "seed": 0, "subset_kind": "all", "subset": "all", "metric": "chance", "value": 1 / 40,
                     "ci_low": np.nan, "ci_high": np.nan, "n_test": 1200})
    plot = fig_category_accuracy(RunAnalysis(RunTables(run_dir=tmp_path, results=pd.DataFrame(rows))))
    ax = plot.figure.axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert len(labels) == MAX_LABELS and {"relation-03", "relation-17"} <= set(labels)
    plt.close(plot.figure)
