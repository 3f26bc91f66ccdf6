"""Capacity over real HTTP: a few questions answered at once, a few more waiting, the rest
refused at once with 503 and Retry-After; never a 500, and every accepted question answered.

The answerer is a fake passed through the real seam (``Library(answerer=...)``): the extractive
answerer behind a gate the test opens, counting how many answers run at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from qa.answerer import ExtractiveAnswerer
from qa.service import Library
from qa.settings import Settings
from qa.types import Answer
from tests.fakes import BagOfWordsEmbedder
from tests.test_api import QUESTION, SEEDS, Reply, call, events, running_server
from vectorstore.types import ScoredPassage

CONCURRENT = 2
QUEUED = 3


class GatedAnswerer:
    """Answers like the extractive answerer once ``gate`` is open; records the most answers
    that were running at the same time."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.inner = ExtractiveAnswerer(min_score=0.0)
        self.running = 0
        self.most = 0
        self._lock = threading.Lock()

    def answer(self, question: str, passages: Sequence[ScoredPassage]) -> Answer:
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            if not self.gate.wait(timeout=60):
                raise TimeoutError("the test never opened the gate")
            return self.inner.answer(question, passages)
        finally:
            with self._lock:
                self.running -= 1


@pytest.fixture(scope="module")
def answerer() -> GatedAnswerer:
    return GatedAnswerer()


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, answerer: GatedAnswerer) -> Iterator[str]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("capacity") / "data",
        chroma_url=None,
        max_concurrent_questions=CONCURRENT,
        max_queued_questions=QUEUED,
    )
    library = Library(settings, embedder=BagOfWordsEmbedder(), answerer=answerer)
    assert library.ingest([SEEDS], progress=False).new
    library.warm_up()
    with running_server(library) as url:
        yield url


def ask(base: str, route: str) -> Reply:
    return call(f"{base}{route}", "POST", {"question": QUESTION})


@pytest.mark.slow
@pytest.mark.parametrize("route", ["/api/ask", "/api/ask/stream"])
def test_beyond_capacity_is_a_503_with_retry_after(
    base: str, answerer: GatedAnswerer, route: str
) -> None:
    answerer.gate.clear()
    answerer.most = 0
    extra = 4
    total = CONCURRENT + QUEUED + extra
    with ThreadPoolExecutor(total) as pool:
        futures = [pool.submit(ask, base, route) for _ in range(total)]
        # The ones beyond capacity are refused at once, while the others still wait.
        deadline = time.monotonic() + 30
        while sum(f.done() for f in futures) < extra or answerer.running < CONCURRENT:
            assert time.monotonic() < deadline, "no quick refusals"
            time.sleep(0.02)
        refused = [f.result() for f in futures if f.done()]
        assert len(refused) == extra and answerer.running == CONCURRENT
        answerer.gate.set()
        replies = [f.result(timeout=60) for f in futures]

    statuses = sorted(r.status for r in replies)
    assert statuses == [200] * (CONCURRENT + QUEUED) + [503] * extra, statuses
    for reply in refused:
        assert reply.status == 503
        assert int(reply.headers["retry-after"]) >= 1
        assert reply.headers["content-type"] == "application/json"
        assert "busy" in reply.json()["detail"]
    for reply in replies:
        if reply.status == 200:
            answer = answer_of(reply, route)
            assert answer["question"] == QUESTION and answer["citations"]
    assert answerer.most == CONCURRENT  # never more at once

    # Once the queue has drained, the next question is answered at once.
    assert ask(base, route).status == 200


def answer_of(reply: Reply, route: str) -> dict[str, Any]:
    if route.endswith("/stream"):
        kind, data = events(reply.body)[-1]
        assert kind == "answer", (kind, data)
        result: dict[str, Any] = data
        return result
    result = reply.json()
    return result


@pytest.mark.slow
def test_the_chat_refuses_beyond_its_queue(base: str, answerer: GatedAnswerer) -> None:
    """Gradio's queue takes the same limits: a full queue refuses at once, clearly."""
    from gradio_client import Client
    from gradio_client.utils import QueueError

    answerer.gate.clear()
    answerer.most = 0
    extra = 3
    client = Client(f"{base}/", verbose=False, analytics_enabled=False, download_files=False)
    try:
        jobs = [
            client.submit(QUESTION, api_name="/ask") for _ in range(CONCURRENT + QUEUED + extra)
        ]
        deadline = time.monotonic() + 30
        while sum(j.done() for j in jobs) < extra or answerer.running < CONCURRENT:
            assert time.monotonic() < deadline, "no quick refusals"
            time.sleep(0.02)
        answerer.gate.set()
        answered, refused = [], []
        for job in jobs:
            try:
                answered.append(job.result(timeout=60))
            except QueueError as exc:
                refused.append(str(exc))
    finally:
        client.close()

    assert (
        len(answered) == CONCURRENT + QUEUED
        and refused == ["Queue is full! Please try again."] * extra
    )
    assert all("Mr Putin" in a for a in answered)
    assert answerer.most == CONCURRENT
