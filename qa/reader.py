"""The short-answer reader: which words of a passage answer the question.

An extractive reader in the SQuAD manner, built from what ships offline: the bundled
all-MiniLM-L6-v2 encoder reads ``[CLS] question [SEP] passage [SEP]``; its top layers
(layers 3 to 5) and a two-way linear head scoring each passage token as the first and
as the last token of the answer were trained here on SQuAD v1.1 *train* questions by
``benchmarks/train_reader.py`` (seeded; 75 minutes here on 2 shared cores). Only those trained
tensors are committed (``qa/reader.safetensors``, float16); the lower layers are the bundled
model's own.

``Reader.read`` returns, for each passage, the best span of at most ``MAX_ANSWER_TOKENS`` word
pieces as exact character offsets into that passage, with its probability (start x end, which
compares spans of one passage) and its score (which compares passages: how far the span's start
and end logits rise above those of ``[CLS]``, the reader's "no answer here").
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vectorstore.bert import (
    Precision,
    Weights,
    embed_tokens,
    encoder_layer,
    matmul_precision,
    use_bfloat16,
    with_bfloat16_matrices,
)
from vectorstore.embeddings import (
    _check_bert_folder,
    _stay_offline,
    bundled_model_path,
    one_thread_if,
)
from vectorstore.errors import ConfigError

if TYPE_CHECKING:
    import torch
    from tokenizers import Encoding, Tokenizer

BUNDLED = Path(__file__).with_name("reader.safetensors")
MAX_TOKENS = 192
MAX_QUESTION_TOKENS = 48
MAX_ANSWER_TOKENS = 24
HEAD = "qa_outputs"
READER_ONE_THREAD_TOKENS = 1024
PARALLEL_READS = 2  # batches one question's passages are read in at once, at most


def parallel_reads() -> int:
    """``PARALLEL_READS``, or fewer when this process may use fewer cores."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(PARALLEL_READS, cores))


@dataclass(frozen=True)
class Span:
    """Characters ``start``-``end`` of a passage, the reader's answer, with its probability
    within the passage and its ``score`` across passages (start + end logits of the span minus
    those of ``[CLS]``; higher: the passage more likely holds the answer)."""

    start: int
    end: int
    text: str
    probability: float
    score: float


def load_tokenizer(model_path: Path) -> Tokenizer:
    """The bundled model's tokenizer set up for question/passage pairs."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_path / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(MAX_TOKENS, strategy="only_second")
    return tokenizer


def encode_pair(tokenizer: Tokenizer, question: str, passage: str) -> Encoding:
    """The tokens of one question/passage pair: the question cut to ``MAX_QUESTION_TOKENS``, the
    passage to what fits in ``MAX_TOKENS``."""
    asked = tokenizer.encode(question, add_special_tokens=False)
    if len(asked.ids) > MAX_QUESTION_TOKENS:
        question = question[: asked.offsets[MAX_QUESTION_TOKENS - 1][1]]
    return tokenizer.encode(question, passage)


def passage_tokens(encoding: Encoding) -> list[int]:
    """Positions of the passage's tokens in ``encoding``."""
    return [i for i, s in enumerate(encoding.sequence_ids) if s == 1]


def batch_arrays(encodings: Sequence[Encoding]) -> tuple[Any, Any, Any]:
    """Padded ``ids``, ``type_ids`` and real-token ``mask`` tensors of a batch."""
    import torch

    width = max(len(e.ids) for e in encodings)
    ids = np.zeros((len(encodings), width), dtype=np.int64)
    types = np.zeros_like(ids)
    mask = np.zeros((len(encodings), width), dtype=np.bool_)
    for r, e in enumerate(encodings):
        ids[r, : len(e.ids)] = e.ids
        types[r, : len(e.ids)] = e.type_ids
        mask[r, : len(e.ids)] = True
    return torch.from_numpy(ids), torch.from_numpy(types), torch.from_numpy(mask)


def span_logits(
    weights: Weights, h: torch.Tensor, mask: torch.Tensor, first: int, config: dict[str, Any]
) -> torch.Tensor:
    """Start and end scores (batch, width, 2) from the hidden states entering layer ``first``."""
    import torch.nn.functional as F

    heads, eps = int(config["num_attention_heads"]), float(config["layer_norm_eps"])
    for n in range(first, int(config["num_hidden_layers"])):
        h = encoder_layer(weights, n, h, mask, heads, eps)
    return F.linear(h, weights[f"{HEAD}.weight"], weights[f"{HEAD}.bias"])


def best_span(
    logits: np.ndarray[Any, Any],
    encoding: Encoding,
    passage: str,
    max_tokens: int = MAX_ANSWER_TOKENS,
) -> Span | None:
    """The most probable span of at most ``max_tokens`` passage tokens (start <= end); token 0
    of ``logits`` is ``[CLS]``."""
    positions = passage_tokens(encoding)
    if not positions:
        return None
    every = np.asarray(logits, dtype=np.float64)
    scores = every[positions]
    start_p = _softmax(scores[:, 0])
    end_p = _softmax(scores[:, 1])
    pair = np.triu(np.outer(start_p, end_p)) - np.triu(np.ones((len(positions),) * 2), max_tokens)
    i, j = np.unravel_index(int(np.argmax(pair)), pair.shape)
    start = encoding.offsets[positions[i]][0]
    end = encoding.offsets[positions[j]][1]
    score = scores[i, 0] + scores[j, 1] - every[0, 0] - every[0, 1]
    return Span(int(start), int(end), passage[start:end], float(pair[i, j]), float(score))


def _softmax(x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    e = np.exp(x - x.max())
    return np.asarray(e / e.sum())


class Reader:
    """Finds the answer span in passages; loads its weights on first use.

    ``precision``: the encoder's matrix products in float32, in bfloat16, or (``auto``) in
    bfloat16 where the CPU does them in hardware: about twice as fast per passage there, with
    the same answers within noise (SQuAD dev, 1,000 gold passages: exact match 65.6 against
    65.3 in float32, the same span for 99.1% of the questions).
    """

    def __init__(
        self,
        weights_path: Path = BUNDLED,
        model_path: Path | None = None,
        precision: Precision = "auto",
    ) -> None:
        self._weights_path = weights_path
        self._model_path = model_path
        self.bfloat16 = use_bfloat16(precision)
        self._loaded: tuple[Weights, Tokenizer, dict[str, Any]] | None = None
        self._lock = threading.Lock()
        self._parallel = parallel_reads()
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def _load(self) -> tuple[Weights, Tokenizer, dict[str, Any]]:
        with self._lock:
            if self._loaded is None:
                weights, tokenizer, config = load_reader(self._weights_path, self._model_path)
                if self.bfloat16:
                    weights = with_bfloat16_matrices(weights)
                self._loaded = weights, tokenizer, config
            return self._loaded

    def read(self, question: str, passages: Sequence[str]) -> list[Span | None]:
        """The best answer span of each passage (None for an empty one).

        Several passages are read in up to ``PARALLEL_READS`` batches at once, on threads of
        their own (each a single torch thread: a small forward pass gains nothing from more),
        so that a close call's three passages take about the time of two on two cores.
        """
        if not passages:
            return []
        weights, tokenizer, config = self._load()
        encodings = [encode_pair(tokenizer, question, p) for p in passages]
        groups = balanced_groups([len(e.ids) for e in encodings], self._parallel)
        logits: list[Any] = [None] * len(encodings)

        def run(rows: list[int]) -> None:
            for r, row_logits in zip(
                rows, self._logits(weights, config, [encodings[r] for r in rows]), strict=True
            ):
                logits[r] = row_logits

        if len(groups) > 1:
            with self._pool_lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(self._parallel - 1, "reader")
            others = [self._pool.submit(run, g) for g in groups[1:]]
            run(groups[0])
            for f in others:
                f.result()
        else:
            run(groups[0])
        return [
            best_span(logits[r], e, p)
            for r, (e, p) in enumerate(zip(encodings, passages, strict=True))
        ]

    def _logits(
        self, weights: Weights, config: dict[str, Any], encodings: Sequence[Encoding]
    ) -> np.ndarray[Any, Any]:
        """Start/end logits (rows, width, 2) of a batch of encoded pairs."""
        import torch

        ids, types, mask = batch_arrays(encodings)
        small = int(mask.sum()) <= READER_ONE_THREAD_TOKENS
        with torch.inference_mode(), one_thread_if(small), matmul_precision(self.bfloat16):
            h = embed_tokens(weights, ids, types, float(config["layer_norm_eps"]))
            return span_logits(weights, h, mask, 0, config).float().numpy()


def balanced_groups(lengths: Sequence[int], parts: int) -> list[list[int]]:
    """The positions of ``lengths`` in at most ``parts`` groups of about equal total length
    (the longest first, each into the lightest group), each group in order; no empty group."""
    groups: list[list[int]] = [[] for _ in range(max(1, min(parts, len(lengths))))]
    totals = [0] * len(groups)
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        lightest = totals.index(min(totals))
        groups[lightest].append(i)
        totals[lightest] += lengths[i]
    return sorted(sorted(g) for g in groups if g)


def load_reader(
    weights_path: Path = BUNDLED, model_path: Path | None = None
) -> tuple[Weights, Tokenizer, dict[str, Any]]:
    """The encoder's weights with the reader's trained tensors in place, its tokenizer, config."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    _stay_offline()
    model_path = model_path or bundled_model_path()
    config = _check_bert_folder(model_path)
    try:
        weights = load_file(str(model_path / "model.safetensors"))
        trained = load_file(str(weights_path))
    except (OSError, SafetensorError) as exc:
        raise ConfigError(f"cannot load the short-answer reader {weights_path}: {exc}") from exc
    if f"{HEAD}.weight" not in trained:
        raise ConfigError(f"{weights_path} holds no reader head ({HEAD}.weight)")
    weights.update({name: t.float() for name, t in trained.items()})
    return weights, load_tokenizer(model_path), config
