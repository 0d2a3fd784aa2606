#!/usr/bin/python3
"""tests/integration/check_harness.py ROOT -- the integration tests share one
harness (issue #12 section 8): every Python test imports srtest.py and
starts the server through it; only srtest.py makes a paho client (so the
tests run with paho-mqtt 1.6 and 2.x); every shell test sources lib.sh and
starts the server through sr_start; no .pyc is committed (.gitignore);
paho_client makes its client right on paho 1.6 and 2.x.
Prints each breach; exit 1 if there is one. --self-test checks that each
rule catches what it is for."""
import os
import re
import sys

PY_RULES = [
    ("does not import srtest", lambda s: not re.search(r"^(import srtest|from srtest import)", s, re.M)),
    ("makes a paho client itself (use srtest.paho_client)", lambda s: "mqtt.Client(" in s),
    ("starts `suiro serve` itself (use srtest.start_server)",
     lambda s: re.search(r"Popen\(\s*\[[^\]]*[\"']serve[\"']", s) is not None),
    ("defines its own check() (use srtest.Checks)", lambda s: re.search(r"^def check\(", s, re.M) is not None),
    ("picks a port itself (use srtest.free_port)", lambda s: re.search(r"^def free_port\(", s, re.M) is not None),
]
SH_RULES = [
    ("does not source lib.sh", lambda s: not re.search(r"^(\.|source) .*lib\.sh\"?\s*$", s, re.M)),
    ("starts `suiro serve` in the background itself (use sr_start)",
     lambda s: re.search(r"\"\$BIN\" serve [^\n]*&\s*$", s, re.M) is not None),
    ("defines its own check() (lib.sh has it)", lambda s: re.search(r"^check\(\)", s, re.M) is not None),
    ("makes its own temporary directory (use sr_setup)", lambda s: "mktemp -d" in s),
]


def breaches(name, text):
    rules = PY_RULES if name.endswith(".py") else SH_RULES
    return ["%s: %s" % (name, why) for why, bad in rules if bad(text)]


def check(root):
    d = os.path.join(root, "tests", "integration")
    out = []
    for name in sorted(os.listdir(d)):
        if name.startswith("test_") and name.endswith((".py", ".sh")):
            with open(os.path.join(d, name), encoding="utf-8") as f:
                out += breaches(name, f.read())
    ign = open(os.path.join(root, ".gitignore")).read().split()
    if "*.pyc" not in ign or "__pycache__/" not in ign:
        out.append(".gitignore: *.pyc and __pycache__/ must be ignored")
    return out


def self_test():
    good_py = "import srtest\np, ports = srtest.start_server(BIN, D, LOG)\nc = srtest.paho_client('g')\n"
    good_sh = '. "$(dirname "$0")/lib.sh"\nsr_setup x\nsr_start --data "$D"\n'
    bad = {
        "test_a.py": ("import json\n", "does not import srtest"),
        "test_b.py": (good_py + "c = mqtt.Client(client_id='x')\n", "paho client"),
        "test_c.py": (good_py + 'p = subprocess.Popen([BIN, "serve", "--data", D])\n', "suiro serve"),
        "test_d.py": (good_py + "def check(name, cond):\n    pass\n", "check()"),
        "test_e.py": (good_py + "def free_port():\n    pass\n", "port"),
        "test_a.sh": ("set -u\n", "lib.sh"),
        "test_b.sh": (good_sh + '"$BIN" serve --data "$D" > out &\n', "sr_start"),
        "test_c.sh": (good_sh + 'check() { :; }\n', "check()"),
        "test_d.sh": (good_sh + 'T=$(mktemp -d)\n', "sr_setup"),
    }
    ok = not breaches("test_ok.py", good_py) and not breaches("test_ok.sh", good_sh)
    for name, (text, want) in bad.items():
        got = breaches(name, text)
        ok &= len(got) == 1 and want in got[0]
        if not (len(got) == 1 and want in got[0]):
            print("self-test: %s gave %r, want one breach naming %r" % (name, got, want))
    return ok


def paho_adapter_test():
    """srtest.paho_client on both paho APIs (1.6: Client(client_id=...),
    2.x: Client(CallbackAPIVersion.VERSION1, client_id=...)), with a stand-in
    module, since one machine has one paho: the breaches, or []."""
    import types
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import srtest
    out = []
    saved = {k: sys.modules.get(k) for k in ("paho", "paho.mqtt", "paho.mqtt.client")}
    try:
        for v2 in (False, True):
            calls = []
            m = types.ModuleType("paho.mqtt.client")
            m.MQTTv311, m.MQTTv5 = 4, 5
            m.Client = lambda *a, **kw: calls.append((a, kw)) or "client"
            if v2:
                m.CallbackAPIVersion = types.SimpleNamespace(VERSION1="V1", VERSION2="V2")
            pkg, sub = types.ModuleType("paho"), types.ModuleType("paho.mqtt")
            pkg.mqtt, sub.client = sub, m
            sys.modules.update({"paho": pkg, "paho.mqtt": sub, "paho.mqtt.client": m})
            c = srtest.paho_client("gw1", clean_session=False)
            want = ((("V1",) if v2 else ()), {"client_id": "gw1", "protocol": 4, "clean_session": False})
            if c != "client" or calls != [want]:
                out.append("paho %s: Client called as %r, want %r" % ("2.x" if v2 else "1.6", calls, [want]))
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    return out


def main():
    if not self_test():
        print("FAIL: the self-test")
        return 1
    out = paho_adapter_test() + check(sys.argv[1])
    for line in out:
        print("FAIL:", line)
    print("ok: every integration test uses the one harness" if not out else "%d breach(es)" % len(out))
    return 1 if out else 0


if __name__ == "__main__":
    sys.exit(main())
