import io
import json
import zipfile

import pytest
from data_fixtures import spartqa_question, spartqa_story, write_stepgame, write_vsr
from typer.testing import CliRunner

from spatial_probing.cli import app
from spatial_probing.data import DataError, load_dataset
from spatial_probing.data import download as dl

runner = CliRunner()


def test_plan_points_at_pinned_upstream():
    vsr = dl.plan("vsr")
    assert len(vsr) == 7 and all(d.url.startswith(dl.VSR_BASE) for d in vsr)
    assert "b27a0af0" in vsr[0].url and vsr[0].dest == "vsr/splits/random/train.jsonl"
    assert {d.dest for d in dl.plan("stepgame")} >= {"stepgame/CompleteVersion/clean/qa10_test.json"}
    assert dl.plan("spartqa")[0].url == dl.SPARTQA_ZIP
    with pytest.raises(DataError, match="unknown dataset"):
        dl.plan("coco")


def test_download_from_a_mirror_then_load(tmp_path):
    upstream = write_vsr(tmp_path / "up") / "vsr"
    (upstream / "data").mkdir()
    (upstream / "splits").rename(upstream / "data" / "splits")
    (upstream / "analysis_scripts").mkdir()
    (upstream / "rel_meta_category_dict.txt").rename(upstream / "analysis_scripts" / "rel_meta_category_dict.txt")
    written = dl.download("vsr", tmp_path / "dest", base_url=upstream.as_uri())
    assert len(written) == 7
    assert len(load_dataset("vsr", data_dir=tmp_path / "dest", split="test")) == 4
    assert dl.download("vsr", tmp_path / "dest", base_url=upstream.as_uri()) == []  # resumes: nothing refetched


def test_spartqa_zip_is_unpacked(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("SpartQA_Human/human_train.json", json.dumps({"data": [spartqa_story([spartqa_question("YN", [0])])]}))
        z.writestr("__MACOSX/SpartQA_Human/._human_train.json", "junk")
    (tmp_path / "SpartQA_Human.zip").write_bytes(buf.getvalue())
    dl.download("spartqa", tmp_path / "d", base_url=tmp_path.as_uri())
    assert len(load_dataset("spartqa", data_dir=tmp_path / "d", split="train")) == 1


def test_offline_fails_fast_with_a_clear_message(tmp_path):
    with pytest.raises(DataError, match="cannot download .*--data-dir"):
        dl.download("stepgame", tmp_path, base_url="http://127.0.0.1:9")


def test_cli_summary_json(tmp_path):
    write_stepgame(write_vsr(tmp_path), k=3)
    res = runner.invoke(app, ["data", "summary", "--dataset", "vsr", "--data-dir", str(tmp_path), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["variants"]["random"]["splits"] == {"dev": 4, "test": 4, "train": 4}
    assert out["n_relations"] == 4 and any("congruent" in n for n in out["notes"])
    res = runner.invoke(app, ["data", "summary", "--dataset", "stepgame", "--data-dir", str(tmp_path), "--json"])
    assert json.loads(res.stdout)["variants"]["clean"]["per_k"] == {"3": 2}


def test_cli_bad_input_exit_code_and_message(tmp_path):
    res = runner.invoke(app, ["data", "summary", "--dataset", "vsr", "--data-dir", str(tmp_path / "missing")])
    assert res.exit_code == 2 and "does not exist" in res.output


def test_cli_real_vsr_acceptance(real_data):
    res = runner.invoke(app, ["data", "summary", "--dataset", "vsr", "--data-dir", str(real_data), "--json"])
    out = json.loads(res.stdout)
    assert {k: v["splits"] for k, v in out["variants"].items()} == {
        "random": {"train": 7680, "dev": 1097, "test": 2195}, "zeroshot": {"train": 3489, "dev": 340, "test": 1222}}
    assert (out["n_relations"], out["n_categories"]) == (66, 7)


def test_cli_export_synthetic(tmp_path):
    res = runner.invoke(app, ["data", "export", "--dataset", "synthetic", "--n-scenes", "6", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert len((tmp_path / "examples.jsonl").read_text().splitlines()) == 24
    assert len(list((tmp_path / "images").glob("*.png"))) == 6
