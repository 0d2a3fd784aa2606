#!/usr/bin/python3
"""tests/integration/test_admin_matrix.py -- the authorization matrix of
/admin/v1 (issue #14): every route whose action the dispatcher checks (its
x-suiro-action in docs/api/openapi.yaml, the route row's action) x every
role x targets of the caller's own and of a foreign operator, vendor and
user; the operator demo grants the vendor vap (not vgw, not the foreign
ones) read access to its data, so the rule "granted" is asked both ways. Each cell must be what docs/admin.md's role table says: the test reads
the table from the doc, not from the code, and expects 403 E2003 exactly
where the cell's rule refuses the target (any other answer -- 200, 204,
400, 404, 409, or a 403 naming another action, a handler's own rule --
means the dispatcher let the call through to its handler).
The routes whose handler checks the action on a target of the body or the
caller's own scope (x-suiro-action-in-handler: GET and POST
/admin/v1/users, the login policy; GET /admin/v1/keys and POST
/admin/v1/keys/rotate, for the own operator, a foreign one and the
platform's keys; GET /admin/v1/alive, monitor.read with and without
?operator=; GET /admin/v1/state, audit.read with and without ?operator=; GET /admin/v1/cluster and
.../cluster/partitions/{p}/digest, monitor.read or
audit.read on the platform) are asked the same way with their target. Routes naming an {appId} or a {gatewayId} under an operator are
asked with an app (gateway) of demo built by the caller's own vendor, one
built by a foreign vendor, and one of the foreign operator: the target is
the operator and the app's (gateway's) vendor. A call that removed or
changed the app or gateway is undone before the next cell (its
registration put back by demo's operator admin).
usage: test_admin_matrix.py SUIRO_BIN"""
import os
import re
import subprocess
import sys
import tempfile
import urllib.parse

import yaml

BIN = sys.argv[1]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
T = tempfile.mkdtemp(prefix="suiro-adminmatrix-")
D = os.path.join(T, "data")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from srtest import Api, Checks, code, finish, start_server, stop_server  # noqa: E402
import srtest as srtest_role  # noqa: E402

check = Checks()
server = None
GRANTS = {"vap": ("demo",)}  # vendor grants: demo opens its data to vap only (docs/admin.md "Vendor grants")

# ---- the role table, from the doc (srtest: test_cluster_fwd asks the same cells through forwarded requests)
ROLE_SCOPE = srtest_role.ROLE_SCOPE
role_table = srtest_role.role_table


def allowed(rule, who, target):
    """the doc's scope rule for who (role, operator, vendor) on target (operator, vendor)"""
    return srtest_role.role_allowed(rule, who, target, GRANTS)


try:
    table = role_table()
    check("the role table has the 8 roles", sorted(table) == sorted(ROLE_SCOPE), sorted(table))
    spec = yaml.safe_load(open(os.path.join(ROOT, "docs", "api", "openapi.yaml"), encoding="utf-8"))
    ops = []
    for path, item in spec["paths"].items():
        if not path.startswith("/admin/v1/"):
            continue
        for m in ("get", "post", "put", "delete"):
            if m in item:
                ops.append((m.upper(), path, item[m].get("x-suiro-action"), item[m].get("x-suiro-action-in-handler")))

    # a second platform admin approves the admins' creation when the build
    # has the two-person rule (`init --second-admin`)
    r = subprocess.run([BIN, "init", "--demo", D, "--second-admin", "admin2"], capture_output=True, text=True)
    if r.returncode == 2:
        r = subprocess.run([BIN, "init", "--demo", D], check=True, capture_output=True, text=True)
    temps = [ln.split(":", 1)[1].strip() for ln in r.stdout.splitlines() if ln.startswith("temporary password:")]
    temp = temps[0]
    server, ports = start_server(BIN, D, os.path.join(T, "server.log"))
    hp = ports["http"]

    def first_login(user, tpw):
        st, b = Api(hp).call("POST", "/admin/v1/sessions", {"userId": user, "password": tpw})
        api = Api(hp, b.get("token"))
        st2, _ = api.call("PUT", "/admin/v1/me/password", {"currentPassword": tpw, "newPassword": "pw-" + user + "-12345"})
        return api if st == 201 and st2 == 204 else None

    root = first_login("admin", temp)
    approver = first_login("admin2", temps[1]) if len(temps) > 1 else None

    def create(body):
        """a user created (its creation approved by the second admin when pending)"""
        st, b = root.call("POST", "/admin/v1/users", body)
        if st == 202 and approver is not None:
            st2, _ = approver.call("POST", "/admin/v1/pending/%s/approve" % b["pendingId"])
            st = 201 if st2 in (200, 201, 204) else st2
        return st, b
    # the tenants: own (demo, vap, vgw) and foreign (op2, vap2, vgw2)
    for body in ({"id": "op2", "name": "two"},):
        root.call("POST", "/admin/v1/operators", body)
    for vid, kind in (("vap", "ap"), ("vgw", "gw"), ("vap2", "ap"), ("vgw2", "gw")):
        root.call("POST", "/admin/v1/vendors", {"id": vid, "name": vid, "kind": kind})
    # one user per role: operator roles in demo, AP roles of vap, GW roles of vgw
    callers = {}
    for role, scope in ROLE_SCOPE.items():
        sid = {"platform": None, "operator": "demo", "vendor": "vap" if role.startswith("ap_") else "vgw"}[scope]
        uid = "u_" + role
        body = {"id": uid, "roles": [role], "scope": {"kind": scope, "id": sid} if sid else {"kind": "platform"}}
        st, b = create(body)
        api = first_login(uid, b.get("password", "")) if st == 201 else None
        check("a user of role %s" % role, api is not None, (st, b))
        callers[role] = (api, {"operator": sid if scope == "operator" else None,
                               "vendor": sid if scope == "vendor" else None})
    # target users (changed by the calls; never the callers): one per scope
    targets_user = {}
    for uid, scope, sid, role in (("t_demo", "operator", "demo", "operator_general"),
                                  ("t_op2", "operator", "op2", "operator_general"),
                                  ("t_vap", "vendor", "vap", "ap_vendor_general"),
                                  ("t_vap2", "vendor", "vap2", "ap_vendor_general"),
                                  ("t_vgw", "vendor", "vgw", "gw_vendor_general"),
                                  ("t_plat", "platform", None, "auditor")):
        body = {"id": uid, "roles": [role], "scope": {"kind": scope, "id": sid} if sid else {"kind": "platform"}}
        st, b = create(body)
        check("target user %s" % uid, st == 201, (st, b))
        targets_user[uid] = {"operator": sid if scope == "operator" else None,
                             "vendor": sid if scope == "vendor" else None}

    # demo's apps and gateways built by own and foreign vendors (registered
    # by demo's operator admin), for the routes naming {appId}/{gatewayId}
    opadm = callers["operator_admin"][0]
    REG = {"apps": {"MA1": "vap", "MA2": "vap2"}, "gateways": {"MG1": "vgw", "MG2": "vgw2"}}

    def register(kind, rid):
        body = {"name": rid, "secret": "matrix-secret-%s-0001" % rid.lower(), "vendorId": REG[kind][rid]}
        st, b = opadm.call("PUT", "/admin/v1/operators/demo/%s/%s" % (kind, rid), body)
        if st == 202 and approver is not None:  # an enable or widening waits for a second admin
            st, b = approver.call("POST", "/admin/v1/pending/%s/approve" % b["pendingId"])
        return st, b
    for kind in REG:
        for rid in REG[kind]:
            st, b = register(kind, rid)
            check("demo's %s %s built by %s" % (kind[:-1], rid, REG[kind][rid]), st == 200, (st, b))

    # demo grants vap (not vgw, vap2, vgw2) read access to its data; op2 grants none
    # (a new grant is a widening: a second operator admin of demo approves it)
    st, b = create({"id": "u_opadm2", "roles": ["operator_admin"], "scope": {"kind": "operator", "id": "demo"}})
    opadm2 = first_login("u_opadm2", b.get("password", "")) if st == 201 else None
    for vid, granting in GRANTS.items():
        for o in granting:
            st, b = opadm.call("PUT", "/admin/v1/operators/%s/vendor-grants/%s" % (o, vid), {"access": "read"})
            if st == 202 and opadm2 is not None:
                st, b = opadm2.call("POST", "/admin/v1/pending/%s/approve" % b["pendingId"])
            check("%s grants vendor %s" % (o, vid), st == 200, (st, b))

    cells = skipped = 0
    wrong = []

    def fill(path, values):
        """path with values for its parameters; any other parameter: a value
        that names nothing"""
        for k, v in values.items():
            path = path.replace("{%s}" % k, v)
        return re.sub(r"\{\w+\}", "x1", path)

    def cell(method, p, role, act, target):
        """role's caller calls p: whether the dispatcher let it through (its
        own 403 for act); a cell the role table does not say goes to wrong"""
        global cells
        api, who = callers[role]
        want = allowed(table[role][act], who, target)
        body = {} if method in ("POST", "PUT") else None
        st, b = api.call(method, p, body)
        # a 403 naming another action is the handler's own rule
        # (replacing another's file needs setup.manage, admin_files.c)
        refused_act = ((b.get("result") or {}).get("detail") or {}).get("action", act) \
            if isinstance(b, dict) else act
        got = not (st == 403 and code(b) == "E2003" and refused_act == act)
        cells += 1
        if got != want:
            wrong.append((method, p, role, act, table[role][act], st, b))
        return got
    for method, path, act, in_handler in ops:
        params = re.findall(r"\{(\w+)\}", path)
        if not act:
            continue
        if "appId" in params or "gatewayId" in params:
            kind, key = ("apps", "appId") if "appId" in params else ("gateways", "gatewayId")
            if params[0] != "operatorId":
                skipped += 1
                continue
            variants = [({"operatorId": "demo", key: rid}, {"operator": "demo", "vendor": v})
                        for rid, v in REG[kind].items()]
            variants.append(({"operatorId": "op2", key: "x1"}, {"operator": "op2"}))
            for values, target in variants:
                p = fill(path, values)
                # the operator admin last: its calls pass and may change the app
                for role in sorted(callers, key=lambda r: r == "operator_admin"):
                    got = cell(method, p, role, act, target)
                    if got and target["operator"] == "demo" and method != "GET":
                        register(kind, values[key])  # undo: its registration as it was
            continue
        # the path's targets: each parameter's own and foreign values
        if params == ["operatorId"] or (params and params[0] == "operatorId"):
            variants = [({"operatorId": o}, {"operator": o}) for o in ("demo", "op2")]
        elif params and params[0] == "vendorId":
            variants = [({"vendorId": v}, {"vendor": v}) for v in ("vap", "vgw", "vap2", "vgw2")]
        elif params and params[0] == "userId":
            variants = [({"userId": u}, t) for u, t in targets_user.items()]
        elif not params:
            variants = [({}, {})]
        elif params == ["keyId"]:  # a cluster's stream key (the platform's: issue #19 ckey); 409 here, one node
            variants = [({"keyId": "0123456789abcdef"}, {})]
        else:
            skipped += 1
            continue
        for values, target in variants:
            p = fill(path, values)
            for role in callers:
                cell(method, p, role, act, target)
    check("every cell of the dispatcher's routes is the role table's (%d cells)" % cells, cells > 100 and not wrong,
          wrong[:10])
    # the stream key erasure (issue #19 ckey): tenants.manage only; let through, a single node answers 409
    ew = []
    for role, (api, who) in callers.items():
        st, b = api.call("POST", "/admin/v1/cluster/keys/0123456789abcdef/erase", {})
        if (st != 403) != allowed(table[role]["tenants.manage"], who, {}) or st not in (403, 409):
            ew.append((role, st, b))
    check("POST /admin/v1/cluster/keys/{keyId}/erase: tenants.manage only, 409 on a single node", not ew, ew[:5])

    # the routes whose handler checks: the users of the caller's scope, a new
    # user of an own or foreign scope, the login policy of its own scope
    hw = []
    n = 0
    for role, (api, who) in callers.items():
        rule = table[role]["users.manage"]
        own = {"operator": who["operator"], "vendor": who["vendor"]}
        st, b = api.call("GET", "/admin/v1/users")
        n += 1
        if (st != 403) != allowed(rule, who, own):
            hw.append(("GET /admin/v1/users", role, st))
        for scope, sid, nrole in (("operator", "demo", "operator_general"), ("operator", "op2", "operator_general"),
                                  ("vendor", "vap", "ap_vendor_general"), ("vendor", "vgw2", "gw_vendor_general"),
                                  ("platform", None, "auditor")):
            n += 1
            body = {"id": "n_%s_%s" % (role, sid or "plat"), "roles": [nrole],
                    "scope": {"kind": scope, "id": sid} if sid else {"kind": "platform"}}
            target = {"operator": sid if scope == "operator" else None, "vendor": sid if scope == "vendor" else None}
            st, b = api.call("POST", "/admin/v1/users", body)
            # through: created (or pending), or (the matrix deleted that scope
            # meanwhile) 400 naming scope.id
            if (st != 403) != allowed(rule, who, target) or st not in (201, 202, 400, 403):
                hw.append(("POST /admin/v1/users", role, scope, sid, st, b))
    check("the handler-checked users routes follow the role table (%d cells)" % n, not hw, hw[:10])
    # the keys (admin_keys.c keys_scope): a platform admin (tenants.manage)
    # every key, an operator's admin (setup.manage on its own operator) its
    # own operator's only; no keyring here, so a call let through is 409
    kw = []
    n = 0
    for role, (api, who) in callers.items():
        def may(op):
            return allowed(table[role]["tenants.manage"], who, {}) or \
                (op != "" and allowed(table[role]["setup.manage"], who, {"operator": op}))
        st, b = api.call("GET", "/admin/v1/keys")
        n += 1
        if (st != 403) != may(who["operator"] or "") or st not in (403, 409):
            kw.append(("GET /admin/v1/keys", role, st, b))
        for op in ("demo", "op2", ""):  # own, foreign, the platform's
            st, b = api.call("POST", "/admin/v1/keys/rotate", {"operator": op, "class": "data"})
            n += 1
            if (st != 403) != may(op) or st not in (403, 409):
                kw.append(("POST /admin/v1/keys/rotate", op, role, st, b))
    check("the handler-checked key routes: own operator's for its admin, every one for the platform's (%d cells)" % n,
          n == 32 and not kw, kw[:10])
    # the alive status (admin_alive.c): monitor.read on ?operator=, else on
    # the caller's own operator (an operator's user) or the platform
    aw = []
    n = 0
    for role, (api, who) in callers.items():
        rule = table[role]["monitor.read"]
        for op in ("demo", "op2", None):  # own or foreign, and none (the caller's default)
            target = {"operator": op if op else who["operator"]}
            st, b = api.call("GET", "/admin/v1/alive" + ("?operator=%s" % op if op else ""))
            n += 1
            if (st != 403) != allowed(rule, who, target) or st not in (200, 403):
                aw.append(("GET /admin/v1/alive", op, role, st, b))
    check("the handler-checked alive route follows the role table's monitor.read (%d cells)" % n,
          n == 3 * len(callers) and not aw, aw[:10])
    # the cluster status (admin_alive.c, docs/cluster.md "Ownership"): the
    # platform's, monitor.read or audit.read on the platform (no operator);
    # a single node answers {"enabled": false}
    cw = []
    n = 0
    for role, (api, who) in callers.items():
        may = allowed(table[role]["monitor.read"], who, {"operator": None}) or \
            allowed(table[role]["audit.read"], who, {"operator": None})
        st, b = api.call("GET", "/admin/v1/cluster")
        n += 1
        if (st != 403) != may or st not in (200, 403) or (st == 200 and b != {"enabled": False}):
            cw.append(("GET /admin/v1/cluster", role, st, b))
    check("the handler-checked cluster route: monitor.read or audit.read on the platform (%d cells)" % n,
          n == len(callers) and not cw, cw[:10])
    # a partition's index digest (admin_alive.c, docs/cluster.md "Replay,
    # verify and audit from the stream"): the same readers; a single node has
    # one partition, 0 (every operator)
    dw = []
    n = 0
    for role, (api, who) in callers.items():
        may = allowed(table[role]["monitor.read"], who, {"operator": None}) or \
            allowed(table[role]["audit.read"], who, {"operator": None})
        st, b = api.call("GET", "/admin/v1/cluster/partitions/0/digest")
        n += 1
        if (st != 403) != may or st not in (200, 403) or (st == 200 and (b.get("partitionCount") != 1 or
                                                                      not isinstance(b.get("points"), list))):
            dw.append(("GET /admin/v1/cluster/partitions/0/digest", role, st, b))
    check("the handler-checked digest route: monitor.read or audit.read on the platform (%d cells)" % n,
          n == len(callers) and not dw, dw[:10])
    # its paging (docs/admin.md): limit 1..10000, after = a previous page's next
    pa = callers["platform_admin"][0]
    bad = [(q, pa.call("GET", "/admin/v1/cluster/partitions/0/digest?" + q)) for q in
           ("limit=0", "limit=10001", "limit=x", "after=no-slash", "after=%2Fx")]
    check("the digest's paging parameters: a bad limit or after is 400 E1001",
          all(st == 400 and code(b) == "E1001" for _, (st, b) in bad), [(q, st) for q, (st, _) in bad])
    st, whole = pa.call("GET", "/admin/v1/cluster/partitions/0/digest")
    pages, after, got = 0, None, []
    while pages < 1000:
        st1, pg = pa.call("GET", "/admin/v1/cluster/partitions/0/digest?limit=1" +
                          ("&after=" + urllib.parse.quote(after, safe="") if after else ""))
        if st1 != 200 or len(pg.get("points", [])) > 1:
            break
        pages += 1
        got += pg["points"]
        after = pg.get("next")
        if not after:
            break
    check("the digest a point a page (limit=1, each after the previous next) is the whole digest (%d points)" %
          len(whole.get("points", [])) if st == 200 else "the digest", st == 200 and got == whole.get("points"),
          (st, len(got), pages))
    # the state at a past time (admin_audit.c, docs/state.md): audit.read on
    # ?operator=, else on the caller's own operator (an operator's user) or
    # the platform
    sw = []
    n = 0
    for role, (api, who) in callers.items():
        rule = table[role]["audit.read"]
        for op in ("demo", "op2", None):
            target = {"operator": op if op else who["operator"]}
            st, b = api.call("GET", "/admin/v1/state?at=1" + ("&operator=%s" % op if op else ""))
            n += 1
            if (st != 403) != allowed(rule, who, target) or st not in (200, 403):
                sw.append(("GET /admin/v1/state", op, role, st, b))
    check("the handler-checked state route follows the role table's audit.read (%d cells)" % n,
          n == 3 * len(callers) and not sw, sw[:10])
    check("no route left out of the matrix", skipped == 0, skipped)
    check("clean stop", stop_server(server) == 0)
    server = None
except Exception as e:  # noqa: BLE001 -- reported as a failed check
    check.failed(e)
finish(check, T, [server])
