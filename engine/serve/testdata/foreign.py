"""Builds two PyTorch models the plain PyTorch way and saves them with torch.jit.save, without
ppml metadata, for TestServeForeignTorchScript: an MLP trained on a small synthetic table (its
forward returns logits) and a LeNet-5 (BigDL's layout, no input statistics, log-softmax) with
PyTorch's default initialization. Writes OUT/mlp.pt, OUT/lenet.pt, OUT/data.csv (features
f0..f3 and label) and prints JSON: the MLP's logits and accuracy on data.csv, 3 images of
uint8 pixels and the LeNet's log-probabilities on them (pixels / 255)."""
import json
import sys

import torch
import torch.nn.functional as F
from torch import nn

torch.manual_seed(7)
torch.set_num_threads(1)
out = sys.argv[1]


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 16)
        self.fc2 = nn.Linear(16, 3)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.conv2 = nn.Conv2d(6, 12, 5)
        self.fc1 = nn.Linear(192, 100)
        self.fc2 = nn.Linear(100, 10)

    def forward(self, x):
        x = torch.tanh(F.max_pool2d(torch.tanh(self.conv1(x)), 2))
        x = F.max_pool2d(self.conv2(x), 2)
        x = torch.tanh(self.fc1(torch.flatten(x, 1)))
        return F.log_softmax(self.fc2(x), 1)


# Three classes of Gaussian blobs in four dimensions.
centers = torch.tensor([[0.0, 0.0, 0.0, 0.0], [2.0, 1.0, -1.0, 0.5], [-1.5, 2.0, 1.0, -1.0]])
y = torch.arange(150) % 3
x = centers[y] + torch.randn(150, 4)
net = Net()
opt = torch.optim.Adam(net.parameters(), lr=0.05)
for _ in range(100):
    opt.zero_grad()
    F.cross_entropy(net(x), y).backward()
    opt.step()
net.eval()
torch.jit.save(torch.jit.script(net), f"{out}/mlp.pt")
test_x, test_y = x[:60], y[:60]
with open(f"{out}/data.csv", "w") as f:
    f.write("f0,f1,f2,f3,label\n")
    for row, label in zip(test_x.tolist(), test_y.tolist()):
        # repr of a float32 widened to float64: the engine parses the same float32.
        f.write(",".join(repr(v) for v in row) + f",{label}\n")
with torch.no_grad():
    logits = net(test_x)
acc = (logits.argmax(1) == test_y).float().mean().item()

lenet = LeNet().eval()
torch.jit.save(torch.jit.script(lenet), f"{out}/lenet.pt")
images = torch.randint(0, 256, (3, 1, 28, 28), dtype=torch.uint8)
with torch.no_grad():
    logp = lenet(images.float() / 255)

json.dump({"mlp_logits": logits.flatten().tolist(), "mlp_accuracy": acc,
           "images": images.flatten().tolist(), "lenet_logp": logp.flatten().tolist()}, sys.stdout)
