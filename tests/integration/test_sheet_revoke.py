#!/usr/bin/python3
"""tests/integration/test_sheet_revoke.py -- issue #11 item 4 through the real
binary: a set-up sheet imported without a grant row revokes the grant (one
RegistryDelete event), and the app is refused that data point after a server
restart; a sheet without the app removes the app (and its grants), so it can
no longer log in; re-importing the same sheet changes nothing.
usage: test_sheet_revoke.py SUIRO_BIN"""
import os
import signal
import subprocess
import sys
import tempfile

BIN = sys.argv[1]
T = tempfile.mkdtemp(prefix="suiro-revoke-")
D = os.path.join(T, "data")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from srtest import Api, Checks, code, finish, start_server  # noqa: E402

check = Checks()
server = None
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO = open(os.path.join(ROOT, "docs", "examples", "demo-sheet.csv"), encoding="utf-8").read()
APP_ROW = "APP001,Demo monitoring app,demo-app001-secret,http://127.0.0.1:9100/push\n"


def sheet(name, grants, with_appr=True):
    s = DEMO
    if with_appr:
        s = s.replace(APP_ROW, APP_ROW + "APPR,Read-only app,ro-app-secret,\n")
    s = s.replace("app,datapoint,access\nAPP001,*,both\n", "app,datapoint,access\nAPP001,*,both\n" + grants)
    p = os.path.join(T, name)
    open(p, "w", encoding="utf-8").write(s)
    return p


def imp(path):
    return subprocess.run([BIN, "sheet", "import", path, D], capture_output=True, text=True)


def serve():
    return start_server(BIN, D, os.path.join(T, "server.log"))


def stop(p):
    p.send_signal(signal.SIGTERM)
    return p.wait(30)


def latest(a, point):
    st, b = a.call("GET", "/api/v1/stored-values/latest?dataId=" + point)
    return st, code(b)


try:
    subprocess.run([BIN, "init", "--demo", D], check=True, capture_output=True)
    r = imp(sheet("both.csv", "APPR,P001,read\nAPPR,P006,read\n"))
    check("APPR is granted P001 and P006", r.returncode == 0, r.stderr)
    server, ports = serve()
    a = Api(ports["http"])
    check("APPR logs in", a.login("APPR", "demo", "ro-app-secret") == 201)
    check("APPR reads P001 while granted", latest(a, "P001")[0] == 200, latest(a, "P001"))
    check("APPR reads P006", latest(a, "P006")[0] == 200, latest(a, "P006"))
    check("the server stops cleanly", stop(server) == 0)
    server = None

    # the grant row for P001 is gone from the sheet: revoked
    p = sheet("one.csv", "APPR,P006,read\n")
    r = imp(p)
    check("importing the sheet without the grant row stores one change and says what it removed",
          r.returncode == 0 and "1 change(s) stored" in r.stdout and "removed 1: grant APPR:P001" in r.stdout,
          (r.returncode, r.stdout, r.stderr))
    rp = subprocess.run([BIN, "replay", D, "--kind", "registry_delete"], capture_output=True, text=True).stdout
    check("the revocation is an event in the log", "APPR:P001" in rp, rp[-400:])
    r = imp(p)
    check("importing it again changes nothing", r.returncode == 0 and "nothing changed" in r.stdout, r.stdout)
    exp = subprocess.run([BIN, "sheet", "export", D, "--operator", "demo"], capture_output=True, text=True).stdout
    check("the export no longer lists the grant", "APPR,P001" not in exp and "APPR,P006" in exp, exp[-300:])

    server, ports = serve()
    a = Api(ports["http"])
    check("APPR logs in after the restart", a.login("APPR", "demo", "ro-app-secret") == 201)
    st, c = latest(a, "P001")
    check("APPR is refused P001 after the restart (403 E2003)", st == 403 and c == "E2003", (st, c))
    st, c2 = latest(a, "NOPE1")
    check("a revoked point answers like an unknown one", (st, c2) == (403, c), (st, c2))
    check("APPR still reads P006", latest(a, "P006")[0] == 200, latest(a, "P006"))
    check("the server stops cleanly", stop(server) == 0)
    server = None

    # the app is left out of [apps] (and its grant out of [grants]): removed
    r = imp(sheet("noapp.csv", "", with_appr=False))
    check("importing the sheet without the app removes it", r.returncode == 0, r.stderr)
    server, ports = serve()
    a = Api(ports["http"])
    check("a removed app cannot log in", a.login("APPR", "demo", "ro-app-secret") == 401)
    b = Api(ports["http"])
    check("the other app is untouched", b.login("APP001", "demo", "demo-app001-secret") == 201 and
          latest(b, "P001")[0] == 200)
    check("the server stops cleanly", stop(server) == 0)
    server = None
finally:
    finish(check, T, [server])
