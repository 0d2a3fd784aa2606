#!/usr/bin/python3
"""tests/integration/test_conn_limits.py -- what one connection, or one
source address, may make the server hold (issue #11, items 6 and 8), through
the real `suiro serve` and raw sockets:

  MQTT  a gateway that sends PINGREQs and never reads is disconnected and the
        server's RSS stays bounded (on MQTT and on MQTTS, where the queue
        holds ciphertext); the same for error acks to a non-reader;
        a SUBACK / UNSUBACK has one code per filter (100 filters -> 100 codes,
        3.1.1 and 5.0); subscriptions are capped and deduplicated, and 120
        SUBSCRIBEs of 64 large filters do not grow the server; idle sockets
        that never send CONNECT fill only their own address's budget and are
        closed after connect_timeout_ms, while a gateway from 127.0.0.2 still
        logs in at once; a CONNECT over max_unauth_bytes (sockets that send
        most of a 1 MB CONNECT) is refused from its declared length.
  HTTP  20 connections sending large bodies without a token are cut long
        before h2o's request timeout and RSS stays bounded, while a
        gateway with a token still posts a large body; per-address
        connection limit; over body_budget the connections holding the most
        are cut; a client that pipelines requests and never reads its
        answers is cut.

RSS bound: the server's VmRSS may grow by at most RSS_GROWTH_KB over its
value after start-up in each scenario (docs/configuration.md, "Limits").
SR_SOAK=N multiplies the flood lengths. usage: test_conn_limits.py SUIRO_BIN"""
import os
import select
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import srtest  # noqa: E402

BIN = sys.argv[1]
SOAK = max(1, int(os.environ.get("SR_SOAK", "1") or 1))
T = tempfile.mkdtemp(prefix="suiro-connlim-")
D = os.path.join(T, "data")
OP = "sim"
RSS_GROWTH_KB = 32 * 1024
# under ASan freed memory sits in the quarantine (256 MB) and counts in the
# RSS: the bounds are checked only on a plain build, the behaviour on both
ASAN = b"__asan_init" in open(BIN, "rb").read()
FLOOD_CAP_KB = (1024 if ASAN else 256) * 1024  # a flood that grew the server this much failed: stop it
# the kernel takes ~7 MB of PINGRESPs (the server's send buffer grows) before
# the server's own queue fills: ~6 s on a plain build, 3-4 times that under
# ASan, much more on a loaded machine. So a flood is bounded by what it sent
# (FLOOD_BYTES: far more than the kernel's buffers and the server's queue),
# and by time only as a safety net (FLOOD_S), never to decide the outcome.
FLOOD_BYTES = 64 * 1024 * 1024 * SOAK
FLOOD_S = 600
check = srtest.Checks()
procs = []


rss_kb = srtest.rss_kb


# ---- MQTT on raw sockets -----------------------------------------------------

varint = srtest.mqtt_varint
mstr = srtest.mqtt_str
packet = srtest.mqtt_packet


def connect_pkt(ver, gw, secret, keepalive=0):
    return srtest.mqtt_connect(gw, "%s/%s" % (OP, gw), secret, keepalive=keepalive, v5=ver == 5)


def subscribe_pkt(ver, pid, filters):
    body = struct.pack(">H", pid) + (varint(0) if ver == 5 else b"")
    for f in filters:
        body += mstr(f) + b"\x00"
    return packet(0x82, body)


def unsubscribe_pkt(ver, pid, filters):
    body = struct.pack(">H", pid) + (varint(0) if ver == 5 else b"")
    for f in filters:
        body += mstr(f)
    return packet(0xA2, body)


def recv_exact(s, n, deadline):
    buf = b""
    while len(buf) < n:
        left = deadline - time.time()
        if left <= 0:
            raise TimeoutError("no data in time")
        s.settimeout(left)
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError("closed by the server")
        buf += chunk
    return buf


def read_packet(s, timeout=10):
    """(type byte, body) of the next packet."""
    deadline = time.time() + timeout
    first = recv_exact(s, 1, deadline)[0]
    n, mul = 0, 1
    while True:
        b = recv_exact(s, 1, deadline)[0]
        n += (b & 127) * mul
        mul *= 128
        if not b & 128:
            break
    return first, recv_exact(s, n, deadline) if n else b""


def ack_codes(ver, body):
    """The return / reason codes of a SUBACK or a 5.0 UNSUBACK body."""
    pos = 2
    if ver == 5:
        n, mul = 0, 1
        while True:
            b = body[pos]
            pos += 1
            n += (b & 127) * mul
            mul *= 128
            if not b & 128:
                break
        pos += n
    return list(body[pos:])


def mqtt_login(port, gw, ver=4, src=None, keepalive=0, rcvbuf=0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:  # before connect: a small window from the start
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    if src:
        s.bind((src, 0))
    try:
        s.connect(("127.0.0.1", port))
        s.sendall(connect_pkt(ver, gw, "sim-secret-" + gw, keepalive))
        t, body = read_packet(s)
    except (OSError, EOFError):  # refused or closed: not logged in
        return s, False
    ok = t == 0x20 and len(body) >= 2 and body[1] == 0
    return s, ok


def closed_by_server(s, timeout):
    """True once the server closed s (reading and dropping what it sends)."""
    deadline = time.time() + timeout
    s.setblocking(False)
    while time.time() < deadline:
        r, _, _ = select.select([s], [], [], 0.05)
        if r:
            try:
                if not s.recv(65536):
                    return True
            except (ConnectionResetError, BrokenPipeError):
                return True
            except BlockingIOError:
                pass
    return False


def closed_among(socks, timeout, answers=False):
    """The sockets of socks the server closes within timeout (waited on together);
    with answers, also {socket: the bytes it read before the close}."""
    closed = set()
    said = {}
    deadline = time.time() + timeout
    while time.time() < deadline and len(closed) < len(socks):
        r, _, _ = select.select([c for c in socks if c not in closed], [], [], 0.05)
        for c in r:
            try:
                got = c.recv(65536)
                if not got:
                    closed.add(c)
                said[c] = said.get(c, b"") + got
            except OSError:
                closed.add(c)
    return (closed, said) if answers else closed


def flood_without_reading(s, chunk, seconds, pid):
    """Send chunk again and again, never reading, until the server closes, or
    FLOOD_BYTES were sent, or (a safety net) seconds passed: (closed, peak RSS kB)."""
    s.setblocking(False)
    peak = start = rss_kb(pid)
    end = time.time() + seconds
    off = 0  # a partial send goes on where it stopped: the stream stays well-formed
    sent = 0
    while time.time() < end and sent < FLOOD_BYTES:
        try:
            n = s.send(chunk[off:])
            sent += n
            off = (off + n) % len(chunk)
        except BlockingIOError:
            select.select([], [s], [], 0.05)
        except (ConnectionResetError, BrokenPipeError, OSError):
            return True, max(peak, rss_kb(pid))
        peak = max(peak, rss_kb(pid))
        if peak - start > FLOOD_CAP_KB:
            break  # failed already: do not take the machine's memory
    return False, peak


def rss_check(name, grown):
    if ASAN:
        print("(ASan build: RSS not checked) %s: +%d kB" % (name, grown))
    else:
        check(name, grown < RSS_GROWTH_KB, grown)


def root(gw):
    return "wip/v1/%s/gw/%s" % (OP, gw)


try:
    srtest.provision_gwsim(BIN, D, T, 8, 4)
    # a self-signed server certificate for the MQTTS listener (the output
    # queue counts the TLS ciphertext)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", os.path.join(T, "srv.key"), "-out", os.path.join(T, "srv.pem"), "-days", "2",
                    "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
    cfg = os.path.join(T, "suiro.ini")
    open(cfg, "w").write(
        "[engine]\ndata_dir = %s\n"
        "[mqtt]\nlisten = 127.0.0.1:0\nmax_output_bytes = 262144\noutput_stall_ms = 1000\nmax_subscriptions = 80\n"
        "tls_listen = 127.0.0.1:0\ntls_cert = %s\ntls_key = %s\ntls_client_cert = none\n"
        "[server]\nmax_connections = 40\nmax_connections_per_address = 16\nconnect_timeout_ms = 3000\n"
        "[http]\nlisten = 127.0.0.1:0\nmax_connections_per_address = 24\nsend_timeout_ms = 1000\nbody_budget = 1048576\n" % (D, os.path.join(T, "srv.pem"), os.path.join(T, "srv.key")))
    srv, ports = srtest.start_server(BIN, D, os.path.join(T, "server.log"), config=cfg, until="mqtts")
    procs.append(srv)
    MQ, HP, MQS = ports["mqtt"], ports["http"], ports["mqtts"]
    # each login costs 16 MB of scrypt memory on a thread-pool thread, which the
    # allocator keeps: log in on every pool thread at once, twice, before the baseline
    for _ in range(2):
        socks = []
        for gw in ("SIM0001", "SIM0002", "SIM0003", "SIM0004", "SIM0005", "SIM0006"):
            s = socket.create_connection(("127.0.0.1", MQ))
            s.sendall(connect_pkt(4, gw, "sim-secret-" + gw))
            socks.append(s)
        for s in socks:
            read_packet(s)
            s.close()
    time.sleep(0.5)  # let the disconnects be recorded before the baseline
    base = rss_kb(srv.pid)
    print("server RSS after start-up: %d kB" % base)

    # ---- SUBACK / UNSUBACK: one code per filter, cap, dedup ------------------
    for ver in (4, 5):
        gw = "SIM0001" if ver == 4 else "SIM0002"
        s, ok = mqtt_login(MQ, gw, ver)
        check("mqtt %d: gateway logs in" % ver, ok)
        filters = ["%s/res/f%03d" % (root(gw), i) for i in range(100)]
        s.sendall(subscribe_pkt(ver, 7, filters))
        t, body = read_packet(s)
        codes = ack_codes(ver, body)
        refused = 0x80 if ver == 4 else 0x97
        check("mqtt %d: SUBACK of 100 filters has 100 codes" % ver, t == 0x90 and len(codes) == 100, len(codes))
        check("mqtt %d: the first 80 (max_subscriptions) granted, the 20 past the cap refused" % ver,
              codes == [0] * 80 + [refused] * 20, codes[-25:])
        s.sendall(subscribe_pkt(ver, 8, filters))
        t, body = read_packet(s)
        codes = ack_codes(ver, body)
        check("mqtt %d: subscribing the same filters again replaces them (still 80 held)" % ver,
              codes == [0] * 80 + [refused] * 20, codes[-25:])
        s.sendall(subscribe_pkt(ver, 9, [filters[0]] * 100))
        t, body = read_packet(s)
        check("mqtt %d: 100 copies of one held filter in one SUBSCRIBE: 100 codes, all granted" % ver,
              ack_codes(ver, body) == [0] * 100)
        s.sendall(unsubscribe_pkt(ver, 10, filters))
        t, body = read_packet(s)
        if ver == 5:
            codes = ack_codes(ver, body)
            check("mqtt 5: UNSUBACK of 100 filters has 100 codes (80 removed, 20 had no subscription)",
                  t == 0xB0 and codes == [0] * 80 + [0x11] * 20, (len(codes), codes[-25:]))
        else:
            check("mqtt 3.1.1: UNSUBACK", t == 0xB0 and body[:2] == b"\x00\x0a")
        s.sendall(subscribe_pkt(ver, 11, filters[:80]))
        t, body = read_packet(s)
        check("mqtt %d: after the UNSUBSCRIBE the room is free again" % ver, ack_codes(ver, body) == [0] * 80)
        s.close()

    # 120 SUBSCRIBEs of 64 large filters (the example: +120 MB)
    s, ok = mqtt_login(MQ, "SIM0003")
    big = "x" * 8000
    peak = base
    for k in range(120 * SOAK):
        s.sendall(subscribe_pkt(4, 1 + k % 60000, ["%s/%s/%d/%d" % (root("SIM0003"), big, k, i) for i in range(64)]))
        t, body = read_packet(s)
        peak = max(peak, rss_kb(srv.pid))
    held = rss_kb(srv.pid)
    print("subscribe flood: RSS peak %d kB, after %d kB" % (peak, held))
    rss_check("120 SUBSCRIBEs of 64 8 KB filters (61 MB offered) keep the growth under %d kB" % RSS_GROWTH_KB,
              held - base)
    s.close()

    # ---- output queue: a PINGREQ flooder that never reads --------------------
    s, ok = mqtt_login(MQ, "SIM0004", rcvbuf=4096)
    closed, peak = flood_without_reading(s, b"\xc0\x00" * 8192, FLOOD_S, srv.pid)
    print("pingreq flood: closed=%s RSS peak %d kB" % (closed, peak))
    check("a gateway sending PINGREQs without reading is disconnected", closed)
    rss_check("the server's RSS stays bounded under the PINGREQ flood (< +%d kB)" % RSS_GROWTH_KB, peak - base)
    s.close()

    # error acks to a non-reader: bad QoS 1 publishes, GW_ACKs subscribed
    s, ok = mqtt_login(MQ, "SIM0005", rcvbuf=4096)
    s.sendall(subscribe_pkt(4, 1, [root("SIM0005") + "/res/#"]))
    read_packet(s)
    bad = b"".join(packet(0x32, mstr(root("SIM0005") + "/data/measurements") + struct.pack(">H", 1 + i) + b"{not json")
                   for i in range(2000))
    closed, peak = flood_without_reading(s, bad, FLOOD_S, srv.pid)
    print("error-ack flood: closed=%s RSS peak %d kB" % (closed, peak))
    check("a gateway sending refused publishes without reading its acks is disconnected", closed)
    rss_check("the server's RSS stays bounded under the error-ack flood (< +%d kB)" % RSS_GROWTH_KB, peak - base)
    s.close()
    # the same over TLS: what is queued is ciphertext
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect(("127.0.0.1", MQS))
    tctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    tctx.check_hostname = False
    tctx.verify_mode = ssl.CERT_NONE
    ts = tctx.wrap_socket(raw)
    ts.sendall(connect_pkt(4, "SIM0006", "sim-secret-SIM0006"))
    t, body = read_packet(ts)
    check("mqtts: gateway logs in", t == 0x20 and body[1] == 0)
    ts.setblocking(False)
    peak = rss_kb(srv.pid)
    end = time.time() + FLOOD_S
    closed = False
    chunk, off, sent = b"\xc0\x00" * 8192, 0, 0
    while time.time() < end and not closed and sent < FLOOD_BYTES:
        try:
            n = ts.send(chunk[off:])
            sent += n
            off = (off + n) % len(chunk)
        except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
            select.select([], [ts], [], 0.05)
        except (OSError, ssl.SSLError):
            closed = True
        peak = max(peak, rss_kb(srv.pid))
        if peak - base > FLOOD_CAP_KB:
            break
    print("tls pingreq flood: closed=%s RSS peak %d kB" % (closed, peak))
    check("mqtts: a gateway sending PINGREQs without reading is disconnected", closed)
    rss_check("mqtts: the server's RSS stays bounded (< +%d kB)" % RSS_GROWTH_KB, peak - base)
    ts.close()
    log = open(os.path.join(T, "server.log")).read()
    check("the disconnects are logged with the gateway and the bytes",
          "output stalled" in log or "output queue over the limit" in log)

    # ---- idle sockets that never send CONNECT --------------------------------
    # the case: idle sockets fill max_connections (40 here) and a
    # real gateway from elsewhere waits out the timeout
    idle = []
    for i in range(40):
        idle.append(socket.create_connection(("127.0.0.1", MQ)))
    gone = closed_among(idle, 1.0)
    kept = [c for c in idle if c not in gone]
    check("mqtt: of 40 idle sockets from one address, max_connections_per_address (16) are kept, the others "
          "closed at once", len(kept) == 16, len(kept))
    for c in idle:
        if c not in kept:
            c.close()
    idle = kept
    t0 = time.time()
    g, ok = mqtt_login(MQ, "SIM0006", src="127.0.0.2")
    took = time.time() - t0
    check("mqtt: a gateway from 127.0.0.2 logs in while 127.0.0.1's budget is full", ok, took)
    g.close()
    check("mqtt: idle sockets are closed after connect_timeout_ms", all(closed_by_server(c, 5) for c in idle))
    for c in idle:
        c.close()
    g, ok = mqtt_login(MQ, "SIM0007")
    check("mqtt: once they are gone, 127.0.0.1 gets in again", ok)
    g.close()

    # ---- sockets that send most of a huge CONNECT ------------------------------
    # a CONNECT comes before any login: it may be at most [mqtt]
    # max_unauth_bytes (64 KiB), not max_packet (1 MiB): a larger one is refused
    # from its declared length, so 16 such sockets of one address do not make
    # the server hold 16 MiB until connect_timeout_ms
    base_c = rss_kb(srv.pid)
    big = []
    for i in range(16):
        c = socket.create_connection(("127.0.0.1", MQ), source_address=("127.0.0.3", 0))
        try:
            c.sendall(packet(0x10, mstr("MQTT") + bytes([4, 0xC2, 0, 60]) + b"\0" * (1000000 - 10))[:900000])
        except OSError:
            pass
        big.append(c)
    gone = closed_among(big, 1.5)
    check("mqtt: a CONNECT declaring 1 MB (over max_unauth_bytes) is refused at once, not held until "
          "connect_timeout_ms (%d of 16 closed within 1.5 s)" % len(gone), len(gone) == 16, len(gone))
    rss_check("mqtt: 16 sockets sending 900 KB of a CONNECT", rss_kb(srv.pid) - base_c)
    for c in big:
        c.close()
    for ver in (4, 5):
        g, ok = mqtt_login(MQ, "SIM0007", ver=ver, src="127.0.0.3")
        check("mqtt %d: a normal CONNECT from the same address still logs in" % ver, ok)
        g.close()

    # ---- HTTP: large bodies without a token ----------------------------------
    base_h = rss_kb(srv.pid)
    conns = []
    for i in range(20):
        c = socket.create_connection(("127.0.0.1", HP))
        c.sendall(b"POST /gw/v1/measurements HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 16000000\r\n\r\n")
        c.setblocking(False)
        conns.append(c)
    chunk = b" " * 65536
    cut = [False] * 20
    answered = [False] * 20
    answers = [b""] * 20
    dead = [False] * 20
    sent = [0] * 20
    peak = base_h
    end = time.time() + 5
    while time.time() < end and not all(cut):
        for i, c in enumerate(conns):
            if cut[i]:
                continue
            try:
                # never the whole body: a server that reads it all would answer
                if not dead[i] and sent[i] + len(chunk) < 16000000:
                    sent[i] += c.send(chunk)
            except BlockingIOError:
                pass
            except OSError:
                dead[i] = True  # the server stopped reading: what did it answer?
            try:
                got = c.recv(65536)
                if got == b"":
                    cut[i] = True
                else:
                    answered[i] = True
                    answers[i] += got
            except BlockingIOError:
                pass
            except OSError:
                cut[i] = True
        peak = max(peak, rss_kb(srv.pid))
        time.sleep(0.01)
    print("slow bodies: %d of 20 cut, %d answered, RSS peak %d kB (base %d), sent %s" %
          (sum(cut), sum(answered), peak, base_h, sent))
    # answered 401 E2001 while the body streams, the rest read and dropped
    # (at most 1 MiB, 2 s: api/gwif_http.c LINGER_*), then closed: the client
    # reads the answer instead of a reset
    check("http: 20 connections sending 16 MB bodies without a token are answered 401 E2001 and closed within 5 s "
          "(h2o alone waits 10 s)",
          all(cut) and all(a.startswith(b"HTTP/1.1 401 ") and b"E2001" in a and b"Connection: close" in a
                           for a in answers), (sum(cut), sum(answered), [a[:40] for a in answers if a][:3]))
    rss_check("http: RSS stays bounded meanwhile (< +%d kB)" % RSS_GROWTH_KB, peak - base_h)
    for c in conns:
        c.close()
    gw = srtest.Api(HP)
    st, b = gw.call("POST", "/gw/v1/sessions", {"operatorId": OP, "gatewayId": "SIM0008", "secret": "sim-secret-SIM0008"})
    check("http: a gateway logs in", st == 201, (st, b))
    gw.token = b["token"] if st == 201 else None
    body = ('{"header":{"messageType":"GW_DATA","messageId":"m1","timestamp":"2026-11-22T00:00:00.000Z"},'
            '"body":{"values":[' + ",".join('{"dataId":"NOPE%d","timestamp":"2026-11-22T00:00:00.000Z","value":1}' % i
                                           for i in range(4000)) + "]}}")
    st, b = gw.call("POST", "/gw/v1/measurements", body)
    check("http: a body of %d kB with a live token is read and answered (not cut)" % (len(body) // 1024),
          st in (200, 400, 422), (st, str(b)[:200]))

    # ---- HTTP: the body budget of all connections together -------------------
    # 6 connections with a live token each send 320 kB of a 4 MB body: 1.9 MB
    # held in all, over body_budget (1 MB): the largest are cut until under
    bconns = []
    for i in range(6):
        c = socket.create_connection(("127.0.0.1", HP))
        bconns.append(c)
        try:  # the guard may cut it while it sends
            c.sendall(b"POST /gw/v1/measurements HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                      gw.token.encode() + b"\r\nContent-Length: 4000000\r\n\r\n" + b" " * 327680)
        except OSError:
            pass
    gone, said = closed_among(bconns, 5.0, answers=True)
    print("body budget: %d of 6 cut" % len(gone))
    check("http: over body_budget the connections holding the most are cut (at least 3 of 6), the rest kept",
          3 <= len(gone) < 6, len(gone))
    # their bodies still streaming: each is answered 429 E9002 with Retry-After
    # before the close (a lingering close, not a reset)
    check("http: a connection cut over body_budget is answered 429 E9002 with Retry-After first",
          gone and all(said.get(c, b"").startswith(b"HTTP/1.1 429 ") and b"E9002" in said[c] and
                       b"Retry-After: 1" in said[c] for c in gone), [said.get(c, b"")[:60] for c in gone])
    for c in bconns:
        c.close()
    log = open(os.path.join(T, "server.log")).read()
    check("http: the cuts are logged", "over body_budget" in log)

    # ---- HTTP: per-address connections ---------------------------------------
    held_conns = []
    for i in range(23):  # the Api connection above is the 24th
        held_conns.append(socket.create_connection(("127.0.0.1", HP)))
    extra = socket.create_connection(("127.0.0.1", HP))
    check("http: a connection over max_connections_per_address is closed at once", closed_by_server(extra, 1.0))
    extra.close()
    other = socket.socket()
    other.bind(("127.0.0.2", 0))
    other.connect(("127.0.0.1", HP))
    other.sendall(b"GET /gw/v1/nothing HTTP/1.1\r\nHost: x\r\n\r\n")
    other.settimeout(5)
    try:
        got = other.recv(100)
    except OSError:
        got = b""
    check("http: another address still gets an answer", got.startswith(b"HTTP/1.1 "), got)
    other.close()
    for c in held_conns:
        c.close()
    gw.c.close()

    # ---- HTTP: pipelined requests, answers never read ------------------------
    time.sleep(0.2)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", HP))
    req = b"GET /gw/v1/nothing HTTP/1.1\r\nHost: x\r\n\r\n" * 1000
    base_p = rss_kb(srv.pid)
    closed, peak = flood_without_reading(s, req, FLOOD_S, srv.pid)
    print("pipelined non-reader: closed=%s RSS peak %d kB" % (closed, peak))
    check("http: a client that pipelines requests and never reads the answers is cut", closed)
    rss_check("http: RSS stays bounded while the answers pile up (< +%d kB)" % RSS_GROWTH_KB, peak - base_p)
    s.close()
    check("the server is still running", srv.poll() is None)
    # a clean stop: exit 0 (under ASan this is where leaks are reported)
    srv.send_signal(signal.SIGTERM)
    try:
        rc = srv.wait(60)
    except subprocess.TimeoutExpired:
        rc = None
    tail = open(os.path.join(T, "server.log")).read()[-2000:]
    check("the server stops cleanly on SIGTERM (exit 0, no sanitizer report)",
          rc == 0 and "Sanitizer" not in tail, (rc, tail[-500:]))
except Exception as e:  # a crash of the test itself is a failure, with the log
    import traceback
    traceback.print_exc()
    check("no exception in the test", False, repr(e))
srtest.finish(check, T, procs)
