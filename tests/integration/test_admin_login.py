#!/usr/bin/python3
"""tests/integration/test_admin_login.py -- users' sessions on /admin/v1
(issue #14, docs/admin.md "Sessions", "TOTP"), end to end with the real
`suiro` and oathtool (Debian's independent RFC 6238 implementation):

 1. `suiro init`'s admin logs in with the printed temporary password: a
    must-change session, refused every route but its own (403 naming
    PUT /admin/v1/me/password); bad inputs name the field (400) and store
    nothing; the password change makes the same session a normal one.
 2. TOTP: enrolment gives an otpauth:// URI; a wrong code does not confirm
    it; oathtool's code does; from then on a login needs a code, a code is
    accepted once (a replayed one is refused), a wrong one is refused.
 3. Logout kills the token at once; a wrong password is refused (401) and
    audited (an auth event), as are refused operations (the server's log).
 4. Operators, vendors and users: created by the platform admin (a new
    user's temporary password shown once), bad inputs named and nothing
    stored; an operator admin sees its operator's users only; a disabled
    user's live session is refused at its next request and stays dead after
    an enable; a deleted user's ID stays reserved; an operator in use is not
    deleted.
 6. The TOTP secret at rest: with a data key (--key-file) the user
    events carry it sealed (not the secret's bytes); without one, as is
    (documented), which shows the check can see it.
 5. The login policy: a role the platform's policy names, or an operator
    whose policy requires it, needs TOTP: a live session without it is
    refused all but its own routes (403 naming POST /admin/v1/me/totp)
    until it enrols; bad policies name the field.
usage: test_admin_login.py SUIRO_BIN"""
import json
import os
import subprocess
import sys
import tempfile
import urllib.parse

BIN = sys.argv[1]
T = tempfile.mkdtemp(prefix="suiro-adminlogin-")
D = os.path.join(T, "data")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from srtest import Api, Checks, code, finish, start_server, stop_server  # noqa: E402

check = Checks()
server = None
OATH = "/usr/bin/oathtool"


def otp(secret, offset=0):
    """oathtool's code for the step `offset` steps from now"""
    args = [OATH, "--totp", "-b", secret]
    if offset:
        args += ["-N", "now + %d seconds" % (30 * offset)]
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout.strip()


def login(hp, user, password, code_=None):
    body = {"userId": user, "password": password}
    if code_ is not None:
        body["code"] = code_
    return Api(hp).call("POST", "/admin/v1/sessions", body)


def init_dir(data, *extra):
    """`suiro init --demo` with a second platform admin when this build has
    the two-person rule (`--second-admin`); the temporary passwords printed"""
    r = subprocess.run([BIN, "init", "--demo", data, "--second-admin", "admin2"] + list(extra), capture_output=True,
                       text=True)
    if r.returncode == 2:  # no two-person rule in this build
        r = subprocess.run([BIN, "init", "--demo", data] + list(extra), check=True, capture_output=True, text=True)
    return [ln.split(":", 1)[1].strip() for ln in r.stdout.splitlines() if ln.startswith("temporary password:")]


def decided(approver, st, b):
    """a privilege change answered 202 (a pending change, when the
    two-person rule is built in): approved by the second admin, and the
    approval's (status, body); anything else as it is"""
    if st == 202 and isinstance(b, dict) and "pendingId" in b and approver is not None:
        st2, b2 = approver.call("POST", "/admin/v1/pending/%s/approve" % b["pendingId"])
        return (200 if st2 in (200, 201, 204) else st2), b2
    return st, b


def sealed_values(data, key=None):
    """the decoded totp_secret_sealed values of the user events in the log"""
    args = [BIN, "replay", data, "--kind", "user"] + (["--key-file", key] if key else [])
    r = subprocess.run(args, capture_output=True, text=True)
    out = []
    for ln in r.stdout.splitlines():
        def walk(v):
            if isinstance(v, dict):
                for k, x in v.items():
                    if k in ("totp_secret_sealed", "totpSecretSealed") and isinstance(x, str) and x:
                        out.append(bytes.fromhex(x))  # replay prints bytes as hex
                    else:
                        walk(x)
            elif isinstance(v, list):
                for x in v:
                    walk(x)
        walk(json.loads(ln))
    return r.returncode, out


def raw_secret(b32):
    import base64
    return base64.b32decode(b32 + "=" * (-len(b32) % 8))


try:
    temps = init_dir(D)
    temp = temps[0]
    server, ports = start_server(BIN, D, os.path.join(T, "server.log"))
    hp = ports["http"]
    approver = None  # the second platform admin, when the build has the two-person rule
    if len(temps) > 1:
        st, b = login(hp, "admin2", temps[1])
        approver = Api(hp, b.get("token"))
        approver.call("PUT", "/admin/v1/me/password", {"currentPassword": temps[1], "newPassword": "admin2-password-12"})

    # ---- 1. the first login and the forced password change
    st, b = login(hp, "admin", temp)
    check("the init admin logs in with the temporary password", st == 201 and b.get("mustChangePassword") is True,
          (st, b))
    tok = b["token"]
    a = Api(hp, tok)
    st, me = a.call("GET", "/admin/v1/me")
    check("GET /admin/v1/me while must-change", st == 200 and me["id"] == "admin" and me["mustChangePassword"]
          and me["roles"] == ["platform_admin"] and me["scope"] == {"kind": "platform"}, (st, me))
    st, b = a.call("GET", "/admin/v1/users")
    check("a must-change session is refused the other routes, naming the password change",
          st == 403 and code(b) == "E2003" and "PUT /admin/v1/me/password" in b["result"]["message"], (st, b))
    for body, field in (({"currentPassword": temp, "newPassword": "short"}, "newPassword"),
                        ({"currentPassword": temp}, "newPassword"),
                        ({"currentPassword": 5, "newPassword": "a-long-enough-password"}, "currentPassword"),
                        ({"currentPassword": temp, "newPassword": temp}, "newPassword"),
                        ({"currentPassword": "wrong-password-1", "newPassword": "a-long-enough-password"},
                         "currentPassword")):
        st, b = a.call("PUT", "/admin/v1/me/password", body)
        check("a bad password change names %s" % field,
              st == 400 and code(b) == "E1001" and b["result"].get("detail", {}).get("field") == field, (body, st, b))
    st, b = a.call("PUT", "/admin/v1/me/password", "not json")
    check("a body that is not JSON: 400 E1002", st == 400 and code(b) == "E1002", (st, b))
    st, b = Api(hp).call("POST", "/admin/v1/sessions", {"userId": "", "password": "x"})
    check("a login without a userId names the field", st == 400 and b["result"]["detail"]["field"] == "userId", b)
    st, me2 = a.call("GET", "/admin/v1/me")
    check("the refused changes stored nothing", me2["passwordSetAt"] == me["passwordSetAt"] and me2["temporaryPassword"],
          me2)
    pw = "the-admins-own-password-1"
    st, b = a.call("PUT", "/admin/v1/me/password", {"currentPassword": temp, "newPassword": pw})
    check("the password change", st == 204, (st, b))
    st, me = a.call("GET", "/admin/v1/me")
    check("the same session is a normal one now", st == 200 and not me["mustChangePassword"]
          and not me["temporaryPassword"], me)
    st, b = a.call("GET", "/admin/v1/users")
    check("GET /admin/v1/users now answers", st == 200 and [u["id"] for u in b["items"]][:1] == ["admin"], (st, b))
    st, b = login(hp, "admin", temp)
    check("the temporary password is dead", st == 401 and code(b) == "E2001", (st, b))

    # ---- 2. TOTP
    st, b = a.call("PUT", "/admin/v1/me/totp", {"code": "123456"})
    check("confirming without an enrolment under way: 404", st == 404, (st, b))
    st, en = a.call("POST", "/admin/v1/me/totp")
    check("enrolment gives an otpauth:// URI", st == 201 and en["uri"].startswith("otpauth://totp/suiro:admin?"), en)
    q = urllib.parse.parse_qs(urllib.parse.urlparse(en["uri"]).query)
    secret = q["secret"][0]
    check("the URI's profile: SHA1, 6 digits, 30 s, the secret as given",
          q.get("algorithm") == ["SHA1"] and q.get("digits") == ["6"] and q.get("period") == ["30"]
          and secret == en["secret"], q)
    st, b = a.call("PUT", "/admin/v1/me/totp", {"code": "12345"})
    check("a code that is not 6 digits names the field", st == 400 and b["result"]["detail"]["field"] == "code", b)
    wrong = "%06d" % ((int(otp(secret)) + 1) % 1000000)
    st, b = a.call("PUT", "/admin/v1/me/totp", {"code": wrong})
    check("a wrong code does not confirm the enrolment", st == 400 and b["result"]["detail"]["field"] == "code", b)
    st, me = a.call("GET", "/admin/v1/me")
    check("... and stored nothing", not me["totpEnrolled"], me)
    st, b = a.call("PUT", "/admin/v1/me/totp", {"code": otp(secret)})
    check("oathtool's code confirms the enrolment", st == 200 and b == {"totpEnrolled": True}, (st, b))
    st, me = a.call("GET", "/admin/v1/me")
    check("the user is enrolled", me["totpEnrolled"], me)
    st, b = login(hp, "admin", pw)
    check("a login without a code is refused once TOTP is enrolled", st == 401 and "code" in b["result"]["message"],
          (st, b))
    st, b = login(hp, "admin", pw, otp(secret, -1))
    check("the code used for the enrolment's step (or before) is refused", st == 401, (st, b))
    # two logins at once with oathtool's (next step's) code: exactly one
    # session (the accepted step and the session are one command; the
    # engine refuses a step not above the stored one)
    import threading
    c1, res = otp(secret, 1), []
    ths = [threading.Thread(target=lambda: res.append(login(hp, "admin", pw, c1))) for _ in range(2)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    check("two concurrent logins with oathtool's code: exactly one succeeds",
          sorted(r[0] for r in res) == [201, 401], res)
    b = [r[1] for r in res if r[0] == 201][0] if any(r[0] == 201 for r in res) else {}
    check("... a normal session", b.get("mustChangePassword") is False, b)
    tok2 = b.get("token")
    st, b = login(hp, "admin", pw, c1)
    check("a replayed code is refused", st == 401 and code(b) == "E2001", (st, b))
    st, b = login(hp, "admin", "wrong-password-2", otp(secret, 1))
    check("a wrong password is refused", st == 401, (st, b))
    st, b = login(hp, "admin", pw, "000000" if otp(secret, 1) != "000000" else "000001")
    check("a wrong code is refused", st == 401, (st, b))

    # ---- 3. logout
    b2 = Api(hp, tok2)
    check("the new session works", b2.call("GET", "/admin/v1/me")[0] == 200)
    st, _ = b2.call("DELETE", "/admin/v1/sessions/current")
    check("logout", st == 204, st)
    st, b = b2.call("GET", "/admin/v1/me")
    check("a logged-out token is refused at once", st == 401 and code(b) == "E2001", (st, b))
    check("the other session lives on", a.call("GET", "/admin/v1/me")[0] == 200)
    check("an unknown token is refused", Api(hp, "ab" * 32).call("GET", "/admin/v1/me")[0] == 401)
    check("no token is refused", Api(hp).call("GET", "/admin/v1/me")[0] == 401)


    # ---- 4. operators, vendors, users
    st, b = a.call("POST", "/admin/v1/vendors", {"id": "vend1", "name": "Vendor One", "kind": "ap"})
    check("a vendor registered", st == 201 and b == {"id": "vend1", "name": "Vendor One", "kind": "ap"}, (st, b))
    st, b = a.call("POST", "/admin/v1/vendors", {"id": "vend1", "name": "again", "kind": "ap"})
    check("a vendor's ID is taken once", st == 409, (st, b))
    st, b = a.call("POST", "/admin/v1/vendors", {"id": "vend2", "name": "V", "kind": "xx"})
    check("a vendor's kind is checked", st == 400 and b["result"]["detail"]["field"] == "kind", (st, b))
    st, b = a.call("POST", "/admin/v1/operators", {"id": "op2", "name": "Operator Two"})
    check("an operator registered", st == 201, (st, b))
    st, b = a.call("GET", "/admin/v1/operators")
    check("the operators", st == 200 and sorted(o["id"] for o in b["items"]) == ["demo", "op2"], (st, b))
    st, b = a.call("PUT", "/admin/v1/operators/op2", {"name": "Operator 2"})
    check("an operator renamed", st == 200 and a.call("GET", "/admin/v1/operators/op2")[1]["name"] == "Operator 2",
          (st, b))
    st, b = a.call("GET", "/admin/v1/vendors/nope")
    check("an unknown vendor: 404", st == 404, (st, b))
    before = a.call("GET", "/admin/v1/users")[1]["items"]
    for body, field in (({"scope": {"kind": "operator", "id": "demo"}, "roles": ["operator_admin"]}, "id"),
                        ({"id": "x y", "scope": {"kind": "operator", "id": "demo"}, "roles": ["operator_admin"]}, "id"),
                        ({"id": "u1", "roles": ["operator_admin"]}, "scope"),
                        ({"id": "u1", "scope": {"kind": "galaxy"}, "roles": ["operator_admin"]}, "scope.kind"),
                        ({"id": "u1", "scope": {"kind": "operator"}, "roles": ["operator_admin"]}, "scope.id"),
                        ({"id": "u1", "scope": {"kind": "operator", "id": "nope"}, "roles": ["operator_admin"]},
                         "scope.id"),
                        ({"id": "u1", "scope": {"kind": "operator", "id": "demo"}, "roles": []}, "roles"),
                        ({"id": "u1", "scope": {"kind": "operator", "id": "demo"}, "roles": ["king"]}, "roles[0]"),
                        ({"id": "u1", "scope": {"kind": "operator", "id": "demo"}, "roles": ["ap_vendor_admin"]},
                         "roles[0]"),
                        ({"id": "u1", "scope": {"kind": "operator", "id": "demo"}, "roles": ["operator_general"],
                          "name": 7}, "name")):
        st, b = a.call("POST", "/admin/v1/users", body)
        check("a bad new user names %s" % field, st == 400 and b["result"].get("detail", {}).get("field") == field,
              (body, st, b))
    check("... and nothing was stored", a.call("GET", "/admin/v1/users")[1]["items"] == before)
    st, oa = a.call("POST", "/admin/v1/users", {"id": "opadm", "name": "Op Admin", "roles": ["operator_admin"],
                                                "scope": {"kind": "operator", "id": "demo"}})
    check("an operator admin created (or its creation pending), its temporary password shown once",
          st in (201, 202) and len(oa.get("password", "")) == 32, (st, oa))
    st, _ = decided(approver, st, oa)
    st2, b = a.call("GET", "/admin/v1/users/opadm")
    check("... the operator admin exists", st2 == 200 and b["temporaryPassword"] and b["roles"] == ["operator_admin"],
          (st, st2, b))
    st, g1 = a.call("POST", "/admin/v1/users", {"id": "gen1", "roles": ["operator_general"],
                                                "scope": {"kind": "operator", "id": "demo"}})
    check("an operator general user created", st == 201, (st, g1))
    st, b = decided(approver, *a.call("POST", "/admin/v1/users", {"id": "vadm", "roles": ["ap_vendor_admin"],
                                                                  "scope": {"kind": "vendor", "id": "vend1"}}))
    check("a vendor admin created (an admin: approved by the second admin)", st in (200, 201)
          and a.call("GET", "/admin/v1/users/vadm")[0] == 200, (st, b))
    st, b = a.call("GET", "/admin/v1/users/opadm")
    check("GET a user shows no password", st == 200 and "password" not in b and b["state"] == "enabled", (st, b))

    def first_login(user, temp_pw, new_pw):
        st, b = login(hp, user, temp_pw)
        api = Api(hp, b.get("token"))
        st2, _ = api.call("PUT", "/admin/v1/me/password", {"currentPassword": temp_pw, "newPassword": new_pw})
        return st == 201 and b["mustChangePassword"] and st2 == 204, api

    ok, oapi = first_login("opadm", oa["password"], "opadm-password-123")
    check("the operator admin's first login and password change", ok)
    st, b = oapi.call("GET", "/admin/v1/users")
    check("an operator admin lists its operator's users only",
          st == 200 and sorted(u["id"] for u in b["items"]) == ["gen1", "opadm"], (st, b))
    st, b = oapi.call("GET", "/admin/v1/users/admin")
    check("... and may not read the platform admin", st == 403 and code(b) == "E2003"
          and "users.manage" in b["result"]["message"], (st, b))
    st, b = oapi.call("GET", "/admin/v1/users/vadm")
    check("... nor a vendor's user", st == 403, (st, b))
    st, b = oapi.call("GET", "/admin/v1/operators")
    check("... nor manage operators", st == 403 and "tenants.manage" in b["result"]["message"], (st, b))
    st, b = oapi.call("POST", "/admin/v1/users", {"id": "x2", "roles": ["operator_general"],
                                                  "scope": {"kind": "operator", "id": "op2"}})
    check("... nor create a user of another operator", st == 403, (st, b))
    st, b = oapi.call("POST", "/admin/v1/users", {"id": "x3", "roles": ["operator_general"],
                                                  "scope": {"kind": "operator", "id": "nope"}})
    check("... an unknown operator answers the same 403 (nothing learnt)", st == 403, (st, b))
    ok, gapi = first_login("gen1", g1["password"], "gen1-password-1234")
    check("the general user logs in", ok and gapi.call("GET", "/admin/v1/me")[0] == 200)
    st, b = gapi.call("GET", "/admin/v1/users")
    check("a general user may not manage users", st == 403, (st, b))
    st, b = oapi.call("POST", "/admin/v1/users/gen1/disable")
    check("the operator admin disables its user", st == 200 and b["state"] == "disabled", (st, b))
    st, b = gapi.call("GET", "/admin/v1/me")
    check("a disabled user's live session is refused at its next request", st == 401 and code(b) == "E2001", (st, b))
    st, b = login(hp, "gen1", "gen1-password-1234")
    check("a disabled user cannot log in", st == 401, (st, b))
    st, b = decided(approver, *oapi.call("POST", "/admin/v1/users/gen1/enable"))
    check("enabled again", st == 200 and oapi.call("GET", "/admin/v1/users/gen1")[1]["state"] == "enabled", (st, b))
    check("the session the disable ended stays dead", gapi.call("GET", "/admin/v1/me")[0] == 401)
    st, b = login(hp, "gen1", "gen1-password-1234")
    check("the enabled user logs in again", st == 201, (st, b))
    gapi = Api(hp, b.get("token"))
    st, b = decided(approver, *oapi.call("PUT", "/admin/v1/users/gen1/roles", {"roles": ["operator_admin"]}))
    check("roles changed", st == 200 and oapi.call("GET", "/admin/v1/users/gen1")[1]["roles"] == ["operator_admin"],
          (st, b))
    check("the new role applies to the live session at once", gapi.call("GET", "/admin/v1/users")[0] == 200)
    st, b = oapi.call("PUT", "/admin/v1/users/gen1/roles", {"roles": ["auditor"]})
    check("a role of another scope is refused, naming it", st == 400 and b["result"]["detail"]["field"] == "roles[0]",
          (st, b))
    st, b = oapi.call("PUT", "/admin/v1/users/opadm/roles", {"roles": ["operator_general"]})
    check("an admin does not change its own roles", st == 409, (st, b))
    st, rs = oapi.call("POST", "/admin/v1/users/gen1/password-reset")
    check("a password reset gives a new temporary password", st == 200 and len(rs.get("password", "")) == 32, (st, rs))
    check("... and ends the user's sessions", gapi.call("GET", "/admin/v1/me")[0] == 401)
    st, b = login(hp, "gen1", rs["password"])
    check("... the reset password is a must-change one", st == 201 and b["mustChangePassword"], (st, b))
    st, b = a.call("DELETE", "/admin/v1/users/admin/totp")
    check("... an admin does remove a TOTP (its own here)", st == 204, (st, b))
    st, b = login(hp, "admin", pw)
    check("without TOTP the login needs no code", st == 201, (st, b))
    st, b = oapi.call("DELETE", "/admin/v1/users/gen1")
    check("a user deleted", st == 204, (st, b))
    st, b = oapi.call("GET", "/admin/v1/users/gen1")
    check("a deleted user is shown deleted", st == 200 and b["state"] == "deleted", (st, b))
    st, b = a.call("POST", "/admin/v1/users", {"id": "gen1", "roles": ["operator_general"],
                                               "scope": {"kind": "operator", "id": "demo"}})
    check("a deleted user's ID stays reserved", st == 409, (st, b))
    st, b = a.call("DELETE", "/admin/v1/operators/demo")
    check("an operator in use is not deleted, naming why", st == 409 and "delete it first" in b["result"]["message"],
          (st, b))
    st, b = a.call("DELETE", "/admin/v1/vendors/vend1")
    check("a vendor with users is not deleted", st == 409, (st, b))
    st, b = a.call("DELETE", "/admin/v1/operators/op2")
    check("an unused operator deleted", st == 204 and a.call("GET", "/admin/v1/operators/op2")[0] == 404, (st, b))


    # ---- 5. the login policy
    st, b = oapi.call("GET", "/admin/v1/login-policy")
    check("an operator admin reads its operator's policy",
          st == 200 and b["scope"] == {"kind": "operator", "id": "demo"} and b["totpRequired"] is False, (st, b))
    for body, field in (({"totpRoles": ["king"]}, "totpRoles[0]"), ({"totpRoles": "operator_admin"}, "totpRoles"),
                        ({"totpRoles": ["auditor", "auditor"]}, "totpRoles[1]"), ({"totpRequired": True}, "totpRequired")):
        st, b = a.call("PUT", "/admin/v1/login-policy", body)
        check("a bad platform policy names %s" % field, st == 400 and b["result"]["detail"]["field"] == field,
              (body, st, b))
    for body, field in (({"totpRoles": []}, "totpRoles"), ({"totpRequired": "yes"}, "totpRequired")):
        st, b = oapi.call("PUT", "/admin/v1/login-policy", body)
        check("a bad operator policy names %s" % field, st == 400 and b["result"]["detail"]["field"] == field,
              (body, st, b))
    st, b = a.call("GET", "/admin/v1/login-policy")
    check("... nothing stored", st == 200 and b["totpRoles"] == [] and
          {"operatorId": "demo", "totpRequired": False} in b["operators"], (st, b))
    st, b = a.call("PUT", "/admin/v1/login-policy", {"totpRoles": ["operator_admin"]})
    check("the platform admin requires TOTP of operator admins", st == 200 and b == {"totpRoles": ["operator_admin"]},
          (st, b))
    st, b = oapi.call("GET", "/admin/v1/users")
    check("an operator admin without TOTP is refused at its next request, naming the enrolment",
          st == 403 and "POST /admin/v1/me/totp" in b["result"]["message"], (st, b))
    check("... but may still see itself", oapi.call("GET", "/admin/v1/me")[0] == 200)
    st, en = oapi.call("POST", "/admin/v1/me/totp")
    st2, b = oapi.call("PUT", "/admin/v1/me/totp", {"code": otp(en["secret"])})
    check("it enrols", st == 201 and st2 == 200, (st, en, st2, b))
    check("... and is let through again", oapi.call("GET", "/admin/v1/users")[0] == 200)
    st, b = login(hp, "opadm", "opadm-password-123")
    check("its login now needs a code", st == 401, (st, b))
    st, b = login(hp, "opadm", "opadm-password-123", otp(en["secret"], 1))
    check("... and takes oathtool's", st == 201, (st, b))
    st, g2 = oapi.call("POST", "/admin/v1/users", {"id": "g2", "roles": ["operator_general"],
                                                   "scope": {"kind": "operator", "id": "demo"}})
    ok, g2api = first_login("g2", g2.get("password", ""), "g2-password-12345")
    check("a general user of the operator logs in", st == 201 and ok)
    st, b = oapi.call("PUT", "/admin/v1/login-policy", {"totpRequired": True})
    check("the operator admin requires TOTP of all its users", st == 200 and b == {"totpRequired": True}, (st, b))
    st, b = g2api.call("GET", "/admin/v1/users")
    check("the operator's user without TOTP is sent to the enrolment",
          st == 403 and "POST /admin/v1/me/totp" in b["result"]["message"], (st, b))
    st, b = g2api.call("GET", "/admin/v1/me")
    check("... its own routes still answer", st == 200 and b["mustChangePassword"] is True, (st, b))
    st, b = decided(approver, *a.call("PUT", "/admin/v1/login-policy", {"totpRoles": []}))
    check("the platform's policy weakened (a privilege change: approved by a second admin with the two-person rule)",
          st == 200 and a.call("GET", "/admin/v1/login-policy")[1]["totpRoles"] == [], (st, b))
    st, b = decided(approver, *oapi.call("PUT", "/admin/v1/login-policy", {"totpRequired": False}))
    check("the operator's weakened", st == 200 and oapi.call("GET", "/admin/v1/login-policy")[1]["totpRequired"] is False,
          (st, b))
    st, b = g2api.call("GET", "/admin/v1/users")
    check("... and its user is no longer sent to the enrolment (but may not manage users)",
          st == 403 and "users.manage" in b["result"]["message"], (st, b))

    check("clean stop", stop_server(server) == 0)
    server = None
    log = open(os.path.join(T, "server.log")).read()
    check("refused operations are in the server's log", log.count("admin operation refused") >= 5)
    r = subprocess.run([BIN, "replay", D, "--kind", "auth"], capture_output=True, text=True)
    check("failed logins are auth events", r.returncode == 0 and r.stdout.count('"admin"') >= 4, r.stdout + r.stderr)
    r = subprocess.run([BIN, "replay", D, "--kind", "session"], capture_output=True, text=True)
    check("logins and the logout are session events, without the token",
          r.returncode == 0 and r.stdout.count("\n") >= 3 and tok not in r.stdout and tok2 not in r.stdout,
          r.stdout + r.stderr)

    # ---- 6. the TOTP secret at rest
    rc, vals = sealed_values(D)
    check("without a data key the secret is stored as is (documented)",
          rc == 0 and any(raw_secret(secret) in v for v in vals), (rc, len(vals)))
    K = os.path.join(T, "k.hex")
    with open(K, "w") as f:
        f.write(os.urandom(32).hex() + "\n")
    D2 = os.path.join(T, "data2")
    temp2 = init_dir(D2, "--key-file", K)[0]
    server, ports = start_server(BIN, D2, os.path.join(T, "server2.log"), extra=["--key-file", K])
    hp2 = ports["http"]
    st, b = login(hp2, "admin", temp2)
    k = Api(hp2, b.get("token"))
    st2, _ = k.call("PUT", "/admin/v1/me/password", {"currentPassword": temp2, "newPassword": pw})
    st3, en2 = k.call("POST", "/admin/v1/me/totp")
    st4, _ = k.call("PUT", "/admin/v1/me/totp", {"code": otp(en2["secret"])})
    check("enrolled on a server with a data key", (st, st2, st3, st4) == (201, 204, 201, 200), (st, st2, st3, st4))
    st, b = login(hp2, "admin", pw, otp(en2["secret"], 1))
    check("... and the sealed secret opens at login", st == 201, (st, b))
    check("clean stop (keyed)", stop_server(server) == 0)
    server = None
    rc, vals = sealed_values(D2, K)
    check("with a data key the user events carry the secret sealed, not its bytes",
          rc == 0 and vals and all(raw_secret(en2["secret"]) not in v and len(v) == 1 + 12 + 16 + 20 for v in vals),
          (rc, [len(v) for v in vals]))
except Exception as e:  # noqa: BLE001 -- reported as a failed check
    check.failed(e)
finish(check, T, [server])
