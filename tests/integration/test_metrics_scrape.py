#!/usr/bin/python3
"""tests/integration/test_metrics_scrape.py -- GET /metrics, /health and /ready of the
real `suiro serve` (issue #17, R-MO-2; docs/monitoring.md "Metrics and
health"): `suiro gwsim` sends values over MQTT, the scrape's ingest counters
move by exactly what was sent, a refused message shows under its code,
`promtool check metrics` (Debian's prometheus package) passes on the output,
a real Prometheus server started here on loopback scrapes the [metrics]
listener and its query API returns the ingest counter; /metrics on the [http]
listener needs the token of [metrics] token_file (401 without, 200 with);
/ready is 200 once serving and 503 while the server drains after SIGTERM.
usage: test_metrics_scrape.py SUIRO_BIN"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

BIN = sys.argv[1]
T = tempfile.mkdtemp(prefix="suiro-metrics-")
D = os.path.join(T, "data")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from srtest import Api, Checks, free_port, gwsim_sheet, import_sheet, paho_client, start_server, stop_server, wait_until  # noqa: E402

check = Checks()
procs = []
TOKEN = "metrics-token-0123456789abcdef"


def get(port, path, token=None):
    """(status, body text) of GET http://127.0.0.1:port/path."""
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path))
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (urllib.error.URLError, ConnectionError, OSError):
        return 0, ""


def samples(text):
    """{'name{labels}': value} of an exposition."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


def config(path, extra=""):
    with open(path, "w") as f:
        f.write("[engine]\ndata_dir = %s\n[mqtt]\nlisten = 127.0.0.1:0\n[http]\nlisten = 127.0.0.1:0\n"
                "[metrics]\nlisten = 127.0.0.1:0\ntoken_file = %s\n%s" % (D, os.path.join(T, "token"), extra))
    return path


def gwsim(mqtt_port, *args):
    return subprocess.run([BIN, "gwsim", "run", "--port", str(mqtt_port)] + list(args),
                          capture_output=True, text=True, timeout=120)


try:
    subprocess.run([BIN, "init", "--demo", D], check=True, capture_output=True)
    import_sheet(BIN, D, os.path.join(T, "sim.csv"), gwsim_sheet(BIN, 2, 5, "sim"))
    with open(os.path.join(T, "token"), "w") as f:
        f.write(TOKEN + "\n")
    srv, ports = start_server(BIN, None, os.path.join(T, "server.log"), config=config(os.path.join(T, "s.ini")),
                              until="metrics")
    procs.append(srv)
    mp, hp, qp = ports["metrics"], ports["http"], ports["mqtt"]

    # ---- /health, /ready, access ----------------------------------------
    check("/health 200 on the [metrics] listener", get(mp, "/health")[0] == 200)
    check("/ready 200 once serving (metrics listener and [http] listener)",
          get(mp, "/ready")[0] == 200 and get(hp, "/ready")[0] == 200)
    st, body = get(hp, "/metrics")
    check("/metrics on the [http] listener without the token: 401 E2001", st == 401 and "E2001" in body, (st, body))
    st, body = get(hp, "/metrics", "wrong-token-0123456789abcdef")
    check("... with a wrong token: 401", st == 401, st)
    st, body = get(hp, "/metrics", TOKEN)
    check("... with the token of token_file: 200 and the exposition", st == 200 and "# TYPE suiro_ready gauge" in body,
          st)
    st, body = get(mp, "/metrics")
    check("/metrics on the [metrics] listener: 200 without a token", st == 200, st)
    check("an unknown path on the [metrics] listener: 404", get(mp, "/nope")[0] == 404)
    try:
        urllib.request.urlopen(urllib.request.Request("http://127.0.0.1:%d/metrics" % mp, data=b"x"), timeout=10)
        st = 200
    except urllib.error.HTTPError as e:
        st = e.code
    check("POST /metrics: 405", st == 405, st)

    before = samples(get(mp, "/metrics")[1])

    # ---- ingest: exactly what was sent -------------------------------------
    g = gwsim(qp, "--operator", "sim", "--gateways", "2", "--points", "5", "--batch", "10", "--messages", "15")
    check("gwsim: 30 messages of 10 values acknowledged", g.returncode == 0 and '"acked":30' in g.stdout,
          g.stdout[-300:] + g.stderr[-300:])
    after = samples(get(mp, "/metrics")[1])
    v0 = before.get('suiro_values_ingested_total{operator="sim"}', 0)
    v1 = after.get('suiro_values_ingested_total{operator="sim"}', 0)
    m1 = after.get('suiro_messages_ingested_total{operator="sim"}', 0) - \
        before.get('suiro_messages_ingested_total{operator="sim"}', 0)
    check("suiro_values_ingested_total{operator=sim} moved by exactly 300", v1 - v0 == 300, (v0, v1))
    check("suiro_messages_ingested_total{operator=sim} moved by exactly 30", m1 == 30, m1)
    check("group commits and fdatasyncs counted (histogram _count > 0)",
          after.get("suiro_group_commit_seconds_count", 0) > before.get("suiro_group_commit_seconds_count", 0) and
          after.get("suiro_fdatasync_seconds_count", 0) > before.get("suiro_fdatasync_seconds_count", 0) and
          after.get('suiro_fdatasync_seconds_bucket{le="+Inf"}') == after.get("suiro_fdatasync_seconds_count"))

    # a refused message: values of a point the gateway does not have (E1001)
    r0 = after.get('suiro_messages_refused_total{code="E1001"}', 0)
    c = paho_client("GW001")
    c.username_pw_set("demo/GW001", "demo-gw001-secret")
    acks = []
    c.on_publish = lambda cl, ud, mid: acks.append(mid)
    c.connect("127.0.0.1", qp)
    c.loop_start()
    msg = {"header": {"messageType": "GW_MEASUREMENTS", "messageId": "m-refused-1", "gatewayId": "GW001",
                      "timestamp": "2026-01-01T00:00:00Z"},
           "body": {"values": [{"dataId": "NO-SUCH-POINT", "value": 1, "timestamp": "2026-01-01T00:00:00Z"}]}}
    info = c.publish("wip/v1/demo/gw/GW001/data/measurements", json.dumps(msg), qos=1)
    wait_until(lambda: info.mid in acks, 10)
    c.loop_stop()
    c.disconnect()
    after2 = samples(get(mp, "/metrics")[1])
    check("a refused message counts under its code: suiro_messages_refused_total{code=E1001} + 1",
          after2.get('suiro_messages_refused_total{code="E1001"}', 0) == r0 + 1,
          (r0, after2.get('suiro_messages_refused_total{code="E1001"}')))
    check("... and no value of operator demo counted as ingested",
          after2.get('suiro_values_ingested_total{operator="demo"}', 0) ==
          after.get('suiro_values_ingested_total{operator="demo"}', 0))

    # an app's session: connections{kind=apps}; the gateways logged off again
    a0 = after2.get('suiro_connections{kind="apps"}', 0)
    check("app login", Api(hp).login("APP001", "demo", "demo-app001-secret") == 201)
    after3 = samples(get(mp, "/metrics")[1])
    check("suiro_connections{kind=apps} + 1 after an app's login",
          after3.get('suiro_connections{kind="apps"}') == a0 + 1, (a0, after3.get('suiro_connections{kind="apps"}')))
    check("suiro_connections{kind=gateways} back to 0 once gwsim and the MQTT client left",
          wait_until(lambda: samples(get(mp, "/metrics")[1]).get('suiro_connections{kind="gateways"}') == 0, 10))
    check("the writer queue of operator sim is listed, empty",
          after3.get('suiro_writer_queue_depth{operator="sim"}') == 0)

    # a monitor, by state: GW002 of demo played by gwsim --answer
    gwp = subprocess.Popen([BIN, "gwsim", "run", "--port", str(qp), "--operator", "demo", "--gateway-id", "GW002",
                            "--secret", "demo-gw002-secret", "--messages", "0", "--answer", "--sheet", "demo",
                            "--duration", "60"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(gwp)
    app = Api(hp)
    app.login("APP001", "demo", "demo-app001-secret")
    check("gwsim's GW002 is logged in", wait_until(lambda: samples(get(mp, "/metrics")[1]).get(
        'suiro_connections{kind="gateways"}') == 1, 15))
    st, b = app.call("POST", "/api/v1/monitors", {"dataIds": ["P006"], "intervalMs": 1000})
    check("a monitor started (201)", st == 201, (st, b))
    check("suiro_monitors{state=RUNNING} = 1 once the gateway acknowledged it",
          wait_until(lambda: samples(get(mp, "/metrics")[1]).get('suiro_monitors{state="RUNNING"}') == 1, 15),
          samples(get(mp, "/metrics")[1]))
    app.call("DELETE", "/api/v1/monitors/" + (b or {}).get("monitorId", "x"))
    check("... and STOPPED = 1, RUNNING = 0 once stopped",
          wait_until(lambda: (lambda m: m.get('suiro_monitors{state="STOPPED"}') == 1 and
                              m.get('suiro_monitors{state="RUNNING"}') == 0)(samples(get(mp, "/metrics")[1])), 15))
    stop_server(gwp, sig=signal.SIGINT)

    # ---- promtool ------------------------------------------------------------
    text = get(mp, "/metrics")[1]
    with open(os.path.join(T, "scrape.txt"), "w") as f:
        f.write(text)
    promtool = shutil.which("promtool")
    check("promtool is installed (Debian's prometheus package: scripts/deps.sh)", promtool is not None)
    if promtool:
        p = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
        check("promtool check metrics passes on the output", p.returncode == 0, p.stdout + p.stderr)
    for name in ("suiro_values_ingested_total", "suiro_messages_refused_total", "suiro_writer_queue_depth",
                 "suiro_group_size_commands", "suiro_group_commit_seconds", "suiro_fdatasync_seconds",
                 "suiro_connections", "suiro_requests", "suiro_monitors", "suiro_push_queued",
                 "suiro_push_dropped_total", "suiro_lmdb_map_used_bytes", "suiro_log_bytes", "suiro_blob_bytes",
                 "suiro_disk_free_bytes", "process_cpu_seconds_total", "process_resident_memory_bytes",
                 "suiro_tls_handshake_failures_total", "suiro_login_failures_total"):
        check("the exposition has " + name, ("# TYPE %s " % name) in text)
    check("log bytes and RSS are read (non-zero)", samples(text).get("suiro_log_bytes", 0) > 0 and
          samples(text).get("process_resident_memory_bytes", 0) > 0)

    # a wrong password: a login failure
    l0 = samples(text).get('suiro_login_failures_total{reason="wrong_secret"}', 0)
    g = gwsim(qp, "--operator", "sim", "--gateways", "1", "--points", "5", "--messages", "1", "--secret", "wrong",
              "--duration", "3")
    check("a wrong gateway password counts in suiro_login_failures_total{reason=wrong_secret}",
          wait_until(lambda: samples(get(mp, "/metrics")[1]).get(
              'suiro_login_failures_total{reason="wrong_secret"}', 0) > l0, 10))

    # ---- a real Prometheus scrapes suiro --------------------------------------
    prom = shutil.which("prometheus")
    check("prometheus is installed (scripts/deps.sh)", prom is not None)
    if prom:
        pp = free_port()
        pcfg = os.path.join(T, "prometheus.yml")
        with open(pcfg, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n"
                    "  - job_name: suiro\n    static_configs:\n      - targets: ['127.0.0.1:%d']\n" % mp)
        pr = subprocess.Popen([prom, "--config.file=" + pcfg, "--storage.tsdb.path=" + os.path.join(T, "tsdb"),
                               "--web.listen-address=127.0.0.1:%d" % pp],
                              stdout=subprocess.DEVNULL, stderr=open(os.path.join(T, "prometheus.log"), "w"))
        procs.append(pr)
        q = urllib.parse.quote('suiro_values_ingested_total{operator="sim"}')

        def queried():
            st, b = get(pp, "/api/v1/query?query=" + q)
            if st != 200:
                return None
            r = json.loads(b).get("data", {}).get("result", [])
            return float(r[0]["value"][1]) if r else None
        got = wait_until(lambda: queried() == v1, 60, 0.25)
        check("Prometheus's query API returns suiro_values_ingested_total{operator=sim} = what gwsim sent",
              got, (queried(), v1, open(os.path.join(T, "prometheus.log")).read()[-500:]))
        stop_server(pr)

    # ---- /ready 503 while stopping ------------------------------------------
    check("server stops cleanly", stop_server(srv) == 0)
    srv, ports = start_server(BIN, None, os.path.join(T, "server.log"), config=os.path.join(T, "s.ini"),
                              until="metrics", env=dict(os.environ, SUIRO_TEST_WRITER_DELAY_MS="3000"))
    procs.append(srv)
    mp, qp = ports["metrics"], ports["mqtt"]
    check("/ready 200 after a restart", get(mp, "/ready")[0] == 200)
    sim = subprocess.Popen([BIN, "gwsim", "run", "--port", str(qp), "--operator", "sim", "--gateways", "1",
                            "--points", "5", "--messages", "5", "--window", "1"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(sim)
    # a message in the writer (slowed): the server drains it after SIGTERM
    check("a gateway logged in, its messages going through the (slowed) writer", wait_until(lambda: samples(get(mp, "/metrics")[1]).get(
        'suiro_connections{kind="gateways"}', 0) == 1, 10))
    srv.send_signal(signal.SIGTERM)
    st = wait_until(lambda: get(mp, "/ready")[0] == 503, 10, 0.01)
    check("/ready 503 while the server drains after SIGTERM (and /health still 200)",
          st and get(mp, "/health")[0] == 200)
    try:
        rc = srv.wait(30)  # a second SIGTERM would kill it (the handler is off once stopping)
    except subprocess.TimeoutExpired:
        rc = None
    check("the server then stops by itself (exit 0)", rc == 0, rc)
except Exception as e:  # noqa: BLE001
    check.failed(e)
finally:
    for p in procs:
        stop_server(p)
    if not check.fails:
        shutil.rmtree(T, ignore_errors=True)
    else:
        print("kept", T)
sys.exit(check.summary())
