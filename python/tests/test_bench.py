"""python3 -m ppml.bench runs and reports both sides (speed is measured, never asserted)."""
import json
import subprocess
import sys

import pytest


def test_bench_json(repo, ppml_bin, tmp_path):
    r = subprocess.run([sys.executable, "-m", "ppml.bench", "--size", "3MiB", "--rounds", "1", "--json", "--dir",
                        tmp_path], capture_output=True, text=True, cwd=f"{repo}/python", check=True)
    res = json.loads(r.stdout)
    assert res["size_bytes"] == 3 << 20 and res["go_seconds"] > 0 and res["python_seconds"] > 0
    assert res["ratio"] == pytest.approx(res["go_seconds"] / res["python_seconds"], rel=1e-2)
    assert list(tmp_path.iterdir()) == []  # nothing left behind
    r = subprocess.run([sys.executable, "-m", "ppml.bench", "--size", "3 parsecs"], capture_output=True, text=True,
                       cwd=f"{repo}/python")
    assert r.returncode == 2 and "size '3 parsecs'" in r.stderr
