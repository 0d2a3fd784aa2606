#!/usr/bin/python3
"""tests/integration/test_cluster_accept.py -- issue #19's acceptance test
(docs/cluster.md "Acceptance and verification"): 3 nats-server JetStream
nodes and 3 suiro nodes (s1, s2, s3; `[cluster] owned = leases`, the
default, lease_ms 2000, 4 partitions), fed by two `suiro gwsim` runs over
MQTT (QoS 1) and read by AP-IF app clients.

 Two operators: "sim" and "opk" (each a gwsim sheet: 2 gateways of 3
 points, one value of each point a message at 2026-01-01 + n s, message n).
 O is the node that owns sim's partition (its rendezvous-preferred node,
 computed here again in Python); G is another node. gwsim "sim" sends to G
 through the whole test, gwsim "opk" sends to O.

 A. kill -9 O under load: its partitions are taken over by the survivors
    (the takeover time printed, not asserted); a file of sim (3 chunks)
    uploaded on O just before the kill, its upload acknowledged, is served
    by the node owning sim's partition afterwards with the same bytes
    (docs/cluster.md "Files across nodes"); every value acknowledged
    (PUBACKed, gwsim --acks) so far -- by O as well as by G -- is read from
    the node owning its operator's partition now (GET /admin/v1/cluster
    says who), each exactly once per point.
 B. kill -9 the NATS node leading sim's stream under load: ingest stalls,
    then resumes (the stall printed, not asserted).
 C. restart both: the NATS node rejoins; O rejoins, gets its preferred
    partitions back by handover and holds every acknowledged value of them,
    each exactly once.
 D. `suiro cluster verify` (every partition: the stream sound, its digest
    equal to the owner's index, read with GET
    /admin/v1/cluster/partitions/{p}/digest) exits 0 against the streams and
    the three nodes; with the nodes stopped, verify --data of sim's
    partition passes on O's data directory and fails (exit 1, one line per
    differing point naming the partition, the point and both counts) on
    the directory of the survivor that did not take the partition (its
    index lacks values written through the other nodes).
 E. `suiro cluster audit --operator opk` prints opk's audit rows from its
    partition's stream: its gateway's rows (who, what, when, from where,
    outcome) written by O, in the Admin audit listing's columns.
Loopback only, bounded waits, every process stopped by its PID. Exit 77
(skipped) only when nats-server is not installed.
usage: test_cluster_accept.py SUIRO_BIN"""
import calendar
import collections
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import srtest  # noqa: E402

BIN = sys.argv[1]
if not srtest.nats_server_path():
    print("SKIP: nats-server is not installed (scripts/deps.sh installs it)")
    sys.exit(77)
T = tempfile.mkdtemp(prefix="suiro-caccept-")
PARTS = 4
LEASE = 2000
NODES = ["s1", "s2", "s3"]
OPS = {"sim": "SAPP", "opk": "KAPP"}
BASE = 1767225600  # 2026-01-01T00:00:00Z, gwsim's first second
procs = []
check = srtest.Checks()
M = 0xFFFFFFFFFFFFFFFF


partition = srtest.cluster_partition


def weight(p, node):
    """docs/cluster.md "Ownership", again in Python."""
    h = 0xcbf29ce484222325
    for b in node.encode() + p.to_bytes(4, "little"):
        h = ((h ^ b) * 0x100000001b3) & M
    h ^= h >> 30
    h = (h * 0xbf58476d1ce4e5b9) & M
    h ^= h >> 27
    h = (h * 0x94d049bb133111eb) & M
    return h ^ (h >> 31)


def preferred(p, nodes):
    return max(sorted(nodes), key=lambda n: weight(p, n))


def apps(app):
    return ("\n[apps]\nid,name,secret,push_url\n%s,App,%s-app-secret,\n\n[grants]\napp,datapoint,access\n%s,*,read\n"
            % (app, app.lower(), app))


class Node:
    def __init__(self, i, nats):
        self.name = NODES[i]
        self.data = os.path.join(T, "data-%s" % self.name)
        self.log = os.path.join(T, "server-%s.log" % self.name)
        self.admin = "admin-" + self.name
        tmp = srtest.init_with_admins(BIN, self.data, admin=self.admin, second="admin2-" + self.name)[0]
        if i == 0:  # the operators, their gateways and apps: made on s1 only (replicated)
            for op, app in OPS.items():
                srtest.import_sheet(BIN, self.data, os.path.join(T, op + ".csv"),
                                    srtest.gwsim_sheet(BIN, 2, 3, op) + apps(app))
        self.cfg = os.path.join(T, "%s.ini" % self.name)
        with open(self.cfg, "w") as f:
            f.write("[cluster]\nnats = %s\nnode = %s\npartitions = %d\nreplicas = 3\nlease_ms = %d\n"
                    "ack_timeout_ms = 2000\ndedup_window_s = 600\n" % (nats, self.name, PARTS, LEASE))
        self.mqtt = srtest.free_port()
        self.p = None
        self.start()
        self.api = srtest.admin_session(self.port, self.admin, tmp, "cluster-password-1")

    def start(self):
        self.p, ports = srtest.start_server(BIN, self.data, self.log, config=self.cfg, until="http", timeout=60,
                                            extra=["--data", self.data, "--mqtt", "127.0.0.1:%d" % self.mqtt,
                                                   "--http", "127.0.0.1:0"])
        procs.append(self.p)
        self.port = ports["http"]

    def relogin(self):
        self.api = srtest.admin_session(self.port, self.admin, "cluster-password-1")

    def owned(self):
        try:
            st, b = self.api.call("GET", "/admin/v1/cluster")
        except OSError:
            return None
        return set(b["owned"]) if st == 200 else None


def owners(nodes):
    o = {p: [] for p in range(PARTS)}
    for n in nodes:
        for p in n.owned() or ():
            o[p].append(n.name)
    return o


def settled(nodes):
    names = [n.name for n in nodes]
    o = owners(nodes)
    return all(o[p] == [preferred(p, names)] for p in range(PARTS))


class Sim:
    """One gwsim run (operator op, 2 gateways x 3 points, one message every
    interval_ms per gateway) against a node's MQTT port; acked() = the
    acknowledged message numbers per gateway."""

    def __init__(self, op, port, interval_ms=100):
        self.op = op
        self.acks = os.path.join(T, "acks-%s" % op)
        self.p = subprocess.Popen([BIN, "gwsim", "run", "--port", str(port), "--operator", op, "--gateways", "2",
                                   "--points", "3", "--batch", "3", "--messages", "1000000", "--window", "4",
                                   "--interval-ms", str(interval_ms), "--acks", self.acks, "--duration", "400",
                                   "--seed", str(len(op))],
                                  stdout=open(os.path.join(T, "gwsim-%s.out" % op), "a"), stderr=subprocess.STDOUT)
        procs.append(self.p)

    def acked(self):
        try:
            with open(self.acks) as f:
                return {tuple(ln.split()[1:3]) for ln in f if ln.startswith("ack ") and len(ln.split()) == 3}
        except FileNotFoundError:
            return set()

    def stop(self):
        return srtest.stop_server(self.p, 15, signal.SIGINT)


def app_on(port, op, timeout=30):
    api = srtest.Api(port)
    app = OPS[op]
    ok = srtest.wait_until(lambda: api.login(app, op, app.lower() + "-app-secret") == 201, timeout=timeout, step=0.2)
    return api if ok else None


def stored(api, op):
    """{point: Counter(second)} of an operator's values on a node (AP-IF range)."""
    out = {}
    for g in (1, 2):
        for k in (1, 2, 3):
            pt = "SP%04d_%02d" % (g, k)
            c, cursor = collections.Counter(), None
            while True:  # every page (at most 100000 values a page)
                st, b = api.call("GET", "/api/v1/stored-values?dataId=%s&from=2026-01-01T00:00:00Z"
                                        "&to=2026-01-03T00:00:00Z&limit=100000%s"
                                 % (pt, "&cursor=" + cursor if cursor else ""))
                if st != 200:
                    c = None
                    break
                c.update(calendar.timegm(time.strptime(v["timestamp"][:19], "%Y-%m-%dT%H:%M:%S")) - BASE
                         for v in b["values"])
                cursor = b.get("nextCursor")
                if not cursor:
                    break
            out[pt] = c
    return out


def want(acked):
    """{point: {second}} the acknowledged messages must have stored."""
    w = collections.defaultdict(set)
    for gw, n in acked:
        for k in (1, 2, 3):
            w["SP%04d_%02d" % (int(gw[3:]), k)].add(int(n))
    return w


def compare(api, acked):
    """(every acknowledged value there, each exactly once: ok, missing, doubled)."""
    got, w = stored(api, acked[0]), want(acked[1])
    missing = {p: len(s - set(got.get(p) or ())) for p, s in w.items()}
    doubled = {p: sum(1 for n in (c or {}).values() if n > 1) for p, c in got.items()}
    return (not any(missing.values()) and not any(doubled.values()) and all(c is not None for c in got.values()),
            missing, doubled)


def owner_of(op, nodes):
    o = owners(nodes)[partition(op, PARTS)]
    return next((n for n in nodes if [n.name] == o), None)


def check_all_there(label, op, acked, nodes, timeout=60):
    """The acknowledged values of op, read from its partition's owner now."""
    res = [False, None, None, None]

    def ok():
        own = owner_of(op, nodes)
        if own is None:
            return False
        api = app_on(own.port, op, 10)
        if api is None:
            return False
        res[0], res[1], res[2] = compare(api, (op, acked))
        res[3] = own.name
        return res[0]
    srtest.wait_until(ok, timeout=timeout, step=0.5)
    check("%s: every acknowledged value of %s (%d messages) is read from its partition's owner %s, each once"
          % (label, op, len(acked), res[3]), res[0], (res[1], res[2]))


nodes = []
try:
    nc = srtest.start_nats_cluster(T, 3)
    nodes = [Node(i, nc.urls()) for i in range(3)]
    ok = srtest.wait_until(lambda: settled(nodes), timeout=40, step=0.2)
    check("every partition owned by its preferred node", ok, owners(nodes))
    psim, popk = partition("sim", PARTS), partition("opk", PARTS)
    O = next(n for n in nodes if n.name == preferred(psim, NODES))
    G = next(n for n in nodes if n is not O)
    print("sim: partition %d (owner %s), opk: partition %d (owner %s); gwsim sim -> %s, gwsim opk -> %s"
          % (psim, O.name, popk, preferred(popk, NODES), G.name, O.name), flush=True)
    # the gateways' registry reached the nodes the gwsims use
    check("the apps log in on G and O (the registry replicated)", app_on(G.port, "sim") and app_on(O.port, "opk"))
    # every node's log so far confirmed in the streams before the load: at
    # start the streams' leaders are still being elected and publishes time
    # out; the node publishes again from its watermark, and what was lost
    # lands after what was kept. A value reaching an owner before the
    # MasterPut / PointAlias of its point is refused there (docs/cluster.md
    # "Phase 2: what is still open": the consumers do not wait for it yet)
    def published(n):
        st, _, body, _ = srtest.http_once(n.port, "GET", "/metrics")
        text = body.decode() if isinstance(body, bytes) else str(body)
        return st == 200 and any(ln == "suiro_cluster_pending_events 0" for ln in text.splitlines())
    check("every node's log so far is confirmed in the streams before the load",
          srtest.wait_until(lambda: all(published(n) for n in nodes), timeout=60, step=0.2))
    sim, opk = Sim("sim", G.mqtt), Sim("opk", O.mqtt)
    check("both gwsims get acknowledgements",
          srtest.wait_until(lambda: len(sim.acked()) >= 100 and len(opk.acked()) >= 100, timeout=60, step=0.1),
          (len(sim.acked()), len(opk.acked())))

    # ---- A: kill -9 O under load ----
    lost = sorted(p for p in range(PARTS) if preferred(p, NODES) == O.name)
    # a file of sim uploaded on O (sim's partition's owner), O killed right after the acknowledgement
    fapi = app_on(O.port, "sim")
    fbytes = os.urandom(2 * 256 * 1024 + 777)
    st, _ = fapi.call("PUT", "/api/v1/files/kill/f.bin", fbytes, {"Content-Type": "application/x-test"}) \
        if fapi else (0, None)
    t0 = time.monotonic()
    O.p.send_signal(signal.SIGKILL)
    check("A: a file uploaded on O is acknowledged before its kill -9", st in (200, 201), st)
    O.p.wait()
    surv = [n for n in nodes if n is not O]
    ok = srtest.wait_until(lambda: settled(surv), timeout=30, step=0.05)
    took = time.monotonic() - t0
    print("A: takeover: partitions %s of the killed node %s owned again by the survivors %.2f s after the kill "
          "(lease_ms %d)" % (lost, O.name, took, LEASE), flush=True)
    check("A: the killed node's partitions are taken over by the survivors", ok, owners(surv))
    opk.stop()  # its node is dead: what it got acknowledged is final
    a_opk = opk.acked()
    check("A: sim's load goes on during the takeover",
          srtest.wait_until(lambda: len(sim.acked()) >= 200, timeout=60, step=0.1), len(sim.acked()))
    a_sim = sim.acked()
    check_all_there("A", "opk", a_opk, surv)
    check_all_there("A", "sim", a_sim, surv)
    got = [None]

    def file_served():
        own = owner_of("sim", surv)
        api = app_on(own.port, "sim", 10) if own else None
        if api is None:
            return False
        st, body, r = api.call("GET", "/api/v1/files/kill/f.bin", raw=True)
        got[0] = (own.name, st, len(body), r.getheader("x-suiro-sha256"))
        return st == 200 and body == fbytes and hashlib.sha256(body).digest() == hashlib.sha256(fbytes).digest()
    ok = srtest.wait_until(file_served, timeout=40, step=0.5)
    check("A: the node that took sim's partition over serves the file O acknowledged before its kill -9 (bytes and "
          "SHA-256 equal)", ok, got[0])

    # ---- B: kill -9 the NATS leader of sim's stream under load ----
    stream = "SUIRO_P%03d" % psim
    leader = nc.stream_leader(stream)
    check("B: the stream %s has a leader (%r)" % (stream, leader), leader is not None)
    counts, t_kill = [], None
    if leader is not None:
        n0 = len(sim.acked())
        srtest.wait_until(lambda: len(sim.acked()) >= n0 + 20, timeout=30, step=0.05)
        nc.stop(leader, kill=True)
        t_kill = time.monotonic()
        end = t_kill + 40
        while time.monotonic() < end:
            counts.append((time.monotonic(), len(sim.acked())))
            if len(counts) > 2 and counts[-1][1] >= counts[0][1] + 40:
                break
            time.sleep(0.05)
        stall, last_t, last_n = 0.0, None, None
        for t, n in counts:
            if last_n is None or n > last_n:
                if last_t is not None:
                    stall = max(stall, t - last_t)
                last_t, last_n = t, n
        print("B: NATS node n%d (leader of %s) killed: longest stall without a PUBACK %.2f s" % (leader, stream, stall),
              flush=True)
        check("B: ingest resumes after the leader kill", counts and counts[-1][1] >= counts[0][1] + 40,
              counts[-3:])

    # ---- C: restart both ----
    if leader is not None:
        nc.start(leader)
        check("C: the NATS node rejoins", nc.wait_ready(60))
    t1 = time.monotonic()
    O.start()
    O.relogin()
    ok = srtest.wait_until(lambda: settled(nodes), timeout=40, step=0.05)
    print("C: the restarted node %s owns its preferred partitions %s again %.2f s after its start"
          % (O.name, lost, time.monotonic() - t1), flush=True)
    check("C: the restarted node got its preferred partitions back (handover)", ok, owners(nodes))
    n2 = len(sim.acked())
    check("C: ingest goes on", srtest.wait_until(lambda: len(sim.acked()) >= n2 + 40, timeout=60, step=0.1))
    check("C: gwsim sim stops cleanly", sim.stop() == 0)
    a_sim = sim.acked()
    check_all_there("C", "sim", a_sim, nodes, timeout=150)
    check_all_there("C", "opk", a_opk, nodes, timeout=150)
    check("C: sim's partition is the restarted node's again", owner_of("sim", nodes) is O)

    # ---- D: suiro cluster verify against the streams and every node's index ----
    vcfg = os.path.join(T, "verify.ini")
    with open(vcfg, "w") as f:
        f.write("[cluster]\nnats = %s\nnode = verify\npartitions = %d\n" % (nc.urls(), PARTS))
    urls = ",".join("http://127.0.0.1:%d" % n.port for n in nodes)
    tok = nodes[0].api.token

    def verify():
        return subprocess.run([BIN, "cluster", "verify", "--config", vcfg, "--url", urls],
                              capture_output=True, text=True, timeout=300, env=dict(os.environ, SUIRO_TOKEN=tok))
    r = [None]
    srtest.wait_until(lambda: (r.__setitem__(0, verify()) or r[0].returncode == 0), timeout=60, step=1)
    print("D: suiro cluster verify:", r[0].stdout[-1500:], r[0].stderr[-1500:], sep="\n", flush=True)
    check("D: suiro cluster verify passes (exit 0) against the streams and the owners' indexes",
          r[0].returncode == 0, r[0].returncode)
    check("D: verify's summary names every partition",
          all("partition %d:" % p in r[0].stdout for p in range(PARTS)), r[0].stdout[-500:])
    # (the nodes stopped: their data directories read by verify --data)
    rcs = [srtest.stop_server(n.p) for n in nodes]
    check("every node stopped cleanly", all(rc == 0 for rc in rcs), rcs)

    def verify_data(n):
        return subprocess.run([BIN, "cluster", "verify", "--config", vcfg, "--partition", str(psim), "--data",
                               n.data], capture_output=True, text=True, timeout=300)
    r = verify_data(O)
    check("D: verify --data of sim's owner's directory passes", r.returncode == 0, (r.returncode, r.stdout[-800:],
                                                                                   r.stderr[-500:]))
    # a node whose index lacks the partition's values: a freshly made data
    # directory (a survivor may have followed the partition to its end: with
    # the test's short lease a NATS leader change can move it to any node)
    empty = os.path.join(T, "data-empty")
    srtest.init_with_admins(BIN, empty, admin="admin-empty", second="admin2-empty")
    never = type("Empty", (), {"name": "an empty node", "data": empty})()
    r = verify_data(never)
    print("D: verify --data of %s (not sim's partition's owner):" % never.name, r.stdout[-1500:], flush=True)
    check("D: verify --data of a node whose index lacks the partition fails (exit 1)", r.returncode == 1,
          (r.returncode, r.stderr[-500:]))
    diffs = [(int(m.group(2)), m.group(3)) for m in re.finditer(
        r"^partition %d: (sim|opk)/SP000[12]_0[123]: the stream holds (\d+) values, the index of \S+ (\d+|none)"
        % psim, r.stdout, re.M)]
    check("D: ... one line per differing point naming the partition, the point and both counts (%d)" % len(diffs),
          diffs and all(str(n) != m for n, m in diffs), r.stdout[-800:])

    # ---- E: suiro cluster audit: an operator's audit rows from its partition's stream ----
    r = subprocess.run([BIN, "cluster", "audit", "--config", vcfg, "--operator", "opk"], capture_output=True,
                       text=True, timeout=300)
    rows = [json.loads(ln) for ln in r.stdout.splitlines() if ln.strip()]
    print("E: suiro cluster audit --operator opk: %d rows; %s" % (len(rows), r.stderr.strip()[-300:]), flush=True)
    gw = [a for a in rows if a.get("actor") == "SIM0001" and a.get("actorKind") == "gateway"]
    check("E: cluster audit exits 0 with opk's rows only", r.returncode == 0 and rows and
          all(a.get("operator") == "opk" for a in rows), (r.returncode, r.stderr[-300:], rows[:2]))
    check("E: the gateway's rows say who, what, when and the outcome, and which node wrote them",
          gw and all(a.get("kind") and a.get("action") and a.get("time") and a.get("outcome") and a.get("node")
                     for a in gw), [a for a in gw if not (a.get("kind") and a.get("action") and a.get("time") and
                                                         a.get("outcome") and a.get("node"))][:3])
    check("E: its session opened on O, from where (the gateway's address)",
          any(a["kind"] == "session" and a["action"] == "opened" and a.get("source") and a["node"] == O.name
              for a in gw), gw[:3])
except Exception as e:  # noqa: BLE001
    check.failed(e)
rcs = [srtest.stop_server(n.p) for n in nodes if n.p is not None and n.p.poll() is None]
check("every node still running stopped cleanly", all(rc == 0 for rc in rcs), rcs)
srtest.finish(check, T, procs, "server-s1.log")
