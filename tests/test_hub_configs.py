"""The hub benchmark configs map rows of each data set's published shape to Examples (no network: the loader is
replaced by rows of that shape, so a wrong field name or answer format in conf/task/*.yaml fails here)."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from lco_exp.config import Metric
from lco_exp.tasks import make_task
from tests.conftest import compose_cfg

ROWS = {
    "openai/gsm8k": {"question": "Tom has 3 apples and buys 4. How many?", "answer": "3 + 4 = 7\n#### 7"},
    "HuggingFaceH4/MATH-500": {"problem": "What is $1/2 + 1/2$?", "solution": "... \\boxed{1}", "answer": "1"},
    "math-ai/amc23": {"id": 0, "question": "Compute 2^5.", "answer": "32", "url": "x"},
    "math-ai/minervamath": {"question": "Mass of X in kg?", "answer": "3.5"},
    "HuggingFaceH4/aime_2024": {"id": 60, "problem": "Find n.", "solution": "...", "answer": "204", "url": "x"},
    "cais/mmlu": {"question": "2+2?", "subject": "math", "choices": ["3", "4", "5", "6"], "answer": 1},
    "edinburgh-dawg/mmlu-redux-2.0": {
        "question": "Sky?",
        "choices": ["red", "blue", "green", "grey"],
        "answer": 1,
        "error_type": "ok",
    },  # fmt: skip
    "rajpurkar/squad": {
        "id": "1",
        "title": "T",
        "context": "Ann lives in Oslo.",
        "question": "Where does Ann live?",
        "answers": {"text": ["Oslo", "in Oslo"], "answer_start": [13, 10]},
    },  # fmt: skip
    "rajpurkar/squad_v2": {
        "id": "2",
        "title": "T",
        "context": "Ann lives in Oslo.",
        "question": "Where is Bo?",
        "answers": {"text": [], "answer_start": []},
    },  # fmt: skip
    "ucinlp/drop": {
        "section_id": "s",
        "query_id": "q",
        "passage": "Bo scored 3 goals.",
        "question": "How many?",
        "answers_spans": {"spans": ["3"], "types": ["number"]},
    },  # fmt: skip
    "google/IFEval": {
        "key": 1000,
        "prompt": "Write a poem without commas.",
        "instruction_id_list": ["punctuation:no_comma"],
        "kwargs": [{"num_words": None}],
    },  # fmt: skip
    "json": {"instruction": "Say hi.", "output": "Hi!", "generator": "ref", "dataset": "x"},
}


@pytest.fixture
def fake_hub(monkeypatch):
    import datasets

    calls = []

    def load_dataset(name, subset=None, data_files=None, split=None):
        calls.append((name, subset, data_files, split))
        return [ROWS[name]]

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


def typed(task_option: str, *extra: str):
    return OmegaConf.to_object(compose_cfg([f"task={task_option}", *extra])).task


@pytest.mark.parametrize(
    "option, bench, answer, references",
    [
        ("math_gsm8k", "gsm8k", "7", ()),
        ("math_gsm8k", "math500", "1", ()),
        ("math_gsm8k", "amc23", "32", ()),
        ("math_gsm8k", "minerva_math", "3.5", ()),
        ("math_gsm8k", "aime24", "204", ()),
        ("math_gsm8k", "mmlu", "B", ()),
        ("math_gsm8k", "mmlu_redux", "B", ()),
        ("reading_squad", "squad", "Oslo", ("Oslo", "in Oslo")),
        ("reading_squad", "squad_v2", None, ()),
        ("reading_squad", "drop", "3", ("3",)),
        ("instruct_ifeval", "ifeval", None, ()),
        ("instruct_ifeval", "alpaca_eval", None, ("Hi!",)),
    ],
)
def test_hub_benchmark_rows_become_examples(fake_hub, option, bench, answer, references):
    cfg = typed(option, "+model@task.judge=tiny") if option == "instruct_ifeval" else typed(option)
    task = make_task(cfg)
    (ex,) = task.load(cfg.benchmarks[bench])[:1]
    assert ex.answer == answer and ex.references == references
    assert ex.prompt.strip()
    if bench in ("mmlu", "mmlu_redux"):
        assert "\nA. " in ex.prompt and "\\boxed{}" in ex.prompt
        assert task.score(Metric.math, [ex], ["so \\boxed{B}"])[0]["accuracy"] == 1.0
    if option == "reading_squad":  # the passage is in the prompt
        row = ROWS[cfg.benchmarks[bench].name]
        assert (row.get("context") or row.get("passage")) in ex.prompt
    if bench == "ifeval":
        assert ex.meta["instruction_id_list"] == ["punctuation:no_comma"]
        assert task.score(Metric.ifeval, [ex], ["roses are red"])[0]["prompt_strict"] == 1.0
    if bench == "mmlu_redux":  # every subject config is loaded and concatenated
        assert len(task.load(cfg.benchmarks[bench])) == len(cfg.benchmarks[bench].subsets) == 57
