"""The report's figures (matplotlib, Agg), each a function of the run's tables.

Every ``fig_*`` function takes a :class:`~spatial_probing.report.summary.RunAnalysis` and returns
a :class:`Plot`: the figure with its caption, or ``figure=None`` and the reason the run lacks
the data. :func:`make_figures` runs them all and writes each figure as PNG and SVG.
Colours are the Okabe–Ito colour-blind-safe palette; encoders keep their colour across figures.
Lab encoders (one per objective and seed) appear in their own figure, summarised per objective.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402

from spatial_probing.io import atomic_path, atomic_write  # noqa: E402
from spatial_probing.lab.config import parse_lab_encoder  # noqa: E402
from spatial_probing.report.summary import ALPHA, RunAnalysis, layer_sort_key  # noqa: E402

#: Okabe & Ito (2008) colour-blind-safe palette (black last: it is used for baselines too).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
#: Most category labels a panel shows; more are cut to the ones where the encoders differ most (and the panel says so).
MAX_LABELS = 15
STYLE = {"font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 8, "xtick.labelsize": 8,
         "ytick.labelsize": 8, "axes.spines.top": False, "axes.spines.right": False, "svg.fonttype": "none",
         "figure.dpi": 100, "savefig.dpi": 150, "savefig.bbox": "tight"}


@dataclass
class Plot:
    """A figure (or None) with its caption, or the reason it could not be drawn."""

    name: str
    title: str
    figure: Figure | None = None
    caption: str = ""
    missing: str | None = None
    png: bytes | None = None


def _colours(encoders: list[str]) -> dict[str, tuple[str, str]]:
    """Encoder → (colour, marker); beyond eight encoders the marker tells repeats apart."""
    return {e: (PALETTE[i % len(PALETTE)], MARKERS[(i // len(PALETTE)) % len(MARKERS)])
            for i, e in enumerate(sorted(encoders))}


def _without_lab(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of non-lab encoders: the lab's seeds are summarised per objective in :func:`fig_lab_objectives`."""
    return df[df.encoder.map(lambda e: parse_lab_encoder(e) is None)] if not df.empty else df


def _grid(n: int, *, width: float = 5.2, height: float = 3.6, max_cols: int = 2) -> tuple[Figure, np.ndarray]:
    cols = min(n, max_cols)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    return fig, axes.ravel()


def _task_panels(plot: Plot, table: pd.DataFrame, draw: Callable[[Axes, str, pd.DataFrame], None], *,
                 width: float) -> None:
    """One panel per task in one column, drawn by ``draw(ax, task, rows of that task)``, legend to the right."""
    tasks = sorted(set(table.task))
    with plt.rc_context(STYLE):
        fig, axes = _grid(len(tasks), width=width, max_cols=1)
        for ax, task in zip(axes, tasks):
            draw(ax, task, table[table.task == task].copy())
            ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
        fig.tight_layout()
    plot.figure = fig


def _err(low: np.ndarray, high: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Non-negative error-bar lengths (NaN bounds → no bar)."""
    return np.nan_to_num(np.vstack([value - low, high - value]).clip(min=0), nan=0.0)


def _ci_words(analysis: RunAnalysis) -> str:
    if analysis.tables.predictions is not None:
        return ("95% percentile bootstrap intervals over test items, each item's correctness averaged over the "
                "probe seeds")
    return ("seed means of the per-seed 95% bootstrap bounds (predictions.parquet absent, so items could not be "
            "pooled over seeds: these bounds are not an interval for the seed mean)")


def _layer_words(analysis: RunAnalysis) -> str:
    return ("each encoder's layer with the best inner-CV accuracy (best-cv, chosen on training data)"
            if analysis.selection == "best-cv" else "each encoder's final layer")


# ------------------------------------------------------------------------------------------ figures

def fig_category_accuracy(analysis: RunAnalysis) -> Plot:
    """Accuracy per relation category per encoder, with 95% CIs, chance (dashed) and majority (dotted) lines."""
    plot = Plot("category_accuracy", "Accuracy per relation category")
    table = _without_lab(analysis.accuracy_table("category"))
    if table.empty:
        plot.missing = "results.parquet has no per-category accuracy rows (subset_kind == 'category') outside the lab"
        return plot
    colours = _colours(sorted(set(table.encoder)))

    def draw(ax: Axes, task: str, t: pd.DataFrame) -> None:
        cats = sorted(set(t.subset))
        if len(cats) > MAX_LABELS:  # e.g. VSR's 66 relations: the categories where the encoders differ most
            spread = t.groupby("subset").accuracy.agg(lambda v: v.max() - v.min()).sort_values(ascending=False)
            cats = sorted(spread.index[:MAX_LABELS])
            t = t[t.subset.isin(cats)]
            ax.text(0, 1.0, f"{MAX_LABELS} of {len(spread)} categories: those where the encoders differ most",
                    transform=ax.transAxes, fontsize=7, va="bottom", color="0.3")
        encs = sorted(set(t.encoder))
        width = 0.8 / len(encs)
        x = np.arange(len(cats))
        for j, enc in enumerate(encs):
            e = t[t.encoder == enc].set_index("subset").reindex(cats)
            ax.bar(x + (j - (len(encs) - 1) / 2) * width, e.accuracy, width, color=colours[enc][0],
                   hatch=None if j < len(PALETTE) else "//", edgecolor="white", linewidth=0.3,
                   yerr=_err(e.ci_low.to_numpy(), e.ci_high.to_numpy(), e.accuracy.to_numpy()), capsize=2,
                   error_kw={"elinewidth": 0.8}, label=f"{enc} (layer {e.layer.dropna().iloc[0]})")
        majority = t.groupby("subset").majority.mean().reindex(cats).to_numpy()
        ax.hlines(majority, x - 0.45, x + 0.45, colors="0.25", linestyles=":", label="majority class")
        chance = float(t.chance.mean())
        if np.isfinite(chance):
            ax.axhline(chance, color="0.4", ls="--", lw=1, label=f"chance ({chance:.2f})")
        ax.set_xticks(x, cats, rotation=35 if len(cats) > 5 else 0, ha="right" if len(cats) > 5 else "center")
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("relation category")
        ax.set_ylabel("test accuracy (proportion)")
        best = t.loc[t.accuracy.idxmax()]
        ax.set_title(f"{task}: highest is {best.encoder} on {best.subset} ({best.accuracy:.2f})")

    _task_panels(plot, table, draw, width=6.4)
    plot.caption = (f"Accuracy per relation category at {_layer_words(analysis)}. Error bars: {_ci_words(analysis)}. "
                    "Dashed: chance (uniform guessing); dotted: majority-class baseline of each category's test items.")
    return plot


def fig_layer_curves(analysis: RunAnalysis) -> Plot:
    """Accuracy vs layer per encoder (solid, CI band) with the control task's accuracy (dashed)."""
    plot = Plot("layer_curves", "Accuracy across layers")
    r = analysis.tables.results
    if r is None:
        plot.missing = "results.parquet is missing"
        return plot
    acc = _without_lab(r[(r.subset_kind == "all") & r.metric.isin(["accuracy", "control_accuracy"])])
    if acc.empty:
        plot.missing = "results.parquet has no overall accuracy rows (subset_kind == 'all')"
        return plot
    mean = acc.groupby(["task", "encoder", "probe", "layer", "metric"], as_index=False)[
        ["value", "ci_low", "ci_high"]].mean()
    colours = _colours(sorted(set(mean.encoder)))

    def draw(ax: Axes, task: str, t: pd.DataFrame) -> None:
        layers = sorted(set(t.layer), key=layer_sort_key)
        pos = {layer: i for i, layer in enumerate(layers)}
        for (enc, probe), grp in t.groupby(["encoder", "probe"], sort=True):
            colour, marker = colours[enc]
            label = enc if t.probe.nunique() == 1 else f"{enc} ({probe})"
            for metric, ls in (("accuracy", "-"), ("control_accuracy", "--")):
                g = grp[grp.metric == metric].sort_values("layer", key=lambda s: s.map(layer_sort_key))
                if g.empty:
                    continue
                xs = g.layer.map(pos).to_numpy()
                ax.plot(xs, g.value, ls=ls, color=colour, marker=marker if ls == "-" else None, ms=4,
                        label=label if ls == "-" else None)
                if ls == "-":
                    ax.fill_between(xs, g.ci_low, g.ci_high, color=colour, alpha=0.15, lw=0)
        chance = analysis.baseline(task, "chance")
        if np.isfinite(chance):
            ax.axhline(chance, color="0.4", ls=":", lw=1, label=f"chance ({chance:.2f})")
        ax.plot([], [], color="0.3", ls="--", label="control task (dashed)")
        ax.set_xticks(range(len(layers)), layers)
        ax.set_xlabel("layer (0 = embeddings; final = the encoder's output embedding)")
        ax.set_ylabel("test accuracy (proportion)")
        ax.set_ylim(0, 1.05)
        top = t[t.metric == "accuracy"].loc[lambda d: d.value.idxmax()]
        ax.set_title(f"{task}: peak {top.value:.2f} ({top.encoder}, layer {top.layer})")

    _task_panels(plot, mean, draw, width=6.4)
    plot.caption = ("Overall accuracy per layer (solid; band: seed means of the per-seed 95% bootstrap bounds) and "
                    "the control task's accuracy (dashed, same colour): the gap between them is the selectivity. "
                    "Layers are ordered numerically with the final output last.")
    return plot


def fig_stepgame_k(analysis: RunAnalysis) -> Plot:
    """Accuracy against the number of reasoning hops k (StepGame), per encoder with CIs."""
    plot = Plot("accuracy_by_k", "Accuracy by number of hops k")
    table = _without_lab(analysis.accuracy_table("k"))
    if table.empty:
        plot.missing = "results.parquet has no per-k rows (subset_kind == 'k'; StepGame)"
        return plot
    colours = _colours(sorted(set(table.encoder)))

    def draw(ax: Axes, task: str, t: pd.DataFrame) -> None:
        t["k_num"] = pd.to_numeric(t.subset, errors="coerce")
        for enc, g in t.groupby("encoder", sort=True):
            g = g.sort_values("k_num")
            colour, marker = colours[enc]
            ax.errorbar(g.k_num, g.accuracy, yerr=_err(g.ci_low.to_numpy(), g.ci_high.to_numpy(),
                                                       g.accuracy.to_numpy()),
                        color=colour, marker=marker, capsize=2, label=f"{enc} (layer {g.layer.iloc[0]})")
        chance = float(t.chance.mean())
        if np.isfinite(chance):
            ax.axhline(chance, color="0.4", ls="--", lw=1, label=f"chance ({chance:.2f})")
        ks = sorted(t.k_num.dropna().unique())
        ax.set_xticks(ks, [str(int(k)) for k in ks])
        ax.set_xlabel("k (reasoning hops in the story)")
        ax.set_ylabel("test accuracy (proportion)")
        ax.set_ylim(0, 1.05)
        drop = t.groupby("k_num").accuracy.mean()
        ax.set_title(f"{task}: mean accuracy {drop.iloc[0]:.2f} at k={int(drop.index[0])} → "
                     f"{drop.iloc[-1]:.2f} at k={int(drop.index[-1])}")

    _task_panels(plot, table, draw, width=6.0)
    plot.caption = (f"Accuracy per number of hops k at {_layer_words(analysis)}. Error bars: {_ci_words(analysis)}. "
                    "Dashed: chance.")
    return plot


def fig_selectivity_mdl(analysis: RunAnalysis) -> Plot:
    """Selectivity (accuracy − control accuracy, with CI) and MDL compression per encoder."""
    plot = Plot("selectivity_mdl", "Selectivity and MDL")
    table = _without_lab(analysis.accuracy_table("all"))
    r = analysis.tables.results
    if table.empty or r is None:
        plot.missing = "results.parquet has no overall accuracy rows to compute selectivity from"
        return plot
    mdl = r[(r.subset_kind == "all") & r.metric.isin(["mdl_compression", "mdl_codelength_bits",
                                                       "control_mdl_codelength_bits"])]
    tasks = sorted(set(table.task))
    colours = _colours(sorted(set(table.encoder)))
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(len(tasks), 2, figsize=(11, 3.6 * len(tasks)), squeeze=False)
        for (ax_s, ax_m), task in zip(axes, tasks):
            t = table[table.task == task].sort_values("encoder")
            y = np.arange(len(t))
            ax_s.barh(y, t.selectivity, color=[colours[e][0] for e in t.encoder],
                      xerr=_err(t.sel_low.to_numpy(), t.sel_high.to_numpy(), t.selectivity.to_numpy()), capsize=2)
            ax_s.set_yticks(y, [f"{e} (layer {lay})" for e, lay in zip(t.encoder, t.layer)])
            ax_s.axvline(0, color="0.3", lw=0.8)
            ax_s.set_xlabel("selectivity (accuracy − control accuracy, proportion)")
            best = t.loc[t.selectivity.idxmax()]
            ax_s.set_title(f"{task}: most selective {best.encoder} ({best.selectivity:+.2f})")
            m = mdl[(mdl.task == task)]
            m = m.merge(t[["encoder", "layer"]], on=["encoder", "layer"])
            comp = m[m.metric == "mdl_compression"].groupby("encoder").value.mean()
            bits = m[m.metric == "mdl_codelength_bits"].groupby("encoder").value.mean()
            cbits = m[m.metric == "control_mdl_codelength_bits"].groupby("encoder").value.mean().reindex(t.encoder)
            if comp.empty:
                ax_m.text(0.5, 0.5, "no MDL rows in this run", ha="center", va="center", transform=ax_m.transAxes)
                ax_m.set_axis_off()
                continue
            comp = comp.reindex(t.encoder)
            ax_m.barh(y, comp, color=[colours[e][0] for e in t.encoder])
            for yi, (c, b, cb) in enumerate(zip(comp, bits.reindex(t.encoder), cbits)):
                if np.isfinite(c):
                    ctrl = f"; control task {cb:,.0f}" if np.isfinite(cb) else ""
                    ax_m.text(c, yi, f"  {c:.2f}× ({b:,.0f} bits{ctrl})" if np.isfinite(b) else f"  {c:.2f}×",
                              va="center", fontsize=8)
            ax_m.set_yticks(y, [])
            ax_m.axvline(1, color="0.3", lw=0.8, ls="--")
            ax_m.set_xlabel("MDL compression (uniform codelength ÷ online codelength, ×)")
            ax_m.set_title("MDL (online code): higher = labels easier to extract")
        fig.tight_layout()
    plot.figure = fig
    plot.caption = (f"Left: selectivity at {_layer_words(analysis)}; error bars: 95% bootstrap over test items of "
                    "the per-item difference (correct − control correct), each averaged over seeds (seed means of "
                    "the per-seed bounds when predictions are absent). Right: MDL compression (seed mean; "
                    "dashed line = no compression) with the online codelength in bits and, beside it, the control "
                    "task's codelength (blocks sent cluster by cluster: scenes, images, stories).")
    return plot


def fig_lab_objectives(analysis: RunAnalysis) -> Plot:
    """Lab: accuracy per relation category per training objective, mean over lab seeds with t intervals."""
    plot = Plot("lab_objectives", "Lab: accuracy per category by training objective")
    lab = analysis.lab
    if lab is None:
        plot.missing = "no lab encoders (lab-mlm-sK / lab-textcl-sK / lab-vision-sK) in this run"
        return plot
    s = lab[0][(lab[0].metric == "accuracy") & (lab[0].subset_kind == "category")]
    if s.empty:
        plot.missing = "no per-category accuracy rows for the lab encoders"
        return plot
    objectives = list(dict.fromkeys(s.objective))

    def draw(ax: Axes, task: str, t: pd.DataFrame) -> None:
        cats = sorted(set(t.subset))
        x = np.arange(len(cats))
        width = 0.8 / len(objectives)
        for j, obj in enumerate(objectives):
            o = t[t.objective == obj].set_index("subset").reindex(cats)
            ax.bar(x + (j - (len(objectives) - 1) / 2) * width, o["mean"], width, color=PALETTE[j],
                   yerr=_err(o.ci_low.to_numpy(), o.ci_high.to_numpy(), o["mean"].to_numpy()), capsize=2,
                   label=f"{obj} ({int(o.n_seeds.max())} seeds)")
        if "chance" in t and np.isfinite(t.chance).any():
            ax.axhline(float(t.chance.mean()), color="0.4", ls="--", lw=1, label="chance")
        ax.set_xticks(x, cats)
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("relation category")
        ax.set_ylabel("test accuracy (proportion)")
        best = t.loc[t["mean"].idxmax()]
        ax.set_title(f"{task} (lab, layer {best.layer}): best {best.objective} on {best.subset} "
                     f"({best['mean']:.2f})")

    _task_panels(plot, s, draw, width=6.4)
    plot.caption = ("Matched lab encoders differing only in their training objective: mean accuracy over lab seeds "
                    "(each seed first averaged over probe seeds) with 95% t intervals across lab seeds.")
    return plot


def _encoder_rdms(analysis: RunAnalysis) -> dict[str, list]:
    """Per dataset: each encoder's RDM file at its last layer (``final`` when present)."""
    by_key: dict[tuple[str, str], list] = {}
    for f in analysis.tables.rdms:
        if f.encoder is not None:
            by_key.setdefault((f.dataset, f.encoder), []).append(f)
    out: dict[str, list] = {}
    for (dataset, _), files in sorted(by_key.items()):
        out.setdefault(dataset, []).append(max(files, key=lambda f: layer_sort_key(f.layer)))
    return out


def fig_rdms(analysis: RunAnalysis) -> Plot:
    """Condition-level RDM heatmaps: each encoder's (last layer) next to the reference RDMs, per dataset."""
    plot = Plot("rdms", "Representational dissimilarity matrices")
    encoders = _encoder_rdms(analysis)
    refs: dict[str, list] = {}
    for f in analysis.tables.rdms:
        if f.reference is not None:
            refs.setdefault(f.dataset, []).append(f)
    datasets = sorted(set(encoders) | set(refs))
    if not datasets:
        plot.missing = "no rdms/*.npz files (the RSA stage did not run)"
        return plot
    files = [(d, f) for d in datasets
             for f in encoders.get(d, []) + sorted(refs.get(d, []), key=lambda f: f.reference)]
    with plt.rc_context(STYLE):
        fig, axes = _grid(len(files), width=4.6, height=4.4, max_cols=3)  # large enough to read every cell
        for ax, (dataset, f) in zip(axes, files):
            im = ax.imshow(f.rdm, cmap="viridis", interpolation="nearest")
            n = len(f.labels)
            if n <= 30:
                ax.set_xticks(range(n), f.labels, rotation=90, fontsize=7)
                ax.set_yticks(range(n), f.labels, fontsize=7)
            else:
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_xlabel(f"{n} conditions (labels omitted)")
            what = f"reference: {f.reference}" if f.reference else f"{f.encoder}, layer {f.layer}"
            ax.set_title(f"{dataset} — {what}", fontsize=9)
            cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
            cb.set_label(f"dissimilarity ({f.method})" if f.method else "dissimilarity", fontsize=7)
            cb.ax.tick_params(labelsize=6)
        fig.tight_layout()
    plot.figure = fig
    plot.caption = ("Condition × condition RDMs of the condition centroids (mean embedding per relation) at each "
                    "encoder's last layer, next to the reference RDMs built from the ground truth. Similar block "
                    "structure means the encoder separates the conditions the way the reference does.")
    return plot


def fig_rsa_curves(analysis: RunAnalysis) -> Plot:
    """RSA value vs layer per encoder, one panel per dataset × reference, CI band, stars where p < .05."""
    plot = Plot("rsa_curves", "RSA across layers")
    rsa = analysis.tables.rsa
    if rsa is None or rsa.empty:
        plot.missing = "rsa.parquet is missing or empty (the RSA stage did not run)"
        return plot
    combo = rsa.groupby(["rdm_method", "comparison"]).size().idxmax()
    rows = rsa[(rsa.rdm_method == combo[0]) & (rsa.comparison == combo[1])]
    panels = sorted(rows.groupby(["dataset", "reference"]).groups)
    colours = _colours(sorted(set(rows.encoder)))
    with plt.rc_context(STYLE):
        fig, axes = _grid(len(panels), width=5.6, max_cols=2)
        for ax, (dataset, reference) in zip(axes, panels):
            p = rows[(rows.dataset == dataset) & (rows.reference == reference)]
            layers = sorted(set(p.layer), key=layer_sort_key)
            pos = {layer: i for i, layer in enumerate(layers)}
            for enc, g in p.groupby("encoder", sort=True):
                g = g.sort_values("layer", key=lambda s: s.map(layer_sort_key))
                xs = g.layer.map(pos).to_numpy()
                colour, marker = colours[enc]
                ax.plot(xs, g.value, color=colour, marker=marker, ms=4, label=enc)
                ax.fill_between(xs, g.ci_low, g.ci_high, color=colour, alpha=0.15, lw=0)
                p_col = g.p_holm if "p_holm" in g.columns and g.p_holm.notna().any() else None
                sig = ((p_col < ALPHA) & (g.n_permutations >= 1000)).to_numpy() if p_col is not None else \
                    np.zeros(len(g), bool)
                ax.plot(xs[sig], g.value.to_numpy()[sig], ls="none", marker="*", ms=10, color=colour, mec="k",
                        mew=0.4)
            ax.axhline(0, color="0.4", lw=0.8)
            ax.set_xticks(range(len(layers)), layers)
            ax.set_xlabel("layer (final = output embedding)")
            ax.set_ylabel(f"RDM similarity ({combo[1]})")
            ax.set_title(f"{dataset} vs the {reference} reference")
            ax.legend(loc="best", frameon=False)
        fig.tight_layout()
    others = len(rsa.groupby(["rdm_method", "comparison"])) - 1
    plot.figure = fig
    plot.caption = (f"RSA between each layer's item-level {combo[0]} RDM and the reference RDMs ({combo[1]}); band: "
                    f"bootstrap 95% interval over clusters; ★: permutation p < {ALPHA} after Holm over layers × references "
                    "(≥ 1,000 permutations). Which encoder fits better is in the RSA findings (paired bootstrap)."
                    + (f" {others} other RDM-method/comparison combination(s) are in the RSA table." if others else ""))
    return plot


def fig_centroid_pca(analysis: RunAnalysis) -> Plot:
    """2-D PCA of the condition centroids (e.g. relations) per encoder at its last layer, points labelled."""
    plot = Plot("centroid_pca", "Relation centroids in 2-D (PCA)")
    panels = [(d, f) for d, files in _encoder_rdms(analysis).items() for f in files
              if f.centroids is not None and len(f.labels) >= 3]
    if not panels:
        plot.missing = "no rdms/*.npz file with 'centroids' for ≥ 3 conditions (the RSA stage did not run)"
        return plot
    with plt.rc_context(STYLE):
        fig, axes = _grid(len(panels), width=4.6, height=4.2, max_cols=3)
        for ax, (dataset, f) in zip(axes, panels):
            pca = PCA(n_components=2, random_state=0)
            xy = pca.fit_transform(f.centroids)
            ax.scatter(xy[:, 0], xy[:, 1], s=18, color=PALETTE[0])
            for (x, y), label in zip(xy, f.labels):
                ax.annotate(label, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
            ev = pca.explained_variance_ratio_
            ax.set_xlabel(f"PC1 ({100 * ev[0]:.0f}% of centroid variance)")
            ax.set_ylabel(f"PC2 ({100 * ev[1]:.0f}%)")
            ax.set_title(f"{dataset} — {f.encoder}, layer {f.layer}", fontsize=9)
        fig.tight_layout()
    plot.figure = fig
    plot.caption = ("Condition centroids (mean embedding per condition) projected on their first two principal "
                    "components (PCA fitted per encoder on the centroids). Converse relations placed opposite one "
                    "another suggest a direction-like code.")
    return plot


FIGURES: tuple[Callable[[RunAnalysis], Plot], ...] = (
    fig_category_accuracy, fig_layer_curves, fig_stepgame_k, fig_selectivity_mdl, fig_lab_objectives, fig_rdms,
    fig_rsa_curves, fig_centroid_pca)


def wrap_titles(fig: Figure) -> None:
    """Wrap every axes title to its panel's width, so that no title runs past the figure and is clipped."""
    import textwrap

    for ax in fig.axes:
        title = ax.get_title()
        if not title:
            continue
        width_in = ax.get_position().width * fig.get_figwidth()
        chars = max(20, int(width_in * 72 / (0.6 * ax.title.get_fontsize())))
        ax.set_title(textwrap.fill(title, chars), fontsize=ax.title.get_fontsize())
    fig.tight_layout()


def make_figures(analysis: RunAnalysis, out_dir: str | Path | None = None, *,
                 show_progress: bool = False) -> list[Plot]:
    """Draw every figure and close it, keeping its PNG bytes in :attr:`Plot.png`; with ``out_dir``, also write
    each as PNG and SVG there. Figures without data keep their reason in :attr:`Plot.missing`."""
    from tqdm.auto import tqdm

    plots = []
    bar = tqdm(FIGURES, desc="report figures", unit="figure", disable=not show_progress, leave=False)
    for draw in bar:
        bar.set_postfix_str(draw.__name__, refresh=False)
        plot = draw(analysis)
        if plot.figure is not None:
            wrap_titles(plot.figure)
            buf = io.BytesIO()
            plot.figure.savefig(buf, format="png")
            plot.png = buf.getvalue()
            if out_dir is not None:
                atomic_write(Path(out_dir) / f"{plot.name}.png", lambda fh: fh.write(plot.png), binary=True)
                with atomic_path(Path(out_dir) / f"{plot.name}.svg") as tmp:
                    plot.figure.savefig(tmp, format="svg")
            plt.close(plot.figure)
        plots.append(plot)
    return plots
