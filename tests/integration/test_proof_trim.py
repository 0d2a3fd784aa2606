#!/usr/bin/python3
"""tests/integration/test_proof_trim.py -- an inclusion and a consistency
proof across a retention trim, end to end through the Admin API (issue #18,
R-RE-3; docs/audit.md "A trimmed log").

Registered in tests/CMakeLists.txt (session 13). Written in session 12, it
found two bugs, fixed since: the platform's audit key was never destroyed,
so its records held the first segment for ever (engine/retention.c
audit_candidates now takes operator ""), and after the destruction of the
operator's data key the live `heads` rows still held what that key's
records built, so `suiro verify` said index-differs (retention.c invariant
5: a head holding the epoch's samples holds the key; a head wholly past a
cut is retired by the Retention event, heads.c sr__heads_retire).

The real `suiro serve` with the test clock (SUIRO_TEST_CLOCK_FILE,
docs/retention.md "A test clock": the engine's clock is the wall clock plus
a file's offset), small log segments and 30-day periods:
 1. gateways (gwsim) write several segments' worth of values; the audit
    keys (the platform's and the operator's) and its data key are rotated
    (the old records' keys can then be destroyed by the sweep); a little
    more is written and a checkpoint C1 is signed after it;
 2. the clock moves on 400 days; a sweep forced through POST
    /admin/v1/retention/run cuts the values, the audit rows and the old
    keys, and drops the old segments (a LogTrim: the tree's leaves below
    the horizon survive as its frontier);
 3. a newer checkpoint C2 is signed; through the Admin API (as the
    auditor): the inclusion proof of a record that survived, in C2, and the
    consistency proof from C1 to C2; both, and both notes' signatures, are
    verified by the independent checker tlog_check.py (stdlib and
    python3-cryptography only); a dropped record's proof is 404;
 4. after a clean stop, `suiro verify` passes on the trimmed directory.
usage: test_proof_trim.py SUIRO_BIN"""
import json
import os
import subprocess
import sys
import tempfile
import time

BIN = sys.argv[1]
HERE = os.path.dirname(os.path.abspath(__file__))
T = tempfile.mkdtemp(prefix="suiro-proof-trim-")
D = os.path.join(T, "data")
sys.path.insert(0, HERE)
from srtest import Api, Checks, approve_if_pending, finish, gwsim_sheet, start_server, stop_server, wait_until  # noqa: E402,E501

CHECKER = os.path.join(HERE, "tlog_check.py")
CLOCK = os.path.join(T, "clock")
K = os.path.join(T, "master.key")
CFG = os.path.join(T, "suiro.ini")
DAY = 86400000
check = Checks()
server = None


def set_clock(offset_ms):
    tmp = CLOCK + ".new"
    with open(tmp, "w") as f:
        f.write("suiro-test-clock-offset-ms %d\n" % offset_ms)
    os.rename(tmp, CLOCK)  # atomic: the server never reads half a file


def login(hp, user, pw, new_pw=None):
    st, b = Api(hp).call("POST", "/admin/v1/sessions", {"userId": user, "password": pw})
    assert st == 201, (user, st, b)
    api = Api(hp, b.get("token"))
    if new_pw:
        st2, b2 = api.call("PUT", "/admin/v1/me/password", {"currentPassword": pw, "newPassword": new_pw})
        assert st2 == 204, (user, st2, b2)
    return api


def run_checker(*args):
    r = subprocess.run(["/usr/bin/python3", CHECKER] + [str(a) for a in args], capture_output=True, text=True,
                       timeout=60)
    return r.returncode, (r.stdout + r.stderr).strip()


def put(name, content):
    p = os.path.join(T, name)
    with open(p, "w") as f:
        f.write(content if isinstance(content, str) else json.dumps(content))
    return p


def gwsim(mport, messages, seed):
    r = subprocess.run([BIN, "gwsim", "run", "--port", str(mport), "--gateways", "2", "--points", "20", "--batch",
                        "100", "--messages", str(messages), "--seed", str(seed)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr


def log_bytes():
    ld = os.path.join(D, "log")
    return sum(os.path.getsize(os.path.join(ld, f)) for f in os.listdir(ld) if f.endswith(".seg"))


def segments():
    return sorted(f for f in os.listdir(os.path.join(D, "log")) if f.endswith(".seg"))


try:
    with open(K, "w") as f:
        f.write(os.urandom(32).hex() + "\n")
    r = subprocess.run([BIN, "init", "--second-admin", "admin2", "--key-file", K, D], check=True, capture_output=True,
                       text=True)
    temp, temp2 = [ln.split(":", 1)[1].strip() for ln in r.stdout.splitlines() if ln.startswith("temporary password:")]
    with open(os.path.join(T, "sim.csv"), "w") as f:
        f.write(gwsim_sheet(BIN, 2, 20))
    subprocess.run([BIN, "sheet", "import", os.path.join(T, "sim.csv"), D, "--key-file", K], check=True,
                   capture_output=True)
    put("suiro.ini", "[engine]\nsegment_bytes = 1048576\nzstd_level = 0\n[checkpoint]\ninterval_s = 1\n"
        "[retention]\ndefault_days = 30\naudit_days = 30\nsweep_interval_s = 0\nmessage_id_window_s = 86400\n")
    set_clock(0)
    env = dict(os.environ, SUIRO_TEST_CLOCK_FILE=CLOCK)
    server, ports = start_server(BIN, D, os.path.join(T, "server.log"), env=env,
                                 extra=["--config", CFG, "--data", D, "--key-file", K, "--mqtt", "127.0.0.1:0",
                                        "--http", "127.0.0.1:0"])
    hp, mp = ports["http"], ports["mqtt"]
    with open(os.path.join(T, "server.log")) as f:
        check("the server says the test clock is on", "TEST CLOCK ON" in f.read())
    admin = login(hp, "admin", temp, "the-admins-own-password-1")
    admin2 = login(hp, "admin2", temp2, "the-admins-own-password-2")
    st, b = admin.call("POST", "/admin/v1/users", {"id": "aud", "roles": ["auditor"], "scope": {"kind": "platform"}})
    aud_pw = b.get("password")
    st, b2 = approve_if_pending(admin2, st, b)
    assert st in (200, 201), (st, b, b2)
    aud = login(hp, "aud", aud_pw, "aud-password-12345")

    # 1. several segments of values, the old keys rotated, a little more, C1
    # (gwsim's message ids repeat from run to run: one long run, not many short ones)
    gwsim(mp, 1500, 1)
    check("several log segments written (%d)" % len(segments()), len(segments()) >= 3, (segments(), log_bytes()))
    for op, cls in (("", "audit"), ("sim", "audit"), ("sim", "data")):
        st, b = admin.call("POST", "/admin/v1/keys/rotate", {"operator": op, "class": cls})
        st, b = approve_if_pending(admin2, st, b)
        check("the %s key of %r rotated" % (cls, op), st in (200, 201), (st, b))
    gwsim(mp, 1505, 2)  # (the first 1500 messages of each gateway: duplicates, acknowledged, not written again)

    def latest():
        st, b = aud.call("GET", "/admin/v1/audit/checkpoints/latest")
        return b if st == 200 else None
    c1 = wait_until(lambda: (lambda a, b: b if a and b and a["seq"] == b["seq"] else None)(
        latest(), (time.sleep(2.5), latest())[1]), timeout=60)
    check("C1: a checkpoint after the writes", c1, c1)
    name = c1["keyName"]
    n1 = put("c1.note", c1["note"])
    cert = os.path.join(D, "platform-cert.pem")

    # 2. 400 days on; the sweep drops the old segments
    set_clock(400 * DAY)
    admin = login(hp, "admin", "the-admins-own-password-1")
    segs_before = segments()
    st, rep = admin.call("POST", "/admin/v1/retention/run")
    check("the sweep ran", st == 200, (st, rep))
    check("the sweep dropped segments (%s)" % rep.get("segmentsDropped"), rep.get("segmentsDropped", 0) > 0, rep)
    check("their files are gone", len(segments()) < len(segs_before), (segs_before, segments()))
    first_kept = int(segments()[0].split(".")[0]) if segments() else 0

    # 3. C2, and the proofs through the Admin API
    aud = login(hp, "aud", "aud-password-12345")
    c2 = wait_until(lambda: (lambda b: b if b and b["treeSize"] > c1["treeSize"] else None)(latest()), timeout=60)
    check("C2: a newer checkpoint after the trim", c2, (c1, latest()))
    n2 = put("c2.note", c2["note"])
    for n in (n1, n2):
        rc, out = run_checker("note", cert, name, n)
        check("the checker verifies the note's signature (%s)" % os.path.basename(n), rc == 0, out)
    seq = c1["lastSeq"]
    check("C1's last record is kept (first kept %d)" % first_kept, seq >= first_kept, (seq, first_kept))
    st, inc = aud.call("GET", "/admin/v1/audit/proofs/inclusion?seq=%d&treeSize=%d" % (seq, c2["treeSize"]))
    check("the inclusion proof of a surviving record", st == 200 and inc.get("rootHash") == c2["rootHash"], (st, inc))
    rc, out = run_checker("inclusion", cert, name, n2, put("inc.json", inc), seq)
    check("the checker verifies the inclusion proof across the trim", rc == 0, out)
    st, con = aud.call("GET", "/admin/v1/audit/proofs/consistency?from=%d&to=%d" % (c1["treeSize"], c2["treeSize"]))
    check("the consistency proof from C1 to C2", st == 200 and con.get("fromRoot") == c1["rootHash"]
          and con.get("toRoot") == c2["rootHash"], (st, con))
    rc, out = run_checker("consistency", cert, name, n1, n2, put("con.json", con))
    check("the checker verifies the consistency proof across the trim", rc == 0, out)
    st, b = aud.call("GET", "/admin/v1/audit/proofs/inclusion?seq=1&treeSize=%d" % c2["treeSize"])
    check("a dropped record's inclusion proof: 404", st == 404, (st, b))

    # 4. verify on the stopped, trimmed directory
    check("a clean stop", stop_server(server) == 0)
    server = None
    v = subprocess.run([BIN, "verify", D, "--key-file", K, "--json"], capture_output=True, text=True, timeout=300)
    check("verify passes on the trimmed directory", v.returncode == 0, v.stdout + v.stderr)
except Exception as e:  # noqa: BLE001
    check.failed(e)
finish(check, T, [server])
