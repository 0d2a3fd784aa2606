#!/usr/bin/python3
"""tests/integration/test_gw_answers.py -- a gateway's answers as an adversary
writes them, through the real `suiro serve` (issue 11, items 1 and 3;
docs/requests.md "What the gateway answers" and "What reaches the app").

Item 1: every field of every GW->platform message is checked against the
request it answers before it is used.
  - the crash: an IMMEDIATE answer with "appliedValue":null and empty values
    to an async current-values request, over MQTT and over the HTTP binding;
    the server must refuse it (E1001) and keep serving;
  - a table of malformed answers (one row per case: immediate results,
    control results, periodic data, monitor acks, certificate and fetch
    requests), each sent over MQTT (and the answer kinds over HTTP too) and
    refused with its code, with nothing stored and nothing delivered.
Item 3: an app gets only what its request asked for and what it may read
when the answer is delivered:
  - extra / foreign / ungranted dataIds in answers to current-values (sync
    and async), in periodic data (monitor push), in GET /requests/{id};
  - a grant withdrawn while the request's outcome is stored (the grant's
    access changed from both to control by a sheet import, server stopped:
    the server has no live import) hides those values from GET
    /requests/{id} and from a monitor's push after the restart. A grant
    withdrawn between a request and its answer is tested in process
    (tests/api/test_broker_answers.c), where the sheet can change while the
    broker serves.
Issue #13: values come back in the shortest text that equals what the
gateway sent on every path an answer reaches the app by (sync and async
current values, request status and push, monitor push and values, stored
and latest values).
PUBACKs go out in the order the PUBLISHes came (MQTT-4.6.0-2) when broker
messages (periodic data) and values (measurements) are pipelined. An app
polling GET /monitors/{id}/values?after= gets every value once, also when
one point has more new values than one answer holds.

The App and Gateway clients are test_requests.py's (imported). Ports are
chosen at run time; the server is stopped by its PID; every wait is on a
condition with a timeout. usage: test_gw_answers.py SUIRO_BIN"""
import os
import shutil
import sys
import tempfile
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import srtest  # noqa: E402
import test_requests as tr  # noqa: E402  (its main is guarded; it made a temp dir we do not use)

shutil.rmtree(tr.T, ignore_errors=True)
BIN = sys.argv[1]
T = tempfile.mkdtemp(prefix="suiro-gwanswers-")
tr.T, tr.D, tr.LOG = T, os.path.join(T, "data"), os.path.join(T, "server.log")
check = srtest.Checks()
WAIT = tr.WAIT

GA1, GA2 = ("GA1", "ga-gw1-secret-0001"), ("GA2", "ga-gw2-secret-0001")
APA, APB = ("APA", "ga", "ga-apa-secret-0001"), ("APB", "ga", "ga-apb-secret-0001")


def sheet(push_url, int_access="both"):
    return """#suiro-setup-sheet v1
[operator]
id,name
ga,Gateway answers test utility

[gateways]
id,name,secret
GA1,Answering gateway,%s
GA2,Second gateway,%s

[apps]
id,name,secret,push_url
APA,App under test,%s,%s
APB,Auditor app,%s,

[facilities]
id,name
FA,Plant

[equipment]
id,facility,name
EA,FA,Station

[devices]
id,equipment,gateway,name
DA1,EA,GA1,Controller 1
DA2,EA,GA2,Controller 2

[datapoints]
id,device,name,type,unit,min,max,kind
PA.NUM,DA1,Level,number,m,0,100,both
PA.INT,DA1,Count,integer,,,,both
PA.SECRET,DA1,Secret level,number,m,,,measure
PA.OTHER,DA1,Other level,number,m,,,measure
PA.BOOL,DA1,Pump,boolean,,,,control
PB.NUM,DA2,Far level,number,m,,,measure

[grants]
app,datapoint,access
APA,PA.NUM,both
APA,PA.INT,%s
APA,PA.OTHER,read
APA,PA.BOOL,both
APA,PB.NUM,read
APB,PA.SECRET,read
""" % (GA1[1], GA2[1], APA[2], push_url, APB[2], int_access)


# ---- the app's push URL -------------------------------------------------------

Receiver = srtest.PushReceiver  # records every push; wait(pred) and paths() as (path, JSON body)


# ---- helpers --------------------------------------------------------------------

def ids_of(vals):
    return sorted(v.get("dataId") for v in vals or [] if isinstance(v, dict))


def val(d, v):
    return {"dataId": d, "timestamp": tr.ts(), "value": v}


def gw_http(gw, secret):
    """A GW-IF HTTP session token for gw of operator ga."""
    st, js, _, _ = tr.http_call("POST", "/gw/v1/sessions", {"operatorId": "ga", "gatewayId": gw, "secret": secret})
    return js.get("token") if st == 201 and isinstance(js, dict) else None


def http_send(token, route, mtype, body):
    """(status, result code) of a GW-IF HTTP message."""
    st, js, _, _ = tr.http_call("POST", "/gw/v1/" + route, tr.envelope(mtype, tr.new_mid("h"), body), token)
    return st, tr.code_of(js)


def alive():
    return tr.server is not None and tr.server.poll() is None


def open_async(app, ids):
    st, js = app.current(ids, 30000, asynchronous=True)
    return js.get("requestId") if st == 202 and isinstance(js, dict) else None


def open_control(app, did, value):
    st, js = app.post("/api/v1/control-values?async=true", {"dataId": did, "value": value, "timeoutMs": 30000})
    return js.get("requestId") if st == 202 and isinstance(js, dict) else None


def status_of(app, rid):
    st, js = app.request(rid)
    return js.get("status") if st == 200 and isinstance(js, dict) else (st, js)


def start_monitor(app, gw, ids):
    """(monitorId, the START request's id) once gw acked the start."""
    st, js = app.post("/api/v1/monitors", {"dataIds": ids, "intervalMs": 1000})
    mon = js.get("monitorId") if st == 201 and isinstance(js, dict) else None
    start = gw.wait_pushed(lambda r: r.get("type") == "PERIODIC_START" and r.get("monitorId") == mon)
    res = gw.ack(gw.send("ack/monitor", "GW_MONITOR_ACK", {"monitorId": mon, "action": "START", "result": "0"}))
    check("monitor %s on %s: started and acknowledged" % (mon, ids),
          mon and start and tr.code_of({"result": res}) == "0", (st, js, res))
    return mon, (start or {}).get("requestId")


# ---- the cases --------------------------------------------------------------------

rcv = Receiver()
app, auditor = tr.App(*APA), tr.App(*APB)
g1 = g2 = None


def connect():
    global g1, g2
    check("APA logs in", app.login()[0] == 201)
    check("APB logs in", auditor.login()[0] == 201)
    g1 = tr.Gateway("GA1", op="ga", secret=GA1[1])
    g2 = tr.Gateway("GA2", v5=True, op="ga", secret=GA2[1])
    g1.mode = g2.mode = "silent"
    check("GA1 (MQTT 3.1.1) and GA2 (MQTT 5.0) connect and subscribe",
          g1.connack == 0 and g2.connack == 0 and g1.suback and g2.suback, (g1.connack, g2.connack))


CRASH = {"values": [], "appliedValue": None, "result": "0"}


def case_crash():
    # MQTT: R/data/immediate
    rid = open_async(app, ["PA.NUM"])
    req = g1.wait_pushed(lambda r: r.get("requestId") == rid)
    res = g1.ack(g1.send("data/immediate", "GW_IMMEDIATE_RESULT", dict(CRASH, requestId=rid)))
    check("crash (MQTT): appliedValue null + empty values refused with E1001", tr.code_of({"result": res}) == "E1001",
          (req, res))
    check("crash (MQTT): the server is still running", alive())
    check("crash (MQTT): the request is still open (nothing delivered)", status_of(app, rid) == "DISPATCHED")
    # HTTP: /gw/v1/immediate-results, answering a request pushed on MQTT
    tok = gw_http(*GA1)
    rid2 = open_async(app, ["PA.NUM"])
    g1.wait_pushed(lambda r: r.get("requestId") == rid2)
    st, c = http_send(tok, "immediate-results", "GW_IMMEDIATE_RESULT", dict(CRASH, requestId=rid2)) if tok else (0, 0)
    check("crash (HTTP): refused 400 E1001", (st, c) == (400, "E1001"), (st, c))
    check("crash (HTTP): the server is still running", alive())
    # the server still serves: both requests answered properly
    for r in (rid, rid2):
        res = g1.ack(g1.send("data/immediate", "GW_IMMEDIATE_RESULT",
                             {"requestId": r, "values": [val("PA.NUM", 12.5)], "result": "0"}))
        check("after the crash: a valid answer is acknowledged (0)", tr.code_of({"result": res}) == "0", res)
        st, js = app.wait_request(r, ("SUCCEEDED",))
        check("after the crash: the app gets SUCCEEDED with PA.NUM",
              st == 200 and js.get("status") == "SUCCEEDED" and ids_of(js.get("values")) == ["PA.NUM"], (st, js))


def case_table():
    """One row per malformed answer: (name, suffix, messageType, body, code)."""
    rid_i = open_async(app, ["PA.NUM", "PA.INT"])
    rid_c = open_control(app, "PA.NUM", 5)
    rid_o = open_async(app, ["PB.NUM"])           # GA2's
    rid_b = open_control(app, "PA.BOOL", True)
    for r in (rid_i, rid_c, rid_b):
        check("table: request %s pushed to GA1" % r, g1.wait_pushed(lambda q: q.get("requestId") == r))
    check("table: request %s pushed to GA2" % rid_o, g2.wait_pushed(lambda q: q.get("requestId") == rid_o))
    mon, rid_m = start_monitor(app, g1, ["PA.NUM"])
    I, C, P, A = "data/immediate", "ack/control", "data/periodic", "ack/monitor"
    IT, CT, PT, AT = "GW_IMMEDIATE_RESULT", "GW_CONTROL_RESULT", "GW_PERIODIC_DATA", "GW_MONITOR_ACK"
    ok_vals = [val("PA.NUM", 1.0), val("PA.INT", 2)]
    rows = [
        ("immediate: appliedValue null, values [] (the crash)", I, IT, dict(CRASH, requestId=rid_i), "E1001"),
        ("immediate: appliedValue 3", I, IT, {"requestId": rid_i, "values": ok_vals, "appliedValue": 3, "result": "0"}, "E1001"),
        ("immediate: a dataId field", I, IT, {"requestId": rid_i, "dataId": "PA.NUM", "values": ok_vals, "result": "0"}, "E1001"),
        ("immediate: no requestId", I, IT, {"values": ok_vals, "result": "0"}, "E1001"),
        ("immediate: requestId a number", I, IT, {"requestId": 7, "values": ok_vals, "result": "0"}, "E1001"),
        ("immediate: requestId not an ID", I, IT, {"requestId": "Q/../x", "values": ok_vals, "result": "0"}, "E1001"),
        ("immediate: unknown requestId", I, IT, {"requestId": "Q0000000000000000", "values": ok_vals, "result": "0"}, "E3001"),
        ("immediate: another gateway's requestId", I, IT, {"requestId": rid_o, "values": [val("PB.NUM", 1.0)], "result": "0"}, "E3001"),
        ("immediate: answers a CONTROL request", I, IT, {"requestId": rid_c, "values": [val("PA.NUM", 5.0)], "result": "0"}, "E1001"),
        ("immediate: answers a PERIODIC_START request", I, IT, {"requestId": rid_m, "values": [val("PA.NUM", 5.0)], "result": "0"}, "E1001"),
        ("immediate: no result", I, IT, {"requestId": rid_i, "values": ok_vals}, "E1001"),
        ("immediate: result 5", I, IT, {"requestId": rid_i, "values": ok_vals, "result": 5}, "E1001"),
        ("immediate: result {code: X}", I, IT, {"requestId": rid_i, "values": ok_vals, "result": {"code": "X"}}, "E1001"),
        ("immediate: result code E2001 (an app session's code)", I, IT, {"requestId": rid_i, "values": ok_vals, "result": {"code": "E2001"}}, "E1001"),
        ("immediate: result code E4999 (not in interface.md)", I, IT, {"requestId": rid_i, "values": ok_vals, "result": "E4999"}, "E1001"),
        ("immediate: result message 5", I, IT, {"requestId": rid_i, "values": ok_vals, "result": {"code": "E4003", "message": 5}}, "E1001"),
        ("immediate: values a string", I, IT, {"requestId": rid_i, "values": "PA.NUM", "result": "0"}, "E1001"),
        ("immediate: values missing with result 0", I, IT, {"requestId": rid_i, "result": "0"}, "E1001"),
        ("immediate: a value not an object", I, IT, {"requestId": rid_i, "values": [1], "result": "0"}, "E1001"),
        ("immediate: a value's dataId null", I, IT, {"requestId": rid_i, "values": [dict(val("PA.NUM", 1.0), dataId=None)], "result": "0"}, "E1001"),
        ("immediate: a dataId not asked for (PA.SECRET)", I, IT, {"requestId": rid_i, "values": ok_vals[:1] + [val("PA.SECRET", 9.0)], "result": "0"}, "E1001"),
        ("immediate: a dataId granted but not asked for (PA.OTHER)", I, IT, {"requestId": rid_i, "values": [val("PA.OTHER", 9.0)], "result": "0"}, "E1001"),
        ("immediate: another gateway's point (PB.NUM)", I, IT, {"requestId": rid_i, "values": [val("PB.NUM", 9.0)], "result": "0"}, "E1001"),
        ("immediate: an unknown point", I, IT, {"requestId": rid_i, "values": [val("NOPE", 9.0)], "result": "0"}, "E1001"),
        ("immediate: the same dataId twice", I, IT, {"requestId": rid_i, "values": [val("PA.NUM", 1.0), val("PA.NUM", 2.0)], "result": "0"}, "E1001"),
        ("immediate: more values than asked", I, IT, {"requestId": rid_i, "values": ok_vals + [val("PA.NUM", 3.0)], "result": "0"}, "E1001"),
        ("immediate: 5000 values", I, IT, {"requestId": rid_i, "values": [val("PA.NUM", 1.0)] * 5000, "result": "0"}, "E1001"),
        ("immediate: a value of the wrong type", I, IT, {"requestId": rid_i, "values": [val("PA.NUM", "high")], "result": "0"}, "E1001"),
        ("immediate: an integer point given 1.5", I, IT, {"requestId": rid_i, "values": [val("PA.INT", 1.5)], "result": "0"}, "E1001"),
        ("immediate: a value above the maximum", I, IT, {"requestId": rid_i, "values": [val("PA.NUM", 1000.0)], "result": "0"}, "E1001"),
        ("immediate: quality 5", I, IT, {"requestId": rid_i, "values": [dict(val("PA.NUM", 1.0), quality=5)], "result": "0"}, "E1001"),
        ("immediate: timestamp missing", I, IT, {"requestId": rid_i, "values": [{"dataId": "PA.NUM", "value": 1.0}], "result": "0"}, "E1001"),
        ("immediate: messageType GW_CONTROL_RESULT", I, CT, {"requestId": rid_i, "values": ok_vals, "result": "0"}, "E1001"),
        ("control: no appliedValue with result 0", C, CT, {"requestId": rid_c, "dataId": "PA.NUM", "result": "0"}, "E1001"),
        ("control: appliedValue null with result 0", C, CT, {"requestId": rid_c, "dataId": "PA.NUM", "appliedValue": None, "result": "0"}, "E1001"),
        ("control: appliedValue a string for a number", C, CT, {"requestId": rid_c, "dataId": "PA.NUM", "appliedValue": "5", "result": "0"}, "E1001"),
        ("control: appliedValue an object", C, CT, {"requestId": rid_c, "dataId": "PA.NUM", "appliedValue": {"v": 5}, "result": "0"}, "E1001"),
        ("control: appliedValue a number for a boolean", C, CT, {"requestId": rid_b, "dataId": "PA.BOOL", "appliedValue": 1, "result": "0"}, "E1001"),
        ("control: no dataId", C, CT, {"requestId": rid_c, "appliedValue": 5, "result": "0"}, "E1001"),
        ("control: dataId 42", C, CT, {"requestId": rid_c, "dataId": 42, "appliedValue": 5, "result": "0"}, "E1001"),
        ("control: another dataId (PA.SECRET)", C, CT, {"requestId": rid_c, "dataId": "PA.SECRET", "appliedValue": 5, "result": "0"}, "E1001"),
        ("control: values given", C, CT, {"requestId": rid_c, "dataId": "PA.NUM", "appliedValue": 5, "values": [val("PA.SECRET", 1.0)], "result": "0"}, "E1001"),
        ("control: answers an IMMEDIATE request", C, CT, {"requestId": rid_i, "dataId": "PA.NUM", "appliedValue": 5, "result": "0"}, "E1001"),
        ("control: unknown requestId", C, CT, {"requestId": "Q0000000000000001", "dataId": "PA.NUM", "appliedValue": 5, "result": "0"}, "E3001"),
        ("control: no result", C, CT, {"requestId": rid_c, "dataId": "PA.NUM", "appliedValue": 5}, "E1001"),
        ("control: messageType GW_IMMEDIATE_RESULT", C, IT, {"requestId": rid_c, "dataId": "PA.NUM", "appliedValue": 5, "result": "0"}, "E1001"),
        ("periodic: no monitorId", P, PT, {"values": [val("PA.NUM", 1.0)]}, "E1001"),
        ("periodic: monitorId a list", P, PT, {"monitorId": [mon], "values": [val("PA.NUM", 1.0)]}, "E1001"),
        ("periodic: unknown monitorId", P, PT, {"monitorId": "M0000000000000000", "values": [val("PA.NUM", 1.0)]}, "E3001"),
        ("periodic: a request's id as monitorId", P, PT, {"monitorId": rid_i, "values": [val("PA.NUM", 1.0)]}, "E3001"),
        ("periodic: values missing", P, PT, {"monitorId": mon}, "E1001"),
        ("periodic: values empty", P, PT, {"monitorId": mon, "values": []}, "E1001"),
        ("periodic: a dataId not in the monitor (PA.SECRET)", P, PT, {"monitorId": mon, "values": [val("PA.NUM", 1.0), val("PA.SECRET", 2.0)]}, "E1001"),
        ("periodic: a granted dataId not in the monitor (PA.OTHER)", P, PT, {"monitorId": mon, "values": [val("PA.OTHER", 2.0)]}, "E1001"),
        ("periodic: a value of the wrong type", P, PT, {"monitorId": mon, "values": [val("PA.NUM", True)]}, "E1001"),
        ("monitor ack: action RESTART", A, AT, {"monitorId": mon, "action": "RESTART", "result": "0"}, "E1001"),
        ("monitor ack: no action", A, AT, {"monitorId": mon, "result": "0"}, "E1001"),
        ("monitor ack: monitorId an object", A, AT, {"monitorId": {}, "action": "START", "result": "0"}, "E1001"),
        ("monitor ack: no result", A, AT, {"monitorId": mon, "action": "START"}, "E1001"),
        ("monitor ack: result null", A, AT, {"monitorId": mon, "action": "START", "result": None}, "E1001"),
        ("monitor ack: unknown monitor", A, AT, {"monitorId": "M0000000000000000", "action": "START", "result": "0"}, "E3001"),
        ("cert: subjectType 5", "req/cert", "GW_CERT_REQ", {"subjectType": 5, "subjectId": "GA1"}, "E1001"),
        ("cert: subjectType unknown", "req/cert", "GW_CERT_REQ", {"subjectType": "root", "subjectId": "GA1"}, "E1001"),
        ("cert: subjectId a number", "req/cert", "GW_CERT_REQ", {"subjectType": "gateway", "subjectId": 5}, "E1001"),
        ("cert: app without subjectId", "req/cert", "GW_CERT_REQ", {"subjectType": "app"}, "E1001"),
        ("cert: subjectId not an ID", "req/cert", "GW_CERT_REQ", {"subjectType": "app", "subjectId": "../APA"}, "E1001"),
        ("cert: platform with another id than its own", "req/cert", "GW_CERT_REQ", {"subjectType": "platform", "subjectId": "GA1"}, "E3001"),
        ("fetch: maxItems a string", "req/fetch", "GW_FETCH_REQ", {"maxItems": "10"}, "E1001"),
        ("fetch: maxItems 0", "req/fetch", "GW_FETCH_REQ", {"maxItems": 0}, "E1001"),
        ("fetch: maxItems 10**12", "req/fetch", "GW_FETCH_REQ", {"maxItems": 10 ** 12}, "E1001"),
        ("fetch: messageType GW_CERT_REQ", "req/fetch", "GW_CERT_REQ", {"maxItems": 1}, "E1001"),
    ]
    routes = {I: "immediate-results", C: "control-results", P: "periodic-values", A: "monitor-acks"}
    tok = gw_http(*GA1)
    for name, suffix, mtype, body, want in rows:
        res = g1.ack(g1.send(suffix, mtype, body))
        got = tr.code_of({"result": res})
        check("MQTT %s: %s" % (name, want), got == want, res)
        if suffix in routes:
            st, c = http_send(tok, routes[suffix], mtype, body)
            check("HTTP %s: %s" % (name, want), c == want and st == srtest_status(want), (st, c))
    check("table: the server is still running", alive())
    check("table: the immediate request is still open", status_of(app, rid_i) == "DISPATCHED")
    check("table: the control request is still open", status_of(app, rid_c) == "DISPATCHED")
    st, v = auditor.latest("PA.SECRET")
    check("table: nothing stored for PA.SECRET", st == 200 and v is None, (st, v))
    check("table: nothing pushed for the monitor", not [p for p in rcv.paths() if mon in p], rcv.paths())
    # the valid answers still work
    res = g1.ack(g1.send(I, IT, {"requestId": rid_i, "values": ok_vals, "result": "0"}))
    check("table: then a valid immediate result is stored (0)", tr.code_of({"result": res}) == "0", res)
    st, js = app.wait_request(rid_i, ("SUCCEEDED",))
    check("table: the app gets exactly PA.INT and PA.NUM", ids_of((js or {}).get("values")) == ["PA.INT", "PA.NUM"], js)
    res = g1.ack(g1.send(C, CT, {"requestId": rid_c, "dataId": "PA.NUM", "appliedValue": 5, "result": "0"}))
    check("table: then a valid control result is stored (0)", tr.code_of({"result": res}) == "0", res)
    st, js = app.wait_request(rid_c, ("SUCCEEDED",))
    check("table: the app gets appliedValue 5", (js or {}).get("appliedValue") == 5, js)
    res = g1.ack(g1.send(C, CT, {"requestId": rid_b, "dataId": "PA.BOOL", "result": {"code": "E4004", "message": "interlock"}}))
    check("table: a control failure without appliedValue is stored (0)", tr.code_of({"result": res}) == "0", res)
    res = g1.ack(g1.send(I, IT, {"requestId": rid_o, "values": [val("PB.NUM", 1.0)], "result": "0"}))
    check("table: GA1 still cannot answer GA2's request (E3001)", tr.code_of({"result": res}) == "E3001", res)
    res = g2.ack(g2.send(I, IT, {"requestId": rid_o, "values": [val("PB.NUM", 1.0)], "result": "0"}))
    check("table: GA2 answers its own (0)", tr.code_of({"result": res}) == "0", res)
    # a late answer (request finished) is checked against the stored request too
    res = g1.ack(g1.send(I, IT, {"requestId": rid_i, "values": [val("PA.SECRET", 1.0)], "result": "0"}))
    check("table: a late answer with a dataId not asked for: E1001", tr.code_of({"result": res}) == "E1001", res)
    res = g1.ack(g1.send(I, IT, {"requestId": rid_c, "values": [val("PA.NUM", 1.0)], "result": "0"}))
    check("table: a late IMMEDIATE answer to a finished CONTROL request: E1001", tr.code_of({"result": res}) == "E1001", res)
    res = g1.ack(g1.send(I, IT, {"requestId": rid_i, "values": [val("PA.NUM", 2.0)], "result": "0"}))
    check("table: a valid late answer still stores its values (0)", tr.code_of({"result": res}) == "0", res)
    st, v = auditor.latest("PA.SECRET")
    check("table: still nothing stored for PA.SECRET", st == 200 and v is None, (st, v))


def srtest_status(code):
    return {"0": 200, "E1001": 400, "E3001": 404}.get(code)


def case_sync_extra():
    """Sync current-values: an answer with an extra dataId is refused; the
    app gets what it asked for, nothing else."""
    out = {}
    before = {r.get("requestId") for r in g1.pushed()}
    th = threading.Thread(target=lambda: out.setdefault("r", app.current(["PA.NUM"], 20000)))
    th.start()
    req = g1.wait_pushed(lambda r: r.get("requestId") not in before)
    rid = (req or {}).get("requestId")
    res = g1.ack(g1.send("data/immediate", "GW_IMMEDIATE_RESULT",
                         {"requestId": rid, "values": [val("PA.NUM", 3.0), val("PA.SECRET", 4.0)], "result": "0"}))
    check("sync: an answer with PA.SECRET besides PA.NUM is refused (E1001)", tr.code_of({"result": res}) == "E1001", res)
    res = g1.ack(g1.send("data/immediate", "GW_IMMEDIATE_RESULT",
                         {"requestId": rid, "values": [val("PA.NUM", 3.0)], "result": "0"}))
    th.join(30)
    st, js = out.get("r", (0, None))
    check("sync: the app gets 200 with PA.NUM only",
          st == 200 and ids_of((js or {}).get("values")) == ["PA.NUM"] and "withheldValues" not in js, (st, js))


def case_long_message():
    """A failure message longer than what is kept is cut at a character,
    never inside one: the app still gets its error with the message."""
    rid = open_async(app, ["PA.NUM"])
    g1.wait_pushed(lambda r: r.get("requestId") == rid)
    res = g1.ack(g1.send("data/immediate", "GW_IMMEDIATE_RESULT",
                         {"requestId": rid, "values": [], "result": {"code": "E4003", "message": "x" + "水" * 100}}))
    check("long message: the failure is stored (0)", tr.code_of({"result": res}) == "0", res)
    st, js = app.wait_request(rid, ("FAILED",))
    msg = ((js or {}).get("result") or {}).get("message") or ""
    check("long message: GET /requests/{id} has E4003 and the message cut at a character",
          tr.code_of(js) == "E4003" and msg.startswith("x水水") and len(msg.encode()) < 160, (st, js))


def case_reused_message_id():
    """A messageId used again for another request's answer is a duplicate:
    stored once (nothing of the second), so it settles nothing."""
    r1, r2 = open_async(app, ["PA.NUM"]), open_async(app, ["PA.NUM"])
    for r in (r1, r2):
        g1.wait_pushed(lambda q: q.get("requestId") == r)
    mid = tr.new_mid("reuse")
    res = g1.ack(g1.send("data/immediate", "GW_IMMEDIATE_RESULT",
                         {"requestId": r1, "values": [val("PA.NUM", 11.0)], "result": "0"}, mid))
    check("reused messageId: the first answer is stored (0)", tr.code_of({"result": res}) == "0", res)
    st, js = app.wait_request(r1, ("SUCCEEDED",))
    check("reused messageId: the first request SUCCEEDED", (js or {}).get("status") == "SUCCEEDED", js)
    with g1.cv:
        g1.msgs = [m for m in g1.msgs if m[0] != "res/ack"]
    res = g1.ack(g1.send("data/immediate", "GW_IMMEDIATE_RESULT",
                         {"requestId": r2, "values": [val("PA.NUM", 22.0)], "result": "0"}, mid))
    check("reused messageId: the second is acknowledged as a duplicate (0)", tr.code_of({"result": res}) == "0", res)
    check("reused messageId: the second request is still open (its answer was not stored)",
          status_of(app, r2) == "DISPATCHED", app.request(r2))


def case_async_extra():
    rid = open_async(app, ["PA.NUM"])
    g1.wait_pushed(lambda r: r.get("requestId") == rid)
    for extra in ("PA.SECRET", "PA.OTHER", "PB.NUM"):
        res = g1.ack(g1.send("data/immediate", "GW_IMMEDIATE_RESULT",
                             {"requestId": rid, "values": [val("PA.NUM", 3.0), val(extra, 4.0)], "result": "0"}))
        check("async: an answer with %s besides PA.NUM is refused (E1001)" % extra,
              tr.code_of({"result": res}) == "E1001", res)
    res = g1.ack(g1.send("data/immediate", "GW_IMMEDIATE_RESULT",
                         {"requestId": rid, "values": [val("PA.NUM", 3.0)], "result": "0"}))
    st, js = app.wait_request(rid, ("SUCCEEDED",))
    check("async: GET /requests/{id} has PA.NUM only", ids_of((js or {}).get("values")) == ["PA.NUM"], js)
    p = rcv.wait(lambda g: g[0] == "/push/requests/" + rid)
    check("async: the pushed outcome has PA.NUM only", p and ids_of(p[1].get("values")) == ["PA.NUM"], p)


def case_monitor_extra():
    mon, _ = start_monitor(app, g1, ["PA.NUM"])
    for extra in ("PA.SECRET", "PA.OTHER"):
        res = g1.ack(g1.send("data/periodic", "GW_PERIODIC_DATA",
                             {"monitorId": mon, "values": [val("PA.NUM", 1.0), val(extra, 2.0)]}))
        check("monitor: periodic data with %s is refused (E1001)" % extra, tr.code_of({"result": res}) == "E1001", res)
    res = g1.ack(g1.send("data/periodic", "GW_PERIODIC_DATA",
                         {"monitorId": mon, "values": [val("PA.NUM", 1.0), val("PA.NUM", 1.5)]}))
    check("monitor: periodic data of the monitor's point (twice) is stored (0)", tr.code_of({"result": res}) == "0", res)
    p = rcv.wait(lambda g: g[0] == "/push/monitors/" + mon)
    check("monitor: the push has PA.NUM only", p and ids_of(p[1].get("values")) == ["PA.NUM", "PA.NUM"], p)
    check("monitor: exactly one push (the refused ones were not pushed)",
          rcv.paths().count("/push/monitors/" + mon) == 1, rcv.paths())


# decimals as gateways send them (Python writes the shortest text that reads
# back: repr); the old writer answered 81.82 as 81.820 and pushed 68.29 as
# 68.290000000000006 (jansson)
SENT = [68.29, 81.82, 0.29, 81.76, 99.99, 1.1, 50.0, 12.345678, 0.0001, 35.5]


def value_texts(raw):
    """The "value" members of an answer as their text, in order."""
    import re
    return re.findall(r'"value":(-?[0-9][0-9.eE+-]*)', raw if isinstance(raw, str) else raw.decode())


def sent_vals():
    return [val("PA.NUM", v) for v in SENT]


def case_numbers_as_sent():
    """Issue #13: every value comes back in the shortest text that equals what
    the gateway sent, on each path an app reads a gateway's answer from: a
    sync current-values answer, GET /requests/{id} and the request's push
    (one value an answer: 81.82 and 81.76 were 81.820 and 81.760, 68.29 was
    pushed as 68.290000000000006), a monitor's push and GET
    /monitors/{id}/values, the stored values and the latest value."""
    for v in (81.82, 81.76, 68.29):
        out = {}
        before = {r.get("requestId") for r in g1.pushed()}
        th = threading.Thread(target=lambda: out.setdefault("r", tr.http_call(
            "POST", "/api/v1/current-values", {"dataIds": ["PA.NUM"], "timeoutMs": 20000}, app.token, 35)))
        th.start()
        req = g1.wait_pushed(lambda r: r.get("requestId") not in before)
        rid = (req or {}).get("requestId")
        res = g1.ack(g1.send("data/immediate", "GW_IMMEDIATE_RESULT",
                             {"requestId": rid, "values": [val("PA.NUM", v)], "result": "0"}))
        th.join(30)
        st, _, raw, _ = out.get("r", (0, None, "", ""))
        check("as sent: the sync current-values answer of %r" % v, st == 200 and value_texts(raw) == [repr(v)],
              (res, st, raw))
        rid = open_async(app, ["PA.NUM"])
        g1.wait_pushed(lambda r: r.get("requestId") == rid)
        res = g1.ack(g1.send("data/immediate", "GW_IMMEDIATE_RESULT",
                             {"requestId": rid, "values": [val("PA.NUM", v)], "result": "0"}))
        app.wait_request(rid, ("SUCCEEDED",))
        st, raw, _ = app.get_raw("/api/v1/requests/" + rid)
        check("as sent: GET /requests/{id} of %r" % v, st == 200 and value_texts(raw) == [repr(v)], (res, st, raw))
        rcv.wait(lambda g: g[0] == "/push/requests/" + rid)
        pushed = [r["body"] for r in rcv.all() if r["path"] == "/push/requests/" + rid]
        check("as sent: the request's push of %r" % v, pushed and value_texts(pushed[0]) == [repr(v)], pushed)

    want = [repr(v) for v in SENT]
    mon, _ = start_monitor(app, g1, ["PA.NUM"])
    vals = sent_vals()
    res = g1.ack(g1.send("data/periodic", "GW_PERIODIC_DATA", {"monitorId": mon, "values": vals}))
    rcv.wait(lambda g: g[0] == "/push/monitors/" + mon)
    pushed = [r["body"] for r in rcv.all() if r["path"] == "/push/monitors/" + mon]
    check("as sent: the monitor's push", pushed and value_texts(pushed[0]) == want, (res, pushed))
    st, raw, _ = app.get_raw("/api/v1/monitors/%s/values?after=%s" % (mon, vals[0]["timestamp"]))
    check("as sent: GET /monitors/{id}/values", st == 200 and value_texts(raw) == want[1:], (st, raw))
    later = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() + 3600))  # (to is exclusive)
    st, raw, _ = app.get_raw("/api/v1/stored-values?dataId=PA.NUM&from=%s&to=%s&limit=1000"
                             % (vals[0]["timestamp"], later))
    check("as sent: the stored values", st == 200 and value_texts(raw) == want, (st, raw))
    st, raw, _ = app.get_raw("/api/v1/stored-values/latest?dataId=PA.NUM")
    check("as sent: the latest value", st == 200 and value_texts(raw) == want[-1:], (st, raw))


def raw_gateway(gw, secret, v5):
    """A raw MQTT socket logged in as gw (the paho one must be gone)."""
    import socket
    s = socket.create_connection(("127.0.0.1", tr.PORTS["mqtt"]), timeout=WAIT)
    s.sendall(srtest.mqtt_connect(gw, "ga/" + gw, secret, v5=v5))
    t, body = srtest.mqtt_read(s)
    return s if t == 2 and len(body) >= 2 and body[1] == 0 else None


def case_puback_order():
    """PUBACKs go out in the order the PUBLISHes came (MQTT-4.6.0-2), though
    a broker message (periodic data) and values (measurements) finish on
    different paths: pipelined, alternating, on 3.1.1 and on 5.0."""
    for gw, secret, pt, v5, paho in (("GA1", GA1[1], "PA.NUM", False, g1), ("GA2", GA2[1], "PB.NUM", True, g2)):
        mon, _ = start_monitor(app, paho, [pt])
        paho.c.disconnect()  # a clean disconnect: paho does not come back
        paho.c.loop_stop()
        s = raw_gateway(gw, secret, v5)
        check("puback order (%s): a raw gateway logs in" % gw, s is not None)
        if s is None:
            continue
        root = "wip/v1/ga/gw/" + gw
        bad = []
        for rnd in range(5):
            pids, pkts = [], b""
            for k in range(6):
                pid = 100 + rnd * 10 + k
                v = [val(pt, float(rnd * 10 + k))]
                if k % 2 == 0:
                    env = srtest.gw_envelope("GW_PERIODIC_DATA", "po-%s-%d-%d" % (gw, rnd, k), {"monitorId": mon, "values": v})
                    pkts += srtest.mqtt_publish(root + "/data/periodic", env, pid, 1, v5)
                else:
                    env = srtest.gw_envelope("GW_MEASUREMENTS", "pm-%s-%d-%d" % (gw, rnd, k), {"values": v})
                    pkts += srtest.mqtt_publish(root + "/data/measurements", env, pid, 1, v5)
                pids.append(pid)
            s.sendall(pkts)
            got = []
            while len(got) < len(pids):
                t, body = srtest.mqtt_read(s)
                if t == 4:
                    got.append((int.from_bytes(body[:2], "big"), body[2] if v5 and len(body) > 2 else 0))
            if [g for g, _ in got] != pids or any(rc for _, rc in got):
                bad.append((pids, got))
        check("puback order (%s, MQTT %s): 5 rounds of 6 pipelined messages, PUBACKs in the order sent, all 0"
              % (gw, "5.0" if v5 else "3.1.1"), not bad, bad[:2])
        s.sendall(b"\xe0\x00")
        s.close()
    connect()


def case_monitor_values_paged():
    """GET /monitors/{id}/values?after=T polled by the app: a point with more
    new values than one answer holds does not lose the rest because another
    point has a later value ("after" stops at the cut point's last value)."""
    st, js = app.post("/api/v1/monitors", {"dataIds": ["PA.NUM", "PA.OTHER"], "intervalMs": 1000})
    mon = js.get("monitorId") if st == 201 and isinstance(js, dict) else None
    check("paged: monitor of PA.NUM and PA.OTHER", mon, (st, js))
    t0 = 1795000000000  # 2026-11-19, ms

    def at(ms):
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime((t0 + ms) // 1000)) + ".%03dZ" % ((t0 + ms) % 1000)
    vals = [{"dataId": "PA.NUM", "timestamp": at(i), "value": 1.0} for i in range(10005)]
    vals.append({"dataId": "PA.OTHER", "timestamp": at(20000), "value": 2.0})
    res = g1.ack(g1.send("data/measurements", "GW_MEASUREMENTS", {"values": vals}))
    check("paged: 10,006 values stored (0)", tr.code_of({"result": res}) == "0", res)
    got, after, calls = [], at(-1000), 0
    while calls < 10:
        st, js = app.get("/api/v1/monitors/%s/values?after=%s" % (mon, after))
        calls += 1
        vs = js.get("values", []) if st == 200 and isinstance(js, dict) else []
        if not vs:
            break
        got += vs
        after = js.get("after")
    ids = [(v["dataId"], v["timestamp"]) for v in got]
    mine = [i for i in ids if at(0) <= i[1] <= at(20000)]  # (earlier cases stored values at the present time)
    check("paged: polling with after gives every value once (10,005 of PA.NUM, 1 of PA.OTHER) in %d calls" % calls,
          len(mine) == 10006 and len(set(ids)) == len(ids), (len(mine), len(ids), len(set(ids)), calls))


def case_grant_withdrawn():
    """PA.INT's grant goes from both to control (sheet import, server
    stopped): what was stored before is no longer shown or pushed."""
    global g1, g2
    rid = open_async(app, ["PA.NUM", "PA.INT"])
    g1.wait_pushed(lambda r: r.get("requestId") == rid)
    res = g1.ack(g1.send("data/immediate", "GW_IMMEDIATE_RESULT",
                         {"requestId": rid, "values": [val("PA.NUM", 7.0), val("PA.INT", 8)], "result": "0"}))
    st, js = app.wait_request(rid, ("SUCCEEDED",))
    check("grants: before, GET /requests/{id} has PA.INT and PA.NUM",
          ids_of((js or {}).get("values")) == ["PA.INT", "PA.NUM"], (res, js))
    mon, _ = start_monitor(app, g1, ["PA.NUM", "PA.INT"])
    g1.close()
    g2.close()
    rc = tr.stop_server()
    check("grants: the server stops (exit 0)", rc == 0, rc)
    f = os.path.join(T, "sheet2.csv")
    with open(f, "w") as fh:
        fh.write(sheet("http://127.0.0.1:%d/push" % rcv.port, int_access="control"))
    r = tr.subprocess.run([BIN, "sheet", "import", f, tr.D], capture_output=True, text=True)
    check("grants: the sheet with APA,PA.INT,control is imported", r.returncode == 0, r.stderr)
    tr.start_server()
    check("grants: APA logs in again", app.login()[0] == 201)
    st, js = app.request(rid)
    check("grants: after, GET /requests/{id} has PA.NUM only, withheldValues 1",
          st == 200 and ids_of(js.get("values")) == ["PA.NUM"] and js.get("withheldValues") == 1, (st, js))
    g1 = tr.Gateway("GA1", op="ga", secret=GA1[1])
    g1.mode = "silent"
    check("grants: the monitor is sent again to GA1",
          g1.wait_pushed(lambda r: r.get("type") == "PERIODIC_START" and r.get("monitorId") == mon))
    res = g1.ack(g1.send("data/periodic", "GW_PERIODIC_DATA",
                         {"monitorId": mon, "values": [val("PA.NUM", 1.0), val("PA.INT", 2)]}))
    check("grants: the monitor's data is stored (0: both are its points)", tr.code_of({"result": res}) == "0", res)
    p = rcv.wait(lambda g: g[0] == "/push/monitors/" + mon)
    check("grants: the push has PA.NUM only, withheldValues 1",
          p and ids_of(p[1].get("values")) == ["PA.NUM"] and p[1].get("withheldValues") == 1, p)
    check("grants: the log names the withheld values", "values withheld from the app" in open(tr.LOG).read())


# ---- main ---------------------------------------------------------------------------

try:
    tr.subprocess.run([BIN, "init", "--demo", tr.D], check=True, capture_output=True)
    f = os.path.join(T, "sheet.csv")
    with open(f, "w") as fh:
        fh.write(sheet("http://127.0.0.1:%d/push" % rcv.port))
    r = tr.subprocess.run([BIN, "sheet", "import", f, tr.D], capture_output=True, text=True)
    check("the test operator's sheet is imported", r.returncode == 0, r.stderr)
    tr.start_server()
    connect()
    for name, fn in (("crash", case_crash), ("table", case_table), ("long message", case_long_message),
                     ("reused messageId", case_reused_message_id), ("sync extra", case_sync_extra),
                     ("async extra", case_async_extra), ("monitor extra", case_monitor_extra),
                     ("numbers as sent", case_numbers_as_sent),
                     ("puback order", case_puback_order), ("monitor values paged", case_monitor_values_paged),
                     ("grant withdrawn", case_grant_withdrawn)):
        print("--", name, flush=True)
        if not alive():
            check(name + ": the server is running", False)
            continue
        try:
            fn()
        except Exception:
            check(name + " (ran to the end)", False, traceback.format_exc())
finally:
    for g in tr.GATEWAYS:
        try:
            g.c.disconnect()
            g.c.loop_stop()
        except Exception:
            pass
    if tr.server is not None:
        was = tr.server.poll() is None
        rc = tr.stop_server()
        check("SIGTERM stops the server cleanly (exit 0)", was and rc == 0, rc)
    rcv.httpd.shutdown()
    srtest.finish(check, T, [])
