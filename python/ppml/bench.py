"""Decrypt throughput of the Python SDK beside ``ppml decrypt``, measured in the same run.

    python3 -m ppml.bench                 # 256 MiB, 3 rounds, text
    python3 -m ppml.bench --json          # one JSON object
    python3 -m ppml.bench --size 64MiB --rounds 5 --dir /dev/shm

Both sides decrypt the same envelope (1 MiB segments, length recorded) to an output file in
the same directory, as ``ppml decrypt -o OUT IN`` does: atomically, with fsync. The one-time
key lives in a memfd the ``ppml`` child opens as /proc/self/fd/N. Rounds alternate Go and
Python so both see the same machine load; each side's best round counts. The ratio is Python's
throughput over Go's (1.0 = as fast). Python decrypts with OpenSSL's AES-GCM through
``cryptography``, one segment per call, on up to 4 threads (OpenSSL runs without the GIL).
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

from . import cli, envelope, keys as keymod
from .frames import _OneTimeKey

_UNITS = {"": 1, "b": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def parse_size(s):
    m = re.fullmatch(r"(\d+)\s*([A-Za-z]*)", s.strip())
    if not m or m.group(2).lower() not in _UNITS:
        raise argparse.ArgumentTypeError(f"size {s!r}: want a number with an optional unit (KiB, MiB, GiB)")
    return int(m.group(1)) * _UNITS[m.group(2).lower()]


def _progress(enabled, msg):
    if enabled:
        sys.stderr.write("\r\x1b[K" + msg)
        sys.stderr.flush()


def run(size=256 << 20, rounds=3, directory=None, workers=None, progress=False):
    """Run the benchmark; return a dict of the results."""
    ppml_bin = cli.binary()
    with tempfile.TemporaryDirectory(prefix="ppml-bench-", dir=directory) as tmp, _OneTimeKey() as otk:
        src = os.path.join(tmp, "data.bin.ppml")
        _progress(progress, f"writing a {size >> 20} MiB envelope ...")
        chunk = os.urandom(8 << 20)
        with envelope.create(src, key=otk.key, size=size) as w:
            left = size
            while left:
                n = min(left, len(chunk))
                w.write(memoryview(chunk)[:n])
                left -= n
        go_out, py_out = os.path.join(tmp, "go.out"), os.path.join(tmp, "py.out")
        go_times, py_times, starts = [], [], []
        for r in range(rounds):
            # For context: what starting the ppml binary costs (inspect reads only the header).
            t = time.perf_counter()
            subprocess.run([ppml_bin, "inspect", "--json", src], check=True, stdout=subprocess.DEVNULL)
            starts.append(time.perf_counter() - t)
            _progress(progress, f"round {r + 1}/{rounds}: ppml decrypt ...")
            t = time.perf_counter()
            subprocess.run([ppml_bin, "decrypt", "--key", otk.path, "--force", "-o", go_out, src], check=True,
                           pass_fds=(otk.fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            go_times.append(time.perf_counter() - t)
            os.unlink(go_out)
            _progress(progress, f"round {r + 1}/{rounds}: python ...")
            t = time.perf_counter()
            with envelope.open(src, keys=otk.key, workers=workers) as f:
                from .atomic import AtomicFile
                with AtomicFile(py_out, overwrite=True) as out:
                    n = f.copy_to(out)
            py_times.append(time.perf_counter() - t)
            if n != size:
                raise RuntimeError(f"python decrypted {n} bytes, want {size}")
            os.unlink(py_out)
        _progress(progress, "")
        if progress:
            sys.stderr.write("\r\x1b[K")
    go, py = min(go_times), min(py_times)
    mib = size / (1 << 20)
    from .reader import default_workers
    return {"benchmark": "decrypt", "size_bytes": size, "segment_size": 1 << 20, "rounds": rounds,
            "python_workers": workers or default_workers(), "cpus": os.cpu_count(),
            "go_seconds": round(go, 4), "python_seconds": round(py, 4),
            "go_mib_per_s": round(mib / go, 1), "python_mib_per_s": round(mib / py, 1),
            "ratio": round(go / py, 3), "go_startup_seconds": round(min(starts), 4), "go_all_seconds": [round(x, 4) for x in go_times],
            "python_all_seconds": [round(x, 4) for x in py_times]}


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m ppml.bench", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="example:\n  python3 -m ppml.bench --size 256MiB --rounds 3 --json")
    ap.add_argument("--size", type=parse_size, default=256 << 20, help="plaintext size (default 256MiB)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds per side (default 3; the best counts)")
    ap.add_argument("--dir", default=None, help="directory for the files (default: the temporary directory)")
    ap.add_argument("--workers", type=int, default=None, help="Python decryption threads (default: CPUs, at most 4)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    a = ap.parse_args(argv)
    if a.rounds < 1 or a.size < 1:
        ap.error("--rounds and --size must be positive")
    res = run(a.size, a.rounds, a.dir, a.workers, progress=not a.json and sys.stderr.isatty())
    if a.json:
        print(json.dumps(res))
    else:
        print(f"decrypt {res['size_bytes'] >> 20} MiB, best of {res['rounds']} rounds, {res['cpus']} CPUs")
        print(f"  ppml decrypt (Go)  {res['go_seconds']:8.3f} s  {res['go_mib_per_s']:8.1f} MiB/s")
        print(f"  ppml.open (Python) {res['python_seconds']:8.3f} s  {res['python_mib_per_s']:8.1f} MiB/s"
              f"  ({res['python_workers']} threads)")
        print(f"  ratio Python/Go    {res['ratio']:8.3f}")
        print(f"  (starting the ppml binary alone: {res['go_startup_seconds']:.3f} s, included in its time)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
