"""Every script in examples/ runs end to end on a tiny problem."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

TINY_ARGS = {
    "dynamic_ct.py": ["--frames", "16", "--size", "32", "--max-iter", "2"],
    "dynamic_mri.py": ["--frames", "16", "--size", "32", "--max-iter", "2"],
    "train_denoiser_on_my_images.py": ["--epochs", "1", "--size", "32", "--output", "tiny.pt"],
    "callback_and_cancel.py": ["--frames", "16", "--size", "32"],
    "raw_ct.py": ["--frames", "16", "--size", "32", "--max-iter", "2"],
}


def test_every_example_is_covered():
    assert sorted(p.name for p in (ROOT / "examples").glob("*.py")) == sorted(TINY_ARGS)


@pytest.mark.parametrize("script", sorted(TINY_ARGS))
def test_example_runs(script, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    completed = subprocess.run(
        [sys.executable, str(ROOT / "examples" / script), *TINY_ARGS[script]],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.strip()
