"""Procedural data written for this project (offline, seeded): ``task.train.kind: generator``.

- ``passages``: short biographies of invented people with span-answer questions (SQuAD-style), optionally a
  share of unanswerable questions about facts the passage does not give (SQuAD v2-style).
- ``ifeval_synth``: IFEval-style prompts built from IFEval instruction ids and their kwargs, each with a
  reference response constructed to satisfy every instruction (checked with if-verifiable's IFEval checkers
  when generated), so the task has SFT targets and a verifier truth table.

Every generator is ``fn(size, seed, **options) -> list[row dict]`` and deterministic in ``seed``. Sizes are kept
small enough for the 512-position character model: a passage is about 150-250 characters.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

_FIRST = ["Mara", "Tobin", "Ilse", "Oren", "Keva", "Dario", "Lume", "Pavel", "Rhea", "Sten", "Anouk", "Bram",
          "Cleo", "Emil", "Fenna", "Gus", "Hedda", "Ivo", "Jora", "Lars"]  # fmt: skip
_LAST = ["Quill", "Marsh", "Vale", "Brook", "Thorne", "Ashby", "Kettle", "Lorne", "Pike", "Rook", "Sallow",
         "Tarn", "Underhill", "Wren", "Yarrow", "Fell"]  # fmt: skip
_CITIES = ["Oslo", "Lima", "Porto", "Riga", "Quito", "Hanoi", "Cork", "Perth", "Bergen", "Tunis", "Graz", "Leeds",
           "Malmo", "Split", "Turin", "Dakar"]  # fmt: skip
_JOBS = ["baker", "pilot", "nurse", "potter", "teacher", "chemist", "sailor", "tailor", "farmer", "painter",
         "carpenter", "librarian"]  # fmt: skip
_PETS = ["dog", "cat", "parrot", "horse", "goat", "rabbit"]
_PET_NAMES = ["Pip", "Rusty", "Moss", "Juno", "Biscuit", "Tally", "Fig", "Nox", "Pebble", "Ziggy"]


def _person(rng: random.Random) -> dict[str, Any]:
    pet = rng.choice(_PETS)
    return {
        "name": f"{rng.choice(_FIRST)} {rng.choice(_LAST)}",
        "city": rng.choice(_CITIES),
        "year": str(rng.randint(1900, 2010)),
        "job": rng.choice(_JOBS),
        "years": str(rng.randint(2, 40)),
        "pet": pet,
        "pet_name": rng.choice(_PET_NAMES),
    }


def _questions(p: dict[str, Any]) -> list[tuple[str, list[str]]]:
    n = p["name"]
    return [
        (f"Where was {n} born?", [p["city"]]),
        (f"In what year was {n} born?", [p["year"]]),
        (f"What did {n} work as?", [f"a {p['job']}", p["job"]]),
        (f"For how many years did {n} work?", [p["years"], f"{p['years']} years"]),
        (f"What is the name of {n}'s {p['pet']}?", [p["pet_name"]]),
    ]


def passages(size: int, seed: int, unanswerable: float = 0.0, people: int = 2) -> list[dict[str, Any]]:
    """Rows {context, question, answers}; ``answers`` is empty for an unanswerable question."""
    rng = random.Random(seed)
    rows = []
    while len(rows) < size:
        folks = [_person(rng) for _ in range(people)]
        if len({f["name"] for f in folks}) < people:
            continue
        context = " ".join(
            f"{f['name']} was born in {f['city']} in {f['year']} and worked as a {f['job']} for {f['years']} years. "
            f"{f['name'].split()[0]} has a {f['pet']} named {f['pet_name']}."
            for f in folks
        )
        subject = rng.choice(folks)
        if rng.random() < unanswerable:  # ask about a pet the passage does not mention
            other = rng.choice([p for p in _PETS if p != subject["pet"]])
            rows.append({"context": context, "question": f"What is the name of {subject['name']}'s {other}?",
                         "answers": []})  # fmt: skip
            continue
        question, answers = rng.choice(_questions(subject))
        rows.append({"context": context, "question": question, "answers": answers})
    return rows


# ----------------------------------------------------------------------------------------------- ifeval_synth

_TOPICS = ["rain", "bread", "trains", "the sea", "bees", "winter", "music", "gardens", "stars", "rivers", "tea",
           "maps", "clocks", "birds", "snow", "books"]  # fmt: skip
_FACTS = [
    "{t} can change a whole day",
    "people have written about {t} for a long time",
    "there is always something new to learn about {t}",
    "many towns have their own stories about {t}",
    "children often ask questions about {t}",
    "{t} can look different in every season",
]
_KEYWORDS = ["lantern", "velvet", "harbor", "pepper", "meadow", "copper", "signal", "orchard"]
_END_PHRASES = ["Any other questions?", "Is there anything else I can help with?", "That is all."]


def _body(rng: random.Random, topic: str, n: int) -> list[str]:
    facts = rng.sample(_FACTS, n)
    return [f.format(t=topic).capitalize() + "." for f in facts]


def _synth_one(rng: random.Random) -> dict[str, Any]:
    topic = rng.choice(_TOPICS)
    ask = [f"Write a short note about {topic}."]
    ids: list[str] = []
    kwargs: list[dict[str, Any]] = []
    bullets = rng.random() < 0.3
    sentences = _body(rng, topic, rng.randint(2, 3))
    if rng.random() < 0.4:
        word = rng.choice(_KEYWORDS)
        sentences.insert(rng.randrange(len(sentences) + 1), f"It reminds me of a {word}.")
        ids.append("keywords:existence")
        kwargs.append({"keywords": [word]})
        ask.append(f'Use the word "{word}".')
    if bullets:
        ids.append("detectable_format:number_bullet_lists")
        kwargs.append({"num_bullets": len(sentences)})
        ask.append(f"Give exactly {len(sentences)} bullet points, each starting with '* '.")
        text = "\n".join(f"* {s}" for s in sentences)
    else:
        text = " ".join(sentences)
    if rng.random() < 0.3:
        title = f"<<{topic.title()}>>"
        text = f"{title}\n{text}"
        ids.append("detectable_format:title")
        kwargs.append({})
        ask.append("Start with a title in double angle brackets, like <<my title>>.")
    if rng.random() < 0.25:
        text += "\nP.S. Thank you for reading."
        ids.append("detectable_content:postscript")
        kwargs.append({"postscript_marker": "P.S."})
        ask.append("Add a postscript starting with P.S. at the end.")
    if rng.random() < 0.3:
        phrase = rng.choice(_END_PHRASES)
        text += f"\n{phrase}"
        ids.append("startend:end_checker")
        kwargs.append({"end_phrase": phrase})
        ask.append(f'Finish with the exact phrase "{phrase}".')
    case = rng.random()
    if case < 0.25:
        text = text.lower()
        ids.append("change_case:english_lowercase")
        kwargs.append({})
        ask.append("Use only lowercase letters.")
    elif case < 0.4:
        text = text.upper()
        ids.append("change_case:english_capital")
        kwargs.append({})
        ask.append("Write everything in capital letters.")
    if "," not in text and rng.random() < 0.3:
        ids.append("punctuation:no_comma")
        kwargs.append({})
        ask.append("Do not use any commas.")
    if rng.random() < 0.3:
        words = len(text.split())
        if rng.random() < 0.5:
            n = words + rng.randint(3, 10)
            ids.append("length_constraints:number_words")
            kwargs.append({"num_words": n, "relation": "less than"})
            ask.append(f"Use fewer than {n} words.")
        else:
            n = max(1, words - rng.randint(2, 8))
            ids.append("length_constraints:number_words")
            kwargs.append({"num_words": n, "relation": "at least"})
            ask.append(f"Use at least {n} words.")
    if not bullets and rng.random() < 0.2:  # a quote before the first bullet would hide it from the checker
        text = f'"{text}"'
        ids.append("startend:quotation")
        kwargs.append({})
        ask.append("Wrap your whole answer in double quotation marks.")
    if not ids:  # every prompt carries at least one instruction
        text = text.lower()
        ids.append("change_case:english_lowercase")
        kwargs.append({})
        ask.append("Use only lowercase letters.")
    return {"prompt": " ".join(ask), "instruction_id_list": ids, "kwargs": kwargs, "response": text}


def ifeval_synth(size: int, seed: int) -> list[dict[str, Any]]:
    """Rows {prompt, instruction_id_list, kwargs, response}; each response passes all its instructions (strict)."""
    from lco_exp.tasks import ifcheck

    rng = random.Random(seed)
    rows, rejected = [], 0
    while len(rows) < size:
        row = _synth_one(rng)
        scores = ifcheck.check("ifeval", row["prompt"], row["instruction_id_list"], row["kwargs"], row["response"])
        if scores["prompt_strict"] == 1.0:
            rows.append(row)
            continue
        # The checkers are the ground truth: e.g. the case checkers also require langdetect to call the text
        # English, which short upper-case texts sometimes fail. Such rows are dropped, never shipped as targets.
        rejected += 1
        if rejected > size + 100:
            raise RuntimeError(f"ifeval_synth: {rejected} constructed responses failed their own checks")
    return rows


GENERATORS: dict[str, Callable[..., list[dict[str, Any]]]] = {"passages": passages, "ifeval_synth": ifeval_synth}
