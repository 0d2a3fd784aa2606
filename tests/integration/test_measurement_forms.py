#!/usr/bin/python3
"""tests/integration/test_measurement_forms.py -- both forms of a
measurements record (codecs/events.proto: PointValues, Snapshot) in one data
directory, old and new (issue #13: old logs stay readable; verify passes and
a rebuild equals the live index on data written in the old formats and in
the new ones).

tests/data/engine/pointvalues-log/ is a data directory (log, index, keys)
written by the code before the Snapshot form (commit 2dbe123) from MSGS
below, sent over MQTT: series messages and snapshot-shaped ones, every value
type, qualities, a value repeated: its log holds PointValues only, in a
segment of format version 1; its index is of layout 3. Here:
  1. `suiro verify` on a copy: the log verifies, and the index is refused
     read-only with the clear message (layout 3, this build writes 4: open
     it read-write once or run `suiro rebuild`);
  2. served by this code (a read-write open: the index is rebuilt from the
     old log, the log rolls to a segment of this build's version, 3): every value back, as
     text, as sent (raw, latest);
  3. the same messages again, a day later, through this code: the
     snapshot-shaped ones are now Snapshot records (`suiro replay` shows
     "snapshot":true), every value back as sent; the old segment is
     unchanged, byte for byte, and the new records are in version 3
     segments (an older suiro refuses them: docs/events.md, compatibility);
  4. `suiro verify` on the directory holding both forms, then `suiro
     rebuild` and verify again: a rebuild equals the live index.
The golden directory was made with
  python3 tests/integration/test_measurement_forms.py --make OLD_SUIRO DIR
(the old binary; the directory is never edited afterwards).
usage: test_measurement_forms.py SUIRO_BIN"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import srtest  # noqa: E402

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "engine", "pointvalues-log")
SHEET = """#suiro-setup-sheet v1

[operator]
id,name
gf,Golden forms

[gateways]
id,name,secret
GFG1,Gateway one,gf-secret-GFG1
GFG2,Gateway two,gf-secret-GFG2

[facilities]
id,name
GFF,Plant

[equipment]
id,facility,name
GFE,GFF,Equipment

[devices]
id,equipment,gateway,name
GFD1,GFE,GFG1,Device one
GFD2,GFE,GFG2,Device two

[datapoints]
id,device,name,type,unit,min,max,kind
""" + "".join("GP%d_%02d,GFD%d,Point %d,%s,,,,measure\n" % (g, j, g, j, t)
              for g in (1, 2) for j, t in enumerate(("number",) * 8 + ("integer", "boolean", "string", "number"), 1)) + """
[apps]
id,name,secret,push_url
READER,Reader,reader-secret-1,

[grants]
app,datapoint,access
READER,*,read
"""
TYPES = ("n",) * 8 + ("i", "b", "s", "n")


def day(d, s, ms=0):
    return "2023-11-%02dT00:%02d:%02d.%03dZ" % (15 + d, s // 60, s % 60, ms)


def val(g, j, k):
    """the value text of point j of gateway g at step k: as a gateway writes it"""
    t = TYPES[j - 1]
    if t == "i":
        return str((k * 7919 + g * 13) % 2000 - 1000)
    if t == "b":
        return "true" if (k + g) % 2 else "false"
    if t == "s":
        return json.dumps(["open", "", "half-open", "ゆ"][(k + g) % 4])
    if j == 12:
        return "%.17g" % ((k + 1) / 3.0 + g)          # no decimal: a raw double
    c = (k * 1237 + g * 311 + j * 57) % 200001 - 100000
    return ("-" if c < 0 else "") + "%d.%02d" % (abs(c) // 100, abs(c) % 100) if j % 3 else str(c // 7)


def msgs(d):
    """(gateway, messageId, [(dataId, timestamp, value text, quality or None)]) of day offset d"""
    out = []
    for g in (1, 2):
        for k in range(20):   # snapshots: every point of the gateway, one value, one time
            vals = [("GP%d_%02d" % (g, j), day(d, k), val(g, j, k), "UNCERTAIN" if (j + k) % 9 == 0 else None)
                    for j in range(1, 13)]
            out.append((g, "s%d-%d-%d" % (d, g, k), vals))
        for j in (1, 9, 10, 11):   # series: one point, 30 values (times 20..49 s)
            out.append((g, "r%d-%d-%d" % (d, g, j), [("GP%d_%02d" % (g, j), day(d, 20 + k), val(g, j, 100 + k), None)
                                                     for k in range(30)]))
        # a mix: a series of point 2 plus a snapshot of the others at 50 s, point 3 given twice at 50 s
        vals = [("GP%d_02" % g, day(d, 50 + k), val(g, 2, 200 + k), None) for k in range(5)]
        vals += [("GP%d_%02d" % (g, j), day(d, 50), val(g, j, 300), None) for j in range(3, 13)]
        vals += [("GP%d_03" % g, day(d, 50), val(g, 3, 301), "BAD")]
        out.append((g, "m%d-%d" % (d, g), vals))
    return out


def body(mid, vals):
    vs = []
    for did, ts, v, q in vals:
        vs.append('{"dataId":"%s","timestamp":"%s","value":%s%s}' % (did, ts, v, ',"quality":"%s"' % q if q else ""))
    return ('{"header":{"messageType":"GW_MEASUREMENTS","messageId":"%s","timestamp":"2023-11-15T00:00:00.000Z"},'
            '"body":{"values":[' % mid) + ",".join(vs) + "]}}"


def send(port, d):
    gws = {g: srtest.RawGw(port, "gf", "GFG%d" % g, "gf-secret-GFG%d" % g) for g in (1, 2)}
    bad = []
    for g, mid, vals in msgs(d):
        rc = gws[g].publish_wait("data/measurements", body(mid, vals).encode())
        if rc:
            bad.append((mid, rc))
    for c in gws.values():
        c.close()
    return bad


def want(d):
    """(dataId, timestamp) -> (value text as read back, quality): the last given wins"""
    w = {}
    for _, _, vals in msgs(d):
        for did, ts, v, q in vals:
            w[(did, ts)] = (v, q or "GOOD")
    return w


def shortest(did, v):
    """the value as the AP-IF writes it: numbers in the shortest text that
    reads back the same, with a '.' (so compared as text); strings decoded"""
    j = int(did.split("_")[1])
    if TYPES[j - 1] == "s":
        return json.loads(v)
    return repr(float(v)) if TYPES[j - 1] == "n" else v


if len(sys.argv) == 4 and sys.argv[1] == "--make":
    OLD, OUT = sys.argv[2], sys.argv[3]
    T = tempfile.mkdtemp(prefix="suiro-golden-")
    subprocess.run([OLD, "init", OUT], check=True, capture_output=True)
    srtest.import_sheet(OLD, OUT, os.path.join(T, "sheet.csv"), SHEET)
    srv, ports = srtest.start_server(OLD, OUT, os.path.join(T, "server.log"))
    print("refused:", send(ports["mqtt"], 0))
    print("stopped:", srtest.stop_server(srv))
    shutil.rmtree(T)
    sys.exit(0)

BIN = sys.argv[1]
T = tempfile.mkdtemp(prefix="suiro-forms-")
D = os.path.join(T, "data")
check = srtest.Checks()
VALUE = re.compile(r'\{"dataId":"([^"]+)","timestamp":"([^"]+)","value":(.+?),"quality":"([A-Z_]+)"\}')


def read_back(api, d):
    """every value of day d as (value text, quality), raw JSON"""
    got, bad = {}, []
    ids = sorted({did for _, _, vals in msgs(d) for did, _, _, _ in vals})
    q = ("/api/v1/stored-values?" + "&".join("dataId=" + i for i in ids) +
         "&from=%s&to=%s&limit=100000" % (day(d, 0), day(d + 1, 0)))
    st, raw, _ = api.call("GET", q, raw=True)
    if st != 200:
        bad.append((st, raw[:200]))
    for did, ts, v, qq in VALUE.findall(raw.decode()):
        got[(did, ts)] = (json.loads(v) if v.startswith('"') else v, qq)
    return got, bad


def same(d, got):
    w = {k: (shortest(k[0], v), q) for k, (v, q) in want(d).items()}
    wrong = [(k, got.get(k), w[k]) for k in w if got.get(k) != w[k]]
    return len(got) == len(w) and not wrong, (len(got), len(w), wrong[:5])


def seg_versions():
    """segment file name -> the format version in its header"""
    ld = os.path.join(D, "log")
    out = {}
    for f in sorted(os.listdir(ld)):
        if f.endswith(".seg"):
            with open(os.path.join(ld, f), "rb") as fh:
                h = fh.read(10)
            out[f] = int.from_bytes(h[8:10], "little")
    return out


def verify(what):
    r = subprocess.run([BIN, "verify", D], capture_output=True, text=True, timeout=300)
    check("verify: %s (the live index equals a rebuild)" % what,
          r.returncode == 0 and "index equals a rebuild" in r.stdout + r.stderr, (r.returncode, r.stdout[-400:], r.stderr[-400:]))


srv = None
try:
    shutil.copytree(GOLDEN, D)
    r = subprocess.run([BIN, "replay", D, "--kind", "measurements"], capture_output=True, text=True, timeout=300)
    check("the golden log holds PointValues only (written before the Snapshot form)",
          r.returncode == 0 and '"points"' in r.stdout and '"snapshot"' not in r.stdout, r.stdout[:300])
    old_segs = seg_versions()
    check("the golden log is one version 1 segment", list(old_segs.values()) == [1], old_segs)
    r = subprocess.run([BIN, "verify", D], capture_output=True, text=True, timeout=300)
    # the older index lacks a database of this layout (users) or has layout 3:
    # either way refused before anything is read, naming the remedy
    check("verify, read-only, refuses the layout 3 index with the clear message",
          r.returncode == 4 and ("has layout 3 (this suiro writes 4)" in r.stderr
                                 or "has an older layout (no database 'users')" in r.stderr)
          and "open it read-write once" in r.stderr and "suiro rebuild" in r.stderr,
          (r.returncode, r.stdout[-300:], r.stderr[-300:]))

    srv, ports = srtest.start_server(BIN, D, os.path.join(T, "server.log"))
    with open(os.path.join(T, "server.log")) as fh:
        slog = fh.read()
    check("the read-write open rebuilt the layout 3 index", re.search(r"has layout 3, this suiro writes layout [0-9]+: rebuilding", slog) is not None,
          slog[-400:])
    api = srtest.Api(ports["http"])
    check("the reader logs in", api.login("READER", "gf", "reader-secret-1") == 201)
    got, bad = read_back(api, 0)
    ok, why = same(0, got)
    check("old records: every value back as sent", not bad and ok, (bad, why))

    check("the same messages a day later, through this code: all acknowledged", send(ports["mqtt"], 1) == [])
    got, bad = read_back(api, 1)
    ok, why = same(1, got)
    check("new records: every value back as sent", not bad and ok, (bad, why))
    st, raw, _ = api.call("GET", "/api/v1/stored-values/latest?dataId=GP1_03&dataId=GP2_12&dataId=GP1_11", raw=True)
    lat = {did: (json.loads(v) if v.startswith('"') else v, q) for did, ts, v, q in VALUE.findall(raw.decode())}
    w1 = want(1)
    check("latest: the snapshot's and the mix's last values",
          st == 200 and lat.get("GP1_03") == (shortest("GP1_03", w1[("GP1_03", day(1, 50))][0]), "BAD")
          and lat.get("GP2_12") == (shortest("GP2_12", w1[("GP2_12", day(1, 50))][0]), "GOOD")
          and lat.get("GP1_11") == (shortest("GP1_11", w1[("GP1_11", day(1, 50))][0]), "GOOD"), (st, raw[:400], lat))
    check("the server stops cleanly", srtest.stop_server(srv) == 0)
    srv = None

    segs = seg_versions()
    same_old = all(open(os.path.join(GOLDEN, "log", f), "rb").read() == open(os.path.join(D, "log", f), "rb").read()
                   for f in old_segs)
    check("the version 1 segment is unchanged, byte for byte; the new records are in version 3 segments",
          same_old and len(segs) > len(old_segs) and all(segs[f] == 1 for f in old_segs)
          and all(v == 3 for f, v in segs.items() if f not in old_segs), segs)
    r = subprocess.run([BIN, "replay", D, "--kind", "measurements"], capture_output=True, text=True, timeout=300)
    lines = r.stdout.splitlines()
    snaps = sum('"snapshot":true' in ln for ln in lines)
    check("the log now holds both forms: %d records with snapshot entries" % snaps,
          r.returncode == 0 and snaps == 42 and any('"snapshot"' not in ln for ln in lines), r.stdout[-300:])
    verify("old and new records")
    r = subprocess.run([BIN, "rebuild", D], capture_output=True, text=True, timeout=300)
    check("rebuild", r.returncode == 0, r.stderr[-300:])
    verify("after the rebuild")
    srv, ports = srtest.start_server(BIN, D, os.path.join(T, "server.log"))
    api = srtest.Api(ports["http"])
    api.login("READER", "gf", "reader-secret-1")
    ok = True
    for d in (0, 1):
        got, bad = read_back(api, d)
        ok = ok and not bad and same(d, got)[0]
    check("after the rebuild: every value of both days back as sent", ok)
finally:
    check("the server stops cleanly", srv is None or srtest.stop_server(srv) == 0)
    srtest.finish(check, T, [srv] if srv else [])
