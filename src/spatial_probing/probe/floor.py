"""Each encoder's accuracy beside the best lexical floor's (``bow:``, ``order:``, ``static:…``, ``random-init:…``).

Why: a probe that decodes a relation from an encoder says something about the encoder only where the words
alone do not already give it. This module puts the two numbers side by side for the run log (printed for each
task as it finishes). Layers are chosen by inner-CV accuracy (training data only; without inner CV, ``final``
or else the deepest layer); accuracies and their intervals are means over seeds. The *best* floor is the one
with the highest test accuracy, the conservative choice for a floor. The paired encoder − floor contrast with its test is the report's job, not this table's.
"""

from __future__ import annotations

import pandas as pd

from spatial_probing.embed.config import is_lexical_floor

FLOOR_COLUMNS = ["dataset", "task", "probe", "encoder", "layer", "accuracy", "ci_low", "ci_high", "floor_encoder",
                 "floor_layer", "floor_accuracy", "floor_ci_low", "floor_ci_high", "minus_floor"]


def floor_table(results: pd.DataFrame) -> pd.DataFrame:
    """Per (task, probe, encoder that is not a floor): accuracy at the best-CV layer and the best floor's."""
    from spatial_probing.probe.runner import best_layers

    best = best_layers(results)
    acc = results[(results.metric == "accuracy") & (results.subset_kind == "all")]
    mean = acc.groupby(["dataset", "task", "probe", "encoder", "layer"], sort=True)[["value", "ci_low", "ci_high"]]
    mean = mean.mean().reset_index()
    def fallback(layers: pd.Series) -> str:  # no inner CV (one C): the model's own embedding, else the deepest
        names = set(layers.astype(str))
        numeric = [n for n in names if n.isdigit()]
        return "final" if "final" in names else max(numeric, key=int) if numeric else sorted(names)[0]

    layer_of = {k: best.get(k) or fallback(g.layer) for k, g in mean.groupby(["task", "encoder", "probe"], sort=True)}
    chosen = mean[[layer_of[(r.task, r.encoder, r.probe)] == r.layer for r in mean.itertuples()]]
    rows = []
    for (dataset, task, probe), grp in chosen.groupby(["dataset", "task", "probe"], sort=True):
        floors = grp[grp.encoder.map(is_lexical_floor)]
        top = floors.loc[floors.value.idxmax()] if not floors.empty else None
        for r in grp[~grp.encoder.map(is_lexical_floor)].itertuples():
            rows.append({"dataset": dataset, "task": task, "probe": probe, "encoder": r.encoder, "layer": r.layer,
                         "accuracy": r.value, "ci_low": r.ci_low, "ci_high": r.ci_high,
                         "floor_encoder": None if top is None else top.encoder,
                         "floor_layer": None if top is None else top.layer,
                         "floor_accuracy": float("nan") if top is None else top.value,
                         "floor_ci_low": float("nan") if top is None else top.ci_low,
                         "floor_ci_high": float("nan") if top is None else top.ci_high,
                         "minus_floor": float("nan") if top is None else r.value - top.value})
    return pd.DataFrame(rows, columns=FLOOR_COLUMNS)


def format_floor_table(results: pd.DataFrame, task: str) -> str:
    """A few plain lines for the run log: ``task``'s encoders beside its best lexical floor."""
    table = floor_table(results[results.task == task])
    floors = sorted({e for e in results[results.task == task].encoder if is_lexical_floor(e)})
    if table.empty:
        return f"lexical floor — {task}: no encoder other than the floor ({', '.join(floors) or 'none'})"
    lines = []
    for probe, grp in table.groupby("probe", sort=True):
        first = grp.iloc[0]
        if first.floor_encoder is None:
            lines.append(f"lexical floor — {task} ({probe}): no floor encoder in this run (lexical_floor: [])")
        else:
            lines.append(f"lexical floor — {task} ({probe}): best of {', '.join(floors)} is {first.floor_encoder} "
                         f"{first.floor_accuracy:.3f} [{first.floor_ci_low:.3f}, {first.floor_ci_high:.3f}]")
        width = max(len(e) for e in grp.encoder)
        lines.append(f"  {'encoder':{width}}  layer  accuracy [95% CI]        minus floor")
        for r in grp.itertuples():
            lines.append(f"  {r.encoder:{width}}  {r.layer:5}  {r.accuracy:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]  "
                         f"{r.minus_floor:+.3f}")
    return "\n".join(lines)
