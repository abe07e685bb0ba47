"""Train a two-layer network on XOR-like data with raw tensors (no nn, no optim)."""

import tinygrad_bp as tg

tg.manual_seed(0)
X = tg.randn(64, 2)
y = (X[:, 0] * X[:, 1] > 0).astype("float32").reshape(64, 1)  # XOR-like labels
w1, b1 = tg.randn(2, 16, requires_grad=True), tg.zeros(16, requires_grad=True)
w2, b2 = tg.randn(16, 1, requires_grad=True), tg.zeros(1, requires_grad=True)
for _ in range(300):
    p = ((X @ w1 + b1).tanh() @ w2 + b2).sigmoid()
    loss = ((p - y) ** 2).mean()
    for t in (w1, b1, w2, b2):
        t.grad = None
    loss.backward()
    with tg.no_grad():
        for t in (w1, b1, w2, b2):
            t.data -= 0.5 * t.grad.data
print(f"final loss {loss.item():.4f}")
