"""Python side of the XGBoost interop tests (run with Debian's /usr/bin/python3, xgboost 1.7).

Matrices travel as raw little-endian float32, row-major, NaN for missing, so that no decimal
conversion stands between the two sides.

  interop.py predict MODEL.json X.f32 ROWS COLS OUT.f32
      load a JSON model, predict X with one thread, write the predictions as float32.
  interop.py train X.f32 Y.f32 ROWS COLS PARAMS.json ROUNDS MODEL_OUT.json XTEST.f32 TEST_ROWS OUT.f32
      train with the given parameters (nthread=1), save the model as JSON, predict XTEST.
  interop.py batch JOBS.json
      run a JSON list of argument lists (each one of the commands above) in this one process,
      which saves starting Python and importing xgboost for each.
"""
import json
import sys

import numpy as np
import xgboost as xgb


def matrix(path, rows, cols):
    x = np.fromfile(path, dtype="<f4")
    if x.size != rows * cols:
        sys.exit(f"{path}: {x.size} values, want {rows}x{cols}")
    return x.reshape(rows, cols)


def write(path, pred):
    with open(path, "wb") as f:
        f.write(np.ascontiguousarray(pred, dtype="<f4").tobytes())


def main(argv):
    if argv[0] == "predict":
        model, xpath, rows, cols, out = argv[1:]
        bst = xgb.Booster(params={"nthread": 1}, model_file=model)
        dm = xgb.DMatrix(matrix(xpath, int(rows), int(cols)), missing=np.nan,
                         feature_names=bst.feature_names, nthread=1)
        write(out, bst.predict(dm))
    elif argv[0] == "train":
        xpath, ypath, rows, cols, params, rounds, model_out, xtest, test_rows, out = argv[1:]
        cols = int(cols)
        dtrain = xgb.DMatrix(matrix(xpath, int(rows), cols), label=np.fromfile(ypath, dtype="<f4"),
                             missing=np.nan, nthread=1)
        p = json.load(open(params))
        p["nthread"] = 1
        bst = xgb.train(p, dtrain, num_boost_round=int(rounds))
        bst.save_model(model_out)
        dtest = xgb.DMatrix(matrix(xtest, int(test_rows), cols), missing=np.nan, nthread=1)
        write(out, bst.predict(dtest))
    elif argv[0] == "batch":
        for job in json.load(open(argv[1])):
            main(job)
    else:
        sys.exit(f"unknown command {argv[0]!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
