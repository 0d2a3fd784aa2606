#!/usr/bin/python3
"""tests/integration/test_checkpoints.py -- signed checkpoints and proofs
end to end (issue #18, docs/audit.md "Checkpoints and proofs"), with the real
`suiro` and the independent checker tests/integration/tlog_check.py (which
imports nothing of suiro):

 1. The server signs a checkpoint every [checkpoint] interval_s (1 s here)
    while gateways (gwsim) write, and none while nothing is written.
 2. The Admin API serves the latest checkpoint, the one at or before a time,
    the inclusion proof of a record and the consistency proof between two
    checkpoints; the checker verifies the note's signature with the
    platform's certificate, the inclusion and the consistency proof.
 3. Each tampered variant is rejected by the checker: a flipped root byte,
    a wrong tree size, a wrong proof node, a truncated proof, a wrong
    signature, another key, a record outside the leaf's block, swapped
    checkpoints.
 4. Who may read: the auditor; an operator's admin and a general user 403;
    no session 401; bad parameters 400 naming them.
 5. A clean stop signs one more checkpoint (reason "stop"), found after a
    restart.
usage: test_checkpoints.py SUIRO_BIN"""
import json
import os
import subprocess
import sys
import tempfile
import time

BIN = sys.argv[1]
HERE = os.path.dirname(os.path.abspath(__file__))
T = tempfile.mkdtemp(prefix="suiro-ckpt-")
D = os.path.join(T, "data")
sys.path.insert(0, HERE)
from srtest import (Api, Checks, approve_if_pending, code, finish, gwsim_sheet, http_once, import_sheet,  # noqa: E402
                    init_with_admins, start_server, stop_server, wait_until)

CHECKER = os.path.join(HERE, "tlog_check.py")
check = Checks()
server = None
CFG = os.path.join(T, "suiro.ini")


def first_login(hp, user, temp_pw, new_pw):
    st, b = Api(hp).call("POST", "/admin/v1/sessions", {"userId": user, "password": temp_pw})
    api = Api(hp, b.get("token"))
    st2, b2 = api.call("PUT", "/admin/v1/me/password", {"currentPassword": temp_pw, "newPassword": new_pw})
    assert st == 201 and st2 == 204, (user, st, b, st2, b2)
    return api


def run_checker(*args):
    """(exit code, its line)"""
    r = subprocess.run(["/usr/bin/python3", CHECKER] + [str(a) for a in args], capture_output=True, text=True,
                       timeout=60)
    return r.returncode, (r.stdout + r.stderr).strip()


def put(name, content):
    p = os.path.join(T, name)
    with open(p, "w") as f:
        f.write(content if isinstance(content, str) else json.dumps(content))
    return p


def gwsim(mport, messages, seed):
    r = subprocess.run([BIN, "gwsim", "run", "--port", str(mport), "--gateways", "2", "--points", "5", "--batch", "10",
                        "--messages", str(messages), "--seed", str(seed)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def serve():
    return start_server(BIN, D, os.path.join(T, "server.log"), config=CFG,
                        extra=["--data", D, "--mqtt", "127.0.0.1:0", "--http", "127.0.0.1:0"])


try:
    temp, temp2 = init_with_admins(BIN, D)
    import_sheet(BIN, D, os.path.join(T, "sim.csv"), gwsim_sheet(BIN, 2, 5))
    put("suiro.ini", "[checkpoint]\ninterval_s = 1\n")
    server, ports = serve()
    hp, mp = ports["http"], ports["mqtt"]
    admin = first_login(hp, "admin", temp, "the-admins-own-password-1")
    admin2 = first_login(hp, "admin2", temp2, "the-admins-own-password-2")
    made = {}
    for uid, roles, scope in (("aud", ["auditor"], {"kind": "platform"}),
                              ("oa", ["operator_admin"], {"kind": "operator", "id": "sim"}),
                              ("gen", ["operator_general"], {"kind": "operator", "id": "sim"})):
        st, b = admin.call("POST", "/admin/v1/users", {"id": uid, "roles": roles, "scope": scope})
        password = b.get("password")
        st, b2 = approve_if_pending(admin2, st, b)
        assert st in (200, 201), (uid, st, b, b2)
        made[uid] = first_login(hp, uid, password, uid + "-password-12345")
    aud = made["aud"]
    cert = os.path.join(D, "platform-cert.pem")

    # 1. checkpoints while writing
    gwsim(mp, 20, 1)

    def latest():
        st, b = aud.call("GET", "/admin/v1/audit/checkpoints/latest")
        return b if st == 200 else None
    first = wait_until(lambda: (lambda b: b if b and b["reason"] == "interval" else None)(latest()), timeout=15)
    check("a checkpoint is signed within a few intervals of the writes", first, first)
    # the checkpoint covers the writes once one is made after them
    quiet = wait_until(lambda: (lambda a, b: b if a and b and a["seq"] == b["seq"] else None)(
        latest(), (time.sleep(2.5), latest())[1]), timeout=30)
    check("with nothing written, no new checkpoint is signed (the latest stays over 2.5 s)", quiet, quiet)
    c1 = quiet
    name = c1["keyName"]
    check("the note is a C2SP checkpoint: origin, size, base64 root, then a signature line",
          c1["note"].startswith("%s\n%d\n" % (name, c1["treeSize"])) and "\n\n\u2014 %s " % name in c1["note"]
          and c1["alg"] == "ES256", c1["note"])
    n1 = put("c1.note", c1["note"])
    rc, out = run_checker("note", cert, name, n1)
    check("the checker verifies the checkpoint's signature with the platform certificate", rc == 0, out)

    gwsim(mp, 15, 2)
    c2 = wait_until(lambda: (lambda b: b if b and b["treeSize"] > c1["treeSize"] else None)(latest()), timeout=15)
    check("more writes: a newer checkpoint of a larger tree", c2, c2)
    n2 = put("c2.note", c2["note"])

    st, b = aud.call("GET", "/admin/v1/audit/checkpoints?at=%d" % (int(time.time() * 1000) + 60000))
    check("checkpoints?at=later: the latest", st == 200 and b["seq"] == c2["seq"], (st, b))
    st, b = aud.call("GET", "/admin/v1/audit/checkpoints?at=%s" % c1["time"])
    check("checkpoints?at=the first's time: the first", st == 200 and b["seq"] == c1["seq"], (st, b))
    st, b = aud.call("GET", "/admin/v1/audit/checkpoints?at=2000-01-01T00:00:00Z")
    check("checkpoints?at=long before: 404", st == 404, (st, b))

    # 2. an inclusion proof: a record of the first writes in the second checkpoint
    seq = c1["lastSeq"] // 2
    st, inc = aud.call("GET", "/admin/v1/audit/proofs/inclusion?seq=%d&treeSize=%d" % (seq, c2["treeSize"]))
    check("the inclusion proof of a record", st == 200 and inc["treeSize"] == c2["treeSize"]
          and inc["rootHash"] == c2["rootHash"] and inc["path"], (st, inc))
    pi = put("inc.json", inc)
    rc, out = run_checker("inclusion", cert, name, n2, pi, seq)
    check("the checker verifies the inclusion proof against the signed checkpoint", rc == 0, out)
    st, con = aud.call("GET", "/admin/v1/audit/proofs/consistency?from=%d&to=%d" % (c1["treeSize"], c2["treeSize"]))
    check("the consistency proof between the two checkpoints", st == 200 and con["fromRoot"] == c1["rootHash"]
          and con["toRoot"] == c2["rootHash"], (st, con))
    pc = put("con.json", con)
    rc, out = run_checker("consistency", cert, name, n1, n2, pc)
    check("the checker verifies the consistency proof between the signed checkpoints", rc == 0, out)

    # 3. tampered variants, each rejected
    def rejected(label, *args):
        rc, out = run_checker(*args)
        check("rejected: " + label, rc == 1 and out.startswith("rejected:"), (rc, out))

    lines = c2["note"].split("\n")
    import base64
    root = bytearray(base64.b64decode(lines[2]))
    root[0] ^= 1
    rejected("a flipped root byte", "inclusion", cert, name,
             put("t1.note", "\n".join(lines[:2] + [base64.b64encode(bytes(root)).decode()] + lines[3:])), pi, seq)
    rejected("a wrong tree size in the note", "inclusion", cert, name,
             put("t2.note", "\n".join(lines[:1] + [str(c2["treeSize"] + 1)] + lines[2:])), pi, seq)
    rejected("a proof of another tree size", "inclusion", cert, name, n2,
             put("t3.json", dict(inc, treeSize=inc["treeSize"] - 1)), seq)
    bad = list(inc["path"])
    bad[0] = ("0" if bad[0][0] != "0" else "1") + bad[0][1:]
    rejected("a wrong proof node", "inclusion", cert, name, n2, put("t4.json", dict(inc, path=bad)), seq)
    rejected("a truncated proof", "inclusion", cert, name, n2, put("t5.json", dict(inc, path=inc["path"][:-1])), seq)
    rejected("a wrong leaf index", "inclusion", cert, name, n2,
             put("t5b.json", dict(inc, leafIndex=inc["leafIndex"] ^ 1)), seq)
    hdr = bytearray.fromhex(inc["payloadSha256"])
    hdr[5] ^= 0x10
    rejected("a changed block (its payload digest)", "inclusion", cert, name, n2,
             put("t5c.json", dict(inc, payloadSha256=hdr.hex())), seq)
    rejected("a record outside the leaf's block", "inclusion", cert, name, n2, pi,
             inc["blockFirstSeq"] + inc["blockCount"])
    sig = lines[-2]
    blob = bytearray(base64.b64decode(sig.rsplit(" ", 1)[1]))
    blob[10] ^= 0x01
    rejected("a wrong signature", "note", cert, name,
             put("t6.note", "\n".join(lines[:-2] + [sig.rsplit(" ", 1)[0] + " " + base64.b64encode(bytes(blob)).decode(),
                                                   ""])))
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    other = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    okey = put("other.pem", other.decode())
    rejected("another key", "note", okey, name, n2)
    rejected("another key name", "note", cert, "suiro/0000000000000000", n2)
    bad = list(con["path"])
    bad[-1] = ("0" if bad[-1][0] != "0" else "1") + bad[-1][1:]
    rejected("a wrong consistency proof node", "consistency", cert, name, n1, n2, put("t7.json", dict(con, path=bad)))
    rejected("a truncated consistency proof", "consistency", cert, name, n1, n2,
             put("t8.json", dict(con, path=con["path"][:-1])))
    rejected("swapped checkpoints", "consistency", cert, name, n2, n1, pc)

    # 4. who may read, and bad parameters
    for uid in ("oa", "gen"):
        st, b = made[uid].call("GET", "/admin/v1/audit/checkpoints/latest")
        check("%s may not read the checkpoints (403 naming audit.read)" % uid,
              st == 403 and code(b) == "E2003" and "audit.read" in b["result"]["message"], (st, b))
        st, b = made[uid].call("GET", "/admin/v1/audit/proofs/inclusion?seq=1")
        check("%s may not read a proof (403)" % uid, st == 403, (st, b))
    st = http_once(hp, "GET", "/admin/v1/audit/checkpoints/latest")[0]
    check("no session: 401", st == 401, st)
    for path, field in (("/admin/v1/audit/proofs/inclusion?seq=x", "seq"),
                        ("/admin/v1/audit/proofs/inclusion", "seq"),
                        ("/admin/v1/audit/proofs/inclusion?seq=1&treeSize=0", "treeSize"),
                        ("/admin/v1/audit/proofs/consistency?from=0", "from"),
                        ("/admin/v1/audit/checkpoints?at=yesterday", "at")):
        st, b = aud.call("GET", path)
        check("%s: 400 naming %s" % (path, field), st == 400 and field in b["result"]["message"], (st, b))
    st, b = aud.call("GET", "/admin/v1/audit/proofs/inclusion?seq=%d&treeSize=%d" % (10 ** 9, c2["treeSize"]))
    check("a record not in the tree: 404 saying so", st == 404 and "no leaf" in b["result"]["message"], (st, b))
    st, b = aud.call("GET", "/admin/v1/audit/proofs/consistency?from=%d&to=%d" % (c2["treeSize"], c1["treeSize"]))
    check("consistency from a larger to a smaller tree: 400", st == 400, (st, b))

    # 5. a clean stop signs one more; it is there after a restart
    gwsim(mp, 3, 3)
    check("the server stops cleanly", stop_server(server) == 0)
    # the last record the server wrote before its stop, not counting checkpoints
    evs = [json.loads(ln) for ln in subprocess.run([BIN, "replay", D], capture_output=True, text=True,
                                                   timeout=120).stdout.splitlines() if ln.strip()]
    last_write = max(e["seq"] for e in evs if "checkpoint" not in e)
    server, ports = serve()
    aud = Api(ports["http"])
    st, b = aud.call("POST", "/admin/v1/sessions", {"userId": "aud", "password": "aud-password-12345"})
    aud.token = b.get("token")
    st, b = aud.call("GET", "/admin/v1/audit/checkpoints/latest")
    # "stop" unless the last interval's checkpoint already covered the last write (then none is due at the stop)
    check("after the restart the latest checkpoint covers every write before the stop (signed at the stop, or by "
          "the last interval when nothing came after it)",
          st == 200 and b["treeSize"] > c2["treeSize"] and b["lastSeq"] >= last_write and
          (b["reason"] == "stop" or b["lastSeq"] == last_write), (st, b, last_write))
    rc, out = run_checker("note", cert, name, put("c3.note", b.get("note", "")))
    check("... and it verifies", rc == 0, out)
except Exception as e:  # noqa: BLE001
    check.failed(e)
finally:
    stop_server(server)
finish(check, T, [])
