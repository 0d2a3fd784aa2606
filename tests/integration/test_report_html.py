#!/usr/bin/python3
"""tests/integration/test_report_html.py -- the incident report's HTML page
(issue #18, R-RE-4; api/report.c, docs/incident-report.md) rendered by
headless Chromium (Debian's `chromium`, scripts/deps.sh), with no network:

 1. A history: a set-up sheet whose facility is named
    <script>alert(1)</script>, a gateway that connects, sends values of its
    three points (timestamps in the window) and leaves.
 2. `suiro report incident --format html` and `--format json` of the window.
 3. Chromium loads the page (file://, every network request refused:
    --host-resolver-rules, a dead proxy) and dumps the DOM after layout:
    the page rendered (its title, every section), the facility's name is
    text (no <script> element), each chart's values (data-values, its
    <desc>) equal the values of the window in the JSON report, and its
    polyline has one vertex per value; the page names no URL.
 4. Chromium's screenshot of it is a PNG of the window's size that is not
    blank (more than a few colours). With SR_REPORT_SCREENSHOT=FILE set, it
    is copied there (how docs/img/incident-report.png is made).
Without chromium installed the test says so and fails (scripts/deps.sh
installs it). usage: test_report_html.py SUIRO_BIN"""
import html.parser
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib

BIN = sys.argv[1]
T = tempfile.mkdtemp(prefix="suiro-reporthtml-")
D = os.path.join(T, "data")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from srtest import Checks, RawGw, finish, gw_envelope, gwsim_sheet, import_sheet, start_server, stop_server  # noqa: E402

check = Checks()
procs = []
EVIL = "<script>alert(1)</script>"


def rfc(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % int((t % 1) * 1000)


def chromium(*args):
    """chromium headless on a file, its own profile, no network: (exit code, stdout)"""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=" + os.path.join(T, "profile"),
           "--no-first-run", "--disable-extensions", "--disable-background-networking", "--disable-sync",
           "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9", "--hide-scrollbars"] + list(args)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=dict(os.environ, HOME=T))
    return r.returncode, r.stdout


class Dom(html.parser.HTMLParser):
    """what the test reads back from the DOM Chromium dumped"""

    def __init__(self):
        super().__init__()
        self.sections, self.charts, self.scripts, self.urls = [], [], 0, []
        self.title, self._in, self.text = "", None, []
        self._chart = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script":
            self.scripts += 1
        for k in ("src", "href"):
            if k in a and not a[k].startswith("#"):
                self.urls.append(a[k])
        if tag == "section" and "id" in a:
            self.sections.append(a["id"])
        if tag == "figure" and "chart" in a.get("class", ""):
            self._chart = {"id": a.get("data-data-id"), "values": json.loads(a.get("data-values", "null")),
                           "mode": a.get("data-mode"), "desc": "", "vertices": None}
            self.charts.append(self._chart)
        if tag == "polyline" and self._chart is not None:
            self._chart["vertices"] = len(a.get("points", "").split())
        self._in = tag

    def handle_endtag(self, tag):
        if tag == "figure":
            self._chart = None
        self._in = None

    def handle_data(self, data):
        if self._in == "title" and not self.title:
            self.title = data
        if self._in == "desc" and self._chart is not None:
            self._chart["desc"] += data
        self.text.append(data)


def png_info(path):
    """(width, height, distinct colours in a sample of rows) of an 8-bit RGB(A) PNG"""
    b = open(path, "rb").read()
    assert b[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, w, h, ctype = 8, b"", 0, 0, 2
    while pos < len(b):
        n, typ = struct.unpack(">I4s", b[pos:pos + 8])
        data = b[pos + 8:pos + 8 + n]
        if typ == b"IHDR":
            w, h, depth, ctype = struct.unpack(">IIBB", data[:10])
        elif typ == b"IDAT":
            idat += data
        pos += 12 + n
    raw = zlib.decompress(idat)
    bpp = 4 if ctype == 6 else 3
    stride = 1 + w * bpp
    colours = set()
    prev = bytearray(w * bpp)
    for y in range(h):  # undo the filters (PNG spec 9), keep a sample of pixels
        f, line = raw[y * stride], bytearray(raw[y * stride + 1:(y + 1) * stride])
        for i in range(len(line)):
            a = line[i - bpp] if i >= bpp else 0
            up = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + up) & 255
            elif f == 3:
                line[i] = (line[i] + (a + up) // 2) & 255
            elif f == 4:
                p = a + up - c
                pa, pb, pc = abs(p - a), abs(p - up), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else up if pb <= pc else c)) & 255
        if y % 7 == 0:
            for x in range(0, w, 5):
                colours.add(bytes(line[x * bpp:x * bpp + 3]))
        prev = line
    return w, h, len(colours)


try:
    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        raise RuntimeError("chromium is not installed (scripts/deps.sh installs it)")
    t0 = time.time() - 0.001
    subprocess.run([BIN, "init", D], check=True, capture_output=True)
    sheet = gwsim_sheet(BIN, 1, 3).replace("SF1,Simulated plant", "SF1," + EVIL)
    check("the sheet names the facility with a script", EVIL in sheet)
    import_sheet(BIN, D, os.path.join(T, "sim.csv"), sheet)
    server, ports = start_server(BIN, D, os.path.join(T, "server.log"))
    procs.append(server)
    gw = RawGw(ports["mqtt"], "sim", "SIM0001", "sim-secret-SIM0001")
    check("the gateway connects", gw.connack == 0, gw.connack)
    sent = {}
    base = int(time.time() * 1000)
    for k in range(6):  # 6 messages, one value of each point, 200 ms apart
        vals = []
        for i, dp in enumerate(("SP0001_01", "SP0001_02", "SP0001_03")):
            v = round(10 * (i + 1) + 5 * math.sin(k + i) + k * 0.25, 2)
            ts = base + k * 200
            sent.setdefault(dp, []).append([ts, v])
            vals.append({"dataId": dp, "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts // 1000)) +
                         ".%03dZ" % (ts % 1000), "value": v})
        rc = gw.publish_wait("data/measurements", gw_envelope("GW_MEASUREMENTS", "m%d" % k, {"values": vals}))
        check("values message %d acknowledged" % k, rc == 0, rc)
    gw.close()
    stop_server(server)
    t1 = max(time.time(), (base + 1000) / 1000 + 0.002)  # after the last value's timestamp
    win = ["--from", rfc(t0), "--to", rfc(t1), "--operator", "sim"]
    page, out = os.path.join(T, "report.html"), os.path.join(T, "report.json")
    # the gateway's points are involved only through a filter here: ask for them by name
    r = subprocess.run([BIN, "report", "incident", D] + win + ["--point", "SP0001_01", "--point", "SP0001_02",
                                                                "--point", "SP0001_03", "--format", "html", "-o", page],
                       capture_output=True, text=True)
    r2 = subprocess.run([BIN, "report", "incident", D] + win + ["--point", "SP0001_01", "--point", "SP0001_02",
                                                                 "--point", "SP0001_03", "-o", out],
                        capture_output=True, text=True)
    check("the report of the gateway's three points as HTML and as JSON", r.returncode == 0 and r2.returncode == 0,
          (r.stderr, r2.stderr))
    js = json.load(open(out))
    series = {v["dataId"]: v for v in js["values"]["items"]}
    check("the JSON has the three points' values, those the gateway sent (raw)",
          sorted(series) == sorted(sent) and
          all(s["mode"] == "raw" and s["total"] == 6 and s["values"] == sent[d] for d, s in series.items()),
          (json.dumps(js["values"])[:600], sent))
    check("the JSON names the facility as it is (its change)",
          any(c["target"] == "facility:SF1" and c["detail"] == EVIL for c in js["changes"]["items"]),
          js["changes"]["items"][:3])

    rc, dom = chromium("--dump-dom", "file://" + page)
    check("chromium renders the page (exit 0, a DOM)", rc == 0 and "</html>" in dom, (rc, dom[:200]))
    p = Dom()
    p.feed(dom)
    check("the DOM after layout: the title and every section",
          p.title.startswith("Incident report") and
          p.sections == ["timeline", "values", "connections", "requests", "controls", "alarms", "refusals", "changes"],
          (p.title, p.sections))
    check("the facility's name with a script is text: no script element, the name shown",
          p.scripts == 0 and any(EVIL in t for t in p.text), p.scripts)
    check("the page names no URL", p.urls == [], p.urls)
    check("one chart per point", sorted(c["id"] for c in p.charts) == sorted(series), [c["id"] for c in p.charts])
    for c in p.charts:
        want = [[v[0], v[1]] for v in series.get(c["id"], {}).get("values", [])]
        check("chart %s: its values are the window's values of the JSON report" % c["id"],
              c["values"] == want and json.loads(c["desc"]) == want and c["mode"] == "raw", (c, want))
        check("chart %s: one vertex of its line per value" % c["id"], c["vertices"] == len(want), c["vertices"])

    shot = os.path.join(T, "report.png")
    rc, _ = chromium("--screenshot=" + shot, "--window-size=1100,1400", "file://" + page)
    ok = rc == 0 and os.path.exists(shot)
    w, h, colours = png_info(shot) if ok else (0, 0, 0)
    check("the screenshot: a 1100x1400 PNG, not blank", ok and (w, h) == (1100, 1400) and colours > 8,
          (rc, w, h, colours))
    if ok and os.environ.get("SR_REPORT_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["SR_REPORT_SCREENSHOT"])
except Exception as e:  # noqa: BLE001
    check.failed(e)
finish(check, T, procs)
