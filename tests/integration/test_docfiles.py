#!/usr/bin/python3
"""tests/integration/test_docfiles.py -- who may see documents and files
(R-PO-2, docs/admin.md "Documents and files"), through the real `suiro
serve` and the AP-IF:

 1. The authorization matrix: apps A (APP001, the owner), B (APPB, a read
    grant on collection `reports` and on path prefix `reports`), C (APPC, no
    grant) of operator demo, and D (APPX) of operator other. Each of
    document create / get / query / put / delete and file put / get / list /
    delete, by each app, on A's document and file, gives exactly the cell of
    the docs' table; a refused write changes nothing.
 2. Grants change with the sheet ([storegrants]): with read+write, B updates
    and deletes A's document and file, which stay A's.
 3. An unfinished upload belongs to the session that started it: a second
    session of the same app can neither add a part nor restart it; the
    first session finishes it.
 4. The Admin API (after the sheet's change, on the running server):
    document and file grants put, listed and deleted by an operator admin
    take effect at the app's next request; a general user sees no file until
    one is shared with it, then lists and downloads it; only the operator
    admin (or a user owning the file) changes a share list; a user of
    another operator is refused as a sharee; another operator's admin and
    the platform admin see nothing of demo's files. A user stores a file of
    its own, which it alone (and the operator admin) may share or replace.
usage: test_docfiles.py SUIRO_BIN"""
import os
import subprocess
import sys
import tempfile

BIN = sys.argv[1]
T = tempfile.mkdtemp(prefix="suiro-docfiles-")
D = os.path.join(T, "data")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from srtest import (OTHER_OPERATOR_SHEET, Api, Checks, approve_if_pending, code, finish, import_sheet,  # noqa: E402
                    init_with_admins, start_server, stop_server)

check = Checks()
server = None
DEMO = open(os.path.join(ROOT, "docs", "examples", "demo-sheet.csv"), encoding="utf-8").read()


def sheet(access):
    s = DEMO.replace("APP001,Demo monitoring app,demo-app001-secret,http://127.0.0.1:9100/push\n",
                     "APP001,Demo monitoring app,demo-app001-secret,http://127.0.0.1:9100/push\n"
                     "APPB,App B,app-b-secret-1,\nAPPC,App C,app-c-secret-1,\n")
    assert s.endswith("[storegrants]\napp,kind,target,access\n"), s[-80:]
    return s + "APPB,documents,reports,%s\nAPPB,files,reports,%s\n" % (access, access)


def apps(hp):
    out = {}
    for name, app, op, secret in (("A", "APP001", "demo", "demo-app001-secret"), ("B", "APPB", "demo", "app-b-secret-1"),
                                  ("C", "APPC", "demo", "app-c-secret-1"), ("D", "APPX", "other", "other-app-secret")):
        a = Api(hp)
        check("%s (%s) logs in" % (name, app), a.login(app, op, secret) == 201)
        out[name] = a
    return out


def cell(name, got, want):
    """want: a status, or (status, code)"""
    st, b = got
    ok = st == want if isinstance(want, int) else (st, code(b)) == want
    check(name + " -> %s" % (want,), ok, (st, b))


try:
    temp, temp2 = init_with_admins(BIN, D, demo=True)
    import_sheet(BIN, D, os.path.join(T, "other.csv"), OTHER_OPERATOR_SHEET)
    import_sheet(BIN, D, os.path.join(T, "demo.csv"), sheet("read"))
    server, ports = start_server(BIN, D, os.path.join(T, "server.log"))
    hp = ports["http"]
    X = apps(hp)
    A, B, C, Dx = X["A"], X["B"], X["C"], X["D"]

    # ---- A's document and file
    st, b = A.call("POST", "/api/v1/documents/reports", {"v": 1})
    check("A creates a document", st == 201, (st, b))
    doc = "/api/v1/documents/reports/" + b["documentId"]
    st, b = A.call("PUT", "/api/v1/files/reports/a.csv", "a,b\n1,2\n", {"Content-Type": "text/csv"})
    check("A uploads a file", st == 201, (st, b))
    fpath = "/api/v1/files/reports/a.csv"

    # ---- 1. the matrix (docs/admin.md "Documents and files", the AP-IF table)
    for n in "ABCD":
        st, b = X[n].call("POST", "/api/v1/documents/reports", {"by": n})
        check("doc create by %s -> 201 (it owns the new document)" % n, st == 201, (st, b))
        X[n].own = b.get("documentId")
    cell("doc get by A (owner)", A.call("GET", doc), 200)
    cell("doc get by B (read grant)", B.call("GET", doc), 200)
    cell("doc get by C (no grant)", C.call("GET", doc), (403, "E2003"))
    cell("doc get by D (other operator)", Dx.call("GET", doc), (404, "E3001"))

    def ids(api):
        st, b = api.call("GET", "/api/v1/documents/reports")
        return st, sorted(i["documentId"] for i in b.get("items", [])) if st == 200 else b

    own = {n: X[n].own for n in "ABCD"}
    every = sorted([doc.rsplit("/", 1)[1], own["A"], own["B"], own["C"]])
    check("doc query by A: its own two", ids(A) == (200, sorted([doc.rsplit("/", 1)[1], own["A"]])), ids(A))
    check("doc query by B: every document of the collection (read grant)", ids(B) == (200, every), ids(B))
    check("doc query by C: only its own", ids(C) == (200, [own["C"]]), ids(C))
    check("doc query by D: only its own operator's", ids(Dx) == (200, [own["D"]]), ids(Dx))
    st, b = C.call("GET", "/api/v1/documents/reports?by=%22A%22")
    check("doc query by field by C: nothing of A's", st == 200 and b["items"] == [], (st, b))

    cell("doc put by B (read grant only)", B.call("PUT", doc, {"v": "B"}), (403, "E2003"))
    cell("doc put by C", C.call("PUT", doc, {"v": "C"}), (403, "E2003"))
    st, b = Dx.call("PUT", doc, {"v": "D"})
    check("doc put by D -> its own operator's document (200, revision 1)", st == 200 and b == {"revision": 1}, (st, b))
    cell("doc delete by B", B.call("DELETE", doc), (403, "E2003"))
    cell("doc delete by C", C.call("DELETE", doc), (403, "E2003"))
    st, b = A.call("GET", doc)
    check("A's document is unchanged by the refused writes", st == 200 and b == {"v": 1}, (st, b))
    cell("doc delete by D (its own, just made)", Dx.call("DELETE", doc), 204)
    cell("doc put by A (owner)", A.call("PUT", doc, {"v": 2}, {"If-Match": '"1"'}), 200)

    cell("file get by A", A.call("GET", fpath, raw=True)[:2], 200)
    st, body, _ = B.call("GET", fpath, raw=True)
    check("file get by B (read grant on the prefix) -> the bytes", st == 200 and body == b"a,b\n1,2\n", (st, body))
    cell("file get by C", C.call("GET", fpath), (403, "E2003"))
    cell("file get by D", Dx.call("GET", fpath), (404, "E3001"))

    def paths(api, prefix=""):
        st, b = api.call("GET", "/api/v1/files?prefix=" + prefix)
        return st, sorted(i["path"] for i in b.get("items", [])) if st == 200 else b

    check("file list by A", paths(A) == (200, ["reports/a.csv"]), paths(A))
    check("file list by B", paths(B) == (200, ["reports/a.csv"]), paths(B))
    check("file list by C: nothing", paths(C) == (200, []), paths(C))
    check("file list by D: nothing of demo's", paths(Dx) == (200, []), paths(Dx))

    cell("file put by B (read grant only)", B.call("PUT", fpath, "B"), (403, "E2003"))
    cell("file put by C", C.call("PUT", fpath, "C"), (403, "E2003"))
    cell("file delete by B", B.call("DELETE", fpath), (403, "E2003"))
    cell("file delete by C", C.call("DELETE", fpath), (403, "E2003"))
    cell("file delete by D", Dx.call("DELETE", fpath), (404, "E3001"))
    st, body, _ = A.call("GET", fpath, raw=True)
    check("A's file is unchanged by the refused writes", body == b"a,b\n1,2\n", body)
    cell("file put by D (its own operator's file)", Dx.call("PUT", fpath, "D"), 201)
    st, body, _ = A.call("GET", fpath, raw=True)
    check("... which is not A's", body == b"a,b\n1,2\n", body)
    cell("file put by C elsewhere (its own new file)", C.call("PUT", "/api/v1/files/c/own.txt", "C"), 201)
    check("C lists its own file", paths(C) == (200, ["c/own.txt"]), paths(C))
    cell("file get by B outside its prefix", B.call("GET", "/api/v1/files/c/own.txt"), (403, "E2003"))
    cell("file put by A (owner)", A.call("PUT", fpath, "v2"), 201)

    # ---- 3. an unfinished upload belongs to its session
    A2 = Api(hp)
    check("a second session of A", A2.login("APP001", "demo", "demo-app001-secret") == 201 and A2.token != A.token)
    up = "/api/v1/files/big/x.bin"
    st, b = A.call("PUT", up, "0123456789", {"Content-Range": "bytes 0-9/20"})
    check("A's first session starts an upload (202)", st == 202 and b.get("received") == 10, (st, b))
    cell("another session of the same app cannot add a part",
         A2.call("PUT", up, "abcdefghij", {"Content-Range": "bytes 10-19/20"}), (403, "E2003"))
    cell("... nor restart the upload", A2.call("PUT", up, "0123456789", {"Content-Range": "bytes 0-9/20"}),
         (409, "E3002"))
    cell("... nor put the whole file over it", A2.call("PUT", up, "whole"), (409, "E3002"))
    cell("another app cannot add a part", B.call("PUT", up, "abcdefghij", {"Content-Range": "bytes 10-19/20"}),
         (403, "E2003"))
    st, b = A.call("PUT", up, "abcdefghij", {"Content-Range": "bytes 10-19/20"})
    check("the first session finishes it (201)", st == 201 and b.get("size") == 20, (st, b))
    st, body, _ = A2.call("GET", up, raw=True)
    check("the file is the first session's bytes", body == b"0123456789abcdefghij", body)

    # ---- 2. a write grant, through the sheet
    stop_server(server)
    server = None
    r = subprocess.run([BIN, "sheet", "import", os.path.join(T, "demo2.csv"), D], capture_output=True, text=True) \
        if open(os.path.join(T, "demo2.csv"), "w", encoding="utf-8").write(sheet("read+write")) else None
    check("the sheet widens B's grants to read+write", r.returncode == 0, r.stderr)
    r = subprocess.run([BIN, "sheet", "export", D, "--operator", "demo"], capture_output=True, text=True)
    check("the export lists the [storegrants] rows",
          "[storegrants]\napp,kind,target,access\nAPPB,documents,reports,read+write\nAPPB,files,reports,read+write\n"
          in r.stdout, r.stdout[-400:] + r.stderr)
    server, ports = start_server(BIN, D, os.path.join(T, "server2.log"))
    hp = ports["http"]
    X = apps(hp)
    A, B, C = X["A"], X["B"], X["C"]
    cell("doc put by B (write grant)", B.call("PUT", doc, {"v": "B"}), 200)
    st, b = A.call("GET", doc)
    check("A still reads its document, as B wrote it", st == 200 and b == {"v": "B"}, (st, b))
    cell("doc put by C (still no grant)", C.call("PUT", doc, {"v": "C"}), (403, "E2003"))
    cell("file put by B (write grant)", B.call("PUT", fpath, "B2"), 201)
    check("A still lists the file", paths(A) == (200, ["big/x.bin", "reports/a.csv"]), paths(A))

    # ---- 4. the Admin API
    def user_session(user, pw, new_pw):
        st, b = Api(hp).call("POST", "/admin/v1/sessions", {"userId": user, "password": pw})
        api = Api(hp, b.get("token"))
        st2, _ = api.call("PUT", "/admin/v1/me/password", {"currentPassword": pw, "newPassword": new_pw})
        check("%s logs in and sets its password" % user, st == 201 and st2 == 204, (st, b, st2))
        return api

    adm = user_session("admin", temp, "the-admins-own-password-1")
    adm2 = user_session("admin2", temp2, "the-admins-own-password-2")  # approves adm's privilege changes
    U = {}
    for uid, role, op in (("opadm", "operator_admin", "demo"), ("gen1", "operator_general", "demo"),
                          ("gen2", "operator_general", "demo"), ("xadm", "operator_admin", "other"),
                          ("opadm2", "operator_admin", "demo")):
        st, b = adm.call("POST", "/admin/v1/users", {"id": uid, "roles": [role], "scope": {"kind": "operator", "id": op}})
        st2, b2 = approve_if_pending(adm2, st, b)
        check("user %s created" % uid, st == 201 or (st == 202 and st2 == 200), (st, b, st2, b2))
        U[uid] = user_session(uid, b.get("password", ""), uid + "-password-123")
    opadm, gen1, gen2, xadm = U["opadm"], U["gen1"], U["gen2"], U["xadm"]
    opadm2 = U["opadm2"]  # approves opadm's widenings of grants (the two-person rule)
    st, b = adm.call("POST", "/admin/v1/vendors", {"id": "vend1", "name": "Vendor One", "kind": "ap"})
    check("a vendor registered", st == 201, (st, b))
    for uid, role, scope in (("vadm", "ap_vendor_admin", {"kind": "vendor", "id": "vend1"}),
                             ("vgen", "ap_vendor_general", {"kind": "vendor", "id": "vend1"}),
                             ("aud", "auditor", {"kind": "platform"})):
        st, b = adm.call("POST", "/admin/v1/users", {"id": uid, "roles": [role], "scope": scope})
        st2, b2 = approve_if_pending(adm2, st, b)
        check("user %s created" % uid, st == 201 or (st == 202 and st2 == 200), (st, b, st2, b2))
        U[uid] = user_session(uid, b.get("password", ""), uid + "-password-123")
    U["admin"] = adm

    # every route of api/admin_files.c x every role, on demo (own for the
    # operator's users) and on other (foreign): the role table's cell, 403
    # E2003 naming the action when refused (a refused change stores nothing)
    probe = "/admin/v1/operators/%s"
    routes = (("GET", "/document-grants", None, "setup.read"),
              ("PUT", "/document-grants/APPC/probe", {"access": "read"}, "setup.manage"),
              ("DELETE", "/document-grants/APPC/probe", None, "setup.manage"),
              ("GET", "/file-grants", None, "setup.read"),
              ("PUT", "/file-grants/APPC/probe", {"access": "read"}, "setup.manage"),
              ("DELETE", "/file-grants/APPC/probe", None, "setup.manage"),
              ("GET", "/files", None, "data.read"),
              ("GET", "/files/reports/a.csv", None, "data.read"),
              ("PUT", "/files/reports/a.csv", "probe", "data.write"),
              ("GET", "/shares/reports/a.csv", None, "data.read"),
              ("PUT", "/shares/reports/a.csv", {"users": []}, "data.write"),
              ("DELETE", "/shares/reports/a.csv", None, "data.write"))
    ADMIN_ACTS = {"setup.read", "setup.manage", "data.read", "data.write"}
    GENERAL_ACTS = {"setup.read", "data.read", "data.write"}
    own = {"opadm": ("demo", ADMIN_ACTS), "gen1": ("demo", GENERAL_ACTS), "xadm": ("other", ADMIN_ACTS),
           "vadm": (None, set()), "vgen": (None, set()), "aud": (None, set()), "admin": (None, set())}
    for op in ("demo", "other"):
        for uid, (its_op, its_acts) in sorted(own.items()):
            acts = its_acts if op == its_op else set()  # another operator's: nothing
            for method, path, body, act in routes:
                st, b = U[uid].call(method, probe % op + path, body)
                if act in acts:
                    ok = st != 403 or "setup.manage" in str(b)  # the shares' owner rule, below
                else:
                    ok = st == 403 and code(b) == "E2003" and act in b["result"]["message"]
                check("%s %s on %s by %s: %s" % (method, path, op, uid, "passes the dispatcher" if act in acts
                                                 else "403 naming " + act), ok, (st, b))
    st, b = opadm.call("GET", "/admin/v1/operators/demo/document-grants")
    check("the probes that passed were removed again (no APPC probe grant)",
          st == 200 and not [i for i in b["items"] if i["collection"] == "probe"], (st, b))
    G = "/admin/v1/operators/demo/document-grants"
    cell("a general user may not grant (setup.manage)", gen1.call("PUT", G + "/APPC/reports", {"access": "read"}),
         (403, "E2003"))
    cell("another operator's admin may not grant on demo", xadm.call("PUT", G + "/APPC/reports", {"access": "read"}),
         (403, "E2003"))
    cell("C before the grant", C.call("GET", doc), (403, "E2003"))
    st, b = opadm.call("PUT", G + "/APPC/reports", {"access": "read"})
    check("the operator admin asks to grant C read on collection reports: a widening, pending",
          st == 202 and b.get("state") == "requested", (st, b))
    cell("C's next request is still refused", C.call("GET", doc), (403, "E2003"))
    st, b = approve_if_pending(opadm2, st, b)
    check("... a second operator admin of demo approves it", st == 200 and b.get("state") == "approved", (st, b))
    cell("C's very next request reads A's document", C.call("GET", doc), 200)
    cell("... but may not write it", C.call("PUT", doc, {"v": "C"}), (403, "E2003"))
    st, b = opadm.call("GET", G)
    check("the grants listed (the sheet's and the API's)", st == 200 and sorted(
        (i["appId"], i["collection"], i["access"]) for i in b["items"]) == [("APPB", "reports", "read+write"),
                                                                          ("APPC", "reports", "read")], (st, b))
    st, b = gen1.call("GET", G)
    check("a general user reads the grants (setup.read)", st == 200, (st, b))
    for body, field, path in (({"access": "control"}, "access", "/APPC/reports"), ({}, "access", "/APPC/reports"),
                              ({"access": "read"}, "collection", "/APPC/bad%20x"),
                              ({"access": "read"}, "appId", "/bad%20app/reports")):
        st, b = opadm.call("PUT", G + path, body)
        check("a bad grant names %s" % field, st == 400 and code(b) == "E1001"
              and b["result"].get("detail", {}).get("field") == field, (body, path, st, b))
    st, b = opadm.call("PUT", G + "/APPZ/reports", {"access": "read"})
    check("a grant to an unknown app is refused naming it", st == 400 and "APPZ" in b["result"]["message"], (st, b))
    cell("the operator admin removes C's grant", opadm.call("DELETE", G + "/APPC/reports"), 204)
    cell("C's next request is refused again", C.call("GET", doc), (403, "E2003"))
    cell("removing it again: unknown", opadm.call("DELETE", G + "/APPC/reports"), (404, "E3001"))

    cell("A writes a file to share", A.call("PUT", "/api/v1/files/shared/r.txt", "for the team"), 201)
    cell("C may not read it", C.call("GET", "/api/v1/files/shared/r.txt"), (403, "E2003"))
    FG = "/admin/v1/operators/demo/file-grants"
    cell("the operator admin grants C read under shared/ (approved by a second admin)",
         approve_if_pending(opadm2, *opadm.call("PUT", FG + "/APPC/shared/", {"access": "read"})), 200)
    cell("C reads the file", C.call("GET", "/api/v1/files/shared/r.txt", raw=True)[:2], 200)
    st, b = opadm.call("GET", FG)
    check("the file grants listed", st == 200 and ("APPC", "shared/", "read") in [
        (i["appId"], i["path"], i["access"]) for i in b["items"]], (st, b))
    cell("the file grant removed", opadm.call("DELETE", FG + "/APPC/shared/"), 204)
    cell("C may not read it again", C.call("GET", "/api/v1/files/shared/r.txt"), (403, "E2003"))

    F = "/admin/v1/operators/demo/files"
    S = "/admin/v1/operators/demo/shares/shared/r.txt"

    def listing(api, op="demo"):
        st, b = api.call("GET", "/admin/v1/operators/%s/files" % op)
        return st, sorted(i["path"] for i in b.get("items", [])) if st == 200 else b

    st, every = listing(opadm)
    check("the operator admin sees every file of demo", st == 200 and "shared/r.txt" in every
          and "big/x.bin" in every, (st, every))
    check("a general user sees none yet", listing(gen1) == (200, []), listing(gen1))
    cell("... and cannot download it", gen1.call("GET", F + "/shared/r.txt"), (404, "E3001"))
    cell("... nor read its share list", gen1.call("GET", S), (404, "E3001"))
    cell("... nor share it", gen1.call("PUT", S, {"users": ["gen1"]}), (404, "E3001"))
    cell("the platform admin sees no operator's files (data.read: none)", adm.call("GET", F), (403, "E2003"))
    cell("another operator's admin may not list demo's files", xadm.call("GET", F), (403, "E2003"))
    check("... and sees only its own operator's", listing(xadm, "other") == (200, ["reports/a.csv"]),
          listing(xadm, "other"))
    st, b = opadm.call("PUT", S, {"users": ["gen1"]})
    check("the operator admin shares the file with gen1", st == 200 and b == {"path": "shared/r.txt",
                                                                              "sharedWith": ["gen1"]}, (st, b))
    st, b = gen1.call("GET", F)
    check("gen1 lists it, with its owner and share list", st == 200 and [
        (i["path"], i["owner"], i["ownerKind"], i["sharedWith"]) for i in b["items"]] ==
        [("shared/r.txt", "APP001", "app", ["gen1"])], (st, b))
    st, body, _ = gen1.call("GET", F + "/shared/r.txt", raw=True)
    check("gen1 downloads it", st == 200 and body == b"for the team", (st, body))
    check("gen2 still sees nothing", listing(gen2) == (200, []), listing(gen2))
    cell("gen1 (not the owner, no setup.manage) may not change the share list",
         gen1.call("PUT", S, {"users": ["gen1", "gen2"]}), (403, "E2003"))
    st, b = opadm.call("PUT", S, {"users": ["gen1", "xadm"]})
    check("a user of another operator is refused, naming the entry", st == 400 and code(b) == "E1001"
          and "users[1]" in b["result"]["message"], (st, b))
    for body, field in (({"users": "gen1"}, "users"), ({"users": ["gen1", 7]}, "users[1]"), ({}, "users")):
        st, b = opadm.call("PUT", S, body)
        check("a bad share list names %s" % field, st == 400 and b["result"].get("detail", {}).get("field") == field,
              (body, st, b))
    st, b = opadm.call("GET", S)
    check("the refused changes stored nothing", st == 200 and b["sharedWith"] == ["gen1"], (st, b))
    cell("a new version of the file by its app", A.call("PUT", "/api/v1/files/shared/r.txt", "v2"), 201)
    st, b = gen1.call("GET", S)
    check("... keeps its share list", st == 200 and b["sharedWith"] == ["gen1"] and b["owner"] == "APP001", (st, b))
    cell("the operator admin empties the share list", opadm.call("DELETE", S), 204)
    check("gen1 sees nothing again", listing(gen1) == (200, []), listing(gen1))

    # a user's own file: it owns it, sees it and shares it; others do not
    N, NS = F + "/mine/n.txt", "/admin/v1/operators/demo/shares/mine/n.txt"
    st, b = gen1.call("PUT", N, "gen1's note", {"Content-Type": "text/plain"})
    check("gen1 stores a file of its own (201)", st == 201 and b.get("size") == 11, (st, b))
    st, b = gen1.call("GET", F)
    check("gen1 lists it as its own", st == 200 and [(i["path"], i["owner"], i["ownerKind"]) for i in b["items"]] ==
          [("mine/n.txt", "gen1", "user")], (st, b))
    check("gen2 does not see it", listing(gen2) == (200, []), listing(gen2))
    cell("an app without a grant may not read a user's file", A.call("GET", "/api/v1/files/mine/n.txt"),
         (403, "E2003"))
    cell("gen1 may not replace an app's file", gen1.call("PUT", F + "/shared/r.txt", "x"), (403, "E2003"))
    st, b = gen1.call("PUT", NS, {"users": ["gen2"]})
    check("its owner shares it with gen2", st == 200 and b["sharedWith"] == ["gen2"], (st, b))
    st, body, _ = gen2.call("GET", N, raw=True)
    check("gen2 downloads it", st == 200 and body == b"gen1's note", (st, body))
    cell("gen2 (not its owner) may not change its share list", gen2.call("DELETE", NS), (403, "E2003"))
    cell("gen2 may not replace it", gen2.call("PUT", N, "gen2 was here"), (403, "E2003"))
    cell("the operator admin may", opadm.call("PUT", N, "v2 by the admin"), 201)
    st, b = gen2.call("GET", NS)
    check("... and it stays gen1's, shared with gen2", st == 200 and b["owner"] == "gen1" and b["sharedWith"] == ["gen2"],
          (st, b))
    r = subprocess.run([BIN, "replay", D], capture_output=True, text=True)
    check("the share changes are events with the user as the actor",
          r.stdout.count('"file_share"') >= 2 and '"opadm"' in r.stdout, r.stdout[-600:])

    # ---- vendor grants (docs/admin.md "Vendor grants"): demo opens its data
    # to vend1; vend2's users, and vend1's on another operator, see nothing
    st, b = adm.call("POST", "/admin/v1/vendors", {"id": "vend2", "name": "Vendor Two", "kind": "gw"})
    check("a second vendor registered", st == 201, (st, b))
    st, b = adm.call("POST", "/admin/v1/users", {"id": "vgw", "roles": ["gw_vendor_general"],
                                                 "scope": {"kind": "vendor", "id": "vend2"}})
    st2, b2 = approve_if_pending(adm2, st, b)
    vgw = user_session("vgw", b.get("password", ""), "vgw-password-123")
    vadm, vgen = U["vadm"], U["vgen"]
    VG = "/admin/v1/operators/demo/vendor-grants"
    for who, api in (("vadm", vadm), ("vgen", vgen), ("vgw", vgw)):
        cell("%s sees none of demo's files before a grant" % who, api.call("GET", F), (403, "E2003"))
    cell("a general user may not grant a vendor (setup.manage)", gen1.call("PUT", VG + "/vend1", {"access": "read"}),
         (403, "E2003"))
    cell("another operator's admin may not grant on demo", xadm.call("PUT", VG + "/vend1", {"access": "read"}),
         (403, "E2003"))
    cell("a vendor admin may not grant itself", vadm.call("PUT", VG + "/vend1", {"access": "read"}), (403, "E2003"))
    for body, field, vid in (({"access": "write"}, "access", "vend1"), ({}, "access", "vend1"),
                             ({"access": "read"}, "vendorId", "bad%20v")):
        st, b = opadm.call("PUT", VG + "/" + vid, body)
        check("a bad vendor grant names %s" % field, st == 400 and code(b) == "E1001"
              and b["result"].get("detail", {}).get("field") == field, (body, st, b))
    cell("a grant to an unregistered vendor is unknown", opadm.call("PUT", VG + "/nosuch", {"access": "read"}),
         (404, "E3001"))
    st, b = opadm.call("PUT", VG + "/vend1", {"access": "read"})
    check("the operator admin grants vend1: a widening, pending", st == 202 and b.get("state") == "requested", (st, b))
    cell("vend1's users are still refused while it is pending", vgen.call("GET", F), (403, "E2003"))
    st, b = approve_if_pending(opadm2, st, b)
    check("... a second operator admin of demo approves it", st == 200 and b.get("state") == "approved", (st, b))
    st, b = opadm.call("GET", VG)
    check("the vendor grants listed", st == 200 and b["items"] == [{"vendorId": "vend1", "access": "read"}], (st, b))
    st, every = listing(opadm)
    for who, api in (("vadm", vadm), ("vgen", vgen)):
        check("%s (vend1) now sees every file of demo" % who, listing(api) == (200, every), (listing(api), every))
    st, body, _ = vgen.call("GET", F + "/mine/n.txt", raw=True)
    check("vgen downloads a user's file of demo", st == 200 and body == b"v2 by the admin", (st, body))
    cell("vgen reads a share list", vgen.call("GET", NS), 200)
    st, b = vgen.call("PUT", F + "/vend/x.txt", "a vendor's file")
    check("a grant is read-only: no file put (403 naming data.write)",
          st == 403 and code(b) == "E2003" and "data.write" in b["result"]["message"], (st, b))
    cell("... nor a share list change", vgen.call("PUT", NS, {"users": []}), (403, "E2003"))
    cell("... nor the operator's set-up (setup.read)", vadm.call("GET", VG), (403, "E2003"))
    cell("... nor its audit", vgen.call("GET", "/admin/v1/audit/events?operatorId=demo"), (403, "E2003"))
    cell("vend2's user sees nothing (no grant)", vgw.call("GET", F), (403, "E2003"))
    cell("vend1's user sees nothing of operator other", vgen.call("GET", "/admin/v1/operators/other/files"),
         (403, "E2003"))
    check("a third vendor (no users)", adm.call("POST", "/admin/v1/vendors", {"id": "vend3", "name": "Three",
                                                                           "kind": "ap"})[0] == 201)
    cell("... granted by demo", approve_if_pending(opadm2, *opadm.call("PUT", VG + "/vend3", {"access": "read"})), 200)
    st, b = adm.call("DELETE", "/admin/v1/vendors/vend3")
    check("a granted vendor cannot be deleted (409 naming the grant)",
          st == 409 and "vendor grant vend3 of operator demo" in b["result"]["message"], (st, b))
    cell("... until demo revokes it", opadm.call("DELETE", VG + "/vend3"), 204)
    cell("then it can", adm.call("DELETE", "/admin/v1/vendors/vend3"), 204)
    cell("the same grant again is answered as it is", opadm.call("PUT", VG + "/vend1", {"access": "read"}), 200)
    stop_server(server)
    server, ports = start_server(BIN, D, os.path.join(T, "server2.log"))
    hp = ports["http"]
    vgen = user_session("vgen", "vgen-password-123", "vgen-password-456")
    check("the grant survives a restart", listing(vgen) == (200, every), listing(vgen))
    opadm = user_session("opadm", "opadm-password-123", "opadm-password-456")
    cell("the operator admin revokes it", opadm.call("DELETE", VG + "/vend1"), 204)
    cell("vgen's very next request is refused", vgen.call("GET", F), (403, "E2003"))
    cell("revoking it again: unknown", opadm.call("DELETE", VG + "/vend1"), (404, "E3001"))
    r = subprocess.run([BIN, "replay", D], capture_output=True, text=True)
    check("the grant and its revocation are events with the admin as the actor",
          r.stdout.count("RG_VENDOR_GRANT") >= 2 or r.stdout.count("vendor grant") >= 2, r.stdout[-800:])
    A, B = Api(hp), Api(hp)
    check("A logs in again", A.login("APP001", "demo", "demo-app001-secret") == 201)
    check("B logs in again", B.login("APPB", "demo", "app-b-secret-1") == 201)

    cell("file delete by B (write grant)", B.call("DELETE", fpath), 204)
    cell("doc delete by B (write grant)", B.call("DELETE", doc), 204)
    cell("doc get by A after B deleted it", A.call("GET", doc), (404, "E3001"))
    stop_server(server)
    server = None
except Exception as ex:  # noqa: BLE001 -- reported as a failed check, then the log
    check.failed(ex)
finally:
    finish(check, T, [server])
