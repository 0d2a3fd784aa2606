#!/usr/bin/python3
"""tests/integration/test_state.py -- the state at a past time (issue #18,
R-RE-2; docs/state.md) end to end with the real `suiro`:

 1. GET /admin/v1/state?at=T and `suiro state DIR --at T --json` (on the
    served directory) give the same answer, for a T before an operator
    existed (it is absent) and a T after (its registry, masters and values).
 2. Who may read it (audit.read): the auditor any operator; an operator
    admin its own (the default), another operator 403 E2003; the platform
    admin 403 (audit.read is the auditor's).
 3. Bad input names the field (400 E1001); a T before every event is the
    empty state (seq 0).
usage: test_state.py SUIRO_BIN"""
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse

BIN = sys.argv[1]
T = tempfile.mkdtemp(prefix="suiro-state-")
D = os.path.join(T, "data")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from srtest import (OTHER_OPERATOR_SHEET, Api, Checks, approve_if_pending, code, finish, import_sheet,  # noqa: E402
                    init_with_admins, start_server)

check = Checks()
server = None


def first_login(hp, user, temp_pw, new_pw):
    st, b = Api(hp).call("POST", "/admin/v1/sessions", {"userId": user, "password": temp_pw})
    api = Api(hp, b.get("token"))
    st2, b2 = api.call("PUT", "/admin/v1/me/password", {"currentPassword": temp_pw, "newPassword": new_pw})
    assert st == 201 and st2 == 204, (user, st, b, st2, b2)
    return api


def state(api, **params):
    return api.call("GET", "/admin/v1/state?" + urllib.parse.urlencode(params))


def cli(at, *extra):
    r = subprocess.run([BIN, "state", D, "--at", str(at), "--json"] + list(extra), capture_output=True, text=True,
                       timeout=120)
    return r.returncode, (json.loads(r.stdout) if r.returncode == 0 and r.stdout.strip() else r.stderr)


def section(ans, op):
    return next((s for s in ans.get("operators", []) if s.get("operator") == op), None)


try:
    temp, temp2 = init_with_admins(BIN, D, demo=True)
    time.sleep(0.01)
    t_before_other = int(time.time() * 1000)
    time.sleep(0.01)
    import_sheet(BIN, D, os.path.join(T, "other.csv"), OTHER_OPERATOR_SHEET)
    time.sleep(0.01)
    t_after_other = int(time.time() * 1000)
    server, ports = start_server(BIN, D, os.path.join(T, "server.log"))
    hp = ports["http"]
    admin = first_login(hp, "admin", temp, "the-admins-own-password-1")
    admin2 = first_login(hp, "admin2", temp2, "the-admins-own-password-2")
    made = {}
    for uid, roles, scope in (("aud", ["auditor"], {"kind": "platform"}),
                              ("oaO", ["operator_admin"], {"kind": "operator", "id": "other"})):
        st, b = admin.call("POST", "/admin/v1/users", {"id": uid, "roles": roles, "scope": scope})
        password = b.get("password")
        st, b2 = approve_if_pending(admin2, st, b)
        assert st in (200, 201), (uid, st, b, b2)
        made[uid] = first_login(hp, uid, password, uid + "-password-12345")
    aud, oaO = made["aud"], made["oaO"]

    # 1. the API and the CLI agree, before and after "other" was imported
    for at, name in ((t_before_other, "before"), (t_after_other, "after")):
        st, api_ans = state(aud, at=at)
        rc, cli_ans = cli(at)
        check("%s: the API answers 200" % name, st == 200, (st, api_ans))
        check("%s: the CLI exits 0" % name, rc == 0, cli_ans)
        check("%s: the API and the CLI give the same answer" % name, st == 200 and rc == 0 and api_ans == cli_ans,
              (api_ans, cli_ans))
        ops = [s["operator"] for s in api_ans.get("operators", [])] if st == 200 else []
        check("%s: demo is there" % name, "demo" in ops, ops)
        check("%s: other is there iff T is after its import" % name, ("other" in ops) == (name == "after"), ops)
    st, b = state(aud, at=t_after_other)
    o = section(b, "other") or {}
    check("after: other's gateway, app, grant and data point as the sheet made them",
          [g["id"] for g in o.get("gateways", [])] == ["GWX"] and [a["id"] for a in o.get("apps", [])] == ["APPX"]
          and len(o.get("grants", [])) == 1 and any(m["id"] == "PX1" for m in o.get("masters", [])), o)
    check("after: seq(T) and the replay are named", b.get("seq", 0) > 0 and b.get("replayed") == b.get("seq")
          and b.get("snapshot") == {"seq": 0}, b)
    st2, b2 = state(aud, at=t_before_other)
    check("before: a smaller seq(T)", st2 == 200 and 0 < b2.get("seq", 0) < b.get("seq", 0), (b2.get("seq"), b.get("seq")))
    rc, c1 = cli(t_after_other, "--operator", "other")
    st, a1 = state(aud, at=t_after_other, operator="other")
    check("--operator / operator=: one section, the same", rc == 0 and st == 200 and a1 == c1
          and [s["operator"] for s in a1["operators"]] == ["other"], (a1, c1))

    # 2. who may read
    st, b = state(oaO, at=t_after_other)
    check("an operator admin reads its own operator's state (the default)",
          st == 200 and [s["operator"] for s in b["operators"]] == ["other"], (st, b))
    st, b = state(oaO, at=t_after_other, operator="demo")
    check("... and another operator's is 403 E2003", st == 403 and code(b) == "E2003", (st, b))
    st, b = state(admin, at=t_after_other)
    check("the platform admin: 403 (audit.read is the auditor's)", st == 403, (st, b))

    # 3. bad input; before every event
    st, b = aud.call("GET", "/admin/v1/state")
    check("no at: 400 E1001 naming it", st == 400 and code(b) == "E1001" and "at" in json.dumps(b), (st, b))
    st, b = state(aud, at="yesterday")
    check("a bad at: 400 E1001", st == 400 and code(b) == "E1001", (st, b))
    st, b = state(aud, at=1000)
    check("a T before every event: the empty state (seq 0)", st == 200 and b["seq"] == 0 and b["operators"] == [],
          (st, b))
    r = subprocess.run([BIN, "state", D], capture_output=True, text=True)
    check("suiro state without --at: usage error (2)", r.returncode == 2 and "--at" in r.stderr, r.stderr)
except Exception as ex:  # noqa: BLE001
    import traceback
    traceback.print_exc()
    check("no exception", False, ex)
finish(check, T, [server])
