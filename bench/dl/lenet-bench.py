"""The python3-torch side of `ppml bench dl`: LeNet-5 (BigDL's layout, the dl engine's lenet5)
trained on plaintext Fashion-MNIST files with the same hyper-parameters as the engine's job.

    lenet-bench.py TRAIN_IMAGES TRAIN_LABELS TEST_IMAGES TEST_LABELS EPOCHS BATCH OPTIMIZER LR MOMENTUM [STEP GAMMA]
OPTIMIZER is sgd (with MOMENTUM) or adam. STEP > 0 multiplies the learning rate by GAMMA every
STEP epochs (torch.optim.lr_scheduler.StepLR, the job's lr_step_epochs and lr_gamma).
Prints JSON: epoch_seconds and epoch_cpu_seconds (the training loop of each epoch, wall and
process CPU time), test_accuracy after the last epoch,
predict_images_per_second (forward passes over the test images in batches of BATCH, as the
engine's evaluate job does with its default batch_size).
One intra-op thread and one BLAS thread, as the engine's job.
"""
import gzip
import json
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(1)
torch.manual_seed(0)


def idx(path):
    raw = open(path, "rb").read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


class LeNet5(nn.Module):
    def __init__(self, input_mean, input_std, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.conv2 = nn.Conv2d(6, 12, 5)
        self.fc1 = nn.Linear(12 * 4 * 4, 100)
        self.fc2 = nn.Linear(100, classes)
        # BigDL normalizes the pixels with the training set's mean and deviation.
        self.register_buffer("input_mean", torch.tensor(input_mean))
        self.register_buffer("input_std", torch.tensor(input_std))

    def forward(self, x):
        x = (x - self.input_mean) / self.input_std
        x = torch.tanh(F.max_pool2d(torch.tanh(self.conv1(x)), 2))
        x = F.max_pool2d(self.conv2(x), 2)
        x = torch.tanh(self.fc1(torch.flatten(x, 1)))
        return F.log_softmax(self.fc2(x), 1)


def main():
    tri, trl, tei, tel = sys.argv[1:5]
    epochs, batch = int(sys.argv[5]), int(sys.argv[6])
    optimizer, lr, momentum = sys.argv[7], float(sys.argv[8]), float(sys.argv[9])
    # The engine streams batches from the IDX bytes, scaling each image as it goes; the same
    # per-batch conversion here keeps the two loops doing the same work.
    x, y = idx(tri), torch.from_numpy(idx(trl).astype(np.int64))
    # The pixels' mean and standard deviation, as the engine computes them (in float64).
    total = sq = 0.0
    for i in range(0, len(x), 10000):
        c = x[i:i + 10000].astype(np.float64) / 255
        total, sq = total + c.sum(), sq + (c * c).sum()
    mean = total / x.size
    net = LeNet5(mean, (sq / x.size - mean * mean) ** 0.5)
    if optimizer == "adam":
        opt = torch.optim.Adam(net.parameters(), lr=lr)
    else:
        opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum)
    step = int(sys.argv[10]) if len(sys.argv) > 10 else 0
    sched = torch.optim.lr_scheduler.StepLR(opt, step, float(sys.argv[11])) if step > 0 else None
    seconds, cpu = [], []
    for _ in range(epochs):
        t0, c0 = time.perf_counter(), time.process_time()
        perm = torch.randperm(len(y)).numpy()
        for i in range(0, len(y), batch):
            b = perm[i:i + batch]
            xb = torch.from_numpy(x[b].astype(np.float32) / 255).unsqueeze(1)
            opt.zero_grad()
            F.nll_loss(net(xb), y[b]).backward()
            opt.step()
        seconds.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        if sched is not None:
            sched.step()
    net.eval()
    tx, ty = idx(tei), torch.from_numpy(idx(tel).astype(np.int64))
    right, t0 = 0, time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(ty), batch):
            xb = torch.from_numpy(tx[i:i + batch].astype(np.float32) / 255).unsqueeze(1)
            right += int((net(xb).argmax(1) == ty[i:i + batch]).sum())
    predict = time.perf_counter() - t0
    print(json.dumps({"epoch_seconds": seconds, "epoch_cpu_seconds": cpu, "test_accuracy": right / len(ty),
                      "predict_images_per_second": len(ty) / predict, "torch_version": torch.__version__}))


main()
