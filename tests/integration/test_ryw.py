#!/usr/bin/python3
"""tests/integration/test_ryw.py -- read-your-writes on a single node (issue
#19 phase 2b; api/ryw.h, docs/cluster.md "Read-your-writes"):

 A. a GW-IF HTTP write's 200 carries Suiro-Seq (the log seq of its last
    event); an AP-IF read with Suiro-Wait of it sees the value.
 B. a read whose token is one seq ahead waits (answered only after the next
    write), then sees that write; suiro_ryw_waits_total counts it "waited".
 C. a token far in the future is answered 429 E9002 (detail reason
    "timeout") once Suiro-Wait-Ms passed (the error is checked, not the
    duration); Suiro-Wait-Ms 0 answers at once.
 D. a malformed token (and a bad Suiro-Wait-Ms) is 400 E1001 naming the
    header; a cluster token on a single node is 503 E9002.
 E. an Admin write's answer carries Suiro-Seq; an Admin GET waits too.
 F. a write refused (unknown data point) carries no Suiro-Seq.
Loopback only, bounded waits, the server stopped by its PID.
usage: test_ryw.py SUIRO_BIN"""
import os
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import srtest  # noqa: E402

BIN = sys.argv[1]
T = tempfile.mkdtemp(prefix="suiro-ryw-")
DATA = os.path.join(T, "data")
APPS = ("\n[apps]\nid,name,secret,push_url\nSAPP,Sim app,sim-app-secret,\n\n"
        "[grants]\napp,datapoint,access\nSAPP,*,read\n")
BASE = 1767225600  # 2026-01-01T00:00:00Z
procs = []
check = srtest.Checks()


def ts(k):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(BASE + k)) + "Z"


def gw_write(gw, k, point="SP0001_01"):
    """One value k of point at BASE + k s: (status, body, Suiro-Seq or None)."""
    st, data, r = gw.call("POST", "/gw/v1/measurements",
                          {"header": {"messageType": "GW_MEASUREMENTS", "messageId": "m-%s-%d" % (point, k)},
                           "body": {"values": [{"dataId": point, "timestamp": ts(k), "value": k}]}}, raw=True)
    return st, data, r.getheader("Suiro-Seq")


def latest(app, token=None, wait_ms=None):
    h = {}
    if token is not None:
        h["Suiro-Wait"] = token
    if wait_ms is not None:
        h["Suiro-Wait-Ms"] = str(wait_ms)
    return app.call("GET", "/api/v1/stored-values/latest?dataId=SP0001_01", headers=h)


def value_of(b):
    vals = b.get("values", []) if isinstance(b, dict) else []
    return vals[0].get("value") if vals else None


def ryw_metrics(port):
    st, _, body, _ = srtest.http_once(port, "GET", "/metrics")
    out = {}
    for ln in body.decode().splitlines():
        if ln.startswith("suiro_ryw_waits_total{") and " " in ln:
            k, v = ln.rsplit(" ", 1)
            out[k.split('"')[1]] = float(v)
        elif ln.startswith("suiro_ryw_waiting "):
            out["waiting"] = float(ln.split()[1])
    return out


try:
    pw, pw2 = srtest.init_with_admin(BIN, DATA, second="admin2")
    srtest.import_sheet(BIN, DATA, os.path.join(T, "sim.csv"), srtest.gwsim_sheet(BIN, 1, 3) + APPS)
    p, ports = srtest.start_server(BIN, DATA, os.path.join(T, "server.log"))
    procs.append(p)
    port = ports["http"]
    gw = srtest.Api(port)
    st, b = gw.call("POST", "/gw/v1/sessions", {"operatorId": "sim", "gatewayId": "SIM0001",
                                                 "secret": "sim-secret-SIM0001"})
    gw.token = b["token"] if st == 201 else None
    app = srtest.Api(port)
    check("the app logs in", app.login("SAPP", "sim", "sim-app-secret") == 201)

    # A. the write's token, then a read with it
    st, body, tok = gw_write(gw, 1)
    check("A: a GW-IF HTTP write is 200 with Suiro-Seq", st == 200 and tok is not None and tok.isdigit(), (st, tok))
    st, b = latest(app, tok)
    check("A: a read with Suiro-Wait of it sees the value", st == 200 and value_of(b) == 1, (st, b))
    st2, body2, tok2 = gw_write(gw, 2)
    check("A: the next write's token is higher", tok2 and tok and int(tok2) > int(tok), (tok, tok2))
    st, body, tokd = gw_write(gw, 2)  # the same messageId again: a duplicate, stored once
    check("A: a duplicate's 200 carries the original's token", st == 200 and tokd == tok2, (st, tokd, tok2))
    m0 = ryw_metrics(port)
    check("A: counted reached at once", m0.get("at_once", 0) >= 1, m0)

    # B. a token ahead of the log: the read waits until writes reach it (the
    # log also holds the server's own events: sessions, alive marks, ...)
    target = int(tok2) + 40
    res = {}

    def reader():
        res["r"] = latest(app2, str(target), 20000)
    app2 = srtest.Api(port)
    app2.login("SAPP", "sim", "sim-app-secret")
    th = threading.Thread(target=reader)
    th.start()
    # the read is parked: the server shows one waiting request (suiro_ryw_waiting)
    parked = srtest.wait_until(lambda: ryw_metrics(port).get("waiting") == 1, timeout=10) and th.is_alive()
    check("B: the read is parked before the writes", parked)
    toks = {}
    k = 3
    while th.is_alive() and k < 400:
        st, body, t = gw_write(gw, k)
        if st == 200 and t:
            toks[k] = int(t)
        k += 1
        th.join(0.01)
    th.join(30)
    st, b = res.get("r", (0, None))
    below = [k for k, t in toks.items() if t <= target]
    print("B: the read was released after %d writes (token %d; their tokens %s..%s)"
          % (len(toks), target, min(toks.values(), default="-"), max(toks.values(), default="-")))
    check("B: the read answered sees every write at or below the token (latest >= %s)" % (max(below) if below else "-"),
          st == 200 and below and value_of(b) is not None and value_of(b) >= max(below), (st, b, below[-3:]))
    m1 = ryw_metrics(port)
    check("B: counted as waited", m1.get("waited", 0) >= 1, m1)
    tok3 = str(max(toks.values())) if toks else tok2

    # C. far in the future: timed out with the documented error
    st, b = latest(app, str(int(tok3) + 10 ** 9), 300)
    check("C: a token far ahead times out: 429 E9002, reason timeout",
          st == 429 and srtest.code(b) == "E9002" and b["result"].get("detail", {}).get("reason") == "timeout"
          and "Suiro-Wait" in b["result"]["message"], (st, b))
    st, b = latest(app, str(int(tok3) + 10 ** 9), 0)
    check("C: Suiro-Wait-Ms 0 answers at once (not reached: 429)", st == 429 and srtest.code(b) == "E9002", (st, b))
    m2 = ryw_metrics(port)
    check("C: counted as timeout", m2.get("timeout", 0) >= 2, m2)

    # D. malformed
    for bad in ("abc", "", "12x", "0", "1,", "3:0", "3:5@:7", "3:5@n", "99999999999999999999999", "1000:5",
                ",".join(["1"] * 9)):
        st, b = latest(app, bad)
        check("D: Suiro-Wait %r is 400 E1001 naming the header" % bad,
              st == 400 and srtest.code(b) == "E1001" and b["result"]["message"].startswith("Suiro-Wait:")
              and b["result"].get("detail", {}).get("field") == "header Suiro-Wait", (st, b))
    for bad in ("x", "30001", "-1"):
        st, b = latest(app, tok, bad)
        check("D: Suiro-Wait-Ms %r is 400 E1001 naming it" % bad,
              st == 400 and srtest.code(b) == "E1001" and b["result"]["message"].startswith("Suiro-Wait-Ms:"), (st, b))
    st, b = latest(app, "1:5@other:7")
    check("D: a cluster token on a single node: 503 E9002", st == 503 and srtest.code(b) == "E9002", (st, b))
    st, b = latest(app, " %s , %s " % (tok, tok2))
    check("D: a list with spaces is fine", st == 200 and value_of(b) is not None, (st, b))

    # E. Admin: a write's answer carries the token, a GET may wait for it
    admin = srtest.admin_session(port, "admin", pw, new_password="Ryw-admin-pw-0001")
    st, data, r = admin.call("POST", "/admin/v1/vendors", {"id": "vryw", "name": "Vendor RYW", "kind": "ap"}, raw=True)
    atok = r.getheader("Suiro-Seq")
    check("E: an Admin write's answer carries Suiro-Seq", st in (200, 201) and atok and atok.isdigit(),
          (st, data[:200], atok))
    st, b = admin.call("GET", "/admin/v1/vendors", headers={"Suiro-Wait": atok or "1"})
    check("E: an Admin GET with Suiro-Wait of it sees it", st == 200 and "vryw" in str(b), (st, str(b)[:200]))
    st, b = admin.call("GET", "/admin/v1/vendors", headers={"Suiro-Wait": str(10 ** 12), "Suiro-Wait-Ms": "100"})
    check("E: an Admin GET far ahead times out 429 E9002", st == 429 and srtest.code(b) == "E9002", (st, b))

    # F. a refused write carries no token
    st, body, tokf = gw_write(gw, 4, point="NOSUCHPOINT")
    check("F: a refused write has no Suiro-Seq", st != 200 and tokf is None, (st, tokf))

    check("the server stops cleanly", srtest.stop_server(p) == 0)
except Exception as e:  # noqa: BLE001
    check.failed(e)
finally:
    srtest.finish(check, T, procs)
