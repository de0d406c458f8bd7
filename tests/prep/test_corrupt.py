#!/usr/bin/python3
"""Damaged data files are named before any work: `foldline inspect` and `foldline train` each
refuse a truncated file, a flipped bit in an image, a label, a path or the user-block seal, a
wrong schema version and a file that is not HDF5, with one line on stderr naming the file (and
the image row where one is at fault), exit status 1, and no training started. Readers never
take HDF5 file locks, so a data file locked by another process (NFS, Lustre) still reads.
A run remembers the data file its full pass read (RUN_DIR/verified.txt) and does not read it
again at its next start unless something about the file changed.

The damage is done at byte offsets found by content (the exact pixel, label and path bytes),
not through HDF5, and the seal is rewritten here from its documented layout (an independent
writer of it) where a test needs a file that is damaged in meaning but intact in checksum.
"""

import fcntl
import os
import struct
import sys
import zlib

from fltest import prep as common  # noqa: E402

import h5py  # noqa: E402
import numpy as np  # noqa: E402

PREFIX = "foldline: error: "
USERBLOCK = 4096

CONFIG = """run = {{ name = "t"; out_dir = "{out}"; seed = 1; threads = 1; }};
data = {{ file = "{data}"; mean = [0.5]; std = [0.25]; verify = "{verify}"; cache = "{cache}"; }};
folds = {{ use = [0]; }};
models = ( {{ name = "m"; backbone = "smallcnn"; epochs = 1; batch = 8;
             optimizer = {{ type = "adam"; lr = 1e-3; }}; }} );
"""


def identity(path):
    """The line verified.txt holds for the data file at path (dataset/verified.h's layout), from
    os.stat and the CRC-32 the seal records: an independent writer of it."""
    st = os.stat(path)
    with open(path, "rb") as f:
        crc, = struct.unpack("<I", f.read(USERBLOCK)[40:44])
    ns = lambda t: "%d.%09d" % divmod(t, 10**9)  # noqa: E731
    return "%s\tsize %d mtime %s ctime %s inode %d seal %08x" % (
        os.path.realpath(path), st.st_size, ns(st.st_mtime_ns), ns(st.st_ctime_ns), st.st_ino, crc)


def reseal(path):
    """Rewrites the seal of a sealed file after an edit (dataset/h5seal.c's layout): the file
    length, the CRC-32 of bytes [4096, covered_end), and the block's own CRC-32."""
    with open(path, "r+b") as f:
        data = f.read()
        assert data[:16] == b"foldline-sealed\n"
        covered_end, = struct.unpack("<Q", data[32:40])
        block = bytearray(data[:USERBLOCK])
        block[24:32] = struct.pack("<Q", len(data))
        block[40:44] = struct.pack("<I", zlib.crc32(data[USERBLOCK:covered_end]))
        block[USERBLOCK - 4:] = struct.pack("<I", zlib.crc32(bytes(block[:USERBLOCK - 4])))
        f.seek(0)
        f.write(block)


class CorruptData(common.TempDirCase):

    @classmethod
    def setUpClass(cls):
        import tempfile
        cls._cls_tmp = tempfile.TemporaryDirectory(prefix="foldline-corrupt-")
        src = os.path.join(cls._cls_tmp.name, "src")
        common.simple_layout(src, [6, 6, 6], size=12, seed=3, n_test=4)
        cls.pristine = os.path.join(cls._cls_tmp.name, "data.h5")
        res = common.prep(src, cls.pristine, "--size", "8", "--folds", "2", "--quiet")
        assert res.rc == 0, res.stderr
        with open(cls.pristine, "rb") as f:
            cls.bytes = f.read()
        with h5py.File(cls.pristine, "r") as f:
            cls.images = {s: f[s + "/images"][()] for s in ("train", "test")}
            cls.labels = f["train/labels"][()]
            cls.paths = {s: [p.decode() for p in f[s + "/paths"][()]] for s in ("train", "test")}

    @classmethod
    def tearDownClass(cls):
        cls._cls_tmp.cleanup()

    def setUp(self):
        super().setUp()
        self.data = os.path.join(self.tmp, "data.h5")
        with open(self.data, "wb") as f:
            f.write(self.bytes)
        self.runs = os.path.join(self.tmp, "runs")

    # ------------------------------------------------------------------ helpers

    def offset_of(self, needle):
        """The one offset at which needle occurs in the pristine file."""
        at = self.bytes.find(needle)
        self.assertGreaterEqual(at, 0, "bytes not found in the file")
        self.assertEqual(self.bytes.find(needle, at + 1), -1, "bytes occur twice in the file")
        return at

    def flip(self, offset, mask=0x04):
        with open(self.data, "r+b") as f:
            f.seek(offset)
            b = f.read(1)[0]
            f.seek(offset)
            f.write(bytes([b ^ mask]))

    def fails(self, res, *needles):
        self.assertEqual(res.rc, 1, "rc %d\nstdout: %s\nstderr: %s" % (res.rc, res.stdout, res.stderr))
        self.assertTrue(res.stderr.endswith("\n") and res.stderr.count("\n") == 1,
                        "stderr is not one line: %r" % res.stderr)
        self.assertTrue(res.stderr.startswith(PREFIX), res.stderr)
        for n in needles:
            self.assertIn(n, res.stderr)
        return res.stderr

    def config(self, verify="full", cache="none"):
        path = os.path.join(self.tmp, "t.cfg")
        with open(path, "w") as f:
            f.write(CONFIG.format(out=self.runs, data=self.data, verify=verify, cache=cache))
        return path

    def train(self, verify="full", cache="none", *opts):
        return common.run("train", self.config(verify, cache), *opts, timeout=300)

    def record(self):
        return os.path.join(self.runs, "t", "verified.txt")

    def train_ok(self, *opts):
        res = self.train("full", "none", *opts)
        self.assertEqual(res.rc, 0, res.stdout + res.stderr)
        self.assertEqual(res.stderr, "")
        return res

    def read_all(self, res):
        n = len(self.paths["train"]) + len(self.paths["test"])
        self.assertIn("train: %s: %d image checksums verified" % (self.data, n), res.stdout)
        self.assertNotIn("verified before", res.stdout)

    def read_none(self, res):
        self.assertIn("train: data file %s verified before (%s), not read again; data.verify = \"full\" "
                      "reads it again after any change" % (self.data, self.record()), res.stdout)
        self.assertNotIn("checksums verified", res.stdout)

    def assertRefusedByBoth(self, *needles):
        """inspect and train both refuse the file, naming it; train starts no job."""
        line = self.fails(common.inspect(self.data), self.data, *needles)
        res = self.train()
        self.fails(res, self.data, *needles)
        self.assertNotIn("epoch", res.stdout)
        self.assertFalse(os.path.exists(os.path.join(self.runs, "t", "m")), "a job started")
        return line

    # ------------------------------------------------------------------ tests

    def test_pristine_file_is_sealed_and_checksummed(self):
        res = common.inspect(self.data)
        self.assertEqual(res.rc, 0, res.stderr)
        self.assertIn("sealed", res.stdout)
        n = len(self.paths["train"]) + len(self.paths["test"])
        self.assertIn("%d image checksums verified" % n, res.stdout)
        with h5py.File(self.data, "r") as f:  # plain HDF5 to other readers
            self.assertTrue(f["train/images"].fletcher32)
            self.assertEqual(f.userblock_size, USERBLOCK)

    def test_truncated_file(self):
        with open(self.data, "r+b") as f:
            f.truncate(len(self.bytes) * 6 // 10)
        self.assertRefusedByBoth("truncated", "%d bytes" % (len(self.bytes) * 6 // 10), str(len(self.bytes)))

    def test_file_with_bytes_appended(self):
        with open(self.data, "ab") as f:
            f.write(b"\0" * 100)
        self.assertRefusedByBoth(str(len(self.bytes)))

    def test_flipped_bit_in_a_train_image(self):
        r = 7
        at = self.offset_of(self.images["train"][r].tobytes())
        self.flip(at + 5)
        self.assertRefusedByBoth("/train/images row %d" % r, self.paths["train"][r])

    def test_flipped_bit_in_a_test_image(self):
        # test images are read only after training: the check before training must find it
        r = 2
        at = self.offset_of(self.images["test"][r].tobytes())
        self.flip(at)
        self.assertRefusedByBoth("/test/images row %d" % r, self.paths["test"][r])

    def test_flipped_bit_in_the_labels(self):
        at = self.offset_of(self.labels.astype("<i4").tobytes())
        self.flip(at + 4 * 3, mask=0x01)  # still a valid class id: only the checksum can tell
        self.assertRefusedByBoth("corrupt")

    def test_flipped_bit_in_a_path(self):
        at = self.offset_of(self.paths["train"][4].encode())
        self.flip(at + 2, mask=0x01)
        self.assertRefusedByBoth("corrupt")

    def test_flipped_bit_in_the_seal(self):
        self.flip(40)  # the recorded checksum
        self.assertRefusedByBoth("corrupt")

    def test_wrong_schema_version_is_named_even_when_the_seal_matches(self):
        with h5py.File(self.data, "r+") as f:
            f.attrs["version"] = np.int32(2)
        reseal(self.data)
        self.assertRefusedByBoth("version 2", "rerun foldline prep")

    def test_reseal_oracle_matches_foldline(self):
        # the independent seal writer above agrees with foldline's on an unchanged file
        reseal(self.data)
        with open(self.data, "rb") as f:
            self.assertEqual(f.read(), self.bytes)

    def test_not_an_hdf5_file(self):
        with open(self.data, "wb") as f:
            f.write(b"class_name,image_path,target\n" * 50)
        self.assertRefusedByBoth("not an HDF5 file")

    def test_corrupt_image_with_the_memory_cache_is_named_before_training(self):
        # data.cache = "memory" reads every image before the first job: that read is the check
        r = 9
        at = self.offset_of(self.images["train"][r].tobytes())
        self.flip(at + 1)
        res = self.train(cache="memory")
        self.fails(res, self.data, "/train/images row %d" % r, self.paths["train"][r])
        self.assertNotIn("epoch", res.stdout)
        self.assertFalse(os.path.exists(os.path.join(self.runs, "t", "m")), "a job started")

    def test_corrupt_image_with_verify_open_is_still_named_not_trained_on(self):
        # data.verify = "open" skips the pass before training; the chunk's checksum still
        # stops the job that reads it, naming the rows, instead of training on bad pixels
        at = self.offset_of(self.images["train"][1].tobytes())
        self.flip(at + 3)
        res = self.train(verify="open")
        self.fails(res, self.data, "/train/images row 1", self.paths["train"][1], "Fletcher32")
        self.assertFalse(os.path.exists(os.path.join(self.runs, "t", "m", "fold0", "preds.h5")))

    def test_a_rerun_does_not_read_an_unchanged_data_file_again(self):
        self.read_all(self.train_ok())
        with open(self.record()) as f:
            self.assertEqual(f.read(), "foldline-verified 1\n%s\n" % identity(self.data))
        self.read_none(self.train_ok())
        # not a byte of pixels is read: a damaged image whose file still shows the recorded
        # identity (written here, as no real change could leave it) goes unnoticed at the start
        r = 4
        self.flip(self.offset_of(self.images["train"][r].tobytes()) + 2)
        with open(self.record(), "w") as f:
            f.write("foldline-verified 1\n%s\n" % identity(self.data))
        self.read_none(self.train_ok())  # the job is complete: nothing else reads row 4

    def test_a_changed_data_file_is_read_again_and_its_damage_named(self):
        self.train_ok()
        before = os.stat(self.data)
        r = 5
        self.flip(self.offset_of(self.images["train"][r].tobytes()) + 6)  # same size, a new mtime
        self.assertEqual(os.stat(self.data).st_size, before.st_size)
        for _ in range(2):
            res = self.train()
            self.fails(res, self.data, "/train/images row %d" % r, self.paths["train"][r])
            self.assertNotIn("verified before", res.stdout)
            # a writer that puts the old mtime back (cp -p, rsync --inplace) still changes the ctime
            os.utime(self.data, ns=(before.st_atime_ns, before.st_mtime_ns))

    def test_a_record_that_does_not_match_is_ignored_and_rewritten(self):
        self.train_ok()
        line = identity(self.data)
        size = "size %d " % os.stat(self.data).st_size
        for record in ("foldline-verified 1\n%s\n" % line.replace(size, "size 1 "),  # another size
                       "%s\n" % line,  # not a record
                       None):  # --restart
            with open(self.record(), "w") as f:
                f.write(record or "foldline-verified 1\n%s\n" % line)
            res = self.train_ok(*([] if record else ["--restart"]))
            self.read_all(res)
            with open(self.record()) as f:
                self.assertEqual(f.read(), "foldline-verified 1\n%s\n" % line)

    def test_readers_take_no_file_locks(self):
        # another process holds an exclusive lock, as a writer or a stale NFS lock would
        # (HDF5's own readers take a shared lock and would fail: "unable to lock file")
        self.assertNotIn("HDF5_USE_FILE_LOCKING", os.environ)
        with open(self.data, "rb") as held:
            fcntl.flock(held, fcntl.LOCK_EX)
            res = common.inspect(self.data)
            self.assertEqual(res.rc, 0, res.stderr)
            res = self.train()
            self.assertEqual(res.rc, 0, res.stdout + res.stderr)
            preds = os.path.join(self.runs, "t", "m", "fold0", "preds.h5")
            with open(preds, "rb") as held_preds:
                fcntl.flock(held_preds, fcntl.LOCK_EX)
                res = common.inspect(preds)
                self.assertEqual(res.rc, 0, res.stderr)
                self.assertIn("fold:        0", res.stdout)


load_tests = common.concurrent_load_tests

if __name__ == "__main__":
    common.main()
