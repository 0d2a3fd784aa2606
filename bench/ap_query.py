#!/usr/bin/env python3
"""bench/ap_query.py -- the data and the checks of bench/ap_query.sh (python3
standard library only; the shell script is the benchmark, read it first).

Data set: the reference set of the engine benchmarks (bench/engbench.c), cut
to a size a 2-core machine loads in seconds: data points "P%05d", one value a
second from EB_T0 (2023-11-15T00:00:00Z), each a 2-decimal random walk of
seed 42 -- the very values eb_values() computes (the generator is ported
below, 64-bit arithmetic and all, and `check-gen` compares a few with the C
one's). P00000 (DAY_ID) has the whole day, 86,400 values; the other points
have the first SERIES_S seconds (1 h). So the same values go into all three
systems, each in its own protocol:

  suiro            GW-IF HTTP: GW_MEASUREMENTS envelopes, each one 100 s window
                   of every point that has data then (time-major, like the
                   reference set's ingest), POST /gw/v1/measurements, one
                   keep-alive connection, acknowledged once durable
  InfluxDB 1.6     line protocol "m,id=P00000 value=354.18 <ms>", POST
                   /write?db=bench&precision=ms, 5,000 lines a request
  VictoriaMetrics  Prometheus text "m{id="P00000"} 354.18 <ms>", POST
                   /api/v1/import/prometheus, then GET /internal/force_flush

Subcommands (the script calls them; each prints what the script reads):
  gen DIR                 write the sheet and the three payload files into DIR
  load-suiro URL OP GW SECRET FILE   load-influx URL FILE   load-vm URL FILE
  count SYSTEM URL [TOKEN]  {"day":values of DAY_ID,"total":all values}
  urls SYSTEM URL         one "query<TAB>URL" line per peer query
  report ...              check a saved answer, print the result JSON line
  sizes URL TOKEN         suiro's raw answer bytes, default and compact form
  ratios FILE             the ratio lines of a file of result lines
  check-gen FILE          compare "p v0 v3599 v86399" lines with the port
"""
import calendar
import http.client
import json
import math
import os
import sys
import time
import urllib.parse
import urllib.request

M64 = (1 << 64) - 1
T0 = 1700006400000          # EB_T0 of bench/engbench.h: 2023-11-15T00:00:00Z, ms
SEED = 42                   # the reference set's seed (engine_ingest, engine_query)
DAY_S = 86400
POINTS = int(os.environ.get("AQ_POINTS", "100"))
SERIES_S = int(os.environ.get("AQ_SERIES_S", "3600"))
DAY_ID = "P00000"
SERIES_P = POINTS // 2      # the point engine_query reads latest from; here the series
SERIES_ID = "P%05d" % SERIES_P
WINDOW_S = 100              # seconds of one GW-IF message (the reference batch)
OP, GW, APP = "bench", "GW1", "APP1"
GW_SECRET, APP_SECRET = "bench-gw1-secret", "bench-app1-secret"


# ---- the generator of bench/engbench.c -------------------------------------

def mix(z):
    z = (z + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def values(p, n):
    """eb_values(): n values of point p (cents / 100.0, exactly as in C)."""
    base = mix((SEED * 0x100000001B3 + p) & M64)
    cents = 10000 + mix(SEED ^ p) % 50000
    out = [0.0] * n
    for i in range(n):
        cents += mix((base + i) & M64) % 21 - 10
        out[i] = cents / 100.0
    return out


def seconds_of(p):
    return DAY_S if p == 0 else SERIES_S


def rfc3339(ms):
    s = ms // 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s)) + ("Z" if ms % 1000 == 0 else ".%03dZ" % (ms % 1000))


def gen(d):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "sheet.csv"), "w") as f:
        f.write("#suiro-setup-sheet v1\n# bench/ap_query.py: the reference points of bench/engbench.c\n\n")
        f.write("[operator]\nid,name\n%s,Benchmark operator\n\n" % OP)
        f.write("[gateways]\nid,name,secret\n%s,Benchmark gateway,%s\n\n" % (GW, GW_SECRET))
        f.write("[apps]\nid,name,secret,push_url\n%s,Benchmark app,%s,\n\n" % (APP, APP_SECRET))
        f.write("[facilities]\nid,name\nF1,Plant\n\n[equipment]\nid,facility,name\nE1,F1,Equipment\n\n")
        f.write("[devices]\nid,equipment,gateway,name\nD1,E1,%s,Device\n\n" % GW)
        f.write("[datapoints]\nid,device,name,type,unit,min,max,kind\n")
        for p in range(POINTS):
            f.write("P%05d,D1,Point %d,number,,,,measure\n" % (p, p))
        f.write("\n[grants]\napp,datapoint,access\n%s,*,read\n" % APP)
    vals = [values(p, seconds_of(p)) for p in range(POINTS)]
    ts = [rfc3339(T0 + i * 1000) for i in range(DAY_S)]
    n = 0
    with open(os.path.join(d, "suiro.jsonl"), "w") as fs, open(os.path.join(d, "influx.lp"), "w") as fi, \
            open(os.path.join(d, "vm.prom"), "w") as fv:
        for w in range(0, DAY_S, WINDOW_S):
            items = []
            for p in range(POINTS):
                if w >= seconds_of(p):
                    continue
                pid = "P%05d" % p
                for i in range(w, min(w + WINDOW_S, seconds_of(p))):
                    v = repr(vals[p][i])
                    ms = T0 + i * 1000
                    items.append('{"dataId":"%s","timestamp":"%s","value":%s}' % (pid, ts[i], v))
                    fi.write("m,id=%s value=%s %d\n" % (pid, v, ms))
                    fv.write('m{id="%s"} %s %d\n' % (pid, v, ms))
                    n += 1
            fs.write('{"header":{"messageType":"GW_MEASUREMENTS","messageId":"aq-%06d"},"body":{"values":[%s]}}\n'
                     % (w // WINDOW_S, ",".join(items)))
    json.dump({"points": POINTS, "values": n, "day_id": DAY_ID, "series_id": SERIES_ID, "series_s": SERIES_S},
              sys.stdout)
    print()


# ---- loading ---------------------------------------------------------------

def conn_of(url):
    u = urllib.parse.urlsplit(url)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=120)


def die(msg):
    print("ap_query.py: " + msg, file=sys.stderr)
    sys.exit(1)


def load_suiro(url, op, gw, secret, file):
    c = conn_of(url)
    c.request("POST", "/gw/v1/sessions", json.dumps({"operatorId": op, "gatewayId": gw, "secret": secret}),
              {"Content-Type": "application/json"})
    r = c.getresponse()
    b = r.read()
    if r.status != 201:
        die("suiro gateway login: HTTP %d %s" % (r.status, b[:300]))
    hdr = {"Content-Type": "application/json", "Authorization": "Bearer " + json.loads(b)["token"]}
    msgs = vals = 0
    t = time.monotonic()
    with open(file) as f:
        for line in f:
            c.request("POST", "/gw/v1/measurements", line.encode(), hdr)
            r = c.getresponse()
            b = r.read()
            if r.status != 200 or json.loads(b).get("result", {}).get("code") != "0":
                die("suiro measurements: HTTP %d %s" % (r.status, b[:300]))
            msgs += 1
            vals += line.count('"dataId"')
    secs = time.monotonic() - t
    c.request("DELETE", "/gw/v1/sessions/current", headers=hdr)
    c.getresponse().read()
    print(json.dumps({"load_messages": msgs, "load_values": vals, "load_s": round(secs, 3)}))


def post_lines(url, path, file, batch, ok):
    c = conn_of(url)
    n = reqs = 0
    t = time.monotonic()
    with open(file) as f:
        while True:
            lines = [ln for _, ln in zip(range(batch), f)]
            if not lines:
                break
            c.request("POST", path, "".join(lines).encode(), {"Content-Type": "text/plain"})
            r = c.getresponse()
            b = r.read()
            if r.status != ok:
                die("%s: HTTP %d %s" % (path, r.status, b[:300]))
            n += len(lines)
            reqs += 1
    return n, reqs, time.monotonic() - t


def load_influx(url, file):
    q = urllib.parse.urlencode({"q": "CREATE DATABASE bench"})
    urllib.request.urlopen(urllib.request.Request(url + "/query?" + q, data=b"")).read()
    n, reqs, secs = post_lines(url, "/write?db=bench&precision=ms", file, 5000, 204)
    print(json.dumps({"load_requests": reqs, "load_values": n, "load_s": round(secs, 3)}))


def load_vm(url, file):
    n, reqs, secs = post_lines(url, "/api/v1/import/prometheus", file, 50000, 204)
    urllib.request.urlopen(url + "/internal/force_flush").read()
    print(json.dumps({"load_requests": reqs, "load_values": n, "load_s": round(secs, 3)}))


# ---- what each system holds --------------------------------------------------

def get_json(url, headers=None):
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=120) as r:
        return json.loads(r.read())


def count(system, url, token=None):
    """Values of DAY_ID and of every point on the day, as the system answers."""
    day, total = -1, -1
    frm, to = rfc3339(T0), rfc3339(T0 + DAY_S * 1000)
    if system == "suiro":
        q = [("dataId", "P%05d" % p) for p in range(POINTS)] + \
            [("from", frm), ("to", to), ("interval", "1d"), ("agg", "count")]
        d = get_json(url + "/api/v1/stored-values?" + urllib.parse.urlencode(q), {"Authorization": "Bearer " + token})
        by = {v["dataId"]: v["count"] for v in d["values"]}
        day, total = by.get(DAY_ID, 0), sum(by.values())
    elif system == "influxdb":
        q = urllib.parse.urlencode({"db": "bench", "q": "SELECT count(value) FROM m GROUP BY id"})
        d = get_json(url + "/query?" + q)
        by = {s["tags"]["id"]: s["values"][0][1] for s in d["results"][0].get("series", [])}
        day, total = by.get(DAY_ID, 0), sum(by.values())
    else:
        # the window (t-1d, t] at t = the day's last millisecond: every value of the day
        q = urllib.parse.urlencode({"query": "count_over_time(m[1d])", "time": "%.3f" % ((T0 + DAY_S * 1000 - 1) / 1000)})
        d = get_json(url + "/api/v1/query?" + q)
        by = {s["metric"]["id"]: int(float(s["value"][1])) for s in d["data"]["result"]}
        day, total = by.get(DAY_ID, 0), sum(by.values())
    print(json.dumps({"day": day, "total": total}))


# ---- the peers' queries ----------------------------------------------------------

def win(query):
    """(id, from ms, to ms) of a query: the day of DAY_ID (latest too) or the span of SERIES_ID."""
    if query.startswith("day") or query == "latest":
        return DAY_ID, T0, T0 + DAY_S * 1000
    return SERIES_ID, T0, T0 + SERIES_S * 1000


def peer_urls(system, url):
    out = []
    for query in ("latest", "day_raw", "day_1m", "series_raw", "series_1m"):
        pid, a, b = win(query)
        if system == "influxdb":
            sel = "id='%s' AND time >= '%s' AND time < '%s'" % (pid, rfc3339(a), rfc3339(b))
            q = {"latest": "SELECT last(value) FROM m WHERE id='%s'" % pid,
                 "raw": "SELECT value FROM m WHERE " + sel,
                 "1m": "SELECT min(value),max(value),mean(value),count(value) FROM m WHERE %s GROUP BY time(1m)" % sel}
            kind = "latest" if query == "latest" else query.split("_")[1]
            u = url + "/query?" + urllib.parse.urlencode({"db": "bench", "q": q[kind]})
        else:
            sel = 'm{id="%s"}' % pid
            if query == "latest":
                # instant query at the day's end (the last value is 1 s older;
                # the default look-back finds it): VM's "current value"
                u = url + "/api/v1/query?" + urllib.parse.urlencode({"query": sel, "time": "%d" % (b // 1000)})
            elif query.endswith("raw"):
                # export of the raw samples in [from, to) (end is inclusive: to - 1 ms)
                u = url + "/api/v1/export?" + urllib.parse.urlencode(
                    {"match[]": sel, "start": "%.3f" % (a / 1000), "end": "%.3f" % ((b - 1) / 1000)})
            else:
                # a range query with step 60 s evaluates each rollup on (t-60s, t];
                # t = bucket start + 59.999 s makes that exactly the bucket
                # [start, start+60s) of suiro and InfluxDB; nocache=1 keeps VM
                # from moving start to a multiple of step
                e = 'aggr_over_time(("min_over_time","max_over_time","avg_over_time","count_over_time"),%s[60s])' % sel
                u = url + "/api/v1/query_range?" + urllib.parse.urlencode(
                    {"query": e, "start": "%.3f" % ((a + 59999) / 1000), "end": "%.3f" % ((b - 1) / 1000),
                     "step": "60s", "nocache": "1"})
        out.append((query, u))
    return out


# ---- checking an answer ------------------------------------------------------------

def ms_of(t):
    """RFC 3339 (any fraction) or seconds since the epoch -> ms"""
    if isinstance(t, str) and "T" in t:
        frac = 0
        base, _, rest = t.rstrip("Z").partition(".")
        if rest:
            frac = int((rest + "000")[:3])
        return calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) * 1000 + frac
    return int(round(float(t) * 1000))


def parse(system, query, body):
    """The answer as [(ts_ms, value)] (raw, latest) or [(start_ms, count, min, max, avg)] (1m)."""
    if system == "suiro":
        d = json.loads(body)
        if query.endswith("1m"):
            return [(ms_of(v["timestamp"]), v["count"], v["min"], v["max"], v["avg"]) for v in d["values"]], \
                d.get("nextCursor")
        return [(ms_of(v["timestamp"]), v["value"]) for v in d["values"]], d.get("nextCursor")
    if system == "influxdb":
        d = json.loads(body)
        rows = [r for s in d["results"][0].get("series", []) for r in s["values"]]
        if query.endswith("1m"):  # columns time, min, max, mean, count
            return [(ms_of(r[0]), r[4], r[1], r[2], r[3]) for r in rows], None
        return [(ms_of(r[0]), r[1]) for r in rows], None
    if query.endswith("raw"):  # export: JSON lines of {metric, values, timestamps}
        out = []
        for line in body.splitlines():
            if line.strip():
                e = json.loads(line)
                out += list(zip(e["timestamps"], e["values"]))
        return sorted(out), None
    d = json.loads(body)
    res = d["data"]["result"]
    if query == "latest":  # the instant query stamps the value with the query time
        return [(None, float(s["value"][1])) for s in res], None
    by = {s["metric"].get("rollup"): {ms_of(t) - 59999: float(v) for t, v in s["values"]} for s in res}
    starts = sorted(by.get("count_over_time", {}))
    return [(t, int(by["count_over_time"][t]), by["min_over_time"].get(t), by["max_over_time"].get(t),
             by["avg_over_time"].get(t)) for t in starts], None


def expected(query):
    pid, a, b = win(query)
    p = int(pid[1:])
    vals = values(p, seconds_of(p))
    if query == "latest":
        return [(T0 + (len(vals) - 1) * 1000, vals[-1])]
    if query.endswith("raw"):
        return [(T0 + i * 1000, v) for i, v in enumerate(vals)]
    out = []
    for s in range(0, len(vals), 60):
        w = vals[s:s + 60]
        out.append((T0 + s * 1000, len(w), min(w), max(w), math.fsum(w) / len(w)))
    return out


def check(system, query, body):
    """(points, why-not or None)"""
    try:
        got, cursor = parse(system, query, body)
    except (ValueError, KeyError, IndexError, TypeError) as e:
        return 0, "unparsable answer (%s: %s)" % (type(e).__name__, e)
    want = expected(query)
    if cursor:
        return len(got), "a partial answer (nextCursor %s)" % cursor
    if len(got) != len(want):
        return len(got), "%d %s, not %d" % (len(got), "buckets" if query.endswith("1m") else "values", len(want))
    for g, w in zip(got, want):
        if g[0] is not None and g[0] != w[0]:
            return len(got), "timestamp %s, not %s" % (g[0], w[0])
        if len(w) == 2:
            if g[1] != w[1]:
                return len(got), "value %r at %s, not %r" % (g[1], w[0], w[1])
        else:
            if g[1] != w[1] or g[2] != w[2] or g[3] != w[3] or g[4] is None or abs(g[4] - w[4]) > 1e-9 * abs(w[4]):
                return len(got), "bucket %s: %r, not %r" % (w[0], g[1:], w[1:])
    return len(got), None


def report(system, query, load_json, body_file, extra_json):
    """One result line: the load figures, the answer checked against the data set."""
    try:
        ld = json.loads(load_json) if load_json.strip() else {}
    except ValueError:
        ld = {}
    body = open(body_file, encoding="utf-8").read() if os.path.exists(body_file) else ""
    points, why = check(system, query, body) if body else (0, "no answer saved")
    if not ld:
        why = why or "the load generator printed nothing"
    elif ld.get("errors") or not ld.get("requests") or ld.get("identical") is not True:
        why = why or "load: %s requests, %s errors, identical %s" % (ld.get("requests"), ld.get("errors"),
                                                                      ld.get("identical"))
    # apsim prints whole requests/s; the slow queries answer a few a second
    rps = round(ld["requests"] / ld["secs"], 2) if ld.get("requests") and ld.get("secs") else None
    r = {"bench": "ap_query", "system": system, "query": query, "points": points,
         "req_per_s": rps, "p50_ms": ld.get("p50_ms"), "p99_ms": ld.get("p99_ms"),
         "bytes": ld.get("body_bytes"), "requests": ld.get("requests"), "errors": ld.get("errors"),
         "secs": ld.get("secs"), "connections": ld.get("connections"), "hash": ld.get("verify")}
    r.update(json.loads(extra_json) if extra_json else {})
    r["verify"] = "ok" if why is None else "FAILED"
    if why:
        r["why"] = why
        print("ap_query: %s %s FAILED: %s" % (system, query, why), file=sys.stderr)
    print(json.dumps(r, separators=(",", ":"), ensure_ascii=False))


def sizes(url, token):
    """The compact raw answer (ext, format=compact) against the contract's
    form, on the same values: P00000's day (86,400 values of one point) and
    a snapshot (every point's value at the last second of the hour all of
    them have: POINTS values, one a point). One "ap_query_size" line each,
    checked: both forms parse to the same values, which are the data set's."""
    c = conn_of(url)
    hdr = {"Authorization": "Bearer " + token}
    snap = T0 + (SERIES_S - 1) * 1000
    cases = [("day_raw", [DAY_ID], T0, T0 + DAY_S * 1000),
             ("snapshot_raw", ["P%05d" % p for p in range(min(POINTS, 100))], snap, snap + 1000)]
    for query, ids, a, b in cases:
        base = "/api/v1/stored-values?%s&from=%s&to=%s&limit=100000" % (
            "&".join("dataId=" + i for i in ids), rfc3339(a), rfc3339(b))
        got = {}
        for form, extra in (("values", ""), ("compact", "&format=compact")):
            c.request("GET", base + extra, headers=hdr)
            r = c.getresponse()
            body = r.read()
            try:
                d = json.loads(body) if r.status == 200 else {}
            except ValueError:
                d = {}
            if form == "values":
                rows = [(v["dataId"], ms_of(v["timestamp"]), v["value"]) for v in d.get("values", [])]
            else:
                rows = [(g["dataId"], ms_of(e[0]), e[1]) for g in d.get("series", []) for e in g["values"]]
            got[form] = (len(body), rows, d.get("nextCursor"))
        vals = {i: values(int(i[1:]), seconds_of(int(i[1:]))) for i in ids}
        want = [(i, t, vals[i][(t - T0) // 1000]) for i in ids for t in range(a, b, 1000)]
        why = None
        if got["values"][1] != want or got["compact"][1] != want or got["values"][2] or got["compact"][2]:
            why = "the two forms do not both hold the %d values of the data set (%d, %d)" % (
                len(want), len(got["values"][1]), len(got["compact"][1]))
        r = {"bench": "ap_query_size", "system": "suiro", "query": query, "points": len(ids), "values": len(want),
             "bytes": got["values"][0], "compact_bytes": got["compact"][0],
             "compact_ratio": round(got["compact"][0] / got["values"][0], 3) if got["values"][0] else None,
             "bytes_per_value": round(got["values"][0] / len(want), 2),
             "compact_bytes_per_value": round(got["compact"][0] / len(want), 2),
             "verify": "ok" if why is None else "FAILED"}
        if why:
            r["why"] = why
            print("ap_query: suiro %s sizes FAILED: %s" % (query, why), file=sys.stderr)
        print(json.dumps(r, separators=(",", ":")))


def ratios(file):
    rows = [json.loads(ln) for ln in open(file) if ln.strip()]
    rate = {(r["system"], r["query"]): r.get("req_per_s") for r in rows if r.get("bench") == "ap_query"}
    for query in ("latest", "day_raw", "day_1m", "series_raw", "series_1m"):
        s = rate.get(("suiro", query))
        out = {"bench": "ap_query_ratio", "query": query}
        for peer in ("influxdb", "victoriametrics"):
            p = rate.get((peer, query))
            out["suiro_vs_" + peer] = round(s / p, 3) if s and p else None
        print(json.dumps(out, separators=(",", ":")))


def check_gen(file):
    bad = 0
    for line in open(file):
        p, a, b, c = line.split()
        v = values(int(p), DAY_S)
        mine = "%.2f %.2f %.2f" % (v[0], v[3599], v[86399])
        if mine != "%s %s %s" % (a, b, c):
            print("point %s: C %s %s %s, python %s" % (p, a, b, c, mine))
            bad += 1
    print("check-gen: %s" % ("ok" if not bad else "%d differ" % bad))
    return 1 if bad else 0


def main(a):
    cmd = a[0] if a else ""
    if cmd == "gen" and len(a) == 2:
        gen(a[1])
    elif cmd == "load-suiro" and len(a) == 6:
        load_suiro(*a[1:])
    elif cmd == "load-influx" and len(a) == 3:
        load_influx(*a[1:])
    elif cmd == "load-vm" and len(a) == 3:
        load_vm(*a[1:])
    elif cmd == "count" and len(a) in (3, 4):
        count(*a[1:])
    elif cmd == "urls" and len(a) == 3:
        for q, u in peer_urls(a[1], a[2]):
            print("%s\t%s" % (q, u))
    elif cmd == "report" and len(a) == 6:
        report(*a[1:])
    elif cmd == "sizes" and len(a) == 3:
        sizes(*a[1:])
    elif cmd == "ratios" and len(a) == 2:
        ratios(a[1])
    elif cmd == "check-gen" and len(a) == 2:
        return check_gen(a[1])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
