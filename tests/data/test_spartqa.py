import pytest
from data_fixtures import spartqa_question as q
from data_fixtures import spartqa_story, write_spartqa

from spatial_probing.data import DataError, DataWarning, LoadReport, load_dataset


def _data():
    return {"data": [spartqa_story([q("FR", [0], q_id=1), q("YN", [1], q_id=2), q("CO", [2], q_id=3),
                                    q("FB", ["A", "B"], q_id=4), q("FR", [7], q_id=5)]),
                     spartqa_story([q("FB", [], q_id=6), q("CO", [0], q_id=7)])]}


def test_questions_become_examples_with_story_groups(tmp_path):
    write_spartqa(tmp_path, {"train": _data()})
    with pytest.warns(DataWarning, match="absent"):
        examples = load_dataset("spartqa", data_dir=tmp_path)
    assert [e.question_type for e in examples] == ["FR", "YN", "CO", "FB", "FR", "FB", "CO"]
    fr = examples[0]
    assert fr.relation == "left" and fr.category == "Projective" and fr.answer == "left"
    assert examples[1].answer == "No" and examples[3].answer == "A|B" and examples[5].answer == ""
    assert fr.text.endswith("A FR question?") and fr.text.startswith("There are three blocks")
    assert len({e.group for e in examples[:5]}) == 1 and examples[5].group != examples[0].group


def test_authors_filter_is_explicit_and_reported(tmp_path):
    write_spartqa(tmp_path, {"train": _data(), "dev": _data(), "test": _data()})
    report = LoadReport()
    with pytest.warns(DataWarning, match="authors' filter removed"):
        kept = load_dataset("spartqa", data_dir=tmp_path, split="train", authors_filter=True, report=report)
    assert [e.source["q_id"] for e in kept] == [1, 2, 7]
    assert any("more than one answer" in n and "candidate 7" in n and "both/none" in n for n in report.notes)


@pytest.mark.parametrize("question, expected", [
    (q("XX", [0]), "unknown q_type 'XX'"),
    (q("FR", [11]), "not an index"),
    ({"q_type": "FR", "question": "?"}, "field 'answer'"),
])
def test_bad_questions(tmp_path, question, expected):
    write_spartqa(tmp_path, {"train": {"data": [spartqa_story([question])]}})
    with pytest.raises(DataError) as exc:
        load_dataset("spartqa", data_dir=tmp_path, split="train")
    assert "human_train.json" in str(exc.value) and expected in str(exc.value)


def test_missing_top_level(tmp_path):
    write_spartqa(tmp_path, {"train": {"stories": []}})
    with pytest.raises(DataError, match="top-level"):
        load_dataset("spartqa", data_dir=tmp_path, split="train")
