#!/usr/bin/python3
"""tests/integration/test_audit_verify.py -- `suiro audit verify DIR` with the
real `suiro` (issue #18, R-SE-5, R-RE-3; docs/audit.md "Checking a whole
directory"):

 1. A served directory (gwsim writing, a checkpoint every second) passes,
    with no key, read-only, while the server runs; and again once stopped.
 2. Each tamper of a stopped copy fails (exit 1) naming the first broken
    record (its seq, segment file and block offset, computed here from the
    segment's bytes) and the checkpoint that disproves it (the smallest tree
    covering the broken block):
    a. a flipped byte in a block's stored payload in the middle of the log;
    b. the segment's tail cut at a block boundary, before a checkpoint's
       last block (checked against the auditor's kept notes);
    c. a checkpoint note re-signed with another key (--checkpoints FILE);
    d. a rewritten log: a byte flipped and every CRC and the hash chain
       recomputed after it, so that `suiro log verify` passes -- only the
       signed checkpoint disproves it.
 3. A backup (`suiro backup`) passes; a copy of it with a flipped byte fails.
usage: test_audit_verify.py SUIRO_BIN"""
import base64
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

BIN = sys.argv[1]
HERE = os.path.dirname(os.path.abspath(__file__))
T = tempfile.mkdtemp(prefix="suiro-averify-")
D = os.path.join(T, "data")
sys.path.insert(0, HERE)
from srtest import Checks, finish, gwsim_sheet, import_sheet, start_server, stop_server, wait_until  # noqa: E402

check = Checks()
server = None

# ---- the log's bytes (docs/format.md), to tamper and to know where --------

_CRC = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ (0x82F63B78 if _c & 1 else 0)
    _CRC.append(_c)


def crc32c(b):
    c = 0xFFFFFFFF
    for x in b:
        c = _CRC[(c ^ x) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def segments(d):
    ld = os.path.join(d, "log")
    return [os.path.join(ld, n) for n in sorted(os.listdir(ld)) if n.endswith(".seg")]


def blocks(path):
    """[(offset, first_seq, count, stored_len)] of a segment file"""
    b = open(path, "rb").read()
    off, out = 64, []
    while off + 96 <= len(b):
        first, count = struct.unpack_from("<QI", b, off + 8)
        sl = struct.unpack_from("<I", b, off + 24)[0]
        out.append((off, first, count, sl))
        off += 96 + sl
    return out


def all_blocks(d):
    """[(segment path, offset, first_seq, count, stored_len)] in log order: leaf i is the i-th"""
    return [(p,) + blk for p in segments(d) for blk in blocks(p)]


def block_hash(hdr88, payload):
    return hashlib.sha256(hdr88 + hashlib.sha256(payload).digest()).digest()


def flip(d, leaf, rechain=False):
    """flip the last stored byte of block `leaf` (its tag or its last record
    byte); with rechain, recompute its CRCs and the chain after it"""
    segs = segments(d)
    data = {p: bytearray(open(p, "rb").read()) for p in segs}
    bl = all_blocks(d)
    p, off, first, count, sl = bl[leaf]
    data[p][off + 96 + sl - 1] ^= 0x5A
    if rechain:
        prev = None
        for p2 in segs:
            b = data[p2]
            if prev is not None:  # the segment's anchor, and its header's CRC
                b[24:56] = prev
                b[60:64] = struct.pack("<I", crc32c(bytes(b[0:60])))
            for (_, o, _, _, s) in [x for x in bl if x[0] == p2]:
                if prev is not None:
                    b[o + 56:o + 88] = prev
                pay = bytes(b[o + 96:o + 96 + s])
                b[o + 88:o + 92] = struct.pack("<I", crc32c(pay))
                b[o + 92:o + 96] = struct.pack("<I", crc32c(bytes(b[o:o + 92])))
                prev = block_hash(bytes(b[o:o + 88]), pay)
    for p2 in segs:
        with open(p2, "wb") as f:
            f.write(data[p2])
    return first, os.path.basename(p), off


def decodable_flip(d, leaf):
    """flipping block leaf's last byte leaves it readable without a key: its
    last section is sealed (not opened without the key) or stored as is
    (the byte is a record's; `log verify` does not decode events)"""
    p, off, _, _, sl = all_blocks(d)[leaf]
    b = open(p, "rb").read()
    o, last = off + 96, None
    while o < off + 96 + sl:
        last = (b[o + 4], b[o + 5])
        o += 32 + struct.unpack_from("<I", b, o + 16)[0]
    return last is not None and (last[0] == 1 or not last[1] & 1)


def chain_ok(d):
    """this file's reading of the chain is the log's (so the rewrite is a real one)"""
    prev = None
    for p in segments(d):
        b = open(p, "rb").read()
        for (o, _, _, s) in blocks(p):
            if prev is not None and b[o + 56:o + 88] != prev:
                return False
            prev = block_hash(b[o:o + 88], b[o + 96:o + 96 + s])
    return True


# ---- the command ---------------------------------------------------------

def averify(d, *extra):
    r = subprocess.run([BIN, "audit", "verify", d] + list(extra), capture_output=True, text=True, timeout=120)
    return r.returncode, r.stdout, r.stderr


def averify_json(d, *extra):
    rc, out, err = averify(d, "--json", *extra)
    try:
        return rc, json.loads(out.strip().splitlines()[-1]), err
    except (ValueError, IndexError):
        return rc, {}, err


def notes(d):
    """the signed notes of the log's CheckpointEvents, by size (what an auditor kept)"""
    r = subprocess.run([BIN, "replay", d], capture_output=True, text=True, timeout=60)
    out = []
    for ln in r.stdout.splitlines():
        ev = json.loads(ln)
        if "checkpoint" in ev:
            out.append((ev["checkpoint"]["tree_size"], ev["checkpoint"]["note"]))
    return sorted(out)


def covering(sizes, leaf):
    """the smallest checkpoint's size whose tree holds leaf"""
    return min(s for s in sizes if s > leaf)


def names(err, seq, seg, off, size):
    return ("record %d" % seq in err and "segment %s offset %d" % (seg, off) in err
            and "disproved by the checkpoint of tree size %d " % size in err)


def copy(name):
    p = os.path.join(T, name)
    shutil.copytree(D, p, ignore=shutil.ignore_patterns("LOCK"))
    return p


try:
    subprocess.run([BIN, "init", D], check=True, capture_output=True)
    import_sheet(BIN, D, os.path.join(T, "sim.csv"), gwsim_sheet(BIN, 2, 5))
    cfg = os.path.join(T, "suiro.ini")
    with open(cfg, "w") as f:
        f.write("[checkpoint]\ninterval_s = 1\n[engine]\nzstd_level = 0\n")  # records stored as they are: a flipped byte stays decodable
    server, ports = start_server(BIN, D, os.path.join(T, "server.log"),
                                 extra=["--config", cfg, "--data", D, "--mqtt", "127.0.0.1:0", "--http",
                                        "127.0.0.1:0"], until="mqtt")
    # 1. writes in rounds, each followed by a checkpoint (bounded waits on the count)
    for i in range(4):
        r = subprocess.run([BIN, "gwsim", "run", "--port", str(ports["mqtt"]), "--gateways", "2", "--points", "5",
                            "--batch", "10", "--messages", "15", "--seed", str(i + 1)], capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        wait_until(lambda: averify_json(D)[1].get("checkpoints", 0) >= i + 1, timeout=20, step=0.2)
    rc, j, err = averify_json(D)
    check("a served directory passes, no key, the server running", rc == 0 and j.get("verdict") == "ok"
          and j.get("checkpoints_checked", 0) >= 4 and j["checkpoints_checked"] == j["checkpoints"], (rc, j, err))
    check("stop", stop_server(server) == 0)
    rc, out, err = averify(D)
    check("the stopped directory passes, its summary names the last checkpoint",
          rc == 0 and out.startswith("ok: ") and "last checkpoint: tree size" in out, (rc, out, err))
    kept = notes(D)
    sizes = [s for s, _ in kept]
    check("several checkpoints of different sizes", len(set(sizes)) >= 3, sizes)
    notes_file = os.path.join(T, "kept.notes")
    with open(notes_file, "w") as f:
        f.write("\n".join(n for _, n in kept))
    rc, j, err = averify_json(D, "--checkpoints", notes_file)
    check("the kept notes hold too", rc == 0 and j.get("checkpoints_checked") == 2 * len(kept), (rc, j, err))
    check("this test reads the chain as the log has it", chain_ok(D))
    nleaves = len(all_blocks(D))
    mid = sorted(sizes)[len(sizes) // 2] - 2  # a block in the middle, below a checkpoint's size

    # 2a. a flipped payload byte in the middle
    d = copy("flip")
    seq, seg, off = flip(d, mid)
    rc, out, err = averify(d, "--checkpoints", notes_file)
    check("a flipped payload byte fails naming the record, its segment and offset, and the checkpoint",
          rc == 1 and names(err, seq, seg, off, covering(sizes, mid)), (rc, err))

    # 2b. the tail cut at a block boundary before the last checkpoints' blocks
    d = copy("cut")
    bl = all_blocks(d)
    keep = sorted(sizes)[-2] - 3
    p, o = bl[keep][0], bl[keep][1]
    check("one segment to cut", all(b[0] == p for b in bl[keep:]))
    with open(p, "r+b") as f:
        f.truncate(o)
    rc, out, err = averify(d, "--checkpoints", notes_file)
    last_kept = bl[keep - 1]
    check("a cut tail fails naming the missing records after the last block and the checkpoint",
          rc == 1 and "are missing (a cut tail)" in err and "record %d" % (bl[keep][2]) in err
          and "segment %s offset %d" % (os.path.basename(last_kept[0]), last_kept[1]) in err
          and "disproved by the checkpoint of tree size %d " % covering(sizes, keep) in err, (rc, err))

    # 2c. a checkpoint re-signed with another key (the platform's key hash kept)
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    size0, note0 = kept[len(kept) // 2]
    body = note0[:note0.index("\n\n") + 1]
    sigline = note0[note0.index("\n\n") + 2:]
    name, b64 = sigline.split(" ")[1], sigline.split(" ")[2].strip()
    khash = base64.b64decode(b64)[:4]
    other = ec.generate_private_key(ec.SECP256R1())
    forged = body + "\n\u2014 %s %s\n" % (name, base64.b64encode(khash + other.sign(body.encode(),
                                                                                     ec.ECDSA(hashes.SHA256())))
                                         .decode())
    ff = os.path.join(T, "forged.notes")
    with open(ff, "w") as f:
        f.write(forged)
    rc, out, err = averify(D, "--checkpoints", ff)
    check("a checkpoint re-signed with another key fails naming it",
          rc == 1 and "signature does not verify" in err and "forged.notes note #1" in err
          and "disproved by the checkpoint of tree size %d " % size0 in err, (rc, err))
    rc, out, err = averify(D, "--cert", os.path.join(T, "no-such-cert.pem"))
    check("a certificate that cannot be read: unreadable (4), named", rc == 4 and "no-such-cert.pem" in err, (rc, err))

    # 2d. the rewritten log: its chain recomputed, `log verify` passes, the
    # checkpoint does not. The block changed is the first after a checkpoint's
    # tree (so that the checkpoints before it hold and the next disproves it).
    d = copy("rewrite")
    mid = next(s for s in sorted(set(sizes))[1:-1] if decodable_flip(d, s))
    seq, seg, off = flip(d, mid, rechain=True)
    lv = subprocess.run([BIN, "log", "verify", d], capture_output=True, text=True, timeout=60)
    check("the rewritten log's chain verifies (`log verify` alone passes)", lv.returncode == 0 and chain_ok(d),
          lv.stdout + lv.stderr)
    rc, out, err = averify(d)
    print(err, end="")
    check("the signed checkpoint disproves the rewritten log: the record, its segment and offset named",
          rc == 1 and names(err, seq, seg, off, covering(sizes, mid)), (rc, err))
    rc, out, err = averify(d, "--checkpoints", notes_file)
    check("and so do the auditor's kept notes", rc == 1 and "disproved by the checkpoint of tree size %d "
          % covering(sizes, mid) in err, (rc, err))
    rc, j, err = averify_json(d)
    check("--json: verdict broken, the record and the checkpoint", rc == 1 and j.get("verdict") == "broken"
          and j.get("broken", {}).get("seq") == seq and j.get("broken", {}).get("leaf") == mid
          and j.get("checkpoint", {}).get("tree_size") == covering(sizes, mid), (rc, j))

    # 3. a backup and its tampered copy
    dest = os.path.join(T, "backups")
    r = subprocess.run([BIN, "backup", D, dest], capture_output=True, text=True, timeout=120)
    check("backup", r.returncode == 0, r.stderr)
    bk = [os.path.join(dest, n) for n in os.listdir(dest) if not n.startswith(".")]
    check("one backup", len(bk) == 1, bk)
    rc, out, err = averify(bk[0])
    check("the backup passes", rc == 0 and out.startswith("ok: "), (rc, out, err))
    bt = os.path.join(T, "backup-tampered")
    shutil.copytree(bk[0], bt)
    seq, seg, off = flip(bt, mid)
    rc, out, err = averify(bt, "--checkpoints", notes_file)
    check("the backup's tampered copy fails naming the record and the checkpoint",
          rc == 1 and names(err, seq, seg, off, covering(sizes, mid)), (rc, err))
    rc, out, err = averify(D)
    check("the directory (its backup's event added) still passes", rc == 0 and nleaves < len(all_blocks(D)),
          (rc, out, err))
except Exception as e:  # noqa: BLE001
    check.failed(e)
finish(check, T, [server])
