#!/usr/bin/python3
"""tests/integration/test_alarms_more.py -- the alarm rules value-out-of-range,
gateway-offline and fsync-latency (issue #17, R-MO-3; docs/monitoring.md
"Alarms") with the real `suiro`, its evaluator every second ([alarms]
interval_s = 1), a gateway over MQTT (srtest.RawGw, MQTT 5.0):

 1. value-out-of-range ([alarms] value_range_quiet_s = 2): GW001 sends P001
    = 9999 (its master: 0 .. 5000): refused (PUBACK reason >= 0x80, nothing
    stored) and demo gets a warning of subject P001 naming GW001 and the
    maximum; a second refusal while it is open is no new alarm; an in-range
    value is stored, and the rule resolves the alarm after the quiet period.
 2. gateway-offline ([alarms] gateway_offline_s = 2): GW001 disconnects:
    after 2 s offline demo gets a minor alarm of subject GW001; GW001
    connects again: the rule resolves it.
 3. fsync-latency ([alarms] fsync_latency_ms = 100): restarted with the test
    hook SUIRO_TEST_FSYNC_DELAY_MS = 300 (each fdatasync of the log 300 ms
    slower): a value stored, the platform's warning raised, naming the p99;
    restarted without the hook, a value stored: the rule resolves it.
 3b. value-out-of-range over HTTP: GW001 posts P001 = 7777: 400 E1001, a
    second alarm of P001 naming the message.
 4. Every step is an AlarmEvent in the log (`suiro replay --kind alarm`).
usage: test_alarms_more.py SUIRO_BIN"""
import json
import os
import subprocess
import sys
import tempfile
import time

BIN = sys.argv[1]
SHM = "/dev/shm"
T = tempfile.mkdtemp(prefix="suiro-alarms-more-", dir=SHM if os.path.isdir(SHM) else None)
D = os.path.join(T, "data")
LOG = os.path.join(T, "server.log")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import srtest  # noqa: E402
from srtest import Checks, finish, start_server, stop_server, wait_until  # noqa: E402

check = Checks()
procs = []


def alarms(api, query=""):
    st, b = api.call("GET", "/admin/v1/alarms" + query)
    return b.get("alarms") if st == 200 and isinstance(b, dict) else None


def one(api, rule, state=None):
    """the newest alarm of rule (in state), or None"""
    got = [a for a in (alarms(api, "?rule=" + rule) or []) if state is None or a["state"] == state]
    return got[-1] if got else None


def value(g, mid, v, ahead_s=0):
    ts = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() - 5 + ahead_s))
    return g.publish_wait("data/measurements", srtest.gw_envelope(
        "GW_MEASUREMENTS", mid, {"values": [{"dataId": "P001", "timestamp": ts, "value": v, "quality": "GOOD"}]}))


def gw(port):
    return srtest.RawGw(port, "demo", "GW001", "demo-gw001-secret", v5=True)


try:
    temps = srtest.init_with_admins(BIN, D, demo=True, second="bob")
    cfg = os.path.join(T, "suiro.ini")
    with open(cfg, "w") as f:
        f.write("[engine]\ndata_dir = %s\n[mqtt]\nlisten = 127.0.0.1:0\n[http]\nlisten = 127.0.0.1:0\n"
                "[alarms]\ninterval_s = 1\ndisk_free_warning_pct = 0\ndisk_free_minor_pct = 0\ndisk_free_major_pct = 0\n"
                "clock_sync_check = 0\nclock_jump_ms = 0\nselfcheck_interval_s = 0\n"
                "fsync_latency_ms = 100\ngateway_offline_s = 2\nvalue_range_quiet_s = 2\n" % D)
    srv, ports = start_server(BIN, D, LOG, config=cfg)
    procs.append(srv)
    hp = ports["http"]
    alice = srtest.admin_session(hp, "admin", temps[0], "alices-own-password-1")
    bob = srtest.admin_session(hp, "bob", temps[1], "bobs-own-password-22")
    da = srtest.admin_new_user(hp, alice, "da1", "operator", "demo", ["operator_admin"], "da1-own-password-1", bob)

    # ---- 1. value-out-of-range
    g = gw(ports["mqtt"])
    check("GW001 connects (MQTT 5.0)", g.connack == 0, g.connack)
    rc = value(g, "vr-1", 9999)
    check("P001 = 9999 (master 0 .. 5000): refused (PUBACK reason >= 0x80)", rc >= 0x80, rc)
    check("value-out-of-range: raised for P001, an alarm of demo",
          wait_until(lambda: one(da, "value-out-of-range"), 20, 0.1), alarms(da))
    v = one(da, "value-out-of-range")
    check("... warning, subject P001, resolves itself, naming GW001 and the maximum",
          v["level"] == "warning" and v["subject"] == "P001" and v["operatorId"] == "demo" and v["autoResolve"] is True
          and "GW001" in v["message"] and "above the maximum 5000" in v["message"], v)
    check("the platform admin does not see demo's alarm",
          not [x for x in alarms(alice) if x["rule"] == "value-out-of-range"], alarms(alice))
    rc = value(g, "vr-2", -3)
    check("P001 = -3: refused as well", rc >= 0x80, rc)
    rc = value(g, "vr-3", 12.5)
    check("P001 = 12.5: stored (PUBACK 0)", rc == 0, rc)
    check("value-out-of-range: resolved by the rule after value_range_quiet_s without a refusal",
          wait_until(lambda: (one(da, "value-out-of-range") or {}).get("state") == "resolved", 20, 0.1), alarms(da))
    vs = alarms(da, "?rule=value-out-of-range")
    check("... one alarm for the two refusals, autoResolved by system",
          len(vs) == 1 and vs[0]["autoResolved"] is True and vs[0]["resolvedBy"] == "system", vs)

    # ---- 2. gateway-offline
    check("no gateway-offline alarm while GW001 is online", one(da, "gateway-offline") is None, alarms(da))
    g.close()
    check("gateway-offline: raised once GW001 is offline for longer than gateway_offline_s",
          wait_until(lambda: one(da, "gateway-offline"), 20, 0.1), alarms(da))
    o = one(da, "gateway-offline")
    check("... minor, subject GW001, of demo, the reason in its message",
          o["level"] == "minor" and o["subject"] == "GW001" and o["operatorId"] == "demo" and "disconnect" in o["message"], o)
    g = gw(ports["mqtt"])
    check("GW001 connects again", g.connack == 0, g.connack)
    check("gateway-offline: resolved by the rule once GW001 is online",
          wait_until(lambda: (one(da, "gateway-offline") or {}).get("state") == "resolved", 20, 0.1), alarms(da))
    o = one(da, "gateway-offline")
    check("... autoResolved, by system", o["autoResolved"] is True and o["resolvedBy"] == "system", o)
    check("fsync-latency: no alarm with fast fdatasyncs (tmpfs)", one(alice, "fsync-latency") is None, alarms(alice))
    g.close()
    rc = stop_server(srv)
    procs.remove(srv)
    check("the server stops cleanly (exit 0; under ASan: no leak, no error)", rc == 0, rc)

    # ---- 3. fsync-latency: each fdatasync 300 ms slower (the test hook); gateway-offline off from here on
    cfg2 = os.path.join(T, "suiro2.ini")
    with open(cfg) as f, open(cfg2, "w") as g2:
        g2.write(f.read().replace("gateway_offline_s = 2", "gateway_offline_s = 0"))
    cfg = cfg2
    srv, ports = start_server(BIN, D, LOG, config=cfg, env=dict(os.environ, SUIRO_TEST_FSYNC_DELAY_MS="300"))
    procs.append(srv)
    alice = srtest.admin_session(ports["http"], "admin", "alices-own-password-1")
    g = gw(ports["mqtt"])
    check("a value stored through the slow log", value(g, "fs-1", 20, 1) == 0)
    g.close()
    check("fsync-latency: raised (p99 over 100 ms)", wait_until(lambda: one(alice, "fsync-latency"), 30, 0.1),
          alarms(alice))
    fl = one(alice, "fsync-latency")
    check("... warning, the platform's, naming the p99",
          fl["level"] == "warning" and fl["operatorId"] == "" and "p99 is over" in fl["message"]
          and "threshold 100 ms" in fl["message"], fl)
    rc = stop_server(srv)
    procs.remove(srv)
    check("the server stops cleanly (exit 0; under ASan: no leak, no error)", rc == 0, rc)
    srv, ports = start_server(BIN, D, LOG, config=cfg)
    procs.append(srv)
    alice = srtest.admin_session(ports["http"], "admin", "alices-own-password-1")
    g = gw(ports["mqtt"])
    check("restarted without the hook: a value stored", value(g, "fs-2", 21, 2) == 0)
    g.close()
    check("fsync-latency: resolved by the rule (an interval of fast fdatasyncs)",
          wait_until(lambda: (one(alice, "fsync-latency") or {}).get("autoResolved") is True, 20, 0.1), alarms(alice))

    # value-out-of-range over the GW-IF's HTTP binding: a new alarm (the first is resolved)
    da = srtest.admin_session(ports["http"], "da1", "da1-own-password-1")
    st, _, body, _ = srtest.http_once(ports["http"], "POST", "/gw/v1/sessions",
                                      {"operatorId": "demo", "gatewayId": "GW001", "secret": "demo-gw001-secret"})
    tok = json.loads(body).get("token") if st == 201 else None
    ts = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() + 3))
    st, _, body, _ = srtest.http_once(ports["http"], "POST", "/gw/v1/measurements", srtest.gw_envelope(
        "GW_MEASUREMENTS", "vr-http", {"values": [{"dataId": "P001", "timestamp": ts, "value": 7777, "quality": "GOOD"}]}),
        tok)
    check("HTTP: P001 = 7777 refused (400 E1001)", st == 400 and srtest.code(json.loads(body)) == "E1001", (st, body))
    check("value-out-of-range: a second alarm of P001, raised by the HTTP refusal",
          wait_until(lambda: (one(da, "value-out-of-range") or {}).get("state") == "raised", 20, 0.1), alarms(da))
    v = one(da, "value-out-of-range")
    check("... naming the message vr-http and the value", "vr-http" in v["message"] and "7777" in v["message"]
          and len(alarms(da, "?rule=value-out-of-range")) == 2, alarms(da))
    rc = stop_server(srv)
    procs.remove(srv)
    check("the server stops cleanly (exit 0; under ASan: no leak, no error)", rc == 0, rc)

    # ---- 4. the log
    r = subprocess.run([BIN, "replay", D, "--kind", "alarm"], capture_output=True, text=True)
    steps = [(e["alarm"].get("rule"), e["alarm"].get("state"), e["alarm"].get("subject", ""))
             for e in (json.loads(ln) for ln in r.stdout.splitlines() if ln.strip())]
    want = {"value-out-of-range": [("raised", "P001"), ("resolved", "P001"), ("raised", "P001")],
            "gateway-offline": [("raised", "GW001"), ("resolved", "GW001")],
            "fsync-latency": [("raised", ""), ("resolved", "")]}
    got = {k: [(st, sub) for rule, st, sub in steps if rule == k] for k in want}
    check("every step is an AlarmEvent in the log, in order (per rule), and no other",
          r.returncode == 0 and got == want and len(steps) == 7, (r.returncode, steps, r.stderr))
except Exception as e:  # noqa: BLE001
    check.failed(e)
finally:
    finish(check, T, procs)
