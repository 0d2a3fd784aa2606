#!/usr/bin/python3
"""tests/integration/test_overload.py -- one operator attacks, another is measured.

Operator `atk` floods the real `suiro serve` in phases, one kind of abuse at a
time and then all at once: MQTT and HTTP ingest at full speed, wrong-password
logins on every binding, slow readers (MQTT PINGREQ floods and HTTP requests
whose answers are never read), 1 MB messages of wrongly typed values, heavy
document and range queries, and unfinished uploads past the server's limit.
Meanwhile the victim, operator `demo`, is measured the way its users see it:
an app asks for a latest value every few milliseconds and a gateway publishes
one QoS 1 message at a time and waits for its PUBACK.

Checked in every run (`make test`, a couple of seconds a phase): the server
survives every phase; every victim request is answered 200 and every victim
message is PUBACKed (and stored: counted in the log at the end); the victim can
still log in, publish and upload while the attacker holds its resources; the
server's RSS stays under RSS_BOUND_MB. The victim's p50/p99 per phase are
printed as one JSON line each (`overload {...}`, the ratios against the
quiet figures floored at 1 ms) and, with SR_OVERLOAD_OUT=F, appended to F:
`make bench` runs this suite with SR_SOAK=4 (bench/overload.sh) and
docs/performance.md tables it ("Overload").

Under `make soak` (SR_SOAK=N) the phases are N times longer. The latency goal
-- in every phase the victim's latest-value p99 and PUBACK p99 within 3x their
quiet figures (quiet figures floored at 1 ms: a sub-millisecond p99 on a
shared 2-core machine is noise) -- is printed per phase as a `goal met` /
`goal NOT met` line and tabled by `make bench` in docs/performance.md; no
run of this suite fails on a timing.

usage: test_overload.py SUIRO_BIN"""
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from srtest import (Api, Checks, RawGw, finish, gw_envelope, mqtt_connect, mqtt_packet,  # noqa: E402
                    mqtt_publish, provision_gwsim, rss_kb, start_server)

BIN = sys.argv[1]
SOAK = int(os.environ.get("SR_SOAK", "0") or 0)
PHASE_S = 1.5 * SOAK if SOAK else 2.0
# The documented bound (docs/performance.md, "Overload"): the server's
# resident memory under every attack of this suite.
RSS_BOUND_MB = 512
NO_RSS = os.environ.get("SUIRO_TEST_NO_RSS") == "1"  # ASan's quarantine keeps freed memory
T = tempfile.mkdtemp(prefix="suiro-overload-")
D = os.path.join(T, "data")
check = Checks()
server = None
ATK_GW = 8  # attacker gateways SIM0001..SIM0008, 10 points each
SRC = "127.0.0.1"  # the attacker's source address (set per phase in the attacker process)

ATK_APP_SHEET = """
[apps]
id,name,secret,push_url
APPATK,Attacker app,atk-app-secret,

[grants]
app,datapoint,access
APPATK,*,both
"""


def now_iso(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + ".%03dZ" % (ms % 1000)


def cpu_ticks(pid):
    """(process CPU ticks, machine busy ticks, machine total ticks) now."""
    try:
        f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
        proc = int(f[11]) + int(f[12])
    except (OSError, IndexError, ValueError):
        proc = 0
    c = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    idle = c[3] + (c[4] if len(c) > 4 else 0)
    return proc, sum(c) - idle, sum(c)


def pct(xs, p):
    if not xs:
        return 0.0
    s = sorted(xs)
    return s[min(len(s) - 1, int(p * len(s)))]


class Victim:
    """The measured operator: a latest-value reader and a QoS 1 publisher,
    each on its own thread, recording latencies (ms) and failures."""

    def __init__(self, ports):
        self.ports = ports
        self.api = Api(ports["http"])
        assert self.api.login("APP001", "demo", "demo-app001-secret") == 201
        self.gw = RawGw(ports["mqtt"], "demo", "GW001", "demo-gw001-secret", timeout=30)
        assert self.gw.connack == 0, self.gw.connack
        self.stop = threading.Event()
        self.lat, self.pub = [], []
        self.errors = []
        self.sent = 0
        self.ts = int(time.time() * 1000) - 3600 * 1000  # one value a ms, unique
        self.threads = []

    def _reader(self):
        while not self.stop.is_set():
            t0 = time.perf_counter()
            try:
                st, b = self.api.call("GET", "/api/v1/stored-values/latest?dataId=P001")
            except OSError as e:
                st, b = -1, str(e)
            dt = (time.perf_counter() - t0) * 1000
            if st != 200:
                self.errors.append(("latest", st, str(b)[:200]))
            else:
                self.lat.append(dt)
            self.stop.wait(0.004)

    def _publisher(self):
        while not self.stop.is_set():
            self.ts += 1
            self.sent += 1
            msg = gw_envelope("GW_MEASUREMENTS", "V%d" % self.sent,
                              {"values": [{"dataId": "P001", "timestamp": now_iso(self.ts), "value": self.sent % 5000}]})
            t0 = time.perf_counter()
            try:
                rc = self.gw.publish_wait("data/measurements", msg)
            except OSError as e:
                rc = str(e)
            dt = (time.perf_counter() - t0) * 1000
            if rc != 0:
                self.errors.append(("puback", rc, ""))
                return
            self.pub.append(dt)
            self.stop.wait(0.010)

    def run(self, seconds, during=None):
        """Measure for `seconds` while `during()` (the attack) runs; returns
        the figures of this window."""
        self.lat, self.pub, self.errors = [], [], []
        self.stop.clear()
        ths = [threading.Thread(target=self._reader), threading.Thread(target=self._publisher)]
        for t in ths:
            t.start()
        rss = [0]
        t_end = time.time() + seconds

        def sampler():
            while time.time() < t_end + 0.5:
                rss[0] = max(rss[0], rss_kb(server.pid))
                time.sleep(0.05)
        smp = threading.Thread(target=sampler)
        c0, t0 = cpu_ticks(server.pid), time.time()
        smp.start()
        if during:
            during(seconds)
        else:
            time.sleep(seconds)
        self.stop.set()
        for t in ths:
            t.join(60)
        smp.join()
        c1, t1 = cpu_ticks(server.pid), time.time()
        hz = os.sysconf("SC_CLK_TCK")
        cores = os.cpu_count() or 1
        r_cpu = {"server_cpu_cores": round((c1[0] - c0[0]) / hz / max(t1 - t0, 1e-3), 2),
                 "machine_busy": round((c1[1] - c0[1]) / max(c1[2] - c0[2], 1), 2), "cores": cores}
        return dict(r_cpu, **{"latest_n": len(self.lat), "latest_p50_ms": round(pct(self.lat, 0.5), 3),
                "latest_p99_ms": round(pct(self.lat, 0.99), 3), "puback_n": len(self.pub),
                "puback_p50_ms": round(pct(self.pub, 0.5), 3), "puback_p99_ms": round(pct(self.pub, 0.99), 3),
                "errors": len(self.errors), "error_sample": self.errors[:3], "rss_max_mb": rss[0] // 1024})


def threads_for(seconds, fns):
    """Run each fn(deadline) on its own thread until the deadline."""
    deadline = time.time() + seconds
    ths = [threading.Thread(target=f, args=(deadline,), daemon=True) for f in fns]
    for t in ths:
        t.start()
    for t in ths:
        t.join(seconds + 30)


# ---- the attacks (each runs until its deadline) ------------------------------
# Each attack counts what it did (SR_ATTACK_TALLY: a file the attacker
# process appends JSON lines to); the parent checks that every phase really
# attacked (a flood that failed to start would measure nothing).
_tally_lock = threading.Lock()


def tally(what, n=1):
    path = os.environ.get("SR_ATTACK_TALLY")
    if not path or not n:
        return
    with _tally_lock, open(path, "a") as f:
        f.write(json.dumps({what: n}) + "\n")


def gwsim(args, seconds, what):
    r = subprocess.run([BIN, "gwsim", "run"] + args + ["--duration", "%.1f" % seconds], capture_output=True,
                       text=True, timeout=seconds + 60)
    try:
        summary = json.loads(r.stdout.strip().splitlines()[-1])
        tally(what, summary.get("values_acked", 0))
    except (ValueError, IndexError):
        print("attack %s: gwsim printed no summary: %s" % (what, r.stderr[-500:]), file=sys.stderr)

def attack_mqtt(ports):
    def run(seconds):
        gwsim(["--port", str(ports["mqtt"]), "--gateways", str(ATK_GW), "--points", "10", "--operator", "atk",
               "--batch", "100", "--window", "32", "--messages", "100000000"], seconds, "mqtt_values_acked")
    return run


def attack_http(ports):
    def run(seconds):
        gwsim(["--http", "http://127.0.0.1:%d" % ports["http"], "--gateways", str(ATK_GW), "--points", "10",
               "--operator", "atk", "--batch", "100", "--window", "8", "--messages", "100000000"], seconds, "http_values_acked")
    return run


def attack_logins(ports):
    """Wrong secrets on every binding, known and unknown ids, 12 clients."""
    def http_logins(deadline, path, id_key, known):
        a = Api(ports["http"], source=SRC)
        i = 0
        while time.time() < deadline:
            i += 1
            try:
                tally("logins")
                a.call("POST", path, {id_key: known if i % 2 else "NOPE%d" % i, "operatorId": "atk", "secret": "wrong"})
            except OSError:
                a._reconnect()

    def ap(deadline):
        http_logins(deadline, "/api/v1/sessions", "appId", "APPATK")

    def gwh(deadline):
        http_logins(deadline, "/gw/v1/sessions", "gatewayId", "SIM0001")

    def mq(deadline):
        while time.time() < deadline:
            try:
                s = socket.create_connection(("127.0.0.1", ports["mqtt"]), timeout=5, source_address=(SRC, 0))
                tally("logins")
                s.sendall(mqtt_connect("SIM0002", "atk/SIM0002", "wrong"))
                s.recv(16)
                s.close()
            except OSError:
                time.sleep(0.01)

    def run(seconds):
        threads_for(seconds, [ap] * 4 + [gwh] * 4 + [mq] * 4)
    return run


def attack_slow_readers(ports):
    """MQTT connections that flood PINGREQ and never read; HTTP connections
    that pipeline large answers and never read. A connection the server cuts
    is opened again (a few at a time), until the deadline."""
    def flood(deadline, port, hello, burst):
        while time.time() < deadline:
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(SRC, 0))
                if hello:
                    s.sendall(hello)
                s.setblocking(False)
                while time.time() < deadline:
                    try:
                        tally("bytes_unread", s.send(burst))
                    except BlockingIOError:
                        time.sleep(0.005)
                s.close()
            except OSError:
                time.sleep(0.05)  # cut by the server: again

    def pinger(deadline):
        flood(deadline, ports["mqtt"], mqtt_connect("SIM0003", "atk/SIM0003", "sim-secret-SIM0003"),
              b"\xc0\x00" * 4096)

    def http_pipeliner(deadline):
        tok = Api(ports["http"], source=SRC)
        if tok.login("APPATK", "atk", "atk-app-secret") != 201:
            return
        req = ("GET /api/v1/masters/datapoints HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n"
               % tok.token).encode() * 64
        flood(deadline, ports["http"], None, req)

    def run(seconds):
        threads_for(seconds, [pinger] * 6 + [http_pipeliner] * 6)
    return run


def attack_large_refused(ports):
    """1 MB messages of wrongly typed values (strings for number points)."""
    vals = [{"dataId": "SP0004_%02d" % (1 + i % 10), "timestamp": "2026-11-22T00:00:00.000Z", "value": "x%d" % i}
            for i in range(12000)]
    payload = gw_envelope("GW_MEASUREMENTS", "BIG", {"values": vals})
    assert 900000 < len(payload) < 1040000, len(payload)

    def big(deadline, gw="SIM0004"):
        try:
            g = RawGw(ports["mqtt"], "atk", gw, "sim-secret-" + gw, timeout=30, source=SRC)
            while time.time() < deadline:
                g.publish_wait("data/measurements", payload)
                tally("refused_mb")
            g.close()
        except OSError:
            pass

    def big_http(deadline):
        a = Api(ports["http"], source=SRC)
        st, b = a.call("POST", "/gw/v1/sessions", {"gatewayId": "SIM0005", "operatorId": "atk",
                                                   "secret": "sim-secret-SIM0005"})
        if st != 201:
            return
        a.token = b["token"]
        while time.time() < deadline:
            try:
                a.call("POST", "/gw/v1/measurements", payload)
                tally("refused_mb")
            except OSError:
                a._reconnect()

    def run(seconds):
        threads_for(seconds, [big, lambda d: big(d, "SIM0006"), big_http])
    return run


def attack_queries(ports):
    """Document queries over 150 large documents; stored values over a long range."""
    atk = Api(ports["http"], source=SRC)
    atk.login("APPATK", "atk", "atk-app-secret")

    def docs(deadline):
        a = Api(ports["http"], atk.token, source=SRC)
        while time.time() < deadline:
            try:
                a.call("GET", "/api/v1/documents/big?tag=x")
                tally("queries")
            except OSError:
                a._reconnect()

    def ranges(deadline):
        a = Api(ports["http"], atk.token, source=SRC)
        while time.time() < deadline:
            try:
                tally("queries")
                a.call("GET", "/api/v1/stored-values?dataId=SP0001_01&dataId=SP0002_01&from=2000-01-01T00:00:00Z"
                              "&to=2100-01-01T00:00:00Z&limit=100000")
            except OSError:
                a._reconnect()

    def run(seconds):
        threads_for(seconds, [docs] * 3 + [ranges] * 2)
    return run


def attack_uploads(ports):
    """More unfinished uploads than the server holds (they stay for its idle
    time, 10 minutes: the victim uploads after this phase, see below)."""
    atk = Api(ports["http"], source=SRC)
    atk.login("APPATK", "atk", "atk-app-secret")

    def run(seconds):
        deadline = time.time() + seconds
        n = 0
        while n < 1100 and time.time() < deadline + 30:
            try:
                atk.call("PUT", "/api/v1/files/hold/%d.bin" % n, b"x" * 10, {"Content-Range": "bytes 0-9/100"})
                tally("uploads")
            except OSError:
                atk._reconnect()
            n += 1
        rest = deadline - time.time()
        if rest > 0:
            time.sleep(rest)
    return run


ATTACKS = {"mqtt-ingest": attack_mqtt, "http-ingest": attack_http, "logins": attack_logins,
           "slow-readers": attack_slow_readers, "large-refused": attack_large_refused,
           "heavy-queries": attack_queries, "uploads": attack_uploads}


def attack_all(ports):
    fns = [ATTACKS[k](ports) for k in ATTACKS if k not in ("uploads", "all")]

    def run(seconds):
        threads_for(seconds, [lambda d, f=f: f(max(0.5, d - time.time())) for f in fns])
    return run


ATTACKS["all"] = attack_all


def attacker(name, ports):
    """The attack as its own process (its own interpreter: the victim's
    threads never wait for its GIL), at a lower CPU priority: on a shared
    2-core machine the attacker's client stands for machines elsewhere."""
    def run(seconds):
        tf = os.path.join(T, "tally-%s" % name)
        subprocess.run(["nice", "-n", "10", sys.executable, os.path.abspath(__file__), BIN, "--attack", name,
                        json.dumps(ports), "%.2f" % seconds], timeout=seconds + 120,
                       env=dict(os.environ, SR_ATTACK_TALLY=tf))
        done = {}
        if os.path.exists(tf):
            for line in open(tf):
                for k, v in json.loads(line).items():
                    done[k] = done.get(k, 0) + v
        ATTACKED[name] = done
    return run


ATTACKED = {}  # phase -> what its attacker did (counts)


if len(sys.argv) > 2 and sys.argv[2] == "--attack":
    os.rmdir(T)
    # each phase attacks from its own loopback address: the login guard locks
    # out an address that floods wrong passwords (as it should), which must
    # not silence the next phase's attacker
    SRC = "127.0.2.%d" % (1 + list(ATTACKS).index(sys.argv[3]))
    ATTACKS[sys.argv[3]](json.loads(sys.argv[4]))(float(sys.argv[5]))
    sys.exit(0)


try:
    provision_gwsim(BIN, D, T, ATK_GW, 10, operator="atk", extra=ATK_APP_SHEET, demo=True)
    server, ports = start_server(BIN, D, os.path.join(T, "server.log"))

    atk = Api(ports["http"])
    assert atk.login("APPATK", "atk", "atk-app-secret") == 201
    big = "y" * 100000
    for i in range(150):
        st, b = atk.call("POST", "/api/v1/documents/big", {"n": i, "tag": "x", "blob": big})
        assert st == 201, (st, b)

    victim = Victim(ports)
    results = {}
    quiet = victim.run(PHASE_S)
    results["quiet"] = quiet
    passed = {"quiet"}  # phases the server survived
    for name in ATTACKS:
        r = victim.run(PHASE_S, attacker(name, ports))
        results[name] = r
        alive = server.poll() is None
        check("%s: the server survives" % name, alive, r)
        if not alive:
            break
        passed.add(name)
        r["attack"] = ATTACKED.get(name, {})
        check("%s: the attack ran (%s)" % (name, r["attack"]), sum(r["attack"].values()) > 0, r)
        check("%s: every victim request answered and every victim message PUBACKed" % name,
              r["errors"] == 0 and r["latest_n"] > 0 and r["puback_n"] > 0, r)
        if not NO_RSS:
            check("%s: server RSS %d MB <= %d MB" % (name, r["rss_max_mb"], RSS_BOUND_MB),
                  r["rss_max_mb"] <= RSS_BOUND_MB, r)
        for k in ("latest_p99_ms", "puback_p99_ms"):
            # the goal is measured and reported (docs/performance.md), not a
            # pass/fail of this suite: it is a timing on a shared machine
            base = max(quiet[k], 1.0)
            print("goal %s: %s: victim %s %.2f vs 3 x quiet %.2f" % (
                "met" if r[k] <= 3 * base else "NOT met", name, k, r[k], base))
        if name == "uploads" and alive:
            # the attacker's unfinished uploads are still held: the victim's own go through
            v = Api(ports["http"])
            v.login("APP001", "demo", "demo-app001-secret")
            st, b = v.call("PUT", "/api/v1/files/victim/part.bin", b"0123456789", {"Content-Range": "bytes 0-9/20"})
            st2, b2 = v.call("PUT", "/api/v1/files/victim/part.bin", b"abcdefghij",
                             {"Content-Range": "bytes 10-19/20"})
            check("uploads: the victim uploads while the attacker holds its unfinished uploads",
                  st == 202 and st2 == 201, (st, b, st2, b2))

    out = os.environ.get("SR_OVERLOAD_OUT")
    for name, r in results.items():
        ok = r["errors"] == 0 and r["latest_n"] > 0 and r["puback_n"] > 0 and \
            (NO_RSS or r["rss_max_mb"] <= RSS_BOUND_MB) and name in passed and \
            (name == "quiet" or sum(r.get("attack", {}).values()) > 0)
        line = dict(r, bench="overload", phase=name, phase_s=PHASE_S, rss_bound_mb=RSS_BOUND_MB,
                    latest_p99_x_quiet=round(r["latest_p99_ms"] / max(quiet["latest_p99_ms"], 1.0), 2),
                    puback_p99_x_quiet=round(r["puback_p99_ms"] / max(quiet["puback_p99_ms"], 1.0), 2),
                    verify="ok" if ok else "FAILED")
        line.pop("error_sample", None)
        print("overload", json.dumps(line, sort_keys=True))
        if out:
            with open(out, "a") as f:
                f.write(json.dumps(line, sort_keys=True) + "\n")

    # every victim message that was PUBACKed is in the log
    if server.poll() is None:
        n_sent = victim.sent
        victim.gw.close()
        st, b = victim.api.call("GET", "/api/v1/stored-values?dataId=P001&from=2000-01-01T00:00:00Z"
                                       "&to=2100-01-01T00:00:00Z&limit=100000")
        stored = len(b.get("values", [])) if st == 200 else -1
        acked = sum(results[k]["puback_n"] for k in results)
        check("every PUBACKed victim value is stored (%d acked, %d stored)" % (acked, stored),
              st == 200 and stored >= acked, (st, str(b)[:300]))
except Exception as e:  # noqa: BLE001
    import traceback
    traceback.print_exc()
    check("the suite ran to its end", False, repr(e))
finish(check, T, [server])
