#!/usr/bin/python3
"""tests/integration/test_admin_setup.py -- an operator's set-up on the
running server (issue #14, docs/admin.md "An operator's set-up online";
api/admin_setup.c), end to end with the real `suiro`: for every route of
/admin/v1/operators/{operatorId}/... a success, a bad input answered 400
E1001 naming the field, an unknown entry 404, and nothing stored on a
refusal (the operator's set-up events in `suiro replay` unchanged); the
change takes effect at once (the AP-IF's masters, an app's or a gateway's
login); a refused action of another operator's admin is 403; `suiro sheet
import` and `suiro cert import` against the running server name the
`suiro admin` command to use, or go through the API; an answered change
survives kill -9.
usage: test_admin_setup.py SUIRO_BIN"""
import csv
import io
import json
import os
import subprocess
import sys
import tempfile

BIN = sys.argv[1]
T = tempfile.mkdtemp(prefix="suiro-adminsetup-")
D = os.path.join(T, "data")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from srtest import (Api, Checks, admin_applied, admin_new_user, admin_session, code, finish,  # noqa: E402
                    init_with_admin, start_server, stop_server)

check = Checks()
server = None
OPS = "/admin/v1/operators/demo"
SETUP_KINDS = ("master_put", "master_delete", "registry_put", "registry_delete")


def setup_events():
    """the demo operator's set-up events in the log (the running server's)"""
    out = subprocess.run([BIN, "replay", D, "--operator", "demo"], check=True, capture_output=True, text=True).stdout
    return sum(1 for ln in out.splitlines() if ln.strip() and json.loads(ln).get("kind") in SETUP_KINDS)


def field(b):
    return (b or {}).get("result", {}).get("detail", {}).get("field") if isinstance(b, dict) else None


def refused(name, st, b, status, fld=None):
    """a refusal: its status, E1001 naming fld (when given), nothing stored"""
    before = refused.count
    ok = st == status and (fld is None or (code(b) == "E1001" and field(b) == fld))
    check("%s: %d%s" % (name, status, " naming %s" % fld if fld else ""), ok, (st, b))
    now = setup_events()
    check("%s: nothing stored" % name, now == before, (before, now))


def app_login(hp, app, secret):
    return Api(hp).call("POST", "/api/v1/sessions", {"appId": app, "operatorId": "demo", "secret": secret})[0]


def gw_login(hp, gw, secret):
    return Api(hp).call("POST", "/gw/v1/sessions", {"gatewayId": gw, "operatorId": "demo", "secret": secret})[0]


try:
    temp, temp2 = init_with_admin(BIN, D, demo=True, second="admin2")
    # a second operator, whose admin may not touch demo's set-up
    other = os.path.join(T, "other.csv")
    with open(other, "w") as f:
        f.write("#suiro-setup-sheet v1\n[operator]\nid,name\nother,Other\n")
    subprocess.run([BIN, "sheet", "import", other, D], check=True, capture_output=True)
    server, ports = start_server(BIN, D, os.path.join(T, "server.log"))
    hp = ports["http"]
    root = admin_session(hp, "admin", temp, "platform-admin-pw-1")
    # the approver of privilege changes (the two-person rule), where the server has it
    second = admin_session(hp, "admin2", temp2, "platform-admin-pw-2") if temp2 else None
    a = admin_new_user(hp, root, "opa", "operator", "demo", ["operator_admin"], "operator-admin-pw-1", second)
    # the approver of demo's set-up privilege changes: another admin of demo (setup.manage is the
    # operator admins' alone, so the platform's second admin cannot decide them)
    a2 = admin_new_user(hp, root, "opa2", "operator", "demo", ["operator_admin"], "operator-admin-pw-3", second)
    stranger = admin_new_user(hp, root, "opx", "operator", "other", ["operator_admin"], "operator-admin-pw-2", second)
    reader = admin_new_user(hp, root, "opg", "operator", "demo", ["operator_general"], "operator-general-pw", second)
    refused.count = setup_events()

    # ---- the role table on these routes (the dispatcher, the row's action)
    st, b = stranger.call("GET", OPS + "/sheet")
    check("another operator's admin may not read demo's set-up: 403", st == 403 and code(b) == "E2003", (st, b))
    st, b = reader.call("PUT", OPS + "/masters/facilities/F9", {"name": "x"})
    check("an operator's general user may not change the set-up: 403", st == 403, (st, b))
    st, b = reader.call("GET", OPS + "/masters/facilities")
    check("... but may read it (setup.read)", st == 200 and b["items"][0]["id"] == "F001", (st, b))
    st, b = root.call("GET", OPS + "/apps")
    check("the platform admin sees no operator's set-up: 403", st == 403, (st, b))

    # ---- the sheet: export, import
    st, text, r = a.call("GET", OPS + "/sheet", raw=True)
    text = text.decode()
    check("GET sheet: text/csv, the canonical export", st == 200 and r.getheader("Content-Type").startswith("text/csv")
          and text.startswith("#suiro-setup-sheet v1\n") and "P010" in text, (st, text[:200]))
    sheet = text + "[datapoints]\nid,device,name,type\nP020,D001,Imported,number\n"
    st, b = a.call("POST", OPS + "/sheet", sheet, headers={"Content-Type": "text/csv"})
    check("POST sheet: imported, one event for the one new row", st == 200 and b["stored"] == 1, (st, b))
    refused.count = setup_events()
    st, b = a.call("POST", OPS + "/sheet", sheet)
    check("POST sheet again: nothing changed", st == 200 and b["stored"] == 0, (st, b))
    bad = sheet + "P021,D009,Bad,float\n"
    st, b = a.call("POST", OPS + "/sheet", bad)
    errs = (b or {}).get("result", {}).get("detail", {}).get("errors", [])
    lines = len(bad.splitlines())
    check("POST sheet with errors: every line at fault, as the CLI reports them",
          sorted((e["line"], e["column"]) for e in errs) == [(lines, "device"), (lines, "type")], (st, b))
    refused("POST sheet with errors", st, b, 400, "sheet")
    st, b = a.call("POST", OPS + "/sheet", sheet.replace("\ndemo,", "\nother,", 1))
    refused("POST sheet of another operator", st, b, 400, "operator")
    st, b = a.call("POST", OPS + "/sheet", "not a sheet")
    refused("POST a body that is no sheet", st, b, 400, "sheet")
    app = Api(hp)
    app.login("APP001", "demo", "demo-app001-secret")
    st, b = app.call("GET", "/api/v1/masters/datapoints")
    check("the import is visible at once on the AP-IF", st == 200 and "P020" in [i["id"] for i in b["items"]], (st, b))

    # ---- masters
    st, b = a.call("GET", OPS + "/masters/datapoints")
    check("GET masters: every data point", st == 200 and {"P001", "P020"} <= {i["id"] for i in b["items"]}, (st, b))
    st, b = a.call("GET", OPS + "/masters/pumps")
    check("GET masters of an unknown kind: 404", st == 404 and code(b) == "E3001", (st, b))
    st, b = a.call("PUT", OPS + "/masters/datapoints/P030", {"device": "D002", "name": "Flow", "type": "number",
                                                               "unit": "m3/h", "min": 0, "max": 12.5, "kind": "both"})
    check("PUT a new data point: one event", st == 200 and b["stored"] == 1, (st, b))
    st, b = app.call("GET", "/api/v1/masters/datapoints")
    p30 = [i for i in b["items"] if i["id"] == "P030"]
    check("... visible at once on the AP-IF with its range", p30 and p30[0]["max"] == 12.5 and p30[0]["unit"] == "m3/h",
          (st, b))
    refused.count = setup_events()
    for body, fld in (({"device": "D002", "type": "float"}, "type"),
                      ({"device": "D009", "type": "number"}, "device"),
                      ({"device": "D002", "type": "integer", "min": 0.5}, "min"),
                      ({"device": "D002", "type": "number", "min": "0"}, "min"),
                      ({"device": "D002", "type": "number", "colour": "red"}, "colour"),
                      ({"device": "D002", "type": "number", "id": "P031"}, "id"),
                      ({"device": "D002", "type": "number", "name": 5}, "name"),
                      ({"device": "D002", "type": "string"}, "type")):  # a stored point keeps its type
        st, b = a.call("PUT", OPS + "/masters/datapoints/P030", body)
        refused("PUT master %s" % json.dumps(body), st, b, 400, fld)
    st, b = a.call("PUT", OPS + "/masters/facilities/F9", {"name": "x" * 5000})
    refused("PUT a master with a 5000-byte name", st, b, 400, "name")
    st, b = a.call("PUT", OPS + "/masters/facilities/F9", {"name": "x\u0000y"})
    refused("PUT a master with a NUL in its name", st, b, 400)
    st, b = a.call("PUT", OPS + "/masters/facilities/F9", {"name": "line\nbreak"})
    refused("PUT a master with a line break in its name", st, b, 400, "name")
    st, b = a.call("PUT", OPS + "/masters/facilities/bad%20id", {"name": "x"})
    refused("PUT a master whose path id is no ID", st, b, 400, "id")
    st, b = a.call("PUT", OPS + "/masters/facilities/F9", "not json")
    refused("PUT a body that is not JSON", st, b, 400)
    st, b = a.call("POST", OPS + "/masters/facilities/F001/deactivate")
    refused("deactivate a facility that equipment names: 409", st, b, 409)
    check("... the message names the equipment", "E001" in b["result"]["message"], b)
    st, b = a.call("POST", OPS + "/masters/datapoints/P099/deactivate")
    refused("deactivate an unknown master", st, b, 404)
    st, b = a.call("POST", OPS + "/masters/datapoints/P030/deactivate")
    check("deactivate a data point", st == 200 and b["stored"] == 1, (st, b))
    st, b = app.call("GET", "/api/v1/masters/datapoints")
    check("... gone from the AP-IF at once", "P030" not in [i["id"] for i in b["items"]], b)

    # ---- gateways
    refused.count = setup_events()
    st, b = a.call("PUT", OPS + "/gateways/GW003", {"name": "Third"})
    refused("PUT a new gateway without a secret", st, b, 400, "secret")
    st, b = a.call("PUT", OPS + "/gateways/GW003", {"name": "Third", "secret": "short"})
    refused("PUT a gateway with a short secret", st, b, 400, "secret")
    st, b = a.call("PUT", OPS + "/gateways/GW003", {"name": "Third", "secret": "gw3-secret-0003", "vendorId": "V9"})
    refused("PUT a gateway linked to an unknown vendor", st, b, 400, "vendorId")
    st, b = a.call("PUT", OPS + "/gateways/GW003", {"name": "Third", "secret": "gw3-secret-0003"})
    check("PUT a new gateway", st == 200 and b["stored"] == 1, (st, b))
    check("... it logs in at once", gw_login(hp, "GW003", "gw3-secret-0003") == 201)
    st, b = a.call("GET", OPS + "/gateways")
    check("GET gateways", st == 200 and [g["id"] for g in b["items"]] == ["GW001", "GW002", "GW003"], (st, b))
    st, b = a.call("POST", OPS + "/gateways/GW003/secret")
    new = (b or {}).get("secret", "")
    check("POST gateway secret: a new secret, once", st == 200 and len(new) == 32, (st, b))
    check("... the old one no longer logs in, the new one does",
          gw_login(hp, "GW003", "gw3-secret-0003") == 401 and gw_login(hp, "GW003", new) == 201)
    refused.count = setup_events()
    st, b = a.call("POST", OPS + "/gateways/GW009/secret")
    refused("POST secret of an unknown gateway", st, b, 404)
    pem = open(os.path.join(D, "platform-cert.pem")).read()
    st, b = a.call("PUT", OPS + "/gateways/GW003/certificate", pem, headers={"Content-Type": "application/x-pem-file"})
    check("PUT gateway certificate", st == 200 and b["stored"] == 1, (st, b))
    refused.count = setup_events()
    st, b = a.call("PUT", OPS + "/gateways/GW003/certificate", "-----BEGIN CERTIFICATE-----\nnope\n")
    refused("PUT a certificate that is none", st, b, 400, "certificate")
    st, b = a.call("PUT", OPS + "/gateways/GW009/certificate", pem)
    refused("PUT certificate of an unknown gateway", st, b, 404)
    st, b = a.call("POST", OPS + "/gateways/GW003/disable")
    check("disable a gateway: it no longer logs in", st == 200 and gw_login(hp, "GW003", new) == 401, (st, b))
    st, b = a.call("POST", OPS + "/gateways/GW003/disable")
    check("disable it again: nothing stored", st == 200 and b["stored"] == 0, (st, b))
    st, b = admin_applied(a.call("POST", OPS + "/gateways/GW003/enable"), a2)  # a privilege change
    check("enable it: it logs in again", st == 200 and gw_login(hp, "GW003", new) == 201, (st, b))
    refused.count = setup_events()
    st, b = a.call("POST", OPS + "/gateways/GW009/disable")
    refused("disable an unknown gateway", st, b, 404)
    st, b = a.call("DELETE", OPS + "/gateways/GW001")
    refused("delete a gateway that a device names: 409", st, b, 409)
    st, b = a.call("DELETE", OPS + "/gateways/GW003")
    check("delete a gateway", st == 200 and b["stored"] == 1 and gw_login(hp, "GW003", new) == 401, (st, b))
    refused.count = setup_events()
    st, b = a.call("DELETE", OPS + "/gateways/GW003")
    refused("delete it again", st, b, 404)

    # ---- apps and grants
    st, b = a.call("PUT", OPS + "/apps/APP002", {"name": "Two", "secret": "app2-secret-0002", "pushUrl": "ftp://x"})
    refused("PUT an app with a bad push URL", st, b, 400, "pushUrl")
    st, b = a.call("PUT", OPS + "/apps/APP002", {"name": "Two", "secret": "app2-secret-0002"})
    check("PUT a new app: it logs in at once", st == 200 and app_login(hp, "APP002", "app2-secret-0002") == 201,
          (st, b))
    st, b = admin_applied(a.call("PUT", OPS + "/apps/APP002/grants", {"grants": [  # widening: a privilege change
        {"dataId": "P00*", "access": "read"}, {"dataId": "P003", "access": "control"}]}), a2)
    check("PUT grants", st == 200 and (b is None or b["stored"] == 2), (st, b))
    st, b = a.call("GET", OPS + "/apps/APP002/grants")
    check("GET grants", st == 200 and sorted(b["items"], key=lambda g: g["dataId"]) == [
        {"dataId": "P00*", "access": "read"}, {"dataId": "P003", "access": "control"}], (st, b))
    two = Api(hp)
    two.login("APP002", "demo", "app2-secret-0002")
    st, b = two.call("GET", "/api/v1/masters/datapoints")
    check("... the app sees its granted points", st == 200 and "P010" not in [i["id"] for i in b["items"]]
          and "P001" in [i["id"] for i in b["items"]], (st, b))
    refused.count = setup_events()
    for body, fld in (({"grants": [{"dataId": "P00*"}, {"dataId": "Q1"}]}, "grants[1].dataId"),
                      ({"grants": [{"dataId": "P001", "access": "write"}]}, "grants[0].access"),
                      ({"grants": [{"dataId": "P001", "app": "APP001"}]}, "grants[0].app"),
                      ({"grants": "P001"}, "grants"),
                      ({"grants": [], "more": 1}, "grants")):
        st, b = a.call("PUT", OPS + "/apps/APP002/grants", body)
        refused("PUT grants %s" % json.dumps(body), st, b, 400, fld)
    st, b = a.call("PUT", OPS + "/apps/APP009/grants", {"grants": []})
    refused("PUT grants of an unknown app", st, b, 404)
    st, b = a.call("GET", OPS + "/apps/APP009/grants")
    check("GET grants of an unknown app: 404", st == 404, (st, b))
    st, b = a.call("DELETE", OPS + "/apps/APP002/grants/P009")
    refused("DELETE a grant the app does not have", st, b, 404)
    st, b = a.call("DELETE", OPS + "/apps/APP002/grants/P00%2A")
    check("DELETE one grant (a pattern)", st == 200 and b["stored"] == 1, (st, b))
    st, b = a.call("PUT", OPS + "/apps/APP002/push-url", {"pushUrl": "https://example.org/push"})
    check("PUT push-url", st == 200 and b["stored"] == 1, (st, b))
    st, b = a.call("GET", OPS + "/apps")
    two_ = [x for x in b["items"] if x["id"] == "APP002"]
    check("... GET apps shows it, and the name is kept", two_ and two_[0]["pushUrl"] == "https://example.org/push"
          and two_[0]["name"] == "Two", b)
    refused.count = setup_events()
    st, b = a.call("PUT", OPS + "/apps/APP002/push-url", {"pushUrl": "not a url"})
    refused("PUT a bad push URL", st, b, 400, "pushUrl")
    st, b = a.call("PUT", OPS + "/apps/APP009/push-url", {"pushUrl": ""})
    refused("PUT push-url of an unknown app", st, b, 404)
    st, b = a.call("POST", OPS + "/apps/APP002/secret")
    new = (b or {}).get("secret", "")
    check("POST app secret: the old one no longer logs in, the new one does", st == 200 and
          app_login(hp, "APP002", "app2-secret-0002") == 401 and app_login(hp, "APP002", new) == 201, (st, b))
    st, b = a.call("PUT", OPS + "/apps/APP002/certificate", pem)
    check("PUT app certificate", st == 200 and b["stored"] == 1, (st, b))
    st, b = a.call("POST", OPS + "/apps/APP002/disable")
    check("disable an app: it no longer logs in", st == 200 and app_login(hp, "APP002", new) == 401, (st, b))
    st, b = admin_applied(a.call("POST", OPS + "/apps/APP002/enable"), a2)  # a privilege change
    check("enable it: it logs in again", st == 200 and app_login(hp, "APP002", new) == 201, (st, b))
    st, b = a.call("DELETE", OPS + "/apps/APP002")
    check("DELETE an app with its grants", st == 200 and b["stored"] == 2 and app_login(hp, "APP002", new) == 401,
          (st, b))
    refused.count = setup_events()
    st, b = a.call("DELETE", OPS + "/apps/APP002")
    refused("DELETE it again", st, b, 404)

    # ---- vendors (R-ID-8): a vendor admin reaches its own vendor's apps' registration, nothing else
    st, b = root.call("POST", "/admin/v1/vendors", {"id": "apv", "name": "AP vendor", "kind": "ap"})
    check("the platform admin registers an AP vendor", st == 201, (st, b))
    st, b = a.call("PUT", OPS + "/apps/APP003", {"name": "Vendor's", "secret": "app3-secret-0003", "vendorId": "apv"})
    check("PUT an app linked to the vendor", st == 200 and b["stored"] == 1, (st, b))
    st, b = a.call("GET", OPS + "/apps")
    check("... GET apps shows the link", [x["vendorId"] for x in b["items"] if x["id"] == "APP003"] == ["apv"], b)
    refused.count = setup_events()
    st, b = a.call("PUT", OPS + "/gateways/GW001", {"name": "Intake gateway", "vendorId": "apv"})
    refused("link a gateway to an AP vendor", st, b, 400, "vendorId")
    va = admin_new_user(hp, root, "va", "vendor", "apv", ["ap_vendor_admin"], "vendor-admin-pw-01", second)
    st, b = va.call("POST", OPS + "/apps/APP003/secret")
    check("the vendor admin rotates its own app's secret", st == 200 and len(b.get("secret", "")) == 32, (st, b))
    st, b = va.call("PUT", OPS + "/apps/APP003/push-url", {"pushUrl": "https://vendor.example/push"})
    check("... and sets its push URL", st == 200, (st, b))
    for m, path, body in (("POST", "/apps/APP001/secret", None), ("PUT", "/apps/APP003", {"name": "x"}),
                          ("GET", "/apps/APP003/grants", None), ("GET", "/sheet", None),
                          ("POST", "/gateways/GW001/secret", None)):
        st, b = va.call(m, OPS + path, body)
        check("the vendor admin may not %s %s: 403" % (m, path), st == 403 and code(b) == "E2003", (st, b))

    # ---- concurrent changes: one at a time, none undoes another
    import threading
    results = {}

    def put(k):
        results[k] = Api(hp, a.token).call("PUT", OPS + "/masters/datapoints/C%02d" % k,
                                           {"device": "D002", "type": "number"})[0]
    threads = [threading.Thread(target=put, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    st, b = a.call("GET", OPS + "/masters/datapoints")
    have = {i["id"] for i in b["items"]}
    check("8 concurrent PUTs: all answered 200 and all stored", sorted(results.values()) == [200] * 8 and
          all("C%02d" % k in have for k in range(8)), (results, sorted(have)))

    # ---- who did it: the events name the user and the address
    out = subprocess.run([BIN, "replay", D, "--operator", "demo", "--kind", "registry_delete"], check=True,
                         capture_output=True, text=True).stdout
    last = json.loads(out.splitlines()[-1])
    check("a change's event names the user and the source address",
          last.get("actor") == "opa" and last.get("source", "").startswith("127.0.0.1"), last)

    # ---- the CLI against the running server
    sheet_file = os.path.join(T, "sheet.csv")
    with open(sheet_file, "wb") as f:
        f.write(a.call("GET", OPS + "/sheet", raw=True)[1])  # the set-up as it is now
    env = dict(os.environ)
    env.pop("SUIRO_URL", None)
    env.pop("SUIRO_TOKEN", None)
    r = subprocess.run([BIN, "sheet", "import", sheet_file, D], capture_output=True, text=True, env=env)
    check("suiro sheet import on a running server's directory names the admin command",
          r.returncode == 1 and "suiro admin sheet-import demo %s" % sheet_file in r.stderr, r.stderr)
    r = subprocess.run([BIN, "cert", "import", D, "--operator", "demo", "--gateway", "GW001", "--pem",
                        os.path.join(D, "platform-cert.pem")], capture_output=True, text=True, env=env)
    check("suiro cert import on a running server's directory names the admin command",
          r.returncode == 1 and "suiro admin gateway-cert demo GW001 " in r.stderr, r.stderr)
    # ... and go through the API with a URL and a token
    tok = a.token
    r = subprocess.run([BIN, "sheet", "import", sheet_file, D, "--url", "http://127.0.0.1:%d" % hp, "--token", tok],
                       capture_output=True, text=True, env=env)
    check("suiro sheet import --url --token on a running server's directory imports through the API",
          r.returncode == 0 and json.loads(r.stdout).get("stored") == 0, (r.returncode, r.stdout, r.stderr))
    with open(sheet_file, "a") as f:
        f.write("P022,D009,Bad,number\n")
    r = subprocess.run([BIN, "sheet", "import", sheet_file, D], capture_output=True, text=True,
                       env=dict(env, SUIRO_URL="http://127.0.0.1:%d" % hp, SUIRO_TOKEN=tok))
    check("... with SUIRO_URL/SUIRO_TOKEN; a sheet with errors: exit 1, the lines at fault printed",
          r.returncode == 1 and '"line"' in r.stdout and "D009" in r.stdout, (r.returncode, r.stdout, r.stderr))
    r = subprocess.run([BIN, "cert", "import", D, "--operator", "demo", "--gateway", "GW002", "--pem",
                        os.path.join(D, "platform-cert.pem"), "--url", "http://127.0.0.1:%d" % hp, "--token", tok],
                       capture_output=True, text=True, env=env)
    check("suiro cert import --url --token through the API", r.returncode == 0 and
          json.loads(r.stdout).get("stored") == 1, (r.returncode, r.stdout, r.stderr))
    r = subprocess.run([BIN, "admin", "masters", "demo", "facilities", "--url", "http://127.0.0.1:%d" % hp,
                        "--token", tok], capture_output=True, text=True, env=env)
    check("suiro admin masters OP KIND", r.returncode == 0 and json.loads(r.stdout)["items"][0]["id"] == "F001",
          (r.returncode, r.stdout, r.stderr))
    r = subprocess.run([BIN, "admin", "master-put", "demo", "facilities", "F002", "--data", '{"name": 5}',
                        "--url", "http://127.0.0.1:%d" % hp, "--token", tok], capture_output=True, text=True, env=env)
    check("suiro admin master-put with a bad field: exit 1, the error printed",
          r.returncode == 1 and json.loads(r.stdout)["result"]["detail"]["field"] == "name", (r.returncode, r.stdout))
    check("the server still runs", server.poll() is None)

    # ---- an answered change survives kill -9
    st, b = a.call("PUT", OPS + "/masters/facilities/F77", {"name": "Answered, then killed"})
    check("PUT a facility", st == 200 and b["stored"] == 1, (st, b))
    server.kill()
    server.wait()
    server, ports = start_server(BIN, D, os.path.join(T, "server.log"))
    a = admin_session(ports["http"], "opa", "operator-admin-pw-1")
    st, b = a.call("GET", OPS + "/masters/facilities")
    check("... it is there after kill -9 and a restart", st == 200 and
          [i["name"] for i in b["items"] if i["id"] == "F77"] == ["Answered, then killed"], (st, b))
    rc = stop_server(server)
    check("the server stops cleanly", rc == 0, rc)
    v = subprocess.run([BIN, "verify", D], capture_output=True, text=True)
    check("verify (the index equals a rebuild)", v.returncode == 0, v.stdout + v.stderr)
finally:
    finish(check, T, [server])
