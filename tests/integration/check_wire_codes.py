#!/usr/bin/env python3
"""tests/integration/check_wire_codes.py -- no wire error code literal in
production code outside the one table (issue #12 section 2, "Wire errors";
docs/architecture.md, "Wire errors").

    python3 check_wire_codes.py SOURCE_DIR

Every .c and .h file under SOURCE_DIR is read, except tests/ (tests compare
what the server sends), build trees (a directory holding CMakeCache.txt),
.git, and the table itself (api/wire.h). In each, comments are dropped and
every string literal is searched for an interface.md code: "E" and four
digits as a word ("E1001", or inside a longer literal such as
"{\"code\":\"E9001\"}"). Such a code must come from the table instead
(SR_WIRE_PARAM, sr_wire_code(), sr_wire_parse()). Before the real tree the
script checks itself on a small tree, so it cannot pass by checking
nothing. Exit 0: clean; 1: a literal, each named as file:line; 2: usage.
"""
import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checklib import c_sources, write_tree  # noqa: E402

TABLE = "api/wire.h"
CODE = re.compile(r"(?<![A-Za-z0-9_])E[0-9]{4}(?![0-9])")


def literals(text):
    """[(line, literal body)] of the string literals of C text, comments
    dropped (character literals skipped)."""
    out = []
    i, n, line = 0, len(text), 1
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            i += 1
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            line += text.count("\n", i, j)
            i = j
        elif c in "\"'":
            start, body = line, []
            i += 1
            while i < n and text[i] != c and text[i] != "\n":
                if text[i] == "\\" and i + 1 < n:
                    if text[i + 1] == "\n":
                        line += 1
                    body.append(text[i:i + 2])
                    i += 2
                else:
                    body.append(text[i])
                    i += 1
            i += 1
            if c == '"':
                out.append((start, "".join(body)))
        else:
            i += 1
    return out


def check(root):
    errors, nfiles = [], 0
    for rel, full in c_sources(root, skip_top=("tests",)):
        if rel == TABLE:
            continue
        nfiles += 1
        with open(full, encoding="utf-8", errors="replace") as f:
            text = f.read()
        for no, lit in literals(text):
            m = CODE.search(lit)
            if m:
                errors.append('%s:%d: "%s" in a string literal: take it from the wire error table (%s)'
                              % (rel, no, m.group(0), TABLE))
    return nfiles, errors


SELF_TEST = {
    "api/wire.h": '#define X "E1001"\n',                                    # the table: exempt
    "api/a.c": 'int f(void) { return g("E1001"); }\n',                      # breach
    "api/b.c": '/* "E1001" in a comment */\n// "E9002"\nconst char *s = "E10011 e1001 XE1001";\n',
    "api/c.c": 'const char *j =\n  "{\\"code\\":\\"E9001\\"}";\n',         # breach (line 2, inside)
    "engine/d.c": "char c = '\"'; const char *t = \"x\"; /* \"E1001\" */\n",
    "api/cli/e.c": 'const char *m = "line one\\\n E4003";\n',              # breach (continued literal)
    "tests/t.c": 'const char *x = "E1001";\n',                              # tests: exempt
    "build/CMakeCache.txt": "",
    "build/gen.c": 'const char *x = "E1001";\n',                            # build tree: exempt
}
SELF_EXPECT = {"api/a.c:1", "api/c.c:2", "api/cli/e.c:1"}


def self_test():
    with tempfile.TemporaryDirectory() as d:
        write_tree(d, SELF_TEST)
        _, errors = check(d)
        got = {":".join(e.split(":")[:2]) for e in errors}
        if got != SELF_EXPECT or len(errors) != len(SELF_EXPECT):
            print("check_wire_codes self-test FAILED: expected literals at %s, got:\n  %s"
                  % (sorted(SELF_EXPECT), "\n  ".join(errors) or "(none)"))
            return False
    return True


def main():
    if len(sys.argv) != 2 or not os.path.isdir(sys.argv[1]):
        print("usage: check_wire_codes.py SOURCE_DIR", file=sys.stderr)
        return 2
    if not self_test():
        return 1
    nfiles, errors = check(sys.argv[1])
    for e in errors:
        print(e)
    if errors:
        print("wire codes: %d literal(s) outside %s in %d files" % (len(errors), TABLE, nfiles))
        return 1
    if nfiles < 50 or not os.path.exists(os.path.join(sys.argv[1], TABLE)):
        print("wire codes: only %d .c/.h files under %s, or no %s: not the source tree?"
              % (nfiles, sys.argv[1], TABLE))
        return 1
    print("wire codes: ok (%d files outside tests/)" % nfiles)
    return 0


if __name__ == "__main__":
    sys.exit(main())
