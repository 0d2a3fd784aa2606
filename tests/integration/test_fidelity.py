#!/usr/bin/python3
"""tests/integration/test_fidelity.py -- numbers exactly as sent (issue #13):
the whole reference data set (api/cli/refset.c: 1,000 points x 600 s of a
two-decimal random walk with 1 % late values and duplicates, seed 42, what
`suiro gwsim run --reference` sends with its defaults and bench/ measures)
goes through the real `suiro serve` over MQTT and is read back through the
AP-IF; every value is compared AS TEXT with the shortest text of what was
sent ("68.29" for 68.29, "68.3" for 68.30, "100.0" for 100.00: the fewest
places, a '.' always, as a JSON reader reads a real):
  - raw stored values (JSON, the contract's form, paged by nextCursor) and
    the compact form (ext, format=compact), every one of the 600,000 values;
  - downsampled to 1 s (min, max, avg, first, last of each one-value bucket);
  - the latest value of every point;
  - `suiro apsim stored-values` (the app stub's output) for 100 points;
  - `suiro replay` (the log, every value sent, duplicates included).
Then the snapshot shape (a gateway's cycle: each gateway's points x 1 value
at one time, one message; the log stores it as a Snapshot record,
codecs/events.proto): the same walks a day later, SNAP_S seconds of every
point, sent over MQTT as gateways send them ("68.20"), read back the same
ways (raw, compact, downsampled, latest, replay: every value as text).
The expected values are computed here from the set's definition (rs_mix,
rs_cents), independently of the server. Before the fix 11 % of the values
came back with an extra place ("81.820"). The server runs on loopback ports
chosen at run time and is stopped by its PID. (The AP-IF has no CSV answer:
JSON is every query path there is.) usage: test_fidelity.py SUIRO_BIN"""
import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import srtest  # noqa: E402

BIN = sys.argv[1]
T = tempfile.mkdtemp(prefix="suiro-fidelity-")
D = os.path.join(T, "data")
check = srtest.Checks()
P, S, G, SEED = 1000, 600, 11, 42   # gwsim's --reference defaults; at most 99 points a gateway
T0 = 1700006400000                  # RS_T0, 2023-11-15T00:00:00Z
M64 = (1 << 64) - 1


def mix(z):
    """rs_mix (api/cli/refset.c)"""
    z = (z + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def cents_of(p):
    """rs_cents: the walk of point p, one value a second"""
    c = 10000 + mix(SEED ^ p) % 50000
    base = mix((SEED * 0x100000001B3 + p) & M64)
    out = []
    for i in range(S):
        c += mix((base + i) & M64) % 21 - 10
        out.append(c)
    return out


def text(c):
    """the shortest text of cents / 100 that reads back as it, with a '.'"""
    s = "%s%d.%02d" % ("-" if c < 0 else "", abs(c) // 100, abs(c) % 100)
    return s[:-1] if s.endswith("0") else s   # x.y0 -> x.y, x.00 -> x.0


def data_id(p):
    return "SP%04d_%02d" % (p % G + 1, p // G + 1)   # gwsim: point p is gateway p % G's (p // G)-th


def ts_text(i):
    return "2023-11-15T%02d:%02d:%02d.000Z" % (i // 3600, i // 60 % 60, i % 60)


SNAP_S = 60        # seconds of the snapshot shape, from 2023-11-16T00:00:00Z
DAY2 = "2023-11-16T"
WANT = {}          # (dataId, timestamp text) -> value text
LAST = {}          # dataId -> the value text at the last second
for p in range(P):
    d = data_id(p)
    for i, c in enumerate(cents_of(p)):
        WANT[(d, ts_text(i))] = text(c)
    LAST[d] = WANT[(d, ts_text(S - 1))]
    for i, c in enumerate(cents_of(p)[:SNAP_S]):   # the snapshot shape: the same walk a day later
        WANT[(d, DAY2 + ts_text(i)[11:])] = text(c)
IDS = [data_id(p) for p in range(P)]
RANGE = "&from=2023-11-15T00:00:00Z&to=2023-11-16T00:00:00Z"


class Tally:
    """values compared, the wrong ones (the first few kept), the (id, ts) seen"""

    def __init__(self):
        self.n, self.wrong, self.seen, self.dups = 0, [], set(), 0

    def add(self, d, ts, got, want=None):
        want = WANT.get((d, ts)) if want is None else want
        self.n += 1
        if (d, ts) in self.seen:
            self.dups += 1
        self.seen.add((d, ts))
        if got != want:
            self.wrong.append((d, ts, got, want))

    def exact(self, total):
        return self.n == total and not self.wrong and not self.dups

    def why(self):
        return "%d compared, %d wrong, %d twice; first: %s" % (self.n, len(self.wrong), self.dups, self.wrong[:5])


VALUE = re.compile(r'\{"dataId":"([^"]+)","timestamp":"([^"]+)","value":([^,]+),"quality":"GOOD"\}')
SERIES = re.compile(r'\{"dataId":"([^"]+)","values":\[(.*?)\]\]\}')
PAIR = re.compile(r'\["([^"]+)",([^,\]]+)\]')
BUCKET = re.compile(r'\{"dataId":"([^"]+)","timestamp":"([^"]+)","min":([^,]+),"max":([^,]+),"avg":([^,]+),'
                    r'"first":([^,]+),"last":([^,}]+)\}')


def sent_text(c):
    """a value as a gateway writes it: two places ("68.20")"""
    return "%s%d.%02d" % ("-" if c < 0 else "", abs(c) // 100, abs(c) % 100)


def send_snapshots(port):
    """every gateway's points x 1 value a message, one message a second of
    SNAP_S, as gateways send their cycle; the refused or unanswered ones"""
    gws = [srtest.RawGw(port, "sim", "SIM%04d" % (g + 1), "sim-secret-SIM%04d" % (g + 1)) for g in range(G)]
    walks = [cents_of(p)[:SNAP_S] for p in range(P)]
    bad = []
    for i in range(SNAP_S):
        ts = DAY2 + ts_text(i)[11:]
        for g in range(G):
            vals = ",".join('{"dataId":"%s","timestamp":"%s","value":%s}' % (data_id(p), ts, sent_text(walks[p][i]))
                            for p in range(g, P, G))
            msg = ('{"header":{"messageType":"GW_MEASUREMENTS","messageId":"snap-%d-%d","timestamp":"%s"},'
                   '"body":{"values":[%s]}}' % (g, i, ts, vals))
            if gws[g].publish_wait("data/measurements", msg.encode()):
                bad.append((g, i))
    for c in gws:
        c.close()
    return bad


def pages(api, ids, extra, rng=None):
    """every page of a raw query, following nextCursor: the bodies as text"""
    q = "/api/v1/stored-values?" + "&".join("dataId=" + d for d in ids) + (rng or RANGE) + extra
    cursor, out = None, []
    for _ in range(100):
        st, raw, _ = api.call("GET", q + ("&cursor=" + cursor if cursor else ""), raw=True)
        body = raw.decode()
        out.append((st, body))
        m = re.search(r'"nextCursor":(null|"([^"]*)")\}$', body)
        if st != 200 or not m or m.group(1) == "null":
            break
        cursor = m.group(2)
    return out


srv = None
try:
    subprocess.run([BIN, "init", D], check=True, capture_output=True)
    srtest.import_sheet(BIN, D, os.path.join(T, "sheet.csv"), srtest.gwsim_sheet(BIN, G, (P + G - 1) // G) +
                        "\n[apps]\nid,name,secret,push_url\nREADER,reader,reader-secret-1,\n\n"
                        "[grants]\napp,datapoint,access\nREADER,*,read\n")
    srv, ports = srtest.start_server(BIN, D, os.path.join(T, "server.log"))
    r = subprocess.run([BIN, "gwsim", "run", "--port", str(ports["mqtt"]), "--gateways", str(G), "--reference"],
                       capture_output=True, text=True, timeout=600)
    out = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else "{}"
    sim = json.loads(out)
    check("gwsim sends the whole reference set (%s values, %s unique), every message acknowledged"
          % (sim.get("ref_values_sent"), sim.get("ref_values_unique")),
          r.returncode == 0 and sim.get("ref_values_unique") == P * S and sim.get("acked") == sim.get("ref_messages")
          and sim.get("errors") == 0, (r.returncode, out, r.stderr[-500:]))

    api = srtest.Api(ports["http"])
    check("the reader logs in", api.login("READER", "sim", "reader-secret-1") == 201)

    # raw, the contract's form: pages of 100,000 values over 100 points at once
    raw, bad = Tally(), []
    for k in range(0, P, 100):
        for st, body in pages(api, IDS[k:k + 100], "&limit=100000"):
            if st != 200:
                bad.append((st, body[:200]))
            for d, ts, v in VALUE.findall(body):
                raw.add(d, ts, v)
    check("raw values (JSON): all %d come back exactly as sent" % (P * S), not bad and raw.exact(P * S),
          (bad[:2], raw.why()))

    # compact (ext): the same values, grouped by dataId, pages of 7,000 (a point's values cut across pages)
    comp, bad, groups = Tally(), [], 0
    for k in range(0, P, 100):
        for st, body in pages(api, IDS[k:k + 100], "&limit=7000&format=compact"):
            if st != 200 or not body.startswith('{"series":['):
                bad.append((st, body[:200]))
            for d, vals in SERIES.findall(body):
                groups += 1
                for ts, v in PAIR.findall(vals + "]"):
                    comp.add(d, ts, v)
    check("compact values (format=compact): all %d come back exactly as sent, in %d groups" % (P * S, groups),
          not bad and comp.exact(P * S) and groups > P, (bad[:2], comp.why()))

    # downsampled to 1 s: each bucket holds one value, so min, max, avg, first and last are it
    down, bad = Tally(), []
    for k in range(0, P, 100):
        q = ("/api/v1/stored-values?" + "&".join("dataId=" + d for d in IDS[k:k + 100]) +
             "&from=2023-11-15T00:00:00Z&to=2023-11-15T00:10:00Z&interval=1s&agg=min,max,avg,first,last")
        st, body, _ = api.call("GET", q, raw=True)
        body = body.decode()
        if st != 200:
            bad.append((st, body[:200]))
        for d, ts, mn, mx, av, fi, la in BUCKET.findall(body):
            down.add(d, ts, "|".join((mn, mx, av, fi, la)), "|".join([WANT.get((d, ts))] * 5))
    check("downsampled to 1 s: min, max, avg, first, last of all %d buckets exactly as sent" % (P * S),
          not bad and down.exact(P * S), (bad[:2], down.why()))

    # the latest value of every point
    lat, bad = Tally(), []
    for k in range(0, P, 100):
        st, body, _ = api.call("GET", "/api/v1/stored-values/latest?" + "&".join("dataId=" + d for d in IDS[k:k + 100]),
                               raw=True)
        body = body.decode()
        if st != 200:
            bad.append((st, body[:200]))
        for d, ts, v in VALUE.findall(body):
            lat.add(d, ts, v, LAST.get(d) if ts == ts_text(S - 1) else "(not the last second)")
    check("latest: all %d points' last values exactly as sent" % P, not bad and lat.exact(P), (bad[:2], lat.why()))

    # the app stub's output (its own JSON writer over the parsed answer)
    r = subprocess.run([BIN, "apsim", "stored-values", "--url", "http://127.0.0.1:%d" % ports["http"],
                        "--operator", "sim", "--app", "READER", "--secret", "reader-secret-1", "--all",
                        "--from", "2023-11-15T00:00:00Z", "--to", "2023-11-16T00:00:00Z", "--limit", "100000",
                        "--data-id", ",".join(IDS[:100])], capture_output=True, text=True, timeout=300)
    aps = Tally()
    for d, ts, v in VALUE.findall(r.stdout):
        aps.add(d, ts, v)
    check("apsim stored-values: all %d values of 100 points exactly as sent" % (100 * S),
          r.returncode == 0 and aps.exact(100 * S), (r.returncode, r.stderr[-300:], aps.why()))

    # the log: every value sent, late duplicates included (the same value)
    r = subprocess.run([BIN, "replay", D, "--kind", "measurements"], capture_output=True, text=True, timeout=300)
    rep = Tally()
    for d, vals in re.findall(r'"dataId":"([^"]+)","values":\[(.*?\])\]', r.stdout):
        for ts, v in re.findall(r'\["([^"]+)",([^,\]]+),[0-9]+\]', vals):   # [time, value, quality]
            rep.n += 1
            if v != WANT.get((d, ts)):
                rep.wrong.append((d, ts, v, WANT.get((d, ts))))
    check("suiro replay: all %s values sent exactly as sent" % sim.get("ref_values_sent"),
          r.returncode == 0 and rep.n == sim.get("ref_values_sent") and not rep.wrong,
          (r.returncode, r.stderr[-300:], rep.why(), r.stdout[:300]))

    # ---- the snapshot shape: each gateway's points x 1 value at one time a message
    check("snapshots: %d messages of ~%d points x 1 value, all acknowledged" % (G * SNAP_S, P // G),
          send_snapshots(ports["mqtt"]) == [])
    RANGE2 = "&from=2023-11-16T00:00:00Z&to=2023-11-17T00:00:00Z"
    N2 = P * SNAP_S
    raw2, comp2, bad = Tally(), Tally(), []
    for k in range(0, P, 100):
        for st, body in pages(api, IDS[k:k + 100], "&limit=100000", RANGE2):
            if st != 200:
                bad.append((st, body[:200]))
            for d, ts, v in VALUE.findall(body):
                raw2.add(d, ts, v)
        for st, body in pages(api, IDS[k:k + 100], "&limit=7000&format=compact", RANGE2):
            if st != 200:
                bad.append((st, body[:200]))
            for d, vals in SERIES.findall(body):
                for ts, v in PAIR.findall(vals + "]"):
                    comp2.add(d, ts, v)
    check("snapshots, raw values (JSON): all %d come back exactly as sent" % N2, not bad and raw2.exact(N2),
          (bad[:2], raw2.why()))
    check("snapshots, compact values: all %d come back exactly as sent" % N2, not bad and comp2.exact(N2),
          (bad[:2], comp2.why()))
    down2, bad = Tally(), []
    for k in range(0, P, 100):
        q = ("/api/v1/stored-values?" + "&".join("dataId=" + d for d in IDS[k:k + 100]) +
             "&from=2023-11-16T00:00:00Z&to=2023-11-16T00:01:00Z&interval=1s&agg=min,max,avg,first,last")
        st, body, _ = api.call("GET", q, raw=True)
        body = body.decode()
        if st != 200:
            bad.append((st, body[:200]))
        for d, ts, mn, mx, av, fi, la in BUCKET.findall(body):
            down2.add(d, ts, "|".join((mn, mx, av, fi, la)), "|".join([WANT.get((d, ts))] * 5))
    check("snapshots, downsampled to 1 s: all %d buckets exactly as sent" % N2, not bad and down2.exact(N2),
          (bad[:2], down2.why()))
    lat2, bad = Tally(), []
    last2 = DAY2 + ts_text(SNAP_S - 1)[11:]
    for k in range(0, P, 100):
        st, body, _ = api.call("GET", "/api/v1/stored-values/latest?" + "&".join("dataId=" + d for d in IDS[k:k + 100]),
                               raw=True)
        body = body.decode()
        if st != 200:
            bad.append((st, body[:200]))
        for d, ts, v in VALUE.findall(body):
            lat2.add(d, ts, v, WANT.get((d, last2)) if ts == last2 else "(not the snapshots' last second)")
    check("snapshots, latest: all %d points' last values exactly as sent" % P, not bad and lat2.exact(P),
          (bad[:2], lat2.why()))
    r = subprocess.run([BIN, "replay", D, "--kind", "measurements"], capture_output=True, text=True, timeout=300)
    rep2, recs = Tally(), 0
    for line in r.stdout.splitlines():
        if DAY2 not in line:
            continue
        recs += '"snapshot":true' in line
        for d, vals in re.findall(r'"dataId":"([^"]+)","snapshot":true,"values":\[(.*?\])\]', line):
            for ts, v in re.findall(r'\["([^"]+)",([^,\]]+),[0-9]+\]', vals):
                rep2.add(d, ts, v)
    check("suiro replay: %d Snapshot records, all %d values exactly as sent" % (recs, N2),
          r.returncode == 0 and recs == G * SNAP_S and rep2.exact(N2), (r.returncode, recs, rep2.why()))
finally:
    check("the server stops cleanly", srtest.stop_server(srv) == 0)
    srtest.finish(check, T, [srv])
