"""Typed settings, built once at the entry point from flags and QA_* environment variables."""

from __future__ import annotations

from pathlib import Path

import platformdirs
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from vectorstore.store import StoreConfig


def default_data_dir() -> Path:
    """A folder in the user's data directory (never the working tree)."""
    return Path(platformdirs.user_data_dir("qa-articles"))


class Settings(BaseSettings):
    """Everything a user can set; flags override QA_* environment variables."""

    model_config = SettingsConfigDict(env_prefix="QA_", extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir)
    chroma_url: str | None = None
    collection: str = "articles"
    embedding_model: Path | None = None  # None: the bundled all-MiniLM-L6-v2

    chunk_chars: int = Field(600, ge=100, le=4000)
    max_file_mb: float = Field(20.0, gt=0)

    top_k: int = Field(8, ge=1, le=100)  # chunks retrieved per question
    max_citations: int = Field(3, ge=1, le=10)
    min_score: float = Field(0.35, ge=0.0, le=1.0)  # below this the answer abstains
    max_question_chars: int = Field(2000, ge=10)

    host: str = "127.0.0.1"
    port: int = Field(7860, ge=0, le=65535)

    @property
    def store(self) -> StoreConfig:
        return StoreConfig(self.data_dir, self.chroma_url, self.collection)

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * 1_000_000)
