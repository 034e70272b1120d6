"""Fixtures of the Python SDK tests: the repository, the Go binaries built for this run (ppml
and the gointerop helper), and real key services on 127.0.0.1."""
import json
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "python"))


@pytest.fixture(scope="session")
def repo():
    return REPO


# What the tests run: the CLI and the runtime without the dl engine (no test runs a dl job;
# linking libtorch into ppml-run took a good part of this suite's time).
BINARIES = ("ppml", "ppml-run")


@pytest.fixture(scope="session")
def bindir(tmp_path_factory):
    """ppml and ppml-run: from $PPML_BIN's directory when set (make test builds them just before,
    from this checkout, and sets it), else built from this checkout."""
    given = os.environ.get("PPML_BIN")
    d = tmp_path_factory.mktemp("bin")
    if given:
        for name in BINARIES:
            os.symlink(os.path.join(os.path.dirname(os.path.abspath(given)), name), d / name)
    else:
        _go(["build", "-o", str(d / "ppml"), "./cmd/ppml"])
        _go(["build", "-tags", "ppml_no_dl", "-o", str(d / "ppml-run"), "./cmd/ppml-run"])
    _go(["build", "-o", str(d / "gointerop"), "./python/tests/gointerop"])
    return d


def _go(args):
    go = shutil.which("go")
    if go is None:
        pytest.skip("the go toolchain is needed to build ppml for the cross-implementation tests")
    subprocess.run([go] + args, cwd=REPO, check=True)


@pytest.fixture(scope="session")
def ppml_bin(bindir):
    p = str(bindir / "ppml")
    os.environ["PPML_BIN"] = p  # what ppml.cli uses
    return p


@pytest.fixture(scope="session")
def gointerop(bindir):
    path = str(bindir / "gointerop")

    def run(*args, check=True):
        r = subprocess.run([path] + [str(a) for a in args], capture_output=True, check=False)
        if check and r.returncode != 0:
            raise AssertionError(f"gointerop {args[0]}: {r.stderr.decode()}")
        return [json.loads(line) for line in r.stdout.decode().splitlines() if line.strip()]

    return run


class Server:
    """A real `ppml server` on 127.0.0.1 with a file seal, in its own data directory."""

    def __init__(self, ppml_bin, workdir, sim_pub=None):
        self.dir = workdir
        self.data = os.path.join(workdir, "kms")
        self.log = os.path.join(workdir, "server.out")
        args = [ppml_bin, "server", "--data-dir", self.data, "--listen", "127.0.0.1:0"]
        if sim_pub:
            args += ["--sim-key", sim_pub]
        self._out = open(self.log, "wb")
        self.proc = subprocess.Popen(args, stdout=self._out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        text = ""
        while time.monotonic() < deadline:
            text = open(self.log, encoding="utf-8", errors="replace").read()
            if "fingerprint:" in text and "listening on" in text:
                break
            if self.proc.poll() is not None:
                raise AssertionError(f"ppml server exited: {text}")
            time.sleep(0.05)
        else:
            self.stop()
            raise AssertionError(f"ppml server did not start: {text}")
        self.url = re.search(r"listening on (https://\S+)", text).group(1)
        self.port = int(self.url.rsplit(":", 1)[1])
        self.fingerprint = re.search(r"fingerprint: ([0-9a-f:]+)", text).group(1)
        self.admin_token = re.search(r"(ppml_\S+)", text).group(1)

    def service(self, token):
        import ppml
        return ppml.KeyService(self.url, token=token, fingerprint=self.fingerprint)

    def env(self, token):
        e = dict(os.environ)
        e.update(PPML_SERVER=self.url, PPML_SERVER_FINGERPRINT=self.fingerprint, PPML_TOKEN=token)
        return e

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()


@pytest.fixture(scope="session")
def sim_dir(tmp_path_factory, ppml_bin):
    """A simulation platform key made for this run (never the user's PPML_SIM_DIR)."""
    d = tmp_path_factory.mktemp("sim")
    env = dict(os.environ, PPML_SIM_DIR=str(d))
    subprocess.run([ppml_bin, "attest", "evidence", "--tee", "sim", "--report-data", "00", "-o", str(d / "ev.json")],
                   env=env, check=True, capture_output=True)
    return d


@pytest.fixture(scope="session")
def server(tmp_path_factory, ppml_bin, sim_dir):
    s = Server(ppml_bin, str(tmp_path_factory.mktemp("kms")), sim_pub=str(sim_dir / "platform.pub"))
    yield s
    s.stop()


@pytest.fixture(scope="session")
def owner(server):
    """A tenant 'hospital' (owner) with its token, and a runner token."""
    import ppml
    admin = server.service(server.admin_token)
    admin.create_tenant("hospital", "owner")
    admin.create_tenant("runner", "runner")
    tok = admin.create_token("hospital", "python sdk tests").token
    run = admin.create_token("runner").token
    return {"admin": admin, "token": tok, "runner_token": run, "svc": server.service(tok)}
