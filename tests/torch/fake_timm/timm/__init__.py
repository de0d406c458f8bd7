"""A stand-in for timm in tests/torch/test_torchscript.py, which runs
launch/export_timm.py where the real timm is not installed: create_model and
the data config, with the signatures export_timm.py uses, over torchvision's
ResNet-18 and a module torch.jit.script refuses. Never used by foldline."""
import torch
import torch.nn as nn
import torchvision

from . import data  # noqa: F401  (timm.data)


class VarArgsCnn(nn.Module):
    """forward(x, *rest): torch.jit.script refuses variable arguments; tracing works."""

    def __init__(self, in_chans):
        super().__init__()
        self.conv = nn.Conv2d(in_chans, 6, 3, padding=1)

    def forward(self, x, *rest):
        return torch.relu(self.conv(x)).mean((2, 3))


def create_model(name, pretrained=False, num_classes=1000, in_chans=3, scriptable=None, **kwargs):
    if "img_size" in kwargs:
        raise TypeError("__init__() got an unexpected keyword argument 'img_size'")  # as timm's ResNets
    torch.manual_seed(0)  # "pretrained" weights: the same every time
    if name == "resnet18_tv":
        model = torchvision.models.resnet18()
        if in_chans != 3:
            model.conv1 = nn.Conv2d(in_chans, 64, 7, 2, 3, bias=False)
        model.fc = nn.Identity() if num_classes == 0 else nn.Linear(512, num_classes)
    elif name == "varargs_cnn":
        model = VarArgsCnn(in_chans)
    else:
        raise RuntimeError(f"Unknown model ({name})")
    model.pretrained_cfg = dict(input_size=(in_chans, 32, 32), mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3),
                                interpolation="bicubic", crop_pct=0.875)
    return model
