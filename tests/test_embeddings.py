"""The bundled model on plain torch gives sentence-transformers' vectors, and starts faster."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SEED_ARTICLE
from vectorstore.bert import Precision
from vectorstore.chunking import chunk_article
from vectorstore.embeddings import (
    BertEmbedder,
    SentenceTransformerEmbedder,
    bundled_model_path,
    embed_array,
    make_embedder,
)
from vectorstore.errors import ConfigError
from vectorstore.loaders import load_file
from vectorstore.types import Article


def texts() -> list[str]:
    """Real news passages, plus what tokenizers and padding get wrong first."""
    [seed] = list(load_file(SEED_ARTICLE))
    assert isinstance(seed, Article)
    passages = [c.text for c in chunk_article(seed, 300)]
    return [
        *passages,
        "Who did Putin order to pull back the forces?",
        "",
        "   surrounding whitespace\n\t",
        "Ünïcödé, accents: café, naïve; CJK 中文; emoji 😀; math ½ ≤ ∞",
        "UPPER CASE AND lower case",
        " ".join(passages) * 3,  # far past 256 tokens: truncated exactly as sentence-transformers
        "word " * 300,
        "x" * 3000,  # one "word" of 3000 characters
    ]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_bert_embedder_gives_the_vectors_of_sentence_transformers(
    real_embedder: SentenceTransformerEmbedder, precision: Precision
) -> None:
    sample = texts()
    fast = BertEmbedder(batch_size=4, precision=precision)  # batches of different lengths
    ours = fast.embed_array(sample)
    theirs = real_embedder.embed_array(sample)
    assert ours.shape == theirs.shape == (len(sample), 384) and ours.dtype == np.float32
    assert cosines(ours, theirs).min() > 0.9999, cosines(ours, theirs)
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    # order-independent: alone or in a batch, a text gets the same vector (in bfloat16, the
    # same within its rounding: the padded width changes how the products are blocked)
    alone = np.asarray([fast.embed([sample[3]])[0]])
    if precision == "float32":
        assert np.allclose(alone, ours[3:4], atol=1e-5)
    else:
        assert cosines(alone, ours[3:4])[0] > 0.99999
        assert not np.array_equal(ours, theirs)  # it did run in bfloat16
    assert fast.model_id == real_embedder.model_id == "all-MiniLM-L6-v2"


def test_the_embedder_takes_its_precision_from_the_settings() -> None:
    assert isinstance(embedder := make_embedder(None, "float32"), BertEmbedder)
    assert not embedder.bfloat16
    assert isinstance(embedder := make_embedder(None, "bfloat16"), BertEmbedder)
    assert embedder.bfloat16


def test_the_bundled_model_runs_without_sentence_transformers() -> None:
    embedder = make_embedder(None)
    assert isinstance(embedder, BertEmbedder) and embedder.model_id == "all-MiniLM-L6-v2"
    other = make_embedder(Path("/some/model"))
    assert isinstance(other, SentenceTransformerEmbedder) and other.model_id == "model"
    code = (
        "import sys\n"
        "from vectorstore.embeddings import make_embedder\n"
        "v = make_embedder(None).embed(['Troops went home.'])[0]\n"
        "assert len(v) == 384\n"
        "print(sorted(m for m in ('sentence_transformers', 'transformers') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]", out.stderr


def test_progress_is_reported_per_batch() -> None:
    seen: list[int] = []
    vectors = embed_array(BertEmbedder(batch_size=3), texts()[:7], seen.append)
    assert seen == [3, 3, 1] and vectors.shape == (7, 384)


def test_a_folder_of_another_layout_is_refused_clearly(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(bundled_model_path(), folder, ignore=shutil.ignore_patterns("*.safetensors"))
    pooling = folder / "1_Pooling" / "config.json"
    config = json.loads(pooling.read_text())
    pooling.write_text(json.dumps({**config, "pooling_mode_cls_token": True}))
    with pytest.raises(ConfigError, match=r"needs mean pooling only, model\.safetensors"):
        BertEmbedder(folder).warm_up()


def test_a_question_runs_on_one_thread_and_the_thread_count_comes_back() -> None:
    import torch

    before = torch.get_num_threads()
    embedder = BertEmbedder()
    threads_seen: list[int] = []

    def spy(n: int) -> None:
        threads_seen.append(torch.get_num_threads())

    embed_array(embedder, ["Who ordered the pullback?"], spy)
    embed_array(embedder, ["a long passage about troops and talks " * 20] * 8, spy)
    assert threads_seen == [1, before]

    def ask_many() -> None:
        for _ in range(5):
            embedder.embed(["Who ordered the pullback?"])

    workers = [threading.Thread(target=ask_many) for _ in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert torch.get_num_threads() == before  # concurrent questions restore it exactly
