#!/usr/bin/python3
"""tests/integration/test_audit_access.py -- every AP-IF and GW-IF request
that reads or changes data is in the audit trail (issue #18, R-SE-5;
api/access.h, engine/audit.c, docs/admin.md "Audit"), end to end with the
real `suiro` ([audit] flush_ms 100):

 1. An app's reads over AP-IF (latest, stored values, a refused latest of a
    point it may not read: 403 E2003, masters) are ONE `read` row per batch
    of that app: who (actor, actorKind app, operator), what (the routes, the
    data points, the counts of requests, values and bytes), from where (its
    address), the outcome (partly refused, with the code).
 2. A gateway's reads over GW-IF HTTP (a certificate, the request fetch)
    and over MQTT (req/fetch, req/cert) are `read` rows of that gateway.
 3. Data writes are `write` rows (a WriteAudit the writer appends with the
    writes, one per group commit and writer): the gateway's values over
    HTTP and over MQTT, the app's document, request and monitor, each with
    who, the kinds and counts, the data points (PX1, document:notes/n1,
    request:ID, monitor:ID) and the outcome.
 4. The listing's filters: actor, operator, kind and time find exactly
    those operations; another operator's admin does not see them.
 5. `[audit] reads = off`: reads make no row (a restart with it).
usage: test_audit_access.py SUIRO_BIN"""
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse

BIN = sys.argv[1]
T = tempfile.mkdtemp(prefix="suiro-auditaccess-")
D = os.path.join(T, "data")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from srtest import (OTHER_OPERATOR_SHEET, Api, Checks, RawGw, admin_new_user, admin_session, code, finish,  # noqa: E402
                    gw_envelope, import_sheet, init_with_admins, start_server, stop_server, wait_until)

check = Checks()
server = None
EV = "/admin/v1/audit/events"


def config(reads="on"):
    cfg = os.path.join(T, "suiro-%s.ini" % reads)
    with open(cfg, "w") as f:
        f.write("[engine]\ndata_dir = %s\n[mqtt]\nlisten = 127.0.0.1:0\n[http]\nlisten = 127.0.0.1:0\n"
                "[audit]\nreads = %s\nflush_ms = 100\n" % (D, reads))
    return cfg


def q(api, **params):
    return api.call("GET", EV + "?" + urllib.parse.urlencode(params))


def rows(api, **params):
    """the items of q (every one must be 200)"""
    st, b = q(api, **params)
    assert st == 200, (st, b)
    return b["items"]


def until_rows(api, n, **params):
    """rows(...) once n of them are there (a batch is written every flush_ms), at most 10 s"""
    last = [[]]

    def probe():
        last[0] = rows(api, **params)
        return len(last[0]) >= n
    wait_until(probe, timeout=10)
    return last[0]


try:
    temp, temp2 = init_with_admins(BIN, D)
    import_sheet(BIN, D, os.path.join(T, "other.csv"), OTHER_OPERATOR_SHEET)
    server, ports = start_server(BIN, D, os.path.join(T, "server.log"), config=config("on"), until="mqtt")
    hp, mp = ports["http"], ports["mqtt"]
    if "http" not in ports:
        wait_until(lambda: "http" in ports, timeout=10)
        hp = ports["http"]
    root = admin_session(hp, "admin", temp, "platform-admin-pw-1")
    root2 = admin_session(hp, "admin2", temp2, "platform-admin-pw-2")
    aud = admin_new_user(hp, root, "aud", "platform", None, ["auditor"], "auditor-password-1", approver=root2)
    t0 = int(time.time() * 1000)

    # 1. the app's reads (and one write)
    app = Api(hp)
    check("APPX logs in", app.login("APPX", "other", "other-app-secret") == 201)
    gw = Api(hp)
    st, b = gw.call("POST", "/gw/v1/sessions", {"operatorId": "other", "gatewayId": "GWX", "secret": "other-gw-secret"})
    check("GWX logs in over HTTP", st == 201, (st, b))
    gw.token = b.get("token")
    st, b = gw.call("POST", "/gw/v1/measurements", gw_envelope("GW_MEASUREMENTS", "m1", {"values": [
        {"dataId": "PX1", "timestamp": "2026-11-22T00:00:00.000Z", "value": 12.5, "quality": "GOOD"}]}))
    check("GWX stores a value of PX1", st == 200, (st, b))
    st, b = app.call("GET", "/api/v1/stored-values/latest?dataId=PX1")
    check("APPX reads PX1's latest value", st == 200 and len(b["values"]) == 1, (st, b))
    st, b = app.call("GET", "/api/v1/stored-values?dataId=PX1&from=2026-11-21T00:00:00Z&to=2026-11-23T00:00:00Z")
    check("APPX reads PX1's stored values", st == 200 and len(b["values"]) == 1, (st, b))
    st, b = app.call("GET", "/api/v1/stored-values/latest?dataId=NOPE")
    check("APPX may not read NOPE (403 E2003)", st == 403 and code(b) == "E2003", (st, b))
    st, b = app.call("PUT", "/api/v1/documents/notes/n1", {"text": "hello"})
    check("APPX writes a document (a write: a write row, not a read entry)", st in (200, 201), (st, b))

    def nreq(its):
        return sum(int(i["detail"].split(" request(s)")[0]) for i in its)

    def app_reads():  # a flush between the reads splits them into two rows: all of them
        its = rows(aud, actor="APPX", kind="read", **{"from": t0})
        return its if nreq(its) >= 3 else None
    items = wait_until(app_reads, timeout=10) or rows(aud, actor="APPX", kind="read", **{"from": t0})
    check("the app's three reads are in the trail (kind read, one row per batch)", nreq(items) == 3,
          json.dumps(items, indent=1))
    details, actions = " ".join(i["detail"] for i in items), " ".join(i["action"] for i in items)
    check("... who: actor APPX, actorKind app, operator other, target app:APPX",
          items and all(i["actor"] == "APPX" and i["actorKind"] == "app" and i.get("operator") == "other"
                        and i["target"] == "app:APPX" for i in items), items)
    check("... what: the routes", "GET /api/v1/stored-values/latest" in actions
          and "GET /api/v1/stored-values," in actions + ",", actions)
    check("... counts: 2 answered, 1 refused with its code, 2 values",
          sum(int(i["detail"].split(" answered")[0].split(", ")[-1]) for i in items) == 2
          and "1 refused (E2003 x1)" in details
          and sum(int(i["detail"].split(" value(s)")[0].split("; ")[-1]) for i in items) == 2, details)
    check("... the data points it named", "PX1" in details and "NOPE" in details, details)
    check("... where: the app's address", items and all(i["source"].startswith("127.0.0.1") for i in items), items)
    check("... the outcome: the refusal shows (partly refused or refused)",
          any(i["outcome"] in ("partly refused", "refused") for i in items), items)
    # 2. the gateway's reads: HTTP certificate and fetch, MQTT req/fetch and req/cert
    st, b = gw.call("GET", "/gw/v1/certificates/platform/platform")
    check("GWX reads the platform's certificate over HTTP", st == 200, (st, b))
    st, b = gw.call("POST", "/gw/v1/requests/fetch", gw_envelope("GW_FETCH_REQ", "f1", {"waitMs": 0}))
    check("GWX fetches its requests over HTTP", st == 200, (st, b))
    g = RawGw(mp, "other", "GWX", "other-gw-secret")
    check("GWX connects over MQTT", g.connack == 0, g.connack)
    check("... fetches over MQTT", g.publish_wait("req/fetch", gw_envelope("GW_FETCH_REQ", "f2", {})) == 0)
    check("... asks for a certificate over MQTT", g.publish_wait(
        "req/cert", gw_envelope("GW_CERT_REQ", "c1", {"subjectType": "platform"})) == 0)
    check("... stores a value of PX1 over MQTT", g.publish_wait("data/measurements", gw_envelope(
        "GW_MEASUREMENTS", "m2", {"values": [{"dataId": "PX1", "timestamp": "2026-11-22T00:00:01.000Z", "value": 13.5,
                                              "quality": "GOOD"}]})) == 0)
    st, b = app.call("POST", "/api/v1/current-values?async=true", {"dataIds": ["PX1"], "timeoutMs": 5000})
    check("APPX asks for PX1's current value (a request: a write)", st in (200, 202) and b.get("requestId"), (st, b))
    rid = (b or {}).get("requestId", "?")
    st, b = app.call("POST", "/api/v1/monitors", {"dataIds": ["PX1"], "intervalMs": 1000})
    check("APPX starts a monitor of PX1 (a write)", st in (200, 201) and b.get("monitorId"), (st, b))
    mid = (b or {}).get("monitorId", "?")
    g.close()

    def gw_reads():
        its = rows(aud, actor="GWX", kind="read", **{"from": t0})
        return its if sum(int(i["detail"].split(" request(s)")[0]) for i in its) >= 4 else None
    gi = wait_until(gw_reads, timeout=10) or rows(aud, actor="GWX", kind="read", **{"from": t0})
    acts = " ".join(i["action"] for i in gi)
    check("the gateway's four reads are in the trail (HTTP and MQTT)",
          sum(int(i["detail"].split(" request(s)")[0]) for i in gi) == 4, json.dumps(gi, indent=1))
    check("... the HTTP certificate and fetch routes, the MQTT req/fetch and req/cert",
          all(s in acts for s in ("GET /gw/v1/certificates/{subjectType}/{subjectId}", "POST /gw/v1/requests/fetch",
                                  "PUBLISH req/fetch", "PUBLISH req/cert")), acts)
    check("... who: gateway GWX of operator other",
          all(i["actorKind"] == "gateway" and i["target"] == "gateway:GWX" and i.get("operator") == "other"
              for i in gi), gi)

    # 3. the writes: write rows (the writer's WriteAudit, one per group commit and writer)
    def vals(its):
        return sum(int(i["detail"].split(" value(s)")[0].split(", ")[-1]) for i in its)

    def gw_writes():
        its = rows(aud, actor="GWX", kind="write", **{"from": t0})
        return its if vals(its) >= 2 else None
    gwr = wait_until(gw_writes, timeout=10) or rows(aud, actor="GWX", kind="write", **{"from": t0})
    check("the gateway's two values (HTTP and MQTT) are in the trail as write rows, 2 values",
          vals(gwr) == 2 and all("measurements x" in i["action"] for i in gwr), json.dumps(gwr, indent=1))
    check("... who: gateway GWX of operator other; the outcome ok; the data point PX1",
          gwr and all(i["actorKind"] == "gateway" and i["target"] == "gateway:GWX" and i.get("operator") == "other"
                      and i["outcome"] == "ok" and "PX1" in i["detail"] for i in gwr), gwr)
    check("... each row names the seqs it summarises",
          gwr and all(" seq " in i["detail"] and int(i["detail"].split(" seq ")[1].split("..")[1].split(";")[0]) < i["seq"]
                      for i in gwr), gwr)

    def app_writes():
        its = rows(aud, actor="APPX", kind="write", **{"from": t0})
        d = " ".join(i["detail"] + " " + i["action"] for i in its)
        return its if all(x in d for x in ("document:notes/n1", "request:" + rid, "monitor:" + mid)) else None
    apw = wait_until(app_writes, timeout=10) or rows(aud, actor="APPX", kind="write", **{"from": t0})
    ad = " ".join(i["action"] for i in apw)
    dd = " ".join(i["detail"] for i in apw)
    check("the app's document, request and monitor are write rows", all(
        x in ad for x in ("doc_put x1", "request_created x", "monitor x")) and all(
        x in dd for x in ("document:notes/n1", "request:" + rid, "monitor:" + mid)), json.dumps(apw, indent=1))
    # where: a row's source is its writes' own: an app's documents and files
    # carry its address; its requests and monitors and a gateway's values
    # carry none today (NOT done, docs/admin.md "Writes")
    check("... where: the document's row has the app's address",
          any("doc_put" in i["action"] and i.get("source", "").startswith("127.0.0.1") for i in apw), apw)
    check("... a source, where a row has one, is the peer's address",
          all(i.get("source", "127.0.0.1").startswith("127.0.0.1") for i in apw + gwr), apw + gwr)
    check("... who: app APPX of operator other, outcome ok",
          apw and all(i["actorKind"] == "app" and i["target"] == "app:APPX" and i.get("operator") == "other"
                      and i["outcome"] == "ok" for i in apw), apw)
    check("kind write, operator other: only APPX's and GWX's rows (and the system's)",
          {i["actor"] for i in rows(aud, kind="write", operator="other", **{"from": t0})} - {"system"} == {"APPX", "GWX"})
    check("kind read,write for APPX: both kinds",
          {i["kind"] for i in rows(aud, actor="APPX", kind="read,write", **{"from": t0})} == {"read", "write"})

    # 4. the filters
    t1 = int(time.time() * 1000) + 1
    check("kind read, operator other: only APPX's and GWX's rows",
          {i["actor"] for i in rows(aud, kind="read", operator="other", **{"from": t0})} == {"APPX", "GWX"})
    check("a window before the reads finds none of them",
          rows(aud, kind="read", **{"from": 0, "to": t0 - 1}) == [])
    check("a window after them finds none", rows(aud, kind="read", **{"from": t1}) == [])
    check("kind read for APPX finds no other actor's rows",
          {i["actor"] for i in rows(aud, actor="APPX", kind="read", **{"from": t0})} == {"APPX"})

    # 4c. perf18: a read's record lives on its thread's list from its start
    # to the request's end (the reads' h2o logger, api/access.c), not in an
    # env entry: many reads on ONE keep-alive connection (h2o reuses the
    # request) and a read naming two points are each exactly one entry
    many = 25
    oks = sum(app.call("GET", "/api/v1/stored-values/latest?dataId=PX1")[0] == 200 for _ in range(many))
    st, b = app.call("GET", "/api/v1/stored-values/latest?dataId=PX1&dataId=PX1")
    check("APPX reads PX1's latest value %d times on one connection, then once naming it twice" % many,
          oks == many and st == 200, (oks, st, b))
    n_before_stop = many + 1
    # 5. reads off: no row
    stop_server(server)
    server = None
    # 4b. issue #18 (the read audit's cost): the reads are written as packed
    # batches (AccessBatch, Event.body 50), none as the old AccessEvent; the
    # replay shows each entry: APPX's latest read of PX1 with its point,
    # count, status, outcome and peer, and the refused one with its code
    rp = subprocess.run([BIN, "replay", D, "--kind", "access_batch"], capture_output=True, text=True, timeout=60)
    evs = [json.loads(x) for x in rp.stdout.splitlines() if x.strip()]
    old = subprocess.run([BIN, "replay", D, "--kind", "access"], capture_output=True, text=True, timeout=60)
    check("the reads are packed batches (body 50), no old AccessEvent written",
          rp.returncode == 0 and evs and old.returncode == 0 and not old.stdout.strip(), (rp.stderr, old.stdout[:300]))
    ents = [(ev.get("actor"), en) for ev in evs for en in ev["access_batch"].get("entries", [])]
    latest = [en for a, en in ents if a == "APPX" and en.get("route") == "/api/v1/stored-values/latest"]
    check("... APPX's latest read of PX1: its point, one value, 200, answered, from 127.0.0.1",
          any(en.get("points") == ["PX1"] and en.get("npoints") == 1 and en.get("values") == 1
              and en.get("status") == 200 and not en.get("code") and en.get("source", "").startswith("127.0.0.1")
              and en.get("binding") == "apif-http" and en.get("method") == "GET" for en in latest), latest)
    check("... and its refused read of NOPE: 403 E2003, no value",
          any(en.get("points") == ["NOPE"] and en.get("status") == 403 and en.get("code") == "E2003"
              and not en.get("values") for en in latest), latest)
    check("... every read on the one connection is one entry (2 of section 1 + %d)" % n_before_stop,
          len(latest) == 2 + n_before_stop and sum(en.get("points") == ["PX1"] for en in latest) == 1 + many
          and sum(en.get("points") == ["PX1", "PX1"] and en.get("npoints") == 2 for en in latest) == 1,
          [(en.get("points"), en.get("status")) for en in latest])
    server, ports = start_server(BIN, D, os.path.join(T, "server.log"), config=config("off"))
    hp = ports["http"]
    aud = admin_session(hp, "aud", "auditor-password-1")
    app = Api(hp)
    check("APPX logs in again (reads off)", app.login("APPX", "other", "other-app-secret") == 201)
    t2 = int(time.time() * 1000)
    st, b = app.call("GET", "/api/v1/stored-values/latest?dataId=PX1")
    check("... reads", st == 200, (st, b))
    time.sleep(0.5)  # five flush periods of the reads-on setting: nothing may come
    check("[audit] reads = off: the read makes no row", rows(aud, kind="read", **{"from": t2}) == [])
except Exception as e:  # noqa: BLE001
    check.failed(e)
finally:
    if server:
        stop_server(server)
finish(check, T, [], "server.log")
