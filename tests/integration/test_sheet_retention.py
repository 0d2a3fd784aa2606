#!/usr/bin/python3
"""tests/integration/test_sheet_retention.py -- an operator's retention
periods in the set-up sheet's [retention] section (issue #16,
docs/setup-sheet.md, docs/retention.md), end to end with the real `suiro`:

 1. Offline: `suiro sheet import` of a sheet with [retention] (audit above
    the floor, default, a data point's class) is imported; one that
    shortens the audit period below the built-in floor (365) is refused
    naming the line and the Admin API's path, and changes nothing; with
    --config, that file's [retention] audit_floor_days is the floor (a bad
    file is a usage error).
 2. Server ([retention] audit_floor_days = 400): GET
    /admin/v1/operators/{op}/retention shows the sheet's periods; the
    sheet's export through the Admin API writes them back.
 3. POST .../sheet with [retention] changed: a period changes, one the
    listed section leaves out is removed (named in "removed"); a bad row
    (message_ids, days out of range, a duplicate) is 400 naming the line
    and the column, nothing stored.
 4. POST .../sheet shortening the audit period below the floor: a pending
    change (202) of the two-person rule, nothing applied; the requester
    cannot approve it, a second operator admin does, and GET shows it.
    Importing the same sheet again stores nothing and asks nobody.
usage: test_sheet_retention.py SUIRO_BIN"""
import os
import subprocess
import sys
import tempfile

BIN = sys.argv[1]
T = tempfile.mkdtemp(prefix="suiro-sheetret-")
D = os.path.join(T, "data")
LOG = os.path.join(T, "server.log")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import srtest  # noqa: E402
from srtest import Checks, finish, start_server  # noqa: E402

check = Checks()
procs = []
OPS = "/admin/v1/operators/sr"

BASE = """#suiro-setup-sheet v1
[operator]
id,name
sr,Operator sr

[gateways]
id,name,secret
srG,Gateway,sr-gw-secret-1

[facilities]
id,name
srF,Plant

[equipment]
id,facility,name
srE,srF,Pumps

[devices]
id,equipment,gateway,name
srD,srE,srG,Controller

[datapoints]
id,device,name,type,unit,min,max,kind,retention_class
RP1,srD,Flow,number,m3/h,,,measure,
RP2,srD,Level,number,m,,,measure,short
"""


def with_periods(rows):
    return BASE + "\n[retention]\nclass,days\n" + "".join("%s,%s\n" % r for r in rows)


def periods(api):
    st, b = api.call("GET", OPS + "/retention")
    return st, ({x["class"]: x["days"] for x in b.get("periods", [])} if st == 200 else b)


try:
    r = subprocess.run([BIN, "init", D, "--admin", "alice", "--second-admin", "bob"], check=True,
                       capture_output=True, text=True)
    temps = [ln.split(":", 1)[1].strip() for ln in r.stdout.splitlines() if ln.startswith("temporary password:")]

    # ---- 1. offline
    first = with_periods([("audit", 3650), ("default", 30), ("short", 0), ("documents", 90)])
    srtest.import_sheet(BIN, D, os.path.join(T, "first.csv"), first)
    low = with_periods([("audit", 10), ("default", 30), ("short", 0), ("documents", 90)])
    path = os.path.join(T, "low.csv")
    with open(path, "w") as f:
        f.write(low)
    r = subprocess.run([BIN, "sheet", "import", path, D], capture_output=True, text=True)
    line = low.splitlines().index("audit,10") + 1
    check("offline: an audit period below the floor is refused, naming the line and the Admin API",
          r.returncode != 0 and ("line %d: [retention] audit,10 is below the audit floor of 365 days" % line) in r.stderr
          and "Admin API" in r.stderr and "nothing imported" in r.stderr, (r.returncode, r.stderr))
    lowcfg = os.path.join(T, "low.ini")
    with open(lowcfg, "w") as f:
        f.write("[retention]\naudit_floor_days = 5\n")
    r = subprocess.run([BIN, "sheet", "import", "--config", lowcfg, path, D], capture_output=True, text=True)
    check("offline with --config: that configuration's floor (5 days) lets audit,10 in", r.returncode == 0,
          (r.returncode, r.stderr))
    with open(lowcfg, "w") as f:
        f.write("[retention]\naudit_floor_days = many\n")
    r = subprocess.run([BIN, "sheet", "import", "--config", lowcfg, path, D], capture_output=True, text=True)
    check("offline with a bad --config: a usage error naming the key, nothing imported",
          r.returncode == 2 and "audit_floor_days" in r.stderr, (r.returncode, r.stderr))
    srtest.import_sheet(BIN, D, os.path.join(T, "first.csv"), first)  # back to 3650: raising needs nobody

    # ---- 2. the server
    cfg = os.path.join(T, "suiro.ini")
    with open(cfg, "w") as f:
        f.write("[engine]\ndata_dir = %s\n[mqtt]\nlisten = 127.0.0.1:0\n[http]\nlisten = 127.0.0.1:0\n"
                "[retention]\nsweep_interval_s = 0\naudit_floor_days = 400\n" % D)
    srv, ports = start_server(BIN, D, LOG, config=cfg)
    procs.append(srv)
    hp = ports["http"]
    alice = srtest.admin_session(hp, "alice", temps[0], "alices-own-password-1")
    bob = srtest.admin_session(hp, "bob", temps[1], "bobs-own-password-22")
    sr1 = srtest.admin_new_user(hp, alice, "sr1", "operator", "sr", ["operator_admin"], "sr1-own-password-1", bob)
    sr2 = srtest.admin_new_user(hp, alice, "sr2", "operator", "sr", ["operator_admin"], "sr2-own-password-2", bob)

    st, per = periods(sr1)
    check("GET retention shows the offline sheet's periods (the refused one changed nothing)",
          st == 200 and per == {"audit": 3650, "default": 30, "short": 0, "documents": 90}, (st, per))
    st, text, _ = sr1.call("GET", OPS + "/sheet", raw=True)
    text = text.decode()
    check("the export writes [retention] back, sorted by class",
          st == 200 and "\n[retention]\nclass,days\naudit,3650\ndefault,30\ndocuments,90\nshort,0\n" in text,
          (st, text[-200:]))

    # ---- 3. changes through the Admin API's import
    st, b = sr1.call("POST", OPS + "/sheet", with_periods([("audit", 3650), ("default", 60), ("short", 0)]),
                     headers={"Content-Type": "text/csv"})
    check("POST sheet: a period changed, one left out removed",
          st == 200 and b.get("stored") == 2 and "retention period documents" in b.get("removed", ""), (st, b))
    st, per = periods(sr1)
    check("... GET shows it", st == 200 and per == {"audit": 3650, "default": 60, "short": 0}, (st, per))
    bad = with_periods([("audit", 3650), ("message_ids", 3), ("default", 36501), ("short", 1), ("short", 2)])
    st, b = sr1.call("POST", OPS + "/sheet", bad)
    errs = sorted((e["line"], e["column"]) for e in (b or {}).get("result", {}).get("detail", {}).get("errors", []))
    n = len(bad.splitlines())
    check("POST sheet with bad [retention] rows: 400, each named by line and column",
          st == 400 and errs == [(n - 3, "class"), (n - 2, "days"), (n, "class")], (st, b))
    st, per = periods(sr1)
    check("... nothing stored", per == {"audit": 3650, "default": 60, "short": 0}, per)

    # ---- 4. the audit floor: the two-person rule
    short = with_periods([("audit", 100), ("default", 60), ("short", 0)])
    st, p = sr1.call("POST", OPS + "/sheet", short)
    check("POST sheet shortening the audit period below the floor: a pending change (202)",
          st == 202 and p.get("pendingId"), (st, p))
    st, per = periods(sr1)
    check("... which applies nothing yet", per.get("audit") == 3650, per)
    st, b = sr1.call("POST", "/admin/v1/pending/%s/approve" % (p or {}).get("pendingId"))
    check("the requester cannot approve it", st == 403, (st, b))
    st, b = sr2.call("POST", "/admin/v1/pending/%s/approve" % (p or {}).get("pendingId"))
    check("a second operator admin approves it", st == 200, (st, b))
    st, per = periods(sr1)
    check("... and GET shows the audit period", per == {"audit": 100, "default": 60, "short": 0}, (st, per))
    st, b = sr1.call("POST", OPS + "/sheet", short)
    check("the same sheet again: nothing stored, nobody asked", st == 200 and b.get("stored") == 0, (st, b))
    st, b = sr1.call("POST", OPS + "/sheet", with_periods([("audit", 500), ("default", 60), ("short", 0)]))
    check("an audit period above the floor applies at once", st == 200 and b.get("stored") == 1, (st, b))
except Exception as e:  # noqa: BLE001
    check.failed(e)
finish(check, T, procs)
