"""TorchScript backbones through the bridge, against PyTorch in Python (Debian's
python3-torch and python3-torchvision, an independent oracle), and
launch/export_timm.py with a stand-in timm (tests/torch/fake_timm):
- the exporter scripts torchvision's ResNet-18 (or traces what scripting
  refuses) and prints D, the prep size and timm's mean and std;
- foldline's features of that module equal torchvision's eager ResNet-18 with
  the same weights, after a training step on a frozen backbone, whose tensors
  (batch-norm statistics too) the checkpoint holds unchanged;
- a trained module's checkpoint, loaded back into the module in Python, gives
  foldline's features in eval mode, and training moved its batch-norm
  statistics (train mode);
- backbone_lr_scale 1e-9 all but stops the backbone while the head learns.

    python3 test_torchscript.py BUILD/script_model

Exits 77 (skipped) without torch or torchvision."""
import contextlib
import io
import os
import runpy
import subprocess
import sys
import tempfile
import unittest

try:
    import torch
    import torch.nn as nn
    import torchvision
except ImportError as e:
    print(f"skipped: {e}; HINT: apt-get install python3-torch python3-torchvision")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
EXPORT = os.path.join(ROOT, "launch", "export_timm.py")
SCRIPT_MODEL = None  # sys.argv[1]
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]  # script_model.c's


def fixed_batch(ch, size):
    """script_model.c's pixel(): 2 images (2, ch, size, size), normalised as foldline does."""
    i, c, y, x = torch.meshgrid(torch.arange(2), torch.arange(ch), torch.arange(size), torch.arange(size),
                                indexing="ij")
    u8 = ((i * 71 + c * 29 + y * 7 + x * 13 + (x * y) % 17) % 256).float()
    return (u8 / 255 - torch.tensor(MEAN[:ch]).view(1, ch, 1, 1)) / torch.tensor(STD[:ch]).view(1, ch, 1, 1)


def script_model(path, ch, size, freeze, scale, steps, ckpt):
    """dim, (total, trainable) parameters, features (2, D), reload line of script_model.c."""
    out = subprocess.run([SCRIPT_MODEL, path, str(ch), str(size), str(freeze), str(scale), str(steps), ckpt],
                         capture_output=True, text=True, timeout=120)
    lines = out.stdout.split("\n")
    if out.returncode != 0 or not lines[0].startswith("dim "):
        raise AssertionError(f"script_model failed: {out.stdout}{out.stderr}")
    dim = int(lines[0].split()[1])
    params = tuple(int(v) for v in lines[1].split()[1:])
    feats = torch.tensor([float(v) for v in lines[2:2 + 2 * dim]]).view(2, dim)
    return dim, params, feats, lines[2 + 2 * dim]


def backbone_tensors(ckpt):
    """The checkpoint's backbone parameters and buffers, by the module's own names."""
    saved = torch.jit.load(ckpt, map_location="cpu")
    named = dict(saved.named_parameters())
    named.update(dict(saved.named_buffers()))
    return {k[len("net.backbone."):]: v for k, v in named.items() if k.startswith("net.backbone.")}


def export(*args):
    """Runs the exporter's main(args) in this process (torch is imported already) with the
    stand-in timm: (exit status, stdout, stderr)."""
    fake = os.path.join(HERE, "fake_timm")
    sys.path.insert(0, fake)
    out, err = io.StringIO(), io.StringIO()
    try:
        main = runpy.run_path(EXPORT)["main"]
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = main(list(args))
            except SystemExit as e:
                rc = e.code if isinstance(e.code, int) else 1
                err.write(str(e.code))
    finally:
        sys.path.remove(fake)
    return rc, out.getvalue(), err.getvalue()


class TinyBnCnn(nn.Module):
    """Conv-BN-ReLU, pooled to 2x2 and flattened, then a Linear: D = 12."""

    def __init__(self, ch):
        super().__init__()
        self.conv = nn.Conv2d(ch, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.fc = nn.Linear(24, 12)

    def forward(self, x):
        x = torch.relu(self.bn(self.conv(x)))
        return self.fc(nn.functional.adaptive_avg_pool2d(x, 2).flatten(1))


class TorchScriptBackbones(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls._tmp = tempfile.TemporaryDirectory(prefix="fl-ts-")
        cls.tmp = cls._tmp.name
        cls.r18 = os.path.join(cls.tmp, "r18.pt")
        cls.export = export("resnet18_tv", cls.r18, "--img-size", "32")
        torch.manual_seed(1)
        cls.tiny = TinyBnCnn(3)
        cls.tiny_path = os.path.join(cls.tmp, "tiny.pt")
        torch.jit.script(cls.tiny).save(cls.tiny_path)
        cls.tiny_runs = {}

    @classmethod
    def tiny_run(cls, scale, steps):
        """script_model on the tiny module, trained (not frozen), once per (scale, steps):
        its output and the checkpoint's path."""
        if (scale, steps) not in cls.tiny_runs:
            ckpt = os.path.join(cls.tmp, "tiny_%g_%d.pt" % (scale, steps))
            cls.tiny_runs[scale, steps] = script_model(cls.tiny_path, 3, 16, 0, scale, steps, ckpt), ckpt
        return cls.tiny_runs[scale, steps]

    @classmethod
    def tearDownClass(cls):
        cls._tmp.cleanup()

    def path(self, name):
        return os.path.join(self.tmp, name)

    def test_help_needs_neither_timm_nor_torch(self):
        code = ("import runpy, sys; sys.modules['torch'] = None; sys.modules['timm'] = None; "
                f"sys.argv = ['export_timm.py', '--help']; runpy.run_path({EXPORT!r}, run_name='__main__')")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        for needle in ("MODEL_NAME", "OUT.pt", "--img-size", "--channels", "--trace", "--no-pretrained"):
            self.assertIn(needle, out.stdout)

    def test_without_timm_the_exporter_says_what_to_install(self):
        out = subprocess.run([sys.executable, EXPORT, "some_model", self.path("x.pt")], capture_output=True,
                             text=True, timeout=60, env=dict(os.environ, PYTHONPATH=""))
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("pip install timm", out.stderr)
        self.assertFalse(os.path.exists(self.path("x.pt")))

    def test_exporter_scripts_and_prints_the_config_lines(self):
        rc, out, err = self.export
        self.assertEqual(rc, 0, err)
        self.assertIn("scripted", out)
        self.assertIn("(B, 3, 32, 32) -> (B, 512) features", out)
        self.assertIn("feature dim D = 512", out)
        self.assertIn("--size 32 --channels 3", out)
        self.assertIn("mean = [0.5, 0.4, 0.3]; std = [0.2, 0.25, 0.3];", out)
        self.assertIn('backbone = "torchscript:%s"' % self.r18, out)
        self.assertIn("bicubic", out)  # the stand-in's interpolation differs from prep's
        self.assertIsInstance(torch.jit.load(self.r18), torch.jit.ScriptModule)
        self.assertEqual(os.listdir(self.tmp).count(".r18.pt.tmp"), 0)

    def test_exporter_traces_what_scripting_refuses(self):
        rc, out, err = export("varargs_cnn", self.path("va.pt"), "--channels", "1")
        self.assertEqual(rc, 0, err)
        self.assertIn("torch.jit.script failed", err)
        self.assertIn("traced", out)
        self.assertIn("(B, 1, 32, 32) -> (B, 6) features", out)
        self.assertIn("mean = [0.4]; std = [0.25];", out)  # grey: the mean of timm's RGB values
        traced = torch.jit.load(self.path("va.pt"))
        self.assertEqual(tuple(traced(torch.zeros(5, 1, 20, 20)).shape), (5, 6))  # no batch size baked in

    def test_frozen_resnet18_features_equal_torchvision(self):
        self.assertEqual(self.export[0], 0, self.export[2])
        ckpt = self.path("r18_ckpt.pt")
        dim, params, got, reload = script_model(self.r18, 3, 32, 1, 1.0, 1, ckpt)
        net = torchvision.models.resnet18()
        net.fc = nn.Identity()
        module = torch.jit.load(self.r18)
        state = dict(module.named_parameters())
        state.update(dict(module.named_buffers()))
        net.load_state_dict(state, strict=True)  # every name and shape of torchvision's
        with torch.no_grad():
            want = net.eval()(fixed_batch(3, 32))
        self.assertEqual(dim, 512)
        backbone = sum(p.numel() for p in net.parameters())
        self.assertEqual(params, (backbone + 512 * 3 + 3, 512 * 3 + 3))
        diff = (got - want).abs().max().item()
        self.assertLess(diff, 1e-4 * max(1.0, want.abs().max().item()), diff)
        self.assertEqual(reload, "reload same")
        # The features above come after the training step: the frozen module computes what it
        # did before it. Its checkpoint holds the head alone (the module file gives the backbone
        # back), and a model loaded from it computes the same features ("reload same").
        self.assertEqual(backbone_tensors(ckpt), {})

    def test_trained_module_saves_what_predicts_in_eval_mode(self):
        (dim, params, got, reload), ckpt = self.tiny_run(1.0, 3)
        n_tiny = sum(p.numel() for p in self.tiny.parameters())
        self.assertEqual(dim, 12)
        self.assertEqual(params, (n_tiny + 12 * 3 + 3, n_tiny + 12 * 3 + 3))
        self.assertEqual(reload, "reload same")
        saved = backbone_tensors(ckpt)
        trained = TinyBnCnn(3)
        trained.load_state_dict(saved, strict=True)
        with torch.no_grad():
            want = trained.eval()(fixed_batch(3, 16))
        self.assertLess((got - want).abs().max().item(), 1e-5)
        # Train mode while training: the batch-norm statistics moved, and so did the weights.
        self.assertFalse(torch.equal(saved["bn.running_mean"], self.tiny.bn.running_mean))
        self.assertEqual(int(saved["bn.num_batches_tracked"]), 3)
        self.assertGreater((saved["conv.weight"] - self.tiny.conv.weight).abs().max().item(), 1e-3)

    def test_backbone_lr_scale_slows_the_backbone_only(self):
        def head(ckpt):
            return dict(torch.jit.load(ckpt).named_parameters())["net.head.0.weight"]

        head0 = head(self.tiny_run(1.0, 0)[1])
        moved, head_moved = {}, {}
        for scale in (1.0, 1e-9):
            ckpt = self.tiny_run(scale, 3)[1]
            saved = backbone_tensors(ckpt)
            moved[scale] = max((saved[n] - p).abs().max().item() for n, p in self.tiny.named_parameters())
            head_moved[scale] = (head(ckpt) - head0).abs().max().item()
        # Adam's steps are about lr * scale: 1e-2 a step at scale 1, 1e-11 at 1e-9;
        # the head's lr stays 1e-2 either way.
        self.assertGreater(moved[1.0], 1e-3)
        self.assertLess(moved[1e-9], 1e-8)
        self.assertGreater(min(head_moved.values()), 1e-3)


if __name__ == "__main__":
    SCRIPT_MODEL = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
