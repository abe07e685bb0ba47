"""A character-level GPT, written from scratch, trained on Python's own documentation.

Causal self-attention from Tensor ops (a NumPy mask and ``tg.where``), pre-LayerNorm
blocks with a GELU MLP, a tied output head, AdamW with weight decay on matrices only,
and sampling with temperature and top-k: the model of ``tinygrad-bp train --model gpt``.

    python examples/tiny_gpt.py            # 1200 steps: held-out loss ~1.6 nats/char
    python examples/tiny_gpt.py --quick    # or TINYGRAD_BP_QUICK=1: 30 smaller steps
"""

import math
import os
import sys

import numpy as np

import tinygrad_bp as tg
from tinygrad_bp import nn
from tinygrad_bp.nn import functional as F

QUICK = os.environ.get("TINYGRAD_BP_QUICK") == "1" or "--quick" in sys.argv[1:]
STEPS, BLOCK, DIM, HEADS, LAYERS = (30, 32, 32, 2, 1) if QUICK else (1200, 64, 64, 4, 2)


class Block(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads, self.norm1, self.norm2 = heads, nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.fc, self.out = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

    def attention(self, x):
        b, t, d = x.shape  # one head: (b, heads, t, d // heads)
        qkv = self.qkv(x).reshape(b, t, 3, self.heads, d // self.heads)
        q, k, v = qkv.transpose(2, 0, 3, 1, 4)
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(d // self.heads)
        future = np.triu(np.ones((t, t), dtype=bool), k=1)  # position i sees 0..i
        weights = tg.where(future, -1e9, scores).softmax(axis=-1)
        return self.proj((weights @ v).transpose(0, 2, 1, 3).reshape(b, t, d))

    def forward(self, x):
        x = x + self.attention(self.norm1(x))
        return x + self.out(F.gelu(self.fc(self.norm2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, vocab, block, dim, heads, layers):
        super().__init__()
        self.token, self.position = nn.Embedding(vocab, dim), nn.Embedding(block, dim)
        nn.init.normal_(self.token.weight, 0.0, 0.02)
        nn.init.normal_(self.position.weight, 0.0, 0.02)
        self.blocks = nn.Sequential(*(Block(dim, heads) for _ in range(layers)))
        self.norm = nn.LayerNorm(dim)

    def forward(self, ids):
        x = self.token(ids) + self.position(np.arange(ids.shape[-1]))
        return self.norm(self.blocks(x)) @ self.token.weight.T  # tied output head


def loss_on(model, x, y):
    logits = model(x)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


def sample(model, data, prompt, length, temperature=0.8, top_k=10):
    ids = list(data.encode(prompt))
    model.eval()
    with tg.no_grad():
        for _ in range(length):
            logits = model(np.array([ids[-BLOCK:]])).numpy()[0, -1] / temperature
            logits[logits < np.sort(logits)[-top_k]] = -np.inf  # keep the top k
            p = np.exp(logits - logits.max())
            ids.append(int(tg.get_rng().choice(len(p), p=p / p.sum())))
    return data.decode(ids)


tg.manual_seed(0)
data = tg.data.CharDataset(tg.data.text(), block_size=BLOCK)
train, held_out = data.split(0.1)
model = GPT(data.vocab_size, BLOCK, DIM, HEADS, LAYERS)
decay = [p for p in model.parameters() if p.ndim >= 2]  # matrices: weights, embeddings
rest = [p for p in model.parameters() if p.ndim < 2]
groups = [{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0}]
optimizer = tg.optim.AdamW(groups, lr=3e-3)
schedule = tg.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=STEPS, eta_min=3e-4)
for step in range(1, STEPS + 1):
    loss = loss_on(model, *train.batch(16))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    schedule.step()
    if step % (STEPS // 6) == 0:
        print(f"step {step:4d}  training loss {loss.item():.3f}")

with tg.no_grad():
    starts = np.random.default_rng(0).integers(0, len(held_out), 128)
    print(f"held-out loss: {loss_on(model, *held_out.windows(starts)).item():.3f}")
print("sample:", sample(model, data, "The ", 200 if not QUICK else 40))
