"""The ``qa`` command through its real entry point, in a subprocess, as a user runs it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import SEEDS, run_qa


def qa(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QA_DATA_DIR": str(data_dir), "HF_HUB_OFFLINE": "1"}
    return run_qa(*args, env=env)


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder holding the seed article and one more, ingested through the CLI."""
    root = tmp_path_factory.mktemp("cli")
    corpus = root / "corpus"
    shutil.copytree(SEEDS, corpus)
    (corpus / "nato.jsonl").write_text(
        json.dumps(
            {
                "id": "nato-1",
                "title": "NATO meets",
                "text": "NATO proposed holding a meeting with Moscow next week.",
                "source": "Wire",
                "published": "2014-05-20",
            }
        )
        + "\n",
        encoding="utf-8",
    )
    (corpus / "broken.jsonl").write_text("{oops\n", encoding="utf-8")
    data = root / "data"
    result = qa(data, "ingest", "--quiet", str(corpus))
    assert result.returncode == 3, result.stderr  # partial failure: one bad file
    assert result.stdout.startswith("2 new, 0 updated, 0 unchanged, 1 failed")
    assert "broken.jsonl:1: line 1: invalid JSON" in result.stderr
    assert "Traceback" not in result.stderr
    return data


@pytest.mark.slow
def test_list_shows_articles_with_chunk_counts(ingested: Path) -> None:
    result = qa(ingested, "list", "--json")
    assert result.returncode == 0, result.stderr
    rows = {r["id"]: r for r in json.loads(result.stdout)}
    assert set(rows) == {"000_624088a241e45b64", "nato-1"}
    assert rows["nato-1"]["chunks"] == 1 and rows["nato-1"]["published"] == "2014-05-20"
    assert rows["000_624088a241e45b64"]["chunks"] > 1
    plain = qa(ingested, "list")
    assert "nato-1\t2014-05-20" in plain.stdout and "2 articles" in plain.stderr


@pytest.mark.slow
def test_ask_json_carries_the_citations(ingested: Path) -> None:
    result = qa(ingested, "ask", "--json", "Who did Putin order to pull back the forces?")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) >= {"answer", "citations"}
    first = data["citations"][0]
    assert set(first) >= {
        "n",
        "article_id",
        "title",
        "url",
        "published",
        "quote",
        "start",
        "end",
        "score",
    }
    assert "Sergei Shoigu" in first["quote"] and "[1]" in data["answer"]
    text = (SEEDS / "000_624088a241e45b64.txt").read_text(encoding="utf-8").strip()
    assert text[first["start"] : first["end"]] == first["quote"]


@pytest.mark.slow
def test_ask_filters_restrict_the_sources(ingested: Path) -> None:
    result = qa(ingested, "ask", "--json", "--source", "Wire", "What did NATO propose?")
    data = json.loads(result.stdout)
    assert {c["article_id"] for c in data["citations"]} == {"nato-1"}
    readable = qa(ingested, "ask", "--since", "2014-05-20", "What did NATO propose?")
    assert "Sources:" in readable.stdout and "[1] NATO meets — Wire, 2014-05-20" in readable.stdout


@pytest.mark.slow
def test_reingest_reports_everything_unchanged(ingested: Path) -> None:
    result = qa(ingested, "ingest", "-q", str(SEEDS))
    assert result.returncode == 0
    assert result.stdout.startswith("0 new, 0 updated, 1 unchanged, 0 failed (0 passages")


def test_user_errors_are_one_line_without_a_trace(tmp_path: Path) -> None:
    empty = qa(tmp_path, "ask", "   ")
    assert empty.returncode == 1 and empty.stderr.strip() == "Error: Please type a question."
    bad_date = qa(tmp_path, "ask", "--since", "last week", "q")
    assert bad_date.returncode == 2 and "is not a date like 2014-05-19" in bad_date.stderr
    missing = qa(tmp_path, "delete", "nope")
    assert missing.returncode == 1 and "no such article: nope" in missing.stderr
    for result in (empty, bad_date, missing):
        assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_delete_removes_an_article(tmp_path: Path) -> None:
    corpus = tmp_path / "a.jsonl"
    corpus.write_text('{"id": "x", "text": "Short."}\n', encoding="utf-8")
    data = tmp_path / "data"
    assert qa(data, "ingest", "-q", str(corpus)).returncode == 0
    result = qa(data, "delete", "x")
    assert result.returncode == 0 and result.stdout.strip() == "deleted x"
    assert json.loads(qa(data, "list", "--json").stdout) == []
