"""Sequence encoders: a window of FLAME dynamics ``(B, T, F)`` -> an identity embedding ``(B, D)``.

Every encoder ends in the same head: attentive statistics pooling over time (Okabe et al.
2018), a linear layer to ``embedding_dim`` and L2 normalisation, so embeddings live on the unit
sphere where the supervised contrastive loss and cosine scoring work. Encoders differ only in
the frame-level network before the pooling:

- :class:`Conformer`: the main model (Gulati et al. 2020, "Conformer: Convolution-augmented
  Transformer for Speech Recognition"), as used by arXiv:2510.11223.
- :class:`LSTMEncoder`: a bidirectional LSTM baseline.
- :class:`TCNEncoder`: a stack of dilated residual 1-D convolutions (non-causal TCN) baseline.

All are plain ``torch.nn`` modules (no device or dtype assumptions); variable ``T`` is fine.
"""

from __future__ import annotations

import math
from numbers import Integral

import torch
import torch.nn.functional as F
from torch import nn

# The settings are plain dataclasses in a torch-free module: the workflow validates them
# while the DAG is built, which must not import torch.
from facedyn.identify.settings import EncoderSettings

# --- shared head --------------------------------------------------------------------------------


class AttentiveStatsPool(nn.Module):
    """Attentive statistics pooling (Okabe, Koshinaka & Shinoda 2018).

    A small network scores every frame (``v^T tanh(W h_t + b)``, one scalar per frame as in
    the paper), a softmax over time turns the scores into weights ``a_t``, and the output is
    the weighted mean and the weighted standard deviation, concatenated: ``(B, T, C) ->
    (B, 2C)``. The std carries how much the dynamics vary, which mean pooling loses; the
    weights let the model attend to expressive stretches rather than to still ones.
    """

    def __init__(self, channels: int, hidden: int | None = None) -> None:
        super().__init__()
        hidden = hidden or max(channels // 2, 8)
        self.score = nn.Sequential(nn.Linear(channels, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        w = torch.softmax(self.score(h).float(), dim=1)  # (B, T, 1), float32 even under AMP
        hf = h.float()
        mean = (w * hf).sum(dim=1)
        var = (w * hf.square()).sum(dim=1) - mean.square()
        std = var.clamp_min(1e-6).sqrt()  # clamp: gradient of sqrt at 0 is infinite
        return torch.cat([mean, std], dim=1)


class EmbeddingHead(nn.Module):
    """Pooling, a linear projection to the embedding and L2 normalisation."""

    def __init__(self, channels: int, embedding_dim: int) -> None:
        super().__init__()
        self.pool = AttentiveStatsPool(channels)
        self.proj = nn.Linear(2 * channels, embedding_dim)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        z = self.proj(self.pool(h).to(self.proj.weight.dtype))
        return F.normalize(z.float(), dim=-1)


# --- Conformer ----------------------------------------------------------------------------------


def sinusoidal_positions(length: int, dim: int, device: torch.device | None = None) -> torch.Tensor:
    """The fixed sinusoidal position table of Vaswani et al. 2017, ``(length, dim)``."""
    pos = torch.arange(length, dtype=torch.float32, device=device)[:, None]
    freq = torch.exp(
        torch.arange(0, dim, 2, dtype=torch.float32, device=device) * (-math.log(10000.0) / dim)
    )
    table = torch.zeros(length, dim, device=device)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq)[:, : dim // 2]
    return table


class FeedForward(nn.Module):
    """Conformer feed-forward module (LayerNorm, expand, SiLU, project); the block adds half
    of its output (the macaron "half-step")."""

    def __init__(self, d: int, mult: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(d),
            nn.Linear(d, mult * d),
            nn.SiLU(),
            nn.Dropout(dropout),
            nn.Linear(mult * d, d),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ConvModule(nn.Module):
    """Conformer convolution module: LayerNorm, pointwise conv to 2d, GLU, depthwise conv
    (``kernel``, 'same' padding), BatchNorm, SiLU, pointwise conv, dropout."""

    def __init__(self, d: int, kernel: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.pw1 = nn.Conv1d(d, 2 * d, 1)
        self.dw = nn.Conv1d(d, d, kernel, padding=kernel // 2, groups=d)
        self.bn = nn.BatchNorm1d(d)
        self.pw2 = nn.Conv1d(d, d, 1)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x).transpose(1, 2)  # (B, d, T)
        h = F.glu(self.pw1(h), dim=1)
        h = F.silu(self.bn(self.dw(h)))
        return self.drop(self.pw2(h)).transpose(1, 2)


def self_attention(attn: nn.MultiheadAttention, h: torch.Tensor) -> torch.Tensor:
    """``attn(h, h, h, need_weights=False)[0]`` for batch-first ``h`` (B, T, E).

    With autograd on, ``nn.MultiheadAttention`` (whose parameters, initialisation and
    checkpoint keys this keeps) repacks the projected queries, keys and values through copies,
    about a sixth of its cost on CPU; this computes the same through
    ``F.scaled_dot_product_attention``, both projections on rows in its (T, B) order, so
    outputs and gradients are bitwise its own (tests/test_identify_models.py). Without
    autograd it is ``attn`` itself (its native inference path).
    """
    if not torch.is_grad_enabled():
        return attn(h, h, h, need_weights=False)[0]
    b, t, d = h.shape
    heads = attn.num_heads
    qkv = F.linear(h.transpose(0, 1), attn.in_proj_weight, attn.in_proj_bias)
    q, k, v = qkv.view(t, b, 3, heads, d // heads).permute(2, 1, 3, 0, 4).unbind(0)
    dropout = attn.dropout if attn.training else 0.0  # as nn.MultiheadAttention drops weights
    out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)  # (B, heads, T, E / heads)
    out = attn.out_proj(out.permute(2, 0, 1, 3).reshape(t * b, d))
    return out.view(t, b, d).transpose(0, 1)


class ConformerBlock(nn.Module):
    """``x + FFN/2``, ``+ MHSA``, ``+ Conv``, ``+ FFN/2``, LayerNorm (Gulati et al. 2020, Fig. 1)."""

    def __init__(self, d: int, n_heads: int, ff_mult: int, kernel: int, dropout: float) -> None:
        super().__init__()
        self.ff1 = FeedForward(d, ff_mult, dropout)
        self.attn_norm = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, n_heads, dropout=0.0, batch_first=True)
        self.attn_drop = nn.Dropout(dropout)
        self.conv = ConvModule(d, kernel, dropout)
        self.ff2 = FeedForward(d, ff_mult, dropout)
        self.norm = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + 0.5 * self.ff1(x)
        x = x + self.attn_drop(self_attention(self.attn, self.attn_norm(x)))
        x = x + self.conv(x)
        x = x + 0.5 * self.ff2(x)
        return self.norm(x)


class _Transposed(nn.Module):
    """A module over (B, C, T) applied to (B, T, C)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x.transpose(1, 2)).transpose(1, 2)


class Conformer(nn.Module):
    """Conformer encoder with attentive statistics pooling and an L2-normalised embedding.

    Our own compact implementation of Gulati et al. (2020): torchaudio (which has
    ``torchaudio.models.Conformer``) has no CPU build in this project's environment, and the
    model is small enough that owning it costs little. Differences from the paper: positions
    enter as fixed sinusoidal *absolute* encodings added to the projected input (the paper
    uses Transformer-XL relative positional self-attention); windows are short (about 120
    frames) and of fixed length, where absolute positions serve equally. Dropout in the
    attention module acts on its output, not on the attention weights (that costs a third of
    a CPU training step for little regularisation). The subsampling front end
    (``subsample`` > 1) is one strided convolution with SiLU (the paper's has two, for 4x
    on 100 Hz filterbanks); with ``subsample`` 1 the input is projected frame by frame.
    """

    def __init__(self, n_features: int, settings: EncoderSettings) -> None:
        super().__init__()
        d = settings.d_model
        self.d_model = d
        self.subsample = settings.subsample
        if self.subsample > 1:
            self.input: nn.Module = nn.Sequential(
                _Transposed(
                    nn.Conv1d(
                        n_features,
                        d,
                        2 * self.subsample - 1,
                        stride=self.subsample,
                        padding=self.subsample - 1,
                    )
                ),
                nn.SiLU(),
            )
        else:
            self.input = nn.Linear(n_features, d)
        self.input_drop = nn.Dropout(settings.dropout)
        self.blocks = nn.ModuleList(
            ConformerBlock(
                d, settings.n_heads, settings.ff_mult, settings.conv_kernel, settings.dropout
            )
            for _ in range(settings.n_layers)
        )
        self.head = EmbeddingHead(d, settings.embedding_dim)
        self.register_buffer("positions", sinusoidal_positions(256, d), persistent=False)

    def _positions(self, length: int, like: torch.Tensor) -> torch.Tensor:
        if length > self.positions.shape[0]:  # longer windows than seen: grow the cache
            self.positions = sinusoidal_positions(2 * length, self.d_model, like.device)
        return self.positions[:length].to(like.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.input(x)
        h = self.input_drop(h + self._positions(h.shape[1], h))
        for block in self.blocks:
            h = block(h)
        return self.head(h)


# --- baselines ----------------------------------------------------------------------------------


class LSTMEncoder(nn.Module):
    """Bidirectional LSTM (``n_layers``, ``d_model // 2`` units per direction), LayerNorm,
    then the shared pooling head: the recurrent baseline trained with the same loss."""

    def __init__(self, n_features: int, settings: EncoderSettings) -> None:
        super().__init__()
        self.lstm = nn.LSTM(
            n_features,
            settings.d_model // 2,
            num_layers=settings.n_layers,
            batch_first=True,
            bidirectional=True,
            dropout=settings.dropout if settings.n_layers > 1 else 0.0,
        )
        self.norm = nn.LayerNorm(settings.d_model)
        self.drop = nn.Dropout(settings.dropout)
        self.head = EmbeddingHead(settings.d_model, settings.embedding_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.lstm(x)
        return self.head(self.drop(self.norm(h)))


class TCNBlock(nn.Module):
    """Residual block of two dilated 'same'-padded convolutions (BatchNorm, SiLU, dropout),
    non-causal: the whole window is observed, so the future is fair game."""

    def __init__(self, d: int, kernel: int, dilation: int, dropout: float) -> None:
        super().__init__()
        pad = dilation * (kernel // 2)
        self.net = nn.Sequential(
            nn.Conv1d(d, d, kernel, padding=pad, dilation=dilation),
            nn.BatchNorm1d(d),
            nn.SiLU(),
            nn.Dropout(dropout),
            nn.Conv1d(d, d, kernel, padding=pad, dilation=dilation),
            nn.BatchNorm1d(d),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(x + self.net(x))


class TCNEncoder(nn.Module):
    """Pointwise input projection, ``n_layers`` residual blocks with dilation ``2**i``, then
    the shared pooling head: the convolutional baseline trained with the same loss."""

    def __init__(self, n_features: int, settings: EncoderSettings) -> None:
        super().__init__()
        d = settings.d_model
        self.input = nn.Conv1d(n_features, d, 1)
        self.blocks = nn.Sequential(
            *(
                TCNBlock(d, settings.tcn_kernel, 2**i, settings.dropout)
                for i in range(settings.n_layers)
            )
        )
        self.head = EmbeddingHead(d, settings.embedding_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(self.input(x.transpose(1, 2)))
        return self.head(h.transpose(1, 2))


def build_encoder(settings: EncoderSettings, n_features: int) -> nn.Module:
    """The encoder named by ``settings.encoder`` for windows of ``n_features`` features."""
    if isinstance(n_features, bool) or not isinstance(n_features, Integral) or n_features < 1:
        raise ValueError(f"n_features: must be a positive integer, got {n_features!r}")
    n_features = int(n_features)
    cls = {"conformer": Conformer, "lstm": LSTMEncoder, "tcn": TCNEncoder}[settings.encoder]
    return cls(n_features, settings)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
