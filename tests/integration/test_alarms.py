#!/usr/bin/python3
"""tests/integration/test_alarms.py -- the alarm life cycle and the rules
(issue #17, R-MO-3, R-MO-4; docs/monitoring.md "Alarms", "Clock") with the
real `suiro`, its evaluator every second ([alarms] interval_s = 1):

 1. disk-free: the data directory on a tmpfs (/dev/shm) with a 64 MiB
    filler; [alarms] disk_free_warning_mb is set 32 MiB above the free space
    the server starts with, so the first evaluation raises a warning.
    Later evaluations (seen through another rule's alarm) raise no second
    alarm and append no event (its count stays 1).
 2. The life cycle through the Admin API: alice (a platform admin)
    acknowledges it with a comment (who, when, comment kept; a second
    acknowledgement is 409 naming alice); an operator admin of demo does not
    see the platform's alarm (404, an empty list). The filler is removed:
    the condition clears and the rule resolves the alarm itself
    (autoResolved, by system).
 3. clock-unsync and clock-jump through the test hook SUIRO_TEST_ALARM_CLOCK
    (a file: a wall-clock offset in ms, the kernel's synchronisation as the
    rule sees it): unsynchronised raises clock-unsync, synchronised again
    resolves it; a 5 s offset is a jump: clock-jump (major, not resolved by
    its rule) raised, then resolved with `suiro admin alarms resolve
    --comment`; `suiro admin alarms list --query` filters.
 4. no-data: a value of demo's P001 two minutes old raises an alarm of
    demo ([alarms] no_data_s = 30) that demo's operator admin sees and
    acknowledges (the platform admin does not see it); a newer value
    resolves it.
 4b. gateway-skew ([alarms] gateway_skew_ms 10 min): a value an hour
    ahead is stored, and GW001 gets one warning naming the message.
 5. Every step is an AlarmEvent in the log (`suiro replay --kind alarm`),
    with who and the comment; disk-free was raised by exactly one event.
    After a restart the alarms read the same.
 6. cert-expiry: restarted with an MQTT TLS listener whose certificate
    ends in 10 days: a warning of subject mqtt; restarted with a renewed
    one: resolved by the rule.
 7. login-failures: four wrong logins with [login] free_failures = 1: the
    throttle refuses, the rule raises a warning, then resolves it after
    [alarms] login_quiet_s without a refusal.
 7b. writer-queue: 30 QoS 1 messages at once to a writer slowed by a test
    hook (SUIRO_TEST_WRITER_DELAY_MS, [engine] group_max 1): raised while
    more than [alarms] writer_queue_warning wait; resolved once drained.
 8. selfcheck ([alarms] selfcheck_interval_s = 2): none while the log reads
    back; a byte flipped on disk in a block appended since the last check
    raises a major alarm (last: the directory no longer opens); it is never
    resolved by the rule: an admin resolves it, with a comment.
usage: test_alarms.py SUIRO_BIN"""
import json
import os
import subprocess
import sys
import tempfile
import time

BIN = sys.argv[1]
SHM = "/dev/shm"
T = tempfile.mkdtemp(prefix="suiro-alarms-", dir=SHM if os.path.isdir(SHM) else None)
D = os.path.join(T, "data")
LOG = os.path.join(T, "server.log")
HOOK = os.path.join(T, "clock")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import srtest  # noqa: E402
from srtest import Checks, code, finish, start_server, stop_server, wait_until  # noqa: E402

check = Checks()
procs = []
MiB = 1024 * 1024


def free_mib(path):
    v = os.statvfs(path)
    return v.f_bavail * v.f_frsize // MiB


def hook(offset_ms, unsync):
    with open(HOOK + ".new", "w") as f:
        f.write("%d %d\n" % (offset_ms, unsync))
    os.replace(HOOK + ".new", HOOK)


def alarms(api, query=""):
    st, b = api.call("GET", "/admin/v1/alarms" + query)
    return b.get("alarms") if st == 200 and isinstance(b, dict) else None


def one(api, rule, state=None):
    """the newest alarm of rule (in state), or None"""
    got = [a for a in (alarms(api, "?rule=" + rule) or []) if state is None or a["state"] == state]
    return got[-1] if got else None


def cli(*args, token=None, url=None):
    env = dict(os.environ, SUIRO_TOKEN=token or "", SUIRO_URL=url or "")
    r = subprocess.run([BIN, "admin"] + list(args), capture_output=True, text=True, env=env)
    try:
        return r.returncode, json.loads(r.stdout), r.stderr
    except ValueError:
        return r.returncode, r.stdout, r.stderr


try:
    temps = srtest.init_with_admins(BIN, D, demo=True, second="bob")
    filler = os.path.join(T, "filler")
    with open(filler, "wb") as f:
        for _ in range(64):
            f.write(b"\xa5" * MiB)
        f.flush()
        os.fsync(f.fileno())
    warn_mb = free_mib(D) + 32
    hook(0, 0)
    cfg = os.path.join(T, "suiro.ini")
    with open(cfg, "w") as f:
        f.write("[engine]\ndata_dir = %s\n[mqtt]\nlisten = 127.0.0.1:0\n[http]\nlisten = 127.0.0.1:0\n"
                "[alarms]\ninterval_s = 1\ndisk_free_warning_pct = 0\ndisk_free_minor_pct = 0\n"
                "disk_free_major_pct = 0\ndisk_free_warning_mb = %d\nclock_jump_ms = 1000\nno_data_s = 30\ngateway_skew_ms = 600000\n"
                "writer_queue_warning = 0\n" % (D, warn_mb))
    env = dict(os.environ, SUIRO_TEST_ALARM_CLOCK=HOOK)
    srv, ports = start_server(BIN, D, LOG, config=cfg, env=env)
    procs.append(srv)
    hp = ports["http"]
    url = "http://127.0.0.1:%d" % hp
    alice = srtest.admin_session(hp, "admin", temps[0], "alices-own-password-1")
    bob = srtest.admin_session(hp, "bob", temps[1], "bobs-own-password-22")
    da = srtest.admin_new_user(hp, alice, "da1", "operator", "demo", ["operator_admin"], "da1-own-password-1", bob)
    da2 = srtest.admin_new_user(hp, alice, "da2", "operator", "demo", ["operator_admin"], "da2-own-password-2", bob)

    # ---- 1. disk-free raised once
    check("disk-free: the first evaluation raises a warning (free below disk_free_warning_mb)",
          wait_until(lambda: one(alice, "disk-free"), 20, 0.1), alarms(alice))
    a = one(alice, "disk-free")
    check("disk-free: raised, warning, the platform's, by system, resolves itself, count 1",
          a["state"] == "raised" and a["level"] == "warning" and a["operatorId"] == "" and a["raisedBy"] == "system"
          and a["autoResolve"] is True and a["count"] == 1 and a["alarmId"].startswith("A") and "MiB free" in a["message"],
          a)
    aid = a["alarmId"]
    hook(0, 1)  # the kernel says: unsynchronised
    check("clock-unsync: raised while the kernel reports the clock unsynchronised",
          wait_until(lambda: one(alice, "clock-unsync", "raised"), 20, 0.1), alarms(alice))
    # the evaluation that raised clock-unsync evaluated disk-free again
    b = one(alice, "disk-free")
    check("disk-free: later evaluations raise no second alarm and no re-occurrence (count 1)",
          len(alarms(alice, "?rule=disk-free")) == 1 and b["count"] == 1 and b["alarmId"] == aid, alarms(alice))
    st, b = alice.call("GET", "/admin/v1/alarms/" + aid)
    check("GET /admin/v1/alarms/{id}", st == 200 and b["alarmId"] == aid and b["rule"] == "disk-free", (st, b))

    # ---- 2. acknowledge, who may, auto-resolve
    st, b = alice.call("POST", "/admin/v1/alarms/%s/ack" % aid, {"comment": "ordering disks"})
    check("ack with a comment: 200, acknowledged by alice's user with the comment",
          st == 200 and b["state"] == "acknowledged" and b["acknowledgedBy"] == "admin"
          and b["acknowledgeComment"] == "ordering disks" and "acknowledgedAt" in b, (st, b))
    st, b = alice.call("GET", "/admin/v1/alarms/" + aid)
    check("the acknowledgement is stored (GET shows it)",
          st == 200 and b["state"] == "acknowledged" and b["acknowledgedBy"] == "admin", (st, b))
    st, b = bob.call("POST", "/admin/v1/alarms/%s/ack" % aid, {})
    check("a second ack: 409 E3002 naming who acknowledged it",
          st == 409 and code(b) == "E3002" and "by admin" in b["result"]["message"], (st, b))
    st, b = alice.call("POST", "/admin/v1/alarms/%s/ack" % aid, {"comment": 7})
    check("a comment that is not a string: 400 E1001", st == 400 and code(b) == "E1001", (st, b))
    st, b = da.call("GET", "/admin/v1/alarms/" + aid)
    check("an operator admin does not see the platform's alarm: 404", st == 404 and code(b) == "E3001", (st, b))
    st, b = da.call("POST", "/admin/v1/alarms/%s/resolve" % aid, {})
    check("... nor resolves it: 404", st == 404, (st, b))
    check("... and its list is empty", alarms(da) == [], alarms(da))
    st, b = alice.call("GET", "/admin/v1/alarms?state=bogus")
    check("a bad filter: 400 E1001 naming state", st == 400 and code(b) == "E1001" and "state" in json.dumps(b), (st, b))
    os.remove(filler)
    check("disk-free: the filler removed, the rule resolves the alarm itself",
          wait_until(lambda: (one(alice, "disk-free") or {}).get("state") == "resolved", 20, 0.1), alarms(alice))
    b = one(alice, "disk-free")
    check("... autoResolved, by system, after alice's acknowledgement",
          b["autoResolved"] is True and b["resolvedBy"] == "system" and b["acknowledgedBy"] == "admin", b)

    # ---- 3. no-data: a data point of demo whose newest value is older than no_data_s
    st, _, body, _ = srtest.http_once(hp, "POST", "/gw/v1/sessions",
                                      {"operatorId": "demo", "gatewayId": "GW001", "secret": "demo-gw001-secret"})
    gw = json.loads(body).get("token") if st == 201 else None

    def send(offset_s, mid):
        ts = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() + offset_s))
        st, _, body, _ = srtest.http_once(hp, "POST", "/gw/v1/measurements", srtest.gw_envelope(
            "GW_MEASUREMENTS", mid, {"values": [{"dataId": "P001", "timestamp": ts, "value": 1.5, "quality": "GOOD"}]}),
            gw)
        return st
    check("GW001 stores a value of P001 from 2 minutes ago", send(-120, "nd-1") == 200)
    check("no-data: raised for P001, an alarm of demo (minor, subject P001)",
          wait_until(lambda: one(da, "no-data"), 20, 0.1), alarms(da))
    n = one(da, "no-data")
    check("... of operator demo, its subject the data point, no data for about 120 s",
          n["operatorId"] == "demo" and n["subject"] == "P001" and n["level"] == "minor" and "P001" in n["message"], n)
    check("the platform admin does not see demo's alarm (setup.read on demo is demo's)",
          not [x for x in alarms(alice) if x["rule"] == "no-data"], alarms(alice))
    st, b = da.call("POST", "/admin/v1/alarms/%s/ack" % n["alarmId"], {"comment": "checking GW001"})
    check("demo's operator admin acknowledges its alarm", st == 200 and b["acknowledgedBy"] == "da1", (st, b))
    # an app sees its operator's alarms of the rules an alarm grant names (AP-IF (ext))
    app = srtest.Api(hp)
    check("the demo app logs in", app.login("APP001", "demo", "demo-app001-secret") == 201)
    st, b = app.call("GET", "/api/v1/alarms")
    check("AP-IF GET /api/v1/alarms without an alarm grant: 403 E2003", st == 403 and code(b) == "E2003", (st, b))
    st, b = srtest.admin_applied(da.call("PUT", "/admin/v1/operators/demo/alarm-grants/APP001/no-data",
                                         {"access": "read"}), da2)
    check("demo's admins grant APP001 read on its alarms of rule no-data (a widening: approved by a second admin)",
          st == 200, (st, b))
    st, b = app.call("GET", "/api/v1/alarms")
    check("... then the app sees demo's no-data alarm, and only it",
          st == 200 and [(x["rule"], x["subject"], x["operatorId"]) for x in b["alarms"]] == [("no-data", "P001", "demo")],
          (st, b))
    st, b = app.call("GET", "/api/v1/alarms?state=bogus")
    check("... a bad filter: 400 E1001", st == 400 and code(b) == "E1001", (st, b))
    check("GW001 sends a newer value of P001", send(60, "nd-2") == 200)
    check("no-data: the rule resolves it once P001 has a newer value",
          wait_until(lambda: (one(da, "no-data") or {}).get("state") == "resolved", 20, 0.1), alarms(da))

    # gateway-skew: a value an hour ahead of the server's clock is stored as sent, and flagged
    check("GW001 sends a value of P001 an hour ahead: stored (200)", send(3600, "nd-skew") == 200)
    check("gateway-skew: raised for GW001, an alarm of demo naming the message",
          wait_until(lambda: one(da, "gateway-skew"), 20, 0.1), alarms(da))
    k = one(da, "gateway-skew")
    check("... warning, subject GW001, message nd-skew about 3600000 ms ahead",
          k["level"] == "warning" and k["subject"] == "GW001" and "nd-skew" in k["message"] and " 35" in k["message"],
          k)
    check("GW001 sends another value ahead (stored)", send(3700, "nd-skew2") == 200)

    # ---- 4. the clock
    hook(0, 0)
    check("clock-unsync: synchronised again, the rule resolves it",
          wait_until(lambda: (one(alice, "clock-unsync") or {}).get("state") == "resolved", 20, 0.1), alarms(alice))
    # the evaluation that resolved clock-unsync took GW001's second note: its alarm is open, nothing new
    sk = alarms(da, "?rule=gateway-skew")
    check("gateway-skew: raised once per gateway (one alarm, count 1, after the second value ahead)",
          len(sk) == 1 and sk[0]["count"] == 1, sk)
    hook(5000, 0)
    check("clock-jump: a 5 s jump of the wall clock raises a major alarm",
          wait_until(lambda: one(alice, "clock-jump"), 20, 0.1), alarms(alice))
    j = one(alice, "clock-jump")
    check("clock-jump: major, not resolved by its rule, the jump in its message",
          j["level"] == "major" and j["autoResolve"] is False and "+5" in j["message"], j)
    rc, b, err = cli("alarms", "list", "--query", "level=major&state=open", token=alice.token, url=url)
    check("`suiro admin alarms list --query level=major&state=open`: the clock jump only",
          rc == 0 and [x["rule"] for x in b["alarms"]] == ["clock-jump"], (rc, b, err))
    rc, b, err = cli("alarms", "resolve", j["alarmId"], "--comment", "ntp fixed", token=alice.token, url=url)
    check("`suiro admin alarms resolve ID --comment`: resolved by alice's user with the comment",
          rc == 0 and b["state"] == "resolved" and b["resolvedBy"] == "admin" and b["resolveComment"] == "ntp fixed",
          (rc, b, err))
    rc, b, err = cli("alarms", "show", j["alarmId"], token=alice.token, url=url)
    check("`suiro admin alarms show ID`", rc == 0 and b["state"] == "resolved" and b["autoResolved"] is False,
          (rc, b, err))
    before = {x["alarmId"]: x for x in alarms(alice) + alarms(da)}
    stop_server(srv)
    procs.remove(srv)

    # ---- 5. the log
    r = subprocess.run([BIN, "replay", D, "--kind", "alarm"], capture_output=True, text=True)
    evs = [json.loads(ln) for ln in r.stdout.splitlines() if ln.strip()]
    steps = [(e["alarm"].get("rule"), e["alarm"].get("state"), e["actor"], e["alarm"].get("comment", ""),
              e["alarm"].get("auto_resolved", False)) for e in evs]
    want = [("disk-free", "raised", "system", "", False),
            ("clock-unsync", "raised", "system", "", False),
            ("disk-free", "acknowledged", "admin", "ordering disks", False),  # the writer names the rule
            ("disk-free", "resolved", "system", steps[3][3] if len(steps) > 3 else "", True),
            ("no-data", "raised", "system", "", False),
            ("no-data", "acknowledged", "da1", "checking GW001", False),
            ("no-data", "resolved", "system", "values again", True),
            ("gateway-skew", "raised", "system", "", False),
            ("clock-unsync", "resolved", "system", "the clock is synchronised again", True),
            ("clock-jump", "raised", "system", "", False),
            ("clock-jump", "resolved", "admin", "ntp fixed", False)]
    check("every step is an AlarmEvent in the log, in order, with who and the comment (disk-free raised once)",
          r.returncode == 0 and steps == want, (r.returncode, steps, r.stderr))
    check("an acknowledgement in the log names the alarm's level (filled in by the writer)",
          [e["alarm"].get("level") for e in evs if e["alarm"].get("state") == "acknowledged"] == ["AL_WARNING", "AL_MINOR"], evs)
    check("the log's steps name their alarm", all(e["alarm"].get("alarm_id", "").startswith("A") for e in evs), evs)
    srv, ports = start_server(BIN, D, LOG, config=cfg, env=env)
    procs.append(srv)
    alice = srtest.admin_session(ports["http"], "admin", "alices-own-password-1")
    da = srtest.admin_session(ports["http"], "da1", "da1-own-password-1")
    after = {x["alarmId"]: x for x in (alarms(alice, "?state=resolved") or []) + (alarms(da) or [])}
    check("after a restart the alarms read the same", set(after) == set(before) and all(
        after[k]["state"] == before[k]["state"] and after[k]["count"] == before[k]["count"] for k in before),
        (before, after))

    # ---- 6. cert-expiry: the MQTT TLS listener's certificate, as loaded at the start
    stop_server(srv)
    procs.remove(srv)
    key, crt = os.path.join(T, "tls.key"), os.path.join(T, "tls.pem")

    def cert(days):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-days", str(days), "-subj", "/CN=localhost", "-keyout", key, "-out", crt],
                       check=True, capture_output=True)
    tcfg = os.path.join(T, "tls.ini")
    with open(cfg) as f, open(tcfg, "w") as g:
        g.write(f.read() + "cert_expiry_warning_days = 30\ncert_expiry_major_days = 3\nlogin_throttled_warning = 2\n"
                "login_quiet_s = 2\nselfcheck_interval_s = 2\nwriter_queue_warning = 3\n[mqtt]\ntls_listen = 127.0.0.1:0\ntls_cert = %s\ntls_key = %s\n"
                "tls_client_cert = none\n[login]\nfree_failures = 1\n[engine]\ngroup_max = 1\n" % (crt, key))
    cert(10)
    srv, ports = start_server(BIN, D, LOG, config=tcfg, env=env)
    procs.append(srv)
    alice = srtest.admin_session(ports["http"], "admin", "alices-own-password-1")
    check("cert-expiry: a certificate 10 days from its end raises a warning (under 30 days) of the mqtt listener",
          wait_until(lambda: one(alice, "cert-expiry"), 20, 0.1), alarms(alice))
    c = one(alice, "cert-expiry")
    check("... warning, subject mqtt, the days left in its message",
          c["level"] == "warning" and c["subject"] == "mqtt" and "expires in 9 days" in c["message"], c)
    stop_server(srv)
    procs.remove(srv)
    cert(365)
    # a slow writer (a test hook: it sleeps 100 ms before each group of one command) for writer-queue below
    srv, ports = start_server(BIN, D, LOG, config=tcfg, env=dict(env, SUIRO_TEST_WRITER_DELAY_MS="100"))
    procs.append(srv)
    alice = srtest.admin_session(ports["http"], "admin", "alices-own-password-1")
    check("cert-expiry: restarted with a renewed certificate, the rule resolves it",
          wait_until(lambda: (one(alice, "cert-expiry") or {}).get("autoResolved") is True, 20, 0.1), alarms(alice))

    # ---- 7. login-failures: wrong secrets until the throttle refuses ([login] free_failures = 1)
    codes = [srtest.Api(ports["http"]).login("APP001", "demo", "a-wrong-secret") for _ in range(4)]
    check("four wrong logins of APP001: the throttle refuses from the second on (429 or 401)",
          codes[0] == 401 and all(c in (401, 429) for c in codes), codes)
    check("login-failures: raised (the throttle refused at least 2 logins between two evaluations)",
          wait_until(lambda: one(alice, "login-failures"), 20, 0.1), alarms(alice))
    lf = one(alice, "login-failures")
    check("... a warning of the platform's", lf["level"] == "warning" and lf["operatorId"] == "", lf)
    check("login-failures: resolved by the rule after login_quiet_s without a refusal",
          wait_until(lambda: (one(alice, "login-failures") or {}).get("autoResolved") is True, 20, 0.1), alarms(alice))
    check("selfcheck: no alarm while the log reads back", one(alice, "selfcheck") is None, alarms(alice))

    # ---- 7b. writer-queue: 30 QoS 1 messages at once to a writer taking 100 ms a command
    g = srtest.RawGw(ports["mqtt"], "demo", "GW001", "demo-gw001-secret", timeout=30)
    for i in range(30):
        ts = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() + 120 + i))
        g.s.sendall(srtest.mqtt_publish(g.root + "/data/measurements", srtest.gw_envelope(
            "GW_MEASUREMENTS", "wq-%d" % i, {"values": [{"dataId": "P001", "timestamp": ts, "value": i, "quality": "GOOD"}]}),
            i + 1, 1))
    check("writer-queue: raised while more than 3 commands wait for the writer",
          wait_until(lambda: one(alice, "writer-queue"), 20, 0.1), alarms(alice))
    acks = 0
    while acks < 30:
        t, body = srtest.mqtt_read(g.s)
        acks += t == 4
    g.close()
    check("writer-queue: the queue drained (30 PUBACKs), the rule resolves it",
          wait_until(lambda: (one(alice, "writer-queue") or {}).get("autoResolved") is True, 20, 0.1), alarms(alice))

    # ---- 8. selfcheck: a byte of a block appended since the last check flipped on disk
    seg = sorted(f for f in os.listdir(os.path.join(D, "log")) if f.endswith(".seg"))[-1]
    seg = os.path.join(D, "log", seg)
    st, _, body, _ = srtest.http_once(ports["http"], "POST", "/gw/v1/sessions",
                                      {"operatorId": "demo", "gatewayId": "GW001", "secret": "demo-gw001-secret"})
    gw = json.loads(body).get("token") if st == 201 else None
    hp = ports["http"]
    raised = None
    for attempt in range(3):  # a check between the append and the flip read the block clean: append another
        size = os.path.getsize(seg)
        check("GW001 stores a value (attempt %d)" % attempt, send(60 + attempt, "sc-%d" % attempt) == 200)
        end = os.path.getsize(seg)
        with open(seg, "r+b") as f:
            f.seek(size + (end - size) // 2)
            b = f.read(1)
            f.seek(size + (end - size) // 2)
            f.write(bytes([b[0] ^ 0x40]))
        raised = wait_until(lambda: one(alice, "selfcheck"), 10, 0.1)
        if raised:
            break
    check("selfcheck: a record appended since the last check that does not read back raises a major alarm",
          raised and raised["level"] == "major" and "does not read back" in raised["message"], (raised, alarms(alice)))
    # the rule never clears itself (a damaged log needs a person): an admin resolves it, with why
    st, b = alice.call("POST", "/admin/v1/alarms/%s/resolve" % (raised or {}).get("alarmId", "none"),
                       {"comment": "segment restored from the backup"})
    check("selfcheck: cleared by an admin's resolve, who and why recorded (not by the rule)",
          st == 200 and b.get("state") == "resolved" and b.get("resolvedBy") == "admin"
          and b.get("autoResolved") is not True, (st, b))
except Exception as e:  # noqa: BLE001
    check.failed(e)
finally:
    finish(check, T, procs)
