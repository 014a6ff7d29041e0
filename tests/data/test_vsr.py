import json
import warnings

import pytest
from data_fixtures import vsr_record, write_vsr

from spatial_probing.data import DataError, DataWarning, LoadReport, load_dataset
from spatial_probing.data.vsr import parse_arguments


def test_fixture_loads_with_documented_rules(tmp_path):
    write_vsr(tmp_path)
    report = LoadReport()
    with pytest.warns(DataWarning) as record:
        examples = load_dataset("vsr", data_dir=tmp_path, variant="random", split="train", report=report)
    assert [e.relation for e in examples] == ["left of", "near", "inside", "congruent"]
    by_rel = {e.relation: e for e in examples}
    assert by_rel["left of"].category == "Projective" and by_rel["left of"].truth is True
    assert by_rel["congruent"].category == "Unallocated"
    assert (by_rel["left of"].subject, by_rel["left of"].object) == ("cat", "dog")
    assert by_rel["inside"].group == "image:c.jpg" == by_rel["congruent"].group
    assert examples[0].origin.endswith("train.jsonl:1")
    messages = " ".join(str(w.message) for w in record)
    assert "'among'" in messages and "first listing wins" in messages and "'congruent'" in messages


def test_parse_arguments():
    assert parse_arguments("The hot dog is at the edge of the dining table.", "at the edge of") == ("hot dog", "dining table")
    assert parse_arguments("The suitcase contains the cat.", "contains") == ("suitcase", "cat")
    assert parse_arguments("Nothing here.", "left of") == (None, None)


@pytest.mark.parametrize("line, expected", [
    ("{not json", "malformed JSON"),
    (json.dumps({"caption": "x", "relation": "near", "image": "a.jpg"}), "field 'label'"),
    (json.dumps(vsr_record("The cat is under the dog.", "under", 1)), "unknown relation 'under'"),
    (json.dumps(vsr_record("The cat is near the dog.", "near", 2)), "expected 0 or 1"),
    ("[1, 2]", "expected a JSON object"),
])
def test_bad_records_name_file_line_and_field(tmp_path, line, expected):
    good = json.dumps(vsr_record("The cat is near the dog.", "near", 1))
    write_vsr(tmp_path, {"train": [good, line]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        with pytest.raises(DataError) as exc:
            load_dataset("vsr", data_dir=tmp_path, split="train")
    assert "train.jsonl:2" in str(exc.value) and expected in str(exc.value)


def test_skip_invalid_counts_and_keeps_the_rest(tmp_path):
    good = json.dumps(vsr_record("The cat is near the dog.", "near", 1))
    write_vsr(tmp_path, {"train": [good, "{oops", good]})
    report = LoadReport()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        examples = load_dataset("vsr", data_dir=tmp_path, split="train", skip_invalid=True, report=report)
    assert len(examples) == 2
    assert sum(report.skipped.values()) == 1 and "train.jsonl:2" in report.first_errors[0]


def test_empty_file_and_wrong_directory(tmp_path):
    write_vsr(tmp_path)
    (tmp_path / "vsr" / "splits" / "random" / "dev.jsonl").write_text("")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        with pytest.raises(DataError, match=r"dev\.jsonl: file is empty"):
            load_dataset("vsr", data_dir=tmp_path, split="dev")
    with pytest.raises(DataError, match="no vsr data here"):
        load_dataset("vsr", data_dir=tmp_path / "vsr" / "splits")
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("vsr", data_dir=tmp_path / "nope")
    with pytest.raises(DataError, match="unknown dataset"):
        load_dataset("vrs", data_dir=tmp_path)


def test_real_vsr_counts(real_data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        counts = {v: {s: len(load_dataset("vsr", data_dir=real_data, variant=v, split=s))
                      for s in ("train", "dev", "test")} for v in ("random", "zeroshot")}
        examples = load_dataset("vsr", data_dir=real_data)
    assert counts == {"random": {"train": 7680, "dev": 1097, "test": 2195},
                      "zeroshot": {"train": 3489, "dev": 340, "test": 1222}}
    assert len({e.relation for e in examples}) == 66 and len({e.category for e in examples}) == 7
    assert all(e.subject and e.object for e in examples)
