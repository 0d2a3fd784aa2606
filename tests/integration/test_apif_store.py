#!/usr/bin/python3
"""tests/integration/test_apif_store.py -- AP-IF documents, files and stored
values through the real `suiro serve`: revisions and If-Match conflicts,
query by field, uploads in Content-Range parts, a 200 MB upload and download
with the server's RSS bounded, path traversal, paging over 1 M points
(each exactly once), downsampling against a naive computation, monitor
values, and bad input for each endpoint. usage: test_apif_store.py SUIRO_BIN"""
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

BIN = sys.argv[1]
BIG_MB = int(os.environ.get("SUIRO_TEST_BIG_MB", "200"))
T = tempfile.mkdtemp(prefix="suiro-apstore-")
D = os.path.join(T, "data")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from srtest import Api, Checks, code, finish, gwsim_sheet, import_sheet, rss_kb, start_server  # noqa: E402

check = Checks()
server = None


def start():
    return start_server(BIN, D, os.path.join(T, "server.log"))


try:
    subprocess.run([BIN, "init", "--demo", D], check=True, capture_output=True)
    # operator "sim": 4 gateways x 10 points, an app granted everything, and
    # an app of "sim" for the cross-operator checks
    import_sheet(BIN, D, os.path.join(T, "sim.csv"), gwsim_sheet(BIN, 4, 10, "sim") +
                 "\n[apps]\nid,name,secret,push_url\nSAPP,Sim app,sim-app-secret,\n\n[grants]\napp,datapoint,access\nSAPP,*,both\n")
    server, ports = start()
    port = ports["http"]

    # 1 M points through the real GW-IF (gwsim, MQTT QoS 1)
    g = subprocess.run([BIN, "gwsim", "run", "--port", str(ports["mqtt"]), "--operator", "sim", "--gateways", "4",
                        "--points", "10", "--batch", "100", "--messages", "2500", "--window", "32"],
                       capture_output=True, text=True, timeout=600)
    check("gwsim stored 1 M points (10,000 messages acknowledged)", g.returncode == 0 and '"acked":10000' in g.stdout,
          g.stdout[-300:] + g.stderr[-300:])

    a = Api(port)
    check("app login", a.login("APP001", "demo", "demo-app001-secret") == 201)

    # ---- documents -------------------------------------------------------
    st, b = a.call("POST", "/api/v1/documents/plans", {"name": "a", "n": 1, "tag": "x"})
    check("document register: 201 {documentId, revision 1}", st == 201 and b.get("revision") == 1, (st, b))
    d1 = b["documentId"]
    st, b = a.call("POST", "/api/v1/documents/plans", {"name": "b", "n": 2, "tag": "x"})
    d2 = b["documentId"]
    st, data, r = a.call("GET", "/api/v1/documents/plans/" + d1, raw=True)
    check("document get: the JSON and ETag = revision", st == 200 and json.loads(data)["name"] == "a" and
          r.getheader("ETag") == '"1"', (st, data, r.getheader("ETag")))
    st, b = a.call("PUT", "/api/v1/documents/plans/" + d1, {"name": "a2", "tag": "y"}, {"If-Match": "1"})
    check("document update with If-Match: 200 {revision 2}", st == 200 and b == {"revision": 2}, (st, b))
    st, b = a.call("PUT", "/api/v1/documents/plans/" + d1, {"name": "a3"}, {"If-Match": "1"})
    check("document update with a stale If-Match: 409 E3002", st == 409 and code(b) == "E3002", (st, b))
    st, data, _ = a.call("GET", "/api/v1/documents/plans/" + d1, raw=True)
    check("... and the document is unchanged", json.loads(data)["name"] == "a2")
    st, b = a.call("GET", "/api/v1/documents/plans?tag=x")
    ids = sorted(i["documentId"] for i in b.get("items", []))
    check("document query by a field: only the matching one", st == 200 and ids == [d2], (st, b))
    st, b = a.call("GET", "/api/v1/documents/plans?n=2")
    check("document query by a number field", st == 200 and [i["documentId"] for i in b["items"]] == [d2], b)
    st, b = a.call("DELETE", "/api/v1/documents/plans/" + d2, headers={"If-Match": "7"})
    check("document delete with a wrong If-Match: 409 E3002", st == 409 and code(b) == "E3002", (st, b))
    st, b = a.call("DELETE", "/api/v1/documents/plans/" + d2)
    check("document delete: 204", st == 204, (st, b))
    st, b = a.call("GET", "/api/v1/documents/plans/" + d2)
    check("a deleted document is 404 E3001", st == 404 and code(b) == "E3001", (st, b))
    st, b = a.call("DELETE", "/api/v1/documents/plans/" + d2)
    check("deleting it again is 404 E3001", st == 404 and code(b) == "E3001", (st, b))
    st, b = a.call("POST", "/api/v1/documents/plans", "{not json")
    check("document: malformed JSON is 400 E1002", st == 400 and code(b) == "E1002", (st, b))
    st, b = a.call("POST", "/api/v1/documents/plans", "[1,2]")
    check("document: a non-object is 400 E1001", st == 400 and code(b) == "E1001", (st, b))
    st, b = a.call("POST", "/api/v1/documents/plans", b'{"s":"\xff\xfe"}')
    check("document: invalid UTF-8 is 400 E1002", st == 400 and code(b) == "E1002", (st, b))
    st, b = a.call("POST", "/api/v1/documents/plans", {"blob": "x" * (1 << 20)})
    check("document: over 1 MiB is 413 E1003", st == 413 and code(b) == "E1003", (st, b))
    st, b = a.call("POST", "/api/v1/documents/bad%20name", {"a": 1})
    check("document: a bad collection name is 400 E1001", st == 400 and code(b) == "E1001", (st, b))
    st, b = a.call("PUT", "/api/v1/documents/plans/" + d1, {"a": 1}, {"If-Match": "abc"})
    check("document: a bad If-Match is 400 E1001", st == 400 and code(b) == "E1001", (st, b))

    # ---- files -------------------------------------------------------------
    small = os.urandom(300000)
    st, b = a.call("PUT", "/api/v1/files/reports/day1.bin", small, {"Content-Type": "application/x-test"})
    check("file register: 201 {path, size, sha256}", st == 201 and b.get("size") == len(small) and
          b.get("sha256") == hashlib.sha256(small).hexdigest(), (st, b))
    st, data, r = a.call("GET", "/api/v1/files/reports/day1.bin", raw=True)
    check("file download: the same bytes and content type", st == 200 and data == small and
          r.getheader("Content-Type") == "application/x-test", (st, len(data)))
    st, b = a.call("PUT", "/api/v1/files/other/x.txt", b"hello")
    st, b = a.call("GET", "/api/v1/files?prefix=reports/")
    check("file list by prefix", st == 200 and [i["path"] for i in b["items"]] == ["reports/day1.bin"] and
          b["items"][0]["sha256"] == hashlib.sha256(small).hexdigest(), (st, b))
    for bad in ["a/../../etc/passwd", "..", "a//b", "%2e%2e/x", "/abs", "sp%20ace", "a/%00b", "x" * 600]:
        st, b = a.call("PUT", "/api/v1/files/" + bad, b"x")
        ok = (st == 400 and code(b) == "E1001") or (st == 404 and code(b) == "E3001")
        check("file path %r is refused" % bad[:20], ok, (st, b))
    st, b = a.call("GET", "/api/v1/files?prefix=")
    check("... and nothing of them was stored", sorted(i["path"] for i in b["items"]) ==
          ["other/x.txt", "reports/day1.bin"], b)
    st, b = a.call("PUT", "/api/v1/files/p.bin", b"abc", {"Content-Range": "bytes 10-12/20"})
    check("a part that does not start an upload is 404 E3001", st == 404 and code(b) == "E3001", (st, b))
    st, b = a.call("PUT", "/api/v1/files/p.bin", b"abc", {"Content-Range": "bytes 0-9/20"})
    check("Content-Range not matching the body is 400 E1001", st == 400 and code(b) == "E1001", (st, b))
    st, b = a.call("PUT", "/api/v1/files/p.bin", b"0123456789", {"Content-Range": "bytes 0-9/20"})
    check("first part: 202 {received}", st == 202 and b.get("received") == 10, (st, b))
    st, b = a.call("PUT", "/api/v1/files/p.bin", b"0123456789", {"Content-Range": "bytes 5-14/20"})
    check("a part out of order is 409 E3002 naming the expected offset", st == 409 and code(b) == "E3002" and
          "10-" in b["result"]["message"], (st, b))
    st, b = a.call("PUT", "/api/v1/files/p.bin", b"abcdefghij", {"Content-Range": "bytes 10-19/20"})
    check("last part: 201 with the whole file's sha256", st == 201 and
          b.get("sha256") == hashlib.sha256(b"0123456789abcdefghij").hexdigest(), (st, b))
    st, b = a.call("DELETE", "/api/v1/files/p.bin")
    check("file delete: 204", st == 204, st)
    st, b = a.call("GET", "/api/v1/files/p.bin")
    check("a deleted file is 404 E3001", st == 404 and code(b) == "E3001", (st, b))

    # a big file in 8 MiB parts, the server's RSS sampled all along
    idle = rss_kb(server.pid)
    peak = [idle]
    stop = threading.Event()

    def sampler():
        while not stop.is_set():
            peak[0] = max(peak[0], rss_kb(server.pid))
            time.sleep(0.02)

    th = threading.Thread(target=sampler)
    th.start()
    part = 8 << 20
    total = BIG_MB << 20
    h = hashlib.sha256()
    seed = hashlib.sha256(b"suiro").digest()
    off = 0
    ok = True
    t0 = time.time()
    while off < total:
        n = min(part, total - off)
        chunk = (hashlib.sha256(seed + off.to_bytes(8, "little")).digest() * (n // 32 + 1))[:n]
        h.update(chunk)
        st, b = a.call("PUT", "/api/v1/files/big/data.bin", chunk,
                       {"Content-Range": "bytes %d-%d/%d" % (off, off + n - 1, total)})
        ok = ok and st in (201, 202)
        off += n
    up_s = time.time() - t0
    check("a %d MB upload in 8 MiB parts ends 201 with its sha256" % BIG_MB, ok and st == 201 and
          b.get("sha256") == h.hexdigest(), (st, b))
    # streaming download, hashed as it arrives
    a.c.request("GET", "/api/v1/files/big/data.bin", headers={"Authorization": "Bearer " + a.token})
    r = a.c.getresponse()
    h2 = hashlib.sha256()
    got = 0
    while True:
        buf = r.read(1 << 20)
        if not buf:
            break
        got += len(buf)
        h2.update(buf)
    stop.set()
    th.join()
    check("... and downloads intact (streamed)", r.status == 200 and got == total and h2.hexdigest() == h.hexdigest(),
          (r.status, got))
    grow = (peak[0] - idle) / 1024
    print("info: upload %.1f s, RSS idle %d MB, peak %d MB" % (up_s, idle // 1024, peak[0] // 1024))
    if os.environ.get("SUIRO_TEST_NO_RSS") != "1":
        check("the server's RSS stayed under 64 MB above idle (%.1f MB)" % grow, grow < 64, grow)

    # ---- stored values -----------------------------------------------------
    s = Api(port)
    check("sim app login", s.login("SAPP", "sim", "sim-app-secret") == 201)
    q = "&".join("dataId=SP%04d_%02d" % (k, p) for k in range(1, 5) for p in range(1, 11))
    seen = set()
    dup = 0
    cursor = None
    pages = 0
    while True:
        url = "/api/v1/stored-values?%s&from=2025-12-31T00:00:00Z&to=2026-02-01T00:00:00Z&limit=20000" % q
        if cursor:
            url += "&cursor=" + cursor
        st, b = s.call("GET", url)
        if st != 200:
            break
        pages += 1
        for v in b["values"]:
            key = (v["dataId"], v["timestamp"])
            if key in seen:
                dup += 1
            seen.add(key)
        cursor = b["nextCursor"]
        if not cursor:
            break
    check("paging over 1 M points returns each exactly once (%d pages)" % pages,
          st == 200 and len(seen) == 1000000 and dup == 0, (st, len(seen), dup))
    st, b = s.call("GET", "/api/v1/stored-values?dataId=SP0001_01&from=2026-01-01T00:00:00Z"
                          "&to=2026-01-01T01:00:00Z&limit=100000")
    raw = b["values"]
    st, b = s.call("GET", "/api/v1/stored-values?dataId=SP0001_01&from=2026-01-01T00:00:00Z"
                          "&to=2026-01-01T01:00:00Z&interval=1m&agg=min,max,avg,count,first,last,sum")
    buckets = {}
    for v in raw:
        m = v["timestamp"][:16]
        buckets.setdefault(m, []).append(v["value"])
    ok = st == 200 and len(b["values"]) == len(buckets)
    for bk in b["values"] if st == 200 else []:
        vals = buckets.get(bk["timestamp"][:16], [])
        ok = ok and bk["count"] == len(vals) and abs(bk["min"] - min(vals)) < 1e-9 and \
            abs(bk["max"] - max(vals)) < 1e-9 and abs(bk["avg"] - sum(vals) / len(vals)) < 1e-6 and \
            bk["first"] == vals[0] and bk["last"] == vals[-1]
    check("downsampled to 1 min equals a naive computation over the raw values", ok and len(raw) > 100,
          (st, len(raw), b if st != 200 else ""))
    # numbers read back exactly as sent (the answer writer formats them itself)
    tricky = [0.1, -0.25, 1e-07, 123456.789012, 987654.321, 3.0000000000000004, 0.0, 999999.999999, -999999.5, 7.0,
              0.30000000000000004, 5e-05, 12.5]
    g = Api(port)
    st, b = g.call("POST", "/gw/v1/sessions", {"operatorId": "sim", "gatewayId": "SIM0001",
                                                "secret": "sim-secret-SIM0001"})
    g.token = b.get("token") if st == 201 else None
    vals = [{"dataId": "SP0001_02", "timestamp": "2025-06-01T00:00:%02dZ" % i, "value": v} for i, v in enumerate(tricky)]
    st, b = g.call("POST", "/gw/v1/measurements",
                   {"header": {"messageType": "GW_MEASUREMENTS", "messageId": "tricky-1"}, "body": {"values": vals}})
    st2, b2 = s.call("GET", "/api/v1/stored-values?dataId=SP0001_02&from=2025-06-01T00:00:00Z&to=2025-06-02T00:00:00Z")
    back = [v["value"] for v in b2.get("values", [])] if st2 == 200 else []
    check("numbers read back exactly as sent (decimals, tiny, huge, non-decimal doubles)",
          st == 200 and back == tricky and all(isinstance(x, float) for x in back), (st, b, back))
    st, b = s.call("GET", "/api/v1/stored-values/latest?dataId=SP0001_01&dataId=SP0004_10")
    check("latest of two points", st == 200 and len(b["values"]) == 2, (st, b))
    for bad, want in [("dataId=SP0001_01&cursor=zzz", "E1001"), ("dataId=SP0001_01&from=yesterday", "E1001"),
                      ("dataId=SP0001_01&limit=1000000", "E1001"), ("dataId=SP0001_01&order=up", "E1001"),
                      ("dataId=SP0001_01&interval=0s", "E1001"), ("dataId=SP0001_01&interval=1m&agg=median", "E1001"),
                      ("dataId=SP0001_01&from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", "E1001"),
                      ("dataId=SP0001_01&from=2000-01-01T00:00:00Z&to=2026-01-01T00:00:00Z&interval=1ms", "E1003"),
                      ("from=-1h", "E1001")]:
        st, b = s.call("GET", "/api/v1/stored-values?" + bad)
        check("stored-values %s: %s" % (bad[:50], want), code(b) == want, (st, b))
    # another operator's point is as unknown as a point that does not exist
    st1, b1 = a.call("GET", "/api/v1/stored-values?dataId=SP0001_01")
    st2, b2 = a.call("GET", "/api/v1/stored-values?dataId=NOPE")
    check("another operator's data point looks like an unknown one", (st1, b1) == (st2, b2) and st1 == 403, (b1, b2))
    st, b = s.call("GET", "/api/v1/documents/plans/" + d1)
    check("another operator's document is 404 E3001", st == 404 and code(b) == "E3001", (st, b))
    st, b = s.call("GET", "/api/v1/files/reports/day1.bin")
    check("another operator's file is 404 E3001", st == 404 and code(b) == "E3001", (st, b))
    st, b = s.call("GET", "/api/v1/monitors/Mnope/values")
    check("monitor values of an unknown monitor: 404 E3001", st == 404 and code(b) == "E3001", (st, b))
    st, b = a.call("GET", "/api/v1/nothing-here")
    check("an unknown path is 404 E3001", st == 404 and code(b) == "E3001", (st, b))
    check("the server is still up", server.poll() is None)
    server.send_signal(signal.SIGTERM)
    check("SIGTERM stops it cleanly", server.wait(30) == 0)
finally:
    finish(check, T, [server])
