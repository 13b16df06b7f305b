"""The file vault benchmark still runs (its quick mode), so it cannot rot unnoticed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_file_vault_benchmark_runs_in_quick_mode() -> None:
    # given the benchmark's own data folder and SQLite database (never the tests' ones)
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}

    # when its quick mode runs through a real server, a worker and a clamd
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.file_vault", "--quick"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=600,
        check=False,
    )

    # then it prints every figure of its table
    output = done.stdout.decode()
    assert done.returncode == 0, output + done.stderr.decode()[-3000:]
    for line in (
        "vault upload",
        "vault scan (worker)",
        "vault download",
        "plain upload",
        "plain download",
        "vault/plain upload",
        "vault/plain download",
        "vault server",
        "vault scan worker",
        "plain server",
    ):
        assert line in output, output
