"""Every benchmark script still runs: each on tiny sizes, in a fresh interpreter, as a user would.

The figures they print are not checked here (speed claims live in benchmarks/RESULTS.md); this
only keeps the scripts from rotting when the package they time changes.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

TINY = {
    "lgm_before_after.py": ["--tiny", "--before", str(ROOT)],  # this tree against itself
    "lgm_vs_sklearn.py": ["--tiny"],
    "lgm_dask.py": ["--tiny"],
    "lgm_missing.py": ["--tiny"],
    "mixture_fa.py": ["--quick"],
    "nlgm_posteriors.py": ["--seeds", "0", "--epochs", "2"],
    "nlgm_fit_vs_loop.py": ["--rows", "256", "--repeats", "1", "--batch-sizes", "128",
                            "--threads", "1", "--device", "cpu"],
    "vae_vs_lgm.py": ["--threads", "1", "--latent", "2", "--importance", "10", "--epochs", "2"],
}


def test_every_script_has_tiny_arguments():
    assert sorted(TINY) == sorted(p.name for p in (ROOT / "benchmarks").glob("*.py"))


@pytest.mark.slow  # a fresh interpreter that imports scikit-learn, dask or torch: 5-25 s each
@pytest.mark.parametrize("script", sorted(TINY))
def test_benchmark_runs_on_tiny_sizes(script):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *TINY[script]],
                            capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.strip()
