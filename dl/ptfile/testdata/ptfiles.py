"""Writes PyTorch archives for ptfile's tests, and checks archives ptfile wrote.

    ptfiles.py write DIR   # DIR/{statedict,script,strided,float64}.pt and DIR/*.expect (JSON)
    ptfiles.py check FILE  # torch.load(FILE) as JSON on stdout, after load_state_dict on a module
"""
import json
import sys

import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 2, 3)
        self.fc = nn.Linear(4, 3)
        self.emb = nn.EmbeddingBag(5, 4)
        self.register_buffer("mean", torch.arange(4, dtype=torch.float32))

    def forward(self, x):
        return self.fc(x - self.mean)


def expect(sd):
    return {k: {"shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", ""),
                "data": v.detach().reshape(-1).tolist() if v.dtype == torch.float32 else None}
            for k, v in sd.items()}


def write(d):
    torch.manual_seed(1)
    net = Net()
    sd = net.state_dict()
    torch.save(sd, f"{d}/statedict.pt")
    json.dump(expect(sd), open(f"{d}/statedict.expect", "w"))
    torch.jit.save(torch.jit.script(net), f"{d}/script.pt", _extra_files={"ppml.json": '{"hello": 1}'})
    json.dump(expect(sd), open(f"{d}/script.expect", "w"))
    # A transposed (non-contiguous) view and a slice with an offset into a shared storage.
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    strided = {"t": base.t(), "row": base[1], "base": base}
    torch.save(strided, f"{d}/strided.pt")
    json.dump(expect(strided), open(f"{d}/strided.expect", "w"))
    f64 = {"w": torch.ones(2, 2, dtype=torch.float64), "n": torch.tensor(3)}
    torch.save(f64, f"{d}/float64.pt")
    json.dump(expect(f64), open(f"{d}/float64.expect", "w"))


def check(path):
    sd = torch.load(path)
    out = expect(sd)
    if set(sd) == set(Net().state_dict()):
        net = Net()
        net.load_state_dict(sd)  # strict: names and shapes must match
        out["loaded_into_module"] = True
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    torch.set_num_threads(1)
    {"write": write, "check": check}[sys.argv[1]](sys.argv[2])
