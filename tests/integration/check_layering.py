#!/usr/bin/env python3
"""tests/integration/check_layering.py -- the layering rules of
docs/architecture.md ("Dependencies point one way"), checked on the real
#include lines of every .c and .h file of the source tree.

    python3 check_layering.py SOURCE_DIR

Layers, by path: codecs/base/ (the base layer), storage/, codecs/,
engine/, api/, bench/, tests/; anything else is "other". The rules:

  1. the base layer (codecs/base/) includes nothing of the project but
     itself;
  2. storage/ and codecs/ include nothing of engine/ or api/;
  3. engine/ includes nothing of api/;
  4. nothing outside bench/ and tests/ includes bench/ or tests/ (the
     product links no code of theirs);
  5. engine/suiro.h, the engine API, reaches no storage/ header, directly or
     through the headers it includes (the API is the engine's own types);
  6. no file of api/ reaches a protobuf header (codecs/events.pb-c.h or
     any *.pb-c.h, <protobuf-c/...>), directly or through the headers it
     includes: api/ sees the engine's typed boundary (engine/records.h),
     never a protobuf message.

Every file under SOURCE_DIR is read except .git and build trees (a
directory holding CMakeCache.txt): a file generated into the source tree is
checked like any other. An include is resolved as the compiler would find
it: "x.h" next to the including file, then from SOURCE_DIR (the project's
include root), then (quoted includes only) any project file whose path ends
with it (the suites' and benchmarks' own include directories); an include
that names a project folder but is no file of the tree (codecs/events.pb-c.h,
generated into the build tree) counts by its folder. Before the real tree
the script checks itself on a small tree with one breach of each rule, so
the check cannot pass by checking nothing. Exit 0: clean; 1: a breach,
each named as file:line; 2: usage.
"""
import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checklib import c_sources, write_tree  # noqa: E402

TOP = ("engine", "storage", "codecs", "api", "bench", "tests")
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')
API_HEADER = "engine/suiro.h"


def is_protobuf(inc):
    return inc.endswith(".pb-c.h") or inc.startswith("protobuf-c/")


def layer(path):
    if path.startswith("codecs/base/"):
        return "base"
    first = path.split("/", 1)[0]
    return first if first in TOP else "other"


def scan(root):
    """{relative path: [(line number, include text, quoted)]} of every .c/.h."""
    files = {}
    for rel, full in c_sources(root):
        incs = []
        with open(full, encoding="utf-8", errors="replace") as f:
            for no, line in enumerate(f, 1):
                m = INCLUDE.match(line)
                if m:
                    incs.append((no, m.group(2), m.group(1) == '"'))
        files[rel] = incs
    return files


def resolve(files, src, inc, quoted):
    """The project paths an include may name ([] for a system header)."""
    cands = []
    if quoted:
        cands.append(os.path.normpath(os.path.join(os.path.dirname(src), inc)).replace(os.sep, "/"))
    cands.append(os.path.normpath(inc).replace(os.sep, "/"))
    for c in cands:
        if c in files:
            return [c]
    if quoted:
        hits = [p for p in files if p.endswith("/" + inc)]
        if hits:
            return hits
    if inc.split("/", 1)[0] in TOP and "/" in inc:
        return [os.path.normpath(inc).replace(os.sep, "/")]
    return []


def breach(src_layer, dst):
    """Why an include of dst from a file of src_layer breaks a rule, or None."""
    dst_layer = layer(dst)
    if src_layer == "base" and dst_layer != "base":
        return "the base layer (codecs/base/) includes nothing of the project"
    if src_layer in ("base", "storage", "codecs") and dst_layer in ("engine", "api"):
        return "storage/ and codecs/ include nothing of engine/ or api/"
    if src_layer == "engine" and dst_layer == "api":
        return "engine/ includes nothing of api/"
    if src_layer not in ("bench", "tests") and dst_layer in ("bench", "tests"):
        return "nothing outside bench/ and tests/ includes bench/ or tests/"
    return None


def check(root):
    files = scan(root)
    errors = []
    for src in sorted(files):
        for no, inc, quoted in files[src]:
            for dst in resolve(files, src, inc, quoted):
                why = breach(layer(src), dst)
                if why:
                    errors.append("%s:%d: #include \"%s\": %s" % (src, no, inc, why))
    # rule 5: the closure of the engine API's includes
    if API_HEADER in files:
        seen, todo, via = {API_HEADER}, [API_HEADER], {API_HEADER: None}
        while todo:
            cur = todo.pop()
            for no, inc, quoted in files.get(cur, []):
                for dst in resolve(files, cur, inc, quoted):
                    if dst in seen:
                        continue
                    seen.add(dst)
                    via[dst] = "%s:%d" % (cur, no)
                    if layer(dst) == "storage":
                        errors.append("%s: #include \"%s\" (reached from %s): engine/suiro.h reaches no "
                                      "storage/ header" % (via[dst], inc, API_HEADER))
                    elif dst in files:
                        todo.append(dst)
    # rule 6: the closure of every api/ file's includes
    for src in sorted(f for f in files if layer(f) == "api"):
        seen, todo = {src}, [(src, None)]
        while todo:
            cur, first = todo.pop()
            for no, inc, quoted in files.get(cur, []):
                at = first or "%s:%d" % (src, no)
                if is_protobuf(inc):
                    errors.append("%s: #include \"%s\"%s: api/ includes no protobuf header (use "
                                  "engine/records.h)" % (at, inc, "" if cur == src else " (reached through %s)" % cur))
                    continue
                for dst in resolve(files, cur, inc, quoted):
                    if dst not in seen and dst in files:
                        seen.add(dst)
                        todo.append((dst, at))
    return files, errors


SELF_TEST = {
    "codecs/base/sr_x.h": '#include "codecs/base/sr_y.h"\n#include <stdint.h>\n',
    "codecs/base/sr_y.h": '#include "codecs/csv.h"\n',                 # rule 1
    "codecs/csv.h": '#include "codecs/base/sr_x.h"\n',
    "codecs/csv.c": '#include "engine/suiro.h"\n',                     # rule 2
    "storage/log.h": '# include <api/server.h>\n',                      # rule 2 (angle, spaced)
    "storage/log.c": '#include "log.h"\n#include "codecs/base/sr_x.h"\n',
    "engine/suiro.h": '#include "engine/types.h"\n',
    "engine/types.h": '#include "storage/log.h"\n',                    # rule 5 (through a header)
    "engine/engine.c": '#include "api/cli/cli.h"\n#include "storage/log.h"\n',  # rule 3
    "api/cli/cli.h": '#include "engine/suiro.h"\n',
    "api/cli/main.c": '#include "refset.h"\n',                         # rule 4 (found by suffix)
    "bench/refset.h": '#include "engine/suiro.h"\n',
    "tests/support/util.h": '#include "bench/refset.h"\n#include "engine/engine.c"\n',
    "api/server.h": '#include <stdint.h>\n',
    "api/gw.h": '#include "codecs/events.pb-c.h"\n',                    # rule 6
    "api/push.c": '#include "engine/wrap.h"\n',                        # rule 6 (through a header)
    "engine/wrap.h": '#include <protobuf-c/protobuf-c.h>\n',
    "build/CMakeCache.txt": "",
    "build/gen/engine/bad.c": '#include "api/server.h"\n',             # build tree: exempt
}
SELF_EXPECT = {
    "codecs/base/sr_y.h:1", "codecs/csv.c:1", "storage/log.h:1", "engine/types.h:1",
    "engine/engine.c:1", "api/cli/main.c:1", "api/gw.h:1", "api/push.c:1",
}


def self_test():
    with tempfile.TemporaryDirectory() as d:
        write_tree(d, SELF_TEST)
        _, errors = check(d)
        got = {":".join(e.split(":")[:2]) for e in errors}
        if got != SELF_EXPECT or len(errors) != len(SELF_EXPECT):
            print("check_layering self-test FAILED: expected breaches at %s, got:\n  %s"
                  % (sorted(SELF_EXPECT), "\n  ".join(errors) or "(none)"))
            return False
    return True


def main():
    if len(sys.argv) != 2 or not os.path.isdir(sys.argv[1]):
        print("usage: check_layering.py SOURCE_DIR", file=sys.stderr)
        return 2
    if not self_test():
        return 1
    files, errors = check(sys.argv[1])
    nincs = sum(len(v) for v in files.values())
    for e in errors:
        print(e)
    if errors:
        print("layering: %d breach(es) in %d files (%d #include lines); see docs/architecture.md, "
              "\"Dependencies point one way\"" % (len(errors), len(files), nincs))
        return 1
    if len(files) < 50:
        print("layering: only %d .c/.h files under %s: not the source tree?" % (len(files), sys.argv[1]))
        return 1
    print("layering: ok (%d files, %d #include lines)" % (len(files), nincs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
