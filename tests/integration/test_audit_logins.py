#!/usr/bin/python3
"""tests/integration/test_audit_logins.py -- logins in the audit trail and the
login throttle across restarts, through the real `suiro serve` (issue #14,
R-SE-5; api/loginguard.h, docs/admin.md "Audit").

 1. Every login path records its success, its failure and its logout as
    events with who, what and the source address: the app over HTTP
    (POST/DELETE /api/v1/sessions), the gateway over HTTP (POST/DELETE
    /gw/v1/sessions), the gateway over MQTT (CONNECT, DISCONNECT). A refusal
    by the throttle is an event too (method "throttle"), once per refusal
    period, not once per attempt.
 2. The throttle survives a restart: N failures from one address, a
    stored value acknowledged after them (so they are durable: the writer
    applies in order), then the server killed with SIGKILL and started
    again: the next attempt from that address is still 429 with
    Retry-After, while the right secret from a fresh address logs in; the
    same after a clean stop (SIGTERM). The serving line reports the rows
    read and the time taken (throttle_rows, throttle_ms).
 3. `suiro replay` shows the events with names ("audit": kind, actor kind,
    target, outcome).
usage: test_audit_logins.py SUIRO_BIN"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile

BIN = sys.argv[1]
T = tempfile.mkdtemp(prefix="suiro-auditlogins-")
D = os.path.join(T, "data")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from srtest import (OTHER_OPERATOR_SHEET, Checks, finish, free_port, http_once, import_sheet,  # noqa: E402
                    mqtt_connect, start_server, stop_server, wait_until)

check = Checks()
server = None
FREE = 5  # [login] free_failures (the default)


def call(port, method, path, body=None, src="127.0.0.1", token=None):
    st, r, data, _ = http_once(port, method, path, json.dumps(body) if body is not None else None, token=token,
                               source=src, timeout=60)
    try:
        b = json.loads(data) if data else None
    except ValueError:
        b = data.decode(errors="replace")
    return st, b, r.getheader("Retry-After")


def app_login(port, secret, src):
    return call(port, "POST", "/api/v1/sessions", {"operatorId": "other", "appId": "APPX", "secret": secret}, src)


def gw_login(port, secret, src):
    return call(port, "POST", "/gw/v1/sessions", {"operatorId": "other", "gatewayId": "GWX", "secret": secret}, src)


def mqtt_login(port, secret, src):
    """CONNECT from src; the CONNACK's return code (then DISCONNECT)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=60, source_address=(src, 0))
    try:
        s.sendall(mqtt_connect("GWX", "other/GWX", secret, keepalive=30))
        buf = b""
        while len(buf) < 4:
            d = s.recv(64)
            if not d:
                return None
            buf += d
        if buf[3] == 0:
            s.sendall(b"\xe0\x00")
            s.recv(64)  # the server closes after DISCONNECT
        return buf[3]
    finally:
        s.close()


def store_value(port, src, mid):
    """A value acknowledged as stored: every event queued before it is durable."""
    st, b, _ = gw_login(port, "other-gw-secret", src)
    tok = b["token"] if st == 201 else ""
    st, b, _ = call(port, "POST", "/gw/v1/measurements",
                    {"header": {"messageType": "GW_MEASUREMENTS", "messageId": mid},
                     "body": {"values": [{"dataId": "PX1", "timestamp": "2026-01-01T00:00:00Z", "value": 1.5}]}},
                    src, tok)
    return st


def replay():
    out = subprocess.run([BIN, "replay", D], capture_output=True, text=True, timeout=120).stdout
    return [json.loads(l) for l in out.splitlines() if l.strip()]


def serving_lines(log):
    return [l for l in open(log).read().splitlines() if 'msg="serving"' in l]


try:
    subprocess.run([BIN, "init", D], check=True, capture_output=True)
    import_sheet(BIN, D, os.path.join(T, "other.csv"), OTHER_OPERATOR_SHEET)
    log = os.path.join(T, "server.log")
    hp, mp = free_port(), free_port()
    server, ports = start_server(BIN, D, log, mqtt_port=mp, http_port=hp)

    # 1. each path: failure, success, logout
    st, _, _ = app_login(hp, "wrong", "127.0.0.2")
    check("app: a wrong secret is refused", st == 401, st)
    st, b, _ = app_login(hp, "other-app-secret", "127.0.0.2")
    check("app: the right secret logs in", st == 201, (st, b))
    st, _, _ = call(hp, "DELETE", "/api/v1/sessions/current", src="127.0.0.2", token=b["token"] if st == 201 else "")
    check("app: logout", st == 204, st)
    st, _, _ = gw_login(hp, "wrong", "127.0.0.3")
    check("gateway HTTP: a wrong secret is refused", st == 401, st)
    st, b, _ = gw_login(hp, "other-gw-secret", "127.0.0.3")
    check("gateway HTTP: the right secret logs in", st == 201, (st, b))
    st, _, _ = call(hp, "DELETE", "/gw/v1/sessions/current", src="127.0.0.3", token=b["token"] if st == 201 else "")
    check("gateway HTTP: logout", st == 204, st)
    rc = mqtt_login(mp, "wrong", "127.0.0.4")
    check("MQTT: a wrong password is refused (CONNACK %r)" % rc, rc in (4, 5), rc)
    check("MQTT: the right password connects", mqtt_login(mp, "other-gw-secret", "127.0.0.4") == 0)

    # 2. the throttle: FREE + 1 failures from 127.0.0.5, then refused
    for i in range(FREE + 1):
        app_login(hp, "wrong-%d" % i, "127.0.0.5")
    st, b, ra = app_login(hp, "wrong-x", "127.0.0.5")
    check("after %d failures the next attempt is throttled (429, Retry-After)" % (FREE + 1), st == 429 and ra, (st, b, ra))
    for i in range(20):  # hammering: refused, recorded as the back-off doubles, then once per period
        app_login(hp, "wrong-y", "127.0.0.5")
    check("a value stored after the failures (they are durable now)", store_value(hp, "127.0.0.6", "barrier-1") == 200)
    server.send_signal(signal.SIGKILL)
    server.wait()
    nserving = len(serving_lines(log))
    server, ports = start_server(BIN, D, log, mqtt_port=mp, http_port=hp)
    wait_until(lambda: len(serving_lines(log)) > nserving)
    line = serving_lines(log)[-1]
    rows = re.search(r"throttle_rows=(\d+)", line)
    ms = re.search(r"throttle_ms=([\d.]+)", line)
    check("the restart read the trail's logins back (serving line: %s rows in %s ms)"
          % (rows and rows.group(1), ms and ms.group(1)), rows and int(rows.group(1)) >= FREE + 1, line)
    st, b, ra = app_login(hp, "wrong-z", "127.0.0.5")
    check("after kill -9: the next attempt from that address is still throttled (429, Retry-After %s)" % ra,
          st == 429 and ra and int(ra) >= 1 and (b or {}).get("result", {}).get("code") == "E9002", (st, b, ra))
    st, b, _ = app_login(hp, "other-app-secret", "127.0.0.7")
    check("after kill -9: the right secret from a fresh address logs in", st == 201, (st, b))
    st, b, ra = app_login(hp, "other-app-secret", "127.0.0.5")
    check("after kill -9: the right secret from the throttled address is refused too (429)", st == 429, (st, b))
    rc = stop_server(server)
    check("the server stops cleanly", rc == 0, rc)
    server, ports = start_server(BIN, D, log, mqtt_port=mp, http_port=hp)
    st, b, ra = app_login(hp, "wrong-w", "127.0.0.5")
    check("after a clean restart: still throttled (429, Retry-After %s)" % ra, st == 429 and ra, (st, b, ra))
    st, b, _ = app_login(hp, "other-app-secret", "127.0.0.8")
    check("after a clean restart: a fresh address logs in", st == 201, (st, b))
    rc = stop_server(server)
    server = None

    # 3. the events, with names
    evs = replay()

    def au(e):
        return e.get("audit", {})

    def find(kind, actor_kind, src_prefix, action=None, outcome=None):
        return [e for e in evs if au(e).get("kind") == kind and au(e).get("actor_kind") == actor_kind
                and e.get("source", "").startswith(src_prefix) and (action is None or au(e).get("action") == action)
                and (outcome is None or au(e).get("outcome") == outcome)]
    check("app HTTP: the failed login is an event (source, refused)",
          find("login_failed", "app", "127.0.0.2", "password", "refused"), [au(e) for e in evs][:5])
    check("app HTTP: the login is an event (method secret)", find("login", "app", "127.0.0.2", "secret", "ok"))
    check("app HTTP: the logout is an event", find("logout", "app", "127.0.0.2", "disconnected"))
    check("gateway HTTP: the failed login", find("login_failed", "gateway", "127.0.0.3", "password"))
    check("gateway HTTP: the login and its session", find("login", "gateway", "127.0.0.3", "password")
          and find("session", "gateway", "127.0.0.3", "opened"))
    check("gateway HTTP: the logout", find("logout", "gateway", "127.0.0.3", "disconnected"))
    check("MQTT: the failed login", find("login_failed", "gateway", "127.0.0.4", "password"))
    check("MQTT: the login and the session", find("login", "gateway", "127.0.0.4", "password")
          and find("session", "gateway", "127.0.0.4", "opened"))
    check("MQTT: the disconnect", find("logout", "gateway", "127.0.0.4"))
    thr = find("login_failed", "app", "127.0.0.5", "throttle")
    check("throttle refusals are events, fewer than the refused attempts (%d for 24)" % len(thr),
          1 <= len(thr) < 24, [au(e) for e in thr])
    t0 = thr[0] if thr else {}
    check("a throttle event names the principal and its target",
          t0.get("actor") == "APPX" and t0.get("operator_id") == "other" and au(t0).get("target") == "app:APPX"
          and "throttled (backoff)" in au(t0).get("detail", ""), t0)
finally:
    pass

finish(check, T, [server])
