"""The report's answer per relation kind: three questions a bag of words cannot fake, side by side.

For each dataset (VSR, synthetic scenes), relation kind (the category: VSR meta-category, synthetic
horizontal/vertical/…) and encoder, one row answers:

1. **Relation identity — lexical or not?** From the verdict family's *encoder − best lexical floor* row of the
   relation task on that kind: *lexical* when the floor reaches the encoder's accuracy within its interval.
2. **Meaning over words** (:mod:`spatial_probing.rsa.meaning`): the share of triples where the caption is
   nearer its converse paraphrase than its argument swap, with its clustered interval (a bag of words: 0).
3. **Converse transfer** (train on one wording of each converse pair, test on the other): accuracy with its
   interval beside chance and the strictest lexical floor (the family's row on that kind).

Nothing here decides a verdict: the rows are read off the family (:mod:`spatial_probing.report.verdicts`)
and the meaning table, and each links to the family row it came from.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from spatial_probing.embed.config import is_lexical_floor
from spatial_probing.report.words import deepest_layers

RELATION_TASKS = {"vsr": "vsr-relation", "synthetic": "synthetic-relation"}
CONVERSE_TASKS = {"vsr": "vsr-converse-transfer", "synthetic": "synthetic-converse-transfer"}
KIND_COLUMNS = ["dataset", "kind", "encoder",
                "identity_acc", "identity_low", "identity_high", "identity_floor", "identity_floor_acc",
                "identity_lexical", "identity_row",
                "meaning_layer", "meaning", "meaning_low", "meaning_high", "meaning_triples",
                "converse_acc", "converse_low", "converse_high", "converse_chance", "converse_floor",
                "converse_floor_acc", "converse_verdict", "converse_row"]


def _family_rows(family: pd.DataFrame, task: str) -> dict[tuple[str, str], pd.Series]:
    """(kind, encoder) → the lexical-contrast row of ``task`` (``kind`` ``all`` for the whole task)."""
    if family is None or family.empty:
        return {}
    rows = family[(family.task == task) & (family.contrast == "lexical")]
    return {(str(r.subset), str(r.encoder_a)): r for _, r in rows.iterrows()}


def kind_answer(family: pd.DataFrame, meaning: pd.DataFrame | None) -> pd.DataFrame:
    """One row per dataset × relation kind × encoder (kind ``all`` first) with the three answers; NaN where a
    run did not ask the question (no relation task, no meaning step, no converse-transfer task)."""
    mean = deepest_layers(meaning) if meaning is not None else pd.DataFrame()
    out = []
    for dataset in sorted(RELATION_TASKS):
        ident = _family_rows(family, RELATION_TASKS[dataset])
        conv = _family_rows(family, CONVERSE_TASKS[dataset])
        mrows = ({(str(r.kind), str(r.encoder)): r for r in mean[mean.dataset == dataset].itertuples()}
                 if not mean.empty else {})
        encoders = {e for _, e in (*ident, *conv)} | {e for _, e in mrows if not is_lexical_floor(e)}
        keys = {k for k, e in (*ident, *conv, *mrows) if e in encoders}
        for kind in sorted(keys, key=lambda k: (k != "all", k)):
            for enc in sorted(encoders):
                i, c, m = ident.get((kind, enc)), conv.get((kind, enc)), mrows.get((kind, enc))
                if i is None and c is None and m is None:
                    continue
                nan = np.nan
                out.append([
                    dataset, kind, enc,
                    *((i.acc_a, i.a_low, i.a_high, i.encoder_b, i.acc_b, bool(i.lexical), i.row_id) if i is not None
                      else (nan, nan, nan, "", nan, None, "")),
                    *((str(m.layer), m.value, m.ci_low, m.ci_high, int(m.n_triples)) if m is not None
                      else ("", nan, nan, nan, 0)),
                    *((c.acc_a, c.a_low, c.a_high, c.chance, c.encoder_b, c.acc_b, c.verdict, c.row_id)
                      if c is not None else (nan, nan, nan, nan, "", nan, "", "")),
                ])
    return pd.DataFrame(out, columns=KIND_COLUMNS)


def identity_words(r: pd.Series) -> str:
    """Relation identity in words: lexical (the floor reaches it) or how far above the floor."""
    if r.identity_lexical is None or pd.isna(r.identity_acc):
        return "—"
    if r.identity_lexical:
        return f"lexical: {r.identity_floor} reaches it ({r.identity_floor_acc:.3f})"
    return f"above the floor ({r.identity_floor} {r.identity_floor_acc:.3f})"


def meaning_words(r: pd.Series) -> str:
    """The meaning-over-words index in words (0.5: neither the paraphrase nor the swap is reliably nearer)."""
    if pd.isna(r.meaning):
        return "—"
    if r.meaning_low > 0.5:
        return "meaning wins"
    return "words win" if r.meaning_high < 0.5 else "neither"


def converse_words(r: pd.Series) -> str:
    """Converse transfer in words: above / at / below chance, and whether the lexical floor is beaten."""
    if pd.isna(r.converse_acc):
        return "—"
    if r.converse_low > r.converse_chance:
        where = "above chance"
    elif r.converse_high < r.converse_chance:
        where = "below chance (follows the wording)"
    else:
        where = "at chance"
    floor = "" if not r.converse_floor else f"; {r.converse_floor} {r.converse_floor_acc:.3f}, verdict {r.converse_verdict}"
    return where + floor


def kind_sentences(table: pd.DataFrame) -> list[str]:
    """Per dataset: how many kinds are lexical, the best meaning index, and which kinds transfer above chance."""
    out = []
    for dataset, grp in table.groupby("dataset", sort=True):
        kinds = grp[grp.kind != "all"]
        lex = kinds.dropna(subset=["identity_acc"]).groupby("kind").identity_lexical.all()
        if len(lex):
            out.append(f"{dataset}: relation identity is lexical (a bag-of-words, positional, static or random-init "
                       f"floor reaches every encoder) for {int(lex.sum())} of {len(lex)} relation kinds"
                       + (f"; not for {', '.join(lex.index[~lex.values])}." if (~lex).any() else "."))
        m = kinds.dropna(subset=["meaning"])
        if len(m):
            best = m.loc[m.meaning.idxmax()]
            out.append(f"{dataset}: the highest meaning-over-words index of any kind is {best.meaning:.3f} "
                       f"[{best.meaning_low:.3f}, {best.meaning_high:.3f}] ({best.encoder}, {best.kind}); "
                       + ("some kind's interval is above 0.5." if (m.meaning_low > 0.5).any()
                          else "no kind's interval is above 0.5: shared words beat shared meaning."))
        c = kinds.dropna(subset=["converse_acc"])
        if len(c):
            above = c[(c.converse_low > c.converse_chance) & (c.converse_verdict == "gain")]
            whole = grp[(grp.kind == "all")].dropna(subset=["converse_acc"])
            overall = "; ".join(f"{r.encoder} {r.converse_acc:.3f} [{r.converse_low:.3f}, {r.converse_high:.3f}], "
                                f"{converse_words(r).split(';')[0]}" for r in whole.itertuples())
            out.append(f"{dataset}: converse transfer (chance {c.converse_chance.iloc[0]:.2f})"
                       + (f": {overall}" if overall else "") + "; above chance and above the lexical floor "
                       "(corrected) for " + (", ".join(f"{r.encoder} on {r.kind}" for r in above.itertuples())
                                             if len(above) else "no encoder on any relation kind") + ".")
    return out
