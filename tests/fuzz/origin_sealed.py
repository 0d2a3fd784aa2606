#!/usr/bin/python3
"""tests/fuzz/origin_sealed.py -- write tests/fuzz/origin/sealed.bin: the
corpus's snapshot.bin sealed as a stream payload (api/cluster_seal.h, the
bytes in docs/keys.md "Cluster: stream keys") under fuzz_origin's fixed
stream key ("sim", data, epoch 1, no rotation; 32 bytes 0x22) for its fixed
associated data (partition 0, operator sim, kind measurements, node fz,
seq 1). Written here from the layout alone, with Python's `cryptography`
(not suiro's code), so the corpus also pins the layout: fuzz_origin opens it
only if both agree. usage: origin_sealed.py [OUT]"""
import hashlib
import os
import struct
import sys

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

HERE = os.path.dirname(os.path.abspath(__file__))


def key_id(op, cls, epoch, period):
    h = hashlib.sha256(b"suiro-stream-kid-v1\0" + op + b"\0" + bytes([cls]) + struct.pack("<II", epoch, period))
    return struct.unpack("<Q", h.digest()[:8])[0] or 1


def seal(key, kid, cls, part, op, kind, node, seq, plain, nonce):
    hdr = b"SRS1" + struct.pack("<QH", kid, 1) + nonce
    ad = (b"suiro-stream-v1\0" + hdr + struct.pack("<IB", part, cls) + bytes([len(op)]) + op + bytes([len(kind)]) +
          kind + bytes([len(node)]) + node + struct.pack("<Q", seq))
    ct = AESGCM(key).encrypt(nonce, plain, ad)  # ciphertext || tag
    return hdr + ct


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "origin", "sealed.bin")
    plain = open(os.path.join(HERE, "origin", "snapshot.bin"), "rb").read()
    kid = key_id(b"sim", 1, 1, 0)
    b = seal(b"\x22" * 32, kid, 1, 0, b"sim", b"measurements", b"fz", 1, plain, bytes(range(12)))
    with open(out, "wb") as f:
        f.write(b)
    print("%s: %d bytes, key %016x" % (out, len(b), kid))
