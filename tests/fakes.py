"""Fakes passed through the real seams (no mocks)."""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Sequence

_WORD = re.compile(r"\w+")


class BagOfWordsEmbedder:
    """A deterministic embedder with controllable geometry: texts sharing words are close.

    Each lower-cased word adds 1 to one of ``dims`` coordinates (by CRC32), then the vector is
    normalized. Counts its calls so tests can see whether anything was embedded.
    """

    def __init__(self, dims: int = 256, model_id: str = "bag-of-words") -> None:
        self.dims = dims
        self._model_id = model_id
        self.calls = 0
        self.texts_embedded = 0

    @property
    def model_id(self) -> str:
        return self._model_id

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls += 1
        self.texts_embedded += len(texts)
        return [self._vector(t) for t in texts]

    def _vector(self, text: str) -> list[float]:
        v = [0.0] * self.dims
        for word in _WORD.findall(text.lower()):
            v[zlib.crc32(word.encode()) % self.dims] += 1.0
        norm = math.sqrt(sum(x * x for x in v))
        if norm == 0:
            v[0] = 1.0
            return v
        return [x / norm for x in v]
