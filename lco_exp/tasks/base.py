"""What every task shares: the Example record and loading rows from a data source. No torch here.

A source is a reasoning-gym generator (offline), a hub data set by id, or a local .jsonl/.json/.parquet file;
all three become the same list of ``Example``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lco_exp.config import DataSourceConfig, SourceKind


class DataError(ValueError):
    """A data row that cannot be used; the message names the source, the row and the field."""


@dataclass(frozen=True)
class Example:
    id: str
    question: str
    answer: str  # the gold final answer the verifier compares against
    solution: str | None = None  # a worked solution, used as SFT target when the template asks for it


def _gym_rows(src: DataSourceConfig) -> list[dict[str, Any]]:
    import reasoning_gym

    options = dict(src.options)
    for key, value in options.items():  # Hydra hands lists over as ListConfig-converted lists; gym wants tuples
        if isinstance(value, list):
            options[key] = tuple(value)
    data = reasoning_gym.create_dataset(src.name, size=src.size, seed=src.seed, **options)
    rows = []
    for item in data:
        row = {src.question_field: item["question"], src.answer_field: item["answer"]}
        cot = item.get("metadata", {}).get("answer_cot")
        if cot and src.solution_field:
            row[src.solution_field] = cot
        rows.append(row)
    return rows


def _local_rows(path: Path) -> list[dict[str, Any]]:
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
    return rows


def _hub_rows(src: DataSourceConfig) -> list[dict[str, Any]]:
    import datasets

    return list(datasets.load_dataset(src.name, src.subset, split=src.split))


def load_rows(src: DataSourceConfig) -> list[dict[str, Any]]:
    if src.kind == SourceKind.reasoning_gym:
        rows = _gym_rows(src)
    elif src.kind == SourceKind.local:
        rows = _local_rows(Path(src.name).expanduser())
    else:
        rows = _hub_rows(src)
    return rows[: src.limit] if src.limit is not None else rows


def load_examples(src: DataSourceConfig, gold: Callable[[str], str | None]) -> list[Example]:
    """Rows of ``src`` as Examples; ``gold`` turns the raw answer field into the final answer (None: unusable)."""
    examples = []
    for i, row in enumerate(load_rows(src)):
        where = f"{src.name} row {i}"
        for key in (src.question_field, src.answer_field):
            if key not in row or row[key] is None:
                raise DataError(f"{where}: missing field {key!r} (fields: {sorted(row)})")
        question, raw = str(row[src.question_field]), str(row[src.answer_field])
        answer = gold(raw)
        if not question.strip() or not answer:
            raise DataError(f"{where}: empty question or no final answer in field {src.answer_field!r}: {raw[:80]!r}")
        solution = row.get(src.solution_field) if src.solution_field else None
        examples.append(Example(id=f"{src.name}:{i}", question=question, answer=answer, solution=solution))
    return examples
