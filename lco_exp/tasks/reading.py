"""Reading comprehension: span answers scored by SQuAD-normalised exact match and token F1. No torch here.

The answer is the output's first non-empty line (a leading "Answer:" dropped). Scores are the maximum over the
gold references; a question with no references is unanswerable and scores 1 only when the output says so (the
configured ``task.no_answer`` phrase, or nothing), as SQuAD v2 does. A reward model (``task.reward_model``) can
add a learned score for QA-Feedback-style long answers; it is applied by the caller (``rewards`` with the model
attached by ``attach_reward_model``).

The normalisation and F1 are written here (about 20 lines) rather than taken from ``evaluate``'s squad metric,
which fetches its script from the hub at run time and so fails offline.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

from lco_exp.config import AnswerFormat, DataSourceConfig, Metric
from lco_exp.tasks.base import DataError, Example, Task, choice_letter, field_value, required

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)
_PREFIX = re.compile(r"^\s*(final\s+)?answer\s*[:\-]\s*", re.IGNORECASE)
MAX_ANSWER_CHARS = 1000  # an answer line longer than this is cut before scoring (bounds the F1 work)


def normalize(text: str) -> str:
    """SQuAD normalisation: lower case, drop punctuation and the articles a/an/the, collapse whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(pred: str, gold: str) -> float:
    return float(normalize(pred) == normalize(gold))


def token_f1(pred: str, gold: str) -> float:
    p, g = normalize(pred).split(), normalize(gold).split()
    if not p or not g:  # an empty side matches only an empty side
        return float(p == g)
    common = sum((Counter(p) & Counter(g)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)


def squad_scores(pred: str | None, references: Sequence[str], no_answer: str) -> dict[str, float]:
    """Exact match and F1, max over the references. No references: the question is unanswerable, and an
    answer of ``no_answer`` or an empty output is the correct one (SQuAD v2 scores abstention against "")."""
    pred = pred or ""
    if not references:
        abstains = normalize(pred) in ("", normalize(no_answer))
        return {"exact_match": float(abstains), "f1": float(abstains)}
    if normalize(pred) == normalize(no_answer):
        return {"exact_match": 0.0, "f1": 0.0}
    return {
        "exact_match": max(exact_match(pred, g) for g in references),
        "f1": max(token_f1(pred, g) for g in references),
    }


def extract_span(text: str) -> str | None:
    """The first non-empty line of the output, without a leading 'Answer:'; None when the output is empty."""
    for line in text.splitlines():
        line = _PREFIX.sub("", line).strip()
        if line:
            return line[:MAX_ANSWER_CHARS]
    return None


class ReadingTask(Task):
    """Reading comprehension (SQuAD, DROP, QA-Feedback, and offline context-QA generators)."""

    reward_model = None  # a judges.RewardModel, attached when task.reward_model is set

    def gold(self, row, src: DataSourceConfig, where: str) -> dict:
        raw = field_value(row, src.answer_field) if src.answer_field else None
        if raw is None:
            raise DataError(f"{where}: missing field {src.answer_field!r} (fields: {sorted(row)})")
        if src.answer_format == AnswerFormat.choice:
            choices = required(row, src.choices_field, where)
            raw = [choices[ord(choice_letter(raw, len(choices), where)) - ord("A")]]
        refs = [raw] if isinstance(raw, str | int | float) else list(raw)
        refs = tuple(dict.fromkeys(str(r).strip() for r in refs if str(r).strip()))  # unique, order kept
        solution = field_value(row, src.solution_field) if src.solution_field else None
        return {
            "answer": refs[0] if refs else None,
            "references": refs,
            "solution": str(solution) if solution is not None else (refs[0] if refs else self.cfg.no_answer),
        }

    def completion(self, ex: Example) -> str:
        """SFT target: the first reference span, or the no-answer phrase for an unanswerable question."""
        answer = ex.answer if ex.answer is not None else self.cfg.no_answer
        return self.cfg.completion_template.format(answer=answer, solution=ex.solution or answer)

    def extract(self, text: str) -> str | None:
        return extract_span(text)

    def vote_key(self, text: str) -> str | None:
        """Normalised span; an empty output and the no-answer phrase are the same vote (abstain)."""
        key = normalize(extract_span(text) or "")
        return "" if key == normalize(self.cfg.no_answer) else key

    def score(self, metric: Metric, examples: list[Example], texts: list[str]) -> list[dict[str, float]]:
        out = [
            squad_scores(extract_span(t), ex.references, self.cfg.no_answer)
            for ex, t in zip(examples, texts, strict=True)
        ]
        if self.reward_model is not None:
            rm = self.reward_model.score([ex.prompt for ex in examples], texts)
            for s, r in zip(out, rm, strict=True):
                s["reward_model"] = r
        return out
