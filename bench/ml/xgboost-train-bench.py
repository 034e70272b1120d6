#!/usr/bin/python3
"""Plaintext XGBoost training time in Python, for comparison with ppml's engine.

  xgboost-train-bench.py X.f32 Y.f32 ROWS COLS ROUNDS MAX_DEPTH

X.f32 and Y.f32 are raw little-endian float32 (row-major features, labels), as written by the Go
benchmark. Trains hist with one thread and prints one JSON line: {"train_seconds": ...,
"train_cpu_seconds": ..., "version": ...}. Only xgb.train is timed (not reading files or building the DMatrix), which is
what the Go side times too. CPU time is reported besides wall time because on a shared machine
wall time mostly measures the neighbours.
"""
import json
import sys
import time

import numpy as np
import xgboost as xgb


def main(xpath, ypath, rows, cols, rounds, depth):
    rows, cols = int(rows), int(cols)
    x = np.fromfile(xpath, dtype="<f4").reshape(rows, cols)
    y = np.fromfile(ypath, dtype="<f4")
    d = xgb.DMatrix(x, label=y, missing=np.nan, nthread=1)
    params = {"objective": "reg:squarederror", "tree_method": "hist", "max_depth": int(depth),
              "nthread": 1, "seed": 0}
    t0, c0 = time.perf_counter(), time.process_time()
    bst = xgb.train(params, d, num_boost_round=int(rounds))
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert bst.num_boosted_rounds() == int(rounds)
    print(json.dumps({"train_seconds": elapsed, "train_cpu_seconds": cpu, "version": xgb.__version__}))


if __name__ == "__main__":
    main(*sys.argv[1:])
