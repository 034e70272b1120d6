"""Running the ``ppml`` command, for what the SDK delegates to it (job digests, ``ppml run``,
Parquet through DuckDB). The binary is $PPML_BIN when set, else ``ppml`` on $PATH."""
import os
import shutil
import subprocess

from .errors import CommandError, PPMLError


def binary():
    p = os.environ.get("PPML_BIN")
    if p:
        if not os.access(p, os.X_OK):
            raise PPMLError(f"PPML_BIN={p} is not an executable file")
        return p
    p = shutil.which("ppml")
    if p is None:
        raise PPMLError("the ppml command is needed here and is not on PATH: build it (make build) and put "
                        "bin/ppml on PATH, or set PPML_BIN to its path")
    return p


def run(args, *, input=None, env=None, check=True, capture=True, pass_fds=(), cwd=None, timeout=None):
    """Run ``ppml ARGS``; raise CommandError (with what it printed on stderr) on a non-zero exit
    when check is true. Returns the CompletedProcess (stdout bytes)."""
    argv = [binary()] + [os.fspath(a) for a in args]
    r = subprocess.run(argv, input=input, env=env, cwd=cwd, pass_fds=pass_fds, timeout=timeout,
                       stdout=subprocess.PIPE if capture else None, stderr=subprocess.PIPE if capture else None)
    if check and r.returncode != 0:
        err = r.stderr.decode("utf-8", "replace") if r.stderr else ""
        raise CommandError(["ppml"] + argv[1:], r.returncode, err)
    return r
