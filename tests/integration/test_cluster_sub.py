#!/usr/bin/python3
"""tests/integration/test_cluster_sub.py -- the cluster's consumers, phase 2a
(issue #19, docs/cluster.md "Consumers"): 3 nats-server JetStream nodes and
suiro nodes A and B (both `owned = all`), each indexing the other's events
from the streams, exactly once.

 A. gateway values PUBACKed... here acknowledged (GW-IF HTTP 200) by node A
    are read from node B (AP-IF: the latest values and a time range), each
    acknowledged value there once per point, and B's log holds each of A's
    events at most once (its origin node:seq).
    A file written on A is listed on B but its bytes are not there (phase
    2c): reading it on B is a clear error (500 E9001 naming why).
 B. a registry change made on node B (a new gateway, Admin API) lets that
    gateway log in on node A.
 C. kill -9 node B under load (values still sent to A) and restart it: it
    catches up from its checkpoint (the catch-up rate printed, not asserted)
    and still holds each acknowledged value exactly once.
 D. a node C with `owned = none` gets the registry events (the app and the
    gateway registry: logins work there) but no measurements.
Loopback only, bounded waits, every process stopped by its PID. Exit 77
(skipped) only when nats-server is not installed.
usage: test_cluster_sub.py SUIRO_BIN"""
import collections
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import srtest  # noqa: E402

BIN = sys.argv[1]
if not srtest.nats_server_path():
    print("SKIP: nats-server is not installed (scripts/deps.sh installs it)")
    sys.exit(77)
T = tempfile.mkdtemp(prefix="suiro-csub-")
PARTS = 4
POINTS = ["SP0001_01", "SP0001_02", "SP0001_03"]
APPS = ("\n[apps]\nid,name,secret,push_url\nSAPP,Sim app,sim-app-secret,\n\n"
        "[grants]\napp,datapoint,access\nSAPP,*,read\n")
procs = []
check = srtest.Checks()


def data(n):
    return os.path.join(T, "data-" + n)


def write_config(name, nats, owned="all"):
    return srtest.cluster_ini(os.path.join(T, name + ".ini"), nats, name, PARTS, replicas=3, ack_timeout_ms=2000,
                              dedup_window_s=600, owned=owned)


def start(name, cfg):
    p, ports = srtest.start_server(BIN, data(name), os.path.join(T, name + ".log"), config=cfg, timeout=60,
                                   extra=["--data", data(name), "--mqtt", "127.0.0.1:0", "--http", "127.0.0.1:0"])
    procs.append(p)
    return p, ports


def gw_session(port, gw, secret):
    return srtest.gw_session(port, "sim", gw, secret)


class Sender:
    """Gateway SIM0001's values to one node over GW-IF HTTP: message k holds
    one value of each point at time BASE + k s. acked: the message numbers
    answered 200 (durable locally AND acknowledged by JetStream)."""
    BASE = 1767225600000  # 2026-01-01T00:00:00Z

    def __init__(self, port):
        self.port, self.k, self.acked, self.stop = port, 0, [], threading.Event()
        self.api = None

    def send(self, k):
        if self.api is None:
            self.api = gw_session(self.port, "SIM0001", "sim-secret-SIM0001")
            if self.api is None:
                return False
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime((self.BASE + k * 1000) / 1000)) + "Z"
        vals = [{"dataId": p, "timestamp": ts, "value": k + i / 10} for i, p in enumerate(POINTS)]
        try:
            st, b = self.api.call("POST", "/gw/v1/measurements",
                                  {"header": {"messageType": "GW_MEASUREMENTS", "messageId": "m-%d" % k},
                                   "body": {"values": vals}})
        except OSError:
            return False
        if st == 200:
            self.acked.append(k)
            return True
        return False

    def run_n(self, n):
        for _ in range(n):
            self.k += 1
            self.send(self.k)

    def loop(self):
        while not self.stop.is_set():
            self.k += 1
            self.send(self.k)
            time.sleep(0.003)


def range_counts(api):
    """Per point: the timestamps node's AP-IF range answer holds (all of 2026-01-01)."""
    out = {}
    for p in POINTS:
        st, b = api.call("GET", "/api/v1/stored-values?dataId=%s&from=2026-01-01T00:00:00Z"
                                "&to=2026-01-02T00:00:00Z&limit=100000" % p)
        out[p] = collections.Counter(v["timestamp"] for v in b["values"]) if st == 200 else None
    return out


def app_on(port, timeout=30):
    api = srtest.Api(port)
    ok = srtest.wait_until(lambda: api.login("SAPP", "sim", "sim-app-secret") == 201, timeout=timeout, step=0.2)
    return api if ok else None


def metrics(port):
    st, _, body, _ = srtest.http_once(port, "GET", "/metrics")
    out = {}
    for ln in (body.decode() if isinstance(body, bytes) else str(body)).splitlines():
        if ln.startswith("suiro_cluster_") and " " in ln:
            k, v = ln.rsplit(" ", 1)
            out[k] = float(v)
    return out


def all_there(api, acked):
    """Every acknowledged message's values, per point, in the range answer."""
    want = {time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime((Sender.BASE + k * 1000) / 1000)) for k in acked}
    got = range_counts(api)
    return all(c is not None and want <= {t[:19] for t in c} for c in got.values()), got, want


def origins_once(name):
    """Each origin id (node:seq) at most once in node name's log."""
    r = subprocess.run([BIN, "replay", data(name)], capture_output=True, text=True, timeout=120)
    ids = collections.Counter()
    for ln in r.stdout.splitlines():
        if not ln.strip():
            continue
        ev = json.loads(ln)
        o = ev.get("origin")
        if o:
            ids["%s:%s" % (o.get("node"), o.get("seq"))] += 1
    return ids


try:
    srtest.provision_gwsim(BIN, data("a"), T, 2, 3, extra=APPS)
    pw, pw2 = srtest.init_with_admin(BIN, data("b"), second="admin2")
    nc = srtest.start_nats_cluster(T, 3)
    a, pa = start("a", write_config("a", nc.urls()))
    b, pb = start("b", write_config("b", nc.urls()))

    # A. values acknowledged by A, read from B
    sb = app_on(pb["http"])
    check("A: the app (A's registry) logs in on B", sb is not None)
    snd = Sender(pa["http"])
    snd.run_n(60)
    check("A: A acknowledged the values (%d)" % len(snd.acked), len(snd.acked) == 60, len(snd.acked))
    ok = srtest.wait_until(lambda: all_there(sb, snd.acked)[0], timeout=30, step=0.2) if sb else False
    _, got, want = all_there(sb, snd.acked) if sb else (None, {}, set())
    check("A: every acknowledged value is read from B", ok, {p: len(c or ()) for p, c in got.items()})
    twice = {p: [t for t, n in (c or {}).items() if n > 1] for p, c in got.items()}
    check("A: each value once per point on B", got and all(c is not None and len(c) == len(want) for c in got.values())
          and not any(twice.values()), ({p: len(c or ()) for p, c in got.items()}, len(want)))
    st, lb = sb.call("GET", "/api/v1/stored-values/latest?" + "&".join("dataId=" + p for p in POINTS)) if sb else (0, {})
    last = max(snd.acked)
    check("A: the latest values on B are A's last ones", st == 200 and sorted(v["value"] for v in lb["values"]) ==
          [last + i / 10 for i in range(3)], (st, lb))

    # a file written on A: its record reaches B, not its bytes (phase 2c): a clear error there
    sa = app_on(pa["http"])
    st, _ = sa.call("PUT", "/api/v1/files/notes/c.txt", b"cluster bytes", {"Content-Type": "text/plain"}) if sa \
        else (0, None)
    check("A: a file written on A", st in (200, 201), st)
    got = [None]

    def file_on_b():
        got[0] = sb.call("GET", "/api/v1/files/notes/c.txt", raw=True)
        return got[0][0] != 404
    srtest.wait_until(file_on_b, timeout=30, step=0.2)
    st, body = got[0][0], got[0][1]
    check("A: reading it on B is a clear error, not a crash nor garbage (500 E9001, says why)",
          st == 500 and b"E9001" in body and b"not on this node" in body, (st, body[:200]))

    # B. a registry change on B lets a new gateway connect to A
    admin = srtest.admin_session(pb["http"], "admin", pw, new_password="Cluster-admin-pw-1")
    admin2 = srtest.admin_session(pb["http"], "admin2", pw2, new_password="Cluster-admin-pw-2") if pw2 else None
    # (an operator's admin makes its gateways; the operator came from A)
    simadm = srtest.admin_new_user(pb["http"], admin, "simadm", "operator", "sim", ["operator_admin"],
                                   "Sim-admin-pw-0001", approver=admin2)
    st, body = srtest.admin_applied(simadm.call("PUT", "/admin/v1/operators/sim/gateways/SIMNEW",
                                                {"name": "Made on B", "secret": "sim-secret-SIMNEW"}), admin2)
    check("B: the gateway is created on B", st in (200, 201), (st, body))
    ok = srtest.wait_until(lambda: gw_session(pa["http"], "SIMNEW", "sim-secret-SIMNEW") is not None, timeout=30,
                           step=0.2)
    check("B: the gateway made on B logs in on A", ok)

    # C. kill -9 B under load, restart: it catches up from its checkpoint
    th = threading.Thread(target=snd.loop, daemon=True)
    th.start()
    srtest.wait_until(lambda: len(snd.acked) >= 150, timeout=30)
    b.send_signal(signal.SIGKILL)
    b.wait()
    srtest.wait_until(lambda: len(snd.acked) >= 600, timeout=30)  # values B has not seen
    snd.stop.set()
    th.join(30)
    behind = len(snd.acked)
    t0 = time.monotonic()
    b, pb = start("b", write_config("b", nc.urls()))
    sb = app_on(pb["http"])
    ok = srtest.wait_until(lambda: all_there(sb, snd.acked)[0], timeout=40, step=0.1) if sb else False
    dt = time.monotonic() - t0
    m = metrics(pb["http"])
    caught = m.get('suiro_cluster_consumed_total{class="data"}', 0)
    print("C: B caught up %d acknowledged messages (%d events consumed since its restart) in %.2f s: %.0f events/s"
          % (behind, caught, dt, caught / dt if dt else 0))
    check("C: B catches up after kill -9", ok)
    _, got, want = all_there(sb, snd.acked) if sb else (None, {}, set())
    check("C: each acknowledged value exactly once on B after the restart",
          got and all(c is not None and len(c) == len(want) and max(c.values()) == 1 for c in got.values()),
          {p: len(c or ()) for p, c in got.items()})
    srtest.stop_server(b)
    dup = [i for i, n in origins_once("b").items() if n > 1]
    check("C: B's log holds each of A's events at most once (origin node:seq)", not dup, dup[:5])
    n_orig = sum(1 for i in origins_once("b") if i.startswith("a:"))
    check("C: B's log holds A's events (%d)" % n_orig, n_orig >= len(snd.acked))
    b, pb = start("b", write_config("b", nc.urls()))

    # D. owned = none: the registry, no measurements
    subprocess.run([BIN, "init", data("c")], check=True, capture_output=True)
    c, pc = start("c", write_config("c", nc.urls(), owned="none"))
    sc = app_on(pc["http"])
    check("D: the app (A's registry) logs in on C", sc is not None)
    ok = srtest.wait_until(lambda: gw_session(pc["http"], "SIMNEW", "sim-secret-SIMNEW") is not None, timeout=30,
                           step=0.2)
    check("D: the gateway made on B logs in on C", ok)
    st, lc = sc.call("GET", "/api/v1/stored-values/latest?dataId=SP0001_01") if sc else (0, None)
    vals = lc.get("values", []) if isinstance(lc, dict) else []
    check("D: C holds no measurement (it owns no partition)", not [v for v in vals if "value" in v], (st, lc))
    mc = metrics(pc["http"])
    check("D: C consumed registry events and no data",
          mc.get('suiro_cluster_consumed_total{class="reg"}', 0) > 0 and
          mc.get('suiro_cluster_consumed_total{class="data"}', -1) == 0, mc)
    for p in (c, b, a):
        check("a node stops cleanly", srtest.stop_server(p) == 0)
    nc.stop_all()
except Exception as e:  # noqa: BLE001
    check.failed(e)
finally:
    srtest.finish(check, T, procs)
