#!/usr/bin/env python3
"""tests/integration/check_one.py -- "no production code is written twice"
(issue #12), checked on the product's sources (api/ engine/ storage/
codecs/, comments stripped) for the helpers that had copies:

  1. quality names: a string literal "GOOD", "UNCERTAIN", "BAD" or
     "NO_DATA" (also quoted inside a literal, \\"BAD\\") only in
     codecs/sample.h (SR_QUALITIES, the one table);
  2. ids: the id character set ([A-Za-z0-9._-]: a literal ending
     "0123456789._-", a table row ['_'] = 1) only in codecs/ids.c, and no
     function named *id_ok*, *id_valid* or *id_char* outside codecs/ids.h;
  3. JSON string escaping: a test for '"' or '\\\\' followed by an escape, or
     a "\\\\u%04x" format, only in codecs/jsonlex.c (sr_json_put_string);
  4. the series key: be64(.., ts_key(..)) only in engine/schema.h
     (sr_series_key);
  5. zig-zag: (v << 1) ^ .. >> 63 (or 31), (z >> 1) ^ .. & 1) only in
     codecs/base/sr_alloc.h (sr_zz_enc, sr_zz_dec);
  6. little-endian stores: a byte loop (uint8_t)(x >> (8 * k)) only in
     codecs/base/sr_alloc.h (sr_put_le16/32/64);
  7. the in-memory hash of strings: FNV-1a's 32-bit prime or offset, or
     sr_hash's multipliers, only in codecs/base/sr_hash.h (sr_hash).

    python3 check_one.py SOURCE_DIR

Before the real tree the script checks itself on a small tree with one
breach of each rule, so it cannot pass by checking nothing. Exit 0: clean;
1: a breach, each named as file:line; 2: usage.
"""
import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checklib import c_sources, write_tree  # noqa: E402

DIRS = ("api", "engine", "storage", "codecs")

RULES = [
    ("quality names (one table: SR_QUALITIES)", "codecs/sample.h",
     re.compile(r'"(GOOD|UNCERTAIN|BAD|NO_DATA)"|\\"(GOOD|UNCERTAIN|BAD|NO_DATA)\\"')),
    ("id character set (one validator: codecs/ids.h)", "codecs/ids.c",
     re.compile(r"0123456789\._-\"|\['_'\]\s*=\s*1")),
    ("id validator function (one: sr_id_ok)", "codecs/ids.h",
     re.compile(r"\bint\s+\w*(id_ok|id_valid|id_char)\w*\s*\(")),
    ("JSON string escaper (one: sr_json_put_string)", "codecs/jsonlex.c",
     re.compile(r"==\s*'\"'\s*\|\|\s*\w+\s*==\s*'\\\\'|\\\\u%0?4x")),
    ("base32 alphabet (one codec: sr_base32 / sr_unbase32)", "codecs/base32.c",
     re.compile(r"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")),
    ("series key encoder (one: sr_series_key)", "engine/schema.h",
     re.compile(r"be64\([^;]*ts_key\(")),
    ("zig-zag code (one: sr_zz_enc / sr_zz_dec)", "codecs/base/sr_alloc.h",
     re.compile(r"<<\s*1\s*\)\s*\^.*>>\s*(31|63)\b|>>\s*1\s*\)\s*\^.*&\s*1\s*\)")),
    ("little-endian store (one: sr_put_le64)", "codecs/base/sr_alloc.h",
     re.compile(r"\(uint8_t\)\s*\(\s*\w+\s*>>\s*\(?\s*8\s*\*")),
    ("string hash (one: sr_hash)", "codecs/base/sr_hash.h",
     re.compile(r"(?i)\b(16777619|2166136261|0xFF51AFD7ED558CCD|0xC4CEB9FE1A85EC53)")),
]


def strip_comments(text):
    """C source without comments (strings and chars kept; newlines kept)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("\n" * text.count("\n", i, j))
            i = j
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def check(root):
    bad = []
    for d in DIRS:
        for rel, path in c_sources(root, d):
            with open(path, encoding="utf-8", errors="replace") as f:
                lines = strip_comments(f.read()).split("\n")
            for what, home, rx in RULES:
                if rel == home:
                    continue
                for no, line in enumerate(lines, 1):
                    if rx.search(line):
                        bad.append("%s:%d: a second %s" % (rel, no, what))
    return bad


SELF = {
    "codecs/sample.h": 'X(GOOD, "GOOD") X(BAD, "BAD")\n',
    "codecs/ids.c": "const unsigned char t[256] = {['_'] = 1};\n",
    "codecs/ids.h": "static inline int sr_id_ok(const char *s, unsigned n);\n",
    "codecs/jsonlex.c": "if (c == '\"' || c == '\\\\') x();\n",
    "engine/schema.h": "be64(k + 4, ts_key(ts));\n",
    "api/a.c": 'static const char *qn[] = {"GOOD", "UNCERTAIN"}; /* "BAD" */\n',   # rule 1
    "api/b.c": 'static const char q[][9] = {"\\"BAD\\"}"};\n',                     # rule 1 (quoted)
    "api/cli/c.c": 'return strspn(id, "ab0123456789._-") == n;\n',                # rule 2
    "codecs/d.c": "static int is_id_valid(const char *s)\n{\n}\n",               # rule 3
    "api/e.c": "if (c == '\"' || c == '\\\\') fprintf(f, \"\\\\%c\", c);\n",       # rule 4
    "api/f.c": 'else if (c < 0x20) fprintf(f, "\\\\u%04x", c);\n',                # rule 4
    "engine/g.c": "be32(k, p);\n    be64(k + 4, ts_key(lo));\n",                   # rule 5
    "engine/h.c": "/* be64(k + 4, ts_key(lo)); in a comment */\nint x;\n",        # clean
    "codecs/base/sr_alloc.h": "return (v << 1) ^ (0 - (v >> 63));\nreturn (z >> 1) ^ (0 - (z & 1));\n"
                              "*p++ = (uint8_t)(x >> (8 * k));\n",
    "codecs/base/sr_hash.h": "h = (h ^ x) * 0xFF51AFD7ED558CCDull;\n",
    "engine/i.c": "return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);\n",         # rule 6
    "engine/j.c": "p += (z >> 1) ^ (uint64_t)-(int64_t)(z & 1);\n",             # rule 6
    "storage/k.c": "c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;\n",          # clean (a CRC)
    "engine/l.c": "for (int k = 0; k < 8; k++) *p++ = (uint8_t)(x >> (8 * k));\n",  # rule 7
    "api/m.c": "uint32_t h = 2166136261u;\nh = (h ^ c) * 16777619u;\n",        # rule 8 (twice)
    "api/n.c": "h = (h ^ x) * 0xff51afd7ed558ccdULL;\n",                        # rule 8
    "engine/o.c": 'static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";\n',  # base32 rule
}
SELF_WANT = {"api/a.c:1", "api/b.c:1", "api/cli/c.c:1", "codecs/d.c:1", "api/e.c:1", "api/f.c:1", "engine/g.c:2",
             "engine/i.c:1", "engine/j.c:1", "engine/l.c:1", "api/m.c:1", "api/m.c:2", "api/n.c:1",
             "engine/o.c:1"}


def self_test():
    with tempfile.TemporaryDirectory() as t:
        write_tree(t, SELF)
        got = {b.split(": ")[0] for b in check(t)}
    if got != SELF_WANT:
        print("check_one: self-test failed: found %s, want %s" % (sorted(got), sorted(SELF_WANT)), file=sys.stderr)
        return False
    return True


def main():
    if len(sys.argv) != 2 or not os.path.isdir(sys.argv[1]):
        print(__doc__.strip().split("\n\n")[1].strip(), file=sys.stderr)
        return 2
    if not self_test():
        return 1
    bad = check(sys.argv[1])
    for b in bad:
        print(b, file=sys.stderr)
    if bad:
        return 1
    print("check_one: no second copy of the quality names, the id validator, the JSON escaper, the series key, "
          "the zig-zag code, the little-endian store, the string hash")
    return 0


if __name__ == "__main__":
    sys.exit(main())
