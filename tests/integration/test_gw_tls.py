#!/usr/bin/python3
"""tests/integration/test_gw_tls.py -- GW-IF over MQTT with TLS through the
real `suiro serve`: a test PKI made with the openssl command, then paho and
mosquitto_pub with a password, with a client certificate (its subject CN is
operatorId/gatewayId), with a certificate of another CA, with a certificate
of another gateway, without TLS on the TLS port; and a server that requires
client certificates. Servers run on loopback ports chosen at run time and
are stopped by PID. usage: test_gw_tls.py SUIRO_BIN"""
import json
import re
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading

import paho.mqtt.client as mqtt

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from srtest import Checks, paho_client, start_server, wait_until  # noqa: E402

BIN = sys.argv[1]
T = tempfile.mkdtemp(prefix="suiro-tls-")
D = os.path.join(T, "data")
P = os.path.join(T, "pki")
check = Checks()
servers = []


def sh(*args):
    subprocess.run(args, check=True, capture_output=True)


def make_ca(name):
    sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
       f"{P}/{name}.key", "-out", f"{P}/{name}.pem", "-days", "2", "-subj", f"/CN={name}")


def make_cert(name, cn, ca, server=False):
    sh("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
       f"{P}/{name}.key", "-out", f"{P}/{name}.csr", "-subj", f"/CN={cn}")
    args = ["openssl", "x509", "-req", "-in", f"{P}/{name}.csr", "-CA", f"{P}/{ca}.pem", "-CAkey", f"{P}/{ca}.key",
            "-CAcreateserial", "-out", f"{P}/{name}.pem", "-days", "2"]
    if server:
        open(f"{P}/ext", "w").write("subjectAltName=IP:127.0.0.1,DNS:localhost")
        args += ["-extfile", f"{P}/ext"]
    sh(*args)


def start(mode):
    cfg = f"{T}/suiro-{mode}.ini"
    open(cfg, "w").write(f"""[engine]
data_dir = {D}
[mqtt]
listen = 127.0.0.1:0
tls_listen = 127.0.0.1:0
tls_cert = {P}/srv.pem
tls_key = {P}/srv.key
tls_ca = {P}/ca.pem
tls_client_cert = {mode}
[http]
listen = 127.0.0.1:0
tls_cert = {P}/srv.pem
tls_key = {P}/srv.key
tls_ca = {P}/ca.pem
tls_client_cert = optional
[metrics]
listen = 127.0.0.1:0
""")
    p, ports = start_server(BIN, D, f"{T}/server.log", config=cfg, until="mqtts")
    servers.append(p)
    ports_seen.update(ports)
    return p, ports["mqtts"]


ports_seen = {}


def curl_https(method, path, body=None, token=None, plain=False, cert=None):
    port = ports_seen["https"]
    url = ("http" if plain else "https") + "://localhost:%d%s" % (port, path)
    args = ["curl", "-s", "-o", f"{T}/body", "-w", "%{http_code}", "--max-time", "10", "--resolve",
            "localhost:%d:127.0.0.1" % port, "--cacert", f"{P}/ca.pem", "-X", method, url]
    if body is not None:
        args += ["-H", "Content-Type: application/json", "--data-binary", body]
    if token:
        args += ["-H", "Authorization: Bearer " + token]
    if cert:
        args += ["--cert", f"{P}/{cert}.pem", "--key", f"{P}/{cert}.key"]
    r = subprocess.run(args, capture_output=True, text=True, timeout=20)
    try:
        b = open(f"{T}/body").read()
    except OSError:
        b = ""
    return r.stdout.strip(), b


def tls_failures(listener):
    """suiro_tls_handshake_failures_total{listener=...} of the running server's /metrics."""
    import urllib.request
    wait_until(lambda: "metrics" in ports_seen, 10)
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % ports_seen["metrics"], timeout=10).read().decode()
    m = re.search(r'^suiro_tls_handshake_failures_total\{listener="%s"\} (\d+)$' % listener, text, re.M)
    return int(m.group(1)) if m else None


def msg(mid, ts):
    return json.dumps({"header": {"messageType": "GW_MEASUREMENTS", "messageId": mid},
                       "body": {"values": [{"dataId": "P001", "timestamp": ts, "value": 1.25}]}})


def paho_connect(port, cid, user=None, pw=None, cert=None, key=None):
    done = threading.Event()
    res = {}
    c = paho_client(cid)
    if user:
        c.username_pw_set(user, pw)
    c.tls_set(ca_certs=f"{P}/ca.pem", certfile=cert, keyfile=key)

    def on_connect(cl, u, f, rc, props=None):
        res["rc"] = rc
        done.set()

    def on_disconnect(cl, u, rc, props=None):
        res.setdefault("rc", "disconnected")
        done.set()

    c.on_connect = on_connect
    c.on_disconnect = on_disconnect
    try:
        c.connect("127.0.0.1", port, 30)
    except (ssl.SSLError, OSError) as e:
        return None, "tls:" + type(e).__name__
    c.loop_start()
    done.wait(10)
    return c, res.get("rc")


def pub(port, cid, payload, *extra):
    r = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "--cafile", f"{P}/ca.pem", "-i", cid,
                        "-q", "1", "-t", f"wip/v1/demo/gw/{cid}/data/measurements", "-m", payload, *extra],
                       capture_output=True, timeout=20)
    return r.returncode


def stored():
    out = subprocess.run([BIN, "replay", D, "--kind", "measurements"], capture_output=True, text=True).stdout
    return [json.loads(l)["message_id"] for l in out.splitlines() if l.strip()]


try:
    os.makedirs(P)
    make_ca("ca")
    make_ca("rogue")
    make_cert("srv", "localhost", "ca", server=True)
    make_cert("gw1", "demo\\/GW001", "ca")
    make_cert("gw1rogue", "demo\\/GW001", "rogue")
    make_cert("app1", "demo\\/APP001", "ca")
    make_cert("app1rogue", "demo\\/APP001", "rogue")
    subprocess.run([BIN, "init", "--demo", D], check=True, capture_output=True)
    srv, port = start("optional")

    c, rc = paho_connect(port, "GW001", "demo/GW001", "demo-gw001-secret")
    check("TLS with a password (paho)", rc == 0, rc)
    if c:
        info = c.publish("wip/v1/demo/gw/GW001/data/measurements", msg("tls-1", "2026-11-22T00:00:01Z"), qos=1)
        info.wait_for_publish(10)
        check("... and its QoS 1 publish is acknowledged", info.is_published())
        c.disconnect()
        c.loop_stop()
    rc = pub(port, "GW001", msg("tls-2", "2026-11-22T00:00:02Z"), "--cert", f"{P}/gw1.pem", "--key", f"{P}/gw1.key")
    check("TLS with a client certificate and no password (mosquitto_pub)", rc == 0, rc)
    rc = pub(port, "GW002", msg("tls-3", "2026-11-22T00:00:03Z"), "--cert", f"{P}/gw1.pem", "--key", f"{P}/gw1.key")
    check("GW001's certificate cannot log in as GW002", rc != 0, rc)
    f0 = tls_failures("mqtts")
    rc = pub(port, "GW001", msg("tls-4", "2026-11-22T00:00:04Z"), "--cert", f"{P}/gw1rogue.pem", "--key",
             f"{P}/gw1rogue.key")
    check("a certificate of another CA is refused", rc != 0, rc)
    check("... a failed handshake: suiro_tls_handshake_failures_total{listener=mqtts} + 1",
          f0 is not None and tls_failures("mqtts") == f0 + 1, (f0, tls_failures("mqtts")))
    rc = pub(port, "GW001", msg("tls-5", "2026-11-22T00:00:05Z"), "-u", "demo/GW001", "-P", "wrong-password-x")
    check("a wrong password over TLS is refused", rc != 0, rc)
    r = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-i", "GW001", "-u", "demo/GW001", "-P",
                        "demo-gw001-secret", "-q", "1", "-t", "wip/v1/demo/gw/GW001/data/measurements", "-m",
                        msg("tls-6", "2026-11-22T00:00:06Z")], capture_output=True, timeout=20)
    check("plain MQTT on the TLS port fails", r.returncode != 0, r.returncode)
    # the HTTP listener with tls_cert speaks HTTPS: GW-IF and AP-IF over TLS
    st, b = curl_https("POST", "/gw/v1/sessions", '{"operatorId":"demo","gatewayId":"GW001","secret":"demo-gw001-secret"}')
    check("HTTPS: a gateway session over TLS (curl, verified server certificate)", st == "201" and "token" in b, (st, b))
    tok = json.loads(b)["token"] if st == "201" else ""
    st, b = curl_https("POST", "/gw/v1/measurements", msg("tls-h1", "2026-11-22T00:00:09Z"), tok)
    check("HTTPS: values are acknowledged once durable", st == "200" and '"code":"0"' in b, (st, b))
    st, b = curl_https("POST", "/api/v1/sessions", '{"operatorId":"demo","appId":"APP001","secret":"demo-app001-secret"}')
    check("HTTPS: AP-IF on the same listener", st == "201", (st, b))
    st, b = curl_https("GET", "/gw/v1/certificates/platform/platform", None, tok)
    check("HTTPS: the platform certificate", st == "200" and b.startswith("-----BEGIN CERTIFICATE-----"), (st, b[:60]))
    st, b = curl_https("POST", "/api/v1/sessions", "{}", cert="app1")
    check("HTTPS: an app's client certificate opens a session without a secret", st == "201" and "token" in b, (st, b))
    atok = json.loads(b)["token"] if st == "201" else ""
    st, b = curl_https("GET", "/api/v1/masters/facilities", None, atok)
    check("... and its token works", st == "200" and "F001" in b, (st, b))
    st, b = curl_https("POST", "/api/v1/sessions", '{"operatorId":"demo","appId":"APP002"}', cert="app1")
    check("HTTPS: ids that differ from the certificate's are refused (401 E2001)", st == "401" and "E2001" in b, (st, b))
    h0 = tls_failures("https")
    st, b = curl_https("POST", "/api/v1/sessions", "{}", cert="app1rogue")
    check("HTTPS: a certificate of another CA opens nothing", st != "201", (st, b))
    check("... a failed handshake: suiro_tls_handshake_failures_total{listener=https} + 1",
          h0 is not None and tls_failures("https") == h0 + 1, (h0, tls_failures("https")))
    st, b = curl_https("POST", "/api/v1/sessions", "{}")
    check("HTTPS: no certificate and no secret is 400 E1001", st == "400" and "E1001" in b, (st, b))
    st, b = curl_https("POST", "/gw/v1/sessions", "{}", plain=True)
    check("plain HTTP on the HTTPS listener gets no answer", st in ("000", "400"), st)
    check("the server is still up", srv.poll() is None)
    ids = stored()
    check("exactly the authenticated messages are stored", sorted(ids) == ["tls-1", "tls-2", "tls-h1"], ids)
    srv.send_signal(signal.SIGTERM)
    check("SIGTERM stops it cleanly", srv.wait(20) == 0)

    srv, port = start("require")
    rc = pub(port, "GW001", msg("tls-7", "2026-11-22T00:00:07Z"), "-u", "demo/GW001", "-P", "demo-gw001-secret")
    check("tls_client_cert = require refuses a client without a certificate", rc != 0, rc)
    rc = pub(port, "GW001", msg("tls-8", "2026-11-22T00:00:08Z"), "--cert", f"{P}/gw1.pem", "--key", f"{P}/gw1.key")
    check("... and accepts one with", rc == 0, rc)
    srv.send_signal(signal.SIGTERM)
    srv.wait(20)
finally:
    for p in servers:
        if p.poll() is None:
            p.kill()
            p.wait()
    if check.fails:
        print(open(f"{T}/server.log").read()[-3000:])
    shutil.rmtree(T, ignore_errors=True)

sys.exit(check.summary())
