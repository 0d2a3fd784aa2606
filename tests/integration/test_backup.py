#!/usr/bin/python3
"""tests/integration/test_backup.py -- online backups under load and their
restores (docs/backup.md, issue #15).

Crash rounds: `suiro gwsim` publishes QoS 1 while each round takes a backup
one of three ways and kills something at a random point:
  api     `suiro backup DIR SET` on the served directory (through the Admin
          API); the server is kill -9'd at a random moment of it
  both    the same, the CLI and the server kill -9'd together
  direct  the server is kill -9'd first; `suiro backup DIR SET` then opens
          the directory itself and is kill -9'd at a random moment (or
          finishes)
then the server is started again on the same ports (gwsim reconnects).
Afterwards every backup of the set with a manifest is restored
(`suiro restore`), `suiro verify`'d, and every message acknowledged before
its round's backup began is in it; a `.partial` is never restored. Then a
`--to SEQ` restore, the route's answers without a session and on a GET, and
the [backup] schedule with keep (interval_s 1: polled, not slept).
usage: test_backup.py SUIRO_BIN [ROUNDS]  (SR_SOAK=N: N times the rounds, as
`make soak` runs it; SR_BACKUP_ROUNDS overrides)"""
import json
import os
import random
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import srtest  # noqa: E402

BIN = sys.argv[1]
SOAK = max(1, int(os.environ.get("SR_SOAK", "1") or 1))  # make soak: 20x the rounds
ROUNDS = int(os.environ.get("SR_BACKUP_ROUNDS", "0")) or SOAK * int(sys.argv[2] if len(sys.argv) > 2 else "3")
T = tempfile.mkdtemp(prefix="suiro-backup-")
D = os.path.join(T, "data")
SET = os.path.join(T, "set")
ACKS = os.path.join(T, "acks.txt")
CFG = os.path.join(T, "suiro.ini")
rng = random.Random(int(os.environ.get("SR_TEST_SEED", "15")))
procs = []
check = srtest.Checks()
PK = os.path.join(D, "platform-key.pem")


def acked():
    s = set()
    try:
        for line in open(ACKS):
            p = line.split()
            if len(p) == 3 and p[0] == "ack":
                s.add("%s-%s" % (p[1], p[2]))
    except FileNotFoundError:
        pass
    return s


SLOW = dict(os.environ, SUIRO_TEST_BACKUP_DELAY_MS="15")  # a backup long enough to be killed inside


def start(ports=None):
    p, got = srtest.start_server(BIN, D, os.path.join(T, "server.log"),
                                 mqtt_port=ports["mqtt"] if ports else 0,
                                 http_port=ports["http"] if ports else 0, extra=("--config", CFG), env=SLOW)
    procs.append(p)
    return p, got


def wall_ms():
    return int(time.time() * 1000)


def name_ms(name):
    """the creation time (UTC ms) in a backup's name: 20261206T183130.923Z-S"""
    m = re.match(r"(\d{8}T\d{6})\.(\d{3})Z-\d+$", name)
    if not m:
        return None
    t = time.strptime(m.group(1), "%Y%m%dT%H%M%S")
    return (int(time.mktime(t)) - time.timezone) * 1000 + int(m.group(2))


def stored_ids(d):
    out = subprocess.run([BIN, "replay", d, "--kind", "measurements"], capture_output=True, text=True)
    return {json.loads(l)["message_id"] for l in out.stdout.splitlines() if l.strip()}


try:
    pw = srtest.init_with_admin(BIN, D)
    srtest.import_sheet(BIN, D, os.path.join(T, "sim.csv"), srtest.gwsim_sheet(BIN, 4, 5))
    with open(CFG, "w") as f:
        f.write("[backup]\ndirectory = %s\nkeep = 1000\n" % SET)
    srv, ports = start()
    admin = srtest.admin_session(ports["http"], "admin", pw, new_password="backup-admin-pw-1")
    env = dict(SLOW, SUIRO_URL="http://127.0.0.1:%d" % ports["http"], SUIRO_TOKEN=admin.token)
    sim = subprocess.Popen([BIN, "gwsim", "run", "--port", str(ports["mqtt"]), "--gateways", "4", "--points", "5",
                            "--batch", "7", "--messages", "1000000", "--window", "8", "--acks", ACKS,
                            "--duration", "3600"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(sim)

    rounds = []  # (mode, wall ms before the backup began, acked set then)
    partials = set()
    for r in range(ROUNDS):
        before = len(acked())
        check("round %d: the gateways write (acks grow)" % r,
              srtest.wait_until(lambda: len(acked()) > before + 20, timeout=60))
        mode = ["api", "both", "direct"][r % 3]
        if mode == "direct":
            srv.send_signal(signal.SIGKILL)
            srv.wait()
        t0, a0 = wall_ms(), acked()
        cli_env = env if mode != "direct" else SLOW
        b = subprocess.Popen([BIN, "backup", D, SET], env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        procs.append(b)
        # kill at a random point: before it began writing (a third of the
        # rounds), or once its .partial is there, a random time into the copy
        if rng.random() < 0.67:
            srtest.wait_until(lambda: b.poll() is not None or any(n.endswith(".partial") for n in
                                                                  (os.listdir(SET) if os.path.isdir(SET) else [])),
                              timeout=30)
        try:
            b.wait(rng.uniform(0.0, 0.1))
        except subprocess.TimeoutExpired:
            pass
        if mode in ("api", "both") and srv.poll() is None:
            srv.send_signal(signal.SIGKILL)
            srv.wait()
        if mode in ("both", "direct") and b.poll() is None:
            b.send_signal(signal.SIGKILL)
        b.wait()
        rounds.append((mode, t0, a0))
        # an interrupted backup is a .partial, never a backup: no restore takes it
        for n in [n for n in os.listdir(SET) if n.endswith(".partial")] if os.path.isdir(SET) else []:
            partials.add(n)
            rr = subprocess.run([BIN, "restore", os.path.join(SET, n), os.path.join(T, "rp"), "--platform-key", PK],
                                capture_output=True, text=True)
            check("round %d: the interrupted %s is refused (no manifest)" % (r, n),
                  rr.returncode == 1 and "manifest" in rr.stderr and not os.path.exists(os.path.join(T, "rp")),
                  rr.stderr)
        srv, _ = start(ports)
    # one more, to the end, through the API: it must succeed
    t0, a0 = wall_ms(), acked()
    r = subprocess.run([BIN, "backup", D, SET], env=dict(env, SUIRO_TEST_BACKUP_DELAY_MS="0"), capture_output=True,
                       text=True)
    check("a backup through the Admin API (suiro backup on a served directory)", r.returncode == 0,
          (r.returncode, r.stdout, r.stderr))
    rounds.append(("final", t0, a0))
    # the route: no session, and the list
    st, _, body, _ = srtest.http_once(ports["http"], "POST", "/admin/v1/backups", {})
    check("POST /admin/v1/backups without a session: 401", st == 401, (st, body))
    st, body = admin.call("GET", "/admin/v1/backups")
    check("GET /admin/v1/backups lists them, verified", st == 200 and body["backups"] and
          all(x["verified"] for x in body["backups"]), (st, body))
    st, body = admin.call("POST", "/admin/v1/backups", {"dest": T})
    check("a dest that is not the [backup] directory: 400 naming dest", st == 400 and "dest" in json.dumps(body),
          (st, body))

    srtest.stop_server(sim, 10, signal.SIGINT)
    srtest.stop_server(srv)

    # every backup with a manifest: restored, verified, holding what was acknowledged before it began
    names = sorted(os.listdir(SET))
    complete = [n for n in names if os.path.exists(os.path.join(SET, n, "manifest"))]
    partial = [n for n in names if n.endswith(".partial")]
    print("backups:", len(complete), "interrupted:", len(partials), "rounds:", [m for m, _, _ in rounds])
    check("the next backup removed the interrupted ones", not partial, partial)
    check("at least the final backup is complete", len(complete) >= 1, names)
    check("no directory under a backup's name lacks its manifest",
          all(n in complete or n.endswith(".partial") for n in names), names)
    starts = sorted(t for _, t, _ in rounds)
    restored = 0
    for i, n in enumerate(complete):
        dst = os.path.join(T, "r%d" % i)
        rr = subprocess.run([BIN, "restore", os.path.join(SET, n), dst, "--platform-key", PK], capture_output=True,
                            text=True)
        if not check("restore %s" % n, rr.returncode == 0, rr.stderr):
            continue
        restored += 1
        v = subprocess.run([BIN, "verify", dst], capture_output=True, text=True)
        check("verify of the restore of %s" % n, v.returncode == 0, v.stdout + v.stderr)
        # the round it belongs to: the last one that began before it was created
        c = name_ms(n)
        owner = [x for x in rounds if x[1] <= c + 1]
        if owner:
            _, _, a0 = max(owner, key=lambda x: x[1])
            have = stored_ids(dst)
            missing = sorted(a0 - have)
            check("every message acknowledged before %s began is in it (%d)" % (n, len(a0)), not missing,
                  missing[:10])
    check("every complete backup restored", restored == len(complete), (restored, complete))
    # --to SEQ: the state as of an earlier command
    last = os.path.join(SET, complete[-1])
    rr = subprocess.run([BIN, "restore", last, os.path.join(T, "to"), "--platform-key", PK, "--to", "50"],
                        capture_output=True, text=True)
    ok = check("restore --to 50", rr.returncode == 0, rr.stderr)
    if ok:
        j = json.loads(rr.stdout)
        # the end of the group holding 50 (docs/backup.md: a group is never
        # cut in half, and its WriteAudit comes after its writes)
        check("--to cut the log at the end of the group holding 50 (at or after 50)", j["seq"] >= 50, j)
        v = subprocess.run([BIN, "verify", os.path.join(T, "to")], capture_output=True, text=True)
        check("verify after --to", v.returncode == 0, v.stdout + v.stderr)
        rep = subprocess.run([BIN, "replay", os.path.join(T, "to")], capture_output=True, text=True).stdout
        seqs = [json.loads(l)["seq"] for l in rep.splitlines() if l.strip()]
        check("the cut log ends at the cut (then the restore's event)", seqs[-2] == j["seq"] and seqs[-1] == j["seq"] + 1
              and '"restore"' in rep.splitlines()[-1], seqs[-3:])

    # the schedule: every second, keep 2 (polled until three ran)
    SET2 = os.path.join(T, "set2")
    with open(CFG, "w") as f:
        f.write("[backup]\ndirectory = %s\ninterval_s = 1\nkeep = 2\n" % SET2)
    log = os.path.join(T, "server.log")
    done_before = open(log).read().count('msg="backup done"')
    srv, _ = start(ports)
    check("the schedule ran three backups",
          srtest.wait_until(lambda: open(log).read().count('msg="backup done"') >= done_before + 3, timeout=60))
    srtest.stop_server(srv)
    left = [n for n in os.listdir(SET2) if os.path.exists(os.path.join(SET2, n, "manifest"))]
    check("keep 2: two complete backups are left", len(left) == 2, os.listdir(SET2))

    # an encrypted directory: a wrong key is refused naming it and leaves
    # nothing in the set; on a terminal (`script` gives the command a pty)
    # the progress line (bytes, rate, ETA) comes before the JSON line
    KD = os.path.join(T, "keys")
    os.makedirs(KD)
    k1, k2 = os.path.join(KD, "k1.hex"), os.path.join(KD, "k2.hex")
    for k in (k1, k2):
        with open(k, "w") as f:
            f.write(os.urandom(32).hex() + "\n")
    E, SET3 = os.path.join(T, "enc"), os.path.join(T, "set3")
    subprocess.run([BIN, "init", "--demo", E, "--key-file", k1], check=True, capture_output=True)
    r = subprocess.run([BIN, "backup", E, SET3, "--key-file", k2], capture_output=True, text=True)
    check("a backup with the wrong key: exit 1 naming the key, nothing in the set",
          r.returncode == 1 and "key" in r.stderr and not (os.path.isdir(SET3) and os.listdir(SET3)),
          (r.returncode, r.stderr, os.listdir(SET3) if os.path.isdir(SET3) else None))
    cmd = " ".join(shlex.quote(a) for a in [BIN, "backup", E, SET3, "--key-file", k1])
    r = subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True, text=True)
    check("on a terminal: a progress line (MB, MB/s, ETA), then the JSON line",
          r.returncode == 0 and re.search(r"MB/s +ETA \d+ s", r.stdout) is not None
          and r.stdout.index("ETA") < r.stdout.index('{"backup"'), (r.returncode, r.stdout[-600:]))
    r = subprocess.run([BIN, "backup", E, SET3, "--key-file", k1], capture_output=True, text=True)
    check("not on a terminal: no progress line, the JSON line alone",
          r.returncode == 0 and "ETA" not in r.stderr and r.stdout.count("\n") == 1 and '"backup"' in r.stdout,
          (r.returncode, r.stdout, r.stderr))
except Exception as e:  # noqa: BLE001 -- shown, and a failure
    check.failed(e)
finally:
    srtest.finish(check, T, procs)
