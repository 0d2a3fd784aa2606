#!/usr/bin/python3
"""tests/integration/test_fairness.py -- one operator must not starve another
(issue #11 item 7), through the real `suiro serve`.

Operator A (app APA, gateway of opa) attacks: document queries that scan
150 large documents, 1 MB messages of wrongly typed values (MQTT 5 and the
HTTP binding), a burst of concurrent queries, and more than 1,024 unfinished
uploads, and more open requests than its share ([server]
requests_per_operator). Meanwhile operator B (app APB, gateway of opb) must get every
answer: its latest values, its PUBACKs, its stored values and an upload slot.
Also: a document query larger than [http] answer_max_bytes or
doc_scan_max is paged (each document exactly once), A's requests over its
share of the worker queue are refused 429 E9002 with Retry-After while B's
are answered, and large messages checked on a worker are stored or refused
exactly as small ones. B's p99 latencies (quiet and under attack) are
printed for the record, not asserted (docs/performance.md has the figures).
SR_SOAK=N makes the attack N times longer. usage: test_fairness.py SUIRO_BIN"""
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

import paho.mqtt.client as mqtt

BIN = sys.argv[1]
SOAK = max(1, int(os.environ.get("SR_SOAK", "1") or 1))
ATTACK_S = 4 * SOAK
T = tempfile.mkdtemp(prefix="suiro-fair-")
D = os.path.join(T, "data")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from srtest import Api, Checks, code, finish, gwsim_sheet, import_sheet, paho_client, rss_kb, start_server  # noqa: E402

check = Checks()
server = None
NDOCS, DOC_KB = 150, 400
REQ_PER_OP = 30  # [server] requests_per_operator in this test
MON_PER_OP = 5  # [server] monitors_per_operator in this test
STOPPED_KEPT = 3  # [server] stopped_monitors_kept in this test


def p99(xs):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[int(0.99 * (len(xs) - 1))] * 1000.0


def envelope(mid, vals):
    return json.dumps({"header": {"messageType": "GW_MEASUREMENTS", "messageId": mid,
                                  "timestamp": "2026-11-22T00:00:00.000Z"},
                       "body": {"values": vals}})


def good_values(gw_pts, n, t0):
    return [{"dataId": gw_pts[i % len(gw_pts)], "timestamp": "2026-11-22T%02d:%02d:%02d.%03dZ" %
             ((t0 + i) // 3600000 % 24, (t0 + i) // 60000 % 60, (t0 + i) // 1000 % 60, (t0 + i) % 1000),
             "value": float(i)} for i in range(n)]


def bad_values(gw_pts, size):
    """~size bytes of values of the wrong type (strings for number points)"""
    one = {"dataId": gw_pts[0], "timestamp": "2026-11-22T00:00:00.000Z", "value": "not a number"}
    n = size // (len(json.dumps(one)) + 1)
    return [dict(one, dataId=gw_pts[i % len(gw_pts)]) for i in range(n)]


class Gw:
    """An MQTT gateway: PUBACK times per message id, GW_ACK results."""

    def __init__(self, port, op, gw, v5):
        self.root = "wip/v1/%s/gw/%s" % (op, gw)
        self.cv = threading.Condition()
        self.connack = None
        self.pubacked = {}
        self.acks = {}
        self.c = paho_client(gw, mqtt.MQTTv5 if v5 else mqtt.MQTTv311)
        self.c.username_pw_set("%s/%s" % (op, gw), "sim-secret-" + gw)
        self.c.on_connect = self._on_connect
        self.c.on_publish = self._on_publish
        self.c.on_message = self._on_message
        self.c.on_subscribe = lambda *a: self._note("sub")
        self.subbed = False
        self.c.max_inflight_messages_set(100)
        self.c.connect("127.0.0.1", port, keepalive=60)
        self.c.loop_start()
        with self.cv:
            self.cv.wait_for(lambda: self.connack is not None, 20)
        self.c.subscribe(self.root + "/res/#", qos=0)
        with self.cv:
            self.cv.wait_for(lambda: self.subbed, 20)

    def _note(self, what):
        with self.cv:
            self.subbed = True
            self.cv.notify_all()

    def _on_connect(self, c, u, flags, rc, props=None):
        with self.cv:
            self.connack = rc if isinstance(rc, int) else rc.value
            self.cv.notify_all()

    def _on_publish(self, c, u, mid):
        with self.cv:
            self.pubacked[mid] = time.monotonic()
            self.cv.notify_all()

    def _on_message(self, c, u, msg):
        try:
            m = json.loads(msg.payload)
            with self.cv:
                self.acks[m["header"]["correlationId"]] = m["body"]["result"]
                self.cv.notify_all()
        except (ValueError, KeyError):
            pass

    def publish_wait(self, msgid, payload, timeout=30):
        """publish QoS 1; (seconds to PUBACK or None, the GW_ACK result or None)"""
        t0 = time.monotonic()
        mid = self.c.publish(self.root + "/data/measurements", payload, qos=1).mid
        with self.cv:
            self.cv.wait_for(lambda: mid in self.pubacked and msgid in self.acks, timeout)
            t = self.pubacked.get(mid)
            return (t - t0 if t else None), self.acks.get(msgid)

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def rss_mb(pid):
    return rss_kb(pid) // 1024


try:
    subprocess.run([BIN, "init", D], check=True, capture_output=True)
    pts = {}
    for op, app in (("opa", "APA"), ("opb", "APB")):
        import_sheet(BIN, D, os.path.join(T, op + ".csv"), gwsim_sheet(BIN, 1, 4, op) +
                     "\n[apps]\nid,name,secret,push_url\n%s,App of %s,%s-app-secret,\n\n[grants]\napp,datapoint,access\n"
                     "%s,*,both\n" % (app, op, app, app))
        pts[op] = ["SP0001_%02d" % i for i in range(1, 5)]
    for bad, why in (("[http]\nuploads_per_operator = 1024\n", "uploads_per_operator < uploads_max"),
                     ("[server]\nwork_running_per_operator = 5\n", "work_*_per_operator"),
                     ("[http]\nanswer_max_bytes = 1000\n", "answer_max_bytes"),
                     ("[server]\nrequests_per_operator = 200001\n", "requests_per_operator")):
        open(os.path.join(T, "bad.ini"), "w").write(bad)
        try:
            r = subprocess.run([BIN, "serve", "--config", os.path.join(T, "bad.ini"), "--data", D, "--mqtt",
                                "127.0.0.1:0", "--http", "127.0.0.1:0"], capture_output=True, text=True, timeout=30)
            rc, err = r.returncode, r.stderr
        except subprocess.TimeoutExpired:
            rc, err = None, "still running"
        check("a bad quota setting is refused at start, naming it (%s)" % why,
              rc not in (0, None) and why in err, (rc, err[-300:]))
    cfg = os.path.join(T, "suiro.ini")
    open(cfg, "w").write("[http]\nanswer_max_bytes = 2097152\ndoc_scan_max = 100\n"
                         "[server]\nwork_queue_per_operator = 4\nrequests_per_operator = %d\nmonitors_per_operator = %d\n"
                         "stopped_monitors_kept = %d\n" % (REQ_PER_OP, MON_PER_OP, STOPPED_KEPT))
    server, ports = start_server(BIN, D, os.path.join(T, "server.log"), extra=("--config", cfg))
    port, mport = ports["http"], ports["mqtt"]

    A = Api(port)
    check("A's app logs in", A.login("APA", "opa", "APA-app-secret") == 201)
    B = Api(port)
    check("B's app logs in", B.login("APB", "opb", "APB-app-secret") == 201)
    gwa = Gw(mport, "opa", "SIM0001", v5=True)
    gwb = Gw(mport, "opb", "SIM0001", v5=False)
    check("both gateways connected", gwa.connack == 0 and gwb.connack == 0, (gwa.connack, gwb.connack))

    # ---- large messages are checked on a worker: stored or refused exactly as small ones
    t, ack = gwa.publish_wait("big-good", envelope("big-good", good_values(pts["opa"], 6000, 0)))
    check("a large valid message (6,000 values, > parse_inline_max) is PUBACKed and stored (GW_ACK 0)",
          t is not None and ack and ack.get("code") == "0", (t, ack))
    t, ack = gwa.publish_wait("big-bad", envelope("big-bad", bad_values(pts["opa"], 900000)))
    check("a 900 KB message of wrongly typed values is refused (GW_ACK E1001, nothing stored)",
          t is not None and ack and ack.get("code") == "E1001", (t, str(ack)[:300]))
    st, b = B.call("GET", "/api/v1/stored-values/latest?dataId=" + pts["opb"][0])
    gb = Api(port)
    st, b = gb.call("POST", "/gw/v1/sessions", {"operatorId": "opa", "gatewayId": "SIM0001",
                                                  "secret": "sim-secret-SIM0001"})
    check("A's gateway opens an HTTP session", st == 201, (st, b))
    gb.token = b.get("token") if isinstance(b, dict) else None
    st, b = gb.call("POST", "/gw/v1/measurements", envelope("h-good", good_values(pts["opa"], 6000, 10000000)))
    check("HTTP binding: a large valid message is stored (200 code 0)", st == 200 and code(b) == "0", (st, b))
    st, b = gb.call("POST", "/gw/v1/measurements", envelope("h-bad", bad_values(pts["opa"], 900000)))
    check("HTTP binding: a large message of wrongly typed values is refused 400 E1001",
          st == 400 and code(b) == "E1001", (st, str(b)[:300]))
    st, b = A.call("GET", "/api/v1/stored-values?dataId=%s&from=2026-11-22T00:00:00Z&to=2026-11-23T00:00:00Z"
                   "&limit=100000" % pts["opa"][0])
    check("A's large messages stored each value once (3,000 of point 1)", st == 200 and
          len(b.get("values", [])) == 3000, (st, len(b.get("values", [])) if isinstance(b, dict) else b))

    # the packet checked on a worker keeps its place: what the gateway sent after it is acknowledged after it
    m1 = gwa.c.publish(gwa.root + "/data/measurements",
                       envelope("ord-big", good_values(pts["opa"], 6000, 50000000)), qos=1).mid
    m2 = gwa.c.publish(gwa.root + "/data/measurements", envelope("ord-small", good_values(pts["opa"], 4, 60000000)),
                       qos=1).mid
    with gwa.cv:
        gwa.cv.wait_for(lambda: m1 in gwa.pubacked and m2 in gwa.pubacked and "ord-big" in gwa.acks and
                        "ord-small" in gwa.acks, 30)
    check("a small message sent after a large one on the same connection is acknowledged after it",
          m1 in gwa.pubacked and m2 in gwa.pubacked and gwa.pubacked[m1] <= gwa.pubacked[m2] and
          gwa.acks.get("ord-big", {}).get("code") == "0" and gwa.acks.get("ord-small", {}).get("code") == "0",
          (gwa.pubacked.get(m1), gwa.pubacked.get(m2), gwa.acks.get("ord-big"), gwa.acks.get("ord-small")))

    # ---- B's data and quiet figures
    for i in range(20):
        gwb.publish_wait("b-seed-%d" % i, envelope("b-seed-%d" % i, good_values(pts["opb"], 4, 20000000 + i * 10)))
    lat_path = "/api/v1/stored-values/latest?dataId=" + pts["opb"][0]
    quiet = []
    for i in range(100):
        t0 = time.monotonic()
        st, b = B.call("GET", lat_path)
        quiet.append(time.monotonic() - t0)
    check("B's latest value (quiet)", st == 200 and len(b.get("values", [])) == 1, (st, b))
    quiet_pub = []
    for i in range(50):
        t, ack = gwb.publish_wait("b-q-%d" % i, envelope("b-q-%d" % i, good_values(pts["opb"], 4, 30000000 + i * 10)))
        if t is not None:
            quiet_pub.append(t)

    # ---- A's documents: 150 of 400 KB
    filler = "x" * (DOC_KB * 1024 - 100)
    ok = 0
    for i in range(NDOCS):
        st, b = A.call("POST", "/api/v1/documents/big", {"n": i, "kind": "report", "pad": filler})
        ok += st == 201
    check("A stored %d documents of %d KB" % (NDOCS, DOC_KB), ok == NDOCS, ok)

    st, b = A.call("POST", "/api/v1/documents/big", '{"pad":"%s", "n": }' % filler)
    check("a large malformed document (checked on a worker) is refused 400 E1002", st == 400 and
          code(b) == "E1002", (st, b))
    st, b = A.call("POST", "/api/v1/documents/big", '["%s"]' % filler)
    check("a large document that is not an object is refused 400 E1001", st == 400 and code(b) == "E1001", (st, b))
    st, b = A.call("POST", "/api/v1/current-values", '{"dataIds":["%s"]}' % ("x" * 200000))
    check("a 200 KB body where a small one is expected (current-values) is refused 413 E1003 unparsed",
          st == 413 and code(b) == "E1003", (st, b))

    # a query over more than answer_max_bytes is paged: every document once
    seen, pages, cursor, bad = [], 0, None, None
    while pages < 200:
        st, b = A.call("GET", "/api/v1/documents/big?limit=1000" + ("&cursor=" + cursor if cursor else ""))
        if st != 200:
            bad = (st, str(b)[:200])
            break
        pages += 1
        seen += [it["document"]["n"] for it in b["items"]]
        cursor = b.get("nextCursor")
        if not cursor:
            break
    check("a document query over answer_max_bytes (2 MiB) is paged: %d pages, each document once" % pages,
          bad is None and sorted(seen) == list(range(NDOCS)) and pages >= NDOCS * DOC_KB // 2048, (bad, pages,
                                                                                                  len(seen)))
    # a query that matches nothing examines at most doc_scan_max documents a call
    pages, cursor, items = 0, None, 0
    while pages < 10:
        st, b = A.call("GET", "/api/v1/documents/big?kind=none" + ("&cursor=" + cursor if cursor else ""))
        if st != 200:
            break
        pages += 1
        items += len(b["items"])
        cursor = b.get("nextCursor")
        if not cursor:
            break
    check("a query matching nothing is cut at doc_scan_max (100): 2 pages, no items", st == 200 and
          pages == 2 and items == 0, (st, pages, items))
    st, b = A.call("GET", "/api/v1/documents/big?kind=report&limit=3")
    check("a field query with a limit: 3 items and a cursor", st == 200 and len(b["items"]) == 3 and
          b.get("nextCursor"), (st, str(b)[:200]))

    # ---- A's burst: more queries at once than its share of the worker queue
    barrier = threading.Barrier(13)
    burst = []

    def one_query():
        c = Api(port, A.token)
        c.c.connect()
        barrier.wait(30)
        st, b, r = c.call("GET", "/api/v1/documents/big?kind=none", raw=True)
        burst.append((st, r.getheader("Retry-After"), json.loads(b).get("result", {}).get("code")
                      if st != 200 else None))

    ths = [threading.Thread(target=one_query) for _ in range(12)]
    for th in ths:
        th.start()
    bb = Api(port, B.token)
    bb.c.connect()
    barrier.wait(30)
    st_b, b_b = bb.call("GET", lat_path)
    for th in ths:
        th.join(120)
    refused = [x for x in burst if x[0] == 429]
    check("A's burst of 12 queries: over its share (2 running + 4 waiting) refused 429 E9002 with Retry-After",
          len(burst) == 12 and len(refused) >= 1 and all(x[1] and x[2] == "E9002" for x in refused) and
          all(x[0] in (200, 429) for x in burst), burst)
    check("... while B's request in the same moment is answered", st_b == 200 and b_b.get("values"), (st_b, b_b))

    # ---- A's unfinished uploads: the slots are per app/operator, B keeps its own
    up_ok = up_busy = 0
    ra = None
    for i in range(1100):
        st, b, r = A.call("PUT", "/api/v1/files/up/u%04d.bin" % i, b"0123456789",
                          {"Content-Range": "bytes 0-9/100"}, raw=True)
        if st == 202:
            up_ok += 1
        elif st == 429:
            up_busy += 1
            ra = ra or r.getheader("Retry-After")
            if json.loads(b)["result"]["code"] != "E9002":
                break
    check("1,100 unfinished uploads of one app: its 16 slots, then 429 E9002 with Retry-After",
          up_ok == 16 and up_busy == 1100 - 16 and ra, (up_ok, up_busy, ra))
    st, b = B.call("PUT", "/api/v1/files/b/whole.txt", b"hello from B")
    check("B still uploads a file (201)", st == 201 and b.get("size") == 12, (st, b))
    st, b = B.call("PUT", "/api/v1/files/b/parts.bin", b"0123456789", {"Content-Range": "bytes 0-9/20"})
    check("B still starts an upload in parts (202)", st == 202, (st, b))
    st, b = B.call("PUT", "/api/v1/files/b/parts.bin", b"abcdefghij", {"Content-Range": "bytes 10-19/20"})
    check("... and finishes it (201)", st == 201 and b.get("size") == 20, (st, b))

    # ---- the attack: heavy queries and large refused messages from A, B measured
    stop = threading.Event()
    counts = {"q200": 0, "q429": 0, "qother": 0, "bad_acks": 0, "bad_lost": 0}
    lock = threading.Lock()

    def query_flood():
        c = Api(port, A.token)
        while not stop.is_set():
            st, b = c.call("GET", "/api/v1/documents/big?kind=none&limit=1000")
            with lock:
                counts["q200" if st == 200 else "q429" if st == 429 else "qother"] += 1
            if st == 429:
                time.sleep(0.01)

    def bad_flood():
        payload_vals = bad_values(pts["opa"], 900000)
        i = 0
        while not stop.is_set():
            mid = "flood-%d" % i
            i += 1
            t, ack = gwa.publish_wait(mid, envelope(mid, payload_vals), timeout=60)
            with lock:
                if ack and ack.get("code") == "E1001":
                    counts["bad_acks"] += 1
                else:
                    counts["bad_lost"] += 1

    attackers = [threading.Thread(target=query_flood) for _ in range(3)] + [threading.Thread(target=bad_flood)]
    for th in attackers:
        th.start()
    loaded, loaded_pub, b_fail, pub_fail = [], [], 0, 0
    end = time.monotonic() + ATTACK_S
    k = 0
    while time.monotonic() < end:
        t0 = time.monotonic()
        st, b = B.call("GET", lat_path)
        loaded.append(time.monotonic() - t0)
        b_fail += not (st == 200 and len(b.get("values", [])) == 1)
        if k % 5 == 0:
            mid = "b-l-%d" % k
            t, ack = gwb.publish_wait(mid, envelope(mid, good_values(pts["opb"], 4, 40000000 + k * 10)))
            if t is None or not ack or ack.get("code") != "0":
                pub_fail += 1
            else:
                loaded_pub.append(t)
        k += 1
    stop.set()
    for th in attackers:
        th.join(120)
    check("under attack, every one of B's %d latest-value requests answered 200" % len(loaded), b_fail == 0, b_fail)
    check("under attack, every one of B's %d messages PUBACKed and stored" % (len(loaded_pub) + pub_fail),
          pub_fail == 0 and loaded_pub, pub_fail)
    check("A's queries were answered or refused as busy, never failed", counts["qother"] == 0 and
          counts["q200"] > 0, counts)
    check("every large refused message of A got its refusal", counts["bad_lost"] == 0 and counts["bad_acks"] > 0,
          counts)
    st, b = B.call("GET", "/api/v1/stored-values?dataId=%s&from=2026-11-22T00:00:00Z&to=2026-11-23T00:00:00Z"
                   % pts["opb"][0])
    check("B's values are all there", st == 200, (st, b))
    print("figures: B latest-value p99 quiet %.2f ms, under attack %.2f ms (%d requests); "
          "B PUBACK p99 quiet %.2f ms, under attack %.2f ms (%d); A: %s; server RSS %d MB" %
          (p99(quiet), p99(loaded), len(loaded), p99(quiet_pub), p99(loaded_pub), len(loaded_pub), counts,
           rss_mb(server.pid)))

    # ---- monitors: A's app starts its operator's share of monitors (each
    # START waits for A's gateway, which never acks: one open request each);
    # one more of A is refused 429 E9002, B's is still taken; once A stops
    # one, A may start one again
    mons, other = [], []
    for i in range(MON_PER_OP + 1):
        st, b = A.call("POST", "/api/v1/monitors", {"dataIds": [pts["opa"][i % 4]], "intervalMs": 1000})
        if st == 201:
            mons.append(b["monitorId"])
        else:
            other.append((st, b))
    check("A starts %d monitors, the next one is refused 429 E9002" % MON_PER_OP, len(mons) == MON_PER_OP and
          len(other) == 1 and other[0][0] == 429 and code(other[0][1]) == "E9002", (len(mons), other))
    st, b = B.call("POST", "/api/v1/monitors", {"dataIds": [pts["opb"][1]], "intervalMs": 1000})
    check("B's monitor is taken while A's monitors are at the limit", st == 201, (st, b))
    st, b = A.call("DELETE", "/api/v1/monitors/" + mons[0])
    st2, b2 = A.call("POST", "/api/v1/monitors", {"dataIds": [pts["opa"][0]], "intervalMs": 1000})
    check("once A stops one, A starts one again", st in (200, 202) and st2 == 201, (st, b, st2, b2))
    # the START (and STOP) parts of A's monitors that the gateway never
    # acked are open requests of A too
    st, b = A.call("GET", "/api/v1/monitors")
    held = sum(1 for m in b.get("items", []) if m.get("status") in ("STARTING", "STOPPING"))

    # ---- open requests: A's app fills its operator's share of the live
    # requests (async, to its online gateway that never answers); more of A
    # are refused 429 E9002 (request and monitor), B's are still taken
    opened, refused, other = 0, 0, []
    body = {"dataIds": [pts["opa"][0]], "timeoutMs": 60000}
    for i in range(REQ_PER_OP - held + 10):
        st, b = A.call("POST", "/api/v1/current-values?async=true", body)
        if st == 202:
            opened += 1
        elif code(b) == "E9002":
            refused += 1
        else:
            other.append((st, b))
    check("A opens %d open requests (%d more are its monitors' parts), no more: the other 10 are refused E9002"
          % (REQ_PER_OP - held, held), opened == REQ_PER_OP - held and refused == 10 and not other,
          (opened, refused, held, other[:3]))
    st, b = A.call("POST", "/api/v1/monitors", {"dataIds": [pts["opa"][0]], "intervalMs": 1000})
    check("a monitor of A (its START joins the open requests) is refused E9002 too", code(b) == "E9002", (st, b))
    st, b = B.call("POST", "/api/v1/current-values?async=true", {"dataIds": [pts["opb"][0]], "timeoutMs": 60000})
    check("B's request is still taken while A's share is full", st == 202, (st, b))
    st, b = B.call("POST", "/api/v1/monitors", {"dataIds": [pts["opb"][0]], "intervalMs": 1000})
    check("B's monitor is still taken while A's share is full", st == 201, (st, b))
    gwa.close()
    gwb.close()
    # ---- stopped monitors are bounded: B starts and stops monitors in a loop
    # (its gateway is gone: each stops at once); only the most recent
    # stopped_monitors_kept stay in memory (and in GET /monitors)
    cycles = []
    for i in range(STOPPED_KEPT + 5):
        st, b = B.call("POST", "/api/v1/monitors", {"dataIds": [pts["opb"][0]], "intervalMs": 1000})
        st2, b2 = B.call("DELETE", "/api/v1/monitors/" + b.get("monitorId", "x")) if st == 201 else (st, b)
        cycles.append((st, st2, (b2 or {}).get("status")))
    st, b = B.call("GET", "/api/v1/monitors")
    stopped = [m for m in b.get("items", []) if m.get("status") == "STOPPED"]
    check("B starts and stops %d monitors; at most %d stopped ones are kept" % (len(cycles), STOPPED_KEPT),
          all(c[0] == 201 and c[2] == "STOPPED" for c in cycles) and 1 <= len(stopped) <= STOPPED_KEPT + 1,
          (cycles, len(stopped)))
    server.terminate()
    check("the server stops cleanly (exit 0)", server.wait(60) == 0)
except Exception as e:  # noqa: BLE001
    import traceback
    traceback.print_exc()
    check("no exception", False, repr(e))
finish(check, T, [server])
