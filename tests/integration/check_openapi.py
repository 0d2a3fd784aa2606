#!/usr/bin/python3
"""tests/integration/check_openapi.py -- the OpenAPI spec against the routes
the server really has.

usage: check_openapi.py SPEC ROUTES_FILE

SPEC is docs/api/openapi.yaml; ROUTES_FILE has one route a line,
"METHOD PATH" (e.g. "GET /api/v1/files/{path}"), as `suiro routes` prints
them; blank lines and lines starting with '#' are skipped. Prints the
(method, path) pairs that only one side has, and every "$ref" (and
discriminator mapping) of the spec that does not resolve. Exit 0 if there
is nothing to report, 1 otherwise, 2 on bad usage or unreadable input."""
import sys

import yaml

METHODS = ("get", "post", "put", "delete", "patch")


def spec_routes(doc):
    out = set()
    for path, item in (doc.get("paths") or {}).items():
        if not isinstance(item, dict):
            continue
        for m in METHODS:
            if m in item:
                out.add((m.upper(), path))
    return out


def file_routes(text):
    out, bad = set(), []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2:
            bad.append("%d: %r" % (n, line))
            continue
        out.add((parts[0].upper(), parts[1]))
    return out, bad


def resolve(doc, ref):
    """a local reference '#/a/b' -> True if it names something"""
    if not ref.startswith("#/"):
        return False  # only local references are used here
    node = doc
    for tok in ref[2:].split("/"):
        tok = tok.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and tok in node:
            node = node[tok]
        elif isinstance(node, list) and tok.isdigit() and int(tok) < len(node):
            node = node[int(tok)]
        else:
            return False
    return True


def refs(node, where="#"):
    """every ($ref value, location) in the document"""
    if isinstance(node, dict):
        for k, v in node.items():
            loc = where + "/" + str(k).replace("~", "~0").replace("/", "~1")
            if k == "$ref" and isinstance(v, str):
                yield v, where
            elif k == "discriminator" and isinstance(v, dict) and isinstance(v.get("mapping"), dict):
                for name, target in v["mapping"].items():
                    if isinstance(target, str) and target.startswith("#"):
                        yield target, loc + "/mapping/" + str(name)
            else:
                yield from refs(v, loc)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from refs(v, "%s/%d" % (where, i))


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    try:
        with open(argv[1], encoding="utf-8") as f:
            doc = yaml.safe_load(f)
        with open(argv[2], encoding="utf-8") as f:
            routes, bad = file_routes(f.read())
    except (OSError, yaml.YAMLError) as e:
        print("check_openapi: %s" % e, file=sys.stderr)
        return 2
    if not isinstance(doc, dict):
        print("check_openapi: %s is not a mapping" % argv[1], file=sys.stderr)
        return 2
    problems = 0
    for b in bad:
        print("routes file: not \"METHOD PATH\": %s" % b)
        problems += 1
    spec = spec_routes(doc)
    for m, p in sorted(routes - spec, key=lambda r: (r[1], r[0])):
        print("only in the server's routes: %s %s" % (m, p))
        problems += 1
    for m, p in sorted(spec - routes, key=lambda r: (r[1], r[0])):
        print("only in the spec: %s %s" % (m, p))
        problems += 1
    nrefs = 0
    for ref, where in refs(doc):
        nrefs += 1
        if not resolve(doc, ref):
            print("unresolved $ref %s at %s" % (ref, where))
            problems += 1
    if problems:
        print("check_openapi: %d problem(s)" % problems)
        return 1
    print("check_openapi: %d routes match, %d $refs resolve" % (len(spec), nrefs))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
