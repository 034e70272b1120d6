"""Job manifests: the job identity (digest) and running jobs through ``ppml run``.

The digest is SHA-256 of the manifest's canonical form (docs/jobs.md): RFC 8785 JSON of the
manifest with every default explicit, including each engine's parameters. Those parameters
are parsed and defaulted by each engine's Go spec (exec, sql, ml, and engines to come); a
second implementation of every spec in Python would drift the first time an engine gained a
parameter. So ``digest()`` asks the ``ppml`` CLI for the canonical bytes (``ppml job digest
--canonical``: the same code the key service runs), then checks in Python that they are RFC
8785 JSON and hashes them itself. ``digest_of(value)`` hashes a canonical value built by hand.
"""
import contextlib
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field

from . import cli, jcs
from .errors import CommandError, ManifestError, PPMLError

DIGEST_PREFIX = "sha256:"
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


@contextlib.contextmanager
def _manifest_file(manifest, base_dir=None):
    """A path for the manifest: a path stays as it is; YAML text (str/bytes) or a dict
    (written as JSON, which is YAML) goes to a hidden temporary file in base_dir (default: the
    working directory), since relative paths in a manifest are relative to its directory."""
    if isinstance(manifest, os.PathLike) or isinstance(manifest, str) and "\n" not in manifest and \
            not manifest.lstrip().startswith("{"):
        yield os.fspath(manifest)
        return
    if isinstance(manifest, dict):
        manifest = json.dumps(manifest)
    if isinstance(manifest, str):
        manifest = manifest.encode("utf-8")
    fd, p = tempfile.mkstemp(prefix=".ppml-job-", suffix=".yaml", dir=base_dir or os.getcwd())
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(manifest)
        yield p
    finally:
        os.unlink(p)


def _problems(e, path):
    lines = e.stderr.splitlines()
    if lines and "invalid job manifest" in lines[0]:
        return ManifestError(path, [line.strip() for line in lines[1:] if line.strip()])
    return ManifestError(path, [e.stderr.strip().removeprefix("ppml: ")])


def canonical(manifest, base_dir=None):
    """The canonical form of a manifest (a path, YAML text or a dict): the bytes that are
    hashed. Raises ManifestError listing every problem ppml found."""
    with _manifest_file(manifest, base_dir) as path:
        try:
            out = cli.run(["job", "digest", "--manifest", path, "--canonical"]).stdout
        except CommandError as e:
            raise _problems(e, path) from None
    try:
        if jcs.dumps(jcs.loads(out)) != out:
            raise ValueError("not in RFC 8785 form")
    except ValueError as e:
        raise PPMLError(f"ppml job digest --canonical printed bytes that are not canonical JSON: {e}") from None
    return out


def digest(manifest, base_dir=None):
    """The job identity ``sha256:<64 hex>``, equal to ``ppml job digest`` (docs/jobs.md)."""
    return DIGEST_PREFIX + hashlib.sha256(canonical(manifest, base_dir)).hexdigest()


def canonical_value(manifest, base_dir=None):
    """The canonical form as a Python value (dict)."""
    return json.loads(canonical(manifest, base_dir))


def digest_of(value):
    """The digest of a canonical value (a dict in the shape docs/jobs.md defines), serialized
    here with RFC 8785; use it to recompute a digest from an approved canonical form."""
    return DIGEST_PREFIX + hashlib.sha256(jcs.dumps(value)).hexdigest()


def parse_digest(s):
    """Check ``sha256:<64 lower-case hex>`` (as policies list jobs); return the 32 bytes."""
    if not isinstance(s, str) or not _DIGEST.fullmatch(s):
        raise ValueError(f"job digest {str(s)[:80]!r}: want sha256: followed by 64 lower-case hex digits")
    return bytes.fromhex(s[len(DIGEST_PREFIX):])


def validate(manifest, base_dir=None):
    """All checks of ``ppml job validate`` (structure and files). Returns the digest; raises
    ManifestError with ppml's problems (``line N: field: message``)."""
    with _manifest_file(manifest, base_dir) as path:
        r = cli.run(["job", "validate", "--manifest", path, "--json"], check=False)
        try:
            doc = json.loads(r.stdout)
        except ValueError:
            raise _problems(CommandError(["ppml", "job", "validate"], r.returncode, r.stderr.decode()), path) from None
        if not doc.get("valid"):
            raise ManifestError(path, [f"line {p['line']}: {p['field']}: {p['message']}" if p.get("line") else
                                       f"{p.get('field', '')}: {p['message']}" for p in doc.get("problems", [])])
        return doc["digest"]


@dataclass
class RunResult:
    """What ``ppml run --json`` reports, plus the program's output when captured."""

    exit_code: int
    name: str = ""
    digest: str = ""
    outputs: list = field(default_factory=list)
    stdout: bytes = b""
    stderr: bytes = b""

    @property
    def ok(self):
        return self.exit_code == 0


def run(manifest, *, server=None, token=None, tee=None, keys=(), server_fingerprint=None, ca_file=None,
        grace=None, capture_output=False, check=True, env=None, timeout=None, base_dir=None):
    """Run a job with ``ppml run`` (docs/jobs.md, "ppml run"): a thin wrapper over the CLI.

    ``server``/``token``/``server_fingerprint``/``ca_file`` select the key service (defaults:
    the PPML_* environment, as the CLI reads it); ``tee`` is auto, sim, gramine or tsm; ``keys``
    are local key files for local:/file: keys (development only). The program's standard
    output and error pass through unless ``capture_output``. A manifest given as text or a
    dict is written to a hidden temporary file in ``base_dir`` (default: the working
    directory), against which its relative paths resolve. Returns a RunResult; with
    ``check``, a non-zero exit raises CommandError (the job's outputs are then not written).
    """
    args = ["run", "--json"]
    if server:
        args += ["--server", server]
    if token:
        args += ["--token", token]
    if server_fingerprint:
        args += ["--server-fingerprint", server_fingerprint]
    if ca_file:
        args += ["--ca-file", os.fspath(ca_file)]
    if tee:
        args += ["--tee", tee]
    for k in ([keys] if isinstance(keys, (str, os.PathLike)) else keys):
        args += ["--key", os.fspath(getattr(k, "path", None) or k)]
    if grace is not None:
        args += ["--grace", f"{float(grace)}s"]
    with _manifest_file(manifest, base_dir) as path:
        argv = [cli.binary()] + args + ["--manifest", path]
        body, last, stderr, code = _run_streaming(argv, env, timeout, capture_output)
    summary = {}
    try:
        summary = json.loads(last) if last else {}
        if not isinstance(summary, dict) or "exit_code" not in summary:
            raise ValueError
    except ValueError:
        if not capture_output and last:
            sys.stdout.buffer.write(last)
            sys.stdout.flush()
        body, summary = body + last, {}
    res = RunResult(exit_code=summary.get("exit_code", code), name=summary.get("name", ""),
                    digest=summary.get("digest", ""), outputs=summary.get("outputs") or [],
                    stdout=body if capture_output else b"", stderr=stderr)
    if check and code != 0:
        err = stderr.decode("utf-8", "replace")
        if "invalid job manifest" in err:
            raise _problems(CommandError(argv, code, err), path)
        raise CommandError(["ppml"] + args + ["--manifest", path], code,
                           err or f"the job exited with status {code}")
    return res


def _run_streaming(argv, env, timeout, capture):
    """Run ppml run --json, passing the program's output through as it comes and keeping the
    launcher's JSON summary, which ends standard output (it may span several lines): lines
    from the last one that starts with "{" are held back until the next such line or the end.
    Returns (program output if captured, the held candidate, stderr, exit code)."""
    p = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE if capture else None)
    body, held = [], []

    def emit(lines):
        if capture:
            body.extend(lines)
        elif lines:
            sys.stdout.buffer.write(b"".join(lines))
            sys.stdout.flush()

    try:
        for line in iter(p.stdout.readline, b""):
            if line.startswith(b"{"):
                emit(held)
                held = [line]
            elif held:
                held.append(line)
            else:
                emit([line])
        stderr = p.stderr.read() if capture else b""
        code = p.wait(timeout)
    except BaseException:
        p.kill()
        p.wait()
        raise
    return b"".join(body), b"".join(held), stderr, code
