#!/usr/bin/python3
"""tests/integration/test_cluster_sub.py -- the cluster's consumers, phase 2a
(issue #19, docs/cluster.md "Consumers"): 3 nats-server JetStream nodes and
suiro nodes A and B (both `owned = all`), each indexing the other's events
from the streams, exactly once.

 A. gateway values PUBACKed... here acknowledged (GW-IF HTTP 200) by node A
    are read from node B (AP-IF: the latest values and a time range), each
    acknowledged value there once per point, and B's log holds each of A's
    events at most once (its origin node:seq).
    A file (3 chunks) written on A is read on B with the same bytes, its
    SHA-256 the upload's (fetched from SUIRO_BLOBS, docs/cluster.md "Files
    across nodes"); until then B answers 404 or 503 with Retry-After, never
    500; the plaintext SUIRO_BLOBS holds the bytes (the control for E).
 B. a registry change made on node B (a new gateway, Admin API) lets that
    gateway log in on node A.
 C. kill -9 node B under load (values still sent to A) and restart it: it
    catches up from its checkpoint (the catch-up rate printed, not asserted)
    and still holds each acknowledged value exactly once. A file uploaded
    on A while B is down, whose chunk 1 is then replaced in SUIRO_BLOBS by
    bytes that do not verify (natsdump --pub): B refuses them (a WARN naming
    the file, suiro_cluster_blobs_total{state="refused"}), answers 503 for
    it, never the bad bytes; the good chunk published again, B serves the
    file's bytes.
 D. a node C with `owned = none` gets the registry events (the app and the
    gateway registry: logins work there) but no measurements.
 E. stream keys (docs/keys.md "Cluster: stream keys"): nodes SA and SB of a
    second cluster name (SEAL, the same NATS) both with the same [engine]
    key_file: values acknowledged by SA are read once each from SB; a raw
    dump of the SEAL streams (natsdump --raw) shows every payload sealed
    (Suiro-Key, magic SRS1) and none of the data ids, gateway, app and
    message ids nor the values' timestamps (their protobuf varints), which
    the same scan finds in the plaintext SUIRO streams of A (the control);
    the bucket KV_SEAL_KEYS holds only wrapped keys, which Python's
    `cryptography` unwraps with the master key and opens a payload with
    (the layout of docs/keys.md, independently of suiro's C); `suiro
    cluster dump` with the key opens them. `suiro cluster erase` of sim's
    data key leaves its tombstone alone in the bucket, and none of its
    payloads opens any more (the others do). A file uploaded on SA is read
    on SB with the same bytes; the raw SEAL_BLOBS holds every chunk sealed
    (Suiro-Key, SRS1), no byte run of the file and no subject naming its
    SHA-256; SB's own blob store holds it sealed (no plaintext run in
    DATA/blobs). A node SC without key_file on
    the sealed streams applies none (consumed_total{class="unsealed"}, a
    WARN naming key_file), and a sealed node SD on the plaintext SUIRO
    streams applies none of them either.
Loopback only, bounded waits, every process stopped by its PID. Exit 77
(skipped) only when nats-server is not installed.
usage: test_cluster_sub.py SUIRO_BIN NATSDUMP_BIN"""
import collections
import hashlib
import json
import struct
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
NATSDUMP = sys.argv[2]
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

    def __init__(self, port, prefix="m-"):
        self.port, self.k, self.acked, self.stop = port, 0, [], threading.Event()
        self.api, self.prefix = None, prefix

    def send(self, k):
        if self.api is None:
            self.api = gw_session(self.port, "SIM0001", "sim-secret-SIM0001")
            if self.api is None:
                return False
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime((self.BASE + k * 1000) / 1000)) + "Z"
        vals = [{"dataId": p, "timestamp": ts, "value": k + i / 10} for i, p in enumerate(POINTS)]
        try:
            st, b = self.api.call("POST", "/gw/v1/measurements",
                                  {"header": {"messageType": "GW_MEASUREMENTS", "messageId": self.prefix + str(k)},
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


def raw_dump(stream):
    """natsdump --raw: each message of stream as stored (headers, payload bytes)."""
    r = subprocess.run([NATSDUMP, "--raw", NC_URLS[0], stream], capture_output=True, text=True, timeout=120)
    if r.returncode:
        raise RuntimeError("natsdump --raw %s: %s" % (stream, r.stderr))
    out = []
    for ln in r.stdout.splitlines():
        m = json.loads(ln)
        m["data"] = bytes.fromhex(m.pop("hex"))
        out.append(m)
    return out


def varint(n):
    b = bytearray()
    while True:
        x = n & 0x7F
        n >>= 7
        b.append(x | (0x80 if n else 0))
        if not n:
            return bytes(b)


def unwrap_entry(master, e):
    """A KV entry of the keys' bucket (docs/keys.md "Cluster: stream keys"): (id, op, cls, key) with Python's
    cryptography, or raises."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    assert e[:8] == b"SRSKEY1\0", e[:8]
    kid, = struct.unpack("<Q", e[12:20])
    cls, state = e[22], e[23]
    ol, = struct.unpack("<H", e[48:50])
    op = e[50:50 + ol]
    assert state == 1 and len(e) == 50 + ol + 12 + 32 + 16, (state, len(e))
    ad = b"suiro-stream-key-v1\0" + e[:23] + e[24:40] + e[48:50 + ol]
    n = e[50 + ol:62 + ol]
    key = AESGCM(master).decrypt(n, e[62 + ol:], ad)
    return kid, op, cls, key


def open_payload(key, cls, part, m):
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    d = m["data"]
    op = b"" if m["operator"] == "-" else m["operator"].encode()
    ad = (b"suiro-stream-v1\0" + d[:26] + struct.pack("<IB", part, cls) + bytes([len(op)]) + op +
          bytes([len(m["kind"])]) + m["kind"].encode() + bytes([len(m["node"])]) + m["node"].encode() +
          struct.pack("<Q", int(m["seq"])))
    return AESGCM(key).decrypt(d[14:26], d[26:], ad)


CHUNK = 256 * 1024  # api/cluster_blob.h SR_CBLOB_CHUNK


def blob_chunk(index, body):
    """A plaintext chunk message of body (docs/blob-format.md "The cluster's blob chunks")."""
    n = (len(body) + CHUNK - 1) // CHUNK
    return (b"SRB1" + struct.pack("<IIIQ", index, n, CHUNK, len(body)) + hashlib.sha256(body).digest() +
            body[index * CHUNK:(index + 1) * CHUNK])


def nats_pub(subject, payload, *hdrs):
    path = os.path.join(T, "pub.bin")
    with open(path, "wb") as f:
        f.write(payload)
    r = subprocess.run([NATSDUMP, "--pub", NC_URLS[0], subject, path] + list(hdrs), capture_output=True, text=True,
                       timeout=60)
    return r.returncode == 0, r.stderr


def read_file_until(api, path, timeout=30):
    """GET a file until 200: (status, body, sha256 header, content type, the statuses seen before)."""
    seen, got = collections.Counter(), [None]

    def once():
        st, body, r = api.call("GET", path, raw=True)
        seen[st] += 1
        got[0] = (st, body, r.getheader("x-suiro-sha256"), r.getheader("Content-Type"), r.getheader("Retry-After"))
        if st == 503 and not r.getheader("Retry-After"):
            seen["503 without Retry-After"] += 1
        return st == 200
    srtest.wait_until(once, timeout=timeout, step=0.2)
    return got[0] + (seen,)


NC_URLS = []
try:
    srtest.provision_gwsim(BIN, data("a"), T, 2, 3, extra=APPS)
    pw, pw2 = srtest.init_with_admin(BIN, data("b"), second="admin2")
    nc = srtest.start_nats_cluster(T, 3)
    NC_URLS.append(nc.urls())
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

    # a file written on A is read on B: the same bytes (fetched from the blob stream, kept under B's keys)
    sa = app_on(pa["http"])
    fbytes = os.urandom(2 * CHUNK + 1000) + b"PLAINTEXT-FILE-NEEDLE-0001"  # 3 chunks
    fsha = hashlib.sha256(fbytes).hexdigest()
    st, _ = sa.call("PUT", "/api/v1/files/notes/c.bin", fbytes, {"Content-Type": "application/x-test"}) if sa \
        else (0, None)
    check("A: a file (3 chunks) written on A", st in (200, 201), st)
    st, body, hsha, ctype, _, seen = read_file_until(sb, "/api/v1/files/notes/c.bin")
    check("A: the file written on A is read on B with identical bytes (SHA-256 of the download = the upload's)",
          st == 200 and body == fbytes and hashlib.sha256(body).hexdigest() == fsha, (st, len(body or b"")))
    check("A: B serves it as a local file (x-suiro-sha256, Content-Type)", hsha == fsha and ctype == "application/x-test",
          (hsha, ctype))
    check("A: before its bytes are on B: 404 (no record yet) or 503 with Retry-After, never 500",
          set(seen) <= {200, 404, 503}, dict(seen))
    ma, mb = metrics(pa["http"]), metrics(pb["http"])
    check("A: A published the file's bytes, B fetched them (suiro_cluster_blobs_total)",
          ma.get('suiro_cluster_blobs_total{state="published"}', 0) >= 1 and
          mb.get('suiro_cluster_blobs_total{state="fetched"}', 0) >= 1 and
          mb.get('suiro_cluster_blobs_pending', -1) == 0, (ma, mb))
    blobs_plain = raw_dump("SUIRO_BLOBS")
    check("A: SUIRO_BLOBS (no key_file) holds the file's chunks in clear, subjects naming its SHA-256 (the control)",
          len([m for m in blobs_plain if fsha in m["subject"]]) == 3 and
          b"PLAINTEXT-FILE-NEEDLE-0001" in b"".join(m["data"] for m in blobs_plain),
          [(m["subject"], len(m["data"])) for m in blobs_plain])
    # B. a registry change on B lets a new gateway connect to A
    admin = srtest.admin_session(pb["http"], "admin", pw, new_password="Cluster-admin-pw-1")
    admin2 = srtest.admin_session(pb["http"], "admin2", pw2, new_password="Cluster-admin-pw-2") if pw2 else None
    # a stream key's erasure through the Admin API (issue #19 ckey): B has no key_file, so no stream key: 409
    st, body = admin.call("POST", "/admin/v1/cluster/keys/0123456789abcdef/erase", {}) if admin else (0, None)
    check("B: POST /admin/v1/cluster/keys/{id}/erase on a node without key_file: 409 naming it",
          st == 409 and "key_file" in str(body), (st, body))
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
    # while B is down: a file on A whose chunk 1 is then replaced in the stream by bytes that do not verify
    tbytes = os.urandom(CHUNK + 5000)
    tsha = hashlib.sha256(tbytes).hexdigest()
    st, _ = sa.call("PUT", "/api/v1/files/notes/t.bin", tbytes, {"Content-Type": "application/x-test"}) if sa \
        else (0, None)
    check("C: a file (2 chunks) written on A while B is down", st in (200, 201), st)
    good = blob_chunk(1, tbytes)
    bad = good[:-1] + bytes([good[-1] ^ 1])  # its header intact, one byte of the data changed
    ok, err = nats_pub("SUIRO.blob.%s.1" % tsha, bad, "Nats-Msg-Id=tamper-1")
    check("C: a tampered chunk 1 replaces the good one in SUIRO_BLOBS", ok, err)
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
    ok = srtest.wait_until(lambda: metrics(pb["http"]).get('suiro_cluster_blobs_total{state="refused"}', 0) >= 1,
                           timeout=30, step=0.2)
    st, body, r = sb.call("GET", "/api/v1/files/notes/t.bin", raw=True) if sb else (0, b"", None)
    check("C: B refuses the tampered bytes: 503 with Retry-After naming why, never the bytes",
          ok and st == 503 and r.getheader("Retry-After") and (b"does not verify" in body or b"hash to" in body),
          (ok, st, body[:300]))
    logb = open(os.path.join(T, "b.log"), errors="replace").read()
    check("C: a WARN names the refused file", "file bytes refused" in logb and "notes/t.bin" in logb, logb[-600:])
    ok, err = nats_pub("SUIRO.blob.%s.1" % tsha, good, "Nats-Msg-Id=repair-1")
    check("C: the good chunk published again", ok, err)
    st, body, hsha, _, _, seen = read_file_until(sb, "/api/v1/files/notes/t.bin", timeout=40)
    check("C: then B serves the file's own bytes (SHA-256 equal)", st == 200 and body == tbytes and hsha == tsha,
          (st, dict(seen)))
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
    for p in (c, b):
        check("a node stops cleanly", srtest.stop_server(p) == 0)

    # E. stream keys: every node of cluster SEAL with the same key_file
    K = os.path.join(T, "master.key")
    master = os.urandom(32)
    with open(K, "w") as f:
        f.write(master.hex() + "\n")
    os.chmod(K, 0o600)

    def sealed_config(name, cname="SEAL", key=True, owned="all"):
        path = srtest.cluster_ini(os.path.join(T, name + ".ini"), nc.urls(), name, PARTS, replicas=3,
                                  ack_timeout_ms=2000, dedup_window_s=600, owned=owned, name=cname)
        if key:
            with open(path, "a") as f:
                f.write("\n[engine]\nkey_file = %s\n" % K)
        return path
    srtest.provision_gwsim(BIN, data("sa"), T, 2, 3, extra=APPS)
    subprocess.run([BIN, "init", data("sb")], check=True, capture_output=True)
    sa, psa = start("sa", sealed_config("sa"))
    sb2, psb = start("sb", sealed_config("sb"))
    ssb = app_on(psb["http"])
    check("E: the app (SA's registry, sealed streams) logs in on SB", ssb is not None)
    snd2 = Sender(psa["http"], prefix="sealmsg-")
    snd2.run_n(40)
    check("E: SA acknowledged the values (%d)" % len(snd2.acked), len(snd2.acked) == 40, len(snd2.acked))
    ok = srtest.wait_until(lambda: all_there(ssb, snd2.acked)[0], timeout=30, step=0.2) if ssb else False
    _, got, want = all_there(ssb, snd2.acked) if ssb else (None, {}, set())
    check("E: every value acknowledged by SA is read from SB", ok, {p: len(c or ()) for p, c in got.items()})
    check("E: each value once per point on SB", got and all(c is not None and len(c) == len(want) and
                                                            max(c.values()) == 1 for c in got.values()),
          {p: len(c or ()) for p, c in got.items()})
    # a file on SA read on SB; the SEAL_BLOBS chunks sealed
    ssa = app_on(psa["http"])
    needle = b"SEALED-FILE-NEEDLE-0001-"
    sbytes = (needle * (CHUNK // len(needle) + 10))[:CHUNK + 3000]  # 2 chunks, the needle everywhere
    ssha = hashlib.sha256(sbytes).hexdigest()
    st, _ = ssa.call("PUT", "/api/v1/files/notes/s.bin", sbytes, {"Content-Type": "application/x-test"}) if ssa \
        else (0, None)
    check("E: a file written on SA", st in (200, 201), st)
    st, body, hsha, _, _, seen = read_file_until(ssb, "/api/v1/files/notes/s.bin") if ssb else (0, b"", 0, 0, 0, {})
    check("E: the file written on SA is read on SB with identical bytes (sealed streams)",
          st == 200 and body == sbytes and hsha == ssha, (st, dict(seen)))
    sblobs = raw_dump("SEAL_BLOBS")
    check("E: SEAL_BLOBS holds the file's chunks (%d), each sealed (Suiro-Key, SRS1)" % len(sblobs),
          len(sblobs) >= 2 and all(m["key"] and m["data"][:4] == b"SRS1" for m in sblobs),
          [(m["subject"], m["key"]) for m in sblobs])
    allb = b"".join(m["data"] for m in sblobs)
    check("E: no run of the file's bytes and no subject naming its SHA-256 in SEAL_BLOBS",
          needle[:12] not in allb and not any(ssha in m["subject"] for m in sblobs))
    sb_blob_bytes = b""
    for root, _, files in os.walk(os.path.join(data("sb"), "blobs")):
        for fn in files:
            with open(os.path.join(root, fn), "rb") as f:
                sb_blob_bytes += f.read()
    check("E: SB keeps the fetched file sealed in its own blob store (no plaintext run in DATA/blobs)",
          len(sb_blob_bytes) > len(sbytes) and needle[:12] not in sb_blob_bytes, len(sb_blob_bytes))
    msa = metrics(psa["http"])
    check("E: SA sealed what it published", msa.get('suiro_cluster_events_total{state="published"}', 0) > 0 and
          msa.get('suiro_cluster_events_total{state="sealed"}', 0) >= msa.get('suiro_cluster_events_total{state="published"}'),
          msa)
    # the raw bytes: sealed streams against the plaintext ones (the control)
    sealed_msgs = [m for p in range(PARTS) for m in raw_dump("SEAL_P%03u" % p)]
    plain_msgs = [m for p in range(PARTS) for m in raw_dump("SUIRO_P%03u" % p)]
    check("E: the SEAL streams hold SA's events (%d messages)" % len(sealed_msgs), len(sealed_msgs) >= 40)
    unsealed = [(m["stream"], m["sseq"], m["kind"]) for m in sealed_msgs
                if not m["key"] or m["data"][:4] != b"SRS1" or m["data"][4:12] != bytes.fromhex(m["key"])[::-1]]
    check("E: every payload of the SEAL streams is sealed (Suiro-Key = the payload's key id, magic SRS1)",
          not unsealed, unsealed[:5])
    check("E: the SUIRO streams (no key_file) are plaintext", plain_msgs and not any(m["key"] for m in plain_msgs))
    # (needles of 7 bytes or more: a shorter one would match random ciphertext now and then)
    needles = [p.encode() for p in POINTS] + [b"SIM0001", b"Sim app", b"sealmsg-"]
    ts_needles = [varint(Sender.BASE + k * 1000) for k in snd2.acked]
    sealed_blob = b"".join(m["data"] for m in sealed_msgs)
    plain_blob = b"".join(m["data"] for m in plain_msgs)
    found = [n for n in needles if n in sealed_blob]
    check("E: no data id, gateway id, app name or message id in the sealed streams' bytes", not found, found)
    found = sum(1 for n in ts_needles if n in sealed_blob)
    check("E: none of the %d values' timestamps (protobuf varints) in the sealed streams' bytes" % len(ts_needles),
          found == 0, found)
    ctrl = [n for n in [p.encode() for p in POINTS] + [b"SIM0001", b"Sim app", b"m-1"] if n not in plain_blob]
    ctrl_ts = sum(1 for k in snd.acked[:40] if varint(Sender.BASE + k * 1000) in plain_blob)
    check("E: the control: the same scan finds them in the plaintext SUIRO streams", not ctrl and ctrl_ts == 40,
          (ctrl, ctrl_ts))
    # the keys' bucket: only wrapped keys, which the master key unwraps (Python, not suiro's code)
    kv = raw_dump("KV_SEAL_KEYS")
    keys = {}
    bad = []
    for e in kv:
        try:
            kid, op, cls, key = unwrap_entry(master, e["data"])
            keys[kid] = (op, cls, key)
        except Exception as ex:  # noqa: BLE001
            bad.append((e["subject"], repr(ex)[:120]))
    check("E: the bucket KV_SEAL_KEYS holds only wrapped stream keys (%d), unwrapped by the master key" % len(kv),
          kv and not bad and all(key not in sealed_blob and key not in b"".join(e["data"] for e in kv)
                                 for _, _, key in keys.values()), bad[:3])
    check("E: the master key is in no stream", master not in sealed_blob and
          master not in b"".join(e["data"] for e in kv))
    opened = 0
    for m in sealed_msgs:
        if m["kind"] != "measurements":
            continue
        kid, = struct.unpack("<Q", m["data"][4:12])
        op, cls, key = keys.get(kid, (None, None, None))
        try:
            pl = open_payload(key, cls, int(m["stream"][-3:]), m)
            if any(varint(Sender.BASE + k * 1000) in pl for k in snd2.acked):
                opened += 1
        except Exception:  # noqa: BLE001
            pass
    check("E: the measurements' payloads open with the bucket's keys and hold the values' times (%d)" % opened,
          opened >= 1)
    r = subprocess.run([BIN, "cluster", "dump", "--config", os.path.join(T, "sa.ini")], capture_output=True,
                       text=True, timeout=120)
    evs = [json.loads(ln) for ln in r.stdout.splitlines() if ln.strip()]
    meas = [e for e in evs if e.get("kind") == "measurements"]
    check("E: suiro cluster dump with the key opens the sealed payloads",
          r.returncode == 0 and meas and all(e.get("event") and e.get("key") for e in meas), r.stderr[-300:])
    # erasure: destroy sim's data key; its payloads open nowhere any more, the others still do
    r = subprocess.run([BIN, "cluster", "keys", "--config", os.path.join(T, "sa.ini")], capture_output=True,
                       text=True, timeout=60)
    listed = [json.loads(ln) for ln in r.stdout.splitlines() if ln.strip()]
    simdata = [k for k in listed if k.get("operator") == "sim" and k.get("class") == "data" and
               k.get("state") == "active"]
    check("E: suiro cluster keys lists sim's data key (metadata only)", r.returncode == 0 and len(simdata) == 1 and
          len(listed) == len(kv), (r.returncode, listed, r.stderr[-200:]))
    kid = simdata[0]["id"] if simdata else "0000000000000001"
    # the erasure is recorded in SA's log (issue #19 ckey): SA stopped, the CLI opens its engine (as the other
    # offline commands do; while a node runs, through its Admin API)
    check("E: SA stops cleanly before the offline erasure", srtest.stop_server(sa) == 0)
    r = subprocess.run([BIN, "cluster", "erase", "--config", os.path.join(T, "sa.ini"), "--data", data("sa"),
                        "--id", kid], capture_output=True, text=True, timeout=60)
    check("E: suiro cluster erase destroys it", r.returncode == 0 and "destroyed stream key " + kid in r.stdout,
          (r.returncode, r.stdout, r.stderr))
    kv2 = [e for e in raw_dump("KV_SEAL_KEYS") if e["subject"].endswith("k." + kid)]
    check("E: the bucket holds only its tombstone (no key bytes, no older revision)",
          len(kv2) == 1 and kv2[0]["data"][23] == 3 and len(kv2[0]["data"]) == 50 + 3,
          [(e["subject"], len(e["data"])) for e in kv2])
    r = subprocess.run([BIN, "cluster", "dump", "--config", os.path.join(T, "sa.ini")], capture_output=True,
                       text=True, timeout=120)
    evs = [json.loads(ln) for ln in r.stdout.splitlines() if ln.strip()]
    gone = [e for e in evs if e.get("key") == kid]
    still = [e for e in evs if e.get("key") and e.get("key") != kid]
    check("E: after the erasure none of that key's payloads opens (%d), naming why" % len(gone),
          len(gone) >= 40 and all(e.get("event") is None and "destroyed" in e.get("error", "") for e in gone),
          [e for e in gone if e.get("event") is not None or "destroyed" not in e.get("error", "")][:2])
    check("E: the other keys' payloads still open (%d)" % len(still),
          still and all(e.get("event") is not None for e in still))
    cfgkid = [k for k in listed if k.get("class") == "config"][0]["id"]
    r = subprocess.run([BIN, "cluster", "erase", "--config", os.path.join(T, "sa.ini"), "--data", data("sa"),
                        "--id", cfgkid], capture_output=True, text=True, timeout=60)
    check("E: a config key is never erased", r.returncode == 1 and "never" in r.stderr, (r.returncode, r.stderr))
    r = subprocess.run([BIN, "cluster", "erase", "--config", os.path.join(T, "sa.ini"), "--data", data("sa"),
                        "--id", kid], capture_output=True, text=True, timeout=60)
    check("E: erased again: found destroyed", r.returncode == 0 and "(found;" in r.stdout, (r.returncode, r.stdout))
    # suiro replay: who, what, when, from where, the outcome
    r = subprocess.run([BIN, "replay", data("sa"), "--key-file", K, "--kind", "stream_key_erase"],
                       capture_output=True, text=True, timeout=60)
    evs = [json.loads(ln) for ln in r.stdout.splitlines() if ln.strip()]

    def skb(e):
        return e.get("stream_key_erase") or e.get("streamKeyErase") or {}
    rows = [(skb(e).get("outcome"), skb(e).get("key_id", skb(e).get("keyId")), e.get("actor"), e.get("source"),
             bool(e.get("ingest"))) for e in evs]
    me = os.environ.get("USER") or "cli"
    check("E: SA's log (suiro replay) holds the erasure: its intent, then done, by the CLI's user, from cli, with "
          "its time; the config key's refusal; the second erasure found",
          r.returncode == 0 and [x[0] for x in rows] == ["pending", "done", "refused", "pending", "found"] and
          all(x[2] == me and x[3] == "cli" and x[4] for x in rows) and rows[0][1] == kid and rows[1][1] == kid and
          rows[2][1] == cfgkid, (r.returncode, rows, r.stderr[-300:], evs[:1]))

    # the retention sweep erases the stream keys of the epochs it cut (issue #19 ckey): SA again with [keys]
    # rotate_days 1 (keys of 1-day epochs), audit rows kept 1 day, a sweep every second and a test clock
    # (docs/retention.md "A test clock"); a gateway's login on it writes sim's audit (session) events, sealed by
    # sim's audit stream key of today's epoch; the clock moved 3 days on, the sweep erases that key itself
    # a real crash between an erasure's intent and its tombstone (issue #19 ckey): the tool killed -9 right after
    # the intent is durable (test hook SUIRO_TEST_ERASE_CRASH); SA's publisher finishes it at its next start
    audkid = ([k["id"] for k in listed if k.get("operator") == "sim" and k.get("class") == "audit"] or ["-"])[0]
    r = subprocess.run([BIN, "cluster", "erase", "--config", os.path.join(T, "sa.ini"), "--data", data("sa"),
                        "--id", audkid], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, SUIRO_TEST_ERASE_CRASH="after-intent"))

    def key_state(kid):
        r = subprocess.run([BIN, "cluster", "keys", "--config", os.path.join(T, "sb.ini")], capture_output=True,
                           text=True, timeout=60)
        return ([json.loads(ln)["state"] for ln in r.stdout.splitlines() if kid in ln] or [None])[0]
    check("E: the erasure of sim's audit key killed -9 after its intent: the key still active",
          r.returncode == -9 and key_state(audkid) == "active", (r.returncode, r.stderr[-300:], key_state(audkid)))
    clockf = os.path.join(T, "clock")
    with open(clockf, "w") as f:
        f.write("suiro-test-clock-offset-ms 0\n")
    retcfg = sealed_config("sa")
    with open(retcfg, "a") as f:
        f.write("\n[keys]\nrotate_days = 1\n\n[retention]\nsweep_interval_s = 1\naudit_days = 1\n")
    sa, psa = srtest.start_server(BIN, data("sa"), os.path.join(T, "sa2.log"), config=retcfg, timeout=60,
                                  env=dict(os.environ, SUIRO_TEST_CLOCK_FILE=clockf),
                                  extra=["--data", data("sa"), "--mqtt", "127.0.0.1:0", "--http", "127.0.0.1:0"])
    procs.append(sa)
    check("E: restarted, SA finished the erasure left by the crash (the tombstone written)",
          srtest.wait_until(lambda: key_state(audkid) == "destroyed", timeout=30, step=0.5), key_state(audkid))
    snd3 = Sender(psa["http"], prefix="retmsg-")
    snd3.run_n(3)

    def sim_audit_keys():
        r = subprocess.run([BIN, "cluster", "keys", "--config", retcfg], capture_output=True, text=True, timeout=60)
        return [json.loads(ln) for ln in r.stdout.splitlines() if ln.strip() and '"period_days":1' in ln and
                '"operator":"sim"' in ln and '"class":"audit"' in ln]
    ok = srtest.wait_until(lambda: sim_audit_keys(), timeout=30, step=0.5)
    akeys = sim_audit_keys()
    check("E: SA (rotate_days 1) sealed sim's audit events under an audit key of a 1-day epoch",
          ok and len(snd3.acked) == 3 and all(k["state"] == "active" for k in akeys), (len(snd3.acked), akeys))
    with open(clockf + ".tmp", "w") as f:
        f.write("suiro-test-clock-offset-ms %d\n" % (3 * 86400000))
    os.rename(clockf + ".tmp", clockf)
    ok = srtest.wait_until(lambda: akeys and all(k["state"] == "destroyed" for k in sim_audit_keys()
                                                 if k["id"] in {a["id"] for a in akeys}), timeout=40, step=0.5)
    check("E: 3 days later the retention sweep destroyed that audit stream key by itself", ok, sim_audit_keys())
    check("E: the server says so (retention sweep: stream keys, erased)",
          srtest.wait_until(lambda: "retention sweep: stream keys" in open(os.path.join(T, "sa2.log"),
                                                                           errors="replace").read(), timeout=10),
          open(os.path.join(T, "sa2.log"), errors="replace").read()[-600:])
    check("E: SA stops cleanly after the sweep", srtest.stop_server(sa) == 0)
    r = subprocess.run([BIN, "replay", data("sa"), "--key-file", K, "--kind", "stream_key_erase"],
                       capture_output=True, text=True, timeout=60)
    evs = [json.loads(ln) for ln in r.stdout.splitlines() if ln.strip()]
    ret = [(skb(e).get("outcome"), skb(e).get("key_id"), e.get("actor"), e.get("actor_kind")) for e in evs
           if skb(e).get("why") == "retention"]
    want_ids = {a["id"] for a in akeys}
    ak = [e for e in evs if skb(e).get("key_id") == audkid]
    check("E: SA's log: the crashed erasure's intent (the CLI's user), then its result done by the node, "
          "finished at start, naming the intent",
          [skb(e).get("outcome") for e in ak] == ["pending", "done"] and ak[0].get("actor") == me and
          ak[1].get("actor") == "sa" and skb(ak[1]).get("message") == "finished at start" and
          int(skb(ak[1]).get("intent_seq", 0)) == int(ak[0].get("seq", -1)),
          [(skb(e), e.get("seq"), e.get("actor")) for e in ak])
    check("E: SA's log holds the sweep's erasure: intent then done, by the node (system), why retention",
          r.returncode == 0 and [x[0] for x in ret if x[1] in want_ids] == ["pending", "done"] * len(want_ids) and
          all(x[2] == "sa" and x[3] == "ACTOR_SYSTEM" for x in ret), (ret, r.stderr[-300:]))

    # a node without key_file on the sealed streams, a sealed node on the plaintext ones: nothing applied
    subprocess.run([BIN, "init", data("sc")], check=True, capture_output=True)
    subprocess.run([BIN, "init", data("sd")], check=True, capture_output=True)
    sc, psc = start("sc", sealed_config("sc", key=False))
    sd, psd = start("sd", sealed_config("sd", cname="SUIRO"))

    def unsealed_n(port):
        return metrics(port).get('suiro_cluster_consumed_total{class="unsealed"}', 0)
    ok_c = srtest.wait_until(lambda: unsealed_n(psc["http"]) >= 40, timeout=30, step=0.2)
    ok_d = srtest.wait_until(lambda: unsealed_n(psd["http"]) >= 40, timeout=30, step=0.2)
    mc, md = metrics(psc["http"]), metrics(psd["http"])
    check("E: a node without key_file refuses the sealed payloads, applies none",
          ok_c and mc.get('suiro_cluster_consumed_total{class="reg"}', -1) == 0 and
          mc.get('suiro_cluster_consumed_total{class="data"}', -1) == 0, mc)
    check("E: a sealed node refuses the plaintext payloads, applies none",
          ok_d and md.get('suiro_cluster_consumed_total{class="reg"}', -1) == 0 and
          md.get('suiro_cluster_consumed_total{class="data"}', -1) == 0, md)
    for p in (sc, sd, sb2, a):
        check("a node stops cleanly", srtest.stop_server(p) == 0)
    logc = open(os.path.join(T, "sc.log"), errors="replace").read()
    logd = open(os.path.join(T, "sd.log"), errors="replace").read()
    check("E: SC's WARN names the cause (no key_file)", "no key_file" in logc, logc[-400:])
    check("E: SD's WARN names the cause (a plaintext payload)", "a plaintext payload" in logd, logd[-400:])
    nc.stop_all()
except Exception as e:  # noqa: BLE001
    check.failed(e)
finally:
    srtest.finish(check, T, procs)
