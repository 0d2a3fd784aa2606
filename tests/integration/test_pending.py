#!/usr/bin/python3
"""tests/integration/test_pending.py -- the two-person rule (R-ID-5,
docs/admin.md "The two-person rule") end to end with the real `suiro`:

 1. `suiro init --second-admin` makes two platform admins; a role change
    (a privilege change) is answered 202 with a pending change, and changes
    nothing yet.
 2. The requester cannot approve it (403); it is listed to both admins, only
    the other may decide it; a restart of the server keeps it.
 3. The second admin approves it: the change is in effect; a second decision
    is a conflict (409). Of an approval and a rejection sent at once, one
    stands and the other is a conflict.
 4. A rejection needs a reason (400 naming it) and applies nothing.
 5. With `[admin] pending_ttl_s = 60`, a change not decided in time shows as
    expired, and a decision then is refused 409 naming the expiry (its
    `expired` event written). The 60 s are not waited out: the server runs
    with the test clock (SUIRO_TEST_CLOCK_FILE, docs/retention.md "A test
    clock"), moved on 61 s; first checked: at 50 s on it is still
    requested.
 6. Every step is an event, shown by name by `suiro replay --kind pending`.
usage: test_pending.py SUIRO_BIN"""
import os
import subprocess
import sys
import tempfile
import threading

BIN = sys.argv[1]
T = tempfile.mkdtemp(prefix="suiro-pending-")
D = os.path.join(T, "data")
LOG = os.path.join(T, "server.log")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from srtest import Api, Checks, code, finish, start_server, stop_server  # noqa: E402

check = Checks()
server = None


def session(hp, user, password, new=None):
    """A session of user; with new, the temporary password changed first."""
    st, b = Api(hp).call("POST", "/admin/v1/sessions", {"userId": user, "password": password})
    assert st == 201, (user, st, b)
    a = Api(hp, b["token"])
    if new:
        st, b = a.call("PUT", "/admin/v1/me/password", {"currentPassword": password, "newPassword": new})
        assert st == 204, (user, st, b)
    return a


def set_clock(path, offset_ms):
    """the test clock's offset (written whole, then renamed: the server never reads half a file)"""
    with open(path + ".tmp", "w") as f:
        f.write("suiro-test-clock-offset-ms %d\n" % offset_ms)
    os.replace(path + ".tmp", path)


def roles_of(a, user):
    st, b = a.call("GET", "/admin/v1/users/" + user)
    assert st == 200, (st, b)
    return b["roles"]


try:
    r = subprocess.run([BIN, "init", D, "--admin", "alice", "--second-admin", "bob"], check=True,
                       capture_output=True, text=True)
    temps = [ln.split(":", 1)[1].strip() for ln in r.stdout.splitlines() if ln.startswith("temporary password:")]
    check("init prints two temporary passwords", len(temps) == 2 and temps[0] != temps[1], r.stdout)
    server, ports = start_server(BIN, D, LOG)
    hp = ports["http"]
    alice = session(hp, "alice", temps[0], "alices-own-password-1")
    bob = session(hp, "bob", temps[1], "bobs-own-password-22")

    # ---- 1. a privilege change waits
    st, b = alice.call("POST", "/admin/v1/users", {"id": "carol", "scope": {"kind": "platform"}, "roles": ["auditor"]})
    check("an auditor is created at once", st == 201 and b["roles"] == ["auditor"], (st, b))
    st, p = alice.call("PUT", "/admin/v1/users/carol/roles", {"roles": ["platform_admin"]})
    check("a role change is answered 202 with a pending change",
          st == 202 and p.get("state") == "requested" and p.get("pendingId") and p.get("expiresAt"), (st, p))
    pid = p["pendingId"]
    check("... and changes nothing yet", roles_of(alice, "carol") == ["auditor"])

    # ---- 2. only a second admin decides it; a restart keeps it
    st, b = alice.call("POST", "/admin/v1/pending/%s/approve" % pid)
    check("the requester cannot approve", st == 403 and code(b) == "E2003" and "requester" in b["result"]["message"],
          (st, b))
    st, b = alice.call("POST", "/admin/v1/pending/%s/reject" % pid, {"reason": "changed my mind"})
    check("nor reject", st == 403 and code(b) == "E2003", (st, b))
    st, la = alice.call("GET", "/admin/v1/pending")
    st2, lb = bob.call("GET", "/admin/v1/pending?state=requested")
    check("listed to both, decidable by the other only",
          st == 200 and st2 == 200 and [x["pendingId"] for x in la["pending"]] == [pid]
          and [x["pendingId"] for x in lb["pending"]] == [pid] and la["pending"][0]["mayDecide"] is False
          and lb["pending"][0]["mayDecide"] is True and lb["pending"][0]["requestedBy"] == "alice"
          and lb["pending"][0]["action"] == "users.manage" and lb["pending"][0]["scope"] == "platform",
          (la, lb))
    st, b = bob.call("GET", "/admin/v1/pending?state=bogus")
    check("a bad state filter names the field", st == 400 and b["result"]["detail"]["field"] == "state", (st, b))
    st, b = bob.call("GET", "/admin/v1/pending/pc-nonexistent")
    check("an unknown pending change: 404", st == 404 and code(b) == "E3001", (st, b))
    st, b = Api(hp).call("POST", "/admin/v1/pending/%s/approve" % pid)
    check("no session: 401", st == 401, (st, b))

    check("clean stop", stop_server(server) == 0)
    server, ports = start_server(BIN, D, LOG)
    hp = ports["http"]
    alice = session(hp, "alice", "alices-own-password-1")
    bob = session(hp, "bob", "bobs-own-password-22")
    st, b = bob.call("GET", "/admin/v1/pending/" + pid)
    check("the pending change survives a restart", st == 200 and b["state"] == "requested", (st, b))
    check("... still not applied", roles_of(bob, "carol") == ["auditor"])

    # ---- 3. the second admin approves: in effect; once
    st, b = bob.call("POST", "/admin/v1/pending/%s/approve" % pid)
    check("the second admin approves", st == 200 and b["state"] == "approved" and b["decidedBy"] == "bob", (st, b))
    check("the change is in effect", roles_of(alice, "carol") == ["platform_admin"])
    st, b = bob.call("POST", "/admin/v1/pending/%s/approve" % pid)
    check("a second approval is a conflict", st == 409 and code(b) == "E3002", (st, b))
    st, b = alice.call("GET", "/admin/v1/pending/" + pid)
    check("its state shows who approved it", st == 200 and b["state"] == "approved" and b["decidedBy"] == "bob"
          and b["mayDecide"] is False, (st, b))

    # racing decisions over HTTP: one stands
    st, p = alice.call("PUT", "/admin/v1/users/carol/roles", {"roles": ["auditor"]})
    check("another role change waits", st == 202, (st, p))
    pid2 = p["pendingId"]
    out = {}

    def decide(kind):
        a = Api(hp, bob.token)
        body = {"reason": "no"} if kind == "reject" else None
        out[kind] = a.call("POST", "/admin/v1/pending/%s/%s" % (pid2, kind), body)

    th = [threading.Thread(target=decide, args=(k,)) for k in ("approve", "reject")]
    for t in th:
        t.start()
    for t in th:
        t.join()
    sts = sorted(v[0] for v in out.values())
    check("of an approval and a rejection at once, one stands, the other is a conflict", sts == [200, 409], out)
    won = [k for k, v in out.items() if v[0] == 200][0]
    check("the user is as the decision that stood says",
          roles_of(alice, "carol") == (["auditor"] if won == "approve" else ["platform_admin"]), (won, out))

    # ---- 4. a rejection: a reason, nothing applied
    before = roles_of(alice, "carol")
    st, p = alice.call("PUT", "/admin/v1/users/carol/roles", {"roles": ["platform_admin", "auditor"]})
    check("a third role change waits", st == 202, (st, p))
    pid3 = p["pendingId"]
    for body, why in ((None, "no body"), ({}, "no reason"), ({"reason": ""}, "an empty reason"),
                      ({"reason": 5}, "a reason that is not a string")):
        st, b = bob.call("POST", "/admin/v1/pending/%s/reject" % pid3, body)
        check("a rejection with %s is refused" % why,
              st == 400 and (code(b) == "E1002" or b["result"]["detail"]["field"] == "reason"), (st, b))
    st, b = bob.call("GET", "/admin/v1/pending/" + pid3)
    check("... and stored nothing", b["state"] == "requested", b)
    st, b = bob.call("POST", "/admin/v1/pending/%s/reject" % pid3, {"reason": "one role is enough"})
    check("the second admin rejects", st == 200 and b["state"] == "rejected" and b["reason"] == "one role is enough",
          (st, b))
    check("a rejected change is not applied", roles_of(alice, "carol") == before)
    st, b = bob.call("POST", "/admin/v1/pending/%s/approve" % pid3)
    check("a rejected change cannot be approved", st == 409, (st, b))

    # ---- 5. expiry ([admin] pending_ttl_s, at least 60 s; the test clock moves on instead)
    check("clean stop", stop_server(server) == 0)
    cfg = os.path.join(T, "suiro.ini")
    with open(cfg, "w") as f:
        f.write("[admin]\npending_ttl_s = 60\n")
    clock = os.path.join(T, "clock")
    set_clock(clock, 0)
    server, ports = start_server(BIN, D, LOG, extra=("--config", cfg),
                                 env=dict(os.environ, SUIRO_TEST_CLOCK_FILE=clock))
    with open(LOG) as f:
        check("the server says the test clock is on", "TEST CLOCK ON" in f.read())
    hp = ports["http"]
    alice = session(hp, "alice", "alices-own-password-1")
    bob = session(hp, "bob", "bobs-own-password-22")
    st, p = alice.call("PUT", "/admin/v1/users/carol/roles", {"roles": ["auditor"]})
    check("a change with a 60 s expiry", st == 202, (st, p))
    pid4 = p["pendingId"]
    set_clock(clock, 50 * 1000)
    st, b = bob.call("GET", "/admin/v1/pending/" + pid4)
    check("50 s on it is still requested", st == 200 and b["state"] == "requested" and b["mayDecide"] is True,
          (st, b))
    set_clock(clock, 61 * 1000)
    st, b = bob.call("GET", "/admin/v1/pending/" + pid4)
    check("past its expiry it shows as expired", st == 200 and b["state"] == "expired" and b["mayDecide"] is False,
          (st, b))
    st, b = bob.call("POST", "/admin/v1/pending/%s/approve" % pid4)
    check("an expired change cannot be approved: 409 naming the expiry",
          st == 409 and code(b) == "E3002" and "expired" in b["result"]["message"], (st, b))
    st, b = bob.call("POST", "/admin/v1/pending/%s/approve" % pid4)
    check("... again: decided (expired) already", st == 409 and "was expired already" in b["result"]["message"], (st, b))
    check("... and not applied", roles_of(alice, "carol") == before)
    check("clean stop", stop_server(server) == 0)
    server = None
    # ---- 6. every step is an event, by name
    r = subprocess.run([BIN, "replay", D, "--kind", "pending"], capture_output=True, text=True)
    lines = r.stdout.splitlines()
    check("replay shows every step of the pending changes",
          r.returncode == 0 and sum('"action":"requested"' in ln for ln in lines) == 4
          and sum('"pending":{"pending_id":"%s","action":"expired"' % pid4 in ln for ln in lines) == 1
          and sum('"pending":{"pending_id":"%s","action":"approved"' % pid in ln for ln in lines) == 1
          and sum('"action":"rejected"' in ln for ln in lines) >= 1, r.stdout + r.stderr)
    check("the approval names the approver, its source and the change as an event",
          any('"action":"approved"' in ln and '"actor":"bob"' in ln and '"source":"127.0.0.1' in ln
              and '"user":{"user_id":"carol","action":"roles_set"' in ln and '"approved_by":"bob"' in ln
              for ln in lines), r.stdout)
except Exception as e:  # noqa: BLE001 -- reported as a failed check
    check.failed(e)
finish(check, T, [server])
