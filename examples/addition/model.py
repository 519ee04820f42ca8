"""A tiny causal transformer that learns to add, built from a config (no download, CPU-sized).

Sums are written with their answer reversed (`12+34=640` for 46): the model
then produces the digits in the order a person carries them, which makes
addition learnable by a two-layer model in a few hundred steps.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

VOCAB = "0123456789+="


@dataclass(frozen=True)
class Config:
    """The shape of the model; saved next to its weights."""

    vocab_size: int = len(VOCAB)
    max_len: int = 16
    d_model: int = 64
    n_head: int = 4
    n_layer: int = 2
    d_ff: int = 128
    dropout: float = 0.0


class Adder(nn.Module):
    """Token and position embeddings, pre-norm transformer blocks with a causal mask, a linear head."""

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config
        self.tokens = nn.Embedding(config.vocab_size, config.d_model)
        self.positions = nn.Embedding(config.max_len, config.d_model)
        layer = nn.TransformerEncoderLayer(
            config.d_model, config.n_head, config.d_ff, config.dropout, batch_first=True, norm_first=True
        )
        self.blocks = nn.TransformerEncoder(layer, config.n_layer, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(config.d_model)
        self.head = nn.Linear(config.d_model, config.vocab_size)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        length = ids.shape[1]
        hidden = self.tokens(ids) + self.positions(torch.arange(length, device=ids.device))
        mask = nn.Transformer.generate_square_subsequent_mask(length, device=ids.device)
        return self.head(self.norm(self.blocks(hidden, mask=mask, is_causal=True)))

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps(asdict(self.config)))
        torch.save(self.state_dict(), folder / "weights.pt")

    @classmethod
    def load(cls, folder: Path) -> Adder:
        model = cls(Config(**json.loads((folder / "config.json").read_text())))
        model.load_state_dict(torch.load(folder / "weights.pt"))
        return model


def encode(text: str) -> list[int]:
    """Token ids of a text made of digits, '+' and '='."""
    return [VOCAB.index(c) for c in text]


def read_examples(path: Path, digits: int) -> tuple[torch.Tensor, int]:
    """Token ids of every line `a+b=c` (answer reversed, zero-padded) and where the answer starts."""
    rows = []
    for line in path.read_text().splitlines():
        left, total = line.split("=")
        a, b = left.split("+")
        question = f"{int(a):0{digits}d}+{int(b):0{digits}d}="
        rows.append(encode(question + f"{int(total):0{digits + 1}d}"[::-1]))
    return torch.tensor(rows), 2 * digits + 2


@torch.no_grad()
def answer(model: Adder, ids: torch.Tensor, start: int) -> torch.Tensor:
    """Greedy answers to the questions in `ids[:, :start]`, one digit at a time."""
    model.eval()
    seq = ids[:, :start]
    for _ in range(ids.shape[1] - start):
        following = model(seq)[:, -1].argmax(-1, keepdim=True)
        seq = torch.cat([seq, following], dim=1)
    return seq[:, start:]


def accuracy(model: Adder, ids: torch.Tensor, start: int) -> float:
    """The share of examples whose whole answer is right."""
    return float((answer(model, ids, start) == ids[:, start:]).all(dim=1).float().mean())
