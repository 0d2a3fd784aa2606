#!/usr/bin/python3
"""tests/integration/test_sig_offloop_apif.py -- issue #18 (R-SE-3,
docs/signatures.md "Cost"): an app's signed control request (AP-IF
POST /api/v1/control-values with `protection`) is verified on the worker
queue, charged to its operator's share, never on the network loop -- the
same function as a gateway's message (api/sigcheck.h sr_sig_check_now) --
through the real `suiro serve` with an ES384 key (srtest.Signer):
  - a signed control request is verified (it reaches the broker: with its
    gateway offline the answer is the broker's 503 E4001), a
    tampered one is 422 E5001, one under an unregistered certificate 422
    E5003 -- the answers test_signatures checks in detail, unchanged;
  - every verification is counted in
    suiro_app_sig_verify_total{thread="worker"};
    suiro_app_sig_verify_total{thread="loop"} stays 0 for the whole run (the
    counter is bumped by the verification itself, on the thread it runs on);
  - a stream: N signed control requests, each verification made slow by the
    test hook SUIRO_TEST_SIG_DELAY_MS (the operator's share of the worker
    queue runs 2 at once, so they wait there); once two are being verified
    (the worker count says so), an unrelated AP-IF read of the same app
    (GET /api/v1/stored-values/latest) is answered while the control
    requests are still not all answered (checked by what has arrived, not
    by a clock). Were the verification on the loop, the loop would be held
    by the control requests in the order they came and the read would be
    answered after all of them.
Ports are chosen at run time, the server is stopped by its PID, every wait
is bounded. usage: test_sig_offloop_apif.py SUIRO_BIN"""
import json
import os
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import srtest  # noqa: E402
from srtest import Api, Checks, finish, start_server, stop_server  # noqa: E402

BIN = sys.argv[1]
T = tempfile.mkdtemp(prefix="suiro-sigloop-apif-")
D = os.path.join(T, "data")
check = Checks()
server = None
N = 6            # signed control requests in the stream
DELAY_MS = 1500  # each verification (the test hook); the operator's share runs 2 at once

app_key = srtest.Signer("APP001", 0x1A, alg="ES384")
other_key = srtest.Signer("APP001", 0x1B, alg="ES384")  # not the registered one


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
    return m.get('suiro_app_sig_verify_total{thread="%s"}' % thread, 0)


def code_of(js):
    if isinstance(js, dict):
        r = js.get("result") if isinstance(js.get("result"), dict) else js
        return r.get("code")
    return None


def control(port, token, value_text, prot, data_id="P007"):
    """POST /api/v1/control-values with value written exactly as value_text: (status, json)."""
    body = '{"dataId": "%s", "value": %s, "timeoutMs": 2000, "protection": %s}' % (data_id, value_text,
                                                                                   json.dumps(prot))
    st, r, data, _ = srtest.http_once(port, "POST", "/api/v1/control-values", body, token,
                                      {"Content-Type": "application/json"}, timeout=60)
    try:
        return st, json.loads(data)
    except ValueError:
        return st, data


try:
    srtest.init_with_admin(BIN, D, demo=True)
    pem = os.path.join(T, "APP001.pem")
    with open(pem, "w") as fh:
        fh.write(app_key.pem)
    r = srtest.subprocess.run([BIN, "cert", "import", D, "--operator", "demo", "--app", "APP001", "--pem", pem],
                              capture_output=True, text=True)
    check("APP001's ES384 certificate registered offline", r.returncode == 0, r.stderr)
    server, ports = start_server(BIN, D, os.path.join(T, "server.log"),
                                 env=dict(os.environ, SUIRO_TEST_SIG_DELAY_MS=str(DELAY_MS)))
    hp = ports["http"]
    app = Api(hp)
    st, b = app.call("POST", "/api/v1/sessions", {"appId": "APP001", "operatorId": "demo",
                                                 "secret": "demo-app001-secret"})
    check("app login", st == 201, (st, b))
    token = b.get("token") if isinstance(b, dict) else None
    app.token = token
    m0 = metrics(hp)
    check("the metric is there, 0 on both threads at start",
          'suiro_app_sig_verify_total{thread="loop"}' in m0 and sig(m0, "loop") == 0 and sig(m0, "worker") == 0,
          {k: v for k, v in m0.items() if "sig_verify" in k})

    # ---- the answers: verified, E5001, E5003 (through the worker queue)
    st, js = control(hp, token, "42.5", app_key.protection(b"42.5"))
    check("a signed control request is verified and reaches the broker: 503 E4001 (its gateway is not connected)",
          st == 503 and code_of(js) == "E4001", (st, js))
    st, js = control(hp, token, "43", app_key.protection(b"42.5"))
    check("tampered (43 under 42.5's signature): 422 E5001", st == 422 and code_of(js) == "E5001", (st, js))
    st, js = control(hp, token, "42.5", other_key.protection(b"42.5"))
    check("signed with a certificate not registered: 422 E5003", st == 422 and code_of(js) == "E5003", (st, js))
    m1 = metrics(hp)
    check("the three verifications ran on the worker queue (suiro_app_sig_verify_total{thread=worker} + 3)",
          sig(m1, "worker") == sig(m0, "worker") + 3, (sig(m0, "worker"), sig(m1, "worker")))
    check("... none on the loop", sig(m1, "loop") == 0, sig(m1, "loop"))

    # ---- the stream: N slow verifications wait on the worker queue; a read is answered meanwhile
    done = []
    lock = threading.Lock()

    def one(i):
        v = "%d.25" % (10 + i)
        st, js = control(hp, token, v, app_key.protection(v.encode()))
        with lock:
            done.append((st, code_of(js)))

    ths = [threading.Thread(target=one, args=(i,)) for i in range(N)]
    for th in ths:
        th.start()
    # until two verifications have started (counted as they start), bounded
    started = False
    for _ in range(600):
        if sig(metrics(hp), "worker") >= sig(m1, "worker") + 2:
            started = True
            break
        time.sleep(0.05)
    check("the stream's verifications started on the worker queue", started, sig(metrics(hp), "worker"))
    st, js = app.call("GET", "/api/v1/stored-values/latest?dataId=P001")
    with lock:
        answered_then = len(done)
    check("an unrelated read of the same app answered (200)", st == 200, (st, js))
    check("... while the signed control requests were still being verified (%d of %d answered)" % (answered_then, N),
          answered_then < N, answered_then)
    for th in ths:
        th.join(120)
    check("then every control request of the stream is verified and answered by the broker (503 E4001)",
          sorted(done) == [(503, "E4001")] * N, done)
    m2 = metrics(hp)
    check("all %d verifications of the stream on the worker queue, none on the loop" % N,
          sig(m2, "worker") == sig(m1, "worker") + N and sig(m2, "loop") == 0,
          (sig(m1, "worker"), sig(m2, "worker"), sig(m2, "loop")))
    check("the gateway side's counter is untouched by apps (suiro_gw_sig_verify_total 0)",
          m2.get('suiro_gw_sig_verify_total{thread="worker"}', 0) == 0 and
          m2.get('suiro_gw_sig_verify_total{thread="loop"}', 0) == 0,
          {k: v for k, v in m2.items() if "gw_sig_verify" in k})
finally:
    if server is not None:
        rc = stop_server(server)
        check("SIGTERM stops the server cleanly (exit 0)", rc == 0, rc)
    finish(check, T, [server])
