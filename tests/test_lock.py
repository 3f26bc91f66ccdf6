"""The writer lock of an embedded data folder, between real processes."""

from __future__ import annotations

import fcntl
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from qa.service import Library
from qa.settings import Settings
from tests.conftest import ROOT, SEED_ARTICLE
from tests.fakes import BagOfWordsEmbedder
from tests.servers import chroma_server, free_port, stop
from vectorstore.errors import LockedError
from vectorstore.lock import LOCK_NAME, Holder, WriterLock

SEED_ID = SEED_ARTICLE.stem
ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}

# A writing process with the fake embedder: holds the lock as `qa serve`, ingests the seed
# article (the lock is re-entrant), says so, then waits to be killed.
HOLDER = """
import sys, time
from pathlib import Path
from qa.service import Library
from qa.settings import Settings
from tests.fakes import BagOfWordsEmbedder

library = Library(Settings(data_dir=Path(sys.argv[1])), embedder=BagOfWordsEmbedder())
library.hold_writer_lock("qa serve")
library.ingest([sys.argv[2]], progress=False)
print("holding", flush=True)
time.sleep(600)
"""

# One write with the fake embedder, in a fresh process: ingest a file, print the report.
WRITE = """
import sys
from pathlib import Path
from qa.service import Library
from qa.settings import Settings
from tests.fakes import BagOfWordsEmbedder

library = Library(Settings(data_dir=Path(sys.argv[1])), embedder=BagOfWordsEmbedder())
report = library.ingest([sys.argv[2]], progress=False)
print(len(report.new), len(report.updated), len(report.unchanged))
"""


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the lock on ``tmp_path / "data"`` until it is killed."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path / "data"), str(SEED_ARTICLE)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=ENV,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line == "holding\n", proc.stderr.read() if proc.stderr else line
        yield proc
    finally:
        proc.kill()
        proc.wait()


def qa(*args: str) -> subprocess.CompletedProcess[str]:
    """The ``qa`` command, as a user runs it."""
    cmd = [sys.executable, "-m", "qa.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=120)


def write_in_another_process(data_dir: Path, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WRITE, str(data_dir), str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=ENV,
        timeout=120,
    )


def refusal(data_dir: Path, holder: str) -> re.Pattern[str]:
    """The message a refused writer shows, with ``holder`` like ``pid 12, qa serve``."""
    return re.compile(
        re.escape(f"the data folder {data_dir} is in use by another process ({holder}, since ")
        + r"\d\d:\d\d\); "
        + re.escape(
            "stop it first, or share the library through a Chroma server "
            '(--chroma-url, see README "Scaling out")'
        )
    )


def test_qa_ingest_is_refused_while_this_process_writes(settings: Settings) -> None:
    # fake vectors under the bundled model's name, so that `qa list` accepts the library
    library = Library(settings, embedder=BagOfWordsEmbedder(model_id="all-MiniLM-L6-v2"))
    library.ingest([SEED_ARTICLE], progress=False)  # takes the lock, keeps it
    result = qa("ingest", "-q", "--data-dir", str(settings.data_dir), str(SEED_ARTICLE))
    assert result.returncode == 1
    assert result.stdout == ""
    message = result.stderr.strip()
    assert message.startswith("Error: the data folder")
    assert refusal(settings.data_dir, f"pid {os.getpid()}, qa ingest").fullmatch(message[7:])
    assert "Traceback" not in result.stderr

    # readers take no lock
    listed = qa("list", "--data-dir", str(settings.data_dir))
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith(f"{SEED_ID}\t")


def test_the_lock_dies_with_its_holder(
    holder: subprocess.Popen[str], tmp_path: Path, fake_embedder: BagOfWordsEmbedder
) -> None:
    library = Library(Settings(data_dir=tmp_path / "data"), embedder=fake_embedder)
    with pytest.raises(LockedError) as refused:
        library.ingest([SEED_ARTICLE], progress=False)
    assert refusal(tmp_path / "data", f"pid {holder.pid}, qa serve").fullmatch(str(refused.value))
    with pytest.raises(LockedError):
        library.delete(SEED_ID)
    with pytest.raises(LockedError):
        library.hold_writer_lock("qa serve")

    holder.send_signal(signal.SIGKILL)  # no chance to clean up
    holder.wait()
    report = library.ingest([SEED_ARTICLE], progress=False)
    assert report.unchanged == [SEED_ID]  # the holder's write is there
    assert library.delete(SEED_ID)
    assert library.articles() == []


def test_one_process_writes_as_often_as_it_likes(
    fake_library: Library, settings: Settings, fake_embedder: BagOfWordsEmbedder, tmp_path: Path
) -> None:
    fake_library.hold_writer_lock("qa serve")
    assert fake_library.ingest([SEED_ARTICLE], progress=False).new == [SEED_ID]
    assert fake_library.ingest([SEED_ARTICLE], progress=False).unchanged
    other = Library(settings, embedder=fake_embedder)  # a second library of the same process
    assert other.delete(SEED_ID)
    assert other.ingest([SEED_ARTICLE], progress=False).new

    # released only when every library of the process has let go
    fake_library.close()
    fake_library.close()  # twice is harmless
    refused = write_in_another_process(settings.data_dir, SEED_ARTICLE)
    assert refused.returncode == 1
    assert f"(pid {os.getpid()}, qa serve, since " in refused.stderr
    other.close()
    freed = write_in_another_process(settings.data_dir, SEED_ARTICLE)
    assert freed.returncode == 0, freed.stderr
    assert freed.stdout == "0 0 1\n"


def test_a_chroma_server_takes_no_lock(
    holder: subprocess.Popen[str], tmp_path: Path, fake_embedder: BagOfWordsEmbedder
) -> None:
    """The data folder of a server-backed library holds only caches: nothing to lock."""
    with chroma_server(tmp_path / "db") as url:
        settings = Settings(data_dir=tmp_path / "data", chroma_url=url)
        library = Library(settings, embedder=fake_embedder)
        library.hold_writer_lock("qa serve")  # nothing to do
        assert library.ingest([SEED_ARTICLE], progress=False).new == [SEED_ID]
        assert library.delete(SEED_ID)
    assert holder.poll() is None  # the embedded folder's writer still holds its lock
    found = WriterLock(tmp_path / "data").holder()
    assert found is not None and (found.pid, found.command) == (holder.pid, "qa serve")


def test_the_refusal_names_whoever_the_lock_file_names(tmp_path: Path) -> None:
    """Another holder simulated with a second open file (flock refuses it even in-process)."""
    fd = os.open(tmp_path / LOCK_NAME, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        lock = WriterLock(tmp_path)

        # a holder that has not written its name yet
        with pytest.raises(LockedError) as refused:
            lock.acquire("qa ingest")
        assert str(refused.value).startswith(
            f"the data folder {tmp_path} is in use by another process; stop it first"
        )
        assert not lock.held

        earlier = datetime.now().astimezone() - timedelta(days=3)
        other = Holder(4321, "qa serve", earlier.replace(hour=9, minute=5))
        os.write(fd, other.to_json().encode())
        with pytest.raises(LockedError) as refused:
            lock.acquire("qa ingest")
        when = earlier.strftime("%Y-%m-%d")
        assert f"(pid 4321, qa serve, since {when} 09:05); stop it first" in str(refused.value)
    finally:
        os.close(fd)
    lock.acquire("qa ingest")
    assert lock.held
    me = lock.holder()
    assert me is not None and (me.pid, me.command) == (os.getpid(), "qa ingest")
    lock.release()
    assert not lock.held and lock.holder() is None  # the file says nobody holds it


def test_holder_descriptions() -> None:
    now = datetime.now().astimezone().replace(hour=10, minute=2)
    assert Holder(1234, "qa serve", now).describe() == "pid 1234, qa serve, since 10:02"
    assert Holder.from_json("") is None
    assert Holder.from_json('{"pid": "x"}') is None
    held = Holder(1, "qa ingest", now.replace(microsecond=0))
    assert Holder.from_json(held.to_json()) == held


@pytest.mark.slow
def test_qa_serve_holds_the_lock_from_its_start(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    cmd = [sys.executable, "-m", "qa.cli", "serve", "--data-dir", str(data_dir)]
    server = subprocess.Popen(
        [*cmd, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=ENV,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()  # printed once the lock is held
        assert line.startswith("Serving the chat on"), line
        result = qa("ingest", "-q", "--data-dir", str(data_dir), str(SEED_ARTICLE))
        assert result.returncode == 1
        assert refusal(data_dir, f"pid {server.pid}, qa serve").fullmatch(result.stderr[7:].strip())
        # a second server on the same folder is refused too, before it serves anything
        second = qa("serve", "--data-dir", str(data_dir), "--port", str(free_port()))
        assert second.returncode == 1 and "in use by another process" in second.stderr
    finally:
        stop(server)
    assert qa("ingest", "-q", "--data-dir", str(data_dir), str(SEED_ARTICLE)).returncode == 0
