"""Python side of the ml engine's interop tests (Debian's /usr/bin/python3, xgboost 1.7).

  interop.py predict MODEL.json DATA.csv OUT.f32
      load an XGBoost JSON model, take its feature_names columns from the CSV (empty or NaN is
      missing), predict with one thread, write the predictions as little-endian float32.
  interop.py train DATA.csv LABEL PARAMS.json ROUNDS MODEL_OUT.json
      train on every column but LABEL (feature names from the header), one thread, save JSON.
  interop.py batch JOBS.json
      run a JSON list of argument lists (each one of the commands above) in this one process,
      which saves starting Python and importing xgboost for each.
"""
import csv
import json
import sys

import numpy as np
import xgboost as xgb


def read(path, columns):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    idx = [header.index(c) for c in columns]
    cell = lambda s: float("nan") if s.strip() == "" or s.strip().lower() == "nan" else float(s)
    return np.array([[cell(r[j]) for j in idx] for r in body], dtype=np.float64).astype(np.float32), header


def main(argv):
    if argv[0] == "predict":
        model, data, out = argv[1:]
        bst = xgb.Booster(params={"nthread": 1}, model_file=model)
        x, _ = read(data, bst.feature_names)
        dm = xgb.DMatrix(x, missing=np.nan, feature_names=bst.feature_names, nthread=1)
        with open(out, "wb") as f:
            f.write(np.ascontiguousarray(bst.predict(dm), dtype="<f4").tobytes())
    elif argv[0] == "train":
        data, label, params, rounds, model_out = argv[1:]
        with open(data, newline="") as f:
            header = next(csv.reader(f))
        feats = [c for c in header if c != label]
        x, _ = read(data, feats)
        y, _ = read(data, [label])
        d = xgb.DMatrix(x, label=y[:, 0], missing=np.nan, feature_names=feats, nthread=1)
        p = json.load(open(params))
        p["nthread"] = 1
        xgb.train(p, d, num_boost_round=int(rounds)).save_model(model_out)
    elif argv[0] == "batch":
        for job in json.load(open(argv[1])):
            main(job)
    else:
        sys.exit(f"unknown command {argv[0]!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
