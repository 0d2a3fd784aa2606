#!/usr/bin/python3
"""tests/integration/test_compact.py -- the compact raw answer (ext,
`GET /api/v1/stored-values?...&format=compact`, docs/api/openapi.yaml
CompactValuesPage), through the real `suiro serve` with the demo operator:
  - its shape: {"series":[{"dataId","values":[[timestamp, value(, quality)]]}],
    "nextCursor"}, the dataId once a group, the quality only when it is not
    GOOD, a point without values in the page absent;
  - the same data as the contract's form: numbers, integers, booleans and
    strings (escapes, UTF-8) with every quality, ascending and descending,
    compared value for value after regrouping the default form;
  - paging: at every page size the pages of either form give every value
    once, and the cursors are the same (a cursor of one form continues the
    other);
  - format= anything else is refused (E1001); the default is unchanged;
  - its size against the default form for the same values.
The gateway sends over the GW-IF HTTP binding. Ports are chosen at run time;
the server is stopped by its PID. usage: test_compact.py SUIRO_BIN"""
import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import srtest  # noqa: E402

BIN = sys.argv[1]
T = tempfile.mkdtemp(prefix="suiro-compact-")
D = os.path.join(T, "data")
check = srtest.Checks()
Q = ["GOOD", "UNCERTAIN", "BAD", "NO_DATA"]


def at(i):
    return "2026-03-01T00:%02d:%02d.%03dZ" % (i // 60, i % 60, (i * 7) % 1000)


SENT = {  # dataId -> [(timestamp, value, quality)]
    "P001": [(at(i), round(100 + i * 0.37, 2), Q[(i // 5) % 4] if i % 3 == 0 else "GOOD") for i in range(40)],
    "P004": [(at(i), i * 33331 + 7, Q[i % 4]) for i in range(0, 30, 2)],
    "P005": [(at(i), s, "GOOD" if i != 4 else "BAD") for i, s in
             enumerate(["alarm", "", "quote \" and \\ back", "tab\tnewline\n", "水位高", "x" * 300, "alarm"])],
    "P002": [],  # asked for, no values: absent from the compact answer
}
IDS = ["P001", "P002", "P004", "P005"]
RANGE = "&from=2026-03-01T00:00:00Z&to=2026-03-02T00:00:00Z"


def query(api, extra):
    st, raw, _ = api.call("GET", "/api/v1/stored-values?" + "&".join("dataId=" + d for d in IDS) + RANGE + extra,
                          raw=True)
    try:
        return st, json.loads(raw), raw
    except ValueError:
        return st, None, raw


def flat_default(body):
    return [(v["dataId"], v["timestamp"], v["value"], v["quality"]) for v in body["values"]]


def flat_compact(body):
    out = []
    for g in body["series"]:
        for e in g["values"]:
            out.append((g["dataId"], e[0], e[1], e[2] if len(e) == 3 else "GOOD"))
    return out


def all_pages(api, extra, limit):
    rows, cursors, calls, cursor = [], [], 0, None
    while calls < 1000:
        st, b, raw = query(api, extra + "&limit=%d" % limit + ("&cursor=" + cursor if cursor else ""))
        calls += 1
        if st != 200 or not isinstance(b, dict):
            return None, (st, raw[:300])
        rows += flat_compact(b) if "series" in b else flat_default(b)
        cursor = b.get("nextCursor")
        cursors.append(cursor)
        if not cursor:
            break
    return rows, cursors


srv = None
try:
    subprocess.run([BIN, "init", "--demo", D], check=True, capture_output=True)
    srv, ports = srtest.start_server(BIN, D, os.path.join(T, "server.log"))
    st, _, body, _ = srtest.http_once(ports["http"], "POST", "/gw/v1/sessions",
                                      {"operatorId": "demo", "gatewayId": "GW001", "secret": "demo-gw001-secret"})
    gw = json.loads(body).get("token") if st == 201 else None
    vals = [{"dataId": d, "timestamp": t, "value": v, "quality": q} for d in SENT for (t, v, q) in SENT[d]]
    st, _, body, _ = srtest.http_once(ports["http"], "POST", "/gw/v1/measurements",
                                      srtest.gw_envelope("GW_MEASUREMENTS", "cm-1", {"values": vals}), gw)
    check("the gateway stores %d values of a number, an integer and a string point" % len(vals), st == 200,
          (st, body[:300]))
    api = srtest.Api(ports["http"])
    check("the demo app logs in", api.login("APP001", "demo", "demo-app001-secret") == 201)

    st, dflt, draw = query(api, "&limit=1000")
    st2, comp, craw = query(api, "&limit=1000&format=compact")
    check("default form: unchanged ({values, nextCursor}, one object a value, quality always)",
          st == 200 and set(dflt) == {"values", "nextCursor"} and all(set(v) == {"dataId", "timestamp", "value",
                                                                             "quality"} for v in dflt["values"]),
          (st, draw[:300]))
    check("compact form: {series, nextCursor}; a group {dataId, values} a point with values (P002 absent)",
          st2 == 200 and set(comp) == {"series", "nextCursor"} and comp["nextCursor"] is None and
          [g["dataId"] for g in comp["series"]] == ["P001", "P004", "P005"] and
          all(set(g) == {"dataId", "values"} for g in comp["series"]), (st2, craw[:300]))
    entries = [e for g in comp["series"] for e in g["values"]] if st2 == 200 else []
    check("compact form: [timestamp, value] for GOOD, [timestamp, value, quality] otherwise",
          entries and all((len(e) == 2) or (len(e) == 3 and e[2] in Q[1:]) for e in entries) and
          any(len(e) == 3 for e in entries) and any(len(e) == 2 for e in entries), entries[:8])
    want = [(d, t, v, q) for d in IDS for (t, v, q) in SENT[d]]
    check("compact form: the same values as the default form, as sent (%d)" % len(want),
          flat_compact(comp) == flat_default(dflt) == want, (flat_compact(comp)[:4], flat_default(dflt)[:4]))
    dtext = re.findall(rb'"dataId":"P001","timestamp":"[^"]+","value":([^,]+),', draw)
    g1 = re.search(rb'\{"dataId":"P001","values":\[(.*?\])\]\}', craw)
    ctext = re.findall(rb'\["[^"]+",([^,\]]+)', g1.group(1)) if g1 else []
    check("compact form: the numbers in the same text as the default form (%d)" % len(dtext),
          len(dtext) == 40 and ctext == dtext, (dtext[:5], ctext[:5]))
    _, dd, _ = query(api, "&limit=1000&order=desc")
    _, cd, _ = query(api, "&limit=1000&order=desc&format=compact")
    check("order=desc: the same values in both forms, newest first in each group",
          flat_compact(cd) == flat_default(dd) and flat_default(dd)[0][1] > flat_default(dd)[1][1],
          (flat_compact(cd)[:3], flat_default(dd)[:3]))

    bad = []
    for limit in (1, 2, 3, 7, 15, 40, 41, 55):
        d_rows, d_cur = all_pages(api, "", limit)
        c_rows, c_cur = all_pages(api, "&format=compact", limit)
        if d_rows != want or c_rows != want or d_cur != c_cur:
            bad.append((limit, d_cur, c_cur, (d_rows or [])[:2], (c_rows or [])[:2]))
    check("paging (limit 1..55): every value once in either form, the same cursors", not bad, bad[:2])
    st, b, raw = query(api, "&limit=5")
    cur = b.get("nextCursor") if isinstance(b, dict) else None
    st2, b2, raw2 = query(api, "&limit=1000&format=compact&cursor=%s" % cur)
    check("a default form's cursor continues in the compact form", st2 == 200 and flat_compact(b2) == want[5:],
          (cur, raw2[:200]))

    for f in ("Compact", "xml", ""):
        st, b, raw = query(api, "&format=" + f)
        check("format=%s: 400 E1001" % f, st == 400 and srtest.code(b) == "E1001", (st, raw[:200]))
    st, b, raw = query(api, "&format=values")
    check("format=values: the default form", st == 200 and flat_default(b) == want[:1000], raw[:200])

    ratio = len(craw) / len(draw)
    print("size: default %d B, compact %d B (%.2f) for %d values of 3 points" % (len(draw), len(craw), ratio,
                                                                                 len(want)))
    check("compact form: smaller than the default form for the same values", len(craw) < len(draw),
          (len(craw), len(draw)))
finally:
    check("the server stops cleanly", srtest.stop_server(srv) == 0)
    srtest.finish(check, T, [srv])
