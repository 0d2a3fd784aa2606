#!/usr/bin/python3
"""tests/integration/test_admin_cli.py -- `suiro admin`, the Admin API's
command-line client (api/cli/cmd_admin.c), against the real server:

 1. every named subcommand's route (`suiro admin help`) is a route of the
    server (`suiro routes`);
 2. login (SUIRO_PASSWORD) prints the token JSON; the token from SUIRO_TOKEN
    or --token, the URL from SUIRO_URL or --url;
 3. the forced password change, users and vendors by named subcommands,
    `call METHOD PATH --data JSON|@FILE` for any route (a role change is a
    pending change that init's second admin approves with `call`);
 4. the exit codes are apsim's: 0 ok, 1 an error answer (its JSON printed on
    stdout), 2 usage, 3 the server not reachable.
usage: test_admin_cli.py SUIRO_BIN"""
import json
import os
import subprocess
import sys
import tempfile

BIN = sys.argv[1]
T = tempfile.mkdtemp(prefix="suiro-admincli-")
D = os.path.join(T, "data")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from srtest import Checks, finish, free_port, start_server, stop_server  # noqa: E402

check = Checks()
server = None


def admin(*args, env=None, token=None, url=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith("SUIRO_")}
    if url:
        e["SUIRO_URL"] = url
    if token:
        e["SUIRO_TOKEN"] = token
    e.update(env or {})
    r = subprocess.run([BIN, "admin"] + list(args), capture_output=True, text=True, env=e, stdin=subprocess.DEVNULL)
    try:
        out = json.loads(r.stdout) if r.stdout.strip() else None
    except ValueError:
        out = r.stdout
    return r.returncode, out, r.stderr


try:
    # a second platform admin approves the privilege change of part 3 (the two-person rule)
    r = subprocess.run([BIN, "init", "--demo", "--second-admin", "admin2", D], check=True, capture_output=True,
                       text=True)
    temp, temp2 = [ln.split(":", 1)[1].strip() for ln in r.stdout.splitlines()
                   if ln.startswith("temporary password:")][:2]
    server, ports = start_server(BIN, D, os.path.join(T, "server.log"))
    url = "http://127.0.0.1:%d" % ports["http"]

    # ---- 1. the table's routes are the server's
    routes = set(subprocess.run([BIN, "routes"], capture_output=True, text=True, check=True).stdout.split("\n"))
    rows = [ln.split() for ln in subprocess.run([BIN, "admin", "help"], capture_output=True, text=True,
                                                 check=True).stdout.splitlines() if ln.strip()]
    missing = [r for r in rows if "%s %s" % (r[1], r[2]) not in routes]
    check("every subcommand's route is a route of the server (%d rows)" % len(rows), len(rows) >= 20 and not missing,
          missing)

    # ---- 2. login
    rc, b, err = admin("login", "--user", "admin", env={"SUIRO_PASSWORD": temp}, url=url)
    check("login prints the token JSON", rc == 0 and b["mustChangePassword"] is True and len(b["token"]) == 64,
          (rc, b, err))
    tok = b["token"]
    rc, b, err = admin("login", "--user", "admin", env={"SUIRO_PASSWORD": "wrong-password"}, url=url)
    check("a wrong password: exit 1, the error JSON on stdout", rc == 1 and b["result"]["code"] == "E2001", (rc, b))
    rc, b, err = admin("me", token=tok, url=url)
    check("me with SUIRO_TOKEN and SUIRO_URL", rc == 0 and b["id"] == "admin", (rc, b, err))
    rc, b, err = admin("me", "--token", tok, "--url", url)
    check("me with --token and --url", rc == 0 and b["id"] == "admin", (rc, b, err))
    rc, b, err = admin("users", token=tok, url=url)
    check("a must-change session is refused: exit 1", rc == 1 and b["result"]["code"] == "E2003", (rc, b))

    # ---- 3. named subcommands and call
    rc, b, err = admin("password", "--current-password", temp, "--new-password", "short", token=tok, url=url)
    check("a refused password change: exit 1 naming the field",
          rc == 1 and b["result"]["detail"]["field"] == "newPassword", (rc, b, err))
    rc, b, err = admin("password", "--current-password", temp, "--new-password", "cli-admin-password-1", token=tok,
                       url=url)
    check("the password change", rc == 0 and b is None, (rc, b, err))
    rc, b, err = admin("vendor-create", "--id", "v1", "--name", "V One", "--kind", "gw", token=tok, url=url)
    check("vendor-create", rc == 0 and b == {"id": "v1", "name": "V One", "kind": "gw"}, (rc, b, err))
    rc, b, err = admin("user-create", "--id", "alice", "--scope-kind", "operator", "--scope-id", "demo", "--roles",
                       "operator_general", "--name", "Alice", token=tok, url=url)
    check("user-create prints the user and its temporary password",
          rc == 0 and b["id"] == "alice" and b["scope"] == {"kind": "operator", "id": "demo"}
          and len(b["password"]) == 32, (rc, b, err))
    rc, b, err = admin("user-roles", "alice", "--roles", "operator_admin,operator_general", token=tok, url=url)
    check("user-roles with a list: a pending change (a privilege change)",
          rc == 0 and b["state"] == "requested" and b["pendingId"], (rc, b, err))
    pid = b["pendingId"]
    rc, b2, err = admin("login", "--user", "admin2", env={"SUIRO_PASSWORD": temp2}, url=url)
    tok2 = b2["token"]
    rc, _, err = admin("password", "--current-password", temp2, "--new-password", "cli-admin2-password", token=tok2,
                       url=url)
    rc, b, err = admin("pending", token=tok2, url=url)
    check("pending lists it to the second admin, who may decide it",
          rc == 0 and [(x["pendingId"], x["mayDecide"]) for x in b["pending"]] == [(pid, True)], (rc, b, err))
    rc, b, err = admin("pending-reject", pid, token=tok2, url=url)
    check("pending-reject without --reason: exit 1 naming the field",
          rc == 1 and b["result"]["detail"]["field"] == "reason", (rc, b, err))
    rc, b, err = admin("pending-approve", pid, token=tok, url=url)
    check("the requester's pending-approve: exit 1, 403", rc == 1 and b["result"]["code"] == "E2003", (rc, b, err))
    rc, b, err = admin("pending-approve", pid, token=tok2, url=url)
    check("the second admin's pending-approve", rc == 0 and b["state"] == "approved", (rc, b, err))
    rc, b, err = admin("pending-get", pid, token=tok, url=url)
    check("pending-get", rc == 0 and b["decidedBy"] == "admin2", (rc, b, err))
    rc, b, err = admin("user", "alice", token=tok, url=url)
    check("... and the roles are set", rc == 0 and b["roles"] == ["operator_admin", "operator_general"], (rc, b, err))
    rc, b, err = admin("user", "alice", token=tok, url=url)
    check("user", rc == 0 and b["name"] == "Alice", (rc, b, err))
    f = os.path.join(T, "op.json")
    with open(f, "w") as fh:
        json.dump({"id": "op9", "name": "Nine"}, fh)
    rc, b, err = admin("call", "POST", "/admin/v1/operators", "--data", "@" + f, token=tok, url=url)
    check("call with --data @FILE", rc == 0 and b == {"id": "op9", "name": "Nine"}, (rc, b, err))
    rc, b, err = admin("call", "PUT", "/admin/v1/operators/op9", "--data", '{"name":"Neun"}', token=tok, url=url)
    check("call PUT with --data JSON", rc == 0 and b["name"] == "Neun", (rc, b, err))
    rc, b, err = admin("call", "DELETE", "/admin/v1/operators/op9", token=tok, url=url)
    check("call DELETE", rc == 0, (rc, b, err))
    rc, b, err = admin("operator", "op9", token=tok, url=url)
    check("an unknown operator: exit 1, 404's JSON", rc == 1 and b["result"]["code"] == "E3001", (rc, b))
    rc, b, err = admin("logout", token=tok, url=url)
    check("logout", rc == 0, (rc, b, err))
    rc, b, err = admin("me", token=tok, url=url)
    check("the token is dead", rc == 1 and b["result"]["code"] == "E2001", (rc, b))

    # ---- 4. usage and connection
    rc, b, err = admin("frobnicate", token=tok, url=url)
    check("an unknown subcommand: exit 2 naming it", rc == 2 and "frobnicate" in err, (rc, err))
    rc, b, err = admin("user", token=tok, url=url)
    check("a missing argument: exit 2", rc == 2, (rc, err))
    rc, b, err = admin("login", env={"SUIRO_PASSWORD": "x"}, url=url)
    check("login without --user: exit 2", rc == 2 and "--user" in err, (rc, err))
    rc, b, err = admin("call", "GET", token=tok, url=url)
    check("call without a PATH: exit 2", rc == 2, (rc, err))
    rc, b, err = admin("call", "POST", "/admin/v1/operators", "--data", "@" + os.path.join(T, "none.json"),
                       token=tok, url=url)
    check("an unreadable --data file: exit 1", rc == 1 and "cannot open" in err, (rc, err))
    rc, b, err = admin("me", token=tok, url="http://127.0.0.1:%d" % free_port())
    check("the server not reachable: exit 3", rc == 3, (rc, err))
    check("clean stop", stop_server(server) == 0)
    server = None
except Exception as e:  # noqa: BLE001 -- reported as a failed check
    check.failed(e)
finish(check, T, [server])
