"""SugarCrepe, ARO VG-Relation and What'sUp loaders: counts, formats, provenance and bad input, on fixtures in the
upstream formats (tests/choice_fixtures.py) and on the real SugarCrepe files when present."""

import json

import pytest
from choice_fixtures import ARO, SUGARCREPE, WHATSUP, write_aro, write_sugarcrepe, write_whatsup

from spatial_probing.data import DataError, LoadReport, load_dataset
from spatial_probing.data.whatsup import preposition


def test_sugarcrepe_pairs_have_one_pair_id_and_cluster_by_image(tmp_path):
    examples = load_dataset("sugarcrepe", data_dir=write_sugarcrepe(tmp_path))
    n_pairs = sum(len(v) for v in SUGARCREPE.values())
    assert len(examples) == 2 * n_pairs
    by_pair = {}
    for e in examples:
        by_pair.setdefault(e.pair_id, []).append(e)
    assert len(by_pair) == n_pairs
    assert all(sorted((e.variant, e.truth) for e in v) == [("negative", False), ("true", True)] for v in by_pair.values())
    swap = [e for e in examples if e.category == "swap_obj"]
    assert len({e.group for e in swap}) == 2  # two of the three swap_obj pairs share image 1
    first = next(e for e in examples if e.id == "sugarcrepe/swap_obj/0/negative")
    assert first.text == "A cat chases a dog." and first.image == "000000000001.jpg"
    assert first.origin.endswith("sugarcrepe/swap_obj.json#0") and first.source["caption"] == "A dog chases a cat."


def test_sugarcrepe_variant_picks_change_types_and_reports_absent_ones(tmp_path):
    root = write_sugarcrepe(tmp_path)
    assert {e.category for e in load_dataset("sugarcrepe", data_dir=root, variant="replace_rel")} == {"replace_rel"}
    report = LoadReport()
    with pytest.warns(UserWarning, match="absent"):
        load_dataset("sugarcrepe", data_dir=root, report=report)
    assert any("add_obj" in n for n in report.notes)
    with pytest.raises(DataError, match="unknown SugarCrepe change"):
        load_dataset("sugarcrepe", data_dir=root, variant="swap_everything")


def test_sugarcrepe_missing_field_names_file_record_and_field(tmp_path):
    bad = {"swap_obj": {"0": {"filename": "1.jpg", "caption": "A dog chases a cat."}}}
    root = write_sugarcrepe(tmp_path, bad)
    with pytest.raises(DataError, match=r"swap_obj\.json.*field 'negative_caption'.*record '0'"):
        load_dataset("sugarcrepe", data_dir=root)
    examples = load_dataset("sugarcrepe", data_dir=write_sugarcrepe(tmp_path / "b", {
        "swap_obj": {**bad["swap_obj"], "1": SUGARCREPE["swap_obj"]["0"]}}), skip_invalid=True)
    assert len(examples) == 2


def test_real_sugarcrepe_counts(real_data):
    if not (real_data / "sugarcrepe").is_dir():
        pytest.skip(f"no sugarcrepe/ under {real_data}")
    examples = load_dataset("sugarcrepe", data_dir=real_data, variant=["replace_rel", "swap_obj", "swap_att"])
    pairs = {}
    for e in examples:
        pairs.setdefault(e.category, set()).add(e.pair_id)
    assert {k: len(v) for k, v in pairs.items()} == {"replace_rel": 1406, "swap_obj": 245, "swap_att": 666}
    raw = json.loads((real_data / "sugarcrepe" / "swap_obj.json").read_text())
    assert len({e.group for e in examples if e.category == "swap_obj"}) == len({r["filename"] for r in raw.values()})


def test_aro_records(tmp_path):
    examples = load_dataset("aro", data_dir=write_aro(tmp_path))
    assert len(examples) == 2 * len(ARO)
    true = [e for e in examples if e.truth]
    assert [e.relation for e in true] == ["is holding", "is on", "is on"]
    assert true[0].subject == "man" and true[0].object == "racket" and true[0].image == "images/2315375.jpg"
    assert len({e.group for e in examples}) == 2 and true[2].origin.endswith("visual_genome_relation.json#2")


@pytest.mark.parametrize("field", ["true_caption", "relation_name", "bbox_w", "image_path"])
def test_aro_missing_field_is_named(tmp_path, field):
    records = [dict(r) for r in ARO]
    del records[1][field]
    with pytest.raises(DataError, match=rf"visual_genome_relation\.json.*field '{field}'.*record '1'"):
        load_dataset("aro", data_dir=write_aro(tmp_path, records))


def test_aro_not_a_list(tmp_path):
    with pytest.raises(DataError, match="expected a non-empty JSON list"):
        load_dataset("aro", data_dir=write_aro(tmp_path, {"0": ARO[0]}))  # type: ignore[arg-type]


def test_whatsup_subsets_counts_and_prepositions(tmp_path):
    root = write_whatsup(tmp_path)
    report = LoadReport()
    with pytest.warns(UserWarning, match="absent"):
        examples = load_dataset("whatsup", data_dir=root, report=report)
    per = {}
    for e in examples:
        per.setdefault(e.category, set()).add(e.pair_id)
    assert {k: len(v) for k, v in per.items()} == {"controlled_a": 4, "coco_one": 2, "gqa_two": 1}
    a = [e for e in examples if e.category == "controlled_a"]
    assert len(a) == 16 and sum(e.truth for e in a) == 4
    assert [e.relation for e in a if e.pair_id == "whatsup/controlled_a/0"] == ["on", "left of", "right of", "under"]
    assert a[0].subject == "beer bottle" and a[0].object == "armchair"
    assert a[0].image == "controlled_images/beer-bottle_on_armchair.jpeg"
    coco = [e for e in examples if e.category == "coco_one"]
    assert coco[0].image == "val2017/000000397133.jpg" and coco[0].relation == "left"
    assert [e.relation for e in examples if e.category == "gqa_two"] == ["left of", "right of"]
    assert not any("differ in more" in n for n in report.notes)  # the fixtures are minimal pairs


def test_whatsup_bad_records(tmp_path):
    root = write_whatsup(tmp_path, {"controlled_images_dataset.json": [{"image_path": "data/controlled_images/x_on_y.jpeg"}]})
    with pytest.raises(DataError, match=r"controlled_images_dataset\.json.*field 'caption_options'.*record '0'"):
        load_dataset("whatsup", data_dir=root, variant="controlled_a")
    root = write_whatsup(tmp_path / "b", {"coco_qa_two_obj.json": [[1, "A cat above a dog"]]})
    with pytest.raises(DataError, match=r"coco_qa_two_obj\.json.*expected \[image_id, true_caption, false_caption\]"):
        load_dataset("whatsup", data_dir=root, variant="coco_two")
    with pytest.raises(DataError, match="unknown What'sUp subset"):
        load_dataset("whatsup", data_dir=root, variant="coco_three")


def test_preposition_prefers_the_longest_phrase():
    assert preposition("A mug to the left of a plate") == "left of"
    assert preposition("A cat in front of a box") == "in front of"
    assert preposition("A dog on the left") == "left"  # one-object captions: the relation word comes last
    assert preposition("A beer bottle on a armchair") == "on"
    assert preposition("A dog") is None


def test_download_sugarcrepe_from_a_mirror_verifies_given_checksums(tmp_path):
    from spatial_probing.data import download as dl
    from spatial_probing.io import sha256_file

    up = tmp_path / "up"
    write_sugarcrepe(up, {c.removesuffix(".json"): SUGARCREPE["swap_obj"] for c in dl.SUGARCREPE_SHA256})
    (up / "sugarcrepe").rename(up / "data")
    good = sha256_file(up / "data" / "swap_obj.json")
    written = dl.download("sugarcrepe", tmp_path / "d", base_url=up.as_uri(), checksums={"swap_obj.json": good})
    assert len(written) == 7 and len(load_dataset("sugarcrepe", data_dir=tmp_path / "d")) == 7 * 6
    assert dl.verify_checksums(tmp_path / "d" / "sugarcrepe", {"swap_obj.json": good})
    with pytest.raises(DataError, match=r"swap_obj\.json: checksum mismatch"):
        dl.verify_checksums(tmp_path / "d" / "sugarcrepe", {"swap_obj.json": "0" * 64})
    with pytest.raises(DataError, match=r"add_more\.json: file not found"):
        dl.verify_checksums(tmp_path / "d" / "sugarcrepe", {"add_more.json": good})


def test_cli_download_lists_where_archives_live_and_checks_placed_files(tmp_path):
    from typer.testing import CliRunner

    from spatial_probing.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["data", "download", "whatsup", "--to", str(tmp_path), "--list"])
    assert res.exit_code == 0 and "drive.google.com" in res.stdout and f"{tmp_path}/whatsup/vg_images/" in res.stdout
    res = runner.invoke(app, ["data", "download", "sugarcrepe", "--to", str(tmp_path), "--list"])
    assert "0047054b" in res.stdout and "val2017.zip" in res.stdout
    write_aro(tmp_path)
    res = runner.invoke(app, ["data", "download", "aro", "--to", str(tmp_path), "--sha256",
                              "visual_genome_relation.json=" + "a" * 64])
    assert res.exit_code == 2 and "checksum mismatch" in res.output
    res = runner.invoke(app, ["data", "download", "aro", "--to", str(tmp_path), "--sha256", "x=12"])
    assert res.exit_code == 2 and "64-digit" in res.output
