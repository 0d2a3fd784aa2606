#!/usr/bin/python3
"""tests/integration/test_admin_setup_online.py -- an operator's set-up
changed on the running server while `suiro gwsim` loads it over MQTT (issue
#14, docs/admin.md "An operator's set-up online"):

 1. gwsim publishes QoS 1 from 4 gateways; the ingest rate (acknowledged
    values per second) is measured for a while without admin changes;
 2. then the operator's admin imports the sheet through the admin API
    IMPORTS times (each import changes EXTRA data points, and lists a new
    app with its grant), and makes a few single changes (a master, an app's
    push URL, a secret); the ingest rate during these is measured too;
 3. each import's effect is visible at once: the new app logs in on the
    AP-IF and sees the new data points;
 4. afterwards every message gwsim says was acknowledged is in the log
    exactly once (as test_gw_kill9 counts it), and the index equals a
    rebuild.
The two rates are printed (no assertion on them: a shared machine's timing
is no test), over WINDOW-second windows: 3 s in `make test`, SR_SOAK=N
times longer (docs/admin.md's figures: 6 s, SR_SOAK=2). usage: test_admin_setup_online.py SUIRO_BIN [IMPORTS] [EXTRA]"""
import collections
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import srtest  # noqa: E402

BIN = sys.argv[1]
IMPORTS = int(sys.argv[2]) if len(sys.argv) > 2 else 8
EXTRA = int(sys.argv[3]) if len(sys.argv) > 3 else 300
GATEWAYS, POINTS, BATCH = 4, 10, 50
WINDOW = 3.0 * max(1, int(os.environ.get("SR_SOAK", "1") or 1))
T = tempfile.mkdtemp(prefix="suiro-setuponline-")
D = os.path.join(T, "data")
ACKS = os.path.join(T, "acks.txt")
OPS = "/admin/v1/operators/sim"
procs = []
check = srtest.Checks()


def acks_now():
    try:
        with open(ACKS) as f:
            return sum(1 for ln in f if ln.startswith("ack "))
    except FileNotFoundError:
        return 0


def sheet(base, i):
    """gwsim's sheet, plus a device with EXTRA data points named for import
    i (so every import changes them all), a new app and its grant"""
    rows = ["[devices]", "id,equipment,gateway,name", "XD1,SE1,SIM0001,Extra device",
            "[datapoints]", "id,device,name,type,unit,min,max,kind"]
    rows += ["XP%04d,XD1,Extra point %d rev %d,number,m,0,100,measure" % (k, k, i) for k in range(EXTRA)]
    rows += ["[apps]", "id,name,secret,push_url", "NEWAPP,New app,new-app-secret-01,",
             "[grants]", "app,datapoint,access", "NEWAPP,XP*,read"]
    return base + "\n".join(rows) + "\n"


try:
    temp, temp2 = srtest.init_with_admin(BIN, D, second="admin2")
    base = srtest.gwsim_sheet(BIN, GATEWAYS, POINTS)
    srtest.import_sheet(BIN, D, os.path.join(T, "sim.csv"), base)
    port = srtest.free_port()
    srv, ports = srtest.start_server(BIN, D, os.path.join(T, "server.log"), mqtt_port=port)
    procs.append(srv)
    hp = ports["http"]
    root = srtest.admin_session(hp, "admin", temp, "platform-admin-pw-1")
    # the approver of privilege changes (the two-person rule), where the server has it
    second = srtest.admin_session(hp, "admin2", temp2, "platform-admin-pw-2") if temp2 else None
    adm = srtest.admin_new_user(hp, root, "opa", "operator", "sim", ["operator_admin"], "operator-admin-pw-1", second)
    # a second admin of sim approves adm's set-up privilege changes (the two-person rule: the operator's admins)
    adm2 = srtest.admin_new_user(hp, root, "opa2", "operator", "sim", ["operator_admin"], "operator-admin-pw-2", second)

    sim = subprocess.Popen([BIN, "gwsim", "run", "--port", str(port), "--gateways", str(GATEWAYS), "--points",
                            str(POINTS), "--batch", str(BATCH), "--messages", "1000000", "--window", "8", "--acks",
                            ACKS, "--duration", "600"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(sim)
    check("gwsim's messages are acknowledged", srtest.wait_until(lambda: acks_now() > 20, timeout=60), acks_now())

    # ---- 1. the ingest rate without admin changes (after a warm-up)
    def window(seconds):
        n, t = acks_now(), time.monotonic()
        time.sleep(seconds)
        return (acks_now() - n) * BATCH / (time.monotonic() - t)
    time.sleep(WINDOW / 2)  # a warm-up
    rate_before = window(WINDOW)

    # ---- 2. imports (at least IMPORTS, for at least WINDOW seconds) and
    # single changes, while gwsim goes on
    statuses, stored, first_visible, app_ok = [], [], None, None
    n2, t2 = acks_now(), time.monotonic()
    i = 0
    while i < IMPORTS or time.monotonic() - t2 < WINDOW:
        # the first import widens NEWAPP's grants: a privilege change (approved by a second admin of sim)
        st, b = srtest.admin_applied(adm.call("POST", OPS + "/sheet", sheet(base, i),
                                              headers={"Content-Type": "text/csv"}), adm2)
        statuses.append(st)
        stored.append((b or {}).get("stored", EXTRA + 3))
        if i == 0:
            # ---- 3. visible at once: the new app logs in and sees the new points
            app = srtest.Api(hp)
            app_ok = app.login("NEWAPP", "sim", "new-app-secret-01")
            st2, m = app.call("GET", "/api/v1/masters/datapoints")
            first_visible = st2 == 200 and len([x for x in m["items"] if x["id"].startswith("XP")]) == EXTRA
        i += 1
    singles = [
        adm.call("PUT", OPS + "/masters/datapoints/XP0000", {"device": "XD1", "name": "Changed", "type": "number"}),
        adm.call("PUT", OPS + "/apps/NEWAPP/push-url", {"pushUrl": "http://127.0.0.1:9/push"}),
        srtest.admin_applied(adm.call("POST", OPS + "/apps/NEWAPP/secret"), adm2),
        adm.call("PUT", OPS + "/masters/facilities/XF1", {"name": "Another plant"}),
    ]
    n3, t3 = acks_now(), time.monotonic()
    rate_busy = (n3 - n2) * BATCH / (t3 - t2)
    rate_after = window(WINDOW)
    imports = i
    check("every import answered 200", statuses == [200] * imports, statuses)
    check("every import stored its %d changed data points (the first also the device, app and grant)" % EXTRA,
          stored[0] >= EXTRA + 3 and all(s == EXTRA for s in stored[1:]), stored)
    check("the first import's new app logs in at once", app_ok == 201, app_ok)
    check("... and sees the new data points at once on the AP-IF", first_visible)
    check("the single changes were answered 200", [s for s, _ in singles] == [200] * len(singles), singles)
    quiet = (rate_before + rate_after) / 2
    print("ingest (acknowledged values/s; %d gateways, batch %d, window 8, MQTT QoS 1):" % (GATEWAYS, BATCH), flush=True)
    print("  without admin changes: %.0f before, %.0f after (%.0f s windows)" % (rate_before, rate_after, WINDOW),
          flush=True)
    print("  during %d sheet imports (%d data points changed each, %.2f s per import) and %d single changes: %.0f "
          "over %.1f s = %.0f %% of the rate without" % (imports, EXTRA, (t3 - t2) / imports, len(singles), rate_busy,
                                                         t3 - t2, 100.0 * rate_busy / quiet if quiet else 0),
          flush=True)

    # ---- 4. nothing acknowledged is lost
    time.sleep(0.5)
    srtest.stop_server(sim, 10, signal.SIGINT)
    rc = srtest.stop_server(srv)
    check("the server stops cleanly on SIGTERM", rc == 0, "exit %s" % rc)
    acked = set()
    for line in open(ACKS):
        parts = line.split()
        if len(parts) == 3 and parts[0] == "ack":
            acked.add("%s-%s" % (parts[1], parts[2]))
    out = subprocess.run([BIN, "replay", D, "--kind", "measurements"], capture_output=True, text=True,
                         check=True).stdout
    stored_msgs = collections.Counter(json.loads(ln)["message_id"] for ln in out.splitlines() if ln.strip())
    missing = [m for m in acked if stored_msgs[m] != 1]
    print("acknowledged:", len(acked), "stored messages:", len(stored_msgs), flush=True)
    check("enough acknowledged messages to mean anything (>= 50)", len(acked) >= 50, len(acked))
    check("every acknowledged message is stored exactly once", not missing, missing[:10])
    v = subprocess.run([BIN, "verify", D], capture_output=True, text=True)
    check("verify (log chain, index equals a rebuild)", v.returncode == 0, v.stdout + v.stderr)
finally:
    srtest.finish(check, T, procs)
