"""Report stage: figures and one self-contained HTML report from a run directory.

``build_report(run_dir)`` reads the run's tables (:func:`load_run`), summarises them
(:class:`RunAnalysis`: chosen layers, item-bootstrap intervals, comparisons, findings in words),
draws the figures (:data:`FIGURES`, each also saved as PNG and SVG under ``run_dir/figures``)
and writes ``run_dir/report.html``. Missing pieces are listed in the report, never invented.
"""

from __future__ import annotations

import lazy_loader

# Names load on first use (PEP 562), so `spatial-probing --help` and a cached run import no heavy library.
__getattr__, __dir__, _ = lazy_loader.attach(__name__, submod_attrs={
    "figures": ["FIGURES", "Plot", "fig_category_accuracy", "fig_centroid_pca", "fig_lab_objectives", "fig_layer_curves", "fig_rdms", "fig_rsa_curves", "fig_selectivity_mdl", "fig_stepgame_k", "make_figures"],
    "html": ["build_report"],
    "summary": ["RunAnalysis"],
    "tables": ["NotARunDirectory", "RunTables", "UnreadableRunError", "load_run"],
})

__all__ = ["FIGURES", "NotARunDirectory", "Plot", "RunAnalysis", "RunTables", "UnreadableRunError", "build_report",
           "fig_category_accuracy", "fig_centroid_pca", "fig_lab_objectives", "fig_layer_curves", "fig_rdms", "fig_rsa_curves",
           "fig_selectivity_mdl", "fig_stepgame_k", "load_run", "make_figures"]
