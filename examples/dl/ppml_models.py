"""PyTorch definitions of the dl engine's architectures (docs/dl.md, "Architectures").

Same tensor names and shapes as ppml's, and the same forward: a state dict moves between ppml
and these modules with load_state_dict, and a TorchScript file of one of them is accepted by
ppml's predict and evaluate (which run ppml's own definition with the file's tensors).

    import torch, ppml_models
    net = ppml_models.LeNet5(classes=10)                # x: N x 1 x 28 x 28, pixels / 255
    net = ppml_models.MLP(inputs=30, hidden=[64], classes=2)
    net = ppml_models.TextClassifier(vocab_size=20000, embedding_dim=64, classes=2)
    torch.jit.save(torch.jit.script(net), "model.pt")   # or torch.save(net.state_dict(), ...)

Every forward returns log-probabilities (N x classes).
"""
import re
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F


class LeNet5(nn.Module):
    """BigDL's LeNet-5: the input standardized with the buffers input_mean and input_std (the
    training pixels' mean and standard deviation, as BigDL's GreyImgNormalizer), conv 1->6 5x5,
    tanh, max-pool 2, tanh, conv 6->12 5x5, max-pool 2, linear 192->100, tanh,
    linear 100->classes, log-softmax."""

    def __init__(self, classes: int = 10, input_mean: float = 0.0, input_std: float = 1.0):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.conv2 = nn.Conv2d(6, 12, 5)
        self.fc1 = nn.Linear(12 * 4 * 4, 100)
        self.fc2 = nn.Linear(100, classes)
        self.register_buffer("input_mean", torch.tensor(input_mean))
        self.register_buffer("input_std", torch.tensor(input_std))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.input_mean) / self.input_std
        x = torch.tanh(F.max_pool2d(torch.tanh(self.conv1(x)), 2))
        x = F.max_pool2d(self.conv2(x), 2)
        x = torch.tanh(self.fc1(torch.flatten(x, 1)))
        return F.log_softmax(self.fc2(x), 1)


class MLP(nn.Sequential):
    """Standardize with the buffers mean and std, then fc1 ... fcN with ReLU between them."""

    def __init__(self, inputs: int, hidden, classes: int):
        sizes = [inputs] + list(hidden) + [classes]
        layers = []
        for i in range(len(sizes) - 1):
            layers.append((f"fc{i + 1}", nn.Linear(sizes[i], sizes[i + 1])))
            if i < len(sizes) - 2:
                layers.append((f"relu{i + 1}", nn.ReLU()))
        super().__init__(OrderedDict(layers))
        self.register_buffer("mean", torch.zeros(inputs))
        self.register_buffer("std", torch.ones(inputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (torch.flatten(x, 1) - self.mean) / self.std
        for layer in self:
            x = layer(x)
        return F.log_softmax(x, 1)


class TextClassifier(nn.Module):
    """The mean embedding of each text's token ids (EmbeddingBag), then a linear layer."""

    def __init__(self, vocab_size: int, embedding_dim: int, classes: int):
        super().__init__()
        self.embedding = nn.EmbeddingBag(vocab_size, embedding_dim, mode="mean")
        self.fc = nn.Linear(embedding_dim, classes)

    def forward(self, tokens: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(self.fc(self.embedding(tokens, offsets)), 1)


_TOKEN = re.compile(r"[^\W_]+")


def tokenize(text: str, max_tokens: int):
    """ppml's tokenizer: lower-case runs of letters and digits, at most max_tokens of them,
    each at most 64 characters (longer runs are skipped)."""
    out = []
    for t in _TOKEN.findall(text.lower()):
        if len(t) <= 64:
            out.append(t)
            if len(out) == max_tokens:
                break
    return out


def encode(texts, vocabulary, max_tokens: int):
    """Token ids and offsets for TextClassifier.forward; vocabulary is the model's list of
    words (ppml.json's "vocabulary"), where id 0 is every word not in it."""
    index = {w: i for i, w in enumerate(vocabulary)}
    ids, offsets = [], []
    for text in texts:
        offsets.append(len(ids))
        ids.extend(index.get(t, 0) for t in tokenize(text, max_tokens))
    return torch.tensor(ids, dtype=torch.long), torch.tensor(offsets, dtype=torch.long)
