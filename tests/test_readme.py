"""The README's example and commands stay true."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_readme_python_example_runs(tmp_path):
    (block,) = re.findall(r"```python\n(.*?)```", README, re.S)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run(
        [sys.executable, "-c", block], check=True, cwd=tmp_path, env=env, timeout=120
    )


def test_ci_runs_the_readme_test_command():
    commands = re.search(r"```bash\n(.*?)```", README, re.S).group(1).splitlines()
    assert len(commands) == 2 and "tinygrad-bp train" in commands[0]
    test_command = commands[1].split("&& ", 3)[-1]  # after the venv set-up
    assert test_command in (ROOT / ".ci" / "run").read_text()
