#!/usr/bin/python3
"""tests/integration/test_logout_durable.py -- an HTTP logout (AP-IF
`DELETE /api/v1/sessions/current`, GW-IF `DELETE /gw/v1/sessions/current`)
is answered only once its SessionEvent is durable, and fails closed (issue
#18), through the real `suiro serve` on a small tmpfs (the full-disk seam of
test_gw_durable; skipped with a message where mount is not permitted):

 1. while the server can write: an app's and a gateway's logout are 204, and
    after a kill -9 both logouts are in the log (`suiro replay --kind
    session`, reason "logout") and the tokens are dead after the restart;
 2. with the disk full (the writer has failed, it cannot record anything):
    an app's and a gateway's logout are answered 503 E9001 saying the session
    is ended but its end could not be recorded -- never 204 -- and the token
    is dead at once all the same (401 E2001 on the next call: fail closed);
    the failure is logged ("app logout not recorded", "gateway logout not
    recorded").
usage: test_logout_durable.py SUIRO_BIN"""
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import srtest  # noqa: E402

BIN = sys.argv[1]
T = tempfile.mkdtemp(prefix="suiro-logout-")
check = srtest.Checks()
procs = []
APP = ("APP001", "demo", "demo-app001-secret")
GW = ("demo", "GW001", "demo-gw001-secret")


def fill(path):
    with open(path, "ab", buffering=0) as f:
        for blk in (b"\xa5" * 65536, b"\xa5" * 512):
            while True:
                try:
                    f.write(blk)
                except OSError:
                    break


def app_login(port):
    a = srtest.Api(port)
    st = a.login(*APP)
    return a if st == 201 else None


def gw_login(port):
    a = srtest.Api(port)
    st, b = a.call("POST", "/gw/v1/sessions", {"operatorId": GW[0], "gatewayId": GW[1], "secret": GW[2]})
    a.token = b.get("token") if st == 201 and isinstance(b, dict) else None
    return a if a.token else None


def app_alive(a):
    return a.call("GET", "/api/v1/stored-values/latest?dataId=P001")[0]


def gw_alive(g):
    return g.call("GET", "/gw/v1/certificates/platform/platform")[0]


def logouts(data):
    out = subprocess.run([BIN, "replay", data, "--kind", "session"], capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip() and '"logout"' in line]


# The writer retries a failed write every recover_ms and may resume with the
# disk still full (the failed group is cut back, and a small record fits in
# the slack of the log's last page): a logout after such a resume is stored
# and rightly 204. Phase 2 needs the writer to stay failed from the failed
# write to the two logouts, so it retries every 10 s, not every 50 ms.
RECOVER_MS = 10000


def start(data, log):
    p, ports = srtest.start_server(BIN, data, log, env=dict(os.environ, SUIRO_TEST_RECOVER_MS=str(RECOVER_MS)))
    procs.append(p)
    return p, ports


def phases(mnt):
    data = os.path.join(mnt, "data")
    subprocess.run([BIN, "init", "--demo", data], check=True, capture_output=True)
    log = os.path.join(T, "server.log")
    p, ports = start(data, log)
    hp = ports["http"]

    # 1. the server can write
    a, g = app_login(hp), gw_login(hp)
    check("an app and a gateway log in over HTTP (201)", a and g)
    st, b = a.call("DELETE", "/api/v1/sessions/current")
    check("the app's logout: 204", st == 204, (st, b))
    st, b = g.call("DELETE", "/gw/v1/sessions/current")
    check("the gateway's logout: 204", st == 204, (st, b))
    p.send_signal(signal.SIGKILL)
    p.wait()
    got = logouts(data)
    check("after kill -9 both logouts are in the log (answered once durable)",
          any(e.get("actor") == APP[0] for e in got) and any(e.get("actor") == GW[1] for e in got),
          json.dumps(got)[:600])
    p, ports = start(data, log)
    hp = ports["http"]
    check("... and after the restart the app's token is dead (401)", app_alive(srtest.Api(hp, a.token)) == 401)
    check("... and the gateway's token is dead (401)", gw_alive(srtest.Api(hp, g.token)) == 401)

    # 2. the disk full: nothing can be recorded
    a, g = app_login(hp), gw_login(hp)
    check("an app and a gateway log in again (201)", a and g)
    check("... their tokens work", a and g and app_alive(a) == 200 and gw_alive(g) == 200)
    log_at = os.path.getsize(log)
    filler = os.path.join(mnt, "filler")
    fill(filler)
    # 3000 values of distinct times and random digits: a record that cannot
    # fit in the slack of the log's last page (3000 values of one time
    # compressed small enough to be stored once at load 20: 200)
    rng = random.Random(7)
    body = json.dumps({"header": {"messageType": "GW_MEASUREMENTS", "messageId": "fill-1",
                                  "timestamp": "2026-11-22T00:00:00.000Z"},
                       "body": {"values": [{"dataId": "P001",
                                            "timestamp": "2026-11-22T%02d:%02d:%02d.000Z" % (i // 3600, i // 60 % 60, i % 60),
                                            "value": round(rng.uniform(0, 100), 2)} for i in range(3000)]}})
    st, _ = g.call("POST", "/gw/v1/measurements", body)
    check("the disk full: a gateway's write is not stored (503)", st == 503, st)
    failed = srtest.wait_until(lambda: "storage write failure" in open(log).read()[log_at:], 10)
    check("... the writer has failed (logged)", failed)
    st, b = a.call("DELETE", "/api/v1/sessions/current")
    check("the app's logout with the disk full: 503 E9001 'could not be recorded', not 204",
          st == 503 and srtest.code(b) == "E9001" and "could not be recorded" in json.dumps(b), (st, b))
    check("... the app's session is ended all the same (fail closed: 401)", app_alive(a) == 401)
    st, b = g.call("DELETE", "/gw/v1/sessions/current")
    check("the gateway's logout with the disk full: 503 E9001 'could not be recorded', not 204",
          st == 503 and srtest.code(b) == "E9001" and "could not be recorded" in json.dumps(b), (st, b))
    check("... the gateway's session is ended all the same (401)", gw_alive(g) == 401)
    txt = open(log).read()[log_at:]
    check("both failures are logged", "app logout not recorded" in txt and "gateway logout not recorded" in txt,
          txt[-800:])
    os.unlink(filler)
    srtest.wait_until(lambda: "storage writing resumed" in open(log).read()[log_at:], 2 * RECOVER_MS / 1000 + 10)
    p.send_signal(signal.SIGTERM)
    try:
        rc = p.wait(60)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = p.wait()
    check("a clean stop (exit 0)", rc == 0, rc)


try:
    mnt = os.path.join(T, "mnt")
    os.mkdir(mnt)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", mnt], capture_output=True, text=True)
    if r.returncode:
        print("skip: cannot mount a tmpfs here (%s)" % r.stderr.strip())
    else:
        try:
            phases(mnt)
        except Exception:
            import traceback
            check("the phases ran to the end", False, traceback.format_exc())
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            time.sleep(0)
            subprocess.run(["umount", "-l", mnt], capture_output=True)
finally:
    srtest.finish(check, T, procs)
