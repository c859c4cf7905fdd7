"""Math verifier truth table (including boxed multiple choice), data loading and bad-row errors."""

from __future__ import annotations

import json
import time

import pytest

from lco_exp.config import AnswerFormat, DataSourceConfig, MathAnswer, Metric, SourceKind, TaskConfig
from lco_exp.tasks import DataError, Example, make_task
from lco_exp.tasks.math import _MAX_ANSWER_CHARS, _as_number, answers_match, extract_answer, gold_answer

TASK = make_task(TaskConfig(name="math"))


def reward(ex: Example, text: str) -> float:
    """The training reward of one output, through the path training uses (``Task.rewards``)."""
    return TASK.rewards(Metric.math, [ex], [text])[0]


def ex(answer: str) -> Example:
    return Example(id="t", prompt="q", answer=answer)


@pytest.mark.parametrize(
    "gold, output, expected",
    [
        ("19", "19", 1.0),
        ("19", "12 + 7 = 19", 1.0),  # last number
        ("19", "The answer is \\boxed{19}.", 1.0),
        ("19", "so 19 apples\n#### 19", 1.0),
        ("19", "19.0", 1.0),
        ("1000", "\\boxed{1,000}", 1.0),
        ("0.5", "\\boxed{\\frac{1}{2}}", 1.0),  # math-verify equivalence
        ("\\frac{1}{2}", "the result is \\boxed{0.5}", 1.0),
        ("\\sqrt{2}", "\\boxed{2^{1/2}}", 1.0),
        ("-3", "\\boxed{-3}", 1.0),
        ("19", "\\boxed{19} but actually 20", 1.0),  # boxed wins over a later number
        ("19", "18", 0.0),
        ("19", "", 0.0),  # empty
        ("19", "no number at all", 0.0),  # malformed
        ("19", "\\boxed{19", 1.0),  # unclosed box: falls back to the last number, 19
        ("19", "\\boxed{18", 0.0),
        ("19", "1 9", 0.0),
        ("3", "\\boxed{x}", 0.0),
        ("19", "\\boxed{__import__('os').system('touch /tmp/lco_pwned')}", 0.0),  # adversarial: never executed
    ],
)
def test_math_reward_truth_table(gold, output, expected):
    assert reward(ex(gold), output) == expected


def test_adversarial_output_is_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    reward(ex("1"), f"\\boxed{{__import__('pathlib').Path('{marker}').touch()}}")
    reward(ex("1"), f"#### exec(\"open('{marker}','w')\")")
    assert not marker.exists()


def test_huge_and_binary_outputs_are_bounded():
    start = time.perf_counter()
    assert reward(ex("7"), "x" * 5_000_000 + " 7") == 1.0  # only the tail is read
    assert reward(ex("7"), "{" * 100_000 + "\\boxed{" + "{" * 100_000) == 0.0
    assert reward(ex("7"), "\x00\xff\ufffd" * 100_000) == 0.0
    assert reward(ex("7"), "9" * 100_000) == 0.0
    assert time.perf_counter() - start < 10


def test_slow_symbolic_comparison_times_out():
    # short enough to pass the length guard and reach math-verify, whose comparison of this tower of powers
    # runs until its timeout; the answer must be "not equivalent", within a bound set by the timeout
    heavy = "9^{9^{9^{9}}}"
    assert len(heavy) < _MAX_ANSWER_CHARS and _as_number(heavy) is None
    start = time.perf_counter()
    assert answers_match("1", heavy, timeout_s=1) is False
    assert time.perf_counter() - start < 8


FIRST = make_task(TaskConfig(name="math", math_answer=MathAnswer.first_number))


@pytest.mark.parametrize(
    "gold, output, first, last",
    [
        ("103", "103", 1.0, 1.0),
        ("103", " 103 103 103", 1.0, 1.0),
        ("103", "10 3 103", 0.0, 1.0),  # the peer's rule reads the first number only
        ("103", "103 then 104", 1.0, 0.0),
        ("103", "= 103.", 1.0, 1.0),
        ("103", "\\boxed{103} 7", 1.0, 1.0),  # last: boxed wins; first: 103 comes first
        ("103", "no digits", 0.0, 0.0),
        ("103", "", 0.0, 0.0),
    ],
)
def test_first_number_rule_against_the_default_rule(gold, output, first, last):
    assert FIRST.rewards(Metric.math, [ex(gold)], [output])[0] == first
    assert reward(ex(gold), output) == last


def test_extract_and_gold_formats():
    assert extract_answer("a \\boxed{\\frac{1}{\\sqrt{2}}} b") == "\\frac{1}{\\sqrt{2}}"
    assert extract_answer("#### 1,234") == "1,234"
    assert extract_answer("nothing") is None
    assert gold_answer("step\n#### 1,234", AnswerFormat.gsm8k) == "1234"
    assert gold_answer("so \\boxed{42}", AnswerFormat.boxed) == "42"
    assert gold_answer("no hashes", AnswerFormat.gsm8k) is None


def test_reasoning_gym_source_and_held_out_overlap_removed():
    cfg = TaskConfig(
        name="math",
        train=DataSourceConfig(
            kind=SourceKind.reasoning_gym,
            name="basic_arithmetic",
            size=300,
            seed=0,
            options={
                "min_terms": 2,
                "max_terms": 2,
                "min_digits": 1,
                "max_digits": 2,
                "operators": ["+"],
                "allow_parentheses": False,
                "allow_negation": False,
            },
        ),
    )
    cfg.benchmarks = {"held": DataSourceConfig(**{**cfg.train.__dict__, "seed": 10_000, "size": 200})}
    task = make_task(cfg)
    train = task.load_train()
    held = task.load_benchmarks(train)["held"].examples
    assert len(train) == 300 and 0 < len(held) < 200  # small sums collide: some held-out rows are dropped
    assert not {e.prompt for e in held} & {e.prompt for e in train}
    assert len({e.prompt for e in held}) == len(held)  # each held-out question once
    e = train[0]
    assert task.rewards(Metric.math, [e], [e.answer]) == [1.0] and task.completion(e) == e.answer
    cfg.benchmarks = {"same": cfg.train}
    with pytest.raises(DataError, match="task.benchmarks.same: no rows left"):
        make_task(cfg).load_benchmarks(train)


def test_local_jsonl_source_and_bad_rows(tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_text("\n".join(json.dumps({"q": f"what is {i}+1?", "a": f"x\n#### {i + 1}"}) for i in range(3)))
    src = DataSourceConfig(
        kind=SourceKind.local, name=str(good), question_field="q", answer_field="a", answer_format=AnswerFormat.gsm8k
    )
    rows = TASK.load(src)
    assert [r.answer for r in rows] == ["1", "2", "3"]

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"q": "ok", "a": "#### 1"}) + "\n" + json.dumps({"q": "no answer"}) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl row 1: missing field 'a'"):
        TASK.load(DataSourceConfig(kind=SourceKind.local, name=str(bad), question_field="q", answer_field="a"))
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"q": "x", "a": "1"}\n{not json\n')
    with pytest.raises(DataError, match=r"broken.jsonl:2: not valid JSON"):
        TASK.load(DataSourceConfig(kind=SourceKind.local, name=str(broken), question_field="q", answer_field="a"))


@pytest.mark.parametrize(
    "output, expected",
    [
        ("\\boxed{B}", 1.0),
        ("so the answer is \\boxed{(B)}", 1.0),
        ("\\boxed{B. the second option}", 1.0),
        ("\\boxed{\\text{b}}", 1.0),
        ("\\boxed{C}", 0.0),
        ("B", 0.0),  # no box: the last-number fallback finds nothing
        ("\\boxed{}", 0.0),
        ("\\boxed{BAD}", 0.0),  # a word, not a standalone letter
    ],
)
def test_multiple_choice_truth_table(output, expected):
    choice = Example(id="mc", prompt="q", answer="B", meta={"choice": True})
    assert reward(choice, output) == expected


def test_multiple_choice_rows_render_options_and_letter_answers(tmp_path):
    path = tmp_path / "mc.jsonl"
    rows = [
        {"question": "2+2?", "choices": ["3", "4", "5", "6"], "answer": 1},
        {"question": "sky?", "choices": ["blue", "red"], "answer": "A"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    src = DataSourceConfig(
        kind=SourceKind.local,
        name=str(path),
        choices_field="choices",
        answer_format=AnswerFormat.choice,
        prompt_template="{question}\n{choices}",
    )
    first, second = TASK.load(src)
    assert first.prompt == "2+2?\nA. 3\nB. 4\nC. 5\nD. 6" and first.answer == "B"
    assert second.answer == "A"
    path.write_text(json.dumps({"question": "x", "choices": ["a", "b"], "answer": 7}))
    with pytest.raises(DataError, match=r"mc.jsonl row 0: answer 7 is neither an option index nor a letter"):
        TASK.load(src)
