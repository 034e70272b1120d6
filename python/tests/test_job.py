"""Job digests agree with `ppml job digest` on every manifest in the repository; ppml.run runs
an exec job whose Python program finds its in-memory inputs and outputs with ppml.inputs() and
ppml.outputs()."""
import glob
import hashlib
import json
import os
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

import ppml
from ppml import jcs, jobenv


def repo_manifests(repo):
    """Every job manifest file in the repository, and every complete manifest in the docs."""
    files = []
    for p in glob.glob(os.path.join(repo, "**", "*.y*ml"), recursive=True):
        if "/.git/" in p or "/node_modules/" in p:
            continue
        if re.search(r"^engine: ", open(p, encoding="utf-8", errors="replace").read(), re.M):
            files.append(("file", p))
    for p in glob.glob(os.path.join(repo, "docs", "**", "*.md"), recursive=True):
        for i, block in enumerate(re.findall(r"```yaml\n(.*?)```", open(p, encoding="utf-8").read(), re.S)):
            if re.search(r"^engine: ", block, re.M) and re.search(r"^name: ", block, re.M):
                files.append((f"{os.path.relpath(p, repo)} block {i}", block))
    return files


def test_digest_equals_cli_on_every_manifest(repo, ppml_bin, tmp_path):
    ms = repo_manifests(repo)
    assert len([m for m in ms if m[0] == "file"]) >= 15
    paths = []
    for i, (name, m) in enumerate(ms):
        path = m
        if name != "file":  # manifests given as text are written next to base_dir
            path = tmp_path / f"doc{i}.yaml"
            path.write_text(m)
        paths.append(path)
    # One ppml process per manifest, a few at a time: the runs are independent.
    with ThreadPoolExecutor(max_workers=4) as pool:
        runs = list(pool.map(lambda p: subprocess.run([ppml_bin, "job", "digest", "--manifest", p, "--json"],
                                                      capture_output=True, text=True), paths))
    valid = 0
    for (name, m), path, r in zip(ms, paths, runs):
        if r.returncode != 0:
            # A snippet with placeholders: Python reports it invalid too, with ppml's problems.
            assert name != "file", f"{m}: {r.stderr}"
            with pytest.raises(ppml.ManifestError) as ei:
                ppml.job.digest(m, base_dir=tmp_path)
            assert ei.value.problems
            continue
        valid += 1
        go = json.loads(r.stdout)
        if name == "file":
            got = ppml.job.digest(path)
        else:
            got = ppml.job.digest(m, base_dir=tmp_path)
        assert got == go["digest"], name
        # Independently: the canonical value Go reports, serialized by Python's RFC 8785 encoder.
        assert ppml.job.digest_of(go["canonical"]) == go["digest"], name
    assert valid >= 15


def test_golden_canonical_form(repo):
    d = os.path.join(repo, "job", "testdata")
    canon = open(os.path.join(d, "golden.canonical.json"), "rb").read().rstrip(b"\n")
    want = open(os.path.join(d, "golden.digest")).read().strip()
    assert jcs.dumps(jcs.loads(canon)) == canon
    assert ppml.job.digest_of(json.loads(canon)) == want
    assert ppml.job.digest(os.path.join(d, "golden-reformatted.yaml")) == want


def test_jcs():
    v = {"b": [1, "x\u2028\x7f\x01\b\f\n\r\t\"\\é😀"], "a": {"é": True, "e": None, "\U0001f600": 1, "\uffff": 2}}
    assert jcs.dumps(v) == '{"a":{"e":null,"é":true,"😀":1,"\uffff":2},"b":[1,"x\u2028\x7f\\u0001\\b\\f\\n\\r\\t\\"\\\\é😀"]}'.encode()
    for bad in ({"f": 1.5}, {"n": 1 << 53}, {1: 2}, {"s": "\ud800"}):
        with pytest.raises(ValueError):
            jcs.dumps(bad)
    assert ppml.job.parse_digest("sha256:" + "ab" * 32) == bytes.fromhex("ab" * 32)
    for bad in ("sha256:" + "AB" * 32, "ab" * 32, "sha256:abc"):
        with pytest.raises(ValueError):
            ppml.job.parse_digest(bad)


def test_invalid_manifest(ppml_bin, tmp_path):
    with pytest.raises(ppml.ManifestError) as ei:
        ppml.job.digest({"name": "x", "engine": "exec", "parameters": {"command": []}, "bogus": 1}, base_dir=tmp_path)
    assert any("parameters.command: must not be empty" in p for p in ei.value.problems)
    assert any("bogus: unknown field" in p for p in ei.value.problems)
    with pytest.raises(ppml.ManifestError, match="no such file"):
        ppml.job.digest(tmp_path / "missing.yaml")
    assert os.listdir(tmp_path) == []  # the temporary manifest is gone


def test_jobenv():
    env = {"PPML_INPUT_PEOPLE": "/proc/self/fd/3", "PPML_OUTPUT_SUMMARY": "/proc/self/fd/4", "HOME": "/x"}
    assert jobenv.inputs(env)["people"] == jobenv.inputs(env)["PEOPLE"] == "/proc/self/fd/3"
    assert dict(jobenv.outputs(env)) == {"SUMMARY": "/proc/self/fd/4"}
    assert "people" in jobenv.inputs(env) and jobenv.in_job(env) and not jobenv.in_job({"HOME": "/x"})
    with pytest.raises(KeyError, match="no job input named 'visits'.*people"):
        jobenv.inputs(env)["visits"]


PROGRAM = """
import sys
import pandas as pd
import ppml
assert sys.modules.get("cryptography") is None  # ppml.inputs() needs only the standard library
people = pd.read_csv(ppml.inputs()["people"])
out = people.groupby("city", as_index=False).agg(n=("name", "count"), mean_age=("age", "mean"))
out.to_csv(ppml.outputs()["summary"], index=False)
print("rows", len(people))
"""


def test_run_exec_job(repo, ppml_bin, tmp_path):
    k = ppml.LocalKey.generate(tmp_path / "owner.key")
    import pandas as pd
    people = pd.DataFrame({"name": ["Ann", "Bob", "Cy", "Dee"], "age": [30, 40, 50, 20], "city": ["B", "A", "B", "A"]})
    ppml.to_csv(people, tmp_path / "people.csv.ppml", key=k, index=False)
    (tmp_path / "out").mkdir()
    manifest = {
        "name": "people-by-city", "engine": "exec",
        "inputs": {"people": "people.csv.ppml"},
        "outputs": {"summary": {"path": "out/summary.csv.ppml", "key": f"local:{k.key_id}", "content_type": "text/csv"}},
        "parameters": {"command": ["/usr/bin/python3", "-c", PROGRAM],
                       "env": [f"PYTHONPATH={os.path.join(repo, 'python')}", "PYTHONDONTWRITEBYTECODE=1"]},
        "resources": {"memory": "512MiB", "threads": 1},
    }
    res = ppml.run(manifest, keys=[k], base_dir=tmp_path, capture_output=True)
    assert res.ok and res.name == "people-by-city" and res.digest == ppml.job.digest(manifest, base_dir=tmp_path)
    assert b"rows 4" in res.stdout and "no key service" in res.stderr.decode()
    got = ppml.read_csv(tmp_path / "out" / "summary.csv.ppml", keys=k)
    assert got.to_dict("list") == {"city": ["A", "B"], "n": [2, 2], "mean_age": [30.0, 40.0]}
    # A failing program: non-zero status, CommandError, no output written.
    os.unlink(tmp_path / "out" / "summary.csv.ppml")
    manifest["parameters"]["command"] = ["/usr/bin/python3", "-c", "import sys; sys.exit(3)"]
    with pytest.raises(ppml.CommandError) as ei:
        ppml.run(manifest, keys=[k], base_dir=tmp_path, capture_output=True)
    assert ei.value.returncode == 3
    assert ppml.run(manifest, keys=[k], base_dir=tmp_path, capture_output=True, check=False).exit_code == 3
    assert os.listdir(tmp_path / "out") == []
