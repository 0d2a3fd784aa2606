#!/usr/bin/python3
"""bench/cluster_ingest.py BUILD [--quick] -- the cluster mode's figures
(issue #19, docs/cluster.md "Benchmarks" and "Capacity"), in one run, side by
side: durable ingest with 1, 2 and 3 suiro nodes against a single node
without a cluster, the PUBACK latency, the takeover time after a node's
kill -9 and the catch-up rate of a restarted node.

3 nats-server JetStream nodes always (srtest.start_nats_cluster, R3
streams), started once; each configuration gets streams of its own
([cluster] name CB<n>). The configurations:
  single   `suiro serve` without [cluster] (the embedded default);
  c1 c2 c3 1, 2, 3 suiro nodes (s1.., [cluster] partitions 16, replicas 3,
           lease_ms 2000 as in test_cluster_own: the takeover below is
           about 1.6 x lease_ms at worst).
No encryption at rest anywhere ([cluster] refuses [engine] key_file, so the
single node runs plain too: the same log path); sync=always (the default).
Node s1's data directory is a copy of one template (init + the set-up sheet
of 3 operators `sim`, `demo`, `op-0001`: on partitions 11, 8 and 13 of 16,
docs/cluster.md's golden values; each G gateways SIM0001.. x M number
points, an app BENCH); the other nodes are a fresh `suiro init` and get the
registry from the streams (the load starts once the app logs in on every
node for every operator). Owners are read from each node's
GET /admin/v1/cluster.

The load: bench/shape_ingest (BUILD/bench/shape_ingest), one generator per
operator, all three at once, generator k to node k mod n over MQTT 3.1.1
QoS 1 (one connection per gateway, at most CB_WINDOW unacknowledged): the
PUBACK waits for the local fsync AND the JetStream ack (docs/cluster.md).
Shapes (the guide's): snapshot (a gateway's M points x 1 value at one
timestamp), series (a backlog: one point x M consecutive values a message),
mixed (snapshots + 1 % backfill of old series). Each shape's values are
its own (--t-offset-s, --id-prefix). values_per_s = the values acknowledged
by the three generators / the longest generator's timed part (after its
logins); suiro_cpu_us_per_value and nats_cpu_us_per_value: the CPU of every
suiro node and of the 3 nats-server from the end of the last generator's
logins to the end of the load, per value acknowledged (the owners' apply of
what is still behind then is not in it: owner_lag_s). Then a paced run (one generator, CB_PACE msgs/s of snapshot
messages to s1: the same rate in every configuration) for the PUBACK
p50/p99 at a rate every configuration sustains.

verify (per configuration): every generator had every message acknowledged,
and each operator's owner (single: the node) holds exactly the values
acknowledged for it (AP-IF downsampled counts over every data point:
counted from the owners, waited for, bounded; owner_lag_s = from the end of
the load until the owner's count was complete), and no origin id
(node:seq) is twice in an owner's log (`suiro replay`, after the stop):
every acknowledged value applied once.

Then, on c3 (still running):
  takeover  CB_ROUNDS rounds: kill -9 the owner of one operator's partition;
            owned_s: until every partition it owned is owned by a survivor
            (the survivors' /admin/v1/cluster "owned"); acked_s: a value of
            that operator sent to a survivor is PUBACKed (sent once owned);
            readable_s: the new owner answers it (AP-IF latest). The node is
            started again and takes its partitions back before the next
            round. p50 and max printed.
  catch-up  kill -9 the owner of the most operators' partitions; the
            generators of its operators write CB_CU_SECONDS s of snapshots
            (N events = the messages acknowledged) to the survivors; then
            it is started again on its data: catchup_s from its start
            (process start-up, the lease handover back to it: one or two
            lease rounds, the consumption from its checkpoints, the apply)
            until its counts hold every value acknowledged for its
            operators; events_per_s = N / catchup_s; apply_events_per_s =
            N / (catchup_s - until it owned its partitions again).
2 cores for everything (3 NATS, up to 3 suiro, the generators): a floor,
not a scaling curve; the lines say so ("note").

Prints one JSON line per configuration ({"bench":"cluster_ingest",
"config":..,"nodes":..,"shape":.. ...}, one per shape, and
{"bench":"cluster_puback",...}), {"bench":"cluster_takeover",...},
{"bench":"cluster_catchup",...} and {"bench":"cluster_summary",...}; each
with "verify":"ok"|"FAILED"; exit 1 when one failed. --quick: a few
thousand values, 1 round, the snapshot shape only (correctness, no figure).
Exit 77 when nats-server is not installed. Every process is stopped by its PID.
Environment: CB_GATEWAYS [10] per operator, CB_PER [100] points per gateway,
CB_SECONDS [1000], CB_WINDOW [16], CB_SHAPES [snapshot series mixed],
CB_CONFIGS [single c1 c2 c3], CB_PACE [100], CB_PACE_MSGS [1000],
CB_ROUNDS [3], CB_CU_SECONDS [1000], CB_KEEP=1 keeps the temporary directory,
CB_PERF=FILE records `perf record -g` of the restarted node during its catch-up.
"""
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import srtest  # noqa: E402  (the one harness: NATS cluster, servers, clients)

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("-") else "build")
QUICK = "--quick" in sys.argv
BIN = os.path.join(BUILD, "suiro")
GEN = os.path.join(BUILD, "bench", "shape_ingest")
E = os.environ.get
GWS = int(E("CB_GATEWAYS", "2" if QUICK else "10"))
PER = int(E("CB_PER", "20" if QUICK else "100"))
SECONDS = int(E("CB_SECONDS", "10" if QUICK else "1000"))
WINDOW = int(E("CB_WINDOW", "16"))
SHAPES = E("CB_SHAPES", "snapshot" if QUICK else "snapshot series mixed").split()
CONFIGS = E("CB_CONFIGS", "single c1 c3" if QUICK else "single c1 c2 c3").split()
PACE = float(E("CB_PACE", "100"))
PACE_MSGS = int(E("CB_PACE_MSGS", "100" if QUICK else "1000"))
ROUNDS = int(E("CB_ROUNDS", "1" if QUICK else "3"))
CU_SECONDS = int(E("CB_CU_SECONDS", "10" if QUICK else "1000"))
OPS = ("sim", "demo", "op-0001")  # partitions 11, 8, 13 of 16 (docs/cluster.md's golden values)
PARTS = 16
LEASE = 2000
DAY = 86400
NOTE = ("2 cores shared by 3 nats-server, the suiro nodes and the generators: a floor, "
        "not a scaling curve (docs/cluster.md)")
PW = "cluster-bench-pw-1"
T0 = 1700006400  # RS_T0 of api/cli/refset.h: 2023-11-15T00:00:00Z
COUNT_FROM, COUNT_TO = "2023-10-01T00:00:00Z", "2024-01-01T00:00:00Z"
T = tempfile.mkdtemp(prefix="suiro-cbench-", dir=E("TMPDIR", "/var/tmp"))
procs = []
IDS = ["SP%04d_%03d" % (k, j) for k in range(1, GWS + 1) for j in range(1, PER + 1)]


def out(d):
    print(json.dumps(d, separators=(",", ":")), flush=True)


def sheet(op):
    s = ["#suiro-setup-sheet v1\n\n[operator]\nid,name\n%s,Bench operator %s\n\n[gateways]\nid,name,secret" % (op, op)]
    s += ["SIM%04d,Simulated gateway %d,sim-secret-SIM%04d" % (k, k, k) for k in range(1, GWS + 1)]
    s.append("\n[facilities]\nid,name\nSF1,Simulated plant\n\n[equipment]\nid,facility,name\nSE1,SF1,Simulated "
             "equipment\n\n[devices]\nid,equipment,gateway,name")
    s += ["SD%04d,SE1,SIM%04d,Simulated device %d" % (k, k, k) for k in range(1, GWS + 1)]
    s.append("\n[datapoints]\nid,device,name,type,unit,min,max,kind")
    s += ["SP%04d_%03d,SD%04d,Point %d of %d,number,m3/h,-1000000,1000000,measure" % (k, j, k, j, k)
          for k in range(1, GWS + 1) for j in range(1, PER + 1)]
    s.append("\n[apps]\nid,name,secret,push_url\nBENCH,Benchmark reader,bench-app-secret-1,\n\n"
             "[grants]\napp,datapoint,access\nBENCH,*,read")
    return "\n".join(s) + "\n"


def template():
    d = os.path.join(T, "template")
    pw = srtest.init_with_admins(BIN, d, admin="admin-s1", second=None)[0]
    for op in OPS:
        p = os.path.join(T, "sheet-%s.csv" % op)
        with open(p, "w") as f:
            f.write(sheet(op))
        subprocess.run([BIN, "sheet", "import", p, d], check=True, capture_output=True)
    return d, pw


class Node:
    """One `suiro serve` of a configuration: its data, config, ports, admin session."""

    def __init__(self, cfg, i, nats, tpl):
        self.cfg, self.i, self.name = cfg, i, "s%d" % (i + 1)
        self.data = os.path.join(T, "%s-%s" % (cfg, self.name))
        self.log = os.path.join(T, "%s-%s.log" % (cfg, self.name))
        # every node a copy of the one template: the registry and the data points seeded the same way on
        # every node before the cluster (docs/cluster.md "Data point numbers": a node that numbers the
        # replicated masters in its own order maps another node's values to other points)
        shutil.copytree(tpl[0], self.data, symlinks=True)
        self.admin, self.tmp_pw = "admin-s1", tpl[1]
        self.ini = None
        if nats:
            self.ini = os.path.join(T, "%s-%s.ini" % (cfg, self.name))
            with open(self.ini, "w") as f:
                f.write("[cluster]\nnats = %s\nnode = %s\nname = CB%s\npartitions = %d\nreplicas = 3\n"
                        "lease_ms = %d\n" % (nats, self.name, cfg.upper(), PARTS, LEASE))
        self.p, self.api, self.pw, self.apps = None, None, self.tmp_pw, {}

    def start(self):
        if self.ini:
            self.p, ports = srtest.start_server(BIN, self.data, self.log, config=self.ini, until="http", timeout=120,
                                                extra=["--data", self.data, "--mqtt", "127.0.0.1:0",
                                                       "--http", "127.0.0.1:0"])
        else:
            self.p, ports = srtest.start_server(BIN, self.data, self.log, timeout=120)
        procs.append(self.p)
        self.mqtt, self.http = ports["mqtt"], ports["http"]
        self.t_start = time.monotonic()
        self.api, self.apps = None, {}

    def admin_api(self):
        """The template's admin (a user of every node): the first login changes the temporary password,
        and the change is replicated to the other nodes (either password, whichever holds there now)."""
        for _ in range(100):
            if self.api is not None:
                return self.api
            for pw, new in ((PW, None), (self.tmp_pw, PW)):
                try:
                    self.api = srtest.admin_session(self.http, self.admin, pw, new)
                    break
                except RuntimeError:
                    pass
            else:
                time.sleep(0.1)
        raise RuntimeError("%s: the admin cannot log in" % self.name)

    def quiet(self):
        """True when this node consumed what the streams hold (every suiro_cluster_lag_events 0)."""
        try:
            st, _, body, _ = srtest.http_once(self.http, "GET", "/metrics")
        except OSError:
            return False
        lags = [float(ln.rsplit(" ", 1)[1]) for ln in (body.decode() if isinstance(body, bytes) else str(body))
                .splitlines() if ln.startswith("suiro_cluster_lag_events")]
        return st == 200 and not any(lags)

    def owned(self):
        """The partitions this node owns (its /admin/v1/cluster), None if it does not answer."""
        try:
            st, b = self.admin_api().call("GET", "/admin/v1/cluster")
        except (OSError, RuntimeError):
            self.api = None
            return None
        return set(b["owned"]) if st == 200 else None

    def app(self, op):
        """The app's session on this node for op, kept (a login checks an scrypt hash: polling with new
        logins would load the node being measured), None if it cannot log in (yet)."""
        a = self.apps.get(op)
        if a is None:
            a = srtest.Api(self.http)
            try:
                if a.login("BENCH", op, "bench-app-secret-1") != 201:
                    return None
            except OSError:
                return None
            self.apps[op] = a
        return a

    def count(self, op):
        """The values this node's index holds for op (AP-IF downsampled counts, 100 dataIds a request)."""
        a = self.app(op)
        if a is None:
            return -1
        n = 0
        for i in range(0, len(IDS), 100):
            q = [("dataId", d) for d in IDS[i:i + 100]] + [("from", COUNT_FROM), ("to", COUNT_TO),
                                                          ("interval", "1d"), ("agg", "count")]
            try:
                st, b = a.call("GET", "/api/v1/stored-values?" + urllib.parse.urlencode(q))
            except OSError:
                st = 0
            if st != 200:
                self.apps.pop(op, None)  # logged in again at the next poll
                return -1
            n += sum(v["count"] for v in b["values"])
        return n

    def kill(self):
        self.p.send_signal(signal.SIGKILL)
        self.p.wait()

    def stop(self):
        srtest.stop_server(self.p, timeout=60)


def partition_of(op):
    return {"sim": 11, "demo": 8, "op-0001": 13}[op]


def owners(nodes):
    """{partition: [node names]} from the running nodes' own "owned"."""
    o = {p: [] for p in range(PARTS)}
    for n in nodes:
        for p in n.owned() or ():
            o[p].append(n)
    return o


def settled(nodes):
    o = owners(nodes)
    return o if all(len(v) == 1 for v in o.values()) else None


def cpu_s(pids):
    """CPU seconds (user + system, every thread) the processes used so far."""
    hz, n = os.sysconf("SC_CLK_TCK"), 0.0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                st = f.read().rsplit(")", 1)[1].split()
            n += (int(st[11]) + int(st[12])) / hz
        except (OSError, IndexError, ValueError):
            pass
    return n


def gen(node, op, shape, seconds, tag, extra=(), server=None):
    args = [GEN, "--shape", shape, "--points", str(GWS * PER), "--per", str(PER), "--seconds", str(seconds),
            "--seed", "42", "--operator", op, "--mqtt", "127.0.0.1:%d" % node.mqtt, "--window", str(WINDOW),
            "--t-offset-s", str(tag[0]), "--id-prefix", tag[1], "--system", "suiro_mqtt"] + list(extra)
    if server is not None:
        args += ["--server-pid", str(server.p.pid)]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def collect(ps):
    res = []
    for p in ps:
        try:
            o, e = p.communicate(timeout=1800)
        except subprocess.TimeoutExpired:
            p.kill()
            o, e = p.communicate()
        lines = o.strip().splitlines()
        g = json.loads(lines[-1]) if lines else {}
        g["rc"] = p.returncode
        if p.returncode:
            sys.stderr.write("cluster_ingest: generator rc=%d: %s\n" % (p.returncode, e[-300:]))
        res.append(g)
    return res


def wait_counts(nodes_of_op, expected, timeout):
    """Until each operator's owner holds expected[op] values (bounded): (ok, counts, seconds)."""
    t0 = time.monotonic()
    counts = {}

    def done():
        for nd in set(nodes_of_op.values()):
            if nd.p.poll() is not None:  # a node that died: say so, with its log's tail
                with open(nd.log, errors="replace") as f:
                    tail = f.read()[-1500:]
                raise RuntimeError("node %s exited (rc %s); its log ends: %s" % (nd.name, nd.p.returncode, tail))
        for op in OPS:
            if counts.get(op) != expected[op]:
                counts[op] = nodes_of_op[op].count(op)
        return all(counts[op] == expected[op] for op in OPS)
    ok = srtest.wait_until(done, timeout=timeout, step=0.2)
    return bool(ok), counts, round(time.monotonic() - t0, 2)


def origins_once(node):
    """No origin id (node:seq) twice in node's log (`suiro replay`); (ok, replicated events)."""
    r = subprocess.run([BIN, "replay", node.data], capture_output=True, text=True, timeout=600)
    seen, twice = set(), 0
    for ln in r.stdout.splitlines():
        if '"origin"' not in ln:
            continue
        o = json.loads(ln).get("origin") or {}
        k = (o.get("node"), o.get("seq"))
        twice += k in seen
        seen.add(k)
    return r.returncode == 0 and twice == 0, len(seen)


def med(xs):
    xs = [x for x in xs if x is not None]
    return round(statistics.median(xs), 3) if xs else None


def run_config(cfg, nc, tpl, keep=False):
    n = 1 if cfg == "single" else int(cfg[1:])
    nats = None if cfg == "single" else nc.urls()
    nodes = [Node(cfg, i, nats, tpl) for i in range(n)]
    for nd in nodes:
        nd.start()
    # every node has the registry (the app logs in for every operator), every partition one owner
    ready = srtest.wait_until(lambda: all(nd.app(op) for nd in nodes for op in OPS), timeout=120, step=0.2)
    if nats:  # the other nodes' copies of the registry consumed (applied as updates) before the load
        ready = ready and srtest.wait_until(lambda: all(nd.quiet() for nd in nodes), timeout=300, step=0.5)
    own = srtest.wait_until(lambda: settled(nodes), timeout=60, step=0.2) if nats else {
        p: [nodes[0]] for p in range(PARTS)}
    owner = {op: (own[partition_of(op)][0] if own else nodes[0]) for op in OPS}
    expected = {op: 0 for op in OPS}
    rows, ok_all = [], bool(ready and own)
    t_end = time.monotonic()
    for si, shape in enumerate(SHAPES):
        tag = (si * DAY, "%s%d-" % (shape[:2], si))
        rdy = [os.path.join(T, "ready-%s-%s-%d" % (cfg, shape, k)) for k in range(len(OPS))]
        ps = [gen(nodes[k % n], op, shape, SECONDS, tag, server=nodes[k % n], extra=["--ready-file", rdy[k]])
              for k, op in enumerate(OPS)]
        # the CPU of the suiro nodes and of the nats-servers from when every generator's logins are done
        while not all(os.path.exists(f) for f in rdy) and all(p.poll() is None for p in ps):
            time.sleep(0.005)
        pids_n = [nd.p.pid for nd in nodes]
        pids_j = [p.pid for p in nc.procs if p is not None] if nats else []
        c0, j0, w0 = cpu_s(pids_n), cpu_s(pids_j), time.monotonic()
        gs = collect(ps)
        t_end = time.monotonic()
        c1, j1 = cpu_s(pids_n), cpu_s(pids_j)
        for op, g in zip(OPS, gs):
            expected[op] += g.get("values_acked") or 0
        acked = sum(g.get("values_acked") or 0 for g in gs)
        secs = max((g.get("secs") or 0) for g in gs)
        ok = all(g["rc"] == 0 and not g.get("errors") for g in gs)
        ok_all &= ok
        rows.append({"bench": "cluster_ingest", "config": cfg, "nodes": n, "nats": 3, "replicas": 3 if nats else None,
                     "shape": shape, "operators": len(OPS), "gateways": GWS * len(OPS), "per": PER,
                     "values": acked, "messages": sum(g.get("messages") or 0 for g in gs), "secs": secs,
                     "values_per_s": round(acked / secs) if secs else None,
                     "msg_per_s": round(sum(g.get("messages") or 0 for g in gs) / secs) if secs else None,
                     "ack_p50_ms": med([g.get("ack_p50_ms") for g in gs]),
                     "ack_p99_ms": max((g.get("ack_p99_ms") or 0) for g in gs),
                     "suiro_cpu_us_per_value": round((c1 - c0) * 1e6 / acked, 3) if acked else None,
                     "suiro_cores": round((c1 - c0) / (t_end - w0), 2) if t_end > w0 else None,
                     "nats_cpu_us_per_value": round((j1 - j0) * 1e6 / acked, 3) if acked and nats else None,
                     "nats_cores": round((j1 - j0) / (t_end - w0), 2) if nats and t_end > w0 else None,
                     "gens_ok": ok})
    # the paced run: the PUBACK latency at one rate every configuration sustains
    pg = collect([gen(nodes[0], OPS[0], "snapshot", SECONDS, (len(SHAPES) * DAY, "pace-"),
                      extra=["--rate", str(PACE), "--max-msgs", str(PACE_MSGS)])])[0]
    expected[OPS[0]] += pg.get("values_acked") or 0
    t_end = time.monotonic()
    ok_all &= pg["rc"] == 0
    cok, counts, lag = wait_counts(owner, expected, 300)
    ok_all &= cok
    for r in rows:
        r.update({"owner_lag_s": lag, "owners": {op: owner[op].name for op in OPS}, "stored": dict(counts),
                  "expected": dict(expected), "note": NOTE})
    pace = {"bench": "cluster_puback", "config": cfg, "nodes": n, "rate_msgs_per_s": int(PACE) if PACE == int(PACE) else PACE, "per": PER,
            "messages": pg.get("messages"), "ack_p50_ms": pg.get("ack_p50_ms"), "ack_p99_ms": pg.get("ack_p99_ms"),
            "note": NOTE}
    del t_end
    if keep:
        return nodes, owner, expected, rows, pace, ok_all
    return finish_config(nodes, owner, rows, pace, ok_all, nc, sum(expected.values()))


def du(path):
    """Allocated bytes under path (du -s -B1)."""
    n = 0
    for d, _, fs in os.walk(path):
        for f in fs:
            try:
                n += os.lstat(os.path.join(d, f)).st_blocks * 512
            except OSError:
                pass
    return n


def stream_bytes(nc, cfg):
    """The bytes and messages of this configuration's streams (CB<CFG>_P*), one replica, as NATS reports them."""
    j = nc.jsz(0, "?streams=true") if nc else None
    b = m = 0
    for acc in (j or {}).get("account_details") or []:
        for sd in acc.get("stream_detail") or []:
            if sd.get("name", "").startswith("CB%s_" % cfg.upper()):
                b += (sd.get("state") or {}).get("bytes", 0)
                m += (sd.get("state") or {}).get("messages", 0)
    return b, m


def finish_config(nodes, owner, rows, pace, ok_all, nc, vals):
    """Stop the nodes; the bytes on disk per value (all nodes' logs and indexes, the streams: one replica);
    origins once on the owners; the lines."""
    sb, sm = stream_bytes(nc, nodes[0].cfg) if nodes[0].ini else (None, None)
    for nd in nodes:
        if nd.p is not None and nd.p.poll() is None:
            nd.stop()
    disk = {"log_bytes_per_value": round(sum(du(os.path.join(nd.data, "log")) for nd in nodes) / vals, 3) if vals
            else None,
            "index_bytes_per_value": round(sum(du(os.path.join(nd.data, "index")) for nd in nodes) / vals, 3) if vals
            else None,
            "stream_bytes_per_value": round(sb / vals, 3) if sb and vals else None, "stream_messages": sm,
            "disk": "after a graceful stop: every node's log/ and index/ (allocated, over the nodes), the "
                    "streams' bytes as NATS reports them (one replica of 3), per value stored"}
    once = True
    if nodes[0].ini:
        for nd in {owner[op] for op in OPS}:
            once &= origins_once(nd)[0]
    v = "ok" if ok_all and once else "FAILED"
    for r in rows:
        r.update(disk)
        r.update({"origins_once": once, "verify": v})
        out(r)
    pace["verify"] = v
    out(pace)
    return rows, pace, v == "ok"


def takeover(nodes, owner, expected):
    res = []
    for r in range(ROUNDS):
        op = OPS[r % len(OPS)]
        victim = owner[op]
        surv = [nd for nd in nodes if nd is not victim]
        lost = victim.owned() or set()
        t0 = time.monotonic()
        victim.kill()

        def taken():
            o = owners(surv)
            return o if all(len(o[p]) == 1 for p in lost) else None
        o = srtest.wait_until(taken, timeout=60, step=0.05)
        t_owned = time.monotonic() - t0
        new = o[partition_of(op)][0] if o else surv[0]
        via = [nd for nd in surv if nd is not new][0]  # sent to a survivor that is not the new owner
        ts = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(T0 + 10 * DAY + r))
        gw = srtest.RawGw(via.mqtt, op, "SIM0001", "sim-secret-SIM0001", timeout=120)
        rc = gw.publish_wait("data/measurements", srtest.gw_envelope(
            "GW_MEASUREMENTS", "tk-%d" % r, {"values": [{"dataId": IDS[0], "timestamp": ts, "value": 1000 + r,
                                                         "quality": "GOOD"}]}, ts=ts))
        gw.close()
        t_acked = time.monotonic() - t0
        expected[op] += 1

        def readable():
            a = new.app(op)
            if a is None:
                return False
            st, b = a.call("GET", "/api/v1/stored-values/latest?dataId=" + IDS[0])
            if st != 200:
                new.apps.pop(op, None)
            return st == 200 and any(v.get("value") == 1000 + r for v in b.get("values", []))
        rd = srtest.wait_until(readable, timeout=60, step=0.05)
        t_read = time.monotonic() - t0
        res.append({"round": r, "killed": victim.name, "partitions": sorted(lost), "owned_s": round(t_owned, 2),
                    "acked_s": round(t_acked, 2), "readable_s": round(t_read, 2),
                    "ok": bool(o) and rc == 0 and bool(rd) and bool(lost)})
        victim.start()  # back, and its partitions handed back before the next round
        srtest.wait_until(lambda: lost <= (victim.owned() or set()) and settled(nodes), timeout=60, step=0.1)
        owner.update({o2: victim for o2 in OPS if partition_of(o2) in lost})
    ok = bool(res) and all(x["ok"] for x in res)
    line = {"bench": "cluster_takeover", "nodes": 3, "lease_ms": LEASE, "rounds": len(res),
            "owned_p50_s": med([x["owned_s"] for x in res]), "owned_max_s": max((x["owned_s"] for x in res), default=None),
            "acked_p50_s": med([x["acked_s"] for x in res]), "acked_max_s": max((x["acked_s"] for x in res), default=None),
            "readable_p50_s": med([x["readable_s"] for x in res]),
            "readable_max_s": max((x["readable_s"] for x in res), default=None),
            "bound_s": round(1.6 * LEASE / 1000, 2), "each": res,
            "measured": "from the kill -9 to: every partition it owned owned by a survivor (owned); a value of an "
                        "operator there PUBACKed by another survivor (acked); the new owner answers it (readable)",
            "note": NOTE, "verify": "ok" if ok else "FAILED"}
    out(line)
    return line, ok


def catchup(nodes, owner, expected):
    ops_of = {nd: [op for op in OPS if owner[op] is nd] for nd in nodes}
    victim = max(nodes, key=lambda nd: len(ops_of[nd]))
    mine = ops_of[victim]
    surv = [nd for nd in nodes if nd is not victim]
    lost = victim.owned() or set()
    victim.kill()
    srtest.wait_until(lambda: all(len(v) == 1 for p, v in owners(surv).items() if p in lost), timeout=60, step=0.1)
    tag = (20 * DAY, "cu-")
    gs = collect([gen(surv[k % len(surv)], op, "snapshot", CU_SECONDS, tag) for k, op in enumerate(mine)])
    events = sum(g.get("messages") or 0 for g in gs if g["rc"] == 0)
    for op, g in zip(mine, gs):
        expected[op] += g.get("values_acked") or 0
    victim.start()
    t0 = victim.t_start
    perf = None
    if E("CB_PERF"):  # a profile of the restarted node's catch-up (perf record into CB_PERF)
        perf = subprocess.Popen(["perf", "record", "-q", "-F", "499", "-g", "-o", E("CB_PERF"), "-p",
                                 str(victim.p.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t_owned = [None]

    def caught():
        if t_owned[0] is None and lost <= (victim.owned() or set()):
            t_owned[0] = time.monotonic() - t0
        return t_owned[0] is not None and all(victim.count(op) == expected[op] for op in mine)
    ok = srtest.wait_until(caught, timeout=600, step=0.1)
    secs = time.monotonic() - t0
    if perf is not None:
        perf.send_signal(signal.SIGINT)
        perf.wait()
    m = {}
    try:
        st, _, body, _ = srtest.http_once(victim.http, "GET", "/metrics")
        for ln in (body.decode() if isinstance(body, bytes) else str(body)).splitlines():
            if ln.startswith("suiro_cluster_consumed_total"):
                m[ln.rsplit(" ", 1)[0]] = float(ln.rsplit(" ", 1)[1])
    except OSError:
        pass
    ok = bool(ok) and all(g["rc"] == 0 for g in gs) and events > 0
    line = {"bench": "cluster_catchup", "nodes": 3, "lease_ms": LEASE, "killed": victim.name, "operators": mine,
            "partitions": sorted(lost), "events": events, "values": sum(g.get("values_acked") or 0 for g in gs),
            "catchup_s": round(secs, 2), "owned_again_s": round(t_owned[0], 2) if t_owned[0] is not None else None,
            "events_per_s": round(events / secs) if ok and secs else None,
            "apply_events_per_s": round(events / (secs - t_owned[0])) if ok and t_owned[0] is not None and
            secs > t_owned[0] else None,
            "consumed_since_start": m,
            "measured": "from the restarted process's start (start-up, the handover of its partitions back, the "
                        "consumption from its checkpoints, the apply) until its AP-IF counts hold every value "
                        "acknowledged for its operators while it was down; events = those messages",
            "note": NOTE, "verify": "ok" if ok else "FAILED"}
    out(line)
    return line, ok


def main():
    for p in (BIN, GEN):
        if not os.access(p, os.X_OK):
            sys.stderr.write("cluster_ingest: no %s (build with -DSR_BUILD_BENCH=ON)\n" % p)
            return 1
    if not srtest.nats_server_path():
        print("SKIP: nats-server is not installed (scripts/deps.sh installs it)")
        return 77
    nc = None
    ok = True
    rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    summary = {"bench": "cluster_summary", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "commit": rev or None, "note": NOTE}
    try:
        tpl = template()
        nc = srtest.start_nats_cluster(T, 3)
        for cfg in CONFIGS:
            keep = cfg == "c3"
            res = run_config(cfg, nc, tpl, keep=keep)
            if keep:
                nodes, owner, expected, rows, pace, ok3 = res
                tk, okt = takeover(nodes, owner, expected)
                cu, okc = catchup(nodes, owner, expected)
                # every value acknowledged in the takeover and catch-up stages, on its owner
                cok, counts, _ = wait_counts(owner, expected, 300)
                rows, pace, okr = finish_config(nodes, owner, rows, pace, ok3 and cok, nc, sum(expected.values()))
                ok &= okt and okc and okr
                summary.update({"takeover_p50_s": tk["readable_p50_s"], "takeover_max_s": tk["readable_max_s"],
                                "catchup_events_per_s": cu["events_per_s"]})
            else:
                rows, pace, okr = res
                ok &= okr
            for r in rows:
                summary["%s_%s_values_per_s" % (cfg, r["shape"])] = r["values_per_s"]
            summary["%s_paced_ack_p99_ms" % cfg] = pace["ack_p99_ms"]
        summary["verify"] = "ok" if ok else "FAILED"
        out(summary)
        return 0 if ok else 1
    except Exception as e:  # a step that could not run: a FAILED line, not a traceback alone
        import traceback
        traceback.print_exc()
        out({"bench": "cluster_summary", "error": repr(e), "verify": "FAILED"})
        return 1
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        if nc is not None:
            nc.stop_all()
        if E("CB_KEEP") != "1":
            shutil.rmtree(T, ignore_errors=True)
        else:
            sys.stderr.write("cluster_ingest: kept %s\n" % T)


if __name__ == "__main__":
    sys.exit(main())
