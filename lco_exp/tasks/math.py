"""Math word problems and arithmetic: answer extraction plus math-verify equivalence. No torch here.

The reward is the evaluation check (one definition): 1.0 when the completion's final answer is equivalent to the
gold answer, else 0.0. Model output is never executed: extraction is regex and brace matching on a bounded
suffix of the text, numbers are compared with ``float``, and anything else goes to math-verify's LaTeX parser
(an ANTLR grammar, no ``eval``) under a timeout.
"""

from __future__ import annotations

import re

from lco_exp.config import AnswerFormat, DataSourceConfig, TaskConfig
from lco_exp.tasks.base import DataError, Example, load_examples

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
_HASHES = re.compile(r"####\s*([^\n]+)")
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


class MathTask:
    """Math task: prompts from a question, reward = final-answer equivalence."""

    def __init__(self, cfg: TaskConfig):
        self.cfg = cfg

    def load(self, src: DataSourceConfig) -> list[Example]:
        return load_examples(src, lambda raw: gold_answer(raw, src.answer_format))

    def load_train(self) -> list[Example]:
        return self.load(self.cfg.train)

    def load_benchmarks(self, train: list[Example], limit: int | None = None) -> dict[str, list[Example]]:
        """Held-out sets, each question once; with ``exclude_train_overlap`` questions in ``train`` are dropped."""
        seen = {ex.question for ex in train} if self.cfg.exclude_train_overlap else set()
        out = {}
        for name, src in self.cfg.benchmarks.items():
            unique = {ex.question: ex for ex in reversed(self.load(src))}  # first occurrence of each question wins
            rows = [ex for ex in reversed(unique.values()) if ex.question not in seen]
            if not rows:
                raise DataError(f"task.benchmarks.{name}: no rows left after removing questions seen in training")
            out[name] = rows[:limit] if limit is not None else rows
        return out

    def messages(self, ex: Example) -> list[dict[str, str]]:
        msgs = [{"role": "system", "content": self.cfg.system_prompt}] if self.cfg.system_prompt else []
        return msgs + [{"role": "user", "content": self.cfg.prompt_template.format(question=ex.question)}]

    def completion(self, ex: Example) -> str:
        """The supervised target for warm-up / SFT."""
        return self.cfg.completion_template.format(answer=ex.answer, solution=ex.solution or ex.answer)

    def extract(self, text: str) -> str | None:
        return extract_answer(text[-self.cfg.max_output_chars :])

    def reward(self, ex: Example, text: str) -> float:
        pred = self.extract(text)
        return float(pred is not None and answers_match(ex.answer, pred, self.cfg.verify_timeout_s))
