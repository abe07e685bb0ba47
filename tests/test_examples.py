"""Every script in examples/ runs in quick mode, exits 0 and prints its key line."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUICK_ENV = {
    **os.environ,
    "TINYGRAD_BP_QUICK": "1",
    "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
}


def run_quick(*command: str) -> str:
    result = subprocess.run(
        [sys.executable, *command],
        cwd=ROOT,
        env=QUICK_ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_seed_by_hand():
    out = run_quick("examples/seed_by_hand.py")
    found = re.search(
        r"^largest difference between hand-written and generated gradients: (\S+)$",
        out,
        re.M,
    )
    assert float(found[1]) < 1e-12
    assert "20 steps" in out


def test_digits_classifier():
    out = run_quick("examples/digits_classifier.py")
    skipped = re.search(r"^skipped: .*pip install 'tinygrad_bp\[data\]'", out, re.M)
    if not skipped:
        trained = re.search(r"^test accuracy: (\S+)$", out, re.M)
        reloaded = re.search(r"^reloaded from .*: (\S+)$", out, re.M)
        assert (
            float(trained[1]) > 0.5
        )  # two quick epochs of 10 classes, far above chance
        assert reloaded[1] == trained[1]


def test_residual_mlp():
    out = run_quick("examples/residual_mlp.py", "--quick")
    assert "label-smoothed cross-entropy: gradcheck passed" in out
    assert "(blocks): Sequential(" in out
    accuracy = float(re.search(r"^test accuracy: (\S+)$", out, re.M)[1])
    assert accuracy > 0.5  # three classes: chance is 1/3


def test_property_test_as_a_script():
    out = run_quick("examples/property_test.py")
    assert out.splitlines()[-1] == "all 4 property tests passed"


def test_property_test_under_pytest():
    out = run_quick(
        "-m", "pytest", "examples/property_test.py", "-q", "-p", "no:cacheprovider"
    )
    assert re.search(r"^4 passed", out, re.M)


def test_tiny_gpt():
    out = run_quick("examples/tiny_gpt.py")
    held_out = float(re.search(r"^held-out loss: (\S+)$", out, re.M)[1])
    assert held_out < 4.0  # 30 quick steps from log(vocab_size) ~ 4.6 nats
    assert re.search(r"^sample: The .{40}", out, re.M | re.S)
    lines = (ROOT / "examples" / "tiny_gpt.py").read_text().splitlines()
    assert len(lines) < 100  # the whole model, trained and sampled, in one short file


def test_char_lstm():
    out = run_quick("examples/char_lstm.py")
    held_out = float(re.search(r"^held-out loss: (\S+)$", out, re.M)[1])
    assert held_out < 4.0  # 20 quick steps from log(vocab_size) ~ 4.6 nats
    assert re.search(r"^sample: The .{40}", out, re.M | re.S)


def test_digits_cnn():
    out = run_quick("examples/digits_cnn.py")
    skipped = re.search(r"^skipped: .*pip install 'tinygrad_bp\[data\]'", out, re.M)
    if not skipped:
        accuracy = float(re.search(r"^test accuracy: (\S+)$", out, re.M)[1])
        assert accuracy > 0.25  # two quick epochs of 10 classes: chance is 0.1
