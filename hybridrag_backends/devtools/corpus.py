"""Real English text shipped with CPython (``pydoc_data.topics``), cut into passages, sentences and names.

Using the standard library keeps the generator offline and deterministic: the same
Python version always yields the same text.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import List

from pydoc_data.topics import topics

_WORD_RE = re.compile(r"\S+\s*")
_SENTENCE_RE = re.compile(r"[A-Z][^.!?*]{40,240}[.!?](?=\s)")
# Capitalised words and dotted/underscored identifiers read like the entities an LLM extracts.
_NAME_RE = re.compile(r"\b(?:[A-Z][a-z]{3,}|[a-z]+_[a-z_]+[a-z])\b")


class Corpus:
    """Words (with their trailing whitespace), sentences and entity-like names of the reference text."""

    def __init__(self) -> None:
        self.titles: List[str] = sorted(topics)
        text = "\n\n".join(topics[title].strip() for title in self.titles)
        self.words: List[str] = _WORD_RE.findall(text)
        self.sentences: List[str] = sorted(set(_SENTENCE_RE.findall(" ".join(text.split()))))
        self.names: List[str] = sorted(set(_NAME_RE.findall(text)))

    def passage(self, start: int, n_words: int) -> str:
        """``n_words`` consecutive words from ``start`` (wrapping around), whitespace kept."""
        total = len(self.words)
        start %= total
        if start + n_words <= total:
            return "".join(self.words[start : start + n_words]).strip()
        return "".join(self.words[start:] + self.words[: n_words - (total - start)]).strip()

    def entity_name(self, index: int) -> str:
        """A distinct name for every index: single names first, then pairs of names."""
        n = len(self.names)
        if index < n:
            return self.names[index]
        q, r = divmod(index, n)
        if q <= n:
            return f"{self.names[r]} {self.names[q - 1]}"
        return f"{self.names[r]} {q}"


@lru_cache(maxsize=1)
def corpus() -> Corpus:
    return Corpus()
