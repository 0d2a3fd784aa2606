"""tests/integration/srtest.py -- what the Python integration tests share:
checks that count, the real server started on ports chosen at run time (and
stopped by its PID), and an HTTP client for AP-IF / GW-IF on one keep-alive
connection. /usr/bin/python3 and the standard library only."""
import http.client
import json
import subprocess


class Checks:
    """ok:/FAIL: lines and the counts; exit_code() for sys.exit."""

    def __init__(self):
        self.passes = self.fails = 0

    def __call__(self, name, cond, extra=""):
        if cond:
            self.passes += 1
            print("ok:", name)
        else:
            self.fails += 1
            print("FAIL:", name, extra)
        return cond

    def summary(self):
        print("%d passed, %d failed" % (self.passes, self.fails))
        return 1 if self.fails else 0


def start_server(binary, data, log, mqtt_port=0, http_port=0, extra=()):
    """`suiro serve` on loopback; returns (process, {"mqtt": port, "http": port, ...})
    read from its `listening NAME=HOST:PORT` lines."""
    p = subprocess.Popen([binary, "serve", "--data", data, "--mqtt", "127.0.0.1:%d" % mqtt_port,
                          "--http", "127.0.0.1:%d" % http_port] + list(extra),
                         stdout=subprocess.PIPE, stderr=open(log, "a"), text=True)
    ports = {}
    while "http" not in ports and "https" not in ports:
        line = p.stdout.readline()
        if not line:
            raise RuntimeError("server did not start (see %s)" % log)
        k, v = line.strip().split(" ", 1)[1].split("=")
        ports[k] = int(v.rsplit(":", 1)[1])
    return p, ports


def code(body):
    """The interface.md result code of an answer body, or None."""
    return body.get("result", {}).get("code") if isinstance(body, dict) else None


class Api:
    """HTTP calls on one keep-alive connection, reconnecting once when the
    server closed an idle one. call() returns (status, JSON or text)."""

    def __init__(self, port, token=None):
        self.port = port
        self.token = token
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def _reconnect(self):
        self.c.close()
        self.c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)

    def call(self, method, path, body=None, headers=None, raw=False):
        h = dict(headers or {})
        if self.token:
            h["Authorization"] = "Bearer " + self.token
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        for attempt in (0, 1):
            try:
                self.c.request(method, path, body=body, headers=h)
                r = self.c.getresponse()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self._reconnect()
                if attempt:
                    raise
        data = r.read()
        if raw:
            return r.status, data, r
        try:
            return r.status, json.loads(data) if data else None
        except ValueError:
            return r.status, data.decode(errors="replace")

    def login(self, app, op, secret):
        st, b = self.call("POST", "/api/v1/sessions", {"appId": app, "operatorId": op, "secret": secret})
        if st == 201:
            self.token = b["token"]
        return st


def finish(check, tmp, procs, log_name="server.log"):
    """Stop what is still running (by PID), show the server's log when a
    check failed, remove the temporary directory, and exit with the verdict."""
    import os
    import shutil
    import sys
    for p in procs:
        if p is not None and p.poll() is None:
            p.kill()
            p.wait()
    if check.fails:
        try:
            print(open(os.path.join(tmp, log_name)).read()[-3000:])
        except OSError:
            pass
    shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(check.summary())
