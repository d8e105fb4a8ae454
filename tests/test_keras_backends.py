"""Keras 3 on its jax and tensorflow backends, each in its own process (tests/keras3_backend_check.py)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
def test_keras3_backend(backend):
    pytest.importorskip(backend)
    pytest.importorskip("keras")
    here = Path(__file__).parent
    env = dict(os.environ, KERAS_BACKEND=backend, INTEGRAD_KERAS3_CHECK=backend, TF_CPP_MIN_LOG_LEVEL="2")
    if backend == "jax":
        env["JAX_ENABLE_X64"] = "1"  # float64 Keras variables on jax
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                          str(here / "keras3_backend_check.py")], capture_output=True, text=True, env=env,
                         timeout=300, cwd=here.parent)
    tail = out.stdout[-4000:] + out.stderr[-2000:]
    assert out.returncode == 0, tail
    assert " passed" in out.stdout and "skipped" not in out.stdout and "failed" not in out.stdout, tail
