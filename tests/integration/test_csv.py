#!/usr/bin/python3
"""tests/integration/test_csv.py -- CSV export and the import of corrected
values (R-PO-1, issue #15; api/csv_http.c, engine/correct.c, docs/csv.md),
end to end with the real `suiro`:

 1. Export (and `suiro apsim export`, to stdout or --out): the stored-values route answers CSV with format=csv or Accept:
    text/csv (the same bytes), raw (several points, every type, numbers in
    the JSON answer's text, strings quoted as RFC 4180 says) and downsampled
    (a column per aggregate, the JSON buckets' numbers); bom=1 starts with a
    UTF-8 BOM, without it there is none; limit/cursor with CSV are refused.
 2. The round trip: the export with some values changed is imported by the
    operator admin with a reason (201, one correction event); the JSON
    answer then gives the corrected values; the audit route shows the
    correction with who and why; `suiro replay` shows the original
    measurements and the correction.
 3. Refusals: an import with bad rows is 400 naming every bad line (and
    their count) and stores nothing; a user without data.correct (a general
    user, the platform admin) gets 403. An app corrects through the AP-IF
    (ext) only with a corrections grant (403 without; with one on P001: its
    import is stored, the audit names the app; a row of another point is a
    bad row).
 4. Memory stays flat: the server's anonymous memory while it streams a
    large export (300,000 values, ~15 MB of CSV) grows by far less than the
    answer's size.
usage: test_csv.py SUIRO_BIN"""
import csv
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.parse

BIN = sys.argv[1]
T = tempfile.mkdtemp(prefix="suiro-csv-")
D = os.path.join(T, "data")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from srtest import (Api, Checks, admin_applied, admin_new_user, admin_session, code, finish, gw_envelope, http_once,  # noqa: E402
                    init_with_admins, start_server, stop_server)

check = Checks()
server = None
DAY = "2026-03-01"


def at(i):
    return "%sT%02d:%02d:%02d.%03dZ" % (DAY, i // 3600, (i // 60) % 60, i % 60, (i * 7) % 1000)


SENT = {  # dataId -> [(timestamp, value, quality)]
    "P001": [(at(i), v, "GOOD" if i % 4 else "UNCERTAIN")
             for i, v in enumerate([604.22, 68.29, 0.1, 12.345, 1999.99, 0.001, 42.5, 3.5])],
    "P004": [(at(i * 2), i * 33331 + 7, "GOOD") for i in range(6)],
    "P005": [(at(i), s, "GOOD" if i != 2 else "BAD")
             for i, s in enumerate(["alarm", "a, comma", 'quote " here', "水位高", "line\nbreak"])],
}
IDS = ["P001", "P004", "P005"]
RANGE = "&from=%sT00:00:00Z&to=%sT23:59:59Z" % (DAY, DAY)
CORR = "/admin/v1/operators/demo/corrections"


def values_q(ids, extra=""):
    return "/api/v1/stored-values?" + "&".join("dataId=" + d for d in ids) + RANGE + extra


def get(api, path, headers=None):
    st, raw, r = api.call("GET", path, headers=headers, raw=True)
    return st, raw, r.getheader("Content-Type") or ""


def gw_send(hp, gw, values, mid):
    st, _, body, _ = http_once(hp, "POST", "/gw/v1/measurements",
                               gw_envelope("GW_MEASUREMENTS", mid, {"values": values}), gw)
    return st, body


def rss_anon_kb(pid):
    try:
        for line in open("/proc/%d/status" % pid):
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


try:
    temp, temp2 = init_with_admins(BIN, D, demo=True)
    # under ASan (make build-asan) freed blocks wait in its quarantine and
    # count in the server's memory: without it, section 4 measures the
    # server's own (nothing else changes for a build without ASan)
    env = dict(os.environ, ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=0")
    server, ports = start_server(BIN, D, os.path.join(T, "server.log"), env=env)
    hp = ports["http"]
    admin = admin_session(hp, "admin", temp, "the-admins-own-password-1")
    admin2 = admin_session(hp, "admin2", temp2, "the-admins-own-password-2")
    oa = admin_new_user(hp, admin, "oaD", "operator", "demo", ["operator_admin"], "oaD-password-12345", admin2)
    oa2 = admin_new_user(hp, admin, "oaD2", "operator", "demo", ["operator_admin"], "oaD2-password-12345", admin2)
    gen = admin_new_user(hp, oa, "genD", "operator", "demo", ["operator_general"], "genD-password-12345", admin2)

    st, _, body, _ = http_once(hp, "POST", "/gw/v1/sessions",
                               {"operatorId": "demo", "gatewayId": "GW001", "secret": "demo-gw001-secret"})
    gw = json.loads(body).get("token") if st == 201 else None
    vals = [{"dataId": d, "timestamp": t, "value": v, "quality": q} for d in SENT for (t, v, q) in SENT[d]]
    st, body = gw_send(hp, gw, vals, "csv-1")
    check("the gateway stores %d values of a number, an integer and a string point" % len(vals), st == 200,
          (st, body[:300]))
    app = Api(hp)
    check("the demo app logs in", app.login("APP001", "demo", "demo-app001-secret") == 201)

    # 1. export
    st, raw, ct = get(app, values_q(IDS, "&format=csv"))
    check("format=csv: 200 text/csv", st == 200 and ct.startswith("text/csv"), (st, ct, raw[:200]))
    st2, raw2, ct2 = get(app, values_q(IDS), headers={"Accept": "text/csv"})
    check("Accept: text/csv gives the same bytes", st2 == 200 and raw2 == raw, (st2, raw2[:200]))
    check("no BOM unless asked", not raw.startswith(b"\xef\xbb\xbf"), raw[:10])
    st, rawb, _ = get(app, values_q(IDS, "&format=csv&bom=1"))
    check("bom=1: a UTF-8 BOM, then the same bytes", st == 200 and rawb == b"\xef\xbb\xbf" + raw, rawb[:10])
    text = raw.decode("utf-8")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    check("the header is dataId,timestamp,value,quality", rows and rows[0] == ["dataId", "timestamp", "value",
                                                                             "quality"], rows[:1])
    st, jraw, _ = get(app, values_q(IDS, "&limit=1000"))
    jvals = json.loads(jraw)["values"]
    want = [[v["dataId"], v["timestamp"], v["value"], v["quality"]] for v in jvals]
    jtext = re.findall(rb'"dataId":"P00[14]","timestamp":"[^"]+","value":([^,]+),', jraw)
    got_text = [r[2].encode() for r in rows[1:] if r[0] in ("P001", "P004")]
    check("numbers in the JSON answer's text, as sent (%d: 604.22, 68.29, 0.1, ...)" % len(jtext),
          got_text == jtext and b"68.29" in got_text and b"0.001" in got_text, (got_text[:6], jtext[:6]))
    parsed = [[r[0], r[1], r[2] if r[0] == "P005" else json.loads(r[2]), r[3]] for r in rows[1:]]
    check("every value of every point, in order, as the JSON answer has them (%d)" % len(want),
          parsed == want and len(want) == sum(len(v) for v in SENT.values()), (parsed[:3], want[:3]))
    check("strings quoted as RFC 4180 says (comma, quote, line break)",
          b'"a, comma"' in raw and b'"quote "" here"' in raw and b'"line\nbreak"' in raw, raw[-200:])
    url = "http://127.0.0.1:%d" % hp
    frm, to = "%sT00:00:00Z" % DAY, "%sT23:59:59Z" % DAY
    ap = subprocess.run([BIN, "apsim", "export", "--url", url, "--token", app.token, "--data-id", ",".join(IDS),
                         "--from", frm, "--to", to], capture_output=True)
    check("suiro apsim export prints the same CSV", ap.returncode == 0 and ap.stdout == raw,
          (ap.returncode, ap.stderr[-300:], ap.stdout[:100]))
    outf = os.path.join(T, "export.csv")
    ap = subprocess.run([BIN, "apsim", "export", "--url", url, "--token", app.token, "--data-id", ",".join(IDS),
                         "--from", frm, "--to", to, "--bom", "--out", outf], capture_output=True, text=True)
    summary = json.loads(ap.stdout) if ap.returncode == 0 else {}
    check("... and with --bom --out: the file (with the BOM) and one JSON line",
          ap.returncode == 0 and open(outf, "rb").read() == rawb and summary.get("size") == len(rawb),
          (ap.returncode, ap.stderr[-300:], ap.stdout[:200]))
    st, b = app.call("GET", values_q(IDS, "&format=csv&limit=10"))
    check("limit with CSV: 400 E1001", st == 400 and code(b) == "E1001", (st, b))

    st, draw, _ = get(app, values_q(["P001", "P004"], "&format=csv&interval=1h&agg=min,max,count"))
    drows = list(csv.reader(io.StringIO(draw.decode(), newline="")))
    st2, dj = app.call("GET", values_q(["P001", "P004"], "&interval=1h&agg=min,max,count"))
    dwant = [[v["dataId"], v["timestamp"], v["min"], v["max"], v["count"]] for v in dj["values"]]
    dgot = [[r[0], r[1], json.loads(r[2]), json.loads(r[3]), int(r[4])] for r in drows[1:]]
    check("downsampled: dataId,timestamp,min,max,count and the JSON buckets",
          st == 200 and drows[0] == ["dataId", "timestamp", "min", "max", "count"] and dgot == dwant and dgot,
          (drows[:3], dwant[:2]))

    # 2. the round trip: change some values, import the whole file with a reason
    changed = {("P001", SENT["P001"][1][0]): "70.01", ("P004", SENT["P004"][2][0]): "5",
               ("P005", SENT["P005"][0][0]): 'fixed, "by hand"'}
    out = io.StringIO(newline="")
    w = csv.writer(out, lineterminator="\r\n")
    for r in rows:
        w.writerow([r[0], r[1], changed.get((r[0], r[1]), r[2]), r[3]])
    corrected = b"\xef\xbb\xbf" + out.getvalue().encode()
    reason = "meter 12 recalibrated; values re-read"
    path = CORR + "?reason=" + urllib.parse.quote(reason)
    st, b = gen.call("POST", path, corrected, headers={"Content-Type": "text/csv"})
    check("a general user may not correct (403 E2003 naming data.correct)",
          st == 403 and code(b) == "E2003" and "data.correct" in b["result"]["message"], (st, b))
    st, b = admin.call("POST", path, corrected, headers={"Content-Type": "text/csv"})
    check("nor the platform admin (403)", st == 403, (st, b))
    st, b = oa.call("POST", CORR, corrected, headers={"Content-Type": "text/csv"})
    check("no reason: 400 E1001 naming reason", st == 400 and code(b) == "E1001" and
          b["result"].get("detail", {}).get("field") == "reason", (st, b))
    st, b = oa.call("POST", path, corrected, headers={"Content-Type": "text/csv"})
    check("the operator admin imports the corrected CSV (201, every row)",
          st == 201 and b["rows"] == len(rows) - 1 and b["points"] == 3 and b["importId"].startswith("csv-"), (st, b))
    imp = b if st == 201 else {}
    st, j = app.call("GET", values_q(IDS, "&limit=1000"))
    now = {(v["dataId"], v["timestamp"]): v["value"] for v in j["values"]}
    check("queries answer the corrected values",
          now[("P001", SENT["P001"][1][0])] == 70.01 and now[("P004", SENT["P004"][2][0])] == 5 and
          now[("P005", SENT["P005"][0][0])] == 'fixed, "by hand"', [now[k] for k in changed])
    check("... and the others unchanged", all(now[(d, t)] == v for d in SENT for (t, v, q) in SENT[d]
                                              if (d, t) not in changed), j["values"][:3])
    st, b = oa.call("GET", "/admin/v1/audit/events?kind=correction")
    items = b.get("items", []) if st == 200 else []
    check("the audit route shows the correction: who (oaD, a user, from where) and why",
          len(items) == 1 and items[0]["actor"] == "oaD" and items[0]["action"] == "import" and
          reason in items[0]["detail"] and items[0]["target"] == "import:" + imp.get("importId", "?") and
          items[0].get("source"), items)

    # 3. an import with bad rows: every bad line, nothing stored
    bad = ("dataId,timestamp,value,quality\r\n"
           "P001,%s,1.5,GOOD\r\n"        # 2 good
           "NOPE,%s,1,GOOD\r\n"          # 3 unknown point
           "P001,%s,1.5,GOOD\r\n"        # 4 good
           "P004,%s,1.5,GOOD\r\n"        # 5 not an integer
           "P001,yesterday,1,GOOD\r\n"   # 6 timestamp
           "P001,%s,9999999,GOOD\r\n"    # 7 above the max
           ) % (SENT["P001"][0][0], SENT["P001"][0][0], SENT["P001"][2][0], SENT["P004"][0][0], SENT["P001"][3][0])
    st, b = oa.call("POST", path, bad, headers={"Content-Type": "text/csv"})
    det = b["result"].get("detail", {}) if isinstance(b, dict) else {}
    check("bad rows: 400 E1001 with every bad line (3, 5, 6, 7) and their count",
          st == 400 and code(b) == "E1001" and [e["line"] for e in det.get("errors", [])] == [3, 5, 6, 7] and
          det.get("count") == 4 and det.get("truncated") is False, (st, b))
    st, j2 = app.call("GET", values_q(IDS, "&limit=1000"))
    check("... and nothing is stored", j2 == j, (j2["values"][:2], j["values"][:2]))
    st, b = oa.call("GET", "/admin/v1/audit/events?kind=correction")
    check("... no second correction event", st == 200 and len(b["items"]) == 1, b)

    # an app corrects through the AP-IF (ext) only with a corrections grant
    one = "dataId,timestamp,value\r\nP001,%s,55.5\r\n" % SENT["P001"][3][0]
    apath = "/api/v1/corrections?reason=" + urllib.parse.quote("app's re-read")
    st, b = app.call("POST", apath, one, headers={"Content-Type": "text/csv"})
    check("an app without a corrections grant: 403 E2003", st == 403 and code(b) == "E2003", (st, b))
    st, b = admin_applied(oa.call("PUT", "/admin/v1/operators/demo/correction-grants/APP001/P001",
                                  {"access": "write"}), oa2)
    check("the operator admin grants APP001 corrections of P001 (a widening: approved by a second admin)",
          st in (200, 201), (st, b))
    st, b = app.call("POST", apath, one, headers={"Content-Type": "text/csv"})
    check("... then the app's import is stored (201)", st == 201 and b.get("rows") == 1, (st, b))
    st, j3 = app.call("GET", values_q(["P001"], "&limit=1000"))
    check("... and queries answer its value", {v["timestamp"]: v["value"] for v in j3["values"]}.get(
        SENT["P001"][3][0]) == 55.5, j3["values"][:5])
    st, b = oa.call("GET", "/admin/v1/audit/events?kind=correction&actor=APP001")
    check("... the audit shows the app as who (actorKind app) and its reason",
          st == 200 and len(b["items"]) == 1 and b["items"][0].get("actorKind") == "app" and
          "app's re-read" in b["items"][0]["detail"], b)
    st, b = app.call("POST", apath, "dataId,timestamp,value\r\nP004,%s,9\r\n" % SENT["P004"][0][0],
                     headers={"Content-Type": "text/csv"})
    check("... a point its grant does not cover is a bad row (400, line 2)",
          st == 400 and [e["line"] for e in b["result"]["detail"]["errors"]] == [2], (st, b))

    # 4. a large export streams with flat memory
    N, STEP = 300000, 20000
    ok, why = True, None
    for k in range(0, N, STEP):
        vals = [{"dataId": "P001", "timestamp": "2026-04-%02dT%02d:%02d:%02d.000Z" % (
            1 + i // 86400, (i // 3600) % 24, (i // 60) % 60, i % 60), "value": round(1000 + (i % 977) * 0.37, 2)}
            for i in range(k, k + STEP)]
        st, body = gw_send(hp, gw, vals, "big-%d" % k)
        if st != 200:
            ok, why = False, (st, body[:300])
            break
    check("the gateway stores %d values of P001 in April" % N, ok, why)
    path9 = "/api/v1/stored-values?dataId=P001&from=2026-04-01T00:00:00Z&to=2026-05-01T00:00:00Z&format=csv"
    # no warm-up export: glibc keeps (and raises its mmap threshold for) a
    # large block once freed, so a first export that buffered the whole
    # answer would hide the second one's
    base = rss_anon_kb(server.pid)
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", hp, timeout=60)
    c.request("GET", path9, headers={"Authorization": "Bearer " + app.token})
    r = c.getresponse()
    first = r.read(1 << 20)
    mid = rss_anon_kb(server.pid)  # the server is mid-stream: the rest is not sent yet
    rest = r.read()
    c.close()
    total = len(first) + len(rest)
    nrows = (first + rest).count(b"\r\n") - 1
    check("the large export is complete (%d rows, %.1f MB)" % (nrows, total / 1e6), nrows == N, nrows)
    check("the server's memory while streaming grew by %d KiB, far less than the %d KiB answer" % (
        mid - base, total // 1024), base > 0 and mid - base < total // 1024 // 4, (base, mid, total))

    stop_server(server)
    server = None
    # suiro replay: the original and the correction
    rp = subprocess.run([BIN, "replay", D, "--operator", "demo"], capture_output=True, text=True)
    evs = [json.loads(ln) for ln in rp.stdout.splitlines() if ln.strip()]
    corr = [e for e in evs if "correction" in e and e.get("actor") == "oaD"]
    meas = [e for e in evs if "measurements" in e and "70.01" not in json.dumps(e) and
            "68.29" in json.dumps(e)]
    check("suiro replay shows the correction: who, why, the corrected value",
          rp.returncode == 0 and len(corr) == 1 and corr[0]["correction"]["reason"] == reason and
          corr[0].get("source") and "70.01" in json.dumps(corr[0]) and
          len([e for e in evs if "correction" in e]) == 2, (rp.returncode, rp.stderr[-300:],
                                                                            corr[:1]))
    check("... and the original measurement (68.29) still in the log", len(meas) == 1, len(meas))
except Exception as e:  # noqa: BLE001
    check.failed(e)
finally:
    finish(check, T, [server])
