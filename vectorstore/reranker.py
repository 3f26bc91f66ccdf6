"""A logistic reranker over the features of ``features.py``.

Its weights are small JSON files in this package, trained reproducibly by
``benchmarks/train_reranker.py``: ``reranker.json`` for questions, on SQuAD v1.1 *train*
articles (never on the dev set the benchmark reports), ``reranker-statements.json`` for
statements, on CNN/Daily Mail highlights (never on the articles the benchmark samples). They
are matched to the features by name: a feature added since the file
was trained weighs nothing until it is retrained. The score is a probability-like number in
[0, 1], which also makes a meaningful abstention threshold.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vectorstore.features import FEATURE_NAMES

BUNDLED = Path(__file__).with_name("reranker.json")  # for questions
BUNDLED_STATEMENTS = Path(__file__).with_name("reranker-statements.json")  # for statements


@dataclass(frozen=True)
class Reranker:
    names: tuple[str, ...]
    weights: tuple[float, ...]
    bias: float

    def score(self, features: Sequence[float]) -> float:
        z = self.bias + sum(w * x for w, x in zip(self.weights, features, strict=True))
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))

    @classmethod
    def load(cls, path: Path) -> Reranker:
        """The weights saved at ``path``, matched to ``FEATURE_NAMES`` by name.

        A feature the file does not list (one added since it was trained) gets weight 0, so
        an older file scores exactly as before; a feature it lists that ``FEATURE_NAMES``
        lacks is an error (the model would silently lose part of what it learned).
        """
        data = json.loads(path.read_text(encoding="utf-8"))
        weights = _weights_by_name(path, list(data["features"]), list(data["weights"]))
        return cls.over_features(weights, float(data["bias"]))

    @classmethod
    def over_features(cls, weights: dict[str, float], bias: float) -> Reranker:
        """A reranker over every feature of ``FEATURE_NAMES`` from weights by name (0 for a
        feature ``weights`` lacks)."""
        return cls(FEATURE_NAMES, tuple(weights.get(n, 0.0) for n in FEATURE_NAMES), bias)

    @classmethod
    def bundled(cls, statements: bool = False) -> Reranker:
        """The committed weights for questions, or for ``statements`` (a query that states
        something: ranked for the article it sums up); before any training, an even blend of
        dense and BM25."""
        path = BUNDLED_STATEMENTS if statements else BUNDLED
        if path.exists():
            return cls.load(path)
        weights = tuple(3.0 if n in ("dense", "lexical") else 0.0 for n in FEATURE_NAMES)
        return cls(FEATURE_NAMES, weights, -3.0)

    def save(self, path: Path, about: dict[str, object]) -> None:
        data = {
            "features": list(self.names),
            "weights": [round(w, 6) for w in self.weights],
            "bias": round(self.bias, 6),
            **about,
        }
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _weights_by_name(
    path: Path, names: Sequence[str], weights: Sequence[float]
) -> dict[str, float]:
    """``names`` -> ``weights`` as read from ``path``, checked against ``FEATURE_NAMES``."""
    if len(names) != len(weights):
        raise ValueError(f"{path} lists {len(names)} features but {len(weights)} weights")
    if len(set(names)) != len(names):
        raise ValueError(f"{path} lists a feature twice: {names}")
    unknown = [n for n in names if n not in FEATURE_NAMES]
    if unknown:
        raise ValueError(f"{path} has weights for unknown features {unknown}")
    return {n: float(w) for n, w in zip(names, weights, strict=True)}
