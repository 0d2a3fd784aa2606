#!/usr/bin/python3
"""tests/integration/test_retention.py -- retention (issue #16, R-ST-6,
docs/retention.md) end to end with the real `suiro`:

 1. Two operators (ra, rb), each with a data point of the default class
    (RP1) and one of class "short" (RP2, the sheet's retention_class
    column); the sheet's export through the Admin API carries the class.
 2. ra's periods through the Admin API: default 30 days, "short" 0 (for
    ever); GET shows them with the [retention] defaults. An audit period
    below [retention] audit_floor_days is a pending change (202) that a
    second admin approves; one above applies at once.
 3. Values from 2020 (old: a whole chunk each) and from now, sent by the
    gateways over MQTT; a sweep forced through POST /admin/v1/retention/run
    (as alice); then through the AP-IF: ra's RP1 has no 2020 values left,
    its new values and latest are there, its RP2 (class "short": for ever)
    keeps them; rb (no periods) keeps everything.
 4. The sweep's events are in the audit trail as alice's; after a restart
    the answers are the same, and `suiro verify` (the index equals a
    rebuild) passes on the stopped data directory.
usage: test_retention.py SUIRO_BIN"""
import json
import os
import subprocess
import sys
import tempfile
import time

BIN = sys.argv[1]
T = tempfile.mkdtemp(prefix="suiro-retention-")
D = os.path.join(T, "data")
LOG = os.path.join(T, "server.log")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import srtest  # noqa: E402
from srtest import Api, Checks, finish, start_server, stop_server  # noqa: E402

check = Checks()
procs = []


def sheet(op):
    return """#suiro-setup-sheet v1
[operator]
id,name
%(op)s,Operator %(op)s

[gateways]
id,name,secret
%(op)sG,Gateway,%(op)s-gw-secret

[apps]
id,name,secret,push_url
%(op)sA,Reader,%(op)s-app-secret,

[facilities]
id,name
%(op)sF,Plant

[equipment]
id,facility,name
%(op)sE,%(op)sF,Pumps

[devices]
id,equipment,gateway,name
%(op)sD,%(op)sE,%(op)sG,Controller

[datapoints]
id,device,name,type,unit,min,max,kind,retention_class
RP1,%(op)sD,Flow,number,m3/h,,,measure,
RP2,%(op)sD,Level,number,m,,,measure,short

[grants]
app,datapoint,access
%(op)sA,*,read
""" % {"op": op}


OLD = "2020-01-01T00:%02d:%02d.000Z"


def iso(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + ".%03dZ" % (ms % 1000)


def send(port, op, mid, vals):
    gw = srtest.RawGw(port, op, op + "G", op + "-gw-secret")
    b = ('{"header":{"messageType":"GW_MEASUREMENTS","messageId":"%s","timestamp":"%s"},"body":{"values":[' %
         (mid, iso(int(time.time() * 1000)))) + ",".join(
        '{"dataId":"%s","timestamp":"%s","value":%s}' % v for v in vals) + "]}}"
    rc = gw.publish_wait("data/measurements", b.encode())
    gw.close()
    return rc


def values(api, did, frm, to):
    st, b = api.call("GET", "/api/v1/stored-values?dataId=%s&from=%s&to=%s&limit=100000" % (did, frm, to))
    if st != 200:
        return None
    return b.get("values", b.get("data", []))


def latest(api, did):
    st, b = api.call("GET", "/api/v1/stored-values/latest?dataId=%s" % did)
    return b.get("values", []) if st == 200 else None


try:
    r = subprocess.run([BIN, "init", D, "--admin", "alice", "--second-admin", "bob"], check=True,
                       capture_output=True, text=True)
    temps = [ln.split(":", 1)[1].strip() for ln in r.stdout.splitlines() if ln.startswith("temporary password:")]
    for op in ("ra", "rb"):
        srtest.import_sheet(BIN, D, os.path.join(T, op + ".csv"), sheet(op))
    cfg = os.path.join(T, "suiro.ini")
    with open(cfg, "w") as f:
        f.write("[engine]\ndata_dir = %s\n[mqtt]\nlisten = 127.0.0.1:0\n[http]\nlisten = 127.0.0.1:0\n"
                "[retention]\nsweep_interval_s = 0\naudit_floor_days = 365\n" % D)
    srv, ports = start_server(BIN, D, LOG, config=cfg)
    procs.append(srv)
    hp, mp = ports["http"], ports["mqtt"]
    alice = srtest.admin_session(hp, "alice", temps[0], "alices-own-password-1")
    bob = srtest.admin_session(hp, "bob", temps[1], "bobs-own-password-22")
    # ra's two operator admins (setup.manage on ra; the second approves the first's privilege changes)
    ra1 = srtest.admin_new_user(hp, alice, "ra1", "operator", "ra", ["operator_admin"], "ra1-own-password-1", bob)
    ra2 = srtest.admin_new_user(hp, alice, "ra2", "operator", "ra", ["operator_admin"], "ra2-own-password-2", bob)

    # ---- 1. the class in the sheet, through the Admin API
    st, text = ra1.call("GET", "/admin/v1/operators/ra/sheet")
    text = text if isinstance(text, str) else json.dumps(text)
    check("the exported sheet has the retention_class column and RP2's class",
          st == 200 and "kind,retention_class" in text and ",measure,short" in text, (st, text[-300:]))

    st, b = ra1.call("PUT", "/admin/v1/operators/ra/masters/datapoints/RP3",
                     {"device": "raD", "type": "number", "retentionClass": "gold"})
    check("a data point's class through the Admin API (retentionClass)", st in (200, 201), (st, b))
    st, b = ra1.call("GET", "/admin/v1/operators/ra/masters/datapoints")
    items = {x["id"]: x for x in b.get("items", [])} if st == 200 else {}
    check("... read back with the masters", items.get("RP3", {}).get("retentionClass") == "gold"
          and items.get("RP2", {}).get("retentionClass") == "short" and "retentionClass" not in items.get("RP1", {}),
          (st, b))
    st, b = ra1.call("PUT", "/admin/v1/operators/ra/masters/datapoints/RP4",
                     {"device": "raD", "type": "number", "retentionClass": "audit"})
    check("a reserved class is refused naming the field", st == 400 and "retention" in json.dumps(b).lower(), (st, b))

    # ---- 2. periods
    st, b = ra1.call("PUT", "/admin/v1/operators/ra/retention/default", {"days": 30})
    check("ra's default period: 30 days", st == 200 and b.get("days") == 30, (st, b))
    st, b = ra1.call("PUT", "/admin/v1/operators/ra/retention/short", {"days": 0})
    check("ra's class short: for ever", st == 200, (st, b))
    st, b = ra1.call("PUT", "/admin/v1/operators/ra/retention/default", {"days": -1})
    check("a negative period is refused naming days", st == 400 and "days" in json.dumps(b), (st, b))
    st, b = ra1.call("PUT", "/admin/v1/operators/ra/retention/message_ids", {"days": 3})
    check("message_ids is not an operator's class", st == 400 and "class" in json.dumps(b), (st, b))
    st, b = ra1.call("PUT", "/admin/v1/operators/ra/retention/audit", {"days": 400})
    check("an audit period above the floor applies at once", st == 200, (st, b))
    st, p = ra1.call("PUT", "/admin/v1/operators/ra/retention/audit", {"days": 10})
    check("an audit period below the floor is a pending change (202)", st == 202 and p.get("pendingId"), (st, p))
    st, b = ra1.call("GET", "/admin/v1/operators/ra/retention")
    per = {x["class"]: x["days"] for x in b.get("periods", [])} if st == 200 else {}
    check("... which changes nothing yet", per.get("audit") == 400, (st, b))
    st, b = ra1.call("POST", "/admin/v1/pending/%s/approve" % p["pendingId"])
    check("the requester cannot approve it", st == 403, (st, b))
    st, b = ra2.call("POST", "/admin/v1/pending/%s/approve" % p["pendingId"])
    check("a second admin approves it", st == 200, (st, b))
    st, b = ra1.call("GET", "/admin/v1/operators/ra/retention")
    per = {x["class"]: x["days"] for x in b.get("periods", [])} if st == 200 else {}
    check("GET shows ra's periods and the defaults",
          st == 200 and per == {"default": 30, "short": 0, "audit": 10} and b["defaults"]["auditFloorDays"] == 365,
          (st, b))

    # ---- 3. old and new values; a forced sweep
    now = int(time.time() * 1000)
    for op in ("ra", "rb"):
        for did in ("RP1", "RP2"):
            old = [(did, OLD % (i // 60, i % 60), "%d.5" % i) for i in range(1100)]  # one whole chunk
            check("%s %s: old values acknowledged" % (op, did), send(mp, op, "o-%s-%s" % (op, did), old) == 0)
            new = [(did, iso(now - 60000 + i * 1000), "%d.25" % i) for i in range(5)]
            check("%s %s: new values acknowledged" % (op, did), send(mp, op, "n-%s-%s" % (op, did), new) == 0)
    apps = {}
    for op in ("ra", "rb"):
        apps[op] = Api(hp)
        check("%s's app logs in" % op, apps[op].login(op + "A", op, op + "-app-secret") == 201)
    FROM, TO = "2019-12-31T00:00:00.000Z", "2020-01-02T00:00:00.000Z"
    check("before the sweep ra's RP1 has its 2020 values", len(values(apps["ra"], "RP1", FROM, TO) or []) == 1100)
    st, b = bob.call("POST", "/admin/v1/retention/run")
    check("POST /admin/v1/retention/run needs tenants.manage: bob (a platform admin) may",
          st == 200 and b.get("chunks", 0) >= 1 and b.get("events", 0) >= 1, (st, b))

    def answers(tag):
        check("%s: ra's RP1 2020 values are gone" % tag, values(apps["ra"], "RP1", FROM, TO) == [])
        nv = values(apps["ra"], "RP1", iso(now - 3600000), iso(now + 3600000)) or []
        check("%s: ra's RP1 new values stay" % tag, len(nv) == 5, nv)
        lv = latest(apps["ra"], "RP1") or []
        check("%s: ra's RP1 latest stays" % tag, len(lv) == 1, lv)
        check("%s: ra's RP2 (class short, for ever) keeps its 2020 values" % tag,
              len(values(apps["ra"], "RP2", FROM, TO) or []) == 1100)
        for did in ("RP1", "RP2"):
            check("%s: rb's %s untouched" % (tag, did), len(values(apps["rb"], did, FROM, TO) or []) == 1100)
    answers("after the sweep")

    # ---- 4. the audit trail, a restart, verify
    st, b = ra1.call("GET", "/admin/v1/audit/events?operator=ra&kind=retention&actor=bob")
    evs = b.get("events", b.get("items", [])) if st == 200 else []
    check("the sweep's events are bob's in the audit trail", st == 200 and len(evs) >= 1, (st, b))
    check("the server stops cleanly", stop_server(srv) == 0)
    procs.remove(srv)
    v = subprocess.run([BIN, "verify", D], capture_output=True, text=True)
    check("suiro verify passes after retention (the index equals a rebuild)", v.returncode == 0,
          (v.stdout[-400:], v.stderr[-400:]))
    srv, ports = start_server(BIN, D, LOG, config=cfg)
    procs.append(srv)
    hp = ports["http"]
    for op in ("ra", "rb"):
        apps[op] = Api(hp)
        apps[op].login(op + "A", op, op + "-app-secret")
    answers("after a restart")
except Exception as e:  # noqa: BLE001
    check.failed(e)
finish(check, T, procs)
