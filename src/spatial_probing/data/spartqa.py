"""SpartQA-Human (Mirzaee et al. 2021): human-written spatial QA over block scenes.

Files ``human_{train,dev,test}.json`` from the ``SpartQA_Human.zip`` archive:
``{"data": [{"story": [...], "questions": [{"q_id", "q_type", "question",
"candidate_answers", "answer"}]}]}``. ``answer`` holds indices into ``candidate_answers``
(FR, YN, CO) or block names (FB). Each question becomes one :class:`Example`; all
questions of a story share its ``group`` so no story straddles probe train and test.

``authors_filter=True`` applies the filtering of the authors' baselines (items with more
than one answer, FB with no answer, FR answers containing candidate 7, CO answers [2]/[3])
and reports how many items each rule removed.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from spatial_probing.data._read import LoadReport, field_of, load_json, require_file
from spatial_probing.data.errors import DataError
from spatial_probing.data.paths import resolve_dataset_dir
from spatial_probing.data.schema import SPARTQA_QTYPES, Example

SPLITS = ("train", "dev", "test")
#: FR answer relations mapped to the VSR-style meta-categories used across the toolkit.
FR_CATEGORIES = {"left": "Projective", "right": "Projective", "above": "Projective", "below": "Projective",
                 "behind": "Projective", "in front of": "Projective", "near to": "Proximity",
                 "far from": "Proximity", "touching": "Topological", "inside": "Topological",
                 "contains": "Topological", "covers": "Topological", "covered by": "Topological"}


def _filter_reason(qtype: str, answer: list[Any]) -> str | None:
    """The authors' baseline filter: why an item would be dropped, or None to keep it."""
    if len(answer) > 1:
        return "more than one answer"
    if qtype == "FB" and not answer:
        return "FB with no answer"
    if qtype == "FR" and 7 in answer:
        return "FR answer contains candidate 7"
    if qtype == "CO" and answer in ([2], [3]):
        return "CO answer is both/none"
    return None


def _answer_text(qtype: str, answer: list[Any], candidates: list[Any], path: Path, where: str) -> list[str]:
    if qtype == "FB":
        return [str(a) for a in answer]
    out = []
    for a in answer:
        if not isinstance(a, int) or not 0 <= a < len(candidates):
            raise DataError(f"{where}: answer {a!r} is not an index into the {len(candidates)} candidate_answers",
                            path=path, key="answer")
        out.append(str(candidates[a]).strip())
    return out


def load_spartqa(data_dir: str | Path | None = None, *, split: str | None = None, authors_filter: bool = False,
                 skip_invalid: bool = False, report: LoadReport | None = None) -> list[Example]:
    """Load SpartQA-Human questions, one Example per question."""
    splits = SPLITS if split is None else (split,)
    if any(s not in SPLITS for s in splits):
        raise DataError(f"unknown SpartQA split {split!r}; expected one of {SPLITS}")
    report = report if report is not None else LoadReport()
    root = resolve_dataset_dir(data_dir, "spartqa", "human_train.json")
    out: list[Example] = []
    dropped: Counter[str] = Counter()
    for s in splits:
        path = root / f"human_{s}.json"
        if not path.is_file() and split is None and s != "train":
            report.note(f"SpartQA: {path.name} absent, split {s!r} not loaded")
            continue
        data = load_json(require_file(path, '{"data": [{"story": [...], "questions": [...]}]}'), report)
        stories = data.get("data") if isinstance(data, dict) else None
        if not isinstance(stories, list):
            raise DataError('expected a top-level object {"data": [...]}', path=path, key="data")
        for si, story_rec in enumerate(stories):
            try:
                if not isinstance(story_rec, dict):
                    raise DataError(f"data[{si}]: expected an object with story and questions", path=path)
                story = field_of(story_rec, "story", (list, str), path=path, record=f"data[{si}]")
                story_text = " ".join(story) if isinstance(story, list) else story
                questions = field_of(story_rec, "questions", list, path=path, record=f"data[{si}]")
            except DataError as err:
                if not skip_invalid:
                    raise
                report.skip(path, err)
                continue
            for qi, q in enumerate(questions):
                where = f"data[{si}].questions[{qi}]"
                try:
                    if not isinstance(q, dict):
                        raise DataError(f"{where}: expected a question object", path=path)
                    qtype = field_of(q, "q_type", str, path=path, record=where)
                    if qtype not in SPARTQA_QTYPES:
                        raise DataError(f"{where}: unknown q_type {qtype!r}; expected one of {SPARTQA_QTYPES}",
                                        path=path, key="q_type")
                    question = field_of(q, "question", str, path=path, record=where)
                    answer = field_of(q, "answer", list, path=path, record=where)
                    candidates = q.get("candidate_answers") or []
                    answers = _answer_text(qtype, answer, candidates, path, where)
                except DataError as err:
                    if not skip_invalid:
                        raise
                    report.skip(path, err)
                    continue
                if authors_filter and (reason := _filter_reason(qtype, answer)):
                    dropped[f"{qtype}: {reason}"] += 1
                    continue
                relation = answers[0].lower() if qtype == "FR" and len(answers) == 1 else None
                out.append(Example(
                    id=f"spartqa/{s}/{si}/{q.get('q_id', qi)}", dataset="spartqa", split=s,
                    text=f"{story_text.strip()} {question.strip()}", relation=relation,
                    category=FR_CATEGORIES.get(relation) if relation else None, question_type=qtype,
                    answer="|".join(answers), group=f"spartqa/{s}/story{si}", origin=f"{path}#{where}",
                    source={"story_index": si, **q},
                ))
    if dropped:
        report.note("SpartQA authors' filter removed " + ", ".join(f"{n} ({r})" for r, n in sorted(dropped.items())))
    report.warn_skipped()
    return out
