#!/usr/bin/python3
"""`foldline prep` on bad input.

Every data error: exit status 1, exactly one line on stderr that starts "foldline: error: " and names the
thing at fault, no file at OUT, and nothing new in OUT's directory (no `.<OUT>.tmp.XXXXXX` left behind).
Usage errors: exit status 2, same one-line rule, and nothing written.
"""

import csv
import io
import os
import random
import struct
import sys
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

PREFIX = "foldline: error: "


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


class BadInputCase(common.TempDirCase):

    def setUp(self):
        super().setUp()
        self.src = os.path.join(self.tmp, "src")
        # 3 classes x 5 rows, 16x16 JPEGs (real JPEG files, so truncating one means something)
        self.lay = common.simple_layout(self.src, [5, 5, 5], size=16, seed=11, n_test=3, fmt="JPEG")
        self.outdir = os.path.join(self.tmp, "out")
        os.mkdir(self.outdir)
        self.out = os.path.join(self.outdir, "data.h5")
        self.train_csv = os.path.join(self.src, "train.csv")
        self.test_csv = os.path.join(self.src, "test.csv")

    # ------------------------------------------------------------------ helpers

    def rewrite_train(self, rows=None, header=("class_name", "image_path", "target"), **kw):
        common.write_csv(self.train_csv, header, self.lay.train if rows is None else rows, **kw)

    def assertFails(self, *must_contain, opts=(), rc=1, out=None, watch=None):
        """Run prep SRC OUT OPTS; check the failure contract; return the stderr line."""
        out = out or self.out
        watch = watch or os.path.dirname(out)
        before = sorted(os.listdir(watch)) if os.path.isdir(watch) else None
        res = common.prep(self.src, out, *opts)
        self.assertEqual(res.rc, rc, "exit status %d, expected %d\nstdout: %s\nstderr: %s"
                         % (res.rc, rc, res.stdout, res.stderr))
        self.assertTrue(res.stderr.endswith("\n") and res.stderr.count("\n") == 1,
                        "stderr is not exactly one line: %r" % res.stderr)
        line = res.stderr.rstrip("\n")
        self.assertTrue(line.startswith(PREFIX), "stderr does not start with %r: %r" % (PREFIX, line))
        for s in must_contain:
            self.assertIn(str(s), line)
        self.assertFalse(os.path.lexists(out), "%s exists after a failed prep" % out)
        after = sorted(os.listdir(watch)) if os.path.isdir(watch) else None
        self.assertEqual(after, before, "OUT's directory changed: %s -> %s" % (before, after))
        return line

    def row_line(self, rows, i, header=("class_name", "image_path", "target"), crlf=False):
        """Independent oracle: the 1-based physical line on which data row i starts."""
        buf = io.StringIO()
        wr = csv.writer(buf, lineterminator="\r\n" if crlf else "\n")
        wr.writerow(header)
        for r in rows[:i]:
            wr.writerow(r)
        return buf.getvalue().count("\n") + 1


class MissingFiles(BadInputCase):

    def test_missing_train_csv(self):
        os.unlink(self.train_csv)
        self.assertFails(self.train_csv)

    def test_missing_test_csv(self):
        os.unlink(self.test_csv)
        self.assertFails(self.test_csv)

    def test_missing_train_image(self):
        path = self.lay.train[4][1]
        os.unlink(self.lay.train_file(path))
        self.assertFails(path)

    def test_missing_test_image(self):
        path = self.lay.test[1][0]
        os.unlink(self.lay.test_file(path))
        self.assertFails(path)

    def test_listed_file_not_an_image(self):
        path = self.lay.train[6][1]
        with open(self.lay.train_file(path), "wb") as f:
            f.write(bytes(random.Random(3).randrange(256) for _ in range(500)))
        self.assertFails(path)

    def test_truncated_jpeg_undecodable(self):
        path = self.lay.train[9][1]
        f = self.lay.train_file(path)
        with open(f, "rb") as fh:
            data = fh.read()
        self.assertEqual(data[:2], b"\xff\xd8")
        with open(f, "wb") as fh:
            fh.write(data[:20])
        self.assertFails(path)

    def test_jpeg_cut_in_half_is_refused_not_padded(self):
        path = self.lay.train[9][1]
        f = self.lay.train_file(path)
        buf = io.BytesIO()
        common.structured_image(random.Random(9), 200, 200).save(buf, "JPEG", quality=90)
        data = buf.getvalue()
        with open(f, "wb") as fh:  # headers and most of the scan: libjpeg would pad the rest
            fh.write(data[: len(data) * 7 // 10])
        self.assertFails(path, "truncated")

    def test_png_declaring_a_decompression_bomb(self):
        # 100000 x 100000 pixels in 100 bytes: refused from the header, before any allocation
        path = self.lay.train[3][1]
        ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 0, 0, 0, 0)
        data = (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
                + png_chunk(b"IEND", b""))
        with open(self.lay.train_file(path), "wb") as f:
            f.write(data)
        self.assertFails(path, "100000 x 100000", "decompression bomb")

    def test_jpeg_declaring_a_decompression_bomb(self):
        path = self.lay.train[2][1]
        f = self.lay.train_file(path)
        with open(f, "rb") as fh:
            data = fh.read()
        i = data.index(b"\xff\xc0")  # baseline frame header: length, precision, height, width
        with open(f, "wb") as fh:
            fh.write(data[:i + 5] + struct.pack(">HH", 60000, 60000) + data[i + 9:])
        self.assertFails(path, "60000 x 60000", "decompression bomb")

    def test_corrupt_png(self):
        path = self.lay.train[3][1]
        f = self.lay.train_file(path)
        img = common.structured_image(random.Random(5), 64, 64)
        buf = io.BytesIO()
        img.save(buf, "PNG")
        data = buf.getvalue()
        with open(f, "wb") as fh:  # a PNG cut in the middle of its image data (name says .JPEG)
            fh.write(data[: len(data) // 2])
        self.assertFails(path)


class CsvErrors(BadInputCase):

    def test_missing_column_target(self):
        self.rewrite_train([r[:2] for r in self.lay.train], header=("class_name", "image_path"))
        self.assertFails("missing column 'target'", self.train_csv)

    def test_missing_column_image_path(self):
        self.rewrite_train([(r[0], r[2]) for r in self.lay.train], header=("class_name", "target"))
        self.assertFails("missing column 'image_path'", self.train_csv)

    def test_missing_column_class_name(self):
        self.rewrite_train([r[1:] for r in self.lay.train], header=("image_path", "target"))
        self.assertFails("missing column 'class_name'", self.train_csv)

    def test_test_csv_missing_column_image_path(self):
        common.write_csv(self.test_csv, ["path"], self.lay.test)
        self.assertFails("missing column 'image_path'", self.test_csv)

    def bad_target(self, i, value, **kw):
        rows = [list(r) for r in self.lay.train]
        rows[i][2] = value
        self.rewrite_train(rows, **kw)
        line = self.row_line(rows, i, crlf=kw.get("crlf", False))
        return self.assertFails("train.csv:%d" % line, value)  # (an empty value: just the line)

    def test_target_not_integer_word(self):
        self.bad_target(3, "abc")

    def test_target_not_integer_decimal(self):
        self.bad_target(7, "1.5")

    def test_target_negative(self):
        self.bad_target(11, "-1")

    def test_target_beyond_int32(self):
        self.bad_target(5, "99999999999")

    def test_target_that_would_size_a_huge_class_table(self):
        # 2e9 fits an int32, but would make a class table of 2^31 entries: refused from the line
        self.assertIn("target 2000000000 is beyond the 1048576 classes", self.bad_target(6, "2000000000"))

    def test_target_empty(self):
        self.bad_target(2, "")

    def test_target_error_line_with_bom_and_crlf(self):
        self.bad_target(8, "x7", bom=True, crlf=True)

    def test_target_error_line_counts_physical_lines(self):
        # class names with a quoted line break make rows span two physical lines each
        rows = [list(r) for r in self.lay.train]
        for r in rows:
            if r[2] == 0:
                r[0] = "two\nlines"
        i = max(j for j, r in enumerate(rows) if r[2] != 0)
        rows[i][2] = "bad"
        self.rewrite_train(rows)
        line = self.row_line(rows, i)
        self.assertGreater(line, i + 2)  # the oracle did count the embedded line breaks
        self.assertFails("train.csv:%d" % line, "'bad'")

    def test_duplicate_image_path(self):
        rows = list(self.lay.train) + [self.lay.train[4]]
        self.rewrite_train(rows)
        self.assertFails(self.lay.train[4][1], "listed twice")

    def test_duplicate_image_path_in_another_spelling(self):
        cls, p, t = self.lay.train[4]
        d, base = p.rsplit("/", 1)
        rows = list(self.lay.train) + [(cls, d + "/./" + base, t)]
        self.rewrite_train(rows)
        self.assertFails(d + "/./" + base, "listed twice")

    def test_duplicate_test_image_path(self):
        rows = list(self.lay.test) + [self.lay.test[0]]
        common.write_csv(self.test_csv, ["image_path"], rows)
        self.assertFails(self.lay.test[0][0], "listed twice")

    def test_class_with_fewer_rows_than_folds(self):
        rows = [r for r in self.lay.train if r[2] != 1] + [r for r in self.lay.train if r[2] == 1][:3]
        self.rewrite_train(rows)
        self.assertFails("class001", "fewer than")

    def test_one_class_two_targets(self):
        rows = [list(r) for r in self.lay.train]
        i = max(j for j, r in enumerate(rows) if r[2] == 2)
        rows[i][2] = 0
        self.rewrite_train(rows)
        self.assertFails("train.csv:%d" % (i + 2))

    def test_target_ids_with_a_gap(self):
        # targets 0, 1, 7: ids 2..6 name no class
        rows = [(c, p, 7 if t == 2 else t) for c, p, t in self.lay.train]
        self.rewrite_train(rows)
        self.assertFails(self.train_csv)

    def test_row_with_too_few_fields(self):
        rows = list(self.lay.train)
        with open(self.train_csv, "a") as f:
            f.write("lonely\n")
        self.assertFails("train.csv:%d" % self.row_line(rows, len(rows)))

    def test_unclosed_quote(self):
        with open(self.train_csv, "a") as f:
            f.write('"class000,class000/img_0.JPEG,0\n')
        self.assertFails(self.train_csv)

    def test_empty_train_csv(self):
        open(self.train_csv, "wb").close()
        self.assertFails("empty CSV", self.train_csv)

    def test_header_only_train_csv(self):
        self.rewrite_train([])
        self.assertFails("empty CSV", self.train_csv)

    def test_empty_test_csv(self):
        open(self.test_csv, "wb").close()
        self.assertFails("empty CSV", self.test_csv)


class ClassesAndLines(BadInputCase):
    """test.csv errors name test.csv and its physical line (the header is line 1, a quoted line break
    starts a new line), and a class disagreement names both places: the line here and the line of
    train.csv that said otherwise."""

    def first_line_of_target(self, t):
        return self.row_line(self.lay.train, next(j for j, r in enumerate(self.lay.train) if r[2] == t))

    def test_test_csv_target_beyond_the_classes_names_its_physical_line(self):
        # a note column with a quoted line break in every row, CRLF line ends and a UTF-8 BOM
        header = ("image_path", "note", "target")
        rows = [(r[0], "seen\ntwice", k % 3) for k, r in enumerate(self.lay.test)]
        rows[-1] = (rows[-1][0], rows[-1][1], 3)  # train.csv has classes 0..2
        common.write_csv(self.test_csv, header, rows, bom=True, crlf=True)
        line = self.row_line(rows, len(rows) - 1, header=header, crlf=True)
        self.assertEqual(line, 1 + 2 * (len(rows) - 1) + 1)  # the oracle counted the quoted line breaks
        msg = self.assertFails("%s:%d: target 3" % (self.test_csv, line), "%s has 3 classes" % self.train_csv)
        self.assertNotIn("row", msg)

    def test_test_csv_class_name_that_disagrees_with_its_target(self):
        header = ("image_path", "class_name", "target")
        rows = [(r[0], "class%03d" % (k % 3), k % 3) for k, r in enumerate(self.lay.test)]
        rows[1] = (rows[1][0], "class002", 0)
        common.write_csv(self.test_csv, header, rows)
        self.assertFails("%s:3: target 0 is class 'class002' here but 'class000' in %s:%d"
                         % (self.test_csv, self.train_csv, self.first_line_of_target(0)))

    def test_test_csv_class_name_that_train_csv_does_not_have(self):
        header = ("image_path", "class_name")
        rows = [(r[0], "class%03d" % (k % 3)) for k, r in enumerate(self.lay.test)]
        rows[2] = (rows[2][0], "class009")
        common.write_csv(self.test_csv, header, rows)
        self.assertFails("%s:4: class 'class009' is not a class of %s" % (self.test_csv, self.train_csv))

    def test_test_csv_class_names_and_targets_that_agree_are_read(self):
        header = ("image_path", "class_name", "target")
        rows = [(r[0], "class%03d" % (k % 3), k % 3) for k, r in enumerate(self.lay.test)]
        rows[0] = (rows[0][0], "", 0)  # an empty class_name is no claim
        common.write_csv(self.test_csv, header, rows)
        res = common.prep(self.src, self.out, "--quiet")
        self.assertEqual(res.rc, 0, res.stderr)
        self.assertEqual(list(common.read_data(self.out)["test"]["labels"]), [k % 3 for k in range(len(rows))])

    def test_a_target_with_two_class_names_names_the_earlier_line(self):
        rows = [list(r) for r in self.lay.train]
        i = max(j for j, r in enumerate(rows) if r[2] == 1)
        rows[i][0] = "other"
        self.rewrite_train(rows)
        self.assertFails("%s:%d: target 1 is class 'other' here but 'class001' at line %d"
                         % (self.train_csv, i + 2, self.first_line_of_target(1)))

    def test_a_class_name_with_two_targets_names_the_earlier_line(self):
        rows = [list(r) for r in self.lay.train]
        i = max(j for j, r in enumerate(rows) if r[2] == 2)
        rows[i][2] = 3  # a target no earlier row has, for a class that has one
        self.rewrite_train(rows)
        self.assertFails("%s:%d: class 'class002' has target 3 here but 2 at line %d"
                         % (self.train_csv, i + 2, self.first_line_of_target(2)))


class PathEscapes(BadInputCase):
    """image_path must name a file inside train/ (test/): the one line names the CSV and the line."""

    def escape(self, bad, part="train"):
        # the target really exists, so a refusal is about the path, not a missing file
        common.save_image(common.structured_image(random.Random(1), 16, 16), os.path.join(self.src, "x.JPEG"))
        if part == "train":
            rows = [list(r) for r in self.lay.train]
            rows[5][1] = bad
            self.rewrite_train(rows)
            where = "%s:%d:" % (self.train_csv, self.row_line(rows, 5))
        else:
            rows = [list(r) for r in self.lay.test]
            rows[1][0] = bad
            common.write_csv(self.test_csv, ["image_path"], rows)
            where = "%s:%d:" % (self.test_csv, self.row_line(rows, 1, header=("image_path",)))
        line = self.assertFails(where, "image_path", "HINT")
        if bad:
            self.assertIn(bad, line)

    def test_parent_dir_path_refused(self):
        self.escape("../x.JPEG")

    def test_absolute_path_refused(self):
        self.escape("/etc/passwd")

    def test_double_slash_absolute_path_refused(self):
        self.escape("//etc/passwd")

    def test_nested_parent_dir_path_refused(self):
        self.escape("class000/../../x.JPEG")

    def test_dot_then_parent_dir_path_refused(self):
        self.escape("./../x.JPEG")

    def test_parent_dir_that_stays_inside_is_refused_too(self):
        # "a/../b" stays inside, but ".." is refused wherever it appears: one rule, no resolving
        self.escape("class000/../class001/img_0.JPEG")

    def test_trailing_parent_dir_refused(self):
        self.escape("class000/..")

    def test_empty_path_refused(self):
        self.escape("")

    def test_a_line_break_in_a_path_stays_on_one_line(self):
        # a quoted field may hold a line break; the error is still one line, the break escaped
        rows = [list(r) for r in self.lay.train]
        rows[2][1] = "class000/no\nsuch.JPEG"
        self.rewrite_train(rows)
        self.assertFails("class000/no\\nsuch.JPEG", "%s:%d" % (self.train_csv, self.row_line(rows, 2)))

    def test_test_csv_parent_dir_path_refused(self):
        self.escape("../x.JPEG", part="test")

    def test_test_csv_absolute_path_refused(self):
        self.escape("/tmp/x.JPEG", part="test")


class OutputErrors(BadInputCase):

    def test_out_exists_without_force(self):
        with open(self.out, "wb") as f:
            f.write(b"precious bytes\x00\x01")
        before = sorted(os.listdir(self.outdir))
        res = common.prep(self.src, self.out)
        self.assertEqual(res.rc, 2, res.stderr)  # the path named on the command line: a usage mistake
        self.assertEqual(res.stderr.count("\n"), 1, res.stderr)
        self.assertTrue(res.stderr.startswith(PREFIX), res.stderr)
        self.assertIn("already exists", res.stderr)
        self.assertIn("--force", res.stderr)
        with open(self.out, "rb") as f:
            self.assertEqual(f.read(), b"precious bytes\x00\x01")
        self.assertEqual(sorted(os.listdir(self.outdir)), before)

    def test_out_parent_missing(self):
        missing = os.path.join(self.tmp, "no", "such")
        self.assertFails(missing, out=os.path.join(missing, "d.h5"), watch=self.tmp)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "no")))

    def test_out_parent_is_regular_file(self):
        plain = os.path.join(self.outdir, "plain")
        with open(plain, "w") as f:
            f.write("x")
        self.assertFails(plain, out=os.path.join(plain, "d.h5"), watch=self.outdir)

    def test_out_is_a_directory(self):
        d = os.path.join(self.outdir, "isdir.h5")
        os.mkdir(d)
        before = sorted(os.listdir(self.outdir))
        res = common.prep(self.src, d, "--force")
        self.assertEqual(res.rc, 2, res.stdout + res.stderr)
        self.assertEqual(res.stderr.count("\n"), 1, res.stderr)
        self.assertTrue(res.stderr.startswith(PREFIX), res.stderr)
        self.assertIn("isdir.h5: is a directory", res.stderr)  # up front, not at the rename after decoding
        self.assertNotIn("rename", res.stderr)
        self.assertTrue(os.path.isdir(d))
        self.assertEqual(sorted(os.listdir(self.outdir)), before)


class HostileOutputs(BadInputCase):
    """OUT is never a device, FIFO, socket or directory (nor a link to one), --force or not, and never
    one of SRC's files; a symbolic link to a regular file is written through, the link kept."""

    def refused(self, out, *needles, force=True):
        st = os.lstat(out)
        before = sorted(os.listdir(self.outdir))
        res = common.prep(self.src, out, *(["--force"] if force else []))
        self.assertEqual(res.rc, 2, res.stdout + res.stderr)
        self.assertEqual(res.stderr.count("\n"), 1, res.stderr)
        self.assertTrue(res.stderr.startswith(PREFIX), res.stderr)
        for n in needles:
            self.assertIn(n, res.stderr)
        after = os.lstat(out)
        self.assertEqual((after.st_ino, after.st_mode, after.st_size, after.st_mtime_ns),
                         (st.st_ino, st.st_mode, st.st_size, st.st_mtime_ns))
        self.assertEqual(sorted(os.listdir(self.outdir)), before)
        return res.stderr

    def test_dev_null_is_left_alone_with_force(self):
        self.refused("/dev/null", "/dev/null: is a character device", "with or without --force")
        self.assertTrue(os.path.exists("/dev/null") and not os.path.isfile("/dev/null"))

    def test_a_fifo_is_refused_without_blocking(self):
        fifo = os.path.join(self.outdir, "fifo.h5")
        os.mkfifo(fifo)
        self.refused(fifo, "is a FIFO")

    def test_a_socket_is_refused(self):
        import socket
        path = os.path.join(self.outdir, "sock.h5")
        s = socket.socket(socket.AF_UNIX)
        s.bind(path)
        try:
            self.refused(path, "is a socket")
        finally:
            s.close()

    def test_a_link_to_stdout_is_refused(self):
        link = os.path.join(self.outdir, "stdout.h5")
        os.symlink("/proc/self/fd/1", link)  # foldline's stdout is the test's pipe
        self.refused(link, "is a symbolic link to a FIFO")

    def test_a_link_to_a_device_is_refused(self):
        link = os.path.join(self.outdir, "null.h5")
        os.symlink("/dev/null", link)
        self.refused(link, "is a symbolic link to a character device")

    def test_a_file_of_the_source_is_refused_by_inode(self):
        alias = os.path.join(self.outdir, "alias.h5")
        os.link(self.train_csv, alias)  # another name for SRC/train.csv
        with open(self.train_csv, "rb") as f:
            before = f.read()
        self.refused(alias, "train.csv", "which this command reads")
        with open(self.train_csv, "rb") as f:
            self.assertEqual(f.read(), before)

    def test_a_link_to_a_regular_file_is_written_through(self):
        target = os.path.join(self.tmp, "target.h5")
        with open(target, "wb") as f:
            f.write(b"old")
        link = os.path.join(self.outdir, "link.h5")
        os.symlink(target, link)
        res = common.prep(self.src, link, "--force", "--quiet")
        self.assertEqual(res.rc, 0, res.stderr)
        self.assertTrue(os.path.islink(link))
        self.assertEqual(os.readlink(link), target)
        d = common.read_data(target)
        self.assertEqual(len(d["train"]["labels"]), 15)
        self.assertEqual(sorted(os.listdir(self.outdir)), ["link.h5"])  # no temporary file beside the link

    def test_classes_with_a_csv_layout_is_refused(self):
        names = os.path.join(self.tmp, "names.txt")
        with open(names, "w") as f:
            f.write("a\nb\nc\n")
        self.assertFails("--classes", "train.csv", opts=("--classes", names), rc=2)

    def test_threads_beyond_the_cores_are_clamped_with_a_warning(self):
        res = common.prep(self.src, self.out, "--threads", "1000")
        self.assertEqual(res.rc, 0, res.stderr)
        self.assertIn("warning: prep: --threads 1000 is more than the", res.stderr)
        m = re_search(r"on (\d+) thread(s?)\n", res.stdout)
        self.assertLessEqual(int(m.group(1)), os.cpu_count())
        self.assertEqual(m.group(2), "" if m.group(1) == "1" else "s")  # "1 thread", "2 threads"

    def test_one_thread_is_singular(self):
        res = common.prep(self.src, self.out, "--threads", "1")
        self.assertEqual(res.rc, 0, res.stderr)
        self.assertIn(" on 1 thread\n", res.stdout)

    def test_a_grey_source_with_the_defaults_is_said_once(self):
        grey = os.path.join(self.tmp, "grey")
        common.simple_layout(grey, [5, 5], size=12, seed=3, n_test=2, mode="L", fmt="png")
        res = common.prep(grey, self.out)
        self.assertEqual(res.rc, 0, res.stderr)
        self.assertEqual(res.stdout.count("note: the source's images are grey, 12x12"), 1, res.stdout)
        self.assertIn("3x224x224", res.stdout)
        self.assertIn("--channels 1 --size 12x12 keeps the source's shape", res.stdout)
        os.unlink(self.out)
        res = common.prep(grey, self.out, "--channels", "1")  # asked for: no note
        self.assertEqual(res.rc, 0, res.stderr)
        self.assertNotIn("note:", res.stdout)
        os.unlink(self.out)
        res = common.prep(self.src, self.out)  # a colour source: no note
        self.assertNotIn("note:", res.stdout)


class CsvEncodings(BadInputCase):
    """A CSV that is not UTF-8 text is named for what it is, in one short line."""

    def write_raw(self, data):
        with open(self.train_csv, "wb") as f:
            f.write(data)

    def text(self):
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows([("class_name", "image_path", "target")] + self.lay.train)
        return buf.getvalue()

    def test_cr_line_endings_are_named_with_the_fix(self):
        self.write_raw(self.text().replace("\n", "\r").encode())
        line = self.assertFails("train.csv: has CR line endings", "dos2unix", "tr ")
        self.assertLess(len(line), 400)  # not the file's text

    def test_utf16_with_a_bom_names_the_encoding(self):
        self.write_raw(self.text().encode("utf-16"))
        self.assertFails("train.csv: is UTF-16", "iconv")

    def test_utf16_without_a_bom_names_the_encoding(self):
        self.write_raw(self.text().encode("utf-16-le"))
        self.assertFails("train.csv: looks like UTF-16", "iconv")

    def test_binary_data_names_the_byte(self):
        data = self.text().encode()
        self.write_raw(data[:40] + b"\x89PNG\x00\x00\xff" + data[40:])
        line = self.assertFails("train.csv: binary data at byte 44")
        self.assertNotIn("\\x", line)  # no raw bytes


def re_search(pattern, text):
    import re
    m = re.search(pattern, text)
    assert m, "%r not in %r" % (pattern, text)
    return m


class UsageErrors(BadInputCase):

    def test_unknown_option(self):
        self.assertFails("--bogus", opts=("--bogus",), rc=2)

    def test_size_zero(self):
        self.assertFails("--size", opts=("--size", "0"), rc=2)

    def test_channels_2(self):
        self.assertFails("--channels", opts=("--channels", "2"), rc=2)

    def test_folds_1(self):
        self.assertFails("--folds", opts=("--folds", "1"), rc=2)

    def test_option_without_value(self):
        self.assertFails("--folds", opts=("--folds",), rc=2)

    def test_src_that_does_not_exist_or_is_a_file(self):
        # a mistake on the command line (2), said as such: not "cannot open CSV"
        for src, what in ((os.path.join(self.tmp, "no-such-src"), "SRC does not exist"),
                          (self.train_csv, "SRC is not a folder")):
            before = sorted(os.listdir(self.outdir))
            res = common.prep(src, self.out)
            self.assertEqual(res.rc, 2, res.stderr)
            self.assertEqual(res.stderr, "%s%s: %s HINT: SRC is the folder that holds train.csv and test.csv (or the "
                             "IDX files): foldline prep SRC OUT.h5\n" % (PREFIX, src, what))
            self.assertEqual(sorted(os.listdir(self.outdir)), before)

    def test_missing_out(self):
        before = sorted(os.listdir(self.tmp))
        res = common.run("prep", self.src)
        self.assertEqual(res.rc, 2, res.stderr)
        self.assertEqual(res.stderr.count("\n"), 1, res.stderr)
        self.assertTrue(res.stderr.startswith(PREFIX), res.stderr)
        self.assertEqual(sorted(os.listdir(self.tmp)), before)


load_tests = common.concurrent_load_tests

if __name__ == "__main__":
    common.main()
