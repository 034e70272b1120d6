"""Inside an exec job: the program's inputs and outputs by name.

``ppml run`` hands an exec program each input as ``PPML_INPUT_<NAME>`` and each output as
``PPML_OUTPUT_<NAME>`` (the manifest's name upper-cased): paths in memory (docs/jobs.md, "The
exec engine at run time"). An input is a read-only file (a directory of them for a directory
input): open it by path as often as needed; each open starts at offset 0. An output is a named
pipe: open it once and write it from start to end. This module needs only the standard library,
so a job that pins its code (parameters.files) pins little.
"""
import os

_IN, _OUT = "PPML_INPUT_", "PPML_OUTPUT_"


class Paths(dict):
    """name -> path. Names are looked up case-insensitively (the environment only knows them
    upper-cased, and the manifest forbids two names that differ only in case)."""

    def __missing__(self, name):
        up = str(name).upper()
        if up in self.keys():
            return dict.__getitem__(self, up)
        known = ", ".join(sorted(k.lower() for k in self)) or "none"
        raise KeyError(f"no job {self.kind} named {name!r} (this job has: {known}; is the program running under "
                       f"ppml run with the exec engine?)")

    def __contains__(self, name):
        return dict.__contains__(self, str(name).upper())


def _collect(prefix, kind, environ):
    p = Paths()
    p.kind = kind
    for k, v in (environ if environ is not None else os.environ).items():
        if k.startswith(prefix) and len(k) > len(prefix):
            dict.__setitem__(p, k[len(prefix):], v)
    return p


def inputs(environ=None):
    """The job's inputs: {NAME: path}, looked up case-insensitively (``inputs()["people"]``)."""
    return _collect(_IN, "input", environ)


def outputs(environ=None):
    """The job's outputs: {NAME: path}; write each by path. They are encrypted and written only
    if the program exits 0."""
    return _collect(_OUT, "output", environ)


def in_job(environ=None):
    """Whether this process runs as an exec job program (it has inputs or outputs)."""
    env = environ if environ is not None else os.environ
    return any(k.startswith((_IN, _OUT)) for k in env)
