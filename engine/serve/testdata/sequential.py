"""Builds three models the ordinary PyTorch way, for TestServeForeignSequential, and saves them
with torch.jit.save (no ppml metadata):

- mlp.pt, scripted: nn.Sequential(Flatten, Linear, ReLU, Dropout, Linear); logits.
- cnn.pt, traced: an nn.Sequential CNN with a BatchNorm2d, MaxPool2d and a final LogSoftmax.
- tv.pt, scripted: a torchvision-style module (features and classifier Sequentials, declared
  classifier first), whose forward uses F.relu, F.avg_pool2d and torch.flatten; logits.

The batch norms' running statistics are moved off their initial values by forward passes in
training mode. Writes OUT/images.idx and OUT/labels.idx (IDX, as Fashion-MNIST's files) and
prints JSON: the images' uint8 pixels, their labels and each model's forward on pixels / 255."""
import json
import struct
import sys

import torch
import torch.nn.functional as F
from torch import nn

torch.manual_seed(11)
torch.set_num_threads(1)
out = sys.argv[1]
n = 24

mlp = nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Dropout(0.2), nn.Linear(64, 10))
cnn = nn.Sequential(
    nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(8, 16, 3), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(), nn.Linear(16 * 6 * 6, 32), nn.ReLU(), nn.Dropout(), nn.Linear(32, 10),
    nn.LogSoftmax(dim=1))


class TV(nn.Module):
    def __init__(self):
        super().__init__()
        self.classifier = nn.Sequential(nn.Dropout(), nn.Linear(16 * 5 * 5, 120), nn.ReLU(inplace=True), nn.Linear(120, 10))
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5, bias=False), nn.BatchNorm2d(16, eps=1e-3))

    def forward(self, x):
        x = F.relu(self.features(x))
        x = F.avg_pool2d(x, 2)
        x = torch.flatten(x, 1)
        return self.classifier(x)


tv = TV()
with torch.no_grad():
    for m in (cnn, tv):
        m.train()
        for _ in range(3):
            m(torch.rand(32, 1, 28, 28) * 2)
for m in (mlp, cnn, tv):
    m.eval()

images = torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8)
labels = torch.randint(0, 10, (n,), dtype=torch.uint8)
x = images.float() / 255
torch.jit.save(torch.jit.script(mlp), f"{out}/mlp.pt")
torch.jit.save(torch.jit.trace(cnn, x[:2]), f"{out}/cnn.pt")
torch.jit.save(torch.jit.script(tv), f"{out}/tv.pt")
with open(f"{out}/images.idx", "wb") as f:
    f.write(struct.pack(">IIII", 0x803, n, 28, 28) + images.numpy().tobytes())
with open(f"{out}/labels.idx", "wb") as f:
    f.write(struct.pack(">II", 0x801, n) + labels.numpy().tobytes())
with torch.no_grad():
    res = {name: m(x).flatten().tolist() for name, m in (("mlp", mlp), ("cnn", cnn), ("tv", tv))}
res["images"] = images.flatten().tolist()
res["labels"] = labels.tolist()
json.dump(res, sys.stdout)
