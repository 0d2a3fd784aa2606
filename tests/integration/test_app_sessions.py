#!/usr/bin/python3
"""tests/integration/test_app_sessions.py -- AP-IF sessions survive a restart
of `suiro serve` (issue #13; docs/durability.md section 8, events.md
`session`): apps need not log in again.

 1. Two apps' sessions opened; one logged out (DELETE
    /api/v1/sessions/current): its token is refused at once.
 2. After a clean stop and start: the token issued before is accepted (the
    same answer as before), the logged-out one and an unknown one are not.
 3. After kill -9 (once a later command of the same operator was
    acknowledged, so the session's event is durable: one writer queue per
    operator): a session opened just before is accepted too; logging out
    then ends it for good (also across the next restart).
 4. The log keeps the SHA-256 of each token, never the token.
usage: test_app_sessions.py SUIRO_BIN"""
import hashlib
import os
import signal
import subprocess
import sys
import tempfile

BIN = sys.argv[1]
T = tempfile.mkdtemp(prefix="suiro-appsess-")
D = os.path.join(T, "data")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from srtest import Api, Checks, finish, start_server, stop_server  # noqa: E402

check = Checks()
server = None


def serve():
    p, ports = start_server(BIN, D, os.path.join(T, "server.log"))
    return p, ports["http"]


def monitors(port, token):
    """GET /api/v1/monitors with token: the status."""
    return Api(port, token).call("GET", "/api/v1/monitors")[0]


try:
    subprocess.run([BIN, "init", "--demo", D], check=True, capture_output=True)
    server, hp = serve()
    a, b = Api(hp), Api(hp)
    check("app logs in", a.login("APP001", "demo", "demo-app001-secret") == 201)
    check("a second session", b.login("APP001", "demo", "demo-app001-secret") == 201)
    check("the token works", monitors(hp, a.token) == 200)
    st, _ = b.call("DELETE", "/api/v1/sessions/current")
    check("logout", st == 204, st)
    check("a logged-out token is refused", monitors(hp, b.token) == 401)

    check("clean stop", stop_server(server) == 0)
    server, hp = serve()
    check("after a restart, the token issued before is accepted", monitors(hp, a.token) == 200)
    check("after a restart, the logged-out token is still refused", monitors(hp, b.token) == 401)
    check("an unknown token is refused", monitors(hp, "ab" * 32) == 401)

    c = Api(hp)
    check("a session opened before kill -9", c.login("APP001", "demo", "demo-app001-secret") == 201)
    st, _ = c.call("POST", "/api/v1/documents/notes", {"n": 1})  # acknowledged once durable
    check("a later command of the operator is acknowledged", st == 201, st)
    server.send_signal(signal.SIGKILL)
    server.wait()
    server, hp = serve()
    check("after kill -9, the session is accepted", monitors(hp, c.token) == 200)
    check("after kill -9, the first session still is", monitors(hp, a.token) == 200)
    st, _ = Api(hp, a.token).call("DELETE", "/api/v1/sessions/current")
    check("logout after the restarts", st == 204, st)
    check("clean stop", stop_server(server) == 0)
    server, hp = serve()
    check("a session logged out stays out across a restart", monitors(hp, a.token) == 401)
    check("the other one is still in", monitors(hp, c.token) == 200)
    check("clean stop", stop_server(server) == 0)
    server = None

    r = subprocess.run([BIN, "replay", D, "--kind", "session"], capture_output=True, text=True)
    out = r.stdout
    check("replay of the session events", r.returncode == 0 and out.count("\n") >= 5, r.stderr)
    check("no token is in the log", not any(t in out for t in (a.token, b.token, c.token)))
    hashes = [hashlib.sha256(t.encode()).digest() for t in (a.token, b.token, c.token)]
    import base64
    forms = [(h.hex(), base64.b64encode(h).decode()) for h in hashes]
    check("the tokens' hashes are", all(x in out or y in out for x, y in forms), out[:600])
except Exception as e:  # noqa: BLE001
    check("no exception: %r" % (e,), False)
finally:
    finish(check, T, [server])
