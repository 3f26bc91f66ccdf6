"""The forward pass of a BERT encoder as plain functions of its weights.

Shared by the embedder (``vectorstore.embeddings``: all layers, then mean pooling) and the short
answer reader (``qa.reader``: the same encoder with its top layers fine-tuned), and by the script
that trains the reader (which runs the lower layers once and trains the upper ones). ``weights``
maps the names of a Hugging Face ``BertModel`` state dict (no ``bert.`` prefix) to tensors.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import torch

Weights = dict[str, "torch.Tensor"]
Precision = Literal["auto", "float32", "bfloat16"]

# CPU features that multiply bfloat16 matrices in hardware (as /proc/cpuinfo spells them)
_BFLOAT16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def native_bfloat16(cpuinfo: str) -> bool:
    """Does a CPU described by ``cpuinfo`` (the text of Linux's ``/proc/cpuinfo``) multiply
    bfloat16 matrices in hardware? There they run several times faster than float32; on
    other CPUs torch emulates them, more slowly than float32."""
    for line in cpuinfo.splitlines():
        name, _, value = line.partition(":")
        if name.strip() in ("flags", "Features") and _BFLOAT16_FLAGS & set(value.split()):
            return True
    return False


def use_bfloat16(precision: Precision, cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether to run matrix products in bfloat16 for ``precision``: always, never, or
    (``auto``) when this CPU does them in hardware (read from ``cpuinfo``; never elsewhere)."""
    if precision != "auto":
        return precision == "bfloat16"
    try:
        return native_bfloat16(cpuinfo.read_text(encoding="utf-8", errors="replace"))
    except OSError:  # not Linux: float32, which is right everywhere
        return False


@contextlib.contextmanager
def matmul_precision(bfloat16: bool) -> Iterator[None]:
    """Inside the block, torch's matrix products (the linear layers, attention) run in
    bfloat16 when ``bfloat16``; layer norms, softmax and everything else stay float32."""
    import torch

    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bfloat16):
        yield


def embed_tokens(
    weights: Weights, ids: torch.Tensor, type_ids: torch.Tensor | None, eps: float
) -> torch.Tensor:
    """The input of layer 0: word + position + token type embeddings, normalized."""
    import torch.nn.functional as F

    width = ids.shape[1]
    h = F.embedding(ids, weights["embeddings.word_embeddings.weight"])
    h = h + weights["embeddings.position_embeddings.weight"][:width]
    types = weights["embeddings.token_type_embeddings.weight"]
    h = h + (types[0] if type_ids is None else F.embedding(type_ids, types))
    norm = weights["embeddings.LayerNorm.weight"], weights["embeddings.LayerNorm.bias"]
    return F.layer_norm(h, (h.shape[-1],), *norm, eps)


def encoder_layer(
    weights: Weights, n: int, h: torch.Tensor, mask: torch.Tensor, heads: int, eps: float
) -> torch.Tensor:
    """Layer ``n`` applied to hidden states ``h`` (batch, width, dims); ``mask`` marks real
    tokens (batch, width) and padding is never attended to."""
    import torch.nn.functional as F

    batch, width, dims = h.shape
    prefix = f"encoder.layer.{n}"

    def linear(x: torch.Tensor, name: str) -> torch.Tensor:
        return F.linear(x, weights[f"{prefix}.{name}.weight"], weights[f"{prefix}.{name}.bias"])

    def norm(x: torch.Tensor, name: str) -> torch.Tensor:
        scale, shift = weights[f"{prefix}.{name}.weight"], weights[f"{prefix}.{name}.bias"]
        return F.layer_norm(x, (dims,), scale, shift, eps)

    q, k, v = (
        linear(h, f"attention.self.{part}").view(batch, width, heads, dims // heads).transpose(1, 2)
        for part in ("query", "key", "value")
    )
    a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])
    a = a.transpose(1, 2).reshape(batch, width, dims)
    h = norm(linear(a, "attention.output.dense") + h, "attention.output.LayerNorm")
    x = F.gelu(linear(h, "intermediate.dense"))
    return norm(linear(x, "output.dense") + h, "output.LayerNorm")


def with_bfloat16_matrices(weights: Weights) -> Weights:
    """``weights`` with the encoder layers' linear tensors (and a head's: any name outside
    ``embeddings.``) in bfloat16, so that bfloat16 products do not convert them again at every
    call; embeddings and layer norms stay float32."""
    import torch

    def matrix(name: str) -> bool:
        return not name.startswith("embeddings.") and "LayerNorm" not in name

    return {n: t.to(torch.bfloat16) if matrix(n) else t for n, t in weights.items()}
