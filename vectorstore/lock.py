"""One writing process per embedded data folder: an advisory lock the OS drops when its holder dies.

Chroma's embedded store (a data folder opened in-process) is safe for one process at a time;
a second process writing to it would corrupt it. So a process that writes takes
``DATA_DIR/.qa-writer.lock`` with ``flock`` (exclusive, non-blocking) and keeps it until it
releases it or exits. The kernel releases it when the process dies, SIGKILL included, so a crash
never leaves a stale lock to clean up by hand. The file says who holds the lock (pid, command,
start time), so a refused process can say which process to stop (``LockedError``).

Within one process the lock is re-entrant: ``flock`` locks belong to an open file, and a second
open file of the same process would be refused like any other. So the open lock files are kept
in one table per process, each counted, and the last release unlocks. Readers take no lock; with
a Chroma server there is no folder to lock (the server is the one writer).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from vectorstore.errors import LockedError, StoreError

LOCK_NAME = ".qa-writer.lock"


@dataclass(frozen=True)
class Holder:
    """Who holds a data folder's writer lock, as its lock file says."""

    pid: int
    command: str
    since: datetime  # local time, with its offset

    def describe(self) -> str:
        """``pid 1234, qa serve, since 10:02`` (the date too when not today)."""
        since = self.since.astimezone()
        when = since.strftime(
            "%H:%M" if since.date() == datetime.now().date() else "%Y-%m-%d %H:%M"
        )
        return f"pid {self.pid}, {self.command}, since {when}"

    def to_json(self) -> str:
        return json.dumps(
            {"pid": self.pid, "command": self.command, "since": self.since.isoformat()}
        )

    @classmethod
    def from_json(cls, text: str) -> Holder | None:
        """The holder a lock file names; None when it names none (or not legibly)."""
        try:
            data = json.loads(text)
            return cls(
                int(data["pid"]), str(data["command"]), datetime.fromisoformat(data["since"])
            )
        except (ValueError, TypeError, KeyError):
            return None


@dataclass
class _Open:
    """This process's open, locked file for one data folder, and how many hold it."""

    fd: int
    count: int


_table: dict[str, _Open] = {}  # lock file path -> this process's lock on it
_table_lock = threading.Lock()


class WriterLock:
    """The writer lock of one data folder, held (or not) by this object.

    ``acquire`` is idempotent for the object and re-entrant across objects of one process; the
    lock is free again once every object that acquired it has released it, or the process ends.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.path = data_dir / LOCK_NAME
        self._key: str | None = None  # set while this object holds the lock

    @property
    def held(self) -> bool:
        return self._key is not None

    def acquire(self, command: str) -> None:
        """Take the lock for ``command`` (``qa ingest``, ``qa serve``, ...), or raise
        ``LockedError`` naming the process that has it."""
        if self._key is not None:
            return
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            key = os.path.realpath(self.path)
        except OSError as exc:
            raise StoreError(
                f"cannot create the data folder {self.data_dir}: {exc.strerror}"
            ) from exc
        with _table_lock:
            entry = _table.get(key)
            if entry is not None:
                entry.count += 1
            else:
                _table[key] = _Open(self._lock_file(key, command), 1)
        self._key = key

    def release(self) -> None:
        """Let go of the lock; the last holder in this process unlocks the file."""
        key, self._key = self._key, None
        if key is None:
            return
        with _table_lock:
            entry = _table[key]
            entry.count -= 1
            if entry.count:
                return
            del _table[key]
        with contextlib.suppress(OSError):
            os.ftruncate(entry.fd, 0)  # nobody holds it now
        os.close(entry.fd)  # closing the file releases the flock

    def holder(self) -> Holder | None:
        """The process the lock file names: the holder while the lock is held (after a
        crash, the file may still name a process that is gone); None when it names none."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None
        return Holder.from_json(text)

    def _lock_file(self, key: str, command: str) -> int:
        """Open and lock the file, write this process into it; its descriptor."""
        try:
            fd = os.open(key, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StoreError(
                f"cannot lock the data folder {self.data_dir}: {exc.strerror}"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise LockedError(self._refusal()) from exc
            raise StoreError(
                f"cannot lock the data folder {self.data_dir} ({exc.strerror}); use a folder "
                "on a local disk, or a Chroma server (--chroma-url)"
            ) from exc
        me = Holder(os.getpid(), command, datetime.now().astimezone().replace(microsecond=0))
        with contextlib.suppress(OSError):  # if not, a refused process cannot say whose it is
            os.ftruncate(fd, 0)
            os.pwrite(fd, me.to_json().encode("utf-8"), 0)
        return fd

    def _refusal(self) -> str:
        holder = self.holder()
        who = f" ({holder.describe()})" if holder else ""
        return (
            f"the data folder {self.data_dir} is in use by another process{who}; stop it first, "
            'or share the library through a Chroma server (--chroma-url, see README "Scaling out")'
        )
