"""The answer per relation kind is read off the verdict family and the meaning table, never recomputed."""

from __future__ import annotations

import numpy as np
import pandas as pd

from spatial_probing.report.kinds import converse_words, identity_words, kind_answer, kind_sentences, meaning_words
from spatial_probing.report.verdicts import VERDICT_COLUMNS


def _row(task: str, kind: str, enc: str, acc: float, low: float, high: float, floor_acc: float, *,
         verdict: str = "inconclusive") -> dict:
    row = dict.fromkeys(VERDICT_COLUMNS, np.nan)
    row.update(task=task, probe="linear", subset_kind="all" if kind == "all" else "category", subset=kind,
               contrast="lexical", encoder_a=enc, encoder_b="bow:", acc_a=acc, a_low=low, a_high=high,
               acc_b=floor_acc, chance=0.5, verdict=verdict, lexical=floor_acc >= low,
               row_id=f"v-{task}-{kind}-{enc}")
    return row


def test_each_kind_gets_identity_meaning_and_converse_from_their_sources() -> None:
    family = pd.DataFrame([
        _row("synthetic-relation", "horizontal", "m", 0.95, 0.90, 0.99, 1.00),   # floor reaches it: lexical
        _row("synthetic-relation", "vertical", "m", 0.95, 0.90, 0.99, 0.60),     # above the floor
        _row("synthetic-converse-transfer", "horizontal", "m", 0.30, 0.20, 0.40, 0.50),   # below chance
        _row("synthetic-converse-transfer", "vertical", "m", 0.80, 0.70, 0.90, 0.50, verdict="gain"),
        {**_row("synthetic-relation", "horizontal", "m", 0.9, 0.8, 1.0, 1.0), "contrast": "grounding"},  # not read
    ])
    meaning = pd.DataFrame({"dataset": "synthetic", "encoder": ["m", "m", "bow:"], "layer": "final",
                            "kind": ["horizontal", "vertical", "horizontal"], "value": [0.1, 0.7, 0.0],
                            "ci_low": [0.05, 0.6, 0.0], "ci_high": [0.2, 0.8, 0.0], "n_triples": 40,
                            "n_clusters": 20})
    t = kind_answer(family, meaning).set_index("kind")
    assert list(t.index) == ["horizontal", "vertical"] and set(t.encoder) == {"m"}   # bow: is a floor, not a row
    h, v = t.loc["horizontal"], t.loc["vertical"]
    assert h.identity_lexical and not v.identity_lexical
    assert identity_words(h).startswith("lexical") and identity_words(v).startswith("above the floor")
    assert meaning_words(h) == "words win" and meaning_words(v) == "meaning wins"
    assert converse_words(h).startswith("below chance") and converse_words(v).startswith("above chance")
    assert h.converse_row == "v-synthetic-converse-transfer-horizontal-m"
    said = " ".join(kind_sentences(kind_answer(family, meaning)))
    assert "lexical" in said and "for 1 of 2 relation kinds; not for vertical" in said
    assert "m on vertical" in said and "some kind's interval is above 0.5" in said


def test_a_run_without_the_questions_gets_no_rows() -> None:
    assert kind_answer(pd.DataFrame(columns=VERDICT_COLUMNS), None).empty
    assert kind_sentences(kind_answer(pd.DataFrame(columns=VERDICT_COLUMNS), None)) == []


def test_the_report_table_highlights_the_kinds_whose_answer_is_not_in_the_words() -> None:
    from spatial_probing.report.html import _kinds_table

    family = pd.DataFrame([_row("synthetic-relation", "horizontal", "m", 0.95, 0.90, 0.99, 1.00),
                           _row("synthetic-relation", "vertical", "m", 0.95, 0.90, 0.99, 0.60)])
    table = _kinds_table(kind_answer(family, None))
    assert table.highlight == [False, True]   # vertical: identity above the floor (a numpy bool column too)
