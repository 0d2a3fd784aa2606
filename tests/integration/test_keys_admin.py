#!/usr/bin/python3
"""tests/integration/test_keys_admin.py -- the keyring through the real
server and HTTP (issue #16, docs/keys.md): a server with a master key
(key_file) lists its keys (metadata only: no key bytes), rotates an
operator's data key (a new epoch each time, a bad class refused naming the
field), exports the wrapped keyring (the keyring file's bytes, SRKEYRNG);
without a session each is 401; after the server stops, `suiro key list`
shows the retired epochs, `suiro replay --kind key` the KeyEvents with the
admin as their actor, `suiro key export` writes the same bytes the route
gave, and `suiro verify` passes. An operator's admin lists and rotates
its own operator's keys only (another's, the platform's, the export and
the master rotation: 403); a file it uploads is a version 2 blob
blobs/ab/cd/<sha>.<kid> under demo's active data key (no plaintext in it),
downloads, and still does after the master rotation; verify reads it,
and reads it in a restored backup. Once the files' key is retired and
destroyed (the keyring's tombstone), the server starts and both files
answer 404 E3001 naming the key; uploaded again, the file reads. The master key's rotation follows the
two-person rule: POST /admin/v1/keys/master is a pending change (the
keyring is not touched), the second platform admin's approval re-wraps it
under the server's [keys] master_next while the server goes on; after the
stop the old master is refused naming the new one's id, and the new opens.
usage: test_keys_admin.py SUIRO_BIN"""
import hashlib
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from srtest import Api, Checks, admin_new_user, admin_session, finish, http_once, start_server, stop_server  # noqa: E402

BIN = sys.argv[1]
T = tempfile.mkdtemp(prefix="suiro-keysadmin-")
D = os.path.join(T, "data")
K = os.path.join(T, "master.key")
K2 = os.path.join(T, "master-next.key")
CFG = os.path.join(T, "suiro.ini")
check = Checks()
server = None
procs = []


def run(*args):
    return subprocess.run([BIN] + list(args), capture_output=True, text=True)


def destroy_key(path, kid):
    """what the erasure does to the keyring (docs/keys.md "The keyring
    file"): entry kid becomes a tombstone (state 3, a destroyed time, its
    wrapped bytes gone), the file's SHA-256 made good"""
    b = open(path, "rb").read()
    body = b[:-32]
    assert hashlib.sha256(body).digest() == b[-32:]
    out = bytearray(body[:24])
    off = 24
    for _ in range(int.from_bytes(body[16:20], "little")):
        end = off + 38 + int.from_bytes(body[off + 36:off + 38], "little")
        e = bytearray(body[off:end])
        wrapped = body[end:end + 60] if e[11] != 3 else b""
        if "%08x" % int.from_bytes(e[0:4], "little") == kid:
            e[11] = 3
            e[28:36] = (1 << 40).to_bytes(8, "little")
            wrapped = b""
        out += e + wrapped
        off = end + (60 if body[off + 11] != 3 else 0)
    out += hashlib.sha256(bytes(out)).digest()
    with open(path, "wb") as f:
        f.write(out)


def key_id(path):
    """crypto.h: the first 4 bytes, little-endian, of SHA-256("suiro-key-id-v1" || key)"""
    h = hashlib.sha256(b"suiro-key-id-v1" + bytes.fromhex(open(path).read().strip())).digest()
    return "%08x" % int.from_bytes(h[:4], "little")


try:
    for path in (K, K2):
        with open(path, "w") as f:
            f.write(os.urandom(32).hex() + "\n")
    with open(CFG, "w") as f:
        f.write("[keys]\nmaster_next = %s\n" % K2)
    r = run("init", "--demo", "--second-admin", "admin2", "--key-file", K, D)
    assert r.returncode == 0, r.stderr
    temp, temp2 = [ln.split(":", 1)[1].strip() for ln in r.stdout.splitlines() if ln.startswith("temporary password:")]
    server, ports = start_server(BIN, D, os.path.join(T, "server.log"), extra=("--key-file", K, "--config", CFG))
    procs.append(server)
    hp = ports["http"]
    admin = admin_session(hp, "admin", temp, "the-admins-own-password-1")
    admin2 = admin_session(hp, "admin2", temp2, "the-admins-own-password-2")

    st, b = admin.call("GET", "/admin/v1/keys")
    check("GET /admin/v1/keys answers 200", st == 200, (st, b))
    keys = b["keys"] if st == 200 else []
    check("the list names the master and the keys made so far", len(b.get("masterKeyId", "")) == 8 and len(keys) >= 2,
          b)
    check("metadata only: no key bytes in an entry",
          all(set(k) == {"keyId", "operator", "class", "epoch", "alg", "state", "created", "retired", "destroyed"}
              for k in keys), keys[:1])
    check("demo's config key (its masters) is there", any(k["operator"] == "demo" and k["class"] == "config"
                                                           for k in keys), keys)

    epochs = []
    for _ in range(2):
        st, b = admin.call("POST", "/admin/v1/keys/rotate", {"operator": "demo", "class": "data"})
        check("POST /admin/v1/keys/rotate answers the new key", st == 200 and b.get("state") == "active"
              and b.get("class") == "data" and b.get("operator") == "demo", (st, b))
        epochs.append(b.get("epoch", 0) if st == 200 else 0)
    check("each rotation starts the next epoch", epochs[1] == epochs[0] + 1, epochs)
    st, b = admin.call("POST", "/admin/v1/keys/rotate", {"operator": "demo", "class": "secret"})
    check("an unknown class is refused naming the field", st == 400 and "class" in json.dumps(b), (st, b))

    st, data, _ = admin.call("GET", "/admin/v1/keys/export", raw=True)
    check("GET /admin/v1/keys/export gives the wrapped keyring", st == 200 and data[:8] == b"SRKEYRNG", (st, data[:16]))
    check("the export is the keyring file", data == open(os.path.join(D, "keys", "keyring"), "rb").read())

    for method, path in (("GET", "/admin/v1/keys"), ("POST", "/admin/v1/keys/rotate"), ("GET", "/admin/v1/keys/export")):
        st = http_once(hp, method, path, body={} if method == "POST" else None)[0]
        check("%s %s without a session: 401" % (method, path), st == 401, st)

    # an operator's admin: its own operator's keys only (admin_keys.c keys_scope)
    opadm = admin_new_user(hp, admin, "demo_keys", "operator", "demo", ["operator_admin"], "demo-keys-password-1",
                           approver=admin2)
    st, b = opadm.call("GET", "/admin/v1/keys")
    ops = sorted({k["operator"] for k in b.get("keys", [])}) if st == 200 else []
    check("an operator admin lists its own operator's keys only", st == 200 and ops == ["demo"], (st, ops))
    st, b = opadm.call("POST", "/admin/v1/keys/rotate", {})
    check("an operator admin rotates its own operator's data key (operator missing: its own)",
          st == 200 and b.get("operator") == "demo" and b.get("class") == "data" and b.get("epoch") == epochs[1] + 1,
          (st, b))
    for body in ({"operator": "other"}, {"operator": ""}):
        st, b = opadm.call("POST", "/admin/v1/keys/rotate", body)
        check("an operator admin cannot rotate %r's key: 403" % body["operator"], st == 403, (st, b))
    for method, path in (("GET", "/admin/v1/keys/export"), ("POST", "/admin/v1/keys/master")):
        st, b = opadm.call(method, path, {} if method == "POST" else None)
        check("an operator admin: %s %s is the platform's (403)" % (method, path), st == 403, (st, b))

    # a file of demo with the keyring: a version 2 blob <sha>.<kid>, the kid
    # that of demo's active data key
    content = b"Intake pump A-7731: the file's secret body " * 50
    fpath = "/admin/v1/operators/demo/files/reports/pump.txt"
    st, b = opadm.call("PUT", fpath, content, headers={"Content-Type": "text/plain"})
    check("an upload with the keyring answers 201", st == 201, (st, b))
    sha = hashlib.sha256(content).hexdigest()
    st, k = admin.call("GET", "/admin/v1/keys")
    kid = [x["keyId"] for x in k.get("keys", []) if x["operator"] == "demo" and x["class"] == "data"
           and x["state"] == "active"]
    blob = os.path.join(D, "blobs", sha[:2], sha[2:4], "%s.%s" % (sha, kid[0] if kid else "?"))
    check("its blob is blobs/ab/cd/<sha>.<kid>, kid demo's active data key", len(kid) == 1 and os.path.exists(blob),
          (kid, os.listdir(os.path.join(D, "blobs", sha[:2], sha[2:4])) if os.path.isdir(
              os.path.join(D, "blobs", sha[:2], sha[2:4])) else None))
    check("the blob holds no plaintext", os.path.exists(blob) and b"Intake pump" not in open(blob, "rb").read())
    st, data, _ = opadm.call("GET", fpath, raw=True)
    check("the download gives the file back", st == 200 and data == content, (st, data[:40]))
    # the same through AP-IF (an app of demo): the blob under the same key
    app = Api(hp)
    check("APP001 logs in", app.login("APP001", "demo", "demo-app001-secret") == 201)
    acontent = b"Reservoir B-4412 inspection, an app's file " * 40
    st, b = app.call("PUT", "/api/v1/files/docs/inspection.txt", acontent)
    check("an AP-IF upload with the keyring answers 201", st == 201, (st, b))
    asha = hashlib.sha256(acontent).hexdigest()
    ablob = os.path.join(D, "blobs", asha[:2], asha[2:4], "%s.%s" % (asha, kid[0] if kid else "?"))
    check("its blob is <sha>.<kid> under demo's data key, no plaintext in it",
          os.path.exists(ablob) and b"Reservoir" not in open(ablob, "rb").read(), ablob)
    st, data, _ = app.call("GET", "/api/v1/files/docs/inspection.txt", raw=True)
    check("the AP-IF download gives it back", st == 200 and data == acontent, (st, data[:40]))

    # the master key's rotation: the two-person rule
    st, b = admin.call("POST", "/admin/v1/keys/master")
    check("POST /admin/v1/keys/master is a pending change", st == 202 and "pendingId" in b, (st, b))
    st2, k = admin.call("GET", "/admin/v1/keys")
    check("pending: the keyring is still wrapped by the old master", k.get("masterKeyId") == key_id(K), k)
    st3, b3 = admin.call("POST", "/admin/v1/pending/%s/approve" % b.get("pendingId", "x"))
    check("the requester cannot approve it", st3 in (403, 409), (st3, b3))
    st3, b3 = admin2.call("POST", "/admin/v1/pending/%s/approve" % b.get("pendingId", "x"))
    check("a second platform admin approves it", st3 == 200, (st3, b3))
    st2, k = admin.call("GET", "/admin/v1/keys")
    check("approved: the keyring is wrapped by [keys] master_next", k.get("masterKeyId") == key_id(K2),
          (k.get("masterKeyId"), key_id(K2)))
    st, b = admin.call("POST", "/admin/v1/keys/rotate", {"operator": "demo", "class": "audit"})
    check("the server goes on under the new master", st == 200, (st, b))
    st, data, _ = opadm.call("GET", fpath, raw=True)
    check("the file reads after the master rotation (its data key re-wrapped, no blob rewritten)",
          st == 200 and data == content, (st, data[:40]))
    stop_server(server)
    procs.remove(server)
    server = None
    r = run("key", "list", D, "--key-file", K)
    check("the rotated-away master is refused naming the new one", r.returncode != 0 and key_id(K2) in r.stderr,
          r.stderr)
    r = run("replay", D, "--kind", "pending", "--key-file", K2)
    check("the approval carries the master-rotated KeyEvent", "master-rotated" in r.stdout, r.stderr)
    K = K2
    r = run("key", "list", D, "--key-file", K)
    lines = [json.loads(ln) for ln in r.stdout.splitlines()]
    demo_data = sorted((k["epoch"], k["state"]) for k in lines if k["operator"] == "demo" and k["class"] == "data")
    check("suiro key list: demo's data epochs, the last active, the others retired",
          r.returncode == 0 and demo_data and demo_data[-1][1] == "active"
          and all(s == "retired" for _, s in demo_data[:-1]) and len(demo_data) >= 2, (r.stderr, demo_data))
    r = run("replay", D, "--kind", "key", "--key-file", K)
    evs = [json.loads(ln) for ln in r.stdout.splitlines()]
    rotated = [e for e in evs if e["key"]["action"] == "rotated" and e["actor"] == "admin"]
    exported = [e for e in evs if e["key"]["action"] == "exported"]
    check("the rotations are KeyEvents by the admin (two of data, one of audit after the master rotation)",
          len(rotated) == 3, rotated)
    mine = [e for e in evs if e["key"]["action"] == "rotated" and e["actor"] == "demo_keys"]
    check("the operator admin's rotation is a KeyEvent by it, of demo's data key",
          len(mine) == 1 and mine[0]["key"].get("keyOperator", mine[0]["key"].get("key_operator")) == "demo", mine)
    check("the export is a KeyEvent by the admin", len(exported) == 1 and exported[0]["actor"] == "admin", exported)
    check("no KeyEvent carries a key", all("bytes" not in json.dumps(e["key"]) for e in evs))
    out = os.path.join(T, "export.bin")
    r = run("key", "export", D, out, "--key-file", K)
    check("suiro key export writes the wrapped keyring", r.returncode == 0 and open(out, "rb").read()[:8] == b"SRKEYRNG",
          r.stderr)
    r = run("verify", D, "--key-file", K)
    check("suiro verify passes (the file's version 2 blob read with its data key)",
          r.returncode == 0 and "2 file(s) checked, 0 damaged" in r.stdout, r.stdout + r.stderr)
    # a backup copies the version 2 blob as it is; the restored file reads
    # (verify reads every blob the restored index references, in full)
    SET, R = os.path.join(T, "set"), os.path.join(T, "restored")
    r = run("backup", D, SET, "--key-file", K)
    check("suiro backup of the keyed directory", r.returncode == 0, r.stderr)
    names = sorted(os.listdir(SET)) if os.path.isdir(SET) else []
    r = run("restore", os.path.join(SET, names[-1] if names else "x"), R, "--key-file", K,
            "--platform-key", os.path.join(D, "platform-key.pem"))
    check("suiro restore of it", r.returncode == 0, r.stdout + r.stderr)
    check("the restored blob is the same file, byte for byte",
          open(blob, "rb").read() == open(blob.replace(D, R, 1), "rb").read() if os.path.exists(
              blob.replace(D, R, 1)) else False)
    r = run("verify", R, "--key-file", K)
    check("the restored file reads: verify checks it, none damaged",
          r.returncode == 0 and "2 file(s) checked, 0 damaged" in r.stdout, r.stdout + r.stderr)

    # the files' data key retired and destroyed (what retention's erasure
    # does): the server still starts, both files answer 404 E3001
    r = run("key", "rotate", D, "--key-file", K, "--operator", "demo", "--class", "data")
    check("suiro key rotate retires the files' key", r.returncode == 0, r.stderr)
    destroy_key(os.path.join(D, "keys", "keyring"), kid[0] if kid else "?")
    r = run("key", "list", D, "--key-file", K)
    gone = [json.loads(ln) for ln in r.stdout.splitlines() if kid and kid[0] in ln]
    check("the key is a tombstone", r.returncode == 0 and gone and gone[0]["state"] == "destroyed", (r.stderr, gone))
    server, ports = start_server(BIN, D, os.path.join(T, "server2.log"), extra=("--key-file", K))
    procs.append(server)
    hp = ports["http"]
    opadm = admin_session(hp, "demo_keys", "demo-keys-password-1")
    st, b = opadm.call("GET", fpath)
    # the file's index record was sealed by the same key (the index is
    # sealed, layout 8): it is erased with it, the file is unknown now
    check("a file of the destroyed key: 404 E3001, the file erased with its record",
          st == 404 and isinstance(b, dict) and "E3001" in json.dumps(b), (st, b))
    app = Api(hp)
    app.login("APP001", "demo", "demo-app001-secret")
    st, b = app.call("GET", "/api/v1/files/docs/inspection.txt")
    check("through AP-IF too", st == 404 and "E3001" in json.dumps(b), (st, b))
    st, b = opadm.call("PUT", fpath, content, headers={"Content-Type": "text/plain"})
    check("the same content uploaded again: under the new key, it reads", st == 201 and
          opadm.call("GET", fpath, raw=True)[1] == content, (st, b))
except Exception as e:  # noqa: BLE001
    check.failed(e)
finally:
    if server:
        stop_server(server)
        procs.remove(server)
sys.exit(finish(check, T, procs))
