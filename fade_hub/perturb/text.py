"""Text ops (str -> str): typos, case, punctuation, stop-words, negation, word shuffle, word repeat.

Words are whitespace-separated tokens; the whitespace between kept words is preserved. Typos
touch ASCII letters only, so non-ASCII text survives every op that does not move or drop it.
"""

from __future__ import annotations

import math
import random
import re
import unicodedata
from types import MappingProxyType
from typing import Any

from .ops import POLARITY, Factor, Op, choice_level, flag_level, flag_or_rate_level, number_level

_ASCII_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_TYPO_KINDS = ("delete", "insert", "swap", "adjacent")
_WORD = re.compile(r"(\S+)(\s*)")
_EDGES = re.compile(r"^[\W_]+|[\W_]+$")
_AUXILIARY = re.compile(
    r"\b(is|are|was|were|am|will|would|should|could|can|has|have|had|does|do|did|must|might|may)\b"
    r"(?!\s+not\b)",
    re.IGNORECASE,
)
# English stop-words, without the negations (no, nor, not): dropping those changes what a text means.
STOPWORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being below
between both but by can could did do does doing down during each few for from further had has have
having he her here hers herself him himself his how i if in into is it its itself just me more most
my myself now of off on once only or other our ours ourselves out over own same she
should so some such than that the their theirs them themselves then there these they this those
through to too under until up very was we were what when where which while who whom why will with
would you your yours yourself yourselves
""".split())


def _qwerty_neighbours() -> MappingProxyType:
    """Lower-case letter -> the letters next to it on a staggered QWERTY keyboard."""
    rows = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
    near: dict[str, str] = {}
    for r, row in enumerate(rows):
        for c, key in enumerate(row):
            spots = [(r, c - 1), (r, c + 1), (r - 1, c), (r - 1, c + 1), (r + 1, c - 1), (r + 1, c)]
            near[key] = "".join(rows[rr][cc] for rr, cc in spots if 0 <= rr < 3 and 0 <= cc < len(rows[rr]))
    return MappingProxyType(near)


QWERTY_NEIGHBOURS = _qwerty_neighbours()


def coerce(item: Any) -> str:
    """The item as text; anything else is a type error."""
    if not isinstance(item, str):
        raise TypeError(f"expected a string, got {type(item).__name__}")
    return item


def _rate(level: Any) -> float:
    """A flag-or-rate level as a rate: true -> 1.0, false -> 0.0."""
    return float(level) if not isinstance(level, bool) else (1.0 if level else 0.0)


def _count(rate: float, n: int, rng: random.Random) -> int:
    """``rate * n`` rounded stochastically, so short texts still get perturbed at the right rate on average."""
    whole = math.floor(rate * n)
    return min(n, whole + (rng.random() < rate * n - whole))


def _split(text: str) -> tuple[str, list[tuple[str, str]], str]:
    """Leading whitespace, (word, whitespace after it) pairs, and trailing whitespace."""
    lead = text[: len(text) - len(text.lstrip())]
    trail = text[len(text.rstrip()):] if text.strip() else ""
    return lead, _WORD.findall(text, len(lead)), trail


def _join(lead: str, pairs: list[tuple[str, str]], trail: str) -> str:
    """Rebuild text from (possibly reordered or filtered) pairs."""
    return lead + "".join(word + space for word, space in pairs).rstrip() + trail


def _core(word: str) -> str:
    """A token without the punctuation or symbols around it."""
    return _EDGES.sub("", word)


def _neighbour(char: str, rng: random.Random) -> str:
    key = rng.choice(QWERTY_NEIGHBOURS[char.lower()])
    return key.upper() if char.isupper() else key


def typos(text: str, level: float, rng_seed: int, factor: Factor) -> str:
    """Put typos (delete, insert, swap, adjacent key) on a fraction ``level`` of the ASCII letters."""
    letters = [i for i, c in enumerate(text) if c in _ASCII_LETTERS]
    rng = random.Random(rng_seed)
    chosen = set(rng.sample(letters, _count(level, len(letters), rng))) if level else set()
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        kind = rng.choice(_TYPO_KINDS) if i in chosen else None
        if kind == "swap" and i + 1 < len(text) and text[i + 1] in _ASCII_LETTERS and text[i + 1] != char:
            out += [text[i + 1], char]
            i += 2
            continue
        if kind == "insert":
            out += [char, _neighbour(char, rng)]
        elif kind in ("adjacent", "swap"):  # a swap with no distinct letter to its right becomes a substitution
            out.append(_neighbour(char, rng))
        elif kind is None:
            out.append(char)
        i += 1
    return "".join(out)


def case(text: str, level: str, rng_seed: int, factor: Factor) -> str:
    """Change letter case: ``none``, ``lower``, ``upper`` or ``toggle`` (swap case)."""
    return {"none": text, "lower": text.lower(), "upper": text.upper(), "toggle": text.swapcase()}[level]


def punctuation(text: str, level: bool, rng_seed: int, factor: Factor) -> str:
    """Remove every Unicode punctuation character when ``level`` is true."""
    return "".join(c for c in text if not unicodedata.category(c).startswith("P")) if level else text


def stopwords(text: str, level: bool | float, rng_seed: int, factor: Factor) -> str:
    """Drop English stop-words: all of them when true, each with probability ``level`` when a rate."""
    rate = _rate(level)
    if rate == 0:
        return text
    rng = random.Random(rng_seed)
    lead, pairs, trail = _split(text)
    kept = [(w, s) for w, s in pairs if not (_core(w).lower() in STOPWORDS and rng.random() < rate)]
    return _join(lead, kept, trail)


def negate(text: str, level: bool, rng_seed: int, factor: Factor) -> str:
    """Insert a negation after the first auxiliary verb (``can`` -> ``cannot``), else prefix "It is not true that"."""
    if not level or not text.strip():
        return text
    match = _AUXILIARY.search(text)
    if match:
        verb = match.group(1)
        negation = "NOT" if verb.isupper() else "not"
        negated = verb + (negation if verb.lower() == "can" else " " + negation)
        return text[: match.start()] + negated + text[match.end():]
    lead, pairs, trail = _split(text)
    first, space = pairs[0]
    if _core(first).lower() in STOPWORDS:
        pairs[0] = (first[:1].lower() + first[1:], space)
    return _join(lead + "It is not true that ", pairs, trail)


def shuffle(text: str, level: bool | float, rng_seed: int, factor: Factor) -> str:
    """Move a fraction ``level`` of the words (all when true) to each other's places."""
    rate = _rate(level)
    lead, pairs, trail = _split(text)
    rng = random.Random(rng_seed)
    count = _count(rate, len(pairs), rng) if rate else 0
    if count < 2:
        return text
    spots = rng.sample(range(len(pairs)), count)
    words = [pairs[i][0] for i in spots]
    for spot, word in zip(spots, words[1:] + words[:1]):  # a cyclic shift moves every chosen word
        pairs[spot] = (word, pairs[spot][1])
    return _join(lead, pairs, trail)


def repeat(text: str, level: int, rng_seed: int, factor: Factor) -> str:
    """Repeat one word (picked by the seed, preferring words with letters or digits) ``level`` extra times."""
    lead, pairs, trail = _split(text)
    if not level or not pairs:
        return text
    candidates = [i for i, (w, _) in enumerate(pairs) if _core(w)] or list(range(len(pairs)))
    index = random.Random(rng_seed).choice(candidates)
    word, space = pairs[index]
    core = _core(word) or word
    start = word.index(core)
    pairs[index] = (word[:start] + " ".join([core] * (int(level) + 1)) + word[start + len(core):], space)
    return _join(lead, pairs, trail)


OPS: dict[str, Op] = {
    "typos": Op(typos, number_level(0, 1), is_noop=lambda lv: lv == 0),
    "case": Op(case, choice_level("none", "lower", "upper", "toggle"), is_noop=lambda lv: lv == "none"),
    "punctuation": Op(punctuation, flag_level, is_noop=lambda lv: lv is False),
    "stopwords": Op(stopwords, flag_or_rate_level, is_noop=lambda lv: _rate(lv) == 0),
    "negate": Op(negate, flag_level, is_noop=lambda lv: lv is False, expect="directional", expect_map=POLARITY),
    "shuffle": Op(shuffle, flag_or_rate_level, is_noop=lambda lv: _rate(lv) == 0),
    "repeat": Op(repeat, number_level(0, 100, integer=True), is_noop=lambda lv: lv == 0),
}
