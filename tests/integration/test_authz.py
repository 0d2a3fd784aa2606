#!/usr/bin/python3
"""tests/integration/test_authz.py -- the AP-IF authorization matrix and bad
input, endpoint by endpoint, through the real `suiro serve`.

Apps: APP001 (operator demo, every point), APPR (demo, read-only grant on
P001 and P006 only), APPX (operator other, its own point PX1). For every
endpoint that names a data point, a point the caller may not use and a point
that does not exist must get the same answer (status and body, ids masked);
for every endpoint that names a resource (request, monitor, document, file),
another operator's resource must look exactly like an unknown one. Then each
endpoint gets malformed input and must answer the documented error while the
server stays up and nothing is stored. usage: test_authz.py SUIRO_BIN"""
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile

BIN = sys.argv[1]
T = tempfile.mkdtemp(prefix="suiro-authz-")
D = os.path.join(T, "data")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from srtest import OTHER_OPERATOR_SHEET, Api, Checks, code, finish, import_sheet, start_server  # noqa: E402

check = Checks()
server = None


def login(port, app, op, secret):
    a = Api(port)
    st, b = a.call("POST", "/api/v1/sessions", {"appId": app, "operatorId": op, "secret": secret})
    assert st == 201, (app, st, b)
    a.token = b["token"]
    return a


def mask(v, *ids):
    s = json.dumps(v, sort_keys=True)
    for i in ids:
        s = s.replace(i, "<ID>")
    return re.sub(r'"(Q|M|D)[0-9a-f]{16}"', '"<GEN>"', s)


def stored_count():
    """Events that are not the audit of reads and refusals: bad input is
    audited (AccessEvent refusals, AccessBatch reads, written in batches
    whenever their group flushes), but stores nothing else."""
    out = subprocess.run([BIN, "replay", D], capture_output=True, text=True).stdout
    return len([l for l in out.splitlines()
                if l.strip() and '"access":' not in l and '"access_batch":' not in l])


try:
    subprocess.run([BIN, "init", "--demo", D], check=True, capture_output=True)
    import_sheet(BIN, D, os.path.join(T, "other.csv"), OTHER_OPERATOR_SHEET)
    # the demo sheet again, plus a read-only app (a sheet declares an operator whole)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ro = open(os.path.join(root, "docs", "examples", "demo-sheet.csv"), encoding="utf-8").read()
    ro = ro.replace("APP001,Demo monitoring app,demo-app001-secret,http://127.0.0.1:9100/push\n",
                    "APP001,Demo monitoring app,demo-app001-secret,http://127.0.0.1:9100/push\n"
                    "APPR,Read-only app,ro-app-secret,\n")
    ro = ro.replace("app,datapoint,access\n", "app,datapoint,access\nAPPR,P001,read\nAPPR,P006,read\n")
    open(os.path.join(T, "ro.csv"), "w", encoding="utf-8").write(ro)
    r = subprocess.run([BIN, "sheet", "import", os.path.join(T, "ro.csv"), D], capture_output=True, text=True)
    check("a read-only app is registered for operator demo", r.returncode == 0, r.stderr)
    # an app certificate (AP-IF row 9): registered with `suiro cert import`,
    # kept when the sheet is imported again
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", os.path.join(T, "app.key"), "-out", os.path.join(T, "app.pem"), "-days", "30",
                    "-subj", "/CN=demo\\/APP001"], check=True, capture_output=True)
    r = subprocess.run([BIN, "cert", "import", D, "--operator", "demo", "--app", "APP001", "--pem",
                        os.path.join(T, "app.pem")], capture_output=True, text=True)
    check("cert import registers APP001's certificate", r.returncode == 0, r.stderr)
    r = subprocess.run([BIN, "cert", "import", D, "--operator", "demo", "--app", "APP001", "--pem",
                        os.path.join(T, "app.key")], capture_output=True, text=True)
    check("cert import refuses a file that is not a certificate", r.returncode == 1 and "not a PEM" in r.stderr, r.stderr)
    r = subprocess.run([BIN, "cert", "import", D, "--operator", "demo", "--app", "NOPE", "--pem",
                        os.path.join(T, "app.pem")], capture_output=True, text=True)
    check("cert import refuses an unknown app", r.returncode == 1 and "not registered" in r.stderr, r.stderr)
    r = subprocess.run([BIN, "sheet", "import", os.path.join(T, "ro.csv"), D], capture_output=True, text=True)
    server, ports = start_server(BIN, D, os.path.join(T, "server.log"))
    port = ports["http"]
    full = login(port, "APP001", "demo", "demo-app001-secret")
    rd = login(port, "APPR", "demo", "ro-app-secret")
    ox = login(port, "APPX", "other", "other-app-secret")

    st, b = rd.call("GET", "/api/v1/certificates/app/APP001")
    check("the app certificate is served as registered (and survived a sheet import)",
          st == 200 and b == open(os.path.join(T, "app.pem")).read(), (st, str(b)[:80]))
    s1, b1 = ox.call("GET", "/api/v1/certificates/app/APP001")
    s2, b2 = ox.call("GET", "/api/v1/certificates/app/NOPE9")
    check("another operator's app certificate looks unknown", s1 == s2 == 404 and b1 == b2, (s1, b1, s2, b2))

    # resources of APP001 (operator demo) that others must not see
    st, b = full.call("POST", "/api/v1/documents/notes", {"a": 1})
    doc = b["documentId"]
    full.call("PUT", "/api/v1/files/secret/plan.txt", "top secret")
    st, b = full.call("POST", "/api/v1/monitors", {"dataIds": ["P001"], "intervalMs": 1000})
    mon = b["monitorId"]
    st, b = full.call("POST", "/api/v1/current-values?async=true", {"dataIds": ["P001"], "timeoutMs": 500})
    req = b.get("requestId", "Qnone")

    # 1. data points: not usable == does not exist
    point_calls = [
        ("current-values", lambda a, p: a.call("POST", "/api/v1/current-values", {"dataIds": [p], "timeoutMs": 300})),
        ("control-values", lambda a, p: a.call("POST", "/api/v1/control-values", {"dataId": p, "value": 1})),
        ("monitors", lambda a, p: a.call("POST", "/api/v1/monitors", {"dataIds": [p], "intervalMs": 1000})),
        ("stored-values", lambda a, p: a.call("GET", "/api/v1/stored-values?dataId=" + p)),
        ("stored-values/latest", lambda a, p: a.call("GET", "/api/v1/stored-values/latest?dataId=" + p)),
        ("downsampled", lambda a, p: a.call("GET", "/api/v1/stored-values?dataId=%s&from=-1h&interval=1m" % p)),
    ]
    for name, fn in point_calls:
        # another operator's app asking for demo's point vs a point that does not exist
        s1, b1 = fn(ox, "P001")
        s2, b2 = fn(ox, "NOPE1")
        check("%s: another operator's point == an unknown one (%d %s)" % (name, s1, code(b1)),
              s1 == s2 and mask(b1, "P001") == mask(b2, "NOPE1") and s1 in (403, 404), (s1, b1, s2, b2))
        # an app of the same operator without a grant for the point
        s1, b1 = fn(rd, "P003")
        s2, b2 = fn(rd, "NOPE2")
        check("%s: a point without a grant == an unknown one (%d %s)" % (name, s1, code(b1)),
              s1 == s2 and mask(b1, "P003") == mask(b2, "NOPE2") and s1 in (403, 404), (s1, b1, s2, b2))
    s1, b1 = rd.call("POST", "/api/v1/control-values", {"dataId": "P006", "value": 1})
    check("control with a read-only grant: 403 E2003", s1 == 403 and code(b1) == "E2003", (s1, b1))
    st, b = rd.call("GET", "/api/v1/masters/datapoints")
    ids = sorted(i["id"] for i in b.get("items", []))
    check("masters: an app sees only the data points it is granted", ids == ["P001", "P006"], ids)
    st, b = ox.call("GET", "/api/v1/masters/facilities")
    check("masters: another operator's app sees only its own facilities",
          [i["id"] for i in b.get("items", [])] == ["FX"], b)

    # 2. resources: another operator's (or app's) == unknown
    res_calls = [
        ("GET request", "GET", "/api/v1/requests/%s", req, "Qffffffffffffffff", None),
        ("DELETE monitor", "DELETE", "/api/v1/monitors/%s", mon, "Mffffffffffffffff", None),
        ("GET monitor values", "GET", "/api/v1/monitors/%s/values", mon, "Mffffffffffffffff", None),
        ("GET document", "GET", "/api/v1/documents/notes/%s", doc, "Dffffffffffffffff", None),
        ("DELETE document", "DELETE", "/api/v1/documents/notes/%s", doc, "Dffffffffffffffff", None),
        ("PUT document", "PUT", "/api/v1/documents/notes/%s", doc, "Dffffffffffffffff", {"x": 1}),
        ("GET file", "GET", "/api/v1/files/%s", "secret/plan.txt", "secret/none.txt", None),
        ("DELETE file", "DELETE", "/api/v1/files/%s", "secret/plan.txt", "secret/none.txt", None),
    ]
    for name, method, path, real, fake, body in res_calls:
        for who, a in (("another operator's app", ox), ("another app of the operator", rd)):
            if name.endswith("document") or name.endswith("file"):
                if who == "another app of the operator":
                    continue  # documents and files are shared by an operator's apps
            if name == "PUT document":
                # an upsert would create it in the other operator's space: that is not a leak,
                # but it must not touch demo's document
                s1, b1 = a.call(method, path % real, body)
                s, d = full.call("GET", "/api/v1/documents/notes/" + doc)
                check("%s by %s leaves demo's document as it was" % (name, who), d == {"a": 1}, (s1, b1, d))
                continue
            s1, b1 = a.call(method, path % real, body)
            s2, b2 = a.call(method, path % fake, body)
            check("%s by %s == unknown (%d %s)" % (name, who, s1, code(b1)),
                  s1 == s2 and mask(b1, real) == mask(b2, fake) and s1 == 404, (s1, b1, s2, b2))
    st, b = ox.call("GET", "/api/v1/files?prefix=")
    check("file list: another operator's files are not listed", b.get("items") == [], b)
    st, b = ox.call("GET", "/api/v1/documents/notes")
    check("document query: another operator's documents are not listed",
          st == 200 and all(i["document"] != {"a": 1} for i in b.get("items", [])), b)
    st, b = ox.call("GET", "/api/v1/monitors")
    check("monitor list: another operator's monitors are not listed", b.get("items") == [], b)
    st, b = rd.call("GET", "/api/v1/monitors")
    check("monitor list: another app's monitors are not listed", b.get("items") == [], b)
    st, b = full.call("GET", "/api/v1/documents/notes/" + doc)
    check("demo's document is intact", b == {"a": 1}, b)

    # 3. bad input, endpoint by endpoint: the documented error, nothing stored
    before = stored_count()
    big = "x" * (17 << 20)
    bad = [
        ("sessions: not JSON", "POST", "/api/v1/sessions", "{", "E1002", None),
        ("sessions: wrong types", "POST", "/api/v1/sessions", {"appId": 1, "operatorId": [], "secret": None}, "E1001", None),
        ("sessions: missing fields", "POST", "/api/v1/sessions", {"appId": "APP001"}, "E1001", None),
        ("current-values: dataIds not an array", "POST", "/api/v1/current-values", {"dataIds": "P001"}, "E1001", full),
        ("current-values: empty dataIds", "POST", "/api/v1/current-values", {"dataIds": []}, "E1001", full),
        ("current-values: timeoutMs a string", "POST", "/api/v1/current-values", {"dataIds": ["P001"], "timeoutMs": "5"}, "E1001", full),
        ("current-values: timeoutMs too big", "POST", "/api/v1/current-values", {"dataIds": ["P001"], "timeoutMs": 10**9}, "E1001", full),
        ("current-values: an id with a slash", "POST", "/api/v1/current-values", {"dataIds": ["../P001"]}, "E1001", full),
        ("current-values: invalid UTF-8", "POST", "/api/v1/current-values", b'{"dataIds":["P\xff"]}', "E1002", full),
        ("current-values: not an object", "POST", "/api/v1/current-values", "[1]", "E1001", full),
        ("control-values: missing value", "POST", "/api/v1/control-values", {"dataId": "P007"}, "E1001", full),
        ("control-values: out of range", "POST", "/api/v1/control-values", {"dataId": "P007", "value": 101}, "E4004", full),
        ("control-values: wrong type", "POST", "/api/v1/control-values", {"dataId": "P003", "value": "on"}, "E4004", full),
        ("control-values: protection not an object", "POST", "/api/v1/control-values", {"dataId": "P003", "value": True, "protection": "sig"}, "E1001", full),
        ("monitors: interval too small", "POST", "/api/v1/monitors", {"dataIds": ["P001"], "intervalMs": 1}, "E1001", full),
        ("monitors: bad startAt", "POST", "/api/v1/monitors", {"dataIds": ["P001"], "intervalMs": 1000, "startAt": "tomorrow"}, "E1001", full),
        ("monitors: endAt in the past", "POST", "/api/v1/monitors", {"dataIds": ["P001"], "intervalMs": 1000, "endAt": "2020-01-01T00:00:00Z"}, "E1001", full),
        ("monitors: endAt before startAt", "POST", "/api/v1/monitors", {"dataIds": ["P001"], "intervalMs": 1000, "startAt": "2026-01-02T00:00:00Z", "endAt": "2026-01-01T00:00:00Z"}, "E1001", full),
        ("documents: huge body", "POST", "/api/v1/documents/notes", big, None, full),
        ("documents: invalid UTF-8", "POST", "/api/v1/documents/notes", b'{"a":"\xc3\x28"}', "E1002", full),
        ("files: traversal", "PUT", "/api/v1/files/a/%2e%2e/%2e%2e/etc/passwd", "x", None, full),
        ("files: bad Content-Range", "PUT", "/api/v1/files/x.bin", "x", "E1001", full),
        ("requests: bad id", "GET", "/api/v1/requests/..%2f..", None, None, full),
        ("stored-values: bad cursor", "GET", "/api/v1/stored-values?dataId=P001&cursor=c9.x", None, "E1001", full),
        ("stored-values: invalid time", "GET", "/api/v1/stored-values?dataId=P001&from=2026-13-45T00:00:00Z", None, "E1001", full),
        ("masters: unknown kind", "GET", "/api/v1/masters/secrets", None, "E3001", full),
        ("certificates: unknown subject type", "GET", "/api/v1/certificates/root/x", None, "E3001", full),
        ("certificates: platform with another id than its own", "GET", "/api/v1/certificates/platform/APP001", None, "E3001", full),
        ("token: none", "GET", "/api/v1/masters/facilities", None, "E2001", None),
        ("token: one the server never issued", "GET", "/api/v1/masters/facilities", None, "E2001", Api(port, "ab" * 32)),
        ("token: not hex", "GET", "/api/v1/masters/facilities", None, "E2001", Api(port, "nope")),
    ]
    for name, method, path, body, want, a in bad:
        a = a or Api(port)
        headers = {"Content-Range": "bytes 5-1/2"} if "Content-Range" in name else None
        try:
            st, b = a.call(method, path, body, headers)
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            st, b = 413, None  # the server refused the body and closed the connection
            a.c.close()
            a.c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        if want:
            ok = code(b) == want
        else:  # a refusal of some kind: 4xx, never 2xx/5xx
            ok = 400 <= st < 500
        check("bad input: %s -> %s (%d %s)" % (name, want or "4xx", st, code(b)), ok, (st, str(b)[:200]))
    check("bad input stored nothing", stored_count() == before, (before, stored_count()))
    check("the server is still up", server.poll() is None)
    server.send_signal(signal.SIGTERM)
    check("SIGTERM stops it cleanly", server.wait(30) == 0)
finally:
    finish(check, T, [server])
