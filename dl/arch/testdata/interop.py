"""Interop checks for dl/arch (run by arch_test.go with /usr/bin/python3).

    interop.py run MODEL KIND IN... OUT   torch.jit.load(MODEL) on the inputs, log-probs to OUT
    interop.py make KIND CONFIG DIR       a ppml_models module (seed 1), scripted and saved to
                                          DIR/script.pt and its state dict to DIR/state.pt
Inputs are raw little-endian files: IN.f32 (float32, shape in CONFIG) or, for text,
tokens.i64 and offsets.i64. Outputs are raw float32.
"""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "examples", "dl"))
import ppml_models  # noqa: E402


def inputs(kind, paths, shape):
    if kind == "text":
        return [torch.from_numpy(np.fromfile(p, dtype="<i8").copy()) for p in paths]
    return [torch.from_numpy(np.fromfile(paths[0], dtype="<f4").copy()).reshape(shape)]


def main():
    torch.set_num_threads(1)
    cmd = sys.argv[1]
    if cmd == "run":
        model, kind, cfg = sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
        m = torch.jit.load(model)
        m.eval()
        with torch.no_grad():
            out = m(*inputs(kind, sys.argv[5:-1], cfg.get("shape")))
        out.numpy().astype("<f4").tofile(sys.argv[-1])
    elif cmd == "make":
        kind, cfg, d = sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
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


main()
