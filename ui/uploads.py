"""Articles uploaded from the browser: copied under safe names into a temporary folder, ingested.

An upload's name comes from the user's browser, so it is never used as a path: only a tidied
base name (letters, digits, ``._-`` and spaces) is used, inside a fresh temporary folder of our
own, one sub-folder per file. The name still matters (a ``.txt`` file's name is its article id,
as with ``qa ingest``), so it is kept as close to the original as safety allows.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from qa.service import Library
from vectorstore.ingest import IngestReport
from vectorstore.loaders import LoadFailure

MAX_NAME_CHARS = 120
_UNSAFE = re.compile(r"[^\w.\- ]+")


def safe_name(name: str) -> str:
    """A file name made from ``name`` that cannot leave the folder it is put in.

    Only the last path component is kept (``/`` and ``\\`` both separate), characters other
    than letters, digits, ``._-`` and spaces become ``_``, leading dots and spaces go (no
    hidden files, no ``..``), and the result is at most 120 characters with its suffix kept.
    """
    base = re.split(r"[/\\]", unicodedata.normalize("NFC", name))[-1]
    base = _UNSAFE.sub("_", base).strip().lstrip(". ")
    base = re.sub(r"_+", "_", base)
    if len(base) > MAX_NAME_CHARS:
        stem, dot, suffix = base.rpartition(".")
        suffix = suffix[:16] if dot else ""
        keep = MAX_NAME_CHARS - len(suffix) - len(dot)
        base = (stem if dot else base)[:keep].rstrip(". ") + dot + suffix
    return base if base and base not in {".", ".."} else "upload"


@dataclass
class UploadResult:
    """What ingesting the uploads did; every path in it is the name the user gave."""

    report: IngestReport = field(default_factory=IngestReport)
    seconds: float = 0.0


def ingest_uploads(
    library: Library,
    uploads: Sequence[tuple[str, str | Path]],
    max_bytes: int,
    progress: bool = False,
) -> UploadResult:
    """Ingest ``uploads`` (the user's name, the server's copy) like ``qa ingest`` would.

    A file over ``max_bytes`` is reported as failed and not read. Every copy lives in a
    temporary folder that is deleted before this returns.
    """
    started = time.perf_counter()
    result = UploadResult()
    names: dict[str, str] = {}  # path read -> name shown
    too_large: list[LoadFailure] = []
    with tempfile.TemporaryDirectory(prefix="qa-upload-") as tmp:
        paths: list[Path] = []
        for i, (name, source) in enumerate(uploads):
            shown = safe_name(name)
            size = Path(source).stat().st_size
            if size > max_bytes:
                too_large.append(
                    LoadFailure(
                        shown,
                        f"too large ({size / 1e6:.1f} MB; the upload limit is "
                        f"{max_bytes / 1e6:g} MB)",
                    )
                )
                continue
            folder = Path(tmp, str(i))
            folder.mkdir()
            target = folder / shown
            shutil.copyfile(source, target)
            paths.append(target)
            names[str(target)] = shown
        if paths:
            result.report = library.ingest(paths, progress=progress)
        result.report.failed[:] = too_large + [_renamed(f, names) for f in result.report.failed]
    result.seconds = time.perf_counter() - started
    return result


def _renamed(failure: LoadFailure, names: dict[str, str]) -> LoadFailure:
    """``failure`` with the user's names instead of our temporary paths, in its reason too."""
    reason = failure.reason
    for path, name in names.items():
        reason = reason.replace(path, name)
    path = names.get(failure.path, safe_name(failure.path))
    return LoadFailure(path, reason, failure.line)
