#!/usr/bin/python3
"""bench/csv_export.py -- the helper of bench/csv_export.sh: check a CSV
export against the data set bench/ap_query.py generates, and print the
result line.

  csv_export.py check SYSTEM BODY_FILE      -> {"rows":..,"verify":"ok"|"FAILED","why":..}
  csv_export.py report SYSTEM TIMES BYTES CHECK_JSON EXTRA_JSON -> the bench line

SYSTEM suiro: dataId,timestamp,value,quality (RFC 3339 times);
victoriametrics: id,unix ms,value (format=id,__timestamp__:unix_ms,__value__).
Every row must be a value of the data set (its exact number), every value
of the data set must be there once."""
import csv
import io
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ap_query as aq  # noqa: E402


def ms_of(t):
    return aq.ms_of(t)


def check(system, body_file):
    want = {}
    for p in range(aq.POINTS):
        for i, v in enumerate(aq.values(p, aq.seconds_of(p))):
            want[("P%05d" % p, aq.T0 + i * 1000)] = v
    raw = open(body_file, "rb").read()
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8"), newline="")))
    if system == "suiro":
        if not rows or rows[0] != ["dataId", "timestamp", "value", "quality"]:
            return {"rows": 0, "verify": "FAILED", "why": "header %r" % rows[:1]}
        rows = [(r[0], ms_of(r[1]), r[2]) for r in rows[1:]]
    else:
        rows = [(r[0], int(r[1]), r[2]) for r in rows]
    seen, why = set(), None
    for k in rows:
        key = (k[0], k[1])
        if key in seen:
            why = "twice: %r" % (key,)
            break
        seen.add(key)
        if key not in want or float(k[2]) != want[key]:
            why = "not in the data set: %r (want %r)" % (k, want.get(key))
            break
    if not why and len(seen) != len(want):
        why = "%d values of %d" % (len(seen), len(want))
    return {"rows": len(rows), "verify": "FAILED" if why else "ok", "why": why}


def report(system, times, nbytes, chk, extra):
    t = [float(x) for x in times.split()]
    chk = json.loads(chk)
    med = statistics.median(t) if t else 0
    r = {"bench": "csv_export", "system": system, "values": chk.get("rows"), "bytes": int(nbytes),
         "runs": len(t), "median_s": round(med, 4), "best_s": round(min(t), 4) if t else None,
         "values_per_s": round(chk.get("rows", 0) / med) if med else None,
         "mb_per_s": round(int(nbytes) / med / 1e6, 1) if med else None}
    r.update(json.loads(extra))
    r["verify"] = chk["verify"]
    if chk.get("why"):
        r["why"] = chk["why"]
    print(json.dumps(r, separators=(",", ":")))


if __name__ == "__main__":
    a = sys.argv[1:]
    if a[:1] == ["check"] and len(a) == 3:
        print(json.dumps(check(a[1], a[2])))
    elif a[:1] == ["report"] and len(a) == 6:
        report(*a[1:])
    else:
        sys.exit(__doc__)
