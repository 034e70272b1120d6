#!/usr/bin/python3
"""The example's Python client of the Cluster Serving queue: it puts one row into a ppml
serve job's Redis stream as an encrypted serving record and prints the prediction it reads
back (docs/python.md, "Serving"). Redis only ever holds sealed records.

    PYTHONPATH=python examples/serve/queue_client.py --record-key examples/serve/record.key \\
        127.0.0.1:6390 0.00632,18,2.31,0,0.538,6.575,65.2,4.09,1,296,15.3,396.9,4.98
"""
import argparse
import sys

from ppml import serving


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="example:\n" + __doc__.split("\n\n")[1])
    ap.add_argument("--record-key", required=True, help="the serving record key file (64 hex digits)")
    ap.add_argument("--stream", default=serving.DEFAULT_STREAM, help="the queue's stream (default %(default)s)")
    ap.add_argument("--timeout", type=float, default=30, help="seconds to wait for the result (default %(default)s)")
    ap.add_argument("redis", metavar="HOST:PORT", help="the Redis the serve job reads")
    ap.add_argument("row", help="comma-separated feature values")
    a = ap.parse_args()
    try:
        row = [float(v) for v in a.row.split(",")]
    except ValueError:
        ap.error(f"row {a.row!r}: comma-separated numbers")
    host, _, port = a.redis.rpartition(":")
    try:
        with serving.Queue(host or "127.0.0.1", int(port), stream=a.stream, key=a.record_key) as q:
            uri = q.enqueue(input=row)
            outputs = q.result(uri, timeout=a.timeout)
    except (ValueError, OSError, serving.ServingError) as e:
        print(f"queue_client: {e}", file=sys.stderr)
        return 1
    print(f"queue result for {uri} (sealed in Redis, opened here):", *outputs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
