import json
import warnings

import pytest
from data_fixtures import write_stepgame

from spatial_probing.data import STEPGAME_DIRECTIONS, DataError, DataWarning, LoadReport, load_dataset
from spatial_probing.data.stepgame import direction_category


def test_fixture_fields_and_k_from_file_name(tmp_path):
    write_stepgame(tmp_path, k=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        examples = load_dataset("stepgame", data_dir=tmp_path)
    first = examples[0]
    assert first.k == 2 and first.relation == "upper-left" and first.category == "diagonal"
    assert first.text == "A is left of B. B is above C. What is the relation of the agent A to the agent C?"
    assert (first.subject, first.object) == ("A", "C")
    assert examples[1].category == "overlap"


def test_directions_cover_nine_labels():
    assert len(STEPGAME_DIRECTIONS) == 9 and STEPGAME_DIRECTIONS["left"] == (-1, 0)
    assert STEPGAME_DIRECTIONS["upper-right"] == (1, 1) and STEPGAME_DIRECTIONS["overlap"] == (0, 0)
    assert direction_category("below") == "cardinal"


@pytest.mark.parametrize("record, expected", [
    ({"story": ["A is left of B."], "question": "q?", "label": "north"}, "unknown label 'north'"),
    ({"story": ["A is left of B."], "label": "left"}, "field 'question'"),
    ({"story": ["A."], "question": "q?", "label": "left", "k_hop": 3}, "contradicts the file name"),
])
def test_bad_records(tmp_path, record, expected):
    write_stepgame(tmp_path, {"0": record}, k=2)
    with pytest.raises(DataError) as exc:
        load_dataset("stepgame", data_dir=tmp_path)
    assert "qa2_valid.json" in str(exc.value) and expected in str(exc.value)


def test_malformed_json_names_line(tmp_path):
    write_stepgame(tmp_path)
    (tmp_path / "stepgame/CompleteVersion/clean/qa2_valid.json").write_text('{"0": {\n "story": [}')
    with pytest.raises(DataError, match=r"qa2_valid\.json:2: malformed JSON"):
        load_dataset("stepgame", data_dir=tmp_path)


def test_train_version_jsonl_takes_k_hop(tmp_path):
    write_stepgame(tmp_path)
    tv = tmp_path / "stepgame" / "TrainVersion"
    tv.mkdir(parents=True)
    rec = {"story": ["A is left of B."], "question": "What is the relation of the agent A to the agent B?",
           "label": "left", "k_hop": "1"}
    (tv / "valid.jsonl").write_text(json.dumps(rec) + "\n" + json.dumps({**rec, "k_hop": "4"}) + "\n")
    (tv / "qa1_valid.json").write_text(json.dumps({"0": rec}))
    report = LoadReport()
    with pytest.warns(DataWarning, match="not read again"):
        examples = load_dataset("stepgame", data_dir=tmp_path, variant="train_version", report=report)
    assert sorted(e.k for e in examples) == [1, 4]


def test_real_stepgame_every_k(real_data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        valid = load_dataset("stepgame", data_dir=real_data, split="valid")
    assert sorted({e.k for e in valid}) == list(range(1, 11))
    assert {e.relation for e in valid} == set(STEPGAME_DIRECTIONS)
