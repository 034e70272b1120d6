"""pandas DataFrames from and to encrypted files (what BigDL's PPMLContext read and wrote).

CSV and JSON are parsed and written by pandas, in memory: ``read_csv(path, keys=...)`` streams
the authenticated plaintext into pandas.read_csv; ``to_csv(df, path, key=...)`` renders the
frame in memory and writes it as one envelope, atomically, with its length recorded. Extra
keyword arguments go to pandas unchanged.

Debian 12 packages no Parquet library for Python (no pyarrow, no fastparquet), so Parquet goes
through the ``ppml`` CLI and its DuckDB engine: the envelope is re-encrypted in memory under a
one-time key that never touches the disk (a memfd passed to ``ppml sql``), DuckDB reads it and
prints JSON lines that pandas reads (``read_parquet``), or reads JSON lines pandas wrote and
writes Parquet (``to_parquet``). Column types therefore follow DuckDB's JSON mapping (integers,
doubles, booleans, strings, NULL; timestamps as ISO text), not the full Parquet type system.
"""
import io
import os
import tempfile

from . import cli, envelope, keys as keymod
from .errors import CommandError, PPMLError

_PARQUET_MEDIA = "application/vnd.apache.parquet"


def _pd():
    try:
        import pandas
    except ImportError:
        raise PPMLError("DataFrames need pandas (Debian: apt-get install python3-pandas)") from None
    return pandas


def read_csv(path, keys, **kwargs):
    """pandas.read_csv of an encrypted CSV file."""
    with envelope.open(path, keys=keys) as f:
        return _pd().read_csv(f, **kwargs)


def read_json(path, keys, **kwargs):
    """pandas.read_json of an encrypted JSON file (``lines=True`` for JSON lines)."""
    with envelope.open(path, "r", keys=keys) as f:
        return _pd().read_json(f, **kwargs)


def _write(data, path, key, content_type, overwrite):
    with envelope.create(path, key=key, content_type=content_type, size=len(data), overwrite=overwrite) as w:
        w.write(data)
    return w.header


def to_csv(df, path, key, overwrite=False, **kwargs):
    """Write df as an encrypted CSV file (pandas.DataFrame.to_csv options in kwargs)."""
    return _write(df.to_csv(**kwargs).encode(kwargs.get("encoding") or "utf-8"), path, key, "csv", overwrite)


def to_json(df, path, key, overwrite=False, **kwargs):
    """Write df as an encrypted JSON file (pandas.DataFrame.to_json options in kwargs)."""
    return _write(df.to_json(**kwargs).encode("utf-8"), path, key, "json", overwrite)


class _OneTimeKey:
    """A fresh local key that lives in memory only: its key file is a memfd the child ppml
    process opens as /proc/self/fd/N."""

    def __init__(self):
        import secrets
        self._secret = secrets.token_bytes(32)
        self.key = keymod.LocalKey(self._secret)
        self.fd = os.memfd_create("ppml-one-time-key", os.MFD_CLOEXEC)
        os.fchmod(self.fd, 0o600)
        os.write(self.fd, f"{keymod.KEY_FILE_PREFIX}{self._secret.hex()}\n".encode())
        self.path = f"/proc/self/fd/{self.fd}"

    def close(self):
        os.close(self.fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _reencrypt(src, src_keys, dst, dst_key, content_type):
    """Copy the plaintext of envelope src into a new envelope dst, in memory, segment by segment."""
    with envelope.open(src, keys=src_keys) as f:
        with envelope.create(dst, key=dst_key, content_type=content_type, size=f.size, overwrite=True) as w:
            f.copy_to(w)


def read_parquet(path, keys, query=None, **kwargs):
    """A DataFrame from an encrypted Parquet file, through ``ppml sql`` (DuckDB).

    ``query`` (default ``SELECT * FROM t``) runs over the file as table ``t``; kwargs go to
    pandas.read_json (which parses DuckDB's JSON lines)."""
    pd = _pd()
    with tempfile.TemporaryDirectory(prefix="ppml-parquet-") as tmp, _OneTimeKey() as otk:
        staged = os.path.join(tmp, "t.parquet.ppml")  # encrypted under the one-time key
        _reencrypt(path, keys, staged, otk.key, "parquet")
        try:
            r = cli.run(["sql", "--input", f"t={staged}", "--key", otk.path, "--json",
                         "--query", query or "SELECT * FROM t"], pass_fds=(otk.fd,))
        except CommandError as e:
            raise CommandError(e.argv, e.returncode, _strip_warning(e.stderr)) from None
    if not r.stdout.strip():
        return pd.DataFrame()
    return pd.read_json(io.BytesIO(r.stdout), lines=True, **kwargs)


def to_parquet(df, path, key, overwrite=False, memory="1GiB", threads=1):
    """Write df as an encrypted Parquet file (zstd, DuckDB's writer), through a ``ppml sql``
    job whose input and output are encrypted under a one-time in-memory key; the result is
    then re-encrypted under ``key`` and written atomically to ``path``."""
    if not overwrite and os.path.lexists(path):
        raise FileExistsError(f"output {path} already exists")
    data = df.to_json(orient="records", lines=True, date_format="iso").encode()
    with tempfile.TemporaryDirectory(prefix="ppml-parquet-") as tmp, _OneTimeKey() as otk:
        src = os.path.join(tmp, "t.json.ppml")
        _write(data, src, otk.key, "json", True)
        manifest = (
            "name: ppml-python-to-parquet\nengine: sql\n"
            f"inputs:\n  t: t.json.ppml\n"
            f"outputs:\n  out: {{path: out.parquet.ppml, key: 'file:{otk.path}', content_type: '{_PARQUET_MEDIA}'}}\n"
            "parameters:\n  query: SELECT * FROM t\n"
            f"resources: {{memory: {memory}, threads: {int(threads)}}}\n")
        with open(os.path.join(tmp, "job.yaml"), "w") as f:
            f.write(manifest)
        try:
            cli.run(["sql", "--manifest", os.path.join(tmp, "job.yaml"), "--key", otk.path], pass_fds=(otk.fd,))
        except CommandError as e:
            raise CommandError(e.argv, e.returncode, _strip_warning(e.stderr)) from None
        _reencrypt(os.path.join(tmp, "out.parquet.ppml"), otk.key, path, keymod.as_key(key), "parquet")


def _strip_warning(err):
    return "\n".join(l for l in err.splitlines() if "WARNING: no key service" not in l)
