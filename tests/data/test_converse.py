import re
from pathlib import Path

import pytest

from spatial_probing.data._read import LoadReport
from spatial_probing.data.converse import (
    VSR_CONVERSE, ParsedCaption, converse_kind, converse_of, parse_caption, parse_report, render_caption, vsr_triple,
)
from spatial_probing.data.synthetic import RELATIONS
from spatial_probing.data.vsr import read_categories


def test_every_vsr_relation_is_classified_and_converses_are_vsr_relations(real_data: Path) -> None:
    with pytest.warns(Warning):  # VSR's 'among' is listed twice
        relations = list(read_categories(real_data / "vsr" / "rel_meta_category_dict.txt", LoadReport()))
    assert len(relations) >= 66
    for r in relations:
        kind = converse_kind(r)
        conv = converse_of(r)
        assert (conv is None) == (kind == "none")
        if kind == "converse":
            assert conv in relations and conv != r
    for r, c in VSR_CONVERSE.items():  # a converse's converse states the original fact again
        back = converse_of(c)
        assert converse_of(back) == c or back == r


def test_issue_pairs_and_synthetic() -> None:
    for a, b in [("left of", "right of"), ("above", "below"), ("in front of", "behind"), ("on top of", "beneath"),
                 ("inside", "contains"), ("over", "under")]:
        assert converse_of(a) == b and converse_of(b) == a
    assert converse_kind("near") == "symmetric" and converse_kind("toward") == "none"
    assert all(converse_kind(r, "synthetic") in ("converse", "symmetric") for r in RELATIONS)
    assert converse_of("left", "synthetic") == "right" and converse_kind("near", "synthetic") == "symmetric"
    with pytest.raises(KeyError, match="not classified"):
        converse_kind("levitating above")


def test_parse_and_triple() -> None:
    assert parse_caption("The cat is inside the refrigerator.", "inside") == ParsedCaption("cat", "inside",
                                                                                           "refrigerator")
    assert parse_caption("The suitcase contains the teddy bear.", "contains") == ParsedCaption(
        "suitcase", "contains", "teddy bear")
    t = vsr_triple("The cat is inside the refrigerator.", "inside")
    assert t.converse == "The refrigerator contains the cat." and t.swapped == "The refrigerator is inside the cat."
    assert sorted(re.findall(r"\w+", t.original.lower())) == sorted(re.findall(r"\w+", t.swapped.lower()))
    assert render_caption("cake", "part of", "train") == "The cake is part of the train."


def test_every_real_vsr_caption_parses(real_data: Path) -> None:
    import json

    records = [(r["caption"], r["relation"]) for split in ("train", "dev", "test")
               for r in map(json.loads, (real_data / "vsr/splits/random" / f"{split}.jsonl").open())]
    report = parse_report(records)
    assert report["unparsed"] == 0 and report["triples"] + report["skipped"] == len(records)
    assert report["triples"] > len(records) / 3


def test_bad_captions_are_reasons_not_crashes() -> None:
    assert "is not 'The X is REL the Y.'" in parse_caption("A cat sits left of a dog", "left of")
    assert "same noun" in parse_caption("The cat is left of the cat.", "left of")
    assert vsr_triple("The cat is near the dog.", "near").startswith("symmetric")
    assert vsr_triple("The cat is toward the dog.", "toward").startswith("no converse")
    assert "not classified" in vsr_triple("The cat is levitating above the dog.", "levitating above")
    report = parse_report([("The cat is left of the dog.", "left of"), ("cat left dog", "left of"),
                           ("The cat is near the dog.", "near")])
    assert report["parsed"] == 2 and report["unparsed"] == 1 and report["triples"] == 1 and report["skipped"] == 2
    assert sum(report["skip_reasons"].values()) == 2


def test_transfer_families_are_converse_pairs() -> None:
    from spatial_probing.data.converse import SYNTHETIC_TRANSFER_FAMILIES, VSR_TRANSFER_FAMILIES, transfer_fact

    for families, dataset in ((VSR_TRANSFER_FAMILIES, "vsr"), (SYNTHETIC_TRANSFER_FAMILIES, "synthetic")):
        for fact, (direct, exchanged) in families.items():
            assert all(converse_of(r, dataset) in direct for r in exchanged)
            assert all(transfer_fact(r, dataset) == (fact, False) for r in direct)
            assert all(transfer_fact(r, dataset) == (fact, True) for r in exchanged)
    assert transfer_fact("near") is None
