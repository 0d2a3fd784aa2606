#!/usr/bin/python3
"""scripts/test_cpu.py -- the CPU seconds (user + sys) of each ctest entry,
the figure of `make test`'s budget that other load on the machine does not
change much (docs/testing.md "Where the CPU goes").

    scripts/test_cpu.py BUILD [-j N] [-L LABEL] [-LE LABEL] [-R REGEX]
                        [--env K=V ...] [--out FILE.json] [--top 30]
    scripts/test_cpu.py --table FILE.json [--top 30] [--before OLD.json]

It asks ctest for its entries (`ctest --show-only=json-v1`, with the same
-L/-LE/-R selection, so it runs what `make test` runs), then runs each
entry's command with its ENVIRONMENT and WORKING_DIRECTORY, N at a time,
honouring PROCESSORS, RESOURCE_LOCK, RUN_SERIAL and TIMEOUT and starting the
highest COST first, as ctest does in a fresh clone. Each entry runs under a
small wrapper (this script's --one) that makes itself the child subreaper
(prctl PR_SET_CHILD_SUBREAPER): a server a test started and left behind is
re-parented to the wrapper and reaped there, so its CPU counts for the test
that started it. The wrapper's RUSAGE_CHILDREN is the entry's user and sys
time. Each entry's output is kept in FILE.json's directory
(test_cpu-logs/NAME.log); a failed entry is listed at the end, and the exit
status is 1 when one failed.

The table: the top N entries by CPU seconds, each half's total, the total
over 2 cores (the half's wall-time floor when both cores are its) and the
longest RESOURCE_LOCK chain (the other floor: those entries run one at a
time, whatever the cores).
"""
import argparse
import ctypes
import json
import os
import resource
import signal
import subprocess
import sys
import time

PR_SET_CHILD_SUBREAPER = 36


def one(argv):
    """--one RESULT TIMEOUT -- CMD...: run CMD, reap every orphan it left,
    write {"rc", "wall", "user", "sys"} to RESULT."""
    result, timeout = argv[0], float(argv[1])
    cmd = argv[3:]
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    # what this process's children used before (a pyenv shim's, which
    # survive its exec): not the entry's
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, start_new_session=True)
    try:
        rc = p.wait(timeout=timeout if timeout > 0 else None)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        rc = p.wait()
        print("test_cpu: TIMEOUT after %.0f s" % timeout, flush=True)
        rc = rc if rc else -1
    wall = time.monotonic() - t0
    # the orphans (servers a test left behind, re-parented here): wait a
    # bounded time for them, then kill what is left, and reap it all
    deadline = time.monotonic() + 30
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid:
            continue
        if time.monotonic() > deadline:
            for d in os.listdir("/proc"):
                if d.isdigit():
                    try:
                        with open("/proc/%s/stat" % d) as f:
                            ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                        if ppid == os.getpid():
                            os.kill(int(d), signal.SIGKILL)
                    except (OSError, ValueError, IndexError):
                        pass
            deadline = time.monotonic() + 30
        time.sleep(0.05)
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(result, "w") as f:
        json.dump({"rc": rc, "wall": round(wall, 2), "user": round(ru.ru_utime - ru0.ru_utime, 2),
                   "sys": round(ru.ru_stime - ru0.ru_stime, 2)}, f)
    return 0


def prop(t, name, default=None):
    for p in t.get("properties", []):
        if p["name"] == name:
            return p["value"]
    return default


def run_all(a):
    sel = []
    for flag, v in (("-L", a.L), ("-LE", a.LE), ("-R", a.R), ("-E", a.E)):
        if v:
            sel += [flag, v]
    js = json.loads(subprocess.check_output(["ctest", "--show-only=json-v1"] + sel, cwd=a.build))
    tests = js["tests"]
    extra = dict(kv.split("=", 1) for kv in a.env)
    out = os.path.abspath(a.out)
    logs = os.path.join(os.path.dirname(out), "test_cpu-logs")
    os.makedirs(logs, exist_ok=True)
    order = sorted(range(len(tests)), key=lambda i: (-float(prop(tests[i], "COST", 0) or 0), i))
    pending = [tests[i] for i in order]
    running = {}  # pid -> (test, t0, result path, processors, locks, serial)
    results = []
    used = 0
    held = set()
    serial_running = False
    t_start = time.monotonic()
    while pending or running:
        started = True
        while started and pending and not serial_running:
            started = False
            for t in list(pending):
                procs = min(int(prop(t, "PROCESSORS", 1) or 1), a.j)
                locks = set(prop(t, "RESOURCE_LOCK", []) or [])
                serial = bool(prop(t, "RUN_SERIAL", False))
                if serial and running:
                    continue
                if used + procs > a.j or locks & held:
                    continue
                env = dict(os.environ)
                env.update(extra)
                for kv in prop(t, "ENVIRONMENT", []) or []:
                    k, v = kv.split("=", 1)
                    env[k] = v
                res = os.path.join(logs, t["name"] + ".json")
                log = open(os.path.join(logs, t["name"] + ".log"), "w")
                cmd = [sys.executable, os.path.abspath(__file__), "--one", res,
                       str(prop(t, "TIMEOUT", 1500) or 1500), "--"] + t["command"]
                p = subprocess.Popen(cmd, env=env, cwd=prop(t, "WORKING_DIRECTORY", a.build), stdout=log,
                                     stderr=subprocess.STDOUT)
                log.close()
                running[p.pid] = (t, time.monotonic(), res, procs, locks, serial, p)
                used += procs
                held |= locks
                serial_running = serial
                pending.remove(t)
                started = True
                if serial:
                    break
        pid, _ = os.wait()
        if pid not in running:
            continue
        t, t0, res, procs, locks, serial, p = running.pop(pid)
        p.returncode = 0
        used -= procs
        held -= locks
        if serial:
            serial_running = False
        try:
            with open(res) as f:
                r = json.load(f)
        except (OSError, ValueError):
            r = {"rc": -2, "wall": round(time.monotonic() - t0, 2), "user": 0, "sys": 0}
        r["name"] = t["name"]
        r["locks"] = sorted(locks)
        results.append(r)
        print("%-40s rc=%d wall %7.1f  cpu %7.1f (%.1f user + %.1f sys)  [%d left, %.0f s]" % (
            t["name"], r["rc"], r["wall"], r["user"] + r["sys"], r["user"], r["sys"], len(pending) + len(running),
            time.monotonic() - t_start), flush=True)
    doc = {"build": os.path.abspath(a.build), "jobs": a.j, "env": extra, "selection": sel,
           "wall": round(time.monotonic() - t_start, 1), "tests": results}
    with open(out, "w") as f:
        json.dump(doc, f, indent=1)
    print(table(doc, a.top))
    failed = [r["name"] for r in results if r["rc"] != 0]
    if failed:
        print("failed: " + " ".join(failed))
    return 1 if failed else 0


def table(doc, top, before=None):
    rs = sorted(doc["tests"], key=lambda r: -(r["user"] + r["sys"]))
    old = {r["name"]: r for r in before["tests"]} if before else {}
    tot_u = sum(r["user"] for r in rs)
    tot_s = sum(r["sys"] for r in rs)
    chains = {}
    for r in rs:
        for lk in r.get("locks", []):
            chains[lk] = chains.get(lk, 0) + r["wall"]
    lines = []
    head = "| entry | CPU-s | user | sys | wall |" + (" CPU-s before |" if old else "")
    lines.append(head)
    lines.append("|" + " --- |" * (head.count("|") - 1))
    for r in rs[:top]:
        row = "| %s | %.1f | %.1f | %.1f | %.0f |" % (r["name"], r["user"] + r["sys"], r["user"], r["sys"], r["wall"])
        if old:
            o = old.get(r["name"])
            row += " %s |" % ("%.1f" % (o["user"] + o["sys"]) if o else "-")
        lines.append(row)
    lines.append("")
    lines.append("%d entries: %.0f CPU-s (%.0f user + %.0f sys); over 2 cores %.0f s; wall %.0f s at -j%s" % (
        len(rs), tot_u + tot_s, tot_u, tot_s, (tot_u + tot_s) / 2, doc["wall"], doc["jobs"]))
    for lk, w in sorted(chains.items()):
        lines.append("RESOURCE_LOCK %s: %.0f s of wall in one chain" % (lk, w))
    if old:
        ou = sum(r["user"] + r["sys"] for r in before["tests"])
        lines.append("before: %d entries, %.0f CPU-s" % (len(before["tests"]), ou))
    return "\n".join(lines)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--one":
        return one(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("build", nargs="?")
    ap.add_argument("-j", type=int, default=4)
    ap.add_argument("-L")
    ap.add_argument("-LE")
    ap.add_argument("-R")
    ap.add_argument("-E")
    ap.add_argument("--env", action="append", default=[])
    ap.add_argument("--out", default="test_cpu.json")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--table")
    ap.add_argument("--before")
    a = ap.parse_args()
    if a.table:
        with open(a.table) as f:
            doc = json.load(f)
        before = None
        if a.before:
            with open(a.before) as f:
                before = json.load(f)
        print(table(doc, a.top, before))
        return 0
    if not a.build:
        ap.error("BUILD is needed")
    return run_all(a)


if __name__ == "__main__":
    sys.exit(main())
