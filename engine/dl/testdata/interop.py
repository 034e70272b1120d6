"""PyTorch side of engine/dl's interop tests (run with /usr/bin/python3 and python3-torch).

    interop.py load MODEL STATE IMAGES.gz OUT
        torch.jit.load(MODEL) and ppml_models.LeNet5 with load_state_dict(torch.load(STATE)) on
        the images (pixels / 255); writes the jit module's probabilities to OUT (float32) and
        prints {"max_diff": script vs state dict, "ppml": the extra/ppml.json of MODEL}.
    interop.py train IMAGES.gz LABELS.gz TEST.gz MODEL OUT
        trains ppml_models.LeNet5 for one epoch (SGD 0.05, momentum 0.9, batch 32, seed 0),
        saves it with torch.jit.save(torch.jit.script(...)) to MODEL (no ppml metadata) and
        writes its probabilities on TEST.gz to OUT (float32).
"""
import gzip
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "examples", "dl"))
import ppml_models  # noqa: E402


def images(path):
    b = gzip.open(path).read()
    n, h, w = (int.from_bytes(b[i:i + 4], "big") for i in (4, 8, 12))
    return torch.from_numpy(np.frombuffer(b, np.uint8, offset=16).reshape(n, 1, h, w).astype(np.float32) / 255)


def labels(path):
    return torch.from_numpy(np.frombuffer(gzip.open(path).read(), np.uint8, offset=8).astype(np.int64))


def main():
    torch.set_num_threads(1)
    if sys.argv[1] == "load":
        model, state, imgs, out = sys.argv[2:6]
        extra = {"ppml.json": ""}
        m = torch.jit.load(model, _extra_files=extra)
        m.eval()
        meta = json.loads(extra["ppml.json"])
        net = ppml_models.LeNet5(meta["architecture"]["classes"])
        net.load_state_dict(torch.load(state))
        net.eval()
        x = images(imgs)
        with torch.no_grad():
            a, b = m(x), net(x)
        a.exp().numpy().astype("<f4").tofile(out)
        print(json.dumps({"max_diff": float((a - b).abs().max()), "ppml": meta}))
    else:
        imgs, labs, test, model, out = sys.argv[2:7]
        torch.manual_seed(0)
        net = ppml_models.LeNet5(10)
        opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
        x, y = images(imgs), labels(labs)
        for i in range(0, len(y), 32):
            opt.zero_grad()
            F.nll_loss(net(x[i:i + 32]), y[i:i + 32]).backward()
            opt.step()
        net.eval()
        torch.jit.save(torch.jit.script(net), model)
        with torch.no_grad():
            net(images(test)).exp().numpy().astype("<f4").tofile(out)


main()
