"""The reranker's weights file: matched to the features by name."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from vectorstore.features import FEATURE_NAMES
from vectorstore.reranker import BUNDLED, Reranker

OLD_NAMES = [n for n in FEATURE_NAMES if n != "article_bm25"]  # before article_bm25 existed


def write(path: Path, names: list[str], weights: list[float], bias: float = -1.5) -> Path:
    path.write_text(json.dumps({"features": names, "weights": weights, "bias": bias}))
    return path


def test_a_file_without_a_new_feature_gives_it_weight_0_and_scores_as_before(
    tmp_path: Path,
) -> None:
    weights = [0.5 + 0.25 * i for i in range(len(OLD_NAMES))]
    reranker = Reranker.load(write(tmp_path / "old.json", OLD_NAMES, weights))
    assert reranker.names == FEATURE_NAMES
    by_name = dict(zip(reranker.names, reranker.weights, strict=True))
    assert by_name["article_bm25"] == 0.0
    assert all(by_name[n] == w for n, w in zip(OLD_NAMES, weights, strict=True))

    old_features = [0.1 * (i + 1) for i in range(len(OLD_NAMES))]
    z = -1.5 + sum(w * x for w, x in zip(weights, old_features, strict=True))
    features = dict(zip(OLD_NAMES, old_features, strict=True))
    for article_bm25 in (0.0, 0.7, 1.0):
        row = [features.get(n, article_bm25) for n in FEATURE_NAMES]
        assert reranker.score(row) == 1.0 / (1.0 + math.exp(-z))


def test_weights_are_matched_by_name_not_position(tmp_path: Path) -> None:
    names = list(reversed(FEATURE_NAMES))
    weights = [float(i) for i in range(len(names))]
    reranker = Reranker.load(write(tmp_path / "reversed.json", names, weights))
    assert reranker.names == FEATURE_NAMES
    assert dict(zip(reranker.names, reranker.weights, strict=True)) == dict(
        zip(names, weights, strict=True)
    )


def test_a_file_with_an_unknown_feature_is_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path / "new.json", [*FEATURE_NAMES, "moon_phase"], [1.0] * (len(FEATURE_NAMES) + 1)
    )
    with pytest.raises(ValueError, match="moon_phase"):
        Reranker.load(path)


def test_a_file_with_more_weights_than_features_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="weights"):
        Reranker.load(write(tmp_path / "bad.json", OLD_NAMES, [1.0] * (len(OLD_NAMES) + 1)))


def test_the_bundled_weights_load_in_feature_order() -> None:
    data = json.loads(BUNDLED.read_text(encoding="utf-8"))
    reranker = Reranker.bundled()
    assert reranker.names == FEATURE_NAMES and len(reranker.weights) == len(FEATURE_NAMES)
    listed = dict(zip(data["features"], data["weights"], strict=True))
    for name, weight in zip(reranker.names, reranker.weights, strict=True):
        assert weight == float(listed.get(name, 0.0))
