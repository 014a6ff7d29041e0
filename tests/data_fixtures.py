"""Writers of small upstream-format files for loader tests (the formats of VSR, StepGame, SpartQA)."""

from __future__ import annotations

import json
from pathlib import Path

CATEGORIES = ("Projective: left of, right of, above\nProximity: near, far from\n"
              "Topological: inside, among\nUnallocated: among, next to\n")


def vsr_record(caption: str, relation: str, label: int, image: str = "000000000001.jpg") -> dict:
    return {"image": image, "image_link": f"http://images.cocodataset.org/train2017/{image}", "caption": caption,
            "label": label, "relation": relation, "annotator_id": 1, "vote_true_validator_id": "[]",
            "vote_false_validator_id": "[]"}


def write_vsr(root: Path, lines: dict[str, list[str]] | None = None) -> Path:
    """A tiny VSR tree under ``root/vsr``; ``lines`` overrides a split file's raw lines."""
    vsr = root / "vsr"
    (vsr / "rel_meta_category_dict.txt").parent.mkdir(parents=True, exist_ok=True)
    (vsr / "rel_meta_category_dict.txt").write_text(CATEGORIES)
    default = [json.dumps(vsr_record("The cat is left of the dog.", "left of", 1, "a.jpg")),
               json.dumps(vsr_record("The dog is near the car.", "near", 0, "b.jpg")),
               json.dumps(vsr_record("The cup is inside the box.", "inside", 1, "c.jpg")),
               json.dumps(vsr_record("The box is congruent the cup.", "congruent", 0, "c.jpg"))]
    for variant in ("random", "zeroshot"):
        for split in ("train", "dev", "test"):
            path = vsr / "splits" / variant / f"{split}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("\n".join((lines or {}).get(split, default)) + "\n")
    return root


def write_stepgame(root: Path, records: dict | None = None, k: int = 2, split: str = "valid") -> Path:
    folder = root / "stepgame" / "CompleteVersion" / "clean"
    folder.mkdir(parents=True, exist_ok=True)
    records = records if records is not None else {
        "0": {"story": ["A is left of B.", "B is above C."], "question": "What is the relation of the agent A to the agent C?",
              "label": "upper-left"},
        "1": {"story": ["X overlaps Y."], "question": "What is the relation of the agent X to the agent Y?",
              "label": "overlap"},
    }
    (folder / f"qa{k}_{split}.json").write_text(json.dumps(records))
    return root


def spartqa_story(questions: list[dict]) -> dict:
    return {"story": ["There are three blocks A, B and C. A small red circle is left of a big square."],
            "questions": questions}


def spartqa_question(q_type: str, answer: list, candidates: list | None = None, q_id: int = 0) -> dict:
    cands = candidates if candidates is not None else {
        "FR": ["left", "right", "above", "below", "near to", "far from", "touching", "DK"],
        "YN": ["Yes", "No", "DK"], "CO": ["circle", "square", "both", "none"]}.get(q_type, [])
    return {"q_id": q_id, "q_type": q_type, "question": f"A {q_type} question?", "candidate_answers": cands,
            "answer": answer}


def write_spartqa(root: Path, splits: dict[str, dict]) -> Path:
    folder = root / "spartqa"
    folder.mkdir(parents=True, exist_ok=True)
    for split, obj in splits.items():
        (folder / f"human_{split}.json").write_text(json.dumps(obj))
    return root
