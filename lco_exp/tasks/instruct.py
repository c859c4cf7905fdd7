"""Instruction following: IFEval / IFBench rows scored by if-verifiable's checkers (``tasks/ifcheck.py``), and an
AlpacaEval-style win rate against reference outputs by a configurable local judge. No torch here (the judge is
attached by the caller).

Scores per output: ``prompt_strict`` / ``prompt_loose`` (all instructions followed) and ``instruction_strict`` /
``instruction_loose`` (the fraction followed); ``task.reward`` picks the training reward among them. The judge's
score is ``local_judge_win_rate``: a proxy measured with a local model, not AlpacaEval's GPT-4 judge.
"""

from __future__ import annotations

from lco_exp.config import DataSourceConfig, Metric
from lco_exp.tasks import ifcheck
from lco_exp.tasks.base import DataError, Example, Task, field_value


class InstructTask(Task):
    judge = None  # a judges.LocalJudge, attached when task.judge is set

    def gold(self, row, src: DataSourceConfig, where: str) -> dict:
        metric = src.metric or Metric.ifeval
        reference = field_value(row, src.answer_field) if src.answer_field else None
        solution = field_value(row, src.solution_field) if src.solution_field else None
        if metric == Metric.judge:
            if reference is None or not str(reference).strip():
                raise DataError(f"{where}: the judge needs a reference output in field {src.answer_field!r}")
            ref = str(reference)
            return {"references": (ref,), "solution": str(solution) if solution is not None else ref}
        ids = field_value(row, "instruction_id_list")
        kwargs = field_value(row, "kwargs")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
            raise DataError(f"{where}: 'instruction_id_list' must be a non-empty list of instruction ids")
        if kwargs is None:
            kwargs = [{} for _ in ids]
        if (
            not isinstance(kwargs, list)
            or len(kwargs) != len(ids)
            or not all(isinstance(k, dict | None) for k in kwargs)
        ):
            raise DataError(f"{where}: 'kwargs' must be a list of {len(ids)} objects, one per instruction")
        known = ifcheck.registry(metric.value)
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise DataError(f"{where}: instruction ids {unknown} are not {metric.value} checkers")
        return {
            "references": (str(reference),) if reference else (),
            "solution": str(solution) if solution is not None else None,
            "meta": {"instruction_id_list": ids, "kwargs": [k or {} for k in kwargs], "raw_prompt": row.get("prompt")},
        }

    def score(self, metric: Metric, examples: list[Example], texts: list[str]) -> list[dict[str, float]]:
        if metric == Metric.judge:
            if self.judge is None:
                raise RuntimeError("a judge benchmark was scored without task.judge attached")
            wins = self.judge.win_probability(
                [ex.prompt for ex in examples], texts, [ex.references[0] for ex in examples]
            )
            return [{"local_judge_win_rate": w} for w in wins]
        out = []
        for ex, text in zip(examples, texts, strict=True):
            prompt = ex.meta.get("raw_prompt") or ex.prompt  # checkers that look at the prompt see the original
            s = ifcheck.check(metric.value, prompt, ex.meta["instruction_id_list"], ex.meta["kwargs"], text)
            out.append(s)
        return out
