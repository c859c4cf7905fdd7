"""IFEval / IFBench instruction checking through ``if-verifiable``, made safe offline.

if-verifiable's checkers call NLTK for sentence splitting, word tokens, stop words and part-of-speech tags, and
its IFBench module tries ``nltk.download`` when it is imported. Here:

- the import runs with ``nltk.download`` replaced by a function that downloads nothing (a test proves no
  network call is made), and
- each checker module sees an NLTK stand-in that uses the real NLTK resource when it is installed locally
  (``nltk.data.find`` only looks on disk) and otherwise a fallback: a regex sentence splitter, a regex word
  tokenizer and a built-in English stop-word list. Instructions checked through a fallback are counted
  (``approximate``); the one check that needs a part-of-speech tagger ("start with a verb") cannot be
  approximated and is left out of the scores and counted as ``unverifiable``.

Per instruction, if-verifiable's own ``evaluate_instructions`` decides strict and loose; the four scores are
aggregated here so one unverifiable instruction does not void its prompt.
"""

from __future__ import annotations

import functools
import re
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

MAX_RESPONSE_CHARS = 20_000  # longer outputs are cut before checking; checkers are linear-ish in the text


class ResourceMissing(LookupError):
    """An NLTK resource that has no offline fallback."""


_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=\S)")
_WORD = re.compile(r"\w+(?:'\w+)?|[^\w\s]")
# Common English function words: the offline stand-in for NLTK's stop-word corpus (approximate by design).
_STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below between
    both but by can could did do does doing down during each few for from further had has have having he her here
    hers herself him himself his how i if in into is it its itself just me more most my myself no nor not now of
    off on once only or other our ours ourselves out over own same she should so some such than that the their
    theirs them themselves then there these they this those through to too under until up very was we were what
    when where which while who whom why will with would you your yours yourself yourselves""".split()
)


@functools.cache
def _has(resource: str) -> bool:
    import nltk

    try:
        nltk.data.find(resource)
        return True
    except LookupError:
        return False


@dataclass
class _Usage:
    approximate: int = 0


_usage = _Usage()


class _SentenceSplitter:
    def tokenize(self, text: str) -> list[str]:
        _usage.approximate += 1
        return [s for s in _SENTENCE_END.split(text.strip()) if s.strip()]


class _Data:
    def __init__(self, real):
        self._real = real

    def load(self, resource: str, *args, **kwargs):
        if "punkt" in resource and not _has("tokenizers/punkt"):
            return _SentenceSplitter()
        return self._real.load(resource, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._real, name)


class _Stopwords:
    def words(self, lang: str = "english") -> list[str]:
        if _has("corpora/stopwords"):
            from nltk.corpus import stopwords

            return stopwords.words(lang)
        _usage.approximate += 1
        return sorted(_STOPWORDS)


class _Corpus:
    stopwords = _Stopwords()


class OfflineNLTK:
    """What the checker modules see as ``nltk``: the real module, with the data-backed calls made offline-safe."""

    def __init__(self):
        import nltk

        self._nltk = nltk
        self.data = _Data(nltk.data)
        self.corpus = _Corpus()

    def word_tokenize(self, text: str, *args, **kwargs) -> list[str]:
        if _has("tokenizers/punkt_tab"):
            return self._nltk.word_tokenize(text, *args, **kwargs)
        _usage.approximate += 1
        return _WORD.findall(text)

    def pos_tag(self, tokens, *args, **kwargs):
        if _has("taggers/averaged_perceptron_tagger_eng"):
            return self._nltk.pos_tag(tokens, *args, **kwargs)
        raise ResourceMissing("part-of-speech tagging needs NLTK's averaged_perceptron_tagger_eng data")

    @staticmethod
    def download(*args, **kwargs) -> bool:
        return False  # never reach the network; missing data is handled by the fallbacks above

    def __getattr__(self, name):
        return getattr(self._nltk, name)


@contextmanager
def _no_download():
    import nltk

    original = nltk.download
    nltk.download = OfflineNLTK.download
    try:
        yield
    finally:
        nltk.download = original


@functools.cache
def registry(benchmark: str) -> dict[str, Any]:
    """Instruction id -> checker class of ``ifeval`` or ``ifbench``, with the offline NLTK stand-in installed."""
    with _no_download():
        if benchmark == "ifeval":
            from if_verifiable.ifeval import instructions, instructions_util
            from if_verifiable.ifeval.instructions_registry import INSTRUCTION_DICT
        elif benchmark == "ifbench":
            from if_verifiable.ifbench import instructions, instructions_util
            from if_verifiable.ifbench.instructions_registry import INSTRUCTION_DICT
        else:
            raise ValueError(f"unknown instruction benchmark {benchmark!r}; expected 'ifeval' or 'ifbench'")
    import langdetect

    langdetect.DetectorFactory.seed = 0  # the case checkers call langdetect, which is random unless seeded
    shim = OfflineNLTK()
    for module in (instructions, instructions_util):
        if hasattr(module, "nltk"):
            module.nltk = shim
    if hasattr(instructions_util, "_get_sentence_tokenizer"):
        instructions_util._get_sentence_tokenizer.cache_clear()
    return INSTRUCTION_DICT


def check(benchmark: str, prompt: str, instruction_ids: list[str], kwargs: list[dict], response: str) -> dict:
    """Strict and loose results per instruction, aggregated to the four IFEval scores.

    -> {"prompt_strict", "prompt_loose", "instruction_strict", "instruction_loose"} in [0, 1], plus the counts
    "n_instructions", "unverifiable" and "approximate" for auditing."""
    from if_verifiable.common import evaluate_instructions

    table = registry(benchmark)
    response = response[:MAX_RESPONSE_CHARS]
    strict, loose = [], []
    unverifiable = unknown = 0
    before = _usage.approximate
    for i, instruction_id in enumerate(instruction_ids):
        if instruction_id not in table:
            unknown += 1
            continue
        kw = kwargs[i] if i < len(kwargs) and kwargs[i] else {}
        try:
            results, _ = evaluate_instructions(response, [instruction_id], [kw], prompt, table)
        except ResourceMissing:
            unverifiable += 1
            continue
        if not results:  # an empty response: if-verifiable returns no per-instruction results; it fails them all
            strict.append(False)
            loose.append(False)
            continue
        strict.append(results[0].strict_pass)
        loose.append(results[0].loose_pass)
    n = len(strict)
    if unknown:
        raise ValueError(f"instruction ids not in the {benchmark} registry: {unknown} of {instruction_ids}")
    return {
        "prompt_strict": float(n > 0 and all(strict)),
        "prompt_loose": float(n > 0 and all(loose)),
        "instruction_strict": sum(strict) / n if n else 0.0,
        "instruction_loose": sum(loose) / n if n else 0.0,
        "n_instructions": float(n),
        "unverifiable": float(unverifiable),
        "approximate": float(_usage.approximate > before),
    }
