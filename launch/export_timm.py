#!/usr/bin/env python3
"""export_timm.py -- a timm model as a TorchScript backbone for foldline.

    python3 launch/export_timm.py MODEL_NAME OUT.pt [--img-size N] [--channels 3]
                                  [--no-pretrained | --weights FILE] [--trace]

Run it where timm and the pretrained weights are (a machine with PyPI or the
Hugging Face hub, or their caches); foldline itself needs no Python. It creates
timm.create_model(MODEL_NAME, pretrained=True, num_classes=0), so that forward
returns the pooled features (B, D) instead of class logits, scripts it with
torch.jit.script (or traces it with torch.jit.trace on an example batch when
scripting fails, or always with --trace), checks that the saved module maps
(B, channels, N, N) to (B, D) and gives the Python model's features, saves it
to OUT.pt, and prints the lines to use: the `foldline prep --size`, the data
mean and std of timm's data config, and the model's backbone line.

--weights FILE loads a checkpoint you bring (a state_dict saved with
torch.save, or a .safetensors file; a dict holding it under "state_dict" or
"model" and "module." prefixes are accepted) instead of downloading the
pretrained weights; the classifier's tensors in it are left out. OUT.pt records
the torch and timm that wrote it (extra/foldline_export.txt), so that a foldline
whose libtorch is older than that torch names both versions when it cannot read
the module. Export with the torch whose libtorch foldline is built against
(`foldline --version`): a module written by torch 2.x uses operators, such as
scaled_dot_product_attention, that libtorch 1.13 lacks.

Examples:
    python3 launch/export_timm.py eva02_large_patch14_448.mim_m38m_ft_in22k_in1k models/eva02_l_448.pt
    python3 launch/export_timm.py eva_giant_patch14_336.clip_ft_in1k models/eva_g_336.pt

The module is exported on the CPU in float32; foldline moves it to its device.
timm and torch are imported only when a model is exported, so --help needs
neither.
"""
import argparse
import os
import sys


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="export_timm.py",
        description="Export a timm model (pooled features, no classifier) as a TorchScript file for "
        "foldline's backbone = \"torchscript:PATH\".",
        epilog="Example: python3 launch/export_timm.py eva02_large_patch14_448.mim_m38m_ft_in22k_in1k "
        "models/eva02_l_448.pt",
    )
    p.add_argument("model", metavar="MODEL_NAME", help="a timm model name, e.g. eva_giant_patch14_336.clip_ft_in1k")
    p.add_argument("out", metavar="OUT.pt", help="where to write the TorchScript module")
    p.add_argument("--img-size", type=int, default=None, metavar="N",
                   help="input height and width (default: the model's own, from timm's data config)")
    p.add_argument("--channels", type=int, default=3, choices=(1, 3),
                   help="input channels (default 3; 1 makes timm adapt the first layer to grey images)")
    p.add_argument("--no-pretrained", action="store_true", help="random weights instead of the pretrained ones")
    p.add_argument("--weights", metavar="FILE",
                   help="load this checkpoint (state_dict or .safetensors) instead of the pretrained weights")
    p.add_argument("--check-batches", default="2,3", metavar="B,B",
                   help="batch sizes of the check against the Python model (default 2,3; 1 for the largest "
                   "models on a small machine)")
    p.add_argument("--trace", action="store_true",
                   help="torch.jit.trace instead of torch.jit.script (tried anyway when scripting fails)")
    return p.parse_args(argv)


def data_config(timm, model):
    """timm's preprocessing of the model: input_size, mean, std, interpolation, crop_pct."""
    data = timm.data
    if hasattr(data, "resolve_model_data_config"):  # timm >= 0.9
        return data.resolve_model_data_config(model)
    return data.resolve_data_config({}, model=model)


def create(timm, args):
    """The model without its classifier; img_size only for models that take it (ViTs)."""
    kwargs = dict(pretrained=not (args.no_pretrained or args.weights), num_classes=0, in_chans=args.channels)
    if not args.trace:
        kwargs["scriptable"] = True
    if args.img_size:
        try:
            return timm.create_model(args.model, img_size=args.img_size, **kwargs)
        except TypeError as e:  # convolutional networks take any size and no img_size
            if "img_size" not in str(e):
                raise
    return timm.create_model(args.model, **kwargs)


def to_torchscript(torch, model, example, force_trace):
    """(module, "scripted" | "traced")."""
    if not force_trace:
        try:
            return torch.jit.script(model), "scripted"
        except Exception as e:  # noqa: BLE001 -- any scripting failure falls back to tracing
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            print(f"export_timm: torch.jit.script failed ({first}); tracing instead", file=sys.stderr)
    with torch.no_grad():
        return torch.jit.trace(model, example, check_trace=False), "traced"


def load_weights(torch, model, path):
    """Loads the checkpoint at path into model (its classifier's tensors left out: num_classes=0),
    or exits with one line naming what does not fit."""
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file
            sd = load_file(path, device="cpu")
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 -- any reading failure is the user's file
        sys.exit(f"export_timm: {path}: cannot read a checkpoint ({str(e).strip().splitlines()[0]}) HINT: "
                 "give a state_dict saved with torch.save(model.state_dict(), FILE) or a .safetensors file")
    for key in ("state_dict", "model"):
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
    if not isinstance(sd, dict):
        sys.exit(f"export_timm: {path}: holds a {type(sd).__name__}, not a state_dict HINT: save "
                 "model.state_dict(), not the model")
    sd = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in sd.items()}
    own = model.state_dict()
    head = getattr(model, "pretrained_cfg", {}).get("classifier", "head") or "head"
    heads = tuple(h + "." for h in ([head] if isinstance(head, str) else list(head)))
    extra = sorted(k for k in sd if k not in own and not k.startswith(heads))
    missing = sorted(k for k in own if k not in sd)
    shapes = sorted(k for k in own if k in sd and tuple(sd[k].shape) != tuple(own[k].shape))
    if extra or missing or shapes:
        what = [f"{len(v)} {n} (first {v[0]})" for n, v in
                (("missing", missing), ("unexpected", extra), ("of another shape", shapes)) if v]
        sys.exit(f"export_timm: {path} does not fit {model.__class__.__name__}: " + ", ".join(what) +
                 " HINT: the checkpoint must come from the same timm model name (and --img-size, --channels)")
    model.load_state_dict({k: sd[k] for k in own}, strict=True)


def check_features(torch, model, module, ch, size, batches=(2, 3)):
    """D, and the largest difference between the module's features and the model's."""
    with torch.no_grad():
        for batch in batches:  # a traced batch size must not be baked in
            x = torch.randn(batch, ch, size, size, generator=torch.Generator().manual_seed(batch))
            got, want = module(x), model(x)
            if not isinstance(got, torch.Tensor) or got.dim() != 2 or got.shape[0] != batch:
                shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
                sys.exit(f"export_timm: the module maps ({batch}, {ch}, {size}, {size}) to {shape}, expected "
                         f"features ({batch}, D); was num_classes=0 honoured?")
            diff = (got - want).abs().max().item()
    return got.shape[1], diff


def fmt(values):
    return "[" + ", ".join("%.6g" % v for v in values) + "]"


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        import timm
        import torch
    except ImportError as e:
        sys.exit(f"export_timm: {e} HINT: pip install timm torch (on the machine that exports)")
    if args.no_pretrained and args.weights:
        sys.exit("export_timm: --no-pretrained and --weights exclude each other")
    try:
        batches = tuple(int(b) for b in args.check_batches.split(","))
        assert batches and min(batches) >= 1
    except (ValueError, AssertionError):
        sys.exit(f"export_timm: --check-batches {args.check_batches}: expected batch sizes >= 1, e.g. 2,3")
    model = create(timm, args).eval()
    if args.weights:
        load_weights(torch, model, args.weights)
    cfg = data_config(timm, model)
    size = args.img_size or int(cfg["input_size"][-1])
    ch = args.channels
    example = torch.zeros(2, ch, size, size)
    module, how = to_torchscript(torch, model, example, args.trace)
    module = module.eval()
    dim, diff = check_features(torch, model, module, ch, size, batches)
    out_dir = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    tmp = os.path.join(out_dir, "." + os.path.basename(args.out) + ".tmp")
    made_by = f"torch {torch.__version__}\ntimm {getattr(timm, '__version__', '?')}\nmodel {args.model}\n"
    module.save(tmp, _extra_files={"foldline_export.txt": made_by})
    os.replace(tmp, args.out)  # never half a module at OUT.pt
    params = sum(p.numel() for p in module.parameters())
    mean, std = list(cfg["mean"])[:ch], list(cfg["std"])[:ch]
    if ch == 1 and len(cfg["mean"]) == 3:  # timm sums the first layer over RGB: grey is their mean
        mean, std = [sum(cfg["mean"]) / 3], [sum(cfg["std"]) / 3]
    name = os.path.splitext(os.path.basename(args.out))[0]
    weights = "weights " + args.weights if args.weights else "random weights" if args.no_pretrained else "pretrained"
    print(f"exported {args.model} ({weights}, {how}) to "
          f"{args.out} with torch {torch.__version__}: {params:,} parameters, (B, {ch}, {size}, {size}) -> (B, {dim}) features; "
          f"largest difference to the Python model {diff:.2e}")
    print(f"feature dim D = {dim}")
    print(f"prep:   foldline prep SRC data/{name}.h5 --size {size} --channels {ch}")
    print(f"data:   data = {{ file = \"data/{name}.h5\"; mean = {fmt(mean)}; std = {fmt(std)}; }};")
    print(f"model:  backbone = \"torchscript:{args.out}\";   # relative paths start at the config file's folder")
    notes = []
    interp = cfg.get("interpolation", "bilinear")
    if interp != "bilinear":
        notes.append(f"timm resizes with {interp}; foldline prep resizes with bilinear")
    crop = cfg.get("crop_pct", 1.0)
    if crop and crop < 1.0:
        notes.append(f"timm evaluates on a centre crop (crop_pct {crop}); foldline prep resizes the whole image")
    for n in notes:
        print(f"note:   {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
