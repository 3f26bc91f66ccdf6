"""Typed settings, built once at the entry point from flags and QA_* environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import platformdirs
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from vectorstore.bert import Precision
from vectorstore.store import StoreConfig


def default_data_dir() -> Path:
    """A folder in the user's data directory (never the working tree)."""
    return Path(platformdirs.user_data_dir("qa-articles"))


class Settings(BaseSettings):
    """Everything a user can set; flags override QA_* environment variables."""

    # hide_input_in_errors: an error about a setting never repeats its value (a secret's).
    model_config = SettingsConfigDict(env_prefix="QA_", extra="ignore", hide_input_in_errors=True)

    data_dir: Path = Field(default_factory=default_data_dir)
    chroma_url: str | None = None
    chroma_timeout: float = Field(30.0, gt=0, le=3600)  # seconds a Chroma server may take
    collection: str = "articles"
    embedding_model: Path | None = None  # None: the bundled all-MiniLM-L6-v2

    chunk_chars: int = Field(450, ge=100, le=4000)
    max_file_mb: float = Field(20.0, gt=0)

    top_k: int = Field(8, ge=1, le=100)  # chunks retrieved per question
    max_citations: int = Field(3, ge=1, le=20)
    citation_keep_ratio: float = Field(0.5, ge=0.0, le=1.0)  # cite while score >= this x best
    # below this the answer abstains; calibrated: benchmarks/calibrate_abstention.py
    min_score: float = Field(0.1, ge=0.0, le=1.0)
    # A factoid question's answer starts with the words that answer it (qa.reader), unless the
    # reader's probability for them is below min_short_probability.
    short_answers: bool = True
    min_short_probability: float = Field(0.0, ge=0.0, le=1.0)
    # The bundled encoders' matrix products (the embedding model's and the reader's): bfloat16
    # where the CPU does them in hardware ("auto"), or always "float32" / "bfloat16".
    precision: Precision = "auto"
    max_question_chars: int = Field(2000, ge=10)

    host: str = "127.0.0.1"
    port: int = Field(7860, ge=0, le=65535)

    # web server
    # Origins (scheme://host[:port]) besides the server's own that may embed the chat in a
    # frame and call the API from a browser; QA_ALLOWED_ORIGINS is a comma-separated list.
    allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    upload_max_mb: float = Field(20.0, gt=0)  # largest file the chat accepts for upload
    # When set, every page and route of the server asks for this token (ui.auth). Read from
    # QA_ACCESS_TOKEN (or `qa serve --access-token-file`), never a flag's value, which `ps`
    # shows; a SecretStr, so no repr or log shows it.
    access_token: SecretStr | None = None
    # Questions the API answers at once, and how many more may wait; beyond that, 503 with
    # Retry-After. The chat's queue takes the same limits.
    max_concurrent_questions: int = Field(4, ge=1, le=32)
    max_queued_questions: int = Field(32, ge=1, le=10_000)

    # LLM endpoint
    # An OpenAI-compatible chat endpoint (Ollama, llama.cpp's server, vLLM, LM Studio, OpenAI)
    # such as http://127.0.0.1:11434/v1 writes the answers (qa.llm); None: the offline
    # answerer. The API key is never a setting: llm_api_key_env NAMES the environment variable
    # that holds it.
    llm_base_url: str | None = None
    llm_model: str | None = None  # required with llm_base_url
    llm_api_key_env: str = "OPENAI_API_KEY"
    llm_timeout: float = Field(30.0, gt=0, le=600)  # seconds to wait for the model

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        return value.replace(",", " ").split() if isinstance(value, str) else value

    @field_validator("allowed_origins")
    @classmethod
    def _check_origins(cls, origins: list[str]) -> list[str]:
        """Each as a browser writes an origin (lower case, no path or trailing slash), or "*"."""
        import re

        pattern = re.compile(r"https?://(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(:\d{1,5})?")
        cleaned = [o.strip().rstrip("/").lower() for o in origins]
        for raw, origin in zip(origins, cleaned, strict=True):
            if origin != "*" and not pattern.fullmatch(origin):
                raise ValueError(
                    f"{raw!r} is not an origin like https://news.example or http://127.0.0.1:8000"
                )
        return cleaned

    @field_validator("access_token")
    @classmethod
    def _check_token(cls, token: SecretStr | None) -> SecretStr | None:
        """Long enough not to be guessed, and sendable in a header: printable ASCII, no spaces."""
        if token is None:
            return None
        value = token.get_secret_value()
        if len(value) < 16 or not all("!" <= ch <= "~" for ch in value):
            raise ValueError(
                "the access token must be at least 16 printable ASCII characters without "
                "spaces; make one with: python -c 'import secrets; print(secrets.token_urlsafe())'"
            )
        return token

    @property
    def store(self) -> StoreConfig:
        return StoreConfig(self.data_dir, self.chroma_url, self.collection, self.chroma_timeout)

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * 1_000_000)
