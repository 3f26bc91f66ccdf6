"""Shared fixtures: settings in a temporary data folder, fake and real embedders, eval data."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from qa.service import Library
from qa.settings import Settings
from tests.fakes import BagOfWordsEmbedder
from vectorstore.embeddings import SentenceTransformerEmbedder

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
SEED_ARTICLE = SEEDS / "000_624088a241e45b64.txt"


def run_qa(
    *args: str, env: Mapping[str, str], cwd: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``python -m qa.cli ARGS`` as a user runs it, with ``env``; its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "qa.cli", *args],
        capture_output=True,
        text=True,
        env=dict(env),
        cwd=cwd,
        timeout=timeout,
    )


os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


@pytest.fixture(scope="session")
def eval_data_dir() -> Path:
    """Folder holding the evaluation-data wheels, downloaded once by ``scripts/fetch-eval-data.sh``.

    The folder is ``$QA_EVAL_DATA`` or ``~/.cache/qa-eval-data``. Tests that need the data fail
    (they are never skipped) when it can be neither found nor downloaded.
    """
    target = os.environ.get("QA_EVAL_DATA") or str(Path.home() / ".cache" / "qa-eval-data")
    env = {**os.environ, "PYTHON": os.environ.get("PYTHON", sys.executable)}
    try:
        result = subprocess.run(
            ["bash", str(ROOT / "scripts" / "fetch-eval-data.sh"), target],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        )
    except (OSError, subprocess.SubprocessError) as error:
        pytest.fail(f"evaluation data unavailable (run scripts/fetch-eval-data.sh): {error}")
    return Path(result.stdout.strip().splitlines()[-1])


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


@pytest.fixture
def fake_embedder() -> BagOfWordsEmbedder:
    return BagOfWordsEmbedder()


@pytest.fixture(scope="session")
def real_embedder() -> SentenceTransformerEmbedder:
    """The bundled all-MiniLM-L6-v2, loaded once per test session."""
    embedder = SentenceTransformerEmbedder()
    embedder.warm_up()
    return embedder


@pytest.fixture
def fake_library(settings: Settings, fake_embedder: BagOfWordsEmbedder) -> Library:
    return Library(settings, embedder=fake_embedder)


@pytest.fixture
def real_library(
    settings: Settings, real_embedder: SentenceTransformerEmbedder
) -> Iterator[Library]:
    yield Library(settings, embedder=real_embedder)
