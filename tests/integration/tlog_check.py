#!/usr/bin/python3
"""tests/integration/tlog_check.py -- an independent checker of suiro's signed
checkpoints and proofs (issue #18, docs/audit.md "Checkpoints and proofs").

It imports nothing of suiro: the Python standard library and Debian's
python3-cryptography only, and follows the texts:
  * C2SP signed-note and tlog-checkpoint: the note is the body (origin, tree
    size, base64 root hash, extension lines), a blank line, then signature
    lines "\\u2014 <name> <base64(key hash (4 bytes) || signature)>"; the
    signature covers the body with its last newline. Ed25519 (type 0x01):
    key hash = SHA-256(name || 0x0A || 0x01 || public key)[:4]. ECDSA: key
    hash = SHA-256(DER SubjectPublicKeyInfo)[:4], an ASN.1 DER signature.
  * RFC 9162 section 2.1: leaf hash SHA-256(0x00 || leaf), node hash
    SHA-256(0x01 || left || right); inclusion verification (2.1.3.2) and
    consistency verification (2.1.4.2), step by step.
  * suiro's leaf (docs/audit.md): a log block; leaf data = the block header's
    first 88 bytes || SHA-256 of its stored payload; a record seq is in the
    block whose header says first seq (u64 LE at offset 8) and count (u32 LE
    at offset 16) cover it.

usage:
  tlog_check.py note        KEY.pem NAME NOTE.txt
  tlog_check.py inclusion   KEY.pem NAME NOTE.txt PROOF.json SEQ
  tlog_check.py consistency KEY.pem NAME OLD_NOTE.txt NEW_NOTE.txt PROOF.json
KEY.pem: the platform's certificate or public key. Exit 0: verified (one line
"ok ..."); 1: rejected (one line "rejected: why"); 2: usage.
"""
import base64
import hashlib
import json
import struct
import sys

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519


class Rejected(Exception):
    pass


def sha256(b):
    return hashlib.sha256(b).digest()


def leaf_hash(data):
    return sha256(b"\x00" + data)


def node_hash(left, right):
    return sha256(b"\x01" + left + right)


def load_key(path):
    raw = open(path, "rb").read()
    if b"BEGIN CERTIFICATE" in raw:
        return x509.load_pem_x509_certificate(raw).public_key()
    return serialization.load_pem_public_key(raw)


def key_hash(key, name):
    if isinstance(key, ed25519.Ed25519PublicKey):
        pub = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return sha256(name.encode() + b"\n" + b"\x01" + pub)[:4]
    spki = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return sha256(spki)[:4]


def verify_note(key, name, text):
    """The note's body lines once a signature of key as name verifies."""
    if isinstance(text, str):
        text = text.encode()
    cut = text.rfind(b"\n\n")
    if cut < 0:
        raise Rejected("not a signed note (no blank line before the signatures)")
    body, sigs = text[:cut + 1], text[cut + 2:]
    if not sigs.endswith(b"\n"):
        raise Rejected("the signature lines do not end in a newline")
    want = key_hash(key, name)
    found = False
    for line in sigs[:-1].split(b"\n"):
        if not line.startswith("\u2014 ".encode()):
            raise Rejected("a signature line does not start with an em dash and a space")
        parts = line[len("\u2014 ".encode()):].split(b" ")
        if len(parts) != 2:
            raise Rejected("a signature line is not '<name> <base64>'")
        if parts[0].decode() != name:
            continue
        try:
            blob = base64.b64decode(parts[1], validate=True)
        except ValueError:
            raise Rejected("a signature is not base64")
        if len(blob) < 5 or blob[:4] != want:
            continue
        sig = blob[4:]
        try:
            if isinstance(key, ed25519.Ed25519PublicKey):
                key.verify(sig, body)
            elif isinstance(key, ec.EllipticCurvePublicKey):
                h = hashes.SHA384() if key.curve.key_size == 384 else hashes.SHA256()
                key.verify(sig, body, ec.ECDSA(h))
            else:
                raise Rejected("a key of a type the signed note has no signature type for")
        except InvalidSignature:
            raise Rejected("the signature of %s does not verify" % name)
        found = True
    if not found:
        raise Rejected("no signature line of key %s (key hash %s)" % (name, want.hex()))
    lines = body.decode().split("\n")[:-1]
    if len(lines) < 3:
        raise Rejected("a checkpoint body has an origin, a tree size and a root hash")
    if lines[0] != name:
        raise Rejected("the origin %r is not %r" % (lines[0], name))
    if not lines[1].isdigit() or (lines[1] != "0" and lines[1].startswith("0")):
        raise Rejected("the tree size %r is not a decimal number" % lines[1])
    root = base64.b64decode(lines[2], validate=True)
    if len(root) != 32:
        raise Rejected("the root hash is not 32 bytes")
    return int(lines[1]), root, lines[3:]


def verify_inclusion(index, size, leaf, path, root):
    """RFC 9162 2.1.3.2."""
    if index >= size:
        raise Rejected("leaf index %d is not below tree size %d" % (index, size))
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            raise Rejected("the inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise Rejected("the inclusion proof is too short")
    if r != root:
        raise Rejected("the inclusion proof does not lead to the root")


def verify_consistency(first, second, first_hash, second_hash, path):
    """RFC 9162 2.1.4.2."""
    if first == second:
        if path or first_hash != second_hash:
            raise Rejected("equal sizes need an empty proof and equal roots")
        return
    if first == 0 or first > second:
        raise Rejected("need 0 < first <= second")
    if not path:
        raise Rejected("an empty consistency proof")
    path = list(path)
    if first & (first - 1) == 0:
        path.insert(0, first_hash)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise Rejected("the consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise Rejected("the consistency proof is too short")
    if fr != first_hash:
        raise Rejected("the consistency proof does not lead to the old root")
    if sr != second_hash:
        raise Rejected("the consistency proof does not lead to the new root")


def hexes(xs):
    try:
        out = [bytes.fromhex(x) for x in xs]
    except (TypeError, ValueError):
        raise Rejected("a proof node is not hex")
    if any(len(x) != 32 for x in out):
        raise Rejected("a proof node is not 32 bytes")
    return out


def main(argv):
    if len(argv) < 4:
        print(__doc__.strip().split("\n\n")[-2], file=sys.stderr)
        return 2
    what, key, name = argv[1], load_key(argv[2]), argv[3]
    try:
        if what == "note" and len(argv) == 5:
            size, root, _ = verify_note(key, name, open(argv[4], "rb").read())
            print("ok note: tree size %d root %s" % (size, root.hex()))
        elif what == "inclusion" and len(argv) == 7:
            size, root, _ = verify_note(key, name, open(argv[4], "rb").read())
            p = json.load(open(argv[5]))
            seq = int(argv[6])
            if p.get("treeSize") != size:
                raise Rejected("the proof is for tree size %s, the checkpoint's is %d" % (p.get("treeSize"), size))
            header = bytes.fromhex(p["header"])
            digest = bytes.fromhex(p["payloadSha256"])
            if len(header) != 88 or len(digest) != 32:
                raise Rejected("the leaf is a block header's 88 bytes and a 32-byte payload digest")
            first, count = struct.unpack_from("<Q", header, 8)[0], struct.unpack_from("<I", header, 16)[0]
            if not first <= seq < first + count:
                raise Rejected("record %d is not in the block of records %d..%d" % (seq, first, first + count - 1))
            verify_inclusion(p["leafIndex"], size, leaf_hash(header + digest), hexes(p["path"]), root)
            print("ok inclusion: record %d in leaf %d of tree size %d" % (seq, p["leafIndex"], size))
        elif what == "consistency" and len(argv) == 7:
            m, r1, _ = verify_note(key, name, open(argv[4], "rb").read())
            n, r2, _ = verify_note(key, name, open(argv[5], "rb").read())
            p = json.load(open(argv[6]))
            if p.get("from") != m or p.get("to") != n:
                raise Rejected("the proof is for sizes %s..%s, the checkpoints' are %d..%d"
                               % (p.get("from"), p.get("to"), m, n))
            verify_consistency(m, n, r1, r2, hexes(p["path"]))
            print("ok consistency: tree size %d is a prefix of tree size %d" % (m, n))
        else:
            print(__doc__.strip().split("\n\n")[-2], file=sys.stderr)
            return 2
    except (Rejected, KeyError, ValueError, TypeError) as e:
        print("rejected: %s" % (e if isinstance(e, Rejected) else "malformed input (%r)" % (e,)))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
