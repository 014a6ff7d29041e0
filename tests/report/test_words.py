"""The report's meaning-over-words section reads the deepest layer and says what the interval supports."""

from __future__ import annotations

import pandas as pd

from spatial_probing.report.words import deepest_layers, meaning_rows, meaning_sentences


def _meaning() -> pd.DataFrame:
    rows = []
    for enc, layers in (("sbert-minilm", ["0", "3", "final"]), ("bow:", ["0"])):
        for layer in layers:
            value = {"final": 0.8, "3": 0.1, "0": 0.0}[layer]
            for kind in ("all", "horizontal"):
                rows.append({"dataset": "synthetic", "encoder": enc, "layer": layer, "kind": kind, "value": value,
                             "ci_low": max(value - 0.1, 0.0), "ci_high": min(value + 0.1, 1.0), "n_triples": 40,
                             "n_clusters": 40})
    return pd.DataFrame(rows)


def test_deepest_layer_is_final_or_the_only_one() -> None:
    kept = deepest_layers(_meaning())
    assert set(map(tuple, kept[["encoder", "layer"]].drop_duplicates().to_numpy())) == {("sbert-minilm", "final"),
                                                                                       ("bow:", "0")}
    assert len(meaning_rows(_meaning())) == 4


def test_sentences_follow_the_interval() -> None:
    text = " ".join(meaning_sentences(_meaning()))
    assert "sbert-minilm (layer final)" in text and "80.0% [70.0, 90.0]" in text
    assert "meaning usually wins over shared words" in text
    assert "bow: (layer 0)" in text and "shared words usually win over meaning" in text
    assert meaning_sentences(pd.DataFrame()) == []


def test_skipped_captions_are_shown_with_their_reasons() -> None:
    m = _meaning().assign(n_skipped=3, skip_reasons='{"no converse: motion": 2, "caption does not parse": 1}')
    rows = meaning_rows(m)
    assert rows[0][-1] == "3 (no converse: motion: 2; caption does not parse: 1)"
    assert meaning_rows(_meaning())[0][-1] == "0"  # a table without the columns (older runs) shows none skipped
