#!/usr/bin/env python3
"""bench/compare.py -- what changed between two results files.

usage: python3 bench/compare.py OLD.jsonl NEW.jsonl [--all] [--brief] [--threshold PCT] [--cg-threshold PCT]
       bench/compare [OLD NEW]        (no arguments: the two newest files of bench/results/)

Lines are matched on their kind and configuration (bench/benchlines.py
ID_KEYS: e.g. log_append on size, batch, sync, zstd, enc, threads, records;
ap_query on system and query; callgrind on what; a kind it does not know on
system, query, what and its other string fields); a configuration that occurs
more than once is matched by occurrence (#2, #3). For every matched line it
prints each headline figure (every number with --all) as old -> new and the
change in %, marked "better" or "worse" when the change is beyond the noise
threshold (--threshold, default 5 %; callgrind instruction counts, which are
nearly noise-free: --cg-threshold, default 1 %) and the figure has a better
direction (--brief: only those, and the flags); lines only in one file are listed; every line whose "verify" is
not "ok" in either file is flagged with "VERIFY".

Exit status: 0, or 1 when NEW has a line that failed its verification,
2 on a usage or read error.
"""
import argparse
import os
import sys
from decimal import Decimal

sys.dont_write_bytecode = True  # no bench/__pycache__ in the tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlines as bl  # noqa: E402


def keyed(lines):
    """{identity: line}, with #n on repeated identities, in file order."""
    out, seen = {}, {}
    for _, obj in lines:
        k = bl.ident(obj)
        seen[k] = seen.get(k, 0) + 1
        if seen[k] > 1:
            k = "%s #%d" % (k, seen[k])
        out[k] = obj
    return out


def num(v):
    if v is None:
        return "null"
    if isinstance(v, int):
        return format(v, ",")
    if isinstance(v, Decimal):
        return format(v, ",") if v.is_finite() else str(v)
    return bl.fmt_plain(v)


def change(old, new):
    """The change in %, or None when there is none to give (not numbers, or old is 0)."""
    if not (bl.is_num(old) and bl.is_num(new)) or old == 0:
        return None
    return (Decimal(new) - Decimal(old)) / abs(Decimal(old)) * 100


def main(argv):
    ap = argparse.ArgumentParser(description="compare two bench/results files")
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--all", action="store_true", help="every numeric field, not only the headline figures")
    ap.add_argument("--brief", action="store_true",
                    help="only the figures that changed beyond the noise threshold, and verify flags")
    ap.add_argument("--threshold", type=Decimal, default=Decimal(5), help="noise threshold in %% (default 5)")
    ap.add_argument("--cg-threshold", type=Decimal, default=Decimal(1),
                    help="noise threshold in %% for callgrind lines (default 1)")
    a = ap.parse_args(argv)
    try:
        og, ob = bl.load(a.old)
        ng, nb = bl.load(a.new)
    except OSError as e:
        print("compare: %s" % e, file=sys.stderr)
        return 2
    old, new = keyed(og), keyed(ng)
    out = ["compare %s -> %s" % (a.old, a.new)]
    for path, bad in ((a.old, ob), (a.new, nb)):
        for no, why in bad:
            out.append("  %s line %d skipped: %s" % (path, no, why))
    n_better = n_worse = n_same = 0
    failed_new = []
    for k in new:
        if k not in old:
            continue
        o, n = old[k], new[k]
        thr = a.cg_threshold if n["bench"] == "callgrind" else a.threshold
        rows = []
        names = [f for f, _ in bl.figures(n, a.all)]
        names += [f for f, _ in bl.figures(o, a.all) if f not in names]
        for f in names:
            ov, nv = o.get(f), n.get(f)
            c = change(ov, nv)
            if c is None:
                mark = ""
                pct = "      " if ov == nv else "    n/a"
            else:
                pct = "%+7.1f %%" % c
                d = bl.better(f)
                if abs(c) < thr or d == 0:
                    mark = ""
                    n_same += 1
                elif (c > 0) == (d > 0):
                    mark = "better"
                    n_better += 1
                else:
                    mark = "worse"
                    n_worse += 1
            if a.brief and not mark and (c is not None or ov == nv):
                continue
            rows.append("  %-26s %16s -> %-16s %s  %s" % (f, num(ov), num(nv), pct, mark))
        ver = ""
        ovf, nvf = o.get("verify"), n.get("verify")
        if (ovf is not None and ovf != "ok") or (nvf is not None and nvf != "ok"):
            ver = "  VERIFY %s -> %s" % (ovf, nvf)
            if nvf is not None and nvf != "ok":
                failed_new.append(k)
        if a.brief and not rows and not ver:
            continue
        out.append(k + ver)
        out += [r.rstrip() for r in rows]
    only_old = [k for k in old if k not in new]
    only_new = [k for k in new if k not in old]
    for k in only_new:
        nvf = new[k].get("verify")
        flag = "  VERIFY %s" % nvf if nvf is not None and nvf != "ok" else ""
        if flag:
            failed_new.append(k)
        out.append("only in NEW: %s%s" % (k, flag))
    for k in only_old:
        out.append("only in OLD: %s" % k)
    out.append("summary: %d matched lines, %d better, %d worse, %d within noise (%s %%, callgrind %s %%); "
               "%d only in NEW, %d only in OLD; %d failed verification in NEW" % (
                   len([k for k in new if k in old]), n_better, n_worse, n_same, a.threshold, a.cg_threshold,
                   len(only_new), len(only_old), len(failed_new)))
    for k in failed_new:
        out.append("VERIFY FAILED in NEW: %s" % k)
    sys.stdout.write("\n".join(out) + "\n")
    return 1 if failed_new else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
