"""The report's layout: summary first, contrasts before folded pairs, at-chance categories as a table, no machine paths."""

from __future__ import annotations

import json
import re
from html import unescape
from pathlib import Path

from spatial_probing.report import build_report


def _section(html: str, start: str, end: str) -> str:
    return html[html.index(f'id="{start}"'):html.index(f'id="{end}"')]


def test_layout_and_relative_paths(fake_run: Path) -> None:
    manifest = json.loads((fake_run / "manifest.json").read_text())
    models = fake_run.parent / "models" / "sbert"
    manifest["command"] = f"spatial-probing run {fake_run.parent / 'run.yaml'}"
    manifest["config"]["cache_dir"] = str(fake_run / "cache")
    manifest["units"][0]["encoder"]["source"] = str(models)
    (fake_run / "manifest.json").write_text(json.dumps(manifest))
    (fake_run / "rsa.parquet").unlink()  # faster; listed under "Not in this run"
    html = build_report(fake_run, n_boot=200).read_text(encoding="utf-8")

    plain = unescape(html)
    assert str(fake_run) not in plain and str(fake_run.parent) not in plain  # no absolute machine path
    assert "spatial-probing run ../run.yaml" in plain and '"cache_dir": "cache"' in plain
    assert "../models/sbert" in plain

    body = html[html.index("<main>"):]
    assert body.index('id="summary"') < body.index("The question.") < body.index('id="setup"')  # summary first
    assert 'href="#missing"' in _section(html, "summary", "setup")  # says at once that pieces are missing

    comparisons = _section(html, "comparisons", "categories")
    shown, folded = comparisons.split("<details>", 1)
    assert re.search(r"clip-text \(layer \w+\)</td>\s*<td[^>]*>sbert-mpnet", shown)  # the question's contrast
    assert "random-init:bert" not in shown and "random-init:bert (layer" in folded  # controls folded away

    baselines = _section(html, "baselines", "rsa")
    text = re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", baselines)))
    assert "relations is at chance" not in text  # no per-category bullets ...
    row = re.search(r"synthetic-relation random-init:bert \(layer \w+\) 0\.083 5 (.*?) synthetic-relation", text)
    assert row and "diagonal" in row.group(1)  # ... one row: random-init:bert at chance on all 5 categories
    assert "clip-text (layer final) 0.083" not in text
