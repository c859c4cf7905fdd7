"""Model-based scores: a local pairwise judge (AlpacaEval-style win rate) and a reward model (QA-Feedback-style).

Both load any ``model`` group option, read their scores from one no-grad forward pass, and return numbers in
[0, 1] so they can serve as rewards. Neither is the official scorer it stands in for: the judge's win rate is
labelled ``local_judge_win_rate`` everywhere, a proxy for AlpacaEval 2.0's GPT-4 judge.
"""

from __future__ import annotations

from pathlib import Path

import torch

from lco_exp import models
from lco_exp.config import HardwareConfig, ModelConfig, ModelSource

BATCH = 8  # prompt-response pairs per forward pass (speed only)
JUDGE_PROMPT = (
    "Here is an instruction and two responses to it.\n\nInstruction:\n{instruction}\n\nResponse A:\n{a}\n\n"
    "Response B:\n{b}\n\nWhich response follows the instruction better and is more helpful? Reply with A or B."
)
VERIFY_PROMPT = (
    "Question and passage:\n{prompt}\n\nProposed answer:\n{response}\n\n"
    "Is the proposed answer correct, relevant and supported by the passage? Reply with Yes or No."
)


def _first_token_ids(tok, words: list[str]) -> list[int]:
    """The token of each spelling that is a single token (e.g. "A" and " A"), else the first token of the first."""
    ids = []
    for w in words:
        enc = tok(w, add_special_tokens=False)["input_ids"]
        if len(enc) == 1 and enc[0] not in ids:
            ids.append(enc[0])
    return ids or tok(words[0], add_special_tokens=False)["input_ids"][:1]


class _NextTokenScorer:
    """A causal LM asked a two-way question; the score is P(first option) among the two options' first tokens."""

    def __init__(self, model, tok, cfg: ModelConfig, hw: HardwareConfig, options: tuple[str, str]):
        self.model, self.tok, self.cfg, self.hw = models.freeze(model), tok, cfg, hw
        self.yes = _first_token_ids(tok, [options[0], " " + options[0]])
        self.no = _first_token_ids(tok, [options[1], " " + options[1]])
        if set(self.yes) & set(self.no):
            raise ValueError(f"{cfg.name}: the tokenizer cannot tell {options[0]!r} from {options[1]!r} by first token")
        limit = getattr(model.config, "max_position_embeddings", None)
        self.max_len = int(limit) if limit else None

    @torch.no_grad()
    def prob_first(self, questions: list[str]) -> list[float]:
        out = []
        for s in range(0, len(questions), BATCH):
            ids = [
                models.encode_prompt(self.tok, [{"role": "user", "content": q}], self.cfg.use_chat_template)
                for q in questions[s : s + BATCH]
            ]
            if self.max_len:
                ids = [p[-self.max_len :] for p in ids]  # keep the end, where the question is asked
            P = max(map(len, ids))
            tokens = torch.full((len(ids), P), self.tok.pad_token_id, dtype=torch.long)
            attn = torch.zeros_like(tokens)
            for i, p in enumerate(ids):
                tokens[i, P - len(p) :] = torch.tensor(p)
                attn[i, P - len(p) :] = 1
            tokens, attn = tokens.to(self.hw.device.value), attn.to(self.hw.device.value)
            with models.autocast(self.hw):
                logits = (
                    self.model(
                        input_ids=tokens, attention_mask=attn, position_ids=models.position_ids(attn), logits_to_keep=1
                    )
                    .logits[:, -1]
                    .float()
                )
            yes = torch.logsumexp(logits[:, self.yes], dim=-1)
            no = torch.logsumexp(logits[:, self.no], dim=-1)
            out += torch.sigmoid(yes - no).tolist()  # P(yes) renormalised over the two answers
        return out


class LocalJudge:
    """Pairwise preference of a local causal LM: P(the policy's output beats the reference), averaged over both
    presentation orders so the judge's position bias cancels."""

    def __init__(self, model, tok, cfg: ModelConfig, hw: HardwareConfig, max_chars: int):
        self.scorer = _NextTokenScorer(model, tok, cfg, hw, ("A", "B"))
        self.max_chars = max_chars

    def win_probability(self, instructions: list[str], outputs: list[str], references: list[str]) -> list[float]:
        cut = self.max_chars
        first = [
            JUDGE_PROMPT.format(instruction=i[:cut], a=o[:cut], b=r[:cut])
            for i, o, r in zip(instructions, outputs, references, strict=True)
        ]
        second = [
            JUDGE_PROMPT.format(instruction=i[:cut], a=r[:cut], b=o[:cut])
            for i, o, r in zip(instructions, outputs, references, strict=True)
        ]
        p_a, p_b = self.scorer.prob_first(first), self.scorer.prob_first(second)
        return [(x + (1.0 - y)) / 2 for x, y in zip(p_a, p_b, strict=True)]


class RewardModel:
    """A learned score of (prompt, response) in [0, 1]: a sequence classifier's sigmoid (one label) or
    probability of its last label (several), or a causal LM's P(Yes) to a verification question."""

    def __init__(self, cfg: ModelConfig, hw: HardwareConfig, cache_dir: Path, seed: int, max_chars: int):
        self.cfg, self.hw, self.max_chars = cfg, hw, max_chars
        self.classifier = None
        if cfg.source == ModelSource.pretrained and _is_classifier(cfg):
            from transformers import AutoModelForSequenceClassification, AutoTokenizer

            self.tok = AutoTokenizer.from_pretrained(cfg.path, revision=cfg.revision)
            model = AutoModelForSequenceClassification.from_pretrained(
                cfg.path, revision=cfg.revision, dtype=models.torch_dtype(hw.param_dtype.value)
            )
            if self.tok.pad_token_id is None:
                self.tok.pad_token = self.tok.eos_token
            model.config.pad_token_id = self.tok.pad_token_id
            self.classifier = models.freeze(model.to(hw.device.value))
        else:
            model, tok = models.load_base(cfg, hw, cache_dir, seed)
            self.verifier = _NextTokenScorer(model, tok, cfg, hw, ("Yes", "No"))

    @torch.no_grad()
    def score(self, prompts: list[str], responses: list[str]) -> list[float]:
        cut = self.max_chars
        if self.classifier is None:
            return self.verifier.prob_first(
                [
                    VERIFY_PROMPT.format(prompt=p[:cut], response=r[:cut])
                    for p, r in zip(prompts, responses, strict=True)
                ]
            )
        out = []
        for s in range(0, len(prompts), BATCH):
            enc = self.tok(
                [p[:cut] for p in prompts[s : s + BATCH]],
                [r[:cut] for r in responses[s : s + BATCH]],
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=getattr(self.classifier.config, "max_position_embeddings", 512),
            ).to(self.hw.device.value)
            logits = self.classifier(**enc).logits.float()
            probs = torch.sigmoid(logits[:, 0]) if logits.shape[-1] == 1 else logits.softmax(-1)[:, -1]
            out += probs.tolist()
        return out


def _is_classifier(cfg: ModelConfig) -> bool:
    from transformers import AutoConfig

    architectures = AutoConfig.from_pretrained(cfg.path, revision=cfg.revision).architectures or []
    return any(a.endswith("ForSequenceClassification") for a in architectures)


def load_judge(cfg: ModelConfig, hw: HardwareConfig, cache_dir: Path, seed: int, max_chars: int) -> LocalJudge:
    model, tok = models.load_base(cfg, hw, cache_dir, seed)
    return LocalJudge(model, tok, cfg, hw, max_chars)


def attach_models(task, hw: HardwareConfig, cache_dir: Path, seed: int) -> None:
    """Load the task's judge and reward model, when configured, onto the task object."""
    if task.cfg.judge is not None:
        task.judge = load_judge(task.cfg.judge, hw, cache_dir, seed, task.cfg.judge_max_chars)
    if task.cfg.reward_model is not None:
        task.reward_model = RewardModel(task.cfg.reward_model, hw, cache_dir, seed, task.cfg.judge_max_chars)
