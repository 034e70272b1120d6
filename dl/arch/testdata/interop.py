"""Interop checks for dl/arch (run by arch_test.go with /usr/bin/python3), one process for all
architectures. The argument is a JSON file: a list of jobs, each

    {"run": MODEL, "kind": KIND, "shape": [...], "inputs": [IN, ...], "out": OUT}
        torch.jit.load(MODEL) on the inputs, log-probabilities to OUT
    {"make": DIR, "kind": KIND, "config": {...}, "shape": [...], "inputs": [...], "out": OUT}
        a ppml_models module (seed 1), scripted and saved to DIR/script.pt and its state dict to
        DIR/state.pt; then as "run" on DIR/script.pt

Inputs are raw little-endian files: float32 of the given shape, or, for text, tokens and
offsets as int64. Outputs are raw float32.
"""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "examples", "dl"))
import ppml_models  # noqa: E402


def inputs(job):
    if job["kind"] == "text":
        return [torch.from_numpy(np.fromfile(p, dtype="<i8").copy()) for p in job["inputs"]]
    return [torch.from_numpy(np.fromfile(job["inputs"][0], dtype="<f4").copy()).reshape(job["shape"])]


def make(job):
    kind, cfg, d = job["kind"], job["config"], job["make"]
    torch.manual_seed(1)
    if kind == "lenet5":
        net = ppml_models.LeNet5(cfg["classes"], input_mean=0.3, input_std=0.4)
    elif kind == "mlp":
        net = ppml_models.MLP(cfg["inputs"], cfg["hidden"], cfg["classes"])
        net.mean.uniform_(-1, 1)
        net.std.uniform_(0.5, 2)
    else:
        net = ppml_models.TextClassifier(cfg["vocab_size"], cfg["embedding_dim"], cfg["classes"])
    torch.jit.save(torch.jit.script(net), os.path.join(d, "script.pt"))
    torch.save(net.state_dict(), os.path.join(d, "state.pt"))
    return os.path.join(d, "script.pt")


def main():
    torch.set_num_threads(1)
    for job in json.load(open(sys.argv[1])):
        model = make(job) if "make" in job else job["run"]
        m = torch.jit.load(model)
        m.eval()
        with torch.no_grad():
            out = m(*inputs(job))
        out.numpy().astype("<f4").tofile(job["out"])


main()
