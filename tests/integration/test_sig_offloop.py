#!/usr/bin/python3
"""tests/integration/test_sig_offloop.py -- issue #18 (R-SE-3,
docs/signatures.md "Cost", api/server.c invariant 7): a gateway message
carrying `protection` is verified on the worker queue, charged to its
operator's share, never on the network loop, through the real `suiro serve`
with ES384 keys made by `openssl` (srtest.OpensslSigner):
  - signed messages over MQTT and GW-IF HTTP are stored (GW_ACK 0 / 200) and
    counted in suiro_gw_sig_verify_total{thread="worker"};
    suiro_gw_sig_verify_total{thread="loop"} stays 0 for the whole run (the
    counter is bumped by the verification itself, on the thread it runs on:
    a verification on the loop makes this test fail);
  - a session's order is kept: a signed message followed at once by an
    unsigned one on the same connection gets its PUBACK first;
  - a flood: operator A's 6 gateways each publish an ES384-signed message
    (MQTT) and A's gateways post 6 more over HTTP, each verification made
    slow by the test hook SUIRO_TEST_SIG_DELAY_MS (A's share of the worker
    queue is 2 jobs at once, so A's messages wait there); meanwhile operator
    B's gateway publishes unsigned messages over MQTT and HTTP: all of B's
    are acknowledged and stored while A's are still waiting (checked by
    what has arrived, not by a clock), and then all of A's are stored.
    Were A's verification on the loop, the loop would be held by A's
    messages in the order they came and B's would be acknowledged after.
Ports are chosen at run time, the server is stopped by its PID, every wait
is bounded. usage: test_sig_offloop.py SUIRO_BIN"""
import json
import os
import select
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import srtest  # noqa: E402
from srtest import Api, Checks, RawGw, code, finish, gwsim_sheet, import_sheet, start_server, stop_server  # noqa: E402

BIN = sys.argv[1]
T = tempfile.mkdtemp(prefix="suiro-sigloop-")
D = os.path.join(T, "data")
check = Checks()
server = None
NA = 6          # operator A's gateways (each one signed message in flight over MQTT, one over HTTP)
DELAY_MS = 1500  # each verification of a gateway message (the test hook); A's share runs 2 at once
TS = [0]


def ts():
    TS[0] += 1
    n = TS[0]
    return "2026-11-22T%02d:%02d:%02d.%03dZ" % (n // 3600000 % 24, n // 60000 % 60, n // 1000 % 60, n % 1000)


def env(mid, body, prot=None):
    e = '{"header":{"messageType":"GW_MEASUREMENTS","messageId":"%s","timestamp":"2026-11-22T00:00:00.000Z"},' \
        '"body":%s' % (mid, body)
    if prot is not None:
        e += ',"protection":%s' % json.dumps(prot)
    return e + "}"


def body(point, v):
    return '{"values":[{"dataId":"%s","timestamp":"%s","value":%s}]}' % (point, ts(), v)


def metrics(port):
    st, text = Api(port).call("GET", "/metrics")
    out = {}
    for line in (text if isinstance(text, str) else "").splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.rpartition(" ")
            try:
                out[k] = float(v)
            except ValueError:
                pass
    return out


def sig(m, thread):
    return m.get('suiro_gw_sig_verify_total{thread="%s"}' % thread, 0)


def ingested(m, op):
    return m.get('suiro_messages_ingested_total{operator="%s"}' % op, 0)


def gw_http(port, op, gw):
    a = Api(port)
    st, b = a.call("POST", "/gw/v1/sessions", {"operatorId": op, "gatewayId": gw, "secret": "sim-secret-" + gw})
    check("%s/%s: GW-IF HTTP login" % (op, gw), st == 201, (st, b))
    a.token = b.get("token") if isinstance(b, dict) else None
    return a


try:
    subprocess.run([BIN, "init", D], check=True, capture_output=True)
    for op, n in (("opa", NA), ("opb", 1)):
        import_sheet(BIN, D, os.path.join(T, op + ".csv"), gwsim_sheet(BIN, n, 2, op))
    keys = {}
    for i in range(1, NA + 1):
        gw = "SIM%04d" % i
        keys[gw] = srtest.OpensslSigner(gw, 0x30 + i, T, alg="ES384")
        pem = os.path.join(T, gw + ".pem")
        open(pem, "w").write(keys[gw].pem)
        r = subprocess.run([BIN, "cert", "import", D, "--operator", "opa", "--gateway", gw, "--pem", pem],
                           capture_output=True, text=True)
        check("%s's ES384 certificate (openssl) registered offline" % gw, r.returncode == 0, r.stderr)
    server, ports = start_server(BIN, D, os.path.join(T, "server.log"),
                                 env=dict(os.environ, SUIRO_TEST_SIG_DELAY_MS=str(DELAY_MS)))
    hp, mp = ports["http"], ports["mqtt"]
    pa = {"SIM%04d" % i: "SP%04d_01" % i for i in range(1, NA + 1)}
    m0 = metrics(hp)
    check("the metric is there, 0 on both threads at start",
          'suiro_gw_sig_verify_total{thread="loop"}' in m0 and sig(m0, "loop") == 0 and sig(m0, "worker") == 0,
          {k: v for k, v in m0.items() if "sig_verify" in k})

    # ---- a signed message over MQTT and over HTTP: stored, verified on a worker
    g1 = RawGw(mp, "opa", "SIM0001", "sim-secret-SIM0001", v5=True, timeout=30)
    check("A's SIM0001 connected (MQTT 5)", g1.connack == 0, g1.connack)
    b = body(pa["SIM0001"], 1.5)
    rc = g1.publish_wait("data/measurements", env("s-mqtt", b, keys["SIM0001"].protection(b.encode())))
    check("a signed ES384 message over MQTT: PUBACK 0", rc == 0, rc)
    h1 = gw_http(hp, "opa", "SIM0001")
    b = body(pa["SIM0001"], 2.5)
    st, r = h1.call("POST", "/gw/v1/measurements", env("s-http", b, keys["SIM0001"].protection(b.encode())))
    check("a signed ES384 message over HTTP: 200 code 0", st == 200 and code(r) == "0", (st, r))
    b = body(pa["SIM0001"], 3.5)
    rc = g1.publish_wait("data/measurements", env("s-bad", b, keys["SIM0002"].protection(b.encode()) |
                                                  {"certId": keys["SIM0001"].cert_id}))
    check("a signature by another key (MQTT 5): PUBACK 0x99 (payload format invalid: refused)", rc == 0x99, rc)
    m1 = metrics(hp)
    check("the three verifications ran on the worker queue (suiro_gw_sig_verify_total{thread=worker} + 3)",
          sig(m1, "worker") == sig(m0, "worker") + 3, (sig(m0, "worker"), sig(m1, "worker")))
    check("... none on the loop", sig(m1, "loop") == 0, sig(m1, "loop"))
    check("the two good ones stored (suiro_messages_ingested_total{operator=opa} + 2)",
          ingested(m1, "opa") == ingested(m0, "opa") + 2, (ingested(m0, "opa"), ingested(m1, "opa")))

    # ---- a session's order: signed (on a worker) then unsigned (inline) -> PUBACKs in that order
    b1, b2 = body(pa["SIM0001"], 4.5), body(pa["SIM0001"], 5.5)
    g1.s.sendall(srtest.mqtt_publish(g1.root + "/data/measurements",
                                     env("o-1", b1, keys["SIM0001"].protection(b1.encode())), 101, 1, True) +
                 srtest.mqtt_publish(g1.root + "/data/measurements", env("o-2", b2), 102, 1, True))
    order = []
    while len(order) < 2:
        t, pk = srtest.mqtt_read(g1.s)
        if t == 4:
            order.append(int.from_bytes(pk[:2], "big"))
    check("signed then unsigned on one connection: PUBACKs in the order sent (101, 102)", order == [101, 102], order)

    # ---- the flood: A's signed messages wait on the worker queue; B's unsigned ones are acknowledged meanwhile
    ga = [g1] + [RawGw(mp, "opa", "SIM%04d" % i, "sim-secret-SIM%04d" % i, v5=True, timeout=60)
                 for i in range(2, NA + 1)]
    check("A's %d gateways connected" % NA, all(g.connack == 0 for g in ga), [g.connack for g in ga])
    gb = RawGw(mp, "opb", "SIM0001", "sim-secret-SIM0001", v5=False, timeout=60)
    check("B's gateway connected (MQTT 3.1.1)", gb.connack == 0, gb.connack)
    hb = gw_http(hp, "opb", "SIM0001")
    ha = [gw_http(hp, "opa", "SIM%04d" % i) for i in range(1, NA + 1)]
    mb = metrics(hp)
    for i, g in enumerate(ga):
        gw = "SIM%04d" % (i + 1)
        bb = body(pa[gw], 6.0 + i)
        g.s.sendall(srtest.mqtt_publish(g.root + "/data/measurements",
                                        env("f-%d" % i, bb, keys[gw].protection(bb.encode())), 200 + i, 1, True))
    http_done = []

    def post_a(i):
        gw = "SIM%04d" % (i + 1)
        bb = body(pa[gw], 20.0 + i)
        st, r = ha[i].call("POST", "/gw/v1/measurements", env("fh-%d" % i, bb, keys[gw].protection(bb.encode())))
        http_done.append((st, code(r)))
    threads = [threading.Thread(target=post_a, args=(i,)) for i in range(NA)]
    for t in threads:
        t.start()
    # B: 5 unsigned messages over MQTT, one after the other, and 5 over HTTP
    b_mqtt = [gb.publish_wait("data/measurements", env("b-%d" % k, body("SP0001_01", 40 + k))) for k in range(5)]
    b_http = [hb.call("POST", "/gw/v1/measurements", env("bh-%d" % k, body("SP0001_02", 50 + k))) for k in range(5)]
    # what of A's had been answered when B's last answer came
    ready = select.select([g.s for g in ga], [], [], 0)[0]
    a_http_then = len(http_done)
    mid = metrics(hp)
    check("B's 5 unsigned MQTT messages were PUBACKed", b_mqtt == [0] * 5, b_mqtt)
    check("B's 5 unsigned HTTP messages were answered 200 code 0",
          all(st == 200 and code(r) == "0" for st, r in b_http), b_http)
    check("B's 10 stored (suiro_messages_ingested_total{operator=opb} + 10)",
          ingested(mid, "opb") == ingested(mb, "opb") + 10, (ingested(mb, "opb"), ingested(mid, "opb")))
    check("... while A's signed messages still waited on the worker queue (not all of A's %d MQTT and %d HTTP "
          "messages answered: %d and %d were)" % (NA, NA, len(ready), a_http_then),
          len(ready) + a_http_then < 2 * NA, (len(ready), a_http_then))
    # then all of A's complete
    acks = []
    for i, g in enumerate(ga):
        while True:
            t, pk = srtest.mqtt_read(g.s)
            if t == 4:
                acks.append((int.from_bytes(pk[:2], "big"), pk[2] if len(pk) > 2 else 0))
                break
    for t in threads:
        t.join(60)
    check("then every one of A's MQTT messages is PUBACKed 0", acks == [(200 + i, 0) for i in range(NA)], acks)
    check("... and every one of A's HTTP messages answered 200 code 0",
          sorted(http_done) == [(200, "0")] * NA, http_done)
    m2 = metrics(hp)
    check("A's %d stored" % (2 * NA), ingested(m2, "opa") == ingested(mb, "opa") + 2 * NA,
          (ingested(mb, "opa"), ingested(m2, "opa")))
    check("all %d verifications of the flood on the worker queue, none on the loop" % (2 * NA),
          sig(m2, "worker") == sig(mb, "worker") + 2 * NA and sig(m2, "loop") == 0,
          (sig(mb, "worker"), sig(m2, "worker"), sig(m2, "loop")))
    for g in ga + [gb]:
        g.close()
finally:
    if server is not None:
        rc = stop_server(server)
        check("SIGTERM stops the server cleanly (exit 0)", rc == 0, rc)
    finish(check, T, [server])
