"""Runs in the Python of torch 2.x and timm (tests/torch2/t2.py's PY2), for the torch2 tests:

    timm_oracle.py save MODEL STATE.pt [IMG_SIZE]
        a full timm model (classifier included), random weights from seed 0: its state_dict
    timm_oracle.py features MODEL WEIGHTS SIZE
        timm's own pre-logits features, model.forward_head(model.forward_features(x),
        pre_logits=True), of script_model.c's 2 fixed images at SIZE (ImageNet mean and std), one
        value a line; WEIGHTS is a state_dict file or a TorchScript module whose tensors are loaded
        (the classifier stays random: pre-logits features do not use it)
    timm_oracle.py jit_save MODEL OUT.pt [IMG_SIZE]
        the model without classifier, scripted and saved by torch itself (no export_timm record)"""
import sys

import timm
import torch


def fixed_batch(ch, size):
    i, c, y, x = torch.meshgrid(torch.arange(2), torch.arange(ch), torch.arange(size), torch.arange(size),
                                indexing="ij")
    u8 = ((i * 71 + c * 29 + y * 7 + x * 13 + (x * y) % 17) % 256).float()
    mean = torch.tensor([0.485, 0.456, 0.406][:ch]).view(1, ch, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225][:ch]).view(1, ch, 1, 1)
    return (u8 / 255 - mean) / std


def create(name, size=None, **kw):
    torch.manual_seed(0)
    if size:
        kw["img_size"] = int(size)
    return timm.create_model(name, pretrained=False, **kw).eval()


def main(argv):
    torch.set_num_threads(2)
    what, name = argv[0], argv[1]
    if what == "save":
        torch.save(create(name, *argv[3:]).state_dict(), argv[2])
    elif what == "jit_save":
        torch.jit.script(create(name, *argv[3:], num_classes=0, scriptable=True)).save(argv[2])
    elif what == "features":
        weights, size = argv[2], int(argv[3])
        model = create(name, size)
        try:
            sd = torch.jit.load(weights, map_location="cpu").state_dict()
        except RuntimeError:
            sd = torch.load(weights, map_location="cpu", weights_only=True)
        own = model.state_dict()  # a TorchScript module's also lists non-persistent buffers (rope, k_bias)
        buffers = dict(model.named_buffers())
        extra = [k for k in sd if k not in own and k not in buffers]
        missing = [k for k in own if k not in sd and not k.startswith("head.")]
        assert not extra and not missing, (extra, missing)
        model.load_state_dict({k: v for k, v in sd.items() if k in own}, strict=False)
        del sd
        with torch.no_grad():
            f = model.forward_head(model.forward_features(fixed_batch(3, size)), pre_logits=True)
        print("\n".join("%.9g" % v for v in f.flatten().tolist()))
    else:
        sys.exit(f"timm_oracle: unknown {what}")


if __name__ == "__main__":
    main(sys.argv[1:])
