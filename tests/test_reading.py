"""Reading comprehension: SQuAD EM/F1 truth table, unanswerable handling, extraction, sources and bad rows."""

from __future__ import annotations

import json
import time

import pytest

from lco_exp.config import DataSourceConfig, SourceKind, TaskConfig
from lco_exp.tasks import DataError, Example, make_task
from lco_exp.tasks.generators import passages
from lco_exp.tasks.reading import normalize, squad_scores, token_f1

TASK = make_task(TaskConfig(name="reading"))


def scores(refs: tuple[str, ...], output: str) -> dict[str, float]:
    ex = Example(id="r", prompt="p", answer=refs[0] if refs else None, references=refs)
    return TASK.score(TASK.train_metric, [ex], [output])[0]


@pytest.mark.parametrize(
    "refs, output, em, f1",
    [
        (("Oslo",), "Oslo", 1.0, 1.0),
        (("Oslo",), "oslo.", 1.0, 1.0),  # case and punctuation are normalised away
        (("a baker", "baker"), "The baker", 1.0, 1.0),  # articles dropped; max over references
        (("Oslo",), "Answer: Oslo\nbecause the passage says so", 1.0, 1.0),  # first line, prefix dropped
        (("Oslo",), "\n\n  Oslo  ", 1.0, 1.0),  # leading blank lines skipped
        (("New York City",), "New York", 0.0, 0.8),  # P = 1, R = 2/3
        (("12 years",), "12", 0.0, 2 / 3),
        (("Oslo",), "Lima", 0.0, 0.0),
        (("Oslo",), "", 0.0, 0.0),  # empty output on an answerable question
        (("Oslo",), "unanswerable", 0.0, 0.0),  # abstaining on an answerable question
        ((), "unanswerable", 1.0, 1.0),  # SQuAD v2: the no-answer phrase is correct
        ((), "", 1.0, 1.0),  # and so is an empty output
        ((), "Oslo", 0.0, 0.0),
        (("Oslo",), "\x00\xff\ufffd", 0.0, 0.0),  # binary junk
        (("Oslo",), "[[[[{{{{((((", 0.0, 0.0),  # deeply nested brackets are just punctuation
    ],
)
def test_squad_truth_table(refs, output, em, f1):
    s = scores(refs, output)
    assert s["exact_match"] == em
    assert s["f1"] == pytest.approx(f1)


def test_normalisation_and_f1_by_hand():
    assert normalize("The  Quick, brown fox!") == "quick brown fox"
    # pred "x b b", gold "b c": common = 1 -> P = 1/3, R = 1/2, F1 = 2PR/(P+R) = 0.4
    assert token_f1("x b b", "b c") == pytest.approx(0.4)
    assert token_f1("a b b", "b c") == pytest.approx(0.5)  # the article is dropped first: "b b" vs "b c"
    assert squad_scores(None, ("x",), "unanswerable") == {"exact_match": 0.0, "f1": 0.0}


def test_huge_output_is_bounded_and_adversarial_text_is_inert(tmp_path):
    marker = tmp_path / "pwned"
    start = time.perf_counter()
    assert scores(("Oslo",), "Oslo " * 2_000_000)["exact_match"] == 0.0  # one 10 MB line, cut before scoring
    assert scores(("Oslo",), "\n" * 1_000_000 + "Oslo")["exact_match"] == 1.0
    scores(("x",), f"__import__('pathlib').Path('{marker}').touch()")
    assert time.perf_counter() - start < 10 and not marker.exists()


def test_majority_vote_key_treats_abstentions_alike():
    assert TASK.vote_key("Unanswerable.") == TASK.vote_key("") == ""
    assert TASK.vote_key("The Oslo") == TASK.vote_key("oslo") == "oslo"


def test_passages_generator_is_deterministic_and_answers_are_spans():
    rows = passages(200, seed=3, unanswerable=0.25)
    assert rows == passages(200, seed=3, unanswerable=0.25)
    assert rows != passages(200, seed=4, unanswerable=0.25)
    unanswerable = [r for r in rows if not r["answers"]]
    assert 20 < len(unanswerable) < 80
    for r in rows:
        assert all(a.removeprefix("a ") in r["context"] for a in r["answers"])  # every answer is in the passage


def test_offline_sources_load_and_held_out_drops_training_prompts():
    cfg = TaskConfig(
        name="reading",
        prompt_template="{context}\nQ: {question}",
        train=DataSourceConfig(
            kind=SourceKind.generator,
            name="passages",
            size=100,
            options={"unanswerable": 0.3},
            context_field="context",
            answer_field="answers",
        ),
        benchmarks={
            "same_seed": DataSourceConfig(
                kind=SourceKind.generator,
                name="passages",
                size=150,
                options={"unanswerable": 0.3},
                context_field="context",
                answer_field="answers",
            ),
            "family": DataSourceConfig(
                kind=SourceKind.reasoning_gym,
                name="family_relationships",
                size=20,
                seed=5,
                prompt_template="{question}",
            ),
        },
    )
    task = make_task(cfg)
    train = task.load_train()
    held = task.load_benchmarks(train)
    assert 0 < len(held["same_seed"].examples) <= 50  # the first 100 rows are the training rows
    assert not {e.prompt for e in held["same_seed"].examples} & {e.prompt for e in train}
    fam = held["family"].examples[0]
    assert fam.references and task.score(held["family"].metric, [fam], [fam.answer])[0]["exact_match"] == 1.0
    first = passages(100, seed=0, unanswerable=0.3)[0]
    assert train[0].prompt == f"{first['context']}\nQ: {first['question']}"  # the source's template, filled in
    unanswerable = next(e for e in task.load(cfg.train) if not e.references)
    assert task.completion(unanswerable) == "unanswerable"


def test_bad_rows_name_the_file_row_and_field(tmp_path):
    path = tmp_path / "qa.jsonl"
    path.write_text(
        json.dumps({"question": "q", "context": "c", "answers": {"text": ["x"]}})
        + "\n"
        + json.dumps({"question": "q2", "answers": {"text": ["y"]}})
    )
    src = DataSourceConfig(kind=SourceKind.local, name=str(path), context_field="context", answer_field="answers.text")
    with pytest.raises(DataError, match=r"qa.jsonl row 1: missing field 'context'"):
        TASK.load(src)
    path.write_text(json.dumps({"question": "q", "context": "c"}))
    with pytest.raises(DataError, match=r"qa.jsonl row 0: missing field 'answers.text'"):
        TASK.load(src)


def test_dotted_fields_and_nested_passages(tmp_path):
    path = tmp_path / "qa.jsonl"
    row = {"question": "who?", "passages": [["Title", "Ann met Bo."], ["T2", "Bo left."]], "answers": {"text": ["Bo"]}}
    path.write_text(json.dumps(row))
    src = DataSourceConfig(kind=SourceKind.local, name=str(path), context_field="passages", answer_field="answers.text")
    (ex,) = make_task(TaskConfig(name="reading", prompt_template="{context}|{question}")).load(src)
    assert ex.prompt == "Title\nAnn met Bo.\nT2\nBo left.|who?" and ex.references == ("Bo",)
