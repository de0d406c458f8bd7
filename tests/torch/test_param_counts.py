"""Parameter counts of foldline's models against torchvision's (an independent
oracle): ResNet-18/34/50 with 1 or 3 input channels, linear and MLP-3 heads,
frozen or not; and the small CNN against the same layers spelled in PyTorch.

    python3 test_param_counts.py BUILD/model_params

Exits 77 (skipped) when torch or torchvision is not installed
(apt-get install python3-torch python3-torchvision)."""
import subprocess
import sys

try:
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
]


def small_cnn(in_channels):
    """trainer/torch/nets.cpp's SmallCnnImpl, layer for layer."""
    def cbr(i, o):
        return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU()]
    body = nn.Sequential(*cbr(in_channels, 16), nn.MaxPool2d(2), *cbr(16, 32), nn.MaxPool2d(2),
                         *cbr(32, 64), *cbr(64, 64), nn.AdaptiveAvgPool2d(2), nn.Flatten())
    return body, 64 * 2 * 2


def reference(backbone, in_channels, classes, head, hidden, act, freeze):
    if backbone == "smallcnn":
        body, dim = small_cnn(in_channels)
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
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
