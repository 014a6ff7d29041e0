"""Every verdict sentence of a report, parsed back and re-derived from the run's tables.

The report's "In short" statements carry the id of the table row they come from (``data-row``).
For each one this test finds the row, re-derives the row's verdict from its numbers with the rules
written out here independently (Holm by statsmodels), re-derives the whole verdict family from
``predictions.parquet``/``results.parquet``, and checks that the sentence says what the row says.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from statsmodels.stats.multitest import multipletests

from spatial_probing.embed import is_grounded
from spatial_probing.report import RunAnalysis, build_report, load_run
from spatial_probing.report.summary import points
from spatial_probing.report.verdicts import verdict_family


class _Sentences(HTMLParser):
    """``(kind, row, text)`` of every ``li.verdict-sentence`` and the ids of every table row."""

    def __init__(self) -> None:
        super().__init__()
        self.sentences: list[dict[str, str]] = []
        self.ids: set[str] = set()
        self._open: dict[str, str] | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if tag == "tr" and a.get("id"):
            self.ids.add(a["id"])
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "li" and a.get("class") == "verdict-sentence":
            self._open = {"kind": a["data-kind"], "row": a["data-row"], "text": ""}

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._open["text"] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "li" and self._open is not None:
            self._open["text"] = re.sub(r"\s+", " ", self._open["text"].replace("[table row]", "")).strip()
            self.sentences.append(self._open)
            self._open = None


def _expected_verdict(r: pd.Series, alpha: float) -> str:
    """The rules, restated: uninformative cells are out; a gain needs t, sign-flip and interval to agree."""
    if r.uninformative in ("ceiling", "chance"):
        return "uninformative"
    if not r.in_family:
        return "inconclusive"
    agree_up = r.p_t_holm < alpha and r.p_perm_holm < alpha and r.diff_low > 0 and r["diff"] > 0
    agree_down = r.p_t_holm < alpha and r.p_perm_holm < alpha and r.diff_high < 0 and r["diff"] < 0
    if agree_up or agree_down:
        return "gain" if agree_up else "loss"
    return "equivalent" if r.p_tost_holm < alpha else "inconclusive"


def check_report(run_dir: Path, html: str) -> int:
    """Assert every verdict sentence of ``html`` against ``run_dir``'s tables; returns how many were checked."""
    parser = _Sentences()
    parser.feed(html)
    analysis = RunAnalysis(load_run(run_dir))
    rules = analysis.rules
    family = pd.read_csv(run_dir / "verdicts.csv", dtype={"uninformative": str})
    family["uninformative"] = family.uninformative.fillna("")
    # 1. the family table is what the run's predictions give
    again = verdict_family(analysis.tables.predictions, analysis.tables.results, analysis.layers, rules)
    assert list(again.row_id) == list(family.row_id)
    assert list(again.verdict) == list(family.verdict)
    np.testing.assert_allclose(again["diff"].to_numpy(float), family["diff"].to_numpy(float), atol=1e-9)
    # 2. Holm over the whole family, and each row's verdict, re-derived independently
    inside = family.in_family.astype(bool)
    for col in ("p_t", "p_perm", "p_tost"):
        if inside.any():
            ref = multipletests(family.loc[inside, col].to_numpy(float), method="holm")[1]
            np.testing.assert_allclose(family.loc[inside, f"{col}_holm"].to_numpy(float), ref, rtol=1e-9)
    for _, r in family.iterrows():
        assert r.verdict == _expected_verdict(r, rules.alpha), r.row_id
    rows = family.set_index("row_id")
    trends = analysis.trends.set_index("row_id")
    controls = analysis.control_checks().set_index("row_id")
    checked = 0
    for s in parser.sentences:
        text, kind, row = s["text"], s["kind"], s["row"]
        assert row in parser.ids, f"sentence links to a missing anchor #{row}: {text}"
        if kind == "family":
            n = int(re.search(r"family has (\d+) pre-specified", text).group(1))
            assert n == int(inside.sum())
            assert f"{int((family.verdict == 'uninformative').sum())} more cells" in text
        elif kind == "count":
            n = int(re.match(r"(\d+) of (\d+) contrasts", text).group(1))
            assert n == int((family[inside].verdict == "inconclusive").sum()) and n > 0
        elif kind == "no-grounded":
            assert not any(is_grounded(e) for e in set(analysis.tables.results.encoder))
        elif kind == "trend":
            t = trends.loc[row]
            assert points(t.slope) in text and points(t.slope_low) in text and points(t.slope_high) in text
            assert t.slope_high < 0 or t.slope_low > 0 or "per extra hop" in text
        elif kind == "control":
            c = controls.loc[row]
            assert c.status in text and f"{c.value:.3f}" in text and c.status != "at chance"
            assert (c.high < c.chance) if c.status == "below chance" else (c.low > c.chance)
        else:
            r = rows.loc[row]
            assert kind == ("lexical" if r.contrast == "lexical" and r.lexical else r.verdict), text
            assert r.encoder_a in text and r.encoder_b in text and r.task in text
            if kind == "lexical":
                assert r.acc_b >= r.a_low and f"{r.acc_b:.3f}" in text
            elif kind in ("gain", "loss"):
                assert ("beats" if kind == "gain" else "trails") in text
                assert points(r["diff"]) in text and points(r.diff_low) in text and points(r.diff_high) in text
                assert (r.diff_low > 0) == (kind == "gain") and (r.diff_high < 0) == (kind == "loss")
            elif kind == "equivalent":
                assert f"within ±{100 * rules.margin:g} points" in text and r.p_tost_holm < rules.alpha
            elif kind == "inconclusive":
                assert points(r["diff"]) in text and points(r.diff_low) in text and points(r.diff_high) in text
                any_sig = r.p_t_holm < rules.alpha or r.p_perm_holm < rules.alpha or r.diff_low > 0 or r.diff_high < 0
                assert r.reason in text, text
                if r.reason == "tests disagree" or r.reason.startswith("not significant"):
                    assert (r.reason == "tests disagree") == bool(any_sig), text
                assert r.p_tost_holm >= rules.alpha
            elif kind == "uninformative":
                assert r.reason in text and f"{r.acc_a:.3f}" in text and f"{r.acc_b:.3f}" in text
            else:
                pytest.fail(f"unexpected verdict sentence kind {kind!r}: {text}")
        checked += 1
    assert checked == len(parser.sentences)
    return checked


def test_every_sentence_of_the_planted_report_is_rederived(fake_run: Path) -> None:
    html = build_report(fake_run).read_text(encoding="utf-8")
    n = check_report(fake_run, html)
    assert n >= 5
    assert 'data-kind="gain"' in html and 'data-kind="trend"' in html  # the planted gain and the k trend are stated


@pytest.mark.slow  # a real tiny pipeline run: two tiny encoders and a lexical-floor control, probed and RSA'd
def test_every_sentence_of_a_real_tiny_run_is_rederived(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest_models import build_tiny_clip, build_tiny_sbert

    from spatial_probing.pipeline import load_run_config, run

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    models = {"sbert-minilm": str(build_tiny_sbert(tmp_path / "sbert")),
              "clip-text": str(build_tiny_clip(tmp_path / "clip"))}
    cfg = {"out": "run", "cache_dir": "cache", "tasks": ["synthetic-relation"],
           "encoders": [*models, "random-init:sbert-minilm"], "layers": "final", "seeds": [0, 1], "Cs": [1.0],
           "inner_folds": 2, "mdl_seeds": 1, "n_boot": 100, "max_train": 80, "max_test": 60, "device": "cpu",
           "task_options": {"synthetic-relation": {"n_scenes": 24}}, "model_paths": models,
           "rsa": {"n_permutations": 1000, "n_boot": 100, "max_items": 40, "references": ["relation", "geometry"]},
           "verdicts": {"n_boot": 500, "n_permutations": 1000}}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    config = load_run_config(tmp_path / "run.yaml")
    paths = run(config, log=lambda *_: None)
    html = Path(paths["report"]).read_text(encoding="utf-8")
    assert check_report(config.out, html) >= 2
    preds = pd.read_parquet(config.out / "predictions.parquet")
    assert preds.cluster.nunique() < len(preds.example_id.unique())  # captions of a scene share a cluster
    assert (config.out / "rsa_pairs.csv").is_file()


@pytest.mark.slow  # real VSR captions (zero-shot split), a tiny model, the lexical floor: a real-data report
def test_every_sentence_of_a_real_data_run_is_rederived(tmp_path: Path, real_data: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest_models import build_tiny_sbert

    from spatial_probing.pipeline import load_run_config, run

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    models = {"sbert-minilm": str(build_tiny_sbert(tmp_path / "sbert"))}
    cfg = {"out": "run", "cache_dir": "cache", "data_dir": str(real_data),
           "tasks": ["vsr-category", "vsr-converse-transfer"],
           "encoders": ["sbert-minilm"], "layers": "final", "seeds": [0], "Cs": [1.0], "inner_folds": 2,
           "mdl_seeds": 0, "n_boot": 100, "max_train": 150, "max_test": 100, "device": "cpu", "model_paths": models,
           "rsa": None, "meaning": None, "verdicts": {"n_boot": 300, "n_permutations": 1000}}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    config = load_run_config(tmp_path / "run.yaml")
    paths = run(config, log=lambda *_: None, show_progress=False)
    html = Path(paths["report"]).read_text(encoding="utf-8")
    assert check_report(config.out, html) >= 2
    family = pd.read_csv(config.out / "verdicts.csv")
    assert {"vsr-category", "vsr-converse-transfer"} <= set(family.task)


def test_every_sentence_of_a_given_run_is_rederived() -> None:
    """``SPATIAL_PROBING_CHECK_RUN=runs/study-offline pytest -k given_run`` audits a finished run's report."""
    import os

    run_dir = os.environ.get("SPATIAL_PROBING_CHECK_RUN")
    if not run_dir:
        pytest.skip("set SPATIAL_PROBING_CHECK_RUN to a finished run directory to audit its report")
    run_dir = Path(run_dir)
    assert check_report(run_dir, (run_dir / "report.html").read_text(encoding="utf-8")) >= 1
