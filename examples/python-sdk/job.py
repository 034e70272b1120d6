"""The data scientist's side: write the job manifest, then run it (ppml run, exec engine).

    python3 job.py manifest   # writes job.yaml in the working directory
    python3 job.py run        # runs it in the simulated TEE with the runner token

Environment: PPML_SERVER and PPML_SERVER_FINGERPRINT (the key service), RUNNER_TOKEN (a runner
tenant's token, for `run`). The job reads patients.csv.ppml and writes out/summary.csv.ppml.
"""
import hashlib
import os
import sys
from urllib.parse import urlparse

import ppml

HERE = os.path.dirname(os.path.abspath(__file__))
SDK = os.path.dirname(os.path.abspath(ppml.__file__))


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def manifest():
    u = urlparse(os.environ["PPML_SERVER"])
    kms = f"kms://{u.hostname}:{u.port}"
    program = os.path.join(HERE, "analysis.py")
    # Everything the program executes from files is pinned by content: the script, and the two
    # SDK modules `import ppml; ppml.inputs()` loads. PYTHONPYCACHEPREFIX points Python's
    # bytecode cache at a directory that does not exist, so a .pyc planted next to a pinned
    # source can never run instead of it.
    pinned = [program, os.path.join(SDK, "__init__.py"), os.path.join(SDK, "jobenv.py")]
    files = "".join(f"    - {{path: {p}, sha256: {sha256(p)}}}\n" for p in pinned)
    text = f"""# Written by job.py: mean cost per diagnosis, groups of at least 5 visits.
name: patients-by-diagnosis-py
engine: exec
inputs:
  patients:
    path: patients.csv.ppml
    key: {kms}/hospital/patients
outputs:
  summary:
    path: out/summary.csv.ppml
    key: {kms}/hospital/results
    content_type: text/csv
parameters:
  command: [/usr/bin/python3, -s, {program}]
  env:
    - PYTHONPATH={os.path.dirname(SDK)}
    - PYTHONPYCACHEPREFIX=/nonexistent/ppml-no-bytecode
    - OPENBLAS_NUM_THREADS=1
  files:
{files}resources:
  memory: 512MiB
  threads: 1
"""
    with open("job.yaml", "w") as f:
        f.write(text)
    print(f"wrote job.yaml, digest {ppml.job.digest('job.yaml')}")


def run():
    os.makedirs("out", exist_ok=True)
    res = ppml.run("job.yaml", tee="sim", token=os.environ["RUNNER_TOKEN"])
    print(f"job {res.name} ({res.digest}) exited {res.exit_code}; wrote {', '.join(res.outputs)}")


if __name__ == "__main__":
    {"manifest": manifest, "run": run}[sys.argv[1] if len(sys.argv) > 1 else "?"]()
