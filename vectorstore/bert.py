"""The forward pass of a BERT encoder as plain functions of its weights.

Shared by the embedder (``vectorstore.embeddings``: all layers, then mean pooling) and the short
answer reader (``qa.reader``: the same encoder with its top layers fine-tuned), and by the script
that trains the reader (which runs the lower layers once and trains the upper ones). ``weights``
maps the names of a Hugging Face ``BertModel`` state dict (no ``bert.`` prefix) to tensors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

Weights = dict[str, "torch.Tensor"]


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
