#!/usr/bin/python3
"""check_layout.py -- the folders' include direction, checked on every #include "..." of the sources.

Dependencies run one way, from the command down to the base code:

    launch -> config -> trainer -> {vote, dist} -> dataset -> base

A folder may include itself and the folders below it; vote/ and dist/ never include each other (vote
is the gather step and never starts MPI). trainer/torch/ counts as trainer/. tests/ may include
anything. A C/C++ source in a top-level folder that is not in the order fails too: a new folder gets
its place here first.

    /usr/bin/python3 tools/check_layout.py [REPO_ROOT]     (ctest: layout)

Exit 0 when every include follows the direction, else 1 with one line per offending include
(file:line), and 2 when the root cannot be read.
"""
import os
import re
import sys

# What each folder may include (besides system headers).
ALLOWED = {
    "base": {"base"},
    "dataset": {"dataset", "base"},
    "dist": {"dist", "dataset", "base"},
    "vote": {"vote", "dataset", "base"},
    "trainer": {"trainer", "vote", "dist", "dataset", "base"},
    "config": {"config", "trainer", "vote", "dist", "dataset", "base"},
    "launch": {"launch", "config", "trainer", "vote", "dist", "dataset", "base"},
}
ORDER = "launch -> config -> trainer -> {vote, dist} -> dataset -> base"
FREE = {"tests", "build", "tools", ".git"}  # not layered (tests may include anything)
SUFFIXES = (".c", ".h", ".cpp", ".hpp", ".cc")
INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"')


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    root = os.path.abspath(root)
    try:
        tops = sorted(os.listdir(root))
    except OSError as e:
        print("check_layout: cannot list %s: %s HINT: pass the repository root" % (root, e.strerror))
        return 2
    bad = []
    checked = 0
    for top in tops:
        if top in FREE or top.startswith(".") or top.startswith("build") or not os.path.isdir(os.path.join(root, top)):
            continue
        for d, dirs, files in os.walk(os.path.join(root, top)):
            dirs.sort()
            for name in sorted(files):
                if not name.endswith(SUFFIXES):
                    continue
                path = os.path.join(d, name)
                rel = os.path.relpath(path, root)
                if top not in ALLOWED:
                    bad.append("%s: a source in %s/, which has no place in the include order HINT: add %s to "
                               "ALLOWED in tools/check_layout.py (order: %s)" % (rel, top, top, ORDER))
                    break
                checked += 1
                with open(path, encoding="utf-8", errors="replace") as f:
                    for lineno, line in enumerate(f, 1):
                        m = INCLUDE.match(line)
                        if not m:
                            continue
                        target = m.group(1)
                        if "/" not in target:  # a header next to the file
                            continue
                        first = target.split("/")[0]
                        if first == ".." or first == ".":
                            bad.append("%s:%d: includes \"%s\" by a relative path HINT: name it from the "
                                       "repository root (\"folder/file.h\")" % (rel, lineno, target))
                        elif first in ALLOWED and first not in ALLOWED[top]:
                            bad.append("%s:%d: includes \"%s\": %s/ may include only %s/ HINT: the order is %s; "
                                       "move the code it needs down, or this code up" %
                                       (rel, lineno, target, top, "/, ".join(sorted(ALLOWED[top])), ORDER))
    for line in bad:
        print(line)
    if bad:
        print("check_layout: %d include(s) against the direction %s" % (len(bad), ORDER))
        return 1
    if checked == 0:
        print("check_layout: no sources under %s HINT: pass the repository root" % root)
        return 2
    print("check_layout: %d files follow %s" % (checked, ORDER))
    return 0


if __name__ == "__main__":
    sys.exit(main())
