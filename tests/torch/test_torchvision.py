"""foldline's models against torchvision's (an independent oracle):
- parameter counts of ResNet-18/34/50 with 1 or 3 input channels, linear and
  MLP-3 heads, frozen or not, and of the small CNN and the small ResNet spelled
  in PyTorch;
- the forward pass: foldline's weights and batch-norm statistics (from a file
  fl_model_save wrote after one training step) loaded into torchvision's
  ResNet by name must give foldline's probabilities, which pins the topology
  (strides, padding, the order inside each block), not only the sizes; the
  same for the small ResNet against its PyTorch spelling below (in
  channels_last in foldline on the CPU, contiguous here).

    python3 test_torchvision.py BUILD/model_params

Exits 77 (skipped) when torch or torchvision is not installed
(apt-get install python3-torch python3-torchvision)."""
import os
import subprocess
import sys
import tempfile

try:
    import torch
    import torch.nn as nn
    import torchvision
except ImportError as e:
    print(f"skipped: {e}; HINT: apt-get install python3-torch python3-torchvision")
    sys.exit(77)

CASES = [  # backbone, in_channels, classes, head, hidden, act, freeze
    ("resnet18", 3, 10, "linear", 0, "relu", 0),
    ("resnet18", 1, 500, "linear", 0, "relu", 0),
    ("resnet18", 3, 7, "mlp3", 1024, "gelu", 1),
    ("resnet34", 3, 500, "linear", 0, "relu", 0),
    ("resnet34", 1, 10, "mlp3", 256, "relu", 0),
    ("resnet50", 3, 500, "mlp3", 1024, "relu", 1),
    ("resnet50", 1, 2, "linear", 0, "relu", 0),
    ("smallcnn", 1, 10, "linear", 0, "relu", 0),
    ("smallcnn", 3, 500, "mlp3", 1024, "gelu", 1),
    ("smallresnet", 1, 10, "linear", 0, "relu", 0),
    ("smallresnet", 3, 100, "mlp3", 256, "gelu", 1),
]


def small_cnn(in_channels):
    """trainer/torch/nets.cpp's SmallCnnImpl, layer for layer."""
    def cbr(i, o):
        return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU()]
    body = nn.Sequential(*cbr(in_channels, 16), nn.MaxPool2d(2), *cbr(16, 32), nn.MaxPool2d(2),
                         *cbr(32, 64), *cbr(64, 64), nn.AdaptiveAvgPool2d(7), nn.Flatten())
    return body, 64 * 7 * 7


class SmallResNet(nn.Module):
    """trainer/torch/nets.cpp's SmallResNetImpl, with its module names: a
    conv-BN-ReLU stem of 24, a 2x2 max pool, torchvision's BasicBlocks of 24,
    48 (stride 2) and 96 (stride 2) channels, a global average pool; fc is
    the linear head."""

    def __init__(self, in_channels, classes=0):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 24, 3, padding=1, bias=False), nn.BatchNorm2d(24), nn.ReLU())
        blocks, i = [], 24
        for o, s in ((24, 1), (48, 2), (96, 2)):
            down = None
            if s != 1 or i != o:
                down = nn.Sequential(nn.Conv2d(i, o, 1, s, bias=False), nn.BatchNorm2d(o))
            blocks.append(torchvision.models.resnet.BasicBlock(i, o, s, down))
            i = o
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(96, classes) if classes else nn.Identity()

    def forward(self, x):
        x = self.blocks(nn.functional.max_pool2d(self.stem(x), 2))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def reference(backbone, in_channels, classes, head, hidden, act, freeze):
    if backbone == "smallcnn":
        body, dim = small_cnn(in_channels)
    elif backbone == "smallresnet":
        body, dim = SmallResNet(in_channels), 96
    else:
        body = getattr(torchvision.models, backbone)()
        if in_channels != 3:
            body.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        dim = body.fc.in_features
        body.fc = nn.Identity()
    if head == "linear":
        top = nn.Linear(dim, classes)
    else:
        top = nn.Sequential(nn.Linear(dim, hidden), nn.GELU() if act == "gelu" else nn.ReLU(),
                            nn.Linear(hidden, classes))
    n_body = sum(p.numel() for p in body.parameters())
    n_head = sum(p.numel() for p in top.parameters())
    return n_body + n_head, (n_head if freeze else n_body + n_head), dim


FORWARD_CASES = [("resnet18", 3, 10, 40), ("resnet34", 1, 5, 33), ("resnet50", 3, 7, 48),  # backbone, ch, classes, size
                 ("smallresnet", 1, 10, 28), ("smallresnet", 3, 5, 33)]


def fixed_batch(ch, size):
    """model_params.c's pixel(): 2 images (2, ch, size, size) as uint8."""
    i, c, y, x = torch.meshgrid(torch.arange(2), torch.arange(ch), torch.arange(size), torch.arange(size),
                                indexing="ij")
    return ((i * 71 + c * 29 + y * 7 + x * 13 + (x * y) % 17) % 256).to(torch.uint8)


def forward_matches(binary, backbone, ch, classes, size):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.pt")
        out = subprocess.run([binary, "forward", backbone, str(ch), str(classes), str(size), path],
                             capture_output=True, text=True, check=True).stdout.split()
        got = torch.tensor([float(v) for v in out]).view(2, classes)
        saved = torch.jit.load(path, map_location="cpu")
    tensors = dict(saved.named_parameters())
    tensors.update(dict(saved.named_buffers()))
    state = {}
    for name, t in tensors.items():
        if name.startswith("net.backbone."):
            state[name[len("net.backbone."):]] = t
        elif name.startswith("net.head.0."):
            state["fc." + name[len("net.head.0."):]] = t
    if backbone == "smallresnet":
        net = SmallResNet(ch, classes)
    else:
        net = getattr(torchvision.models, backbone)(num_classes=classes)
        if ch != 3:
            net.conv1 = nn.Conv2d(ch, 64, kernel_size=7, stride=2, padding=3, bias=False)
    net.load_state_dict(state, strict=True)  # every name and shape must match
    net.eval()
    mean = torch.tensor([0.485, 0.456, 0.406][:ch]).view(1, ch, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225][:ch]).view(1, ch, 1, 1)
    with torch.no_grad():
        want = torch.softmax(net((fixed_batch(ch, size).float() / 255 - mean) / std), 1)
    diff = (got - want).abs().max().item()
    bn1 = "stem.1" if backbone == "smallresnet" else "bn1"
    moved = state[bn1 + ".running_mean"].abs().max().item() > 0  # the step moved the statistics
    return diff < 1e-4 and moved, diff


def main():
    lines = "".join(" ".join(str(v) for v in c) + "\n" for c in CASES)
    out = subprocess.run([sys.argv[1]], input=lines, capture_output=True, text=True, check=True).stdout.split("\n")
    failed = 0
    for case, got in zip(CASES, out):
        want = "%d %d %d" % reference(*case)
        status = "ok  " if got == want else "FAIL"
        failed += got != want
        print(f"{status} {' '.join(map(str, case))}: foldline {got!r}, torchvision {want!r}")
    if len(out) < len(CASES):
        print("FAIL: model_params printed too few lines")
        failed += 1
    for case in FORWARD_CASES:
        ok, diff = forward_matches(sys.argv[1], *case)
        failed += not ok
        print(f"{'ok  ' if ok else 'FAIL'} forward {' '.join(map(str, case))}: largest probability difference {diff:.2e}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
