"""tests/integration/checklib.py -- what the source checks share
(check_layering.py, check_wire_codes.py, check_one.py): the walk over the
tree's C sources and the scratch tree of their self-tests."""
import os


def c_sources(root, under=".", skip_top=()):
    """(relative path, full path) of every .c/.h under root/under, sorted;
    not in .git, not in a build tree (a directory holding CMakeCache.txt),
    not in the top-level directories named in skip_top."""
    for dirpath, dirnames, filenames in os.walk(os.path.join(root, under)):
        top = os.path.relpath(dirpath, root) == "."
        dirnames[:] = sorted(d for d in dirnames if d != ".git"
                             and not (top and d in skip_top)
                             and not os.path.exists(os.path.join(dirpath, d, "CMakeCache.txt")))
        for name in sorted(filenames):
            if name.endswith((".c", ".h")):
                full = os.path.join(dirpath, name)
                yield os.path.relpath(full, root).replace(os.sep, "/"), full


def write_tree(d, files):
    """Write {relative path: text} under directory d (a self-test's tree)."""
    for rel, text in files.items():
        p = os.path.join(d, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(text)
