#!/usr/bin/python3
"""tests/integration/test_audit_route.py -- the audit trail on the Admin API
(issue #14, R-SE-5; api/admin_audit.c, docs/admin.md "Audit"), end to end
with the real `suiro`:

 1. Who may read it (the role table's audit.read): the auditor every
    operator's and the platform's events; an operator admin its own
    operator's only (another operator named: 403, and that refusal is an
    event); a general user, a vendor admin and the platform admin: 403.
 2. The filters: time window (from, to), actor, operator, kind (one or a
    list), with names, not numbers (actorKind, kind, action, target,
    outcome, source); paging with limit and next/after covers every event
    once; bad inputs name the field (400 E1001).
 3. Refused admin operations are events (kind admin, outcome refused, the
    route, the path, the code), readable by the auditor and by the admin of
    the operator the path names.
 4. `suiro replay` shows them with names.
usage: test_audit_route.py SUIRO_BIN"""
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse

BIN = sys.argv[1]
T = tempfile.mkdtemp(prefix="suiro-auditroute-")
D = os.path.join(T, "data")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from srtest import (OTHER_OPERATOR_SHEET, Api, Checks, approve_if_pending, code, finish, http_once, import_sheet,  # noqa: E402
                    init_with_admins, start_server, stop_server, wait_until)

check = Checks()
server = None
EV = "/admin/v1/audit/events"


def login(hp, user, password):
    return Api(hp).call("POST", "/admin/v1/sessions", {"userId": user, "password": password})


def first_login(hp, user, temp_pw, new_pw):
    st, b = login(hp, user, temp_pw)
    api = Api(hp, b.get("token"))
    st2, b2 = api.call("PUT", "/admin/v1/me/password", {"currentPassword": temp_pw, "newPassword": new_pw})
    assert st == 201 and st2 == 204, (user, st, b, st2, b2)
    return api


def ms_of(t):   # an audit row's time (RFC 3339, Z) in UTC milliseconds
    return int(datetime.datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() * 1000)


def q(api, **params):
    st, b = api.call("GET", EV + ("?" + urllib.parse.urlencode(params) if params else ""))
    return st, b


def until(api, pred, **params):
    """q() until pred(items) holds (fire-and-forget events -- logins, refusals
    -- are stored just after their answer), at most 10 s; the last answer."""
    last = [None]

    def probe():
        last[0] = q(api, **params)
        return last[0][0] == 200 and pred(last[0][1]["items"])
    wait_until(probe, timeout=10)
    return last[0]


def all_pages(api, **params):
    """Every page of the query (limit as given); the items and the number of pages."""
    items, pages, after = [], 0, None
    while True:
        p = dict(params)
        if after:
            p["after"] = after
        st, b = q(api, **p)
        assert st == 200, (st, b)
        items += b["items"]
        pages += 1
        after = b.get("next")
        if not after or pages > 1000:
            return items, pages


try:
    temp, temp2 = init_with_admins(BIN, D, demo=True)
    import_sheet(BIN, D, os.path.join(T, "other.csv"), OTHER_OPERATOR_SHEET)
    server, ports = start_server(BIN, D, os.path.join(T, "server.log"))
    hp = ports["http"]
    admin = first_login(hp, "admin", temp, "the-admins-own-password-1")
    admin2 = first_login(hp, "admin2", temp2, "the-admins-own-password-2")  # approves admin's privilege changes
    st, b = admin.call("POST", "/admin/v1/vendors", {"id": "vend1", "name": "Vendor One", "kind": "ap"})
    assert st == 201, (st, b)
    made = {}
    for uid, roles, scope in (("aud", ["auditor"], {"kind": "platform"}),
                              ("vadm", ["ap_vendor_admin"], {"kind": "vendor", "id": "vend1"}),
                              ("oaO", ["operator_admin"], {"kind": "operator", "id": "other"}),
                              ("oaD", ["operator_admin"], {"kind": "operator", "id": "demo"}),
                              ("genO", ["operator_general"], {"kind": "operator", "id": "other"})):
        st, b = admin.call("POST", "/admin/v1/users", {"id": uid, "roles": roles, "scope": scope})
        password = b.get("password")
        st, b2 = approve_if_pending(admin2, st, b)
        assert st in (200, 201), (uid, st, b, b2)
        made[uid] = first_login(hp, uid, password, uid + "-password-12345")
    aud, oaO, oaD, genO = made["aud"], made["oaO"], made["oaD"], made["genO"]

    # events: an app's failed and good login of operator "other", from 127.0.0.2
    t_before_app = int(time.time() * 1000)
    time.sleep(0.01)
    for secret in ("wrong", "other-app-secret"):
        http_once(hp, "POST", "/api/v1/sessions",
                  json.dumps({"operatorId": "other", "appId": "APPX", "secret": secret}), source="127.0.0.2")
    # refused admin operations: a general user manages users; demo's admin reads other's user
    st, b = genO.call("GET", "/admin/v1/users")
    check("a general user may not list users (403)", st == 403, (st, b))
    st, b = oaD.call("GET", "/admin/v1/users/oaO")
    check("demo's admin may not read other's user (403)", st == 403, (st, b))

    # the fire-and-forget events are stored (then every query below sees them)
    until(aud, lambda it: len(it) == 2, actor="APPX", kind="login,login_failed")
    until(aud, lambda it: len(it) == 1, kind="admin", actor="genO")
    until(aud, lambda it: len(it) == 1, kind="admin", actor="oaD")

    # 1. who may read
    st, b = aud.call("GET", EV)
    check("the auditor reads the trail", st == 200 and b["items"], (st, b))
    ops = {e.get("operator") for e in b.get("items", [])}
    check("... every operator's and the platform's events", {"other", "demo", None} <= ops, ops)
    st, b = q(oaO)
    check("other's admin reads the trail", st == 200 and b["items"], (st, b))
    check("... its own operator's events only", {e.get("operator") for e in b["items"]} == {"other"},
          {e.get("operator") for e in b["items"]})
    st, b = q(oaO, operator="demo")
    check("... and naming another operator is 403 E2003 naming audit.read",
          st == 403 and code(b) == "E2003" and "audit.read" in b["result"]["message"], (st, b))
    st, b = q(oaO, operator="other")
    check("... naming its own is fine", st == 200 and b["items"], (st, b))
    st, b = q(genO)
    check("a general user may not read the trail (403)", st == 403 and code(b) == "E2003", (st, b))
    until(aud, lambda it: len(it) == 2, kind="admin", actor="genO")
    st, b = q(admin)
    check("the platform admin may not read the trail (403: audit.read is the auditor's)", st == 403, (st, b))
    st, b = q(made["vadm"])
    check("a vendor admin may not read the trail (403)", st == 403 and code(b) == "E2003", (st, b))
    st, b = q(made["vadm"], operator="other")
    check("... nor an operator's (403)", st == 403, (st, b))
    st, b = until(oaO, lambda it: any(e["actor"] == "vadm" for e in it), kind="admin")
    check("... and other's admin sees that refusal (the operator it named)",
          any(e["actor"] == "vadm" and e["target"] == EV for e in b["items"]), b["items"])
    st, b = http_once(hp, "GET", EV)[0], None
    check("no session: 401", st == 401, st)

    # the refusals above are stored before the counts and pages below
    until(aud, lambda it: len(it) == 1, kind="admin", actor="oaO")
    until(aud, lambda it: any(e["target"].startswith(EV) for e in it), kind="admin", actor="admin")
    until(aud, lambda it: len(it) == 2, kind="admin", actor="vadm")

    # 2. filters, names
    st, b = q(aud, actor="APPX")
    kinds = [(e["kind"], e["outcome"]) for e in b["items"]]
    # a login fails closed (issue #18): its session is recorded first, then
    # the login's own row
    check("actor=APPX: its failed login, then its session recorded, then its login",
          st == 200 and kinds[:3] == [("login_failed", "refused"), ("session", "done"), ("login", "ok")], kinds)
    e0 = b["items"][0] if b.get("items") else {}
    check("a row has names, not numbers", e0.get("actorKind") == "app" and e0.get("operator") == "other"
          and e0.get("target") == "app:APPX" and e0.get("action") == "password" and e0.get("source") == "127.0.0.2"
          and isinstance(e0.get("seq"), int) and e0.get("time", "").endswith("Z"), e0)
    st, b = q(aud, kind="login_failed")
    check("kind=login_failed", st == 200 and b["items"] and all(e["kind"] == "login_failed" for e in b["items"]),
          [e["kind"] for e in b["items"]])
    st, b = q(aud, kind="login,logout")
    check("kind=login,logout", st == 200 and b["items"] and {e["kind"] for e in b["items"]} <= {"login", "logout"},
          {e["kind"] for e in b["items"]})
    st, b = q(aud, operator="demo")
    check("operator=demo: demo's events only", st == 200 and b["items"]
          and {e.get("operator") for e in b["items"]} == {"demo"}, (st, b))
    st, b = q(aud, kind="user", actor="admin")
    created = [e["target"] for e in b["items"] if e["action"] == "created"]
    check("the users the admin created are events (kind user, action created)",
          {"user:aud", "user:genO"} <= set(created), created)
    st, b = q(aud, kind="pending")
    approved = [(e["target"], e["actor"]) for e in b["items"] if e["action"] == "approved"
                and e.get("detail", "").startswith("user created")]
    check("... the operator admins through the two-person rule: their approvals name them (kind pending)",
          {("user:oaO", "admin2"), ("user:oaD", "admin2")} <= set(approved), b.get("items"))
    full, _ = all_pages(aud)
    st, b = q(aud, **{"from": t_before_app})
    # (the server's own events -- a checkpoint, an alarm -- may come between t_before_app and APPX's login)
    check("from: only events at or after it", st == 200 and b["items"] and
          all(ms_of(e["time"]) >= t_before_app for e in b["items"]) and
          "APPX" in [e["actor"] for e in b["items"]] and len(b["items"]) < len(full),
          [(e["actor"], e["time"]) for e in b["items"]][:3])
    st, b = q(aud, to=t_before_app)
    check("to: only events before it", st == 200 and b["items"] and all(e["actor"] != "APPX" for e in b["items"]),
          len(b["items"]))
    st, b = q(aud, **{"from": "2099-01-01T00:00:00Z"})
    check("a window after everything is empty", st == 200 and b["items"] == [] and "next" not in b, (st, b))
    # paging: pages of 3 cover the trail once, in order
    paged, pages = all_pages(aud, limit=3)
    check("pages of 3 give every event once, in order (%d events, %d pages)" % (len(paged), pages),
          [e["seq"] for e in paged] == [e["seq"] for e in full] and pages >= 3
          and len({e["seq"] for e in paged}) == len(paged), ([e["seq"] for e in paged], [e["seq"] for e in full]))
    for params, field in (({"limit": "0"}, "limit"), ({"limit": "1001"}, "limit"), ({"limit": "x"}, "limit"),
                          ({"from": "yesterday"}, "from"), ({"to": "2026-13-01T00:00:00Z"}, "to"),
                          ({"kind": "Login!"}, "kind"), ({"after": "nope"}, "after"),
                          ({"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "to"),
                          ({"actor": ""}, "actor")):
        st, b = q(aud, **params)
        check("a bad %s is 400 E1001 naming it" % field,
              st == 400 and code(b) == "E1001" and b["result"].get("detail", {}).get("field") == field, (params, st, b))

    # 3. refused operations as events
    until(aud, lambda it: len([e for e in it if "E1001" in e.get("detail", "")]) == 9, kind="admin", actor="aud",
          limit=1000)
    until(aud, lambda it: len(it) == 1, kind="admin", actor="oaO")
    st, b = q(aud, kind="admin", actor="genO")
    r0 = b["items"][0] if b.get("items") else {}
    check("a refused operation is an event: who, what, where, outcome, code",
          r0.get("outcome") == "refused" and r0.get("action") == "GET /admin/v1/users" and r0.get("operator") == "other"
          and r0.get("target") == "/admin/v1/users" and "E2003" in r0.get("detail", "")
          and r0.get("source", "").startswith("127.0.0.1") and r0.get("actorKind") == "user", r0)
    check("... the refused audit read too", any(e["action"] == "GET " + EV for e in b.get("items", [])),
          [e["action"] for e in b.get("items", [])])
    st, b = q(oaO, kind="admin")
    acts = [(e["actor"], e["target"]) for e in b["items"]]
    check("other's admin sees the refusals against its operator (demo's admin reading its user)",
          ("oaD", "/admin/v1/users/oaO") in acts and ("genO", "/admin/v1/users") in acts, acts)
    st, b = q(aud, kind="admin", actor="aud", limit=1000)
    bad = [e for e in b["items"] if e["outcome"] == "refused" and "E1001" in e.get("detail", "")]
    check("the auditor's 9 bad queries are audited refusals naming the field (%d)" % len(bad),
          len(bad) == 9 and any("limit:" in e["detail"] for e in bad), [e["detail"] for e in bad])
    st, b = q(aud, kind="admin", actor="oaO")
    check("the operator admin's refused read of another operator is an event",
          any(e["target"].startswith(EV) and "audit.read" in e.get("detail", "") for e in b["items"]),
          [e["detail"] for e in b["items"]])
    rc = stop_server(server)
    server = None

    # 4. replay
    out = subprocess.run([BIN, "replay", D, "--kind", "admin"], capture_output=True, text=True, timeout=120).stdout
    evs = [json.loads(l) for l in out.splitlines() if l.strip()]
    check("replay shows the admin events with names",
          evs and all(e.get("audit", {}).get("kind") == "admin" and e["audit"].get("actor_kind") == "user"
                      and e["admin"].get("outcome") == "refused" for e in evs), evs[:1])
    out = subprocess.run([BIN, "replay", D, "--kind", "user"], capture_output=True, text=True, timeout=120).stdout
    evs = [json.loads(l) for l in out.splitlines() if l.strip()]
    aud_ev = [e for e in evs if e["user"].get("user_id") == "aud" and e["user"].get("action") == "created"]
    check("replay shows a user's creation with its roles by name",
          aud_ev and aud_ev[0]["audit"].get("target") == "user:aud" and "auditor" in aud_ev[0]["audit"].get("detail", ""),
          aud_ev[:1])
finally:
    pass

finish(check, T, [server])
