#!/usr/bin/python3
"""tests/integration/test_gw_mqtt.py -- GW-IF over MQTT through the real
`suiro serve`, with real clients (python3-paho-mqtt 3.1.1 and 5.0,
mosquitto_pub). The server runs on a loopback port chosen at run time and is
stopped by its PID. usage: test_gw_mqtt.py SUIRO_BIN"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import paho.mqtt.client as mqtt

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from srtest import Checks, paho_client  # noqa: E402
import srtest  # noqa: E402

BIN = sys.argv[1]
T = tempfile.mkdtemp(prefix="suiro-gwmqtt-")
D = os.path.join(T, "data")
check = Checks()
server = None


def start_server():
    p, ports = srtest.start_server(BIN, D, os.path.join(T, "server.log"))
    return p, ports["mqtt"]


envelope = srtest.gw_envelope  # a GW-IF message as JSON text


def values(*vals):
    return {"values": [{"dataId": d, "timestamp": ts, "value": v} for d, ts, v in vals]}


class Gw:
    """A gateway client that records acks (GW_ACK on R/res/ack) and PUBACKs."""

    def __init__(self, port, gw, secret, v5=False, op="demo", subscribe=True):
        self.root = "wip/v1/%s/gw/%s" % (op, gw)
        self.acks = {}
        self.cv = threading.Condition()
        self.connack = None
        self.published = set()
        self.disconnected = False
        self.connects = 0   # CONNACKs: paho reconnects by itself after a takeover
        proto = mqtt.MQTTv5 if v5 else mqtt.MQTTv311
        self.c = paho_client(gw, proto)
        self.c.username_pw_set("%s/%s" % (op, gw), secret)
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message
        self.c.on_publish = self._on_publish
        self.c.on_disconnect = self._on_disconnect
        self.c.on_subscribe = self._on_subscribe
        self.suback = None
        self.c.connect("127.0.0.1", port, keepalive=30)
        self.c.loop_start()
        with self.cv:
            self.cv.wait_for(lambda: self.connack is not None or self.disconnected, 10)
        if subscribe and self.connack == 0:
            self.c.subscribe(self.root + "/res/#", qos=0)
            with self.cv:
                self.cv.wait_for(lambda: self.suback is not None, 10)

    def _on_connect(self, c, u, flags, rc, props=None):
        with self.cv:
            self.connack = rc if isinstance(rc, int) else rc.value
            self.connects += 1
            self.cv.notify_all()

    def _on_disconnect(self, c, u, rc, props=None):
        with self.cv:
            self.disconnected = True
            self.cv.notify_all()

    def _on_subscribe(self, c, u, mid, granted, props=None):
        with self.cv:
            self.suback = [g if isinstance(g, int) else g.value for g in granted]
            self.cv.notify_all()

    def _on_message(self, c, u, msg):
        m = json.loads(msg.payload)
        with self.cv:
            self.acks.setdefault(m["header"]["correlationId"], []).append(m["body"]["result"])
            self.cv.notify_all()

    def _on_publish(self, c, u, mid):
        with self.cv:
            self.published.add(mid)
            self.cv.notify_all()

    def send(self, suffix, payload, qos=1, topic=None):
        info = self.c.publish(topic or (self.root + "/" + suffix), payload, qos=qos)
        return info.mid

    def wait_ack(self, mid, n=1):
        with self.cv:
            self.cv.wait_for(lambda: len(self.acks.get(mid, [])) >= n, 10)
            return self.acks.get(mid, [])

    def wait_puback(self, mid):
        with self.cv:
            return self.cv.wait_for(lambda: mid in self.published, 10)

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def replay(kind):
    out = subprocess.run([BIN, "replay", D, "--kind", kind], capture_output=True, text=True).stdout
    return [json.loads(l) for l in out.splitlines() if l.strip()]


def stored_values():
    n = 0
    for ev in replay("measurements"):
        for p in ev["measurements"]["points"]:
            n += len(p["values"])
    return n


try:
    subprocess.run([BIN, "init", "--demo", D], check=True, capture_output=True)
    server, port = start_server()

    # 1. a good measurement: PUBACK and GW_ACK code 0, stored
    g1 = Gw(port, "GW001", "demo-gw001-secret")
    check("gateway GW001 connects with operatorId/gatewayId and its secret", g1.connack == 0, g1.connack)
    check("subscribing under its own root is granted", g1.suback == [0], g1.suback)
    mid = g1.send("data/measurements", envelope("GW_MEASUREMENTS", "m-1",
                                                values(("P001", "2026-11-22T00:00:00Z", 12.5),
                                                       ("P002", "2026-11-22T00:00:00Z", 0.42))))
    check("QoS 1 publish is PUBACKed", g1.wait_puback(mid))
    acks = g1.wait_ack("m-1")
    check("GW_ACK with code 0 arrives on R/res/ack", acks and acks[0]["code"] == "0", acks)
    check("both values are stored", stored_values() == 2, stored_values())

    # 2. the same messageId again: acknowledged again, stored once
    g1.send("data/measurements", envelope("GW_MEASUREMENTS", "m-1",
                                          values(("P001", "2026-11-22T00:00:00Z", 99.0))))
    acks = g1.wait_ack("m-1", 2)
    check("a repeated messageId is acknowledged again", len(acks) == 2 and acks[1]["code"] == "0", acks)
    check("... and stored once", stored_values() == 2, stored_values())

    # 3. bad values: each one named, nothing stored
    g1.send("data/measurements", envelope("GW_MEASUREMENTS", "m-2",
                                      values(("P001", "2026-11-22T00:00:01Z", "high"),
                                             ("P001", "2026-11-22T00:00:02Z", 13.0),
                                             ("NOPE", "2026-11-22T00:00:01Z", 1),
                                             ("P006", "2026-11-22T00:00:01Z", 1.0))))
    acks = g1.wait_ack("m-2")
    ok = acks and acks[0]["code"] == "E1001" and len(acks[0].get("detail", [])) == 3
    check("an invalid batch is refused with E1001 naming each bad value", ok, acks)
    check("nothing of the invalid batch is stored", stored_values() == 2, stored_values())

    # 3b. header.messageType is the topic's (sr_gw_kinds): a mismatch is E1001 naming it, nothing stored
    for mid, mtype, payload in [
            ("m-t1", "BOGUS", None),
            ("m-t2", "GW_PERIODIC_DATA", None),
            ("m-t3", "BOGUS", '{"header":{"messageType":"BOGUS","messageId":"m-t3"},"body":{"values":'
                              '[{"dataId":"P001","timestamp":"2026-11-22T00:00:03Z","value":1}]}}')]:
        g1.send("data/measurements", payload or envelope(mtype, mid, values(("P001", "2026-11-22T00:00:03Z", 1.0))))
        acks = g1.wait_ack(mid)
        check("messageType %s on data/measurements is refused E1001 naming header.messageType%s" %
              (mtype, " (the fast path's shape)" if payload else ""),
              acks and acks[0]["code"] == "E1001" and "header.messageType" in acks[0].get("message", ""), acks)
    big = values(*[("P001", "2026-11-22T01:%02d:%02d.%03dZ" % (i // 60000, i // 1000 % 60, i % 1000), 1.0)
                   for i in range(3000)])
    g1.send("data/measurements", envelope("BOGUS", "m-t6", big))  # over parse_inline_max: checked on a worker
    acks = g1.wait_ack("m-t6")
    check("messageType BOGUS on a message over parse_inline_max is refused E1001 naming header.messageType",
          acks and acks[0]["code"] == "E1001" and "header.messageType" in acks[0].get("message", ""), acks)
    check("... and none of them is stored", stored_values() == 2, stored_values())
    g1.send("status", envelope("GW_MEASUREMENTS", "m-t4", {"state": "ONLINE"}))
    acks = g1.wait_ack("m-t4")
    check("messageType GW_MEASUREMENTS on status is refused E1001 naming header.messageType",
          acks and acks[0]["code"] == "E1001" and "header.messageType" in acks[0].get("message", ""), acks)
    g1.send("status", envelope("GW_CONNECT", "m-t5", {"state": "ONLINE"}))
    acks = g1.wait_ack("m-t5")
    check("... and GW_CONNECT there is stored (code 0)", acks and acks[0]["code"] == "0", acks)

    # 4. not JSON
    g1.send("data/measurements", b"{not json")
    time.sleep(0.2)
    acks = g1.wait_ack("")
    check("malformed JSON gets E1002", acks and acks[-1]["code"] == "E1002", acks)

    # 5. wrong password
    bad = Gw(port, "GW002", "wrong-secret-xxxx", subscribe=False)
    check("a wrong password is refused (CONNACK 4)", bad.connack == 4, bad.connack)
    bad.close()
    srv_alive = server.poll() is None
    check("the server stays up", srv_alive)

    # 6. another gateway's and another operator's topics
    g2 = Gw(port, "GW002", "demo-gw002-secret", v5=True)
    check("MQTT 5.0 gateway connects", g2.connack == 0, g2.connack)
    with g2.cv:
        g2.suback = None  # before subscribing: the SUBACK may come back at once
    g2.c.subscribe("wip/v1/demo/gw/GW001/#", qos=0)
    with g2.cv:
        g2.cv.wait_for(lambda: g2.suback is not None, 10)
    check("subscribing to another gateway's root is refused (0x87)", g2.suback == [0x87], g2.suback)
    mid = g2.send(None, envelope("GW_MEASUREMENTS", "x-1", values(("P001", "2026-11-22T00:00:05Z", 1.0))),
                  topic="wip/v1/demo/gw/GW001/data/measurements")
    time.sleep(0.3)
    mid2 = g2.send(None, envelope("GW_MEASUREMENTS", "x-2", values(("P006", "2026-11-22T00:00:05Z", 1.0))),
                   topic="wip/v1/other/gw/GW002/data/measurements")
    time.sleep(0.3)
    check("publishing under another gateway's or operator's root stores nothing", stored_values() == 2,
          stored_values())
    mid = g2.send("data/measurements", envelope("GW_MEASUREMENTS", "g2-1",
                                                values(("P006", "2026-11-22T00:00:00Z", 3.3))))
    acks = g2.wait_ack("g2-1")
    check("GW002 stores its own value over 5.0", acks and acks[0]["code"] == "0", acks)

    # 6b. MQTT 5 topic alias: we advertise a maximum of 0, so using one is a protocol error
    from paho.mqtt.properties import Properties
    from paho.mqtt.packettypes import PacketTypes
    g3 = Gw(port, "GW002", "demo-gw002-secret", v5=True, subscribe=False)
    props = Properties(PacketTypes.PUBLISH)
    props.TopicAlias = 1
    g3.c.publish(g3.root + "/data/measurements", envelope("GW_MEASUREMENTS", "al-1",
                 values(("P006", "2026-11-22T00:00:09Z", 1.0))), qos=1, properties=props)
    with g3.cv:
        g3.cv.wait_for(lambda: g3.disconnected, 10)
    check("a 5.0 topic alias (maximum 0) gets the connection closed", g3.disconnected)
    g3.c.loop_stop()

    # 6c. a flood of connections: bad logins, half-open CONNECTs, idle sockets
    flood = []
    for i in range(150):
        try:
            fs = socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            continue
        if i % 3 == 0:   # a CONNECT with a wrong password (3.1.1), for an unknown gateway: checked like a
            # known one (api/loginguard.h); a known one would be in back-off from this address below
            user, pw = b"demo/GW009", b"nope-nope-nope"
            var = b"\x00\x04MQTT\x04\xc2\x00\x3c"
            pay = b"\x00\x05GW009" + len(user).to_bytes(2, "big") + user + len(pw).to_bytes(2, "big") + pw
            body = var + pay
            fs.sendall(bytes([0x10, len(body)]) + body)
        elif i % 3 == 1:  # half a CONNECT
            fs.sendall(b"\x10\x20\x00\x04MQ")
        flood.append(fs)
    mid = g1.send("data/measurements", envelope("GW_MEASUREMENTS", "m-flood",
                                                values(("P001", "2026-11-22T00:00:08Z", 8.0))))
    acks = g1.wait_ack("m-flood")
    check("a gateway is served during a flood of bad connections", acks and acks[0]["code"] == "0", acks)
    for fs in flood:
        fs.close()
    check("the server survives the flood", server.poll() is None)

    # 7. garbage on a raw socket: that connection is closed, others are unaffected
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"\x10\xff\xff\xff\xff\x7f garbage")
    s.settimeout(5)
    try:
        closed = s.recv(100) == b""
    except Exception:
        closed = True
    s.close()
    check("a malformed packet closes only that connection", closed)
    g1.send("data/measurements", envelope("GW_MEASUREMENTS", "m-3",
                                          values(("P001", "2026-11-22T00:00:03Z", 14.0))))
    acks = g1.wait_ack("m-3")
    check("other gateways keep working", acks and acks[0]["code"] == "0", acks)

    # 8. mosquitto_pub as a gateway
    g1_connects = g1.connects
    r = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-i", "GW001", "-u", "demo/GW001",
                        "-P", "demo-gw001-secret", "-q", "1", "-t", "wip/v1/demo/gw/GW001/data/measurements", "-m",
                        envelope("GW_MEASUREMENTS", "mp-1", values(("P001", "2026-11-22T00:00:04Z", 15.0)))],
                       capture_output=True, timeout=20)
    check("mosquitto_pub (QoS 1) succeeds", r.returncode == 0, r.stderr)
    check("... and its value is stored", stored_values() == 6, stored_values())
    sessions = [e["session"] for e in replay("session")]
    check("session takeover and connects are in the audit trail",
          any(x.get("state") == "SS_CONNECTED" and x["id"] == "GW001" for x in sessions))
    auths = replay("auth")
    check("the failed login is in the audit trail", any(not a["auth"].get("success") for a in auths), auths)

    # 8b. many packets in one read (api/server.c process: the bytes handled
    #     are moved out of the read buffer once, at the end): a small
    #     message, one over parse_inline_max (checked on a worker while the
    #     rest waits in the buffer), a small one and half of a fourth; then
    #     the rest of the fourth. Each is PUBACKed, in order, and stored.
    # g1 was taken over by mosquitto_pub and paho reconnects it by itself about a second later: closed
    # before that reconnect is done, a CONNECT it already sent could log in after the raw connection below
    # and take it over (a broken pipe in CI3). So it is closed once it is back (bounded).
    srtest.wait_until(lambda: g1.connects > g1_connects, 10, 0.05)
    g1.close()
    rs = socket.create_connection(("127.0.0.1", port), timeout=20)
    rs.sendall(srtest.mqtt_connect("GW001", "demo/GW001", "demo-gw001-secret"))
    check("a raw connection logs in (CONNACK 0)", srtest.mqtt_read(rs) == (2, b"\x00\x00"))
    topic = "wip/v1/demo/gw/GW001/data/measurements"
    big = values(*[("P001", "2026-11-22T02:%02d:%02d.%03dZ" % (i // 60000, i // 1000 % 60, i % 1000), 2.0)
                   for i in range(3000)])
    pk = [srtest.mqtt_publish(topic, envelope("GW_MEASUREMENTS", "rb-1", values(("P001", "2026-11-22T03:00:00Z", 1.0))), 1),
          srtest.mqtt_publish(topic, envelope("GW_MEASUREMENTS", "rb-2", big), 2),
          srtest.mqtt_publish(topic, envelope("GW_MEASUREMENTS", "rb-3", values(("P001", "2026-11-22T03:00:01Z", 3.0))), 3),
          srtest.mqtt_publish(topic, envelope("GW_MEASUREMENTS", "rb-4", values(("P001", "2026-11-22T03:00:02Z", 4.0))), 4)]
    check("... the second message is over parse_inline_max (64 KiB)", len(pk[1]) > 65536, len(pk[1]))
    rs.sendall(pk[0] + pk[1] + pk[2] + pk[3][:len(pk[3]) // 2])
    time.sleep(0.3)
    rs.sendall(pk[3][len(pk[3]) // 2:])
    pubacks = [srtest.mqtt_read(rs) for _ in range(4)]
    check("four messages in one write, one of them checked on a worker, the last split: PUBACKed in order",
          pubacks == [(4, bytes([0, i])) for i in range(1, 5)], pubacks)
    check("... and all of them stored", stored_values() == 6 + 3003, stored_values())
    rs.close()

    # 9. repeated failed logins for one gateway are throttled (no scrypt for
    #    each), while other gateways are unaffected
    g2.close()
    codes = []
    for i in range(7):
        b = Gw(port, "GW002", "wrong-secret-%02d" % i, subscribe=False)
        codes.append(b.connack)
        b.c.loop_stop()
    good = Gw(port, "GW002", "demo-gw002-secret", subscribe=False)
    check("after 5 failures even the right password is refused for a while (throttled)",
          good.connack not in (0, None), (codes, good.connack))
    good.c.loop_stop()
    other = Gw(port, "GW001", "demo-gw001-secret", subscribe=False)
    check("... other gateways still log in", other.connack == 0, other.connack)
    other.close()
    log = open(os.path.join(T, "server.log")).read()
    check("throttled logins are logged", "gateway login throttled" in log)
    g1.close()
except Exception as e:  # noqa: BLE001 -- a failed check then, so that the server's log below is shown
    check.failed(e)
finally:
    if server and server.poll() is None:
        server.send_signal(signal.SIGTERM)
        try:
            rc = server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            rc = -9
        check("SIGTERM stops the server cleanly (exit 0)", rc == 0, rc)
    if check.fails:
        print(open(os.path.join(T, "server.log")).read())
    shutil.rmtree(T, ignore_errors=True)

sys.exit(check.summary())
