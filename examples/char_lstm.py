"""A character-level LSTM language model on Python's own documentation.

Embedding -> nn.LSTM -> Linear: at every position the model reads one character and
predicts the next, trained on windows of ``tg.data.CharDataset``; then it writes a
sample, one character at a time, carrying its LSTM state from step to step.

    python examples/char_lstm.py            # 600 steps: held-out loss ~1.6 nats/char
    python examples/char_lstm.py --quick    # or TINYGRAD_BP_QUICK=1: 20 smaller steps
"""

from __future__ import annotations

import os
import sys

import numpy as np

import tinygrad_bp as tg
from tinygrad_bp import nn
from tinygrad_bp.nn import functional as F

QUICK = os.environ.get("TINYGRAD_BP_QUICK") == "1" or "--quick" in sys.argv[1:]
STEPS, BLOCK, EMBED, HIDDEN = (20, 16, 16, 32) if QUICK else (600, 64, 32, 128)


class CharLSTM(nn.Module):
    def __init__(self, vocab_size: int, embed: int, hidden: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed)
        self.lstm = nn.LSTM(embed, hidden, batch_first=True)
        self.head = nn.Linear(hidden, vocab_size)

    def forward(self, ids, state=None):
        """Logits (batch, time, vocab) and the LSTM state (h, c) after the last step."""
        output, state = self.lstm(self.embed(ids), state)
        return self.head(output), state


def loss_on(model: CharLSTM, x: tg.Tensor, y: tg.Tensor) -> tg.Tensor:
    logits, _ = model(x)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


def sample(model: CharLSTM, data, prompt: str, length: int, temperature=0.8) -> str:
    ids = list(data.encode(prompt))
    with tg.no_grad():
        logits, state = model(np.array([ids]))  # read the prompt once
        for _ in range(length):
            scaled = logits.numpy()[0, -1] / temperature
            p = np.exp(scaled - scaled.max())
            ids.append(int(tg.get_rng().choice(len(p), p=p / p.sum())))
            logits, state = model(np.array([ids[-1:]]), state)  # then one at a time
    return data.decode(ids)


def main() -> None:
    tg.manual_seed(0)
    data = tg.data.CharDataset(tg.data.text(), block_size=BLOCK)
    train, held_out = data.split(0.1)
    model = CharLSTM(data.vocab_size, EMBED, HIDDEN)
    optimizer = tg.optim.Adam(model.parameters(), lr=5e-3)
    for step in range(1, STEPS + 1):
        loss = loss_on(model, *train.batch(32))
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # LSTMs like a bounded step
        optimizer.step()
        if step % (STEPS // 5) == 0:
            print(f"step {step:4d}  training loss {loss.item():.3f}")
    with tg.no_grad():
        starts = np.random.default_rng(0).integers(0, len(held_out), 128)
        print(f"held-out loss: {loss_on(model, *held_out.windows(starts)).item():.3f}")
    print("sample:", sample(model, data, "The ", 40 if QUICK else 200))


if __name__ == "__main__":
    main()
