"""A logistic reranker over the features of ``features.py``.

Its weights are a small JSON file in this package, trained reproducibly by
``benchmarks/train_reranker.py`` on SQuAD v1.1 *train* articles (never on the dev set the
benchmark reports). The score is a probability-like number in [0, 1], which also makes a
meaningful abstention threshold.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vectorstore.features import FEATURE_NAMES

BUNDLED = Path(__file__).with_name("reranker.json")


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
        data = json.loads(path.read_text(encoding="utf-8"))
        names = tuple(data["features"])
        if names != FEATURE_NAMES:
            raise ValueError(f"{path} was trained on features {names}, not {FEATURE_NAMES}")
        return cls(names, tuple(float(w) for w in data["weights"]), float(data["bias"]))

    @classmethod
    def bundled(cls) -> Reranker:
        """The committed weights; before any training, an even blend of dense and BM25."""
        if BUNDLED.exists():
            return cls.load(BUNDLED)
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
