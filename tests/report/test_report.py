"""The report on a planted run directory: figures, self-containment, findings that follow the data, partial runs."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from html import unescape
from pathlib import Path

import pytest
from typer.testing import CliRunner

from spatial_probing.cli import app
from spatial_probing.report import FIGURES, NotARunDirectory, RunAnalysis, build_report, load_run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIGURE_NAMES = {"category_accuracy", "layer_curves", "accuracy_by_k", "selectivity_mdl", "lab_objectives", "rdms",
                "rsa_curves", "centroid_pca"}


@pytest.fixture(scope="module")
def built(fake_run_template: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    run = Path(shutil.copytree(fake_run_template, tmp_path_factory.mktemp("built") / "run"))
    path = build_report(run, n_boot=500)
    return run, path.read_text(encoding="utf-8")


def _text(html: str) -> str:
    """Visible text without tags, entities decoded, whitespace collapsed."""
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def test_every_figure_written_as_png_and_svg(built: tuple[Path, str]) -> None:
    run, _ = built
    assert {f.__name__ for f in FIGURES} and len(FIGURE_NAMES) == len(FIGURES)
    for name in FIGURE_NAMES:
        png, svg = run / "figures" / f"{name}.png", run / "figures" / f"{name}.svg"
        assert png.read_bytes().startswith(PNG_MAGIC), name
        assert "<svg" in svg.read_text(encoding="utf-8")[:2000], name
    assert not list((run / "figures").glob(".*.tmp"))  # atomic writes leave no temp files


def test_html_is_self_contained_and_images_decode(built: tuple[Path, str]) -> None:
    _, html = built
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:|//|file:)""", html, re.I)
    assert not re.search(r"""<(link|script)\b""", html, re.I)
    assert "@import" not in html and "url(" not in html
    srcs = re.findall(r"""<img[^>]*\ssrc="([^"]*)\"""", html)
    assert len(srcs) == len(FIGURE_NAMES)
    for src in srcs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1], validate=True).startswith(PNG_MAGIC)


def test_planted_gain_is_stated_and_null_difference_is_not_claimed(built: tuple[Path, str]) -> None:
    _, html = built
    text = _text(html)
    # diagonal: clip-text 0.92 vs sbert-mpnet 0.45 → a gain of the verdict family, with its size and Holm p
    m = re.search(r"synthetic-relation, diagonal relations: clip-text beats sbert-mpnet by \+(\d+\.\d) points "
                  r"\(95% CI [^;]+; Holm p < 0\.001 paired t, p [<=] 0\.0\d+ sign-flip\)", text)
    assert m and 35 <= float(m.group(1)) <= 60
    # proximity: both 0.70 → never a "beats"; with 60 items it is not shown equivalent either
    assert "proximity relations: clip-text beats sbert-mpnet" not in text
    assert re.search(r"synthetic-relation, proximity relations: clip-text vs sbert-mpnet is inconclusive", text)
    verdicts = re.search(r"synthetic-relation diagonal gains", text)
    assert verdicts and not re.search(r"synthetic-relation proximity (gains|resistant)", text)


def test_chance_selectivity_rsa_and_lab_statements_follow_the_data(built: tuple[Path, str]) -> None:
    _, html = built
    text = _text(html)
    assert re.search(r"random-init:bert \(layer \w+\) on synthetic-relation is at chance", text)
    assert "clip-text (layer final) on synthetic-relation is at chance" not in text
    assert re.search(r"random-init:bert \(layer \w+\) on synthetic-relation: selectivity near zero", text)
    # the fixture's rsa.parquet has no Holm column and no rsa_pairs: no fit is called significant, nobody "closest"
    assert re.search(r"direction reference \(cosine RDMs, spearman, each encoder's last layer\): p-values are not "
                     r"corrected", text)
    assert "closest" not in text and "fits it better than every other" not in text
    # lab: vision beats mlm on diagonal in every seed (0.90 vs 0.35)
    assert re.search(r"synthetic-relation, diagonal relations: lab-vision beats lab-mlm by \+\d+\.\d points", text)
    for section in ("Setup", "Headline comparisons", "Relation categories", "Representational similarity analysis",
                    "Grounding lab", "Not in this run", "Run manifest"):
        assert section in text
    assert "<details>" in html and "hub/clip-text" in html  # manifest and encoder sources


def test_analysis_intervals_match_comparison_accuracies(fake_run: Path) -> None:
    """The item-bootstrap point estimates equal the seed-averaged accuracies the paired tests used."""
    analysis = RunAnalysis(load_run(fake_run), n_boot=200)
    comps = analysis.comparison_table(("category",))
    assert not comps.empty
    for row in comps.head(6).itertuples():
        iv = analysis.interval(row.task, row.encoder_a, row.probe, row.layer_a, row.subset_kind, row.subset)
        assert iv.value == pytest.approx(row.acc_a) and iv.low <= iv.value <= iv.high and iv.source == "items"


def test_partial_run_lists_what_is_missing(fake_run: Path) -> None:
    for name in ("rsa.parquet", "rsa.csv", "comparisons.parquet"):
        (fake_run / name).unlink()
    shutil.rmtree(fake_run / "rdms")
    (fake_run / "predictions.parquet").write_bytes(b"not a parquet file")
    import pandas as pd

    results = pd.read_parquet(fake_run / "results.parquet")
    keep = ~results.subset_kind.isin(["category", "k"]) & ~results.encoder.str.startswith("lab-")
    results[keep].to_parquet(fake_run / "results.parquet")
    html = build_report(fake_run, n_boot=200, partial=True).read_text(encoding="utf-8")
    missing = _text(html.split('id="missing"', 1)[1].split('id="manifest"', 1)[0])
    for expected in ("rsa.parquet: not found", "comparisons.parquet: not found", "predictions.parquet: unreadable",
                     "rdms/*.npz", "no per-category accuracy rows", "no per-k rows", "no lab encoders"):
        assert expected in missing, expected
    text = _text(html)
    assert " beats " not in text and "verdict-sentence" not in html  # nothing invented without predictions
    assert "seed means of the per-seed" in text  # intervals fall back, and say so
    assert len(re.findall(r"<img ", html)) == 2  # layer curves + selectivity/MDL only


def test_run_without_grounded_encoder_says_so(fake_run: Path) -> None:
    import pandas as pd

    for name in ("results", "predictions", "comparisons"):
        df = pd.read_parquet(fake_run / f"{name}.parquet")
        cols = [c for c in ("encoder", "encoder_a", "encoder_b") if c in df.columns]
        ok = ~df[cols].apply(lambda s: s.str.contains("clip|lab-", regex=True)).any(axis=1)
        df[ok].to_parquet(fake_run / f"{name}.parquet")
    html = build_report(fake_run, n_boot=200).read_text(encoding="utf-8")
    text = _text(html)
    assert "This run has no grounded encoder" in text and "<td>grounded − distributional</td>" not in html


def test_not_a_run_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(NotARunDirectory, match=re.escape(str(tmp_path)) + ".*results.parquet.*manifest.json"):
        build_report(tmp_path)
    result = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2 and "not a run directory" in result.output


def test_cli_writes_report_and_prints_its_path(fake_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "elsewhere" / "r.html"
    for name in ("predictions.parquet", "rsa.parquet"):  # smaller and faster: the CLI path is what is tested
        (fake_run / name).unlink()
    result = CliRunner().invoke(app, ["report", str(fake_run), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(out) and out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert (fake_run / "figures" / "layer_curves.svg").is_file()


def _chromium() -> str | None:
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


#: Runs in the page once loaded: images decoded, and main-text blocks that reach past the viewport (tables
#: scroll inside their own box, so a wide table is fine; a paragraph or a page wider than the screen is not).
#: The page sits in an iframe of the width under test (headless Chromium keeps windows at least 500 px wide)
#: and writes its answer into the host page's title.
_PAGE_PROBE = """<script>window.addEventListener('load', () => {
  const i = [...document.images], w = document.documentElement.clientWidth;
  const blocks = [...document.querySelectorAll('main > *, main p, main li, main h1, main h2, main h3, main figure, '
                                               + 'main .card, main .scroll, main pre, main summary')];
  const over = blocks.filter(e => e.getBoundingClientRect().right > w + 1).map(e => e.tagName + (e.id ? '#' + e.id : ''));
  window.parent.document.title = 'loaded ' + i.filter(x => x.complete && x.naturalWidth > 0).length + ' of '
    + i.length + ' width ' + w + ' page ' + document.documentElement.scrollWidth + ' over [' + over.slice(0, 5).join(' ')
    + ']';
});</script>"""


def page_in_chromium(browser: str, html: str, width: int, tmp_path: Path) -> re.Match[str] | None:
    """Lay ``html`` out ``width`` px wide in headless Chromium; the probe's answer (see ``_PAGE_PROBE``)."""
    from html import escape

    page = tmp_path / f"host-{width}.html"
    page.write_text(f'<!DOCTYPE html><html><head><title>pending</title></head><body style="margin:0">'
                    f'<iframe style="width:{width}px;height:900px;border:0" '
                    f'srcdoc="{escape(html.replace("</body>", _PAGE_PROBE + "</body>"), quote=True)}"></iframe>'
                    f'</body></html>', encoding="utf-8")
    dom = subprocess.run([browser, "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars",
                          f"--window-size={width + 200},1000", "--virtual-time-budget=5000", "--dump-dom",
                          page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    return re.search(r"<title>loaded (\d+) of (\d+) width (\d+) page (\d+) over \[([^\]]*)\]</title>", dom)


@pytest.mark.parametrize("width", [1280, 390])
def test_page_in_headless_chromium_loads_every_image_and_fits_the_width(built: tuple[Path, str], tmp_path: Path,
                                                                        width: int) -> None:
    browser = _chromium()
    if browser is None:
        pytest.skip("no Chromium on PATH; .ci/run installs Debian's chromium")
    _, html = built
    m = page_in_chromium(browser, html, width, tmp_path)
    assert m, "the page probe gave no answer"
    assert m.group(1) == m.group(2) == str(len(FIGURE_NAMES))  # no broken image
    assert int(m.group(3)) == width  # the page was laid out at the width asked for
    assert int(m.group(4)) <= width and m.group(5) == "", f"wider than {width} px: {m.group(0)}"


def test_report_table_shows_the_pairs_a_question_asks_for(built: tuple[Path, str]) -> None:
    from spatial_probing.report.summary import is_reported_pair

    assert is_reported_pair("clip-text", "sbert-mpnet") and is_reported_pair("random-init:bert", "bert")
    assert is_reported_pair("static:bert", "bert") and is_reported_pair("lab-mlm-s0", "lab-vision-s0")
    assert not is_reported_pair("random-init:bert", "sbert-mpnet")
    assert not is_reported_pair("static:bert", "random-init:bert")
    assert not is_reported_pair("lab-mlm-s0", "lab-mlm-s1") and not is_reported_pair("lab-mlm-s0", "lab-vision-s1")
    assert not is_reported_pair("lab-vision-s0", "sbert-mpnet")
    _, html = built
    table = html[html.index('id="comparisons"'):html.index('id="categories"')]
    assert "random-init:bert (layer" in table and "bert (layer" in table
    assert not re.search(r"random-init:bert \(layer \w+\)</td>\s*<td[^>]*>sbert-mpnet", table)
    assert re.search(r"the other \d+ pairs .* are in comparisons\.csv", _text(table))
