"""Math word problems and arithmetic: answer extraction plus math-verify equivalence. No torch here.

The reward is the evaluation check (one definition): 1.0 when the completion's final answer is equivalent to the
gold answer, else 0.0. Model output is never executed: extraction is regex and brace matching on a bounded
suffix of the text, numbers are compared with ``float``, and anything else goes to math-verify's LaTeX parser
(an ANTLR grammar, no ``eval``) under a timeout.
"""

from __future__ import annotations

import re

from lco_exp.config import AnswerFormat, DataSourceConfig, MathAnswer, Metric
from lco_exp.tasks.base import DataError, Example, Task, choice_letter, field_value, required, scalar

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
_HASHES = re.compile(r"####\s*([^\n]+)")
_CHOICE = re.compile(r"(?<![A-Z])\(?([A-J])\)?(?![A-Z])")  # an option letter standing alone: B, (B), B. text
_MAX_ANSWER_CHARS = 200  # longer extracted answers are not graded (0.0): no real final answer is that long


def last_boxed(text: str) -> str | None:
    """Contents of the last \\boxed{...} (or \\fbox{...}) with balanced braces, or None."""
    start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    if start < 0:
        return None
    i = text.index("{", start) + 1
    depth = 1
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i:j]
    return None


def extract_answer(text: str) -> str | None:
    """Final answer of a completion: the last \\boxed{}, else what follows '####', else the last number."""
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed.strip()
    hashes = _HASHES.findall(text)
    if hashes:
        return hashes[-1].strip()
    numbers = _NUMBER.findall(text)
    return numbers[-1] if numbers else None


def _as_number(s: str) -> float | None:
    s = s.strip().rstrip(".").replace("$", "").replace("\\%", "").replace("%", "").strip()
    if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", s):
        s = s.replace(",", "")
    try:
        return float(s)
    except ValueError:
        return None


def gold_answer(raw: str, fmt: AnswerFormat) -> str | None:
    """The final answer inside a data set's answer field."""
    if fmt == AnswerFormat.gsm8k:
        found = _HASHES.findall(raw)
        return found[-1].strip().replace(",", "") if found else None
    if fmt == AnswerFormat.boxed:
        return last_boxed(raw)
    return raw.strip() or None


def answers_match(gold: str, pred: str, timeout_s: int) -> bool:
    """Equivalence of two final answers: exact text, then numeric value, then math-verify (bounded)."""
    if pred.strip() == gold.strip():
        return True
    g, p = _as_number(gold), _as_number(pred)
    if g is not None and p is not None:
        return abs(g - p) <= 1e-6 * max(1.0, abs(g))
    if len(pred) > _MAX_ANSWER_CHARS:
        return False
    from math_verify import LatexExtractionConfig, parse, verify

    latex = [LatexExtractionConfig()]
    try:
        gp = parse(f"${gold}$", extraction_config=latex, parsing_timeout=timeout_s)
        pp = parse(f"${pred}$", extraction_config=latex, parsing_timeout=timeout_s)
        return bool(gp and pp and verify(gp, pp, timeout_seconds=timeout_s))
    except Exception:  # math-verify raises on pathological input or timeout: not equivalent
        return False


class MathTask(Task):
    """Math task: reward = final-answer equivalence (accuracy). Multiple-choice benchmarks (MMLU as boxed
    choice, paper-notes 5.1) compare the boxed option letter."""

    def gold(self, row, src: DataSourceConfig, where: str) -> dict:
        raw = required(row, src.answer_field, where)
        if src.answer_format == AnswerFormat.choice:
            answer = choice_letter(raw, len(required(row, src.choices_field, where)), where)
        else:
            answer = gold_answer(scalar(raw, src.answer_field, where), src.answer_format)
        if not answer:
            raise DataError(f"{where}: no final answer in field {src.answer_field!r}: {str(raw)[:80]!r}")
        solution = field_value(row, src.solution_field) if src.solution_field else None
        meta = {"choice": True} if src.answer_format == AnswerFormat.choice else {}
        return {"answer": answer, "solution": None if solution is None else str(solution), "meta": meta}

    def extract(self, text: str) -> str | None:
        if self.cfg.math_answer == MathAnswer.first_number:
            found = _NUMBER.search(text[: self.cfg.max_output_chars])
            return found.group(0) if found else None
        return extract_answer(text[-self.cfg.max_output_chars :])

    def vote_key(self, text: str) -> str | None:
        pred = self.extract(text)
        if pred is None:
            return None
        number = _as_number(pred)
        return repr(number) if number is not None else " ".join(pred.split())

    def correct(self, ex: Example, text: str) -> bool:
        pred = self.extract(text)
        if pred is None:
            return False
        if ex.meta.get("choice"):
            found = _CHOICE.search(pred.upper())
            return bool(found) and found.group(1) == ex.answer
        return answers_match(ex.answer, pred, self.cfg.verify_timeout_s)

    def score(self, metric: Metric, examples: list[Example], texts: list[str]) -> list[dict[str, float]]:
        return [{"accuracy": float(self.correct(ex, t))} for ex, t in zip(examples, texts, strict=True)]
