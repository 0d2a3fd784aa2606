#!/usr/bin/python3
"""tests/integration/test_man.py -- the manual pages are the tables
(api/cli/cmd_man.c): `suiro man` prints suiro(1) from the command table and
`suiro man suiro.ini` prints suiro.ini(5) from SR_CONFIG_KEYS.
  - every command `suiro --help` lists has its section in suiro(1), and every
    option its `suiro CMD --help` lists is in that section;
  - every [section] key `suiro serve --print-config` prints is in
    suiro.ini(5) under its section, with its default;
  - the test build suiro-tabletest (one more command and one more key, added
    through the tables' hooks alone: tests/support/tabletest.h) has them in
    its pages too, with nothing else changed -- so a page cannot drift;
  - the pages the build wrote (build/man, installed by `make install`) are
    what the binary prints;
  - groff renders both with every warning on (-ww) and says nothing; man -l
    reads them; an unknown page is a usage error (2) naming it.
usage: test_man.py SUIRO_BIN TABLETEST_BIN BUILD_DIR"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import srtest  # noqa: E402

BIN, TT, BUILD = (os.path.abspath(a) for a in sys.argv[1:4])
check = srtest.Checks()
T = tempfile.mkdtemp(prefix="suiro-man-")


def run(binary, *args):
    r = subprocess.run([binary] + list(args), capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout, r.stderr


def esc(s):
    """a name as the page writes it (man(7): '-' is a minus, \\-)"""
    return s.replace("-", "\\-")


def leaves(binary):
    """the commands of `suiro --help`: "  NAME ARGS" padded to 24 columns,
    then the doc; the name is its lower-case words"""
    out = run(binary, "--help")[1]
    body = out.split("commands:\n", 1)[1].split("\n\n", 1)[0]
    names = []
    for ln in body.splitlines():
        words = []
        for w in ln[2:26].split():
            if not re.fullmatch(r"[a-z][a-z-]*", w):
                break
            words.append(w)
        names.append(" ".join(words))
    return names


def options(binary, name):
    """the long options of `suiro NAME --help`"""
    out = run(binary, *name.split(), "--help")[1]
    opts = out.split("options:\n", 1)[1].split("\n\n", 1)[0] if "options:\n" in out else ""
    return re.findall(r"--([a-z][a-z0-9-]*)", opts)


def section_of(page, name):
    """the text of `.SS "suiro NAME ..."` up to the next section"""
    m = re.search(r'^\.SS "suiro %s( |\[| \[options\])[^\n]*\n(.*?)(?=^\.S[SH] )' % re.escape(esc(name)), page,
                  re.M | re.S)
    return m.group(2) if m else None


def check_commands(binary, label):
    page = run(binary, "man")[1]
    missing, opt_missing, n = [], [], 0
    for name in leaves(binary):
        sec = section_of(page, name)
        if sec is None:
            missing.append(name)
            continue
        n += 1
        for o in options(binary, name):
            if "\\-\\-" + esc(o) not in sec:
                opt_missing.append("%s --%s" % (name, o))
    check("%s: every command of --help has its section in suiro(1) (%d)" % (label, n), not missing and n >= 20,
          repr(missing))
    check("%s: every option of each command's --help is in its section" % label, not opt_missing,
          repr(opt_missing[:10]))
    return page


def config_keys(binary):
    """(section, key, value) of `suiro serve --print-config`"""
    out = run(binary, "serve", "--print-config")[1]
    sec, keys = None, []
    for ln in out.splitlines():
        m = re.fullmatch(r"\[([a-z_]+)\]", ln)
        if m:
            sec = m.group(1)
            continue
        m = re.fullmatch(r"([a-z_]+) =(?: (.*))?", ln)
        if m and sec:
            keys.append((sec, m.group(1), m.group(2) or ""))
    return keys


def check_keys(binary, label):
    page = run(binary, "man", "suiro.ini")[1]
    sections = {}
    for m in re.finditer(r'^\.SS "\[([a-z_]+)\]"\n(.*?)(?=^\.S[SH] )', page, re.M | re.S):
        sections[m.group(1)] = m.group(2)
    keys = config_keys(binary)
    bad = []
    for sec, key, val in keys:
        body = sections.get(sec, "")
        m = re.search(r"^\\fB%s\\fR\n(.*?)(?=^\.TP|\Z)" % re.escape(key), body, re.M | re.S)
        want = "default: %s." % (val if val else "empty")
        if not m or want.replace("-", "\\-") not in m.group(1) and want not in m.group(1):
            bad.append("[%s] %s" % (sec, key))
    check("%s: every key of --print-config is in suiro.ini(5) under its section, with its default (%d)"
          % (label, len(keys)), not bad and len(keys) >= 50, repr(bad[:10]))
    return page


try:
    rc, p1, err = run(BIN, "man")
    check("suiro man: suiro(1) as roff, exit 0", rc == 0 and p1.startswith(".\\\"") and "\n.TH SUIRO 1 " in p1,
          err)
    rc, p5, err = run(BIN, "man", "suiro.ini")
    check("suiro man suiro.ini: suiro.ini(5), exit 0", rc == 0 and "\n.TH SUIRO.INI 5 " in p5, err)
    check_commands(BIN, "suiro")
    check_keys(BIN, "suiro")
    rc, out, err = run(BIN, "man", "nosuch")
    check("an unknown page: exit 2 naming it", rc == 2 and "nosuch" in err and out == "", err)

    # the test build: one more command, one more key, through the tables alone
    tp1 = check_commands(TT, "suiro-tabletest")
    tp5 = check_keys(TT, "suiro-tabletest")
    sec = section_of(tp1, "tabletest")
    check("suiro-tabletest's page has its extra command with its option",
          sec is not None and "\\-\\-upper" in sec and "prints WORD" in sec)
    check("... and its extra key", '.SS "[tabletest]"\n.TP\n\\fBanswer\\fR\n' in tp5 and "default: 42." in tp5)
    check("... which the product's pages do not have", section_of(p1, "tabletest") is None and "[tabletest]" not in p5)

    # the build's pages are the binary's
    for name, text in (("suiro.1", p1), ("suiro.ini.5", p5)):
        path = os.path.join(BUILD, "man", name)
        built = open(path).read() if os.path.exists(path) else None
        check("build/man/%s is what `suiro man` prints" % name, built == text)

    # groff with every warning: nothing to say
    if shutil.which("groff"):
        for name, text in (("suiro.1", p1), ("suiro.ini.5", p5)):
            r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z"], input=text.encode(), capture_output=True,
                               timeout=60)
            check("groff -man -Tutf8 -ww renders %s without a warning" % name,
                  r.returncode == 0 and r.stderr == b"", r.stderr.decode(errors="replace")[:500])
    else:
        print("skip: groff is not installed (groff-base)")
    if shutil.which("man"):
        path = os.path.join(T, "suiro.ini.5")
        open(path, "w").write(p5)
        r = subprocess.run(["man", "-l", path], capture_output=True, text=True, timeout=60,
                           env=dict(os.environ, MANPAGER="cat", PAGER="cat", MANWIDTH="100"))
        check("man -l reads suiro.ini(5)", r.returncode == 0 and "data_dir" in r.stdout and "SUIRO.INI(5)" in r.stdout,
              r.stderr[:300])
    else:
        print("skip: man is not installed (man-db)")
except Exception as e:  # noqa: BLE001
    check.failed(e)
srtest.finish(check, T, [])
