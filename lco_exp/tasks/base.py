"""What every task shares: the Example record, loading rows from a data source, prompting, and the benchmark
bookkeeping (dedup, train-overlap removal). No torch here.

A source is a reasoning-gym generator or one of this project's generators (offline), a file inside an installed
package (offline), a hub data set by id, or a local .jsonl/.json/.parquet file; all become the same list of
``Example``. A task subclass says how a row becomes an Example (``gold``) and how an output is scored (``score``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lco_exp.config import (
    METRIC_SCORES,
    BadRows,
    DataSourceConfig,
    Metric,
    SourceKind,
    TaskConfig,
    benchmark_metric,
    package_file,
)

LETTERS = "ABCDEFGHIJ"


class DataError(ValueError):
    """A data row that cannot be used; the message names the source, the row and the field."""


@dataclass(frozen=True)
class Example:
    id: str
    prompt: str  # the user message, rendered from the source's prompt template
    answer: str | None = None  # math: the gold final answer; reading: the first reference (None: unanswerable)
    references: tuple[str, ...] = ()  # reading: every gold span (empty: unanswerable); instruct: reference output
    solution: str | None = None  # a worked solution or reference response, used as the SFT target when present
    meta: Mapping[str, Any] = field(default_factory=dict)  # instruct: instruction_id_list, kwargs


@dataclass
class Benchmark:
    name: str
    metric: Metric
    examples: list[Example]
    skipped_too_long: int = 0  # rows whose prompt plus max_new_tokens exceed the model's context


def field_value(row: Mapping[str, Any], path: str) -> Any:
    """``row[path]``, where a dotted path walks into nested mappings (``answers.text``); None when absent."""
    value: Any = row
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def flatten_text(value: Any) -> str:
    """A passage given as a string, or as nested lists of strings (titles and paragraphs), as one text."""
    if isinstance(value, str):
        return value
    if isinstance(value, Sequence):
        return "\n".join(flatten_text(v) for v in value if v is not None)
    return str(value)


def _gym_rows(src: DataSourceConfig) -> list[dict[str, Any]]:
    import reasoning_gym

    options = dict(src.options)
    for key, value in options.items():  # Hydra hands lists over as lists; gym wants tuples
        if isinstance(value, list):
            options[key] = tuple(value)
    data = reasoning_gym.create_dataset(src.name, size=src.size, seed=src.seed, **options)
    rows = []
    for item in data:
        row = {src.question_field: item["question"]}
        if src.answer_field:
            row[src.answer_field] = item["answer"]
        cot = item.get("metadata", {}).get("answer_cot")
        if cot and src.solution_field:
            row[src.solution_field] = cot
        rows.append(row)
    return rows


def _file_rows(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json" and text.lstrip().startswith("["):
        rows = json.loads(text)
    else:
        rows = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise DataError(f"{path}:{lineno}: not valid JSON ({err.msg})") from None
    return rows  # rows that are not objects are reported (or skipped) per row by Task.load


def _hub_rows(src: DataSourceConfig) -> list[dict[str, Any]]:
    import datasets

    rows: list[dict[str, Any]] = []
    for subset in src.subsets or [src.subset]:
        rows += list(datasets.load_dataset(src.name, subset, data_files=src.data_files, split=src.split))
    return rows


def load_rows(src: DataSourceConfig) -> list[dict[str, Any]]:
    if src.kind == SourceKind.reasoning_gym:
        rows = _gym_rows(src)
    elif src.kind == SourceKind.generator:
        from lco_exp.tasks.generators import GENERATORS

        rows = GENERATORS[src.name](size=src.size, seed=src.seed, **src.options)
    elif src.kind == SourceKind.package:
        rows = _file_rows(package_file("source", src.name))
    elif src.kind == SourceKind.local:
        rows = _file_rows(Path(src.name).expanduser())
    else:
        rows = _hub_rows(src)
    return rows[: src.limit] if src.limit is not None else rows


class Task:
    """Loading, prompting and benchmark bookkeeping; subclasses add ``gold``, ``score`` and ``extract``."""

    def __init__(self, cfg: TaskConfig):
        self.cfg = cfg
        self.skipped_rows: dict[str, int] = {}  # source name -> rows left out under bad_rows=skip
        self.reward_name = cfg.reward or METRIC_SCORES[benchmark_metric(cfg, cfg.train)][0]

    # ------------------------------------------------------------------------------------------- data

    def gold(self, row: Mapping[str, Any], src: DataSourceConfig, where: str) -> dict[str, Any]:
        """The Example fields beyond id and prompt (answer, references, solution, meta) from one row."""
        raise NotImplementedError

    def render(self, row: Mapping[str, Any], src: DataSourceConfig, where: str) -> str:
        question = field_value(row, src.question_field)
        if question is None or (isinstance(question, str) and not question.strip()):
            raise DataError(f"{where}: missing or empty field {src.question_field!r} (fields: {sorted(row)})")
        if not isinstance(question, str | int | float) or isinstance(question, bool):
            raise DataError(f"{where}: field {src.question_field!r} must be text, got {type(question).__name__}")
        values = {"question": str(question), "context": "", "choices": ""}
        if src.context_field:
            context = field_value(row, src.context_field)
            if context is None:
                raise DataError(f"{where}: missing field {src.context_field!r} (the passage)")
            values["context"] = flatten_text(context)
        if src.choices_field:
            choices = field_value(row, src.choices_field)
            if not isinstance(choices, Sequence) or isinstance(choices, str) or not 2 <= len(choices) <= len(LETTERS):
                raise DataError(f"{where}: field {src.choices_field!r} must be a list of 2-{len(LETTERS)} options")
            values["choices"] = "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(choices))
        template = src.prompt_template or self.cfg.prompt_template
        try:
            return template.format(**values)
        except (KeyError, IndexError) as err:
            raise DataError(f"{where}: prompt template {template!r} uses an unknown field {err}") from None

    def load(self, src: DataSourceConfig) -> list[Example]:
        """Every usable row as an Example. An unusable row raises, naming source, row and field; with
        ``bad_rows: skip`` it is left out and counted in ``self.skipped_rows[src.name]``."""
        examples = []
        skipped = 0
        for i, row in enumerate(load_rows(src)):
            where = f"{src.name} row {i}"
            try:
                if not isinstance(row, Mapping):
                    raise DataError(f"{where}: expected a JSON object with fields, got {type(row).__name__}")
                prompt = self.render(row, src, where)
                examples.append(Example(id=f"{src.name}:{i}", prompt=prompt, **self.gold(row, src, where)))
            except DataError as err:
                if src.bad_rows == BadRows.error:
                    raise
                skipped += 1
                if skipped <= 3:
                    print(f"[lco_exp] skipping a bad row: {err}")
        if skipped:
            self.skipped_rows[src.name] = skipped
            print(f"[lco_exp] {src.name}: {skipped} bad rows skipped (bad_rows=skip), {len(examples)} kept")
        if not examples:
            raise DataError(f"{src.name}: no usable rows")
        return examples

    def load_train(self) -> list[Example]:
        return self.load(self.cfg.train)

    def load_benchmarks(
        self, train: list[Example], limit: int | None = None, only: list[str] | None = None
    ) -> dict[str, Benchmark]:
        """Held-out sets (all, or those named in ``only``), each prompt once; with ``exclude_train_overlap``
        prompts seen in ``train`` are dropped."""
        seen = {ex.prompt for ex in train} if self.cfg.exclude_train_overlap else set()
        out = {}
        for name, src in self.cfg.benchmarks.items():
            if only is not None and name not in only:
                continue
            unique = {ex.prompt: ex for ex in reversed(self.load(src))}  # first occurrence of each prompt wins
            rows = [ex for ex in reversed(unique.values()) if ex.prompt not in seen]
            if not rows:
                raise DataError(f"task.benchmarks.{name}: no rows left after removing prompts seen in training")
            out[name] = Benchmark(name, benchmark_metric(self.cfg, src), rows[:limit] if limit is not None else rows)
        return out

    def messages(self, ex: Example) -> list[dict[str, str]]:
        msgs = [{"role": "system", "content": self.cfg.system_prompt}] if self.cfg.system_prompt else []
        return msgs + [{"role": "user", "content": ex.prompt}]

    def completion(self, ex: Example) -> str:
        """The supervised target for warm-up / SFT."""
        if ex.answer is None and ex.solution is None:
            raise DataError(f"{ex.id}: no reference answer or solution, so there is no SFT target")
        answer = ex.answer if ex.answer is not None else ""
        return self.cfg.completion_template.format(answer=answer, solution=ex.solution or answer)

    # ------------------------------------------------------------------------------------------- scoring

    def score(self, metric: Metric, examples: list[Example], texts: list[str]) -> list[dict[str, float]]:
        """Every score of each output, by metric name (the first is the benchmark's headline)."""
        raise NotImplementedError

    def extract(self, text: str) -> str | None:
        """The final answer of an output, for the audit record and the majority vote (None: no answer)."""
        return None

    def vote_key(self, text: str) -> str | None:
        """What maj@k votes on: outputs with equal keys are the same answer. None: this task has no vote."""
        return None

    def rewards(self, metric: Metric, examples: list[Example], texts: list[str]) -> list[float]:
        """Training rewards in [0, 1]: the score named by ``task.reward``."""
        return [s[self.reward_name] for s in self.score(metric, examples, texts)]

    @property
    def train_metric(self) -> Metric:
        return benchmark_metric(self.cfg, self.cfg.train)


def choice_letter(raw: Any, n_choices: int, where: str) -> str:
    """A multiple-choice answer given as an index (0 = A) or a letter, as the letter of one of the n options."""
    letters = LETTERS[:n_choices]
    text = "" if isinstance(raw, bool) else str(raw).strip().upper()
    if text.isdigit() and int(text) < n_choices:
        return letters[int(text)]
    if len(text) == 1 and text in letters:
        return text
    raise DataError(f"{where}: answer {raw!r} is neither an option index nor a letter of the {n_choices} options")


def required(row: Mapping[str, Any], key: str | None, where: str) -> Any:
    value = field_value(row, key) if key else None
    if value is None:
        raise DataError(f"{where}: missing field {key!r} (fields: {sorted(row)})")
    return value


def scalar(value: Any, key: str | None, where: str) -> str:
    """A gold answer given as text or a number, as text; anything else (a list, an object) is a bad row."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise DataError(f"{where}: field {key!r} must be text or a number, got {type(value).__name__}")
    return str(value)


__all__ = ["Benchmark", "DataError", "Example", "Task", "choice_letter", "load_rows"]
