#!/usr/bin/python3
"""tests/integration/test_blob_damage.py -- issue #11 item 11 through the real
binary: `suiro verify` reads every blob the index references and names each
damaged one (exit 1); a download of a damaged blob answers 500 E9001 before
any byte of it is sent; damage past the first 256 KiB (found after the headers
went out) closes the connection short of the Content-Length, never a
complete-looking body. usage: test_blob_damage.py SUIRO_BIN"""
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile

BIN = sys.argv[1]
T = tempfile.mkdtemp(prefix="suiro-blobdmg-")
D = os.path.join(T, "data")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from srtest import Api, Checks, code, finish, http_once, start_server  # noqa: E402

check = Checks()
server = None


def blob_path(sha):
    return os.path.join(D, "blobs", sha[0:2], sha[2:4], sha)


def flip(path, off):
    with open(path, "r+b") as f:
        f.seek(off)
        b = f.read(1)
        f.seek(off)
        f.write(bytes([b[0] ^ 0x24]))


def verify(*extra):
    return subprocess.run([BIN, "verify", D] + list(extra), capture_output=True, text=True)


def get_raw(port, token, path):
    """(status, headers, body bytes, complete?) on a fresh connection."""
    return http_once(port, "GET", path, token=token)


try:
    subprocess.run([BIN, "init", "--demo", D], check=True, capture_output=True)
    server, ports = start_server(BIN, D, os.path.join(T, "server.log"))
    port = ports["http"]
    a = Api(port)
    assert a.login("APP001", "demo", "demo-app001-secret") == 201
    small = b"pump maintenance plan, rev 7\n" * 40
    big = bytes((i * 7 + (i >> 9)) & 0xFF for i in range(600 * 1024))
    shas = {}
    for name, data in (("docs/small.txt", small), ("docs/big.bin", big), ("docs/big2.bin", big[::-1])):
        st, b = a.call("PUT", "/api/v1/files/" + name, data)
        check("upload %s" % name, st == 201, (st, b))
        shas[name] = hashlib.sha256(data).hexdigest()
    server.send_signal(signal.SIGTERM)
    server.wait(30)
    server = None

    r = verify()
    check("verify passes with intact blobs and counts them", r.returncode == 0 and "3 file(s) checked, 0 damaged"
          in r.stdout, r.stdout + r.stderr)
    flip(blob_path(shas["docs/small.txt"]), 64 + 20)
    flip(blob_path(shas["docs/big.bin"]), 64 + 6 * 65600 + 100)  # chunk 6: past the first 256 KiB
    flip(blob_path(shas["docs/big2.bin"]), 64 + 30)              # its first chunk
    r = verify()
    check("verify fails (exit 1) on damaged blobs", r.returncode == 1, (r.returncode, r.stdout))
    for name in ("docs/small.txt", "docs/big.bin", "docs/big2.bin"):
        check("verify names %s and its blob" % name,
              any(shas[name] in l and name in l and "blob-damaged" in l for l in r.stderr.splitlines()), r.stderr)
    check("verify reports the count (findings on stderr)", "3 file(s) checked, 3 damaged" in r.stderr, r.stderr)
    r = verify("--json")
    try:
        j = json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        j = {}
    check("verify --json: blobs-damaged with each blob named", r.returncode == 1 and
          j.get("verdict") == "blobs-damaged" and
          sorted(x["blob"] for x in j.get("damagedBlobs", [])) == sorted(shas.values()), r.stdout)

    server, ports = start_server(BIN, D, os.path.join(T, "server.log"))
    port = ports["http"]
    a = Api(port)
    assert a.login("APP001", "demo", "demo-app001-secret") == 201
    for name in ("docs/small.txt", "docs/big2.bin"):
        st, resp, body, complete = get_raw(port, a.token, "/api/v1/files/" + name)
        try:
            c = code(json.loads(body))
        except ValueError:
            c = None
        check("a damaged %s answers 500 E9001 before any byte" % name, st == 500 and c == "E9001",
              (st, body[:120]))
    st, resp, body, complete = get_raw(port, a.token, "/api/v1/files/docs/big.bin")
    cl = int(resp.getheader("Content-Length") or -1)
    check("damage past the first 256 KiB: 200 started, then the connection closes short of the length",
          st == 200 and cl == len(big) and not complete and len(body) < cl and body == big[:len(body)],
          (st, cl, len(body), complete))
    st, b = a.call("GET", "/api/v1/files?prefix=docs/")
    check("the server is still up and lists the files", st == 200 and len(b.get("items", [])) == 3, (st, b))
    server.send_signal(signal.SIGTERM)
    check("the server stops cleanly", server.wait(30) == 0)
    server = None
finally:
    finish(check, T, [server])
