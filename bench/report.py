#!/usr/bin/env python3
"""bench/report.py -- docs/performance.md from one results file.

usage: python3 bench/report.py RESULTS.jsonl [--out FILE] [--charts DIR] [--no-charts]

RESULTS.jsonl is a file of bench/results/ (bench/run.sh writes one a run: one
JSON object a line, each with a "bench" key). The report has: the run (date,
commit, what ran, what failed its verification), the machine (cores, memory,
kernel, the disk's write+fdatasync latency), the goals at a glance, then one
table per workload, suiro next to each peer with its ratio to it, the goal
beside each figure that has one (met / not met), callgrind instruction
counts, and every line of a kind this script does not know in a generic
table at the end.

Every figure comes from the file and is printed as the benchmark wrote it;
the only numbers computed here are ratios a file lacks (suiro's figure over
a peer's, to 3 decimals, said so under the table) and memory in GiB. The
goals are the issues' targets, hard-coded in GOALS below. The output depends
on the file only (no time of generation), so a test can regenerate the report
from a fixed file and compare (tests/integration/test_bench_report.sh).

Charts (PNG, rendered by gnuplot, Debian package gnuplot-nox) go to
--charts DIR (default: DIR/perf next to --out): ingest rates by system, durable
ingest by message shape and system, and
AP-IF query latency p50/p99 by system and query (under "Charts"), and a chart
per goal, drawn from GOALS (a new goal gets its chart without new code): one
panel per figure a goal is on, a bar per line it applies to, labelled by the
keys that tell those lines apart, green where met and red where not, a
dashed line at the limit; one PNG per section (goals-<section>.png, see
GOAL_SECTIONS) under that section's tables. Without gnuplot, or with
--no-charts, the report says so and has the tables only. Without --out the
report goes to stdout (and no charts are drawn unless --charts is given).
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from decimal import Decimal

sys.dont_write_bytecode = True  # no bench/__pycache__ in the tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlines as bl  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
D = Decimal

PEERS = ["influxdb", "victoriametrics", "redis", "mosquitto"]
QUERIES = ["latest", "day_raw", "day_1m", "series_raw", "series_1m"]
HANDLED = {"run", "machine", "fsync", "log_append", "series_codec", "series_downsample", "engine_ingest",
           "engine_query", "engine_restart", "gw_ingest", "gw_ingest_ratio", "gw_parse", "net_ingest",
           "net_ingest_ratio", "disk_bytes", "restart", "ap_query", "ap_query_ratio", "callgrind", "overload",
           "shape_ingest", "shape_ingest_paced", "shape_ratio", "restart_size", "restart_size_ratio",
           "downsample_year", "sealed_ratio", "cluster_ingest", "cluster_puback", "cluster_takeover",
           "cluster_catchup", "cluster_summary"}
# The message shapes of issue #13 (bench/shape_ingest.sh), in the report's order, and what each is.
SHAPES = ["series", "snapshot", "mixed"]
SHAPE_TEXT = {
    "series": "one data point, many consecutive values per message (the shape `make bench` measured before "
              "issue #13)",
    "snapshot": "one gateway's points × 1 value each, all with one timestamp: a gateway's cycle",
    "mixed": "snapshots, and a backfill of old series worth 1 % of the values",
}
SHAPE_SYSTEMS = ["suiro_mqtt", "suiro_http", "mosquitto", "influxdb", "victoriametrics"]

# The goals of the issues. "where": the lines a goal applies to; "field": the
# figure (_ratio is suiro's figure over this line's system's, see ratios());
# op and limit: the target. Thresholds are targets, not results.
GOAL_CFG = {"size": 100, "batch": 1000, "sync": "always"}
GOALS = [
    dict(id="log_rate", kind="log_append", where=GOAL_CFG, field="rec_per_s", op=">=", limit=D(1500000),
         text="log append ≥ 1.5 M records/s (100 B records, batches of 1,000, sync=always)"),
    dict(id="log_floor", kind="log_append", where=GOAL_CFG, field="ratio_to_floor", op=">=", limit=D("0.8"),
         text="log append ≥ 0.8 × the write+fdatasync floor (same configuration)"),
    dict(id="ingest", kind="engine_ingest", where={}, field="points_per_s", op=">=", limit=D(10000000),
         text="in-process durable ingest ≥ 10 M points/s (sync=always), on every shape (issue #13)"),
    dict(id="index_bpp", kind="engine_ingest", where={}, field="index_b_per_chunk_value", op="<=", limit=D("1.0"),
         text="index ≤ 1.0 B per value in a chunk (engine ingest)"),
    dict(id="log_bpp", kind="engine_ingest", where={}, field="log_b_per_point", op="<=", limit=D("2.5"),
         text="log ≤ 2.5 B/point (engine ingest)"),
    dict(id="disk_index", kind="disk_bytes", where={"system": "suiro"}, field="index_bytes_per_point", op="<=",
         limit=D("1.0"), text="index ≤ 1.0 B/point (bytes on disk)"),
    dict(id="disk_log", kind="disk_bytes", where={"system": "suiro"}, field="log_bytes_per_point", op="<=",
         limit=D("2.5"), text="log ≤ 2.5 B/point (bytes on disk)"),
    dict(id="read_audit", kind="ap_audit_cost_whole_ratio", where={}, field="cost_pct", op="<=", limit=D(5),
         text="the read audit ≤ 5 % of an AP-IF latest request's whole-process instructions (callgrind, paced, "
              "median of runs; issue #18)"),
    dict(id="ckpt_ingest", kind="ckpt_ingest", where={}, field="cost_pct", op="<=", limit=D(3),
         text="signed checkpoints at the default period ≤ 3 % of network ingest (MQTT, gateway snapshots, on/off "
              "interleaved in one run, median rates; issue #18)"),
    dict(id="state_at", kind="state_at", where={"values": 100000000}, field="p99_ms", op="<=", limit=D(1000),
         text="the state at any past T ≤ 1 s (p99 of random T) on a log of 100 M values (bench/state_at.sh; "
              "issue #18)"),
    dict(id="latest", kind="engine_query", where={}, field="latest_per_s", op=">=", limit=D(2000000),
         text="latest value ≥ 2 M lookups/s (engine, 1 thread)"),
    dict(id="downsample", kind="engine_query", where={}, field="downsample_p50_us", op="<=", limit=D(1000),
         text="downsample 1 day of 1 s values to 1 min ≤ 1 ms (p50, engine)"),
    dict(id="downsample_year", kind="downsample_year", where={}, field="engine_p50_ms", op="<=", limit=D(20),
         text="one year of 1 s values (31.5 M) downsampled to 1 h ≤ 20 ms (p50, through the engine; issue #13)"),
    dict(id="net_vm", kind="net_ingest", where={"system": "victoriametrics"}, field="_ratio", op=">=",
         limit=D("1.5"), text="network ingest ≥ 1.5 × VictoriaMetrics"),
    dict(id="net_influx", kind="net_ingest", where={"system": "influxdb"}, field="_ratio", op=">=", limit=D(5),
         text="network ingest ≥ 5 × InfluxDB"),
    dict(id="restart_vm", kind="restart", where={"system": "victoriametrics"}, field="_ratio", op="<=",
         limit=D(1), text="restart time ≤ VictoriaMetrics' (suiro ÷ VictoriaMetrics ≤ 1; suiro's app login timed "
                            "apart, see Restart)"),
    dict(id="ap_latest", kind="ap_query", where={"system": "suiro", "query": "latest"}, field="req_per_s",
         op=">=", limit=D(35000), text="AP-IF latest ≥ 35 k requests/s"),
    dict(id="ap_latest_p99", kind="ap_query", where={"system": "suiro", "query": "latest"}, field="p99_ms",
         op="<=", limit=D("0.3"), text="AP-IF latest p99 ≤ 0.3 ms"),
    dict(id="ap_latest_13", kind="ap_query", where={"system": "suiro", "query": "latest"}, field="req_per_s",
         op=">=", limit=D(80000), text="AP-IF latest ≥ 80 k requests/s (issue #13)"),
    dict(id="ap_latest_p99_13", kind="ap_query", where={"system": "suiro", "query": "latest"}, field="p99_ms",
         op="<=", limit=D("0.2"), text="AP-IF latest p99 ≤ 0.2 ms (issue #13)"),
    dict(id="ap_vm", kind="ap_query", where={"system": "victoriametrics"}, field="_ratio", op=">", limit=D(1),
         text="AP-IF: every query faster than VictoriaMetrics (req/s ratio > 1)"),
    dict(id="ap_influx", kind="ap_query", where={"system": "influxdb"}, field="_ratio", op=">=", limit=D(3),
         text="AP-IF: every query ≥ 3 × InfluxDB (req/s ratio)"),
    dict(id="overload_latest", kind="overload", where={}, field="latest_p99_x_quiet", op="<=", limit=D(3),
         text="under attack, the victim operator's latest-value p99 ≤ 3 × its quiet p99 (floored at 1 ms)"),
    dict(id="overload_puback", kind="overload", where={}, field="puback_p99_x_quiet", op="<=", limit=D(3),
         text="under attack, the victim operator's PUBACK p99 ≤ 3 × its quiet p99 (floored at 1 ms)"),
    dict(id="overload_rss", kind="overload", where={}, field="rss_max_mb", op="<=", limit=D(512),
         text="under attack, the server's RSS ≤ 512 MB"),
    # issue #13: every goal on every shape (per_shape: a shape without a line counts as not met)
    dict(id="shape_vm_mqtt", kind="shape_ratio", where={}, per_shape=True, field="suiro_mqtt_vs_victoriametrics",
         op=">=", limit=D("1.5"), text="every shape: durable ingest over MQTT ≥ 1.5 × VictoriaMetrics"),
    dict(id="shape_vm_http", kind="shape_ratio", where={}, per_shape=True, field="suiro_http_vs_victoriametrics",
         op=">=", limit=D("1.5"), text="every shape: durable ingest over HTTP ≥ 1.5 × VictoriaMetrics"),
    dict(id="shape_influx_mqtt", kind="shape_ratio", where={}, per_shape=True, field="suiro_mqtt_vs_influxdb",
         op=">=", limit=D(5), text="every shape: durable ingest over MQTT ≥ 5 × InfluxDB"),
    dict(id="shape_influx_http", kind="shape_ratio", where={}, per_shape=True, field="suiro_http_vs_influxdb",
         op=">=", limit=D(5), text="every shape: durable ingest over HTTP ≥ 5 × InfluxDB"),
    dict(id="shape_mosquitto", kind="shape_ratio", where={}, per_shape=True, field="msg_per_s_suiro_vs_mosquitto",
         op=">=", limit=D(1), text="every shape: MQTT QoS 1 messages/s ≥ Mosquitto's (suiro ÷ Mosquitto ≥ 1)"),
    dict(id="shape_puback", kind="shape_ratio", where={}, per_shape=True, field="suiro_ack_p99_ms_half_rate",
         op="<=", limit=D(5), text="every shape: PUBACK p99 ≤ 5 ms at half the maximum rate"),
    dict(id="restart_sizes", kind="restart_size_ratio", where={}, per_shape=True, shapes=["series", "snapshot"],
         field="suiro_vs_victoriametrics", op="<=", limit=D(1),
         text="restart ≤ VictoriaMetrics' at every data size (1×, 10×, 100×; bench/restart_sizes.sh, after a "
              "graceful stop)"),
    dict(id="shape_bytes", kind="shape_ratio", where={}, per_shape=True, field="bytes_suiro_vs_victoriametrics",
         op="<=", limit=D(1), text="every shape: bytes on disk, log and index together ≤ VictoriaMetrics' total "
                                   "(suiro ÷ VictoriaMetrics ≤ 1)"),
]
OPS = {">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, "<": lambda a, b: a < b}
SYM = {">=": "≥", "<=": "≤", ">": ">", "<": "<"}


# ---- formatting ------------------------------------------------------------------------------

def md(s):
    return str(s).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def num(v):
    """A value as the file has it; numbers get thousands separators."""
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return format(v, ",")
    if isinstance(v, Decimal):
        return format(v, ",") if v.is_finite() else str(v)
    if isinstance(v, str):
        return md(v)
    return md(bl.fmt_plain(v))


def verify_cell(line):
    v = line.get("verify")
    if v is None:
        return "—"
    if v == "ok":
        return "ok"
    return "**%s**" % md(v) + (" (%s)" % md(line["why"]) if line.get("why") else "")


def table(headers, rows):
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    for r in rows:
        out.append("| " + " | ".join(r) + " |")
    return out


def ratio(a, b):
    """a / b to 3 decimals, or None."""
    if not (bl.is_num(a) and bl.is_num(b)) or b == 0:
        return None
    return (D(a) / D(b)).quantize(D("0.001"))


def gib(kb):
    return (D(kb) / D(1024 * 1024)).quantize(D("0.1")) if bl.is_num(kb) else None


# ---- goals -----------------------------------------------------------------------------------

def matches(line, where):
    return all(line.get(k) == v for k, v in where.items())


def goal_status(goal, value):
    if not bl.is_num(value):
        return None
    return "met" if OPS[goal["op"]](value, goal["limit"]) else "not met"


def with_goals(line, field, value=None):
    """The figure, and beside it every goal that applies to this line and field."""
    v = line.get(field) if value is None else value
    cell = num(v)
    notes = []
    for g in GOALS:
        if g["kind"] == line["bench"] and g["field"] == field and matches(line, g["where"]):
            st = goal_status(g, v)
            notes.append("goal %s %s: %s" % (SYM[g["op"]], num(g["limit"]), "**%s**" % st if st == "not met"
                                             else st or "no figure"))
    return cell + (" (" + "; ".join(notes) + ")" if notes else "")


def label(line):
    keys = [k for k in bl.id_keys(line) if k not in ("type", "data", "sync", "window", "late_bp", "batch")]
    return " ".join("%s=%s" % (k, bl.fmt_plain(line[k])) for k in keys) or line["bench"]


def goals_glance(lines):
    rows = []
    for g in GOALS:
        hits = [l for l in lines if l["bench"] == g["kind"] and matches(l, g["where"])]
        if g.get("per_shape") and hits:  # no goal counts as met on one shape alone
            have = {l.get("shape") for l in hits}
            hits += [{"bench": g["kind"], "shape": sh} for sh in g.get("shapes", SHAPES) if sh not in have]
        vals = [(l, l.get(g["field"])) for l in hits]
        if not vals:
            rows.append([md(g["text"]), "no %s line" % g["kind"], "—"])
            continue
        sts = [goal_status(g, v) for _, v in vals]
        if g.get("per_shape"):
            sts = [st or "not met" for st in sts]  # a shape without the figure is not a shape that met it
        n_met = sum(1 for s in sts if s == "met")
        n_fig = sum(1 for s in sts if s is not None)
        if n_fig == 0:
            status = "no figure"
        elif n_met == n_fig == len(sts):
            status = "met"
        elif n_met == 0:
            status = "**not met**"
        else:
            status = "met by %d of %d" % (n_met, len(sts))
        if len(vals) == 1:
            figs = num(vals[0][1])
        else:
            figs = "; ".join("%s (%s)" % (num(v), md(label(l))) for l, v in vals)
        rows.append([md(g["text"]), figs, status])
    _, res = crypto_rows(lines)
    got = [(w, b, m) for w, b, m in res if m is not None]
    if not got:
        status, figs = "no figure", "no plain + encrypted pair"
    else:
        n_met = sum(1 for _, _, m in got if m)
        status = "met" if n_met == len(res) else "**not met**" if n_met == 0 else "met by %d of %d" % (n_met, len(res))
        figs = "; ".join("%s %% (%s)" % (num(b), md(w.split(" (")[0])) for w, b, _ in got)
    rows.append(["encryption at rest + hash chain cost < %s %% (ingest, restart; vs a plain log)" % num(CRYPTO_LIMIT),
                 figs, status])
    sr = of(lines, "sealed_ratio")
    got = [l for l in sr if l.get("met") is not None]
    if not got:
        status, figs = "no figure", "no sealed_ratio line"
    else:
        n_met = sum(1 for l in got if l.get("met"))
        status = "met" if n_met == len(sr) else "**not met**" if n_met == 0 else "met by %d of %d" % (n_met, len(sr))
        figs = "; ".join("%s %% (%s, %s)" % (num(l.get("cost_pct")), md(l.get("what")), md(l.get("source")))
                         for l in got)
    rows.append(["the sealed index (issue #16) within 10 % of the plain one: ingest, latest, raw range, downsampling "
                 "(sealed ÷ plain − 1, the same run)", figs, status])
    return table(["goal", "figure", "status"], rows)


# ---- ratios: suiro's figure over each peer's ----------------------------------------------------

def ratios(lines):
    """Set line["_ratio"] (suiro / this line's system) on peer lines, from the
    file's ratio lines where they exist, else computed from the two figures;
    return {kind: {"file", "computed"}}: where each table's ratios come from."""
    src = {}

    def first(kind, **where):
        for l in lines:
            if l["bench"] == kind and matches(l, where):
                return l
        return None

    def put(l, value, how):
        l["_ratio"] = value
        src.setdefault(l["bench"], set()).add(how)

    for l in lines:
        kind, system = l["bench"], l.get("system")
        if str(system).startswith("suiro") or kind not in ("net_ingest", "ap_query", "gw_ingest", "restart", "disk_bytes"):
            continue
        key = "suiro_vs_" + str(system)
        if kind == "net_ingest":
            rl, s, field = first("net_ingest_ratio"), first("net_ingest", system="suiro"), "points_per_s"
        elif kind == "ap_query":
            rl = first("ap_query_ratio", query=l.get("query"))
            s, field = first("ap_query", system="suiro", query=l.get("query")), "req_per_s"
        elif kind == "gw_ingest":
            rl, s, field = first("gw_ingest_ratio"), first("gw_ingest", system="suiro"), "steady_msg_per_s"
            if rl is not None and system == "mosquitto" and "ratio" in rl:
                key = "ratio"
        else:  # restart seconds, bytes on disk: no ratio lines
            rl, s = None, first(kind, system="suiro")
            field = "secs" if kind == "restart" else "bytes_per_point"
        if rl is not None and key in rl:
            put(l, rl[key], "file")
        elif s is not None:
            put(l, ratio(s.get(field), l.get(field)), "computed")
    return src


def ratio_note(src, kind, what):
    how = src.get(kind)
    if not how:
        return []
    if how == {"file"}:
        return ["", "suiro ÷ system: %s, from the file's `%s_ratio` lines." % (what, kind)]
    if how == {"computed"}:
        return ["", "suiro ÷ system: %s, computed here from the figures above (3 decimals)." % what]
    return ["", "suiro ÷ system: %s, from the file's `%s_ratio` lines where they have one, else computed here "
                "from the figures above (3 decimals)." % (what, kind)]


def sys_order(s):
    s = str(s)
    return (0, s) if s.startswith("suiro") else (1, "%02d" % PEERS.index(s)) if s in PEERS else (2, s)


# ---- sections --------------------------------------------------------------------------------

def of(lines, kind):
    return [l for l in lines if l["bench"] == kind]


def none_line(kinds):
    return ["No %s line in this file." % " or ".join("`%s`" % k for k in kinds)]


def sec_run(path, lines, bad, charts_note):
    run = of(lines, "run")
    mach = of(lines, "machine")
    r = run[0] if run else {}
    date = r.get("date") or (mach[0].get("date") if mach else None)
    if not date:
        base = os.path.basename(path)
        date = base[:-6] if base.endswith(".jsonl") else base
        date += " (the file's name)"
    out = ["## The run", ""]
    out.append("- results file: `%s` (%d lines)" % (display_path(path), len(lines) + len(bad)))
    out.append("- date: %s" % md(date))
    if r.get("commit"):
        out.append("- commit: `%s`%s" % (md(r["commit"]), " (with uncommitted changes)" if r.get("dirty") else ""))
    else:
        out.append("- commit: not recorded (no `run` line)")
    extra = [k for k in sorted(r) if k not in ("bench", "commit", "date", "dirty")]
    for k in extra:
        out.append("- %s: %s" % (md(k), num(r[k])))
    kinds = {}
    for l in lines:
        kinds[l["bench"]] = kinds.get(l["bench"], 0) + 1
    out.append("- lines: " + ", ".join("%s × %d" % (k, kinds[k]) for k in sorted(kinds)))
    ok = [l for l in lines if l.get("verify") == "ok"]
    failed = [l for l in lines if "verify" in l and l.get("verify") != "ok"]
    missing = sorted({l["bench"] for l in lines if "verify" not in l and l["bench"] not in bl.NO_VERIFY
                      and not l["bench"].endswith("_ratio")})
    out.append("- verification: %d line(s) verified ok, %d FAILED%s" % (
        len(ok), len(failed), "" if not missing else "; no verify field in: " + ", ".join(missing)))
    for l in failed:
        out.append("  - **FAILED**: %s%s" % (md(bl.ident(l)), " — " + md(l["why"]) if l.get("why") else ""))
    for no, why in bad:
        out.append("- line %d skipped: %s" % (no, md(why)))
    out.append("- charts: %s" % charts_note)
    return out


def sec_machine(lines):
    out = ["## Machine", ""]
    mach = of(lines, "machine")
    fs = of(lines, "fsync")
    if not mach and not fs:
        return out + none_line(["machine", "fsync"])
    rows = []
    m = mach[0] if mach else {}
    if mach:
        rows.append(["cores", num(m.get("cores"))])
        mem = m.get("mem_kb")
        rows.append(["memory", "%s kB (%s GiB)" % (num(mem), num(gib(mem))) if bl.is_num(mem) else num(mem)])
        rows.append(["kernel", num(m.get("kernel"))])
        for k in sorted(m):
            if k not in ("bench", "cores", "mem_kb", "kernel", "date"):
                rows.append([md(k), num(m[k])])
    for f in fs:
        what = "disk write+fdatasync (%s × %s B appends in `%s`)" % (num(f.get("n")), num(f.get("size")),
                                                                    md(f.get("dir", "?")))
        rows.append([what, "p50 %s ms, p99 %s ms, mean %s ms, max %s ms; verify %s" % (
            num(f.get("p50_ms")), num(f.get("p99_ms")), num(f.get("mean_ms")), num(f.get("max_ms")),
            verify_cell(f))])
    if not fs:
        rows.append(["disk write+fdatasync", "not measured (no `fsync` line)"])
    return out + table(["what", "value"], rows)


def sec_log(lines):
    out = ["## Log append", "",
           "`bench/log_append`: records appended to `storage/log` (framing, hash chain, optional zstd and "
           "AES-GCM) against the floor: the same bytes with plain write() + fdatasync() per batch.", ""]
    la = of(lines, "log_append")
    if not la:
        return out + none_line(["log_append"])
    head = ["size B", "batch", "sync", "zstd", "enc", "threads", "records", "records/s", "floor records/s",
            "ratio to floor", "replay records/s", "disk B/record", "verify"]

    def row(l):
        # per-record keys (--keys: format version 3 sections) in the enc cell
        enc = "%s keys, runs of %s" % (l["keys"], l.get("run")) if l.get("keys") else num(l.get("enc"))
        return [num(l.get("size")), num(l.get("batch")), num(l.get("sync")), num(l.get("zstd")), enc,
                num(l.get("threads")), num(l.get("records")), with_goals(l, "rec_per_s"),
                num(l.get("floor_rec_per_s")), with_goals(l, "ratio_to_floor"), num(l.get("replay_rec_per_s")),
                num(l.get("disk_bytes_per_rec")), verify_cell(l)]

    goal = [l for l in la if matches(l, GOAL_CFG)]
    rest = [l for l in la if not matches(l, GOAL_CFG)]
    if goal:
        out += ["The goal configuration (100 B records, batches of 1,000, sync=always):", ""]
        out += table(head, [row(l) for l in goal])
    if rest:
        out += ["", "Other configurations:", ""] if goal else []
        out += table(head, [row(l) for l in rest])
    return out


def sec_codec(lines):
    out = ["## Series chunk codec", "",
           "`bench/series_codec`: encoding and decoding `storage/series` chunks of 2-decimal random walks at 1 s, "
           "and downsampling one day (86,400 values) to 1-minute buckets.", ""]
    sc, sd = of(lines, "series_codec"), of(lines, "series_downsample")
    if not sc and not sd:
        return out + none_line(["series_codec", "series_downsample"])
    if sc:
        out += table(["chunk", "points", "encode points/s", "decode points/s", "bytes/point", "verify"],
                     [[num(l.get("chunk")), num(l.get("points")), num(l.get("encode_pts_per_s")),
                       num(l.get("decode_pts_per_s")), num(l.get("bytes_per_point")), verify_cell(l)] for l in sc])
    if sd:
        out += [""] if sc else []
        out += table(["points", "interval ms", "buckets", "aggregate µs", "decode + aggregate µs", "verify"],
                     [[num(l.get("points")), num(l.get("interval_ms")), num(l.get("buckets")), num(l.get("agg_us")),
                       num(l.get("decode_agg_us")), verify_cell(l)] for l in sd])
    return out


def sec_ingest(lines):
    out = ["## Engine ingest", "",
           "`bench/engine_ingest`: durable ingest through `sr_engine_submit` (sync=always) of the reference data "
           "set (`bench/engbench.h`), then the bytes on disk per distinct point, in every message shape "
           "(series: events of one point × 100 values; snapshot: one gateway's 100 points × 1 value at one "
           "timestamp; mixed: snapshots plus a 1 % backfill of old series; the goal counts on each).", ""]
    ei = of(lines, "engine_ingest")
    if not ei:
        return out + none_line(["engine_ingest"])
    return out + table(
        ["shape", "points × seconds", "late bp", "threads", "enc", "zstd", "points/s", "events/s", "log B/point",
         "index B/point", "values in chunks", "index B/value in a chunk", "index allocated B/point", "verify"],
        [[l.get("shape", "series"), "%s × %s" % (num(l.get("points")), num(l.get("seconds"))), num(l.get("late_bp")),
          num(l.get("threads")),
          num(l.get("enc")), num(l.get("zstd")), with_goals(l, "points_per_s"), num(l.get("events_per_s")),
          with_goals(l, "log_b_per_point"), num(l.get("index_b_per_point")), num(l.get("chunk_values")),
          with_goals(l, "index_b_per_chunk_value"), num(l.get("index_alloc_b_per_point")), verify_cell(l)]
         for l in ei])


def sec_query(lines):
    out = ["## Engine queries", "",
           "`bench/engine_query`: latest value of one point (one thread), full-range raw reads, and one day of 1 s "
           "values downsampled to 1-minute avg/min/max; every answer checked against the generator.", ""]
    eq, dy = of(lines, "engine_query"), of(lines, "downsample_year")
    if not eq and not dy:
        return out + none_line(["engine_query", "downsample_year"])
    if not eq:
        return out + sec_downsample_year(dy)
    return out + table(
        ["points × seconds", "latest lookups/s", "latest p50 µs", "latest p99 µs", "raw range points/s",
         "downsample 1 day p50 µs", "downsample p99 µs", "verify"],
        [["%s × %s" % (num(l.get("points")), num(l.get("seconds"))), with_goals(l, "latest_per_s"),
          num(l.get("latest_p50_us")), num(l.get("latest_p99_us")), num(l.get("range_pts_per_s")),
          with_goals(l, "downsample_p50_us"), num(l.get("downsample_p99_us")), verify_cell(l)] for l in eq]) + (
        [""] + sec_downsample_year(dy) if dy else [])


def sec_sealed(lines):
    """The sealed index against the plain one, the same run (issue #16; bench/sealed_index.py, bench/callgrind.sh)."""
    out = ["## The sealed index: its cost (issue #16)", "",
           "Each figure measured twice in this run: the index plain (`--enc 2`: one key seals the log, no keyring, "
           "the index as before issue #16) and sealed (`--enc 1`: per-operator data keys, every index value "
           "AES-256-GCM sealed, layout 8; `docs/keys.md`). Wall: `bench/sealed_index.py`, interleaved pairs, "
           "medians. Instructions: `bench/callgrind.sh` (the stable figure on a shared machine). sealed ÷ plain "
           "is a ratio of times (a rate's inverse), so above 1 the sealed index is slower; the goal is ≤ 1.10.", ""]
    sr = of(lines, "sealed_ratio")
    if not sr:
        return out + none_line(["sealed_ratio"])
    return out + table(["figure", "measured by", "plain index", "sealed index", "sealed ÷ plain", "goal ≤ 1.10",
                        "verify"],
                       [[md(l.get("what")) + " (" + md(l.get("figure", "")) + ")", md(l.get("source")),
                         num(l.get("plain")), num(l.get("sealed")), num(l.get("sealed_over_plain")),
                         "—" if l.get("met") is None else "met" if l.get("met") else "**not met**", verify_cell(l)]
                        for l in sr])


def sec_downsample_year(dy):
    """bench/downsample_year: a year of 1 s values to 1 h buckets (issue #13)."""
    out = ["`bench/downsample_year`: one year of 1 s values of one point downsampled to 1 h buckets, each call "
           "checked bucket by bucket; the series layer alone on chunks with per-chunk summaries and on the same "
           "values in the old chunks without them (every value decoded), then through the engine (the goal's "
           "figure).", ""]
    return out + table(
        ["days", "values", "buckets", "calls", "chunks (samples each)", "summaries p50 / p99 ms", "without summaries p50 / "
         "p99 ms", "chunk bytes, with / without summaries", "engine p50 ms", "engine p99 ms", "engine load s",
         "verify"],
        [[num(l.get("days")), num(l.get("values")), num(l.get("buckets")), num(l.get("reps")),
          "%s (%s)" % (num(l.get("chunks")), num(l.get("chunk_samples"))),
          "%s / %s" % (num(l.get("series_p50_ms")), num(l.get("series_p99_ms"))),
          "%s / %s" % (num(l.get("series_old_p50_ms")), num(l.get("series_old_p99_ms"))),
          "%s / %s" % (num(l.get("chunk_bytes")), num(l.get("chunk_bytes_old"))),
          with_goals(l, "engine_p50_ms"), num(l.get("engine_p99_ms")), num(l.get("engine_load_s")), verify_cell(l)]
         for l in dy])


def sec_restart(lines, src):
    out = ["## Restart", ""]
    er, rs = of(lines, "engine_restart"), of(lines, "restart")
    if not er and not rs:
        return out + none_line(["engine_restart", "restart"])
    if er:
        out += ["`bench/engine_restart`: rebuilding the index from the log, and reopening a loaded engine "
                "(recovery, head replay, first query).", ""]
        out += table(["points × seconds", "values loaded", "rebuild points/s", "rebuild events/s",
                      "rebuild log MB/s", "restart s", "verify"],
                     [["%s × %s" % (num(l.get("points")), num(l.get("seconds"))), num(l.get("loaded")),
                       num(l.get("rebuild_pts_per_s")), num(l.get("rebuild_events_per_s")),
                       num(l.get("rebuild_log_mb_per_s")), num(l.get("restart_s")), verify_cell(l)] for l in er])
    if rs:
        out += ["", "Restart against the peers (seconds from start to answering):", ""] if er else []
        out += table(["system", "seconds", "with the app login (suiro)", "suiro ÷ system (< 1: suiro faster)",
                      "verify"],
                     [[num(l.get("system")), num(l.get("secs")),
                       "%s (login %s)" % (num(l.get("secs_with_login")), num(l.get("login_s")))
                       if "secs_with_login" in l else "—",
                       with_goals(l, "_ratio", l.get("_ratio")), verify_cell(l)]
                      for l in sorted(rs, key=lambda l: sys_order(l.get("system")))])
        out += ratio_note(src, "restart", "seconds")
        if any("secs_with_login" in l for l in rs):
            out += ["", "Seconds: from start until the query answers with the loaded data, polled the same way "
                    "for every system (`bench/ready_poll`, a fresh connection every `poll_ms` ms). suiro's AP-IF "
                    "needs an app session; the peers run without authentication. suiro's seconds leave out "
                    "the login's own round trip (POST /api/v1/sessions: one scrypt check of the app secret, "
                    "N=2^14 r=8, the same cost for every login, restart or not); the column beside them has "
                    "the figure an app sees, login included. The goal uses the first."]
    return out + sec_restart_sizes(lines)


def sec_restart_sizes(lines):
    """bench/restart_sizes.sh: restart at 1x, 10x, 100x the data, per shape, suiro beside VictoriaMetrics."""
    rs, rr = of(lines, "restart_size"), of(lines, "restart_size_ratio")
    if not rs:
        return []
    out = ["", "### Restart at 1×, 10× and 100× the data, per shape (`bench/restart_sizes.sh`)", "",
           "Seconds from start until the query answers with the loaded data (`bench/ready_poll`, as above; "
           "suiro without its app login's round trip), in brackets the events suiro's open re-read "
           "(heads checkpoints bound them, durability.md §8). suiro restarts once after kill -9 right after "
           "the load, then after a graceful stop; VictoriaMetrics after a graceful stop.", ""]
    def pick(sys_, sh, k, stop=None):
        for l in rs:
            if (l.get("system") == sys_ and l.get("shape") == sh and l.get("size") == k
                    and (stop is None or l.get("stop") == stop)):
                return l
        return {}
    def cell(l):
        if not l:
            return "—"
        ev = " (%s events)" % num(l["replay_events"]) if l.get("replay_events") is not None else ""
        return num(l.get("secs")) + ev + ("" if l.get("verify") == "ok" else " " + verify_cell(l))
    keys = []
    for l in rs:
        k = (l.get("shape"), l.get("size"))
        if k not in keys:
            keys.append(k)
    keys.sort(key=lambda k: (SHAPES.index(k[0]) if k[0] in SHAPES else 99, k[1] if bl.is_num(k[1]) else 0))
    rows = []
    for sh, k in keys:
        ratio_l = next((l for l in rr if l.get("shape") == sh and l.get("size") == k), None)
        vals = pick("suiro", sh, k).get("values") or pick("victoriametrics", sh, k).get("values")
        rows.append([md(sh), "%s×" % num(k), num(vals), cell(pick("suiro", sh, k, "kill -9")),
                     cell(pick("suiro", sh, k, "graceful")), cell(pick("victoriametrics", sh, k)),
                     with_goals(ratio_l, "suiro_vs_victoriametrics") if ratio_l else "—",
                     num(ratio_l.get("suiro_kill9_vs_victoriametrics")) if ratio_l else "—"])
    return out + table(["shape", "size", "values", "suiro after kill -9 s", "suiro after a graceful stop s",
                        "VictoriaMetrics s", "suiro ÷ VictoriaMetrics (graceful)", "the same, suiro after kill -9"],
                       rows)


CRYPTO_LIMIT = D(10)


def sec_crypto(lines):
    """Encryption at rest (a key_file) and the hash chain: what they cost, on vs off (issue #6)."""
    out = ["## Encryption at rest and the hash chain: their cost", ""]
    rows, _ = crypto_rows(lines)
    out += table(["workload", "plain log (no key)", "encrypted (AES-256-GCM)", "encryption cost",
                  "hash chain share", "both", "goal < %s %%" % num(CRYPTO_LIMIT)], rows)
    out += CRYPTO_NOTE
    return out


def crypto_rows(lines):
    """The rows of sec_crypto and, per workload, (what, both in %, status)."""

    def pick(kind, **where):
        for l in lines:
            if l["bench"] == kind and matches(l, where):
                return l
        return None

    def pct(x):
        return None if x is None else (D(x) * 100).quantize(D("0.1"))

    rows, res = [], []
    # (what, unit, plain line, encrypted line, field, time-like (True) or a rate (False))
    specs = [
        ("engine ingest (sr_engine_submit, sync=always, zstd 1)", "points/s",
         pick("engine_ingest", shape="series", enc=0, zstd=1, threads=1),
         pick("engine_ingest", shape="series", enc=1, zstd=1, threads=1),
         "points_per_s", False),
        ("network ingest (MQTT QoS 1, `net_ingest.sh`, steady)", "points/s",
         pick("net_ingest", system="suiro_plain"), pick("net_ingest", system="suiro"), "points_per_s", False),
        ("network ingest, the server's CPU per value (steadier on a shared machine)", "µs",
         pick("net_ingest", system="suiro_plain"), pick("net_ingest", system="suiro"), "server_cpu_us_per_point",
         True),
        ("restart to the first answer (`net_ingest.sh`, without the login)", "s",
         pick("restart", system="suiro_plain"), pick("restart", system="suiro"), "secs", True),
        ("engine restart (`engine_restart`: open + first query)", "s",
         pick("engine_restart", enc=0), pick("engine_restart", enc=1), "restart_s", True),
    ]
    for what, unit, pl, en, field, timelike in specs:
        if pl is None or en is None or not bl.is_num(pl.get(field)) or not bl.is_num(en.get(field)) \
                or D(pl.get(field)) == 0 or D(en.get(field)) == 0:
            rows.append([md(what), num(pl.get(field)) if pl else "—", num(en.get(field)) if en else "—",
                         "—", "—", "—", "no figure"])
            res.append((what, None, None))
            continue
        a, b = D(pl.get(field)), D(en.get(field))
        t_plain, t_enc = (a, b) if timelike else (1 / a, 1 / b)  # seconds, or seconds per value
        # the chain's seconds, per the same unit: its timed SHA-256 work for the run's log
        chain, has_chain = D(0), bl.is_num(en.get("chain_s"))
        if has_chain:
            n = en.get("values_sent", en.get("points_total"))
            chain = D(en.get("chain_s")) / D(n) if bl.is_num(n) and D(n) > 0 else D(0)
            if timelike:
                chain *= D(1000000)  # µs per value
        base = t_plain - chain  # neither encryption nor chain
        enc_cost = t_enc / t_plain - 1
        chain_cost = chain / base if base > 0 else None
        both = t_enc / base - 1 if base > 0 else None
        st = "—" if both is None else ("met" if both * 100 < CRYPTO_LIMIT else "**not met**")
        rows.append([md(what), "%s %s" % (num(pl.get(field)), unit), "%s %s" % (num(en.get(field)), unit),
                     "%s %%" % num(pct(enc_cost)),
                     "%s %%" % num(pct(chain_cost)) if has_chain else "— (one block hashed)",
                     "%s %%" % num(pct(both)), st])
        res.append((what, pct(both), None if both is None else both * 100 < CRYPTO_LIMIT))
    return rows, res


CRYPTO_NOTE = ["", "No peer offers either. Plain: `suiro serve` without `key_file` (the default; "
            "`docs/configuration.md`): the log and the blobs are stored unencrypted, every block still "
            "CRC-checked and hash-chained. The chain has no off switch (the log format always links each "
            "block to the one before), so its share is timed apart: `chain_s` is the chain's own SHA-256 "
            "work for the run's log (per block, the digest of its plaintext and the hash of its header with "
            "it), repeated natively over the log's block count and plaintext bytes (`eb_chain_cost`), divided "
            "by the run's time; it is an upper bound (the hashing runs on the appending threads, partly "
            "beside the fsync wait). Encryption cost: encrypted ÷ plain time − 1 (rates inverted). Both: "
            "encrypted time ÷ (plain time − chain time) − 1. A restart hashes one block (the chain tip), so "
            "its chain share is nil; what it pays is decrypting the blocks the head replay reads. Wall-clock "
            "figures on a shared 2-core machine: differences of a few % are within the noise."]


def sec_gw(lines, src):
    out = ["## GW-IF ingest over MQTT vs Mosquitto", "",
           "`bench/gw_ingest.sh`: `suiro serve` and Mosquitto under the same `suiro gwsim run` load (QoS 1). "
           "Steady rates are measured from the moment every gateway is logged in.", ""]
    gi, gr, gp = of(lines, "gw_ingest"), of(lines, "gw_ingest_ratio"), of(lines, "gw_parse")
    if not gi and not gr and not gp:
        return out + none_line(["gw_ingest", "gw_parse"])
    if gi:
        out += table(["system", "gateways × messages × values", "window", "steady msg/s", "msg/s with logins",
                      "points/s", "PUBACK p50 ms", "PUBACK p99 ms", "durability", "suiro ÷ system (steady)",
                      "verify"],
                     [[num(l.get("system")), "%s × %s × %s" % (num(l.get("gateways")),
                                                               num(l.get("messages_per_gateway")),
                                                               num(l.get("batch"))),
                       num(l.get("window")), num(l.get("steady_msg_per_s")), num(l.get("msg_per_s")),
                       num(l.get("points_per_s")), num(l.get("puback_p50_ms")), num(l.get("puback_p99_ms")),
                       num(l.get("durability") or ("sync=%s" % l["sync"] if "sync" in l else None)),
                       num(l.get("_ratio")) if l.get("system") != "suiro" else "—", verify_cell(l)]
                      for l in sorted(gi, key=lambda l: sys_order(l.get("system")))])
        out += ratio_note(src, "gw_ingest", "steady messages/s")
    if gp:
        out += ["", "The GW-IF values fast path alone (`bench/gw_parse`: `sr_gw_fast`, no network, no write):", ""]
        out += table(["messages × values", "bytes/message", "messages/s", "values/s", "ns/message", "verify"],
                     [["%s × %s" % (num(l.get("messages")), num(l.get("batch"))), num(l.get("msg_bytes")),
                       num(l.get("msg_per_s")), num(l.get("values_per_s")), num(l.get("ns_per_msg")),
                       verify_cell(l)] for l in gp])
    return out


def sec_net(lines, src):
    out = ["## Network ingest vs peers", ""]
    ni = of(lines, "net_ingest")
    if not ni:
        return out + none_line(["net_ingest"])
    out += table(["system", "points/s", "durability", "suiro ÷ system", "verify"],
                 [[num(l.get("system")), num(l.get("points_per_s")), num(l.get("durability")),
                   with_goals(l, "_ratio", l.get("_ratio")) if l.get("system") != "suiro" else "—", verify_cell(l)]
                  for l in sorted(ni, key=lambda l: sys_order(l.get("system")))])
    return out + ratio_note(src, "net_ingest", "points/s")


def sec_disk(lines, src):
    out = ["## Bytes on disk per point", ""]
    db = of(lines, "disk_bytes")
    if not db:
        return out + none_line(["disk_bytes"])
    out += table(["system", "bytes/point", "log B/point", "index B/point", "suiro ÷ system (< 1: suiro smaller)",
                  "verify"],
                 [[num(l.get("system")), num(l.get("bytes_per_point")), with_goals(l, "log_bytes_per_point"),
                   with_goals(l, "index_bytes_per_point"),
                   num(l.get("_ratio")) if l.get("system") != "suiro" else "—", verify_cell(l)]
                  for l in sorted(db, key=lambda l: sys_order(l.get("system")))])
    return out + ratio_note(src, "disk_bytes", "bytes/point")


def shape_order(sh):
    return (0, "%02d" % SHAPES.index(sh)) if sh in SHAPES else (1, str(sh))


def sec_shapes(lines):
    out = ["## Message shapes vs peers", "",
           "`bench/shape_ingest.sh` (issue #13): the same points × seconds of 2-decimal random walks in each shape, "
           "sent by one generator (`bench/shape_ingest`) to every system in the same run, each in its best "
           "protocol; every system then holds every value (counted from the system itself). suiro: `sync=always`, "
           "the log encrypted, over MQTT QoS 1 (one connection per gateway) and over its GW-IF HTTP (one message a "
           "request); Mosquitto: the same MQTT client and messages, acknowledged from memory, no subscriber; "
           "InfluxDB and VictoriaMetrics: line protocol, large batches. Rates are from the first message to the "
           "last acknowledgement, after the logins. \"at half the rate\": a paced run at half the system's "
           "maximum messages/s. CPU: user + system over the timed part, % of one core (the generator's own: it "
           "must not be the bottleneck); the server's CPU per value is steadier than the rates on a shared "
           "machine. Run-queue wait: seconds the threads were runnable but found no free CPU (the machine's "
           "other load; summed over threads): where it is large against the timed seconds, the rates say more "
           "about the machine than about the system. Bytes: allocated (`du -s -B1`) after a graceful stop, per "
           "distinct value.", ""]
    si, sp, sr = of(lines, "shape_ingest"), of(lines, "shape_ingest_paced"), of(lines, "shape_ratio")
    if not si and not sr:
        return out + none_line(["shape_ingest", "shape_ratio"])
    shapes = sorted({l.get("shape") for l in si + sp + sr}, key=shape_order)
    for sh in shapes:
        ls = {l.get("system"): l for l in si if l.get("shape") == sh}
        paced = {l.get("system"): l for l in sp if l.get("shape") == sh}
        systems = sorted(ls, key=lambda x: (SHAPE_SYSTEMS.index(x), x) if x in SHAPE_SYSTEMS else (99, str(x)))
        any_l = next(iter(ls.values()), {})
        out += ["### %s" % md(sh), ""]
        what = SHAPE_TEXT.get(sh, "")
        if any_l:
            what += "%s%s points (%s gateways × %s) × %s s, %s values%s" % (
                ": " if what else "", num(any_l.get("points")), num(any_l.get("gateways")), num(any_l.get("per")),
                num(any_l.get("seconds")), num(any_l.get("values_unique")),
                ", backfill %s bp" % num(any_l.get("backfill_bp")) if any_l.get("backfill_bp") else "")
        if what:
            out += [md(what[0].upper() + what[1:]) + ".", ""]
        if systems:
            def row(name, f):
                return [name] + [f(ls[x]) for x in systems]
            rows = [
                row("points/s", lambda l: num(l.get("points_per_s"))),
                row("messages/s", lambda l: num(l.get("msg_per_s"))),
                row("acknowledgement p50 / p99 ms (PUBACK; HTTP: the answer), at the maximum rate",
                    lambda l: "%s / %s" % (num(l.get("ack_p50_ms")), num(l.get("ack_p99_ms")))),
                row("PUBACK p50 / p99 ms, at half the rate",
                    lambda l: "%s / %s" % (num(paced[l["system"]].get("ack_p50_ms")),
                                           num(paced[l["system"]].get("ack_p99_ms")))
                    if l.get("system") in paced else "—"),
                row("bytes/point on disk", lambda l: num(l.get("bytes_per_point"))),
                row("log / index B/point", lambda l: "%s / %s" % (num(l.get("log_bytes_per_point")),
                                                                num(l.get("index_bytes_per_point")))
                    if "log_bytes_per_point" in l else "—"),
                row("generator CPU, % of a core (s)",
                    lambda l: "%s (%s)" % (num(l.get("gen_cpu_pct")), num(l.get("gen_cpu_s")))),
                row("server CPU, % of a core (s)",
                    lambda l: "%s (%s)" % (num(l.get("server_cpu_pct")), num(l.get("server_cpu_s")))),
                row("server CPU µs/value", lambda l: num(l.get("server_cpu_us_per_value"))),
                row("run-queue wait s, server / generator",
                    lambda l: "%s / %s" % (num(l.get("server_runq_wait_s")), num(l.get("gen_runq_wait_s")))),
                row("messages, values sent", lambda l: "%s, %s" % (num(l.get("messages")), num(l.get("values_total")))),
                row("protocol", lambda l: num(l.get("protocol"))),
                row("durability", lambda l: num(l.get("durability"))),
                row("verify", lambda l: verify_cell(l) + ("; paced " + verify_cell(paced[l["system"]])
                                                         if l.get("system") in paced else "")),
            ]
            out += table([""] + [md(x) for x in systems], rows)
        gl = [l for l in sr if l.get("shape") == sh]
        if gl:
            r = gl[0]
            grows = [[md(g["text"].replace("every shape: ", "")), with_goals(r, g["field"])]
                     for g in GOALS if g["kind"] == "shape_ratio" and g["field"] in r]
            if grows:
                out += ([""] if systems else []) + ["The goals on this shape (`shape_ratio`, verify %s):"
                                                    % verify_cell(r), ""]
                out += table(["goal", "figure"], grows)
        out += [""]
    return out[:-1] if out[-1] == "" else out


def query_order(q):
    q = str(q)
    return (0, "%02d" % QUERIES.index(q)) if q in QUERIES else (1, q)


def sec_ap(lines, src):
    out = ["## AP-IF queries vs peers", "",
           "`bench/ap_query.sh`: the same data set in every system, each answer checked value by value; "
           "requests/s over HTTP on this machine, latency per request.", ""]
    aq = of(lines, "ap_query")
    if not aq:
        return out + none_line(["ap_query"])
    rows = []
    for l in sorted(aq, key=lambda l: (query_order(l.get("query")), sys_order(l.get("system")))):
        rows.append([num(l.get("query")), num(l.get("system")), with_goals(l, "req_per_s"), num(l.get("p50_ms")),
                     with_goals(l, "p99_ms"),
                     with_goals(l, "_ratio", l.get("_ratio")) if l.get("system") != "suiro" else "—",
                     verify_cell(l)])
    out += table(["query", "system", "requests/s", "p50 ms", "p99 ms", "suiro ÷ system (req/s)", "verify"], rows)
    return out + ratio_note(src, "ap_query", "requests/s")


def sec_callgrind(lines):
    out = ["## Instruction counts (callgrind)", "",
           "`bench/callgrind.sh`: small seeded runs under `valgrind --tool=callgrind`, counting only inside the "
           "measured functions. Stable to well under 1 % on a noisy machine; `bench/compare` shows the change "
           "against the previous results file.", ""]
    cg = of(lines, "callgrind")
    if not cg:
        return out + none_line(["callgrind"])
    # the sealed index ÷ the plain one, where this run counted both (callgrind.sh: "<what>_plain_index")
    plain = {str(l.get("what"))[:-len("_plain_index")]: l for l in cg if str(l.get("what")).endswith("_plain_index")}

    def sealed_over_plain(l):
        p = plain.get(str(l.get("what")))
        a, b = l.get("instr_per_unit"), p.get("instr_per_unit") if p else None
        return num(ratio(a, b)) if bl.is_num(a) and bl.is_num(b) and D(b) != 0 else "—"

    return out + table(["what", "instructions per unit", "unit", "sealed ÷ plain index", "instructions", "units",
                        "collected in", "run", "verify"],
                       [[num(l.get("what")), num(l.get("instr_per_unit")), num(l.get("unit")), sealed_over_plain(l),
                         num(l.get("instr")), num(l.get("per")), num(l.get("collect")),
                         "`%s %s`" % (md(l.get("program", "?")), md(l.get("args", ""))), verify_cell(l)]
                        for l in cg])


def sec_overload(lines):
    out = ["## Overload", "",
           "`bench/overload.sh` (`tests/integration/test_overload.py` with longer phases): operator `atk` attacks "
           "the real server one way at a time, then all at once, from its own process at a lower CPU priority, "
           "while operator `demo` is measured as its users see it: an app asks for a latest value every 4 ms and a "
           "gateway publishes one QoS 1 message every 10 ms and waits for its PUBACK. Ratios are against the "
           "quiet phase's p99, floored at 1 ms. On this 2-core machine the attacker's clients, the victim's and the "
           "server share the cores, so the ingest floods cost the victim CPU as well as server time: \"machine busy\" "
           "is the share of both cores in use during the phase (1 = saturated), \"server CPU\" the server's own.", ""]
    ov = of(lines, "overload")
    if not ov:
        return out + none_line(["overload"])
    return out + table(["phase", "s", "latest p50 ms", "latest p99 ms", "latest p99 ÷ quiet", "PUBACK p50 ms",
                        "PUBACK p99 ms", "PUBACK p99 ÷ quiet", "victim errors", "server RSS max MB",
                        "server CPU (cores)", "machine busy", "verify"],
                       [[num(l.get("phase")), num(l.get("phase_s")), num(l.get("latest_p50_ms")),
                         num(l.get("latest_p99_ms")), with_goals(l, "latest_p99_x_quiet"), num(l.get("puback_p50_ms")),
                         num(l.get("puback_p99_ms")), with_goals(l, "puback_p99_x_quiet"), num(l.get("errors")),
                         with_goals(l, "rss_max_mb"), num(l.get("server_cpu_cores")), num(l.get("machine_busy")),
                         verify_cell(l)] for l in ov])


CLUSTER_CONFIGS = ["single", "c1", "c2", "c3"]


def sec_cluster(lines):
    """bench/cluster_ingest.py: the cluster mode (issue #19), 1, 2, 3 nodes beside a single node, the same run."""
    out = ["## Cluster mode (issue #19)", "",
           "`bench/cluster_ingest.py` (docs/cluster.md \"Benchmarks\" and \"Capacity\"): 3 nats-server (R3 streams) "
           "always; `single` is `suiro serve` without `[cluster]`, `c1`..`c3` are 1 to 3 suiro nodes. Durable "
           "ingest over MQTT QoS 1 (the PUBACK waits for the local fsync and the JetStream ack), three operators' "
           "generators at once, spread over the nodes; values/s = values acknowledged ÷ the longest generator's "
           "timed part; verify: every acknowledged value counted once from its operator's owner. Everything on "
           "the machine's cores together: a floor, not a scaling curve.", ""]
    ci, pb = of(lines, "cluster_ingest"), of(lines, "cluster_puback")
    tk, cu = of(lines, "cluster_takeover"), of(lines, "cluster_catchup")
    if not (ci or pb or tk or cu):
        return out + none_line(["cluster_ingest", "cluster_puback", "cluster_takeover", "cluster_catchup"])
    for sm in of(lines, "cluster_summary"):
        if sm.get("date") or sm.get("commit"):
            out += ["These lines: the run of %s, commit `%s`%s." % (num(sm.get("date")), num(sm.get("commit")),
                    " (a separate run from the rest of this file)" if sm.get("separate_run") else ""), ""]
    cfgs = [c for c in CLUSTER_CONFIGS if any(l.get("config") == c for l in ci + pb)]
    cfgs += sorted({l.get("config") for l in ci + pb if l.get("config") not in cfgs})

    def cell(ls, cfg, f):
        x = [l for l in ls if l.get("config") == cfg]
        return num(x[0].get(f)) if x else "—"
    rows = []
    for sh in [s for s in SHAPES if any(l.get("shape") == s for l in ci)]:
        x = [l for l in ci if l.get("shape") == sh]
        rows.append(["%s: values/s" % sh] + [cell(x, c, "values_per_s") for c in cfgs])
        rows.append(["%s: messages/s" % sh] + [cell(x, c, "msg_per_s") for c in cfgs])
        rows.append(["%s: PUBACK p50 / p99 ms under load" % sh] +
                    ["%s / %s" % (cell(x, c, "ack_p50_ms"), cell(x, c, "ack_p99_ms")) for c in cfgs])
        rows.append(["%s: CPU µs/value, suiro nodes / nats-servers" % sh] +
                    ["%s / %s" % (cell(x, c, "suiro_cpu_us_per_value"), cell(x, c, "nats_cpu_us_per_value"))
                     for c in cfgs])
        rows.append(["%s: verify" % sh] + [verify_cell([l for l in x if l.get("config") == c][0])
                                           if any(l.get("config") == c for l in x) else "—" for c in cfgs])
    if ci:
        rows.append(["owner caught up after the load, s"] + [cell(ci, c, "owner_lag_s") for c in cfgs])
        rows.append(["B/value on disk: logs / indexes (every node) / streams (one replica)"] +
                    ["%s / %s / %s" % (cell(ci, c, "log_bytes_per_value"), cell(ci, c, "index_bytes_per_value"),
                                       cell(ci, c, "stream_bytes_per_value")) for c in cfgs])
    if pb:
        rate = pb[0].get("rate_msgs_per_s")
        rows.append(["paced PUBACK p50 / p99 ms (%s msgs/s)" % num(rate)] +
                    ["%s / %s" % (cell(pb, c, "ack_p50_ms"), cell(pb, c, "ack_p99_ms")) for c in cfgs])
    out += table([""] + [md(c) for c in cfgs], rows)
    if tk:
        out += ["", "Takeover after a kill -9 of one of 3 nodes (from the kill to: its partitions owned by "
                    "survivors; a value there PUBACKed; the new owner answering it):", ""]
        out += table(["lease_ms", "rounds", "owned p50 / max s", "PUBACKed p50 / max s", "readable p50 / max s",
                      "bound s", "verify"],
                     [[num(l.get("lease_ms")), num(l.get("rounds")),
                       "%s / %s" % (num(l.get("owned_p50_s")), num(l.get("owned_max_s"))),
                       "%s / %s" % (num(l.get("acked_p50_s")), num(l.get("acked_max_s"))),
                       "%s / %s" % (num(l.get("readable_p50_s")), num(l.get("readable_max_s"))),
                       num(l.get("bound_s")), verify_cell(l)] for l in tk])
    if cu:
        out += ["", "Catch-up of a restarted node (events written while it was down, from its process start "
                    "until its index holds them; apply: from when it owned its partitions again):", ""]
        out += table(["events", "values", "catch-up s", "owned again s", "events/s", "apply events/s", "verify"],
                     [[num(l.get("events")), num(l.get("values")), num(l.get("catchup_s")),
                       num(l.get("owned_again_s")), num(l.get("events_per_s")), num(l.get("apply_events_per_s")),
                       verify_cell(l)] for l in cu])
    return out


def sec_other(lines):
    other = [l for l in lines if l["bench"] not in HANDLED]
    out = ["## Other lines", ""]
    if not other:
        return out + ["Every line of this file is tabled above."]
    out += ["Lines of kinds this report does not know yet, as they are:"]
    for kind in sorted({l["bench"] for l in other}):
        ls = of(other, kind)
        keys = sorted({k for l in ls for k in l if k != "bench" and not k.startswith("_")})
        out += ["", "### %s" % md(kind), ""]
        out += table([md(k) for k in keys], [[num(l[k]) if k in l else "" for k in keys] for l in ls])
    return out


# ---- charts ----------------------------------------------------------------------------------

def gp_str(s):
    return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"') + '"'


def gp_num(v):
    return str(v) if bl.is_num(v) else "?"


CHART_FILES = ("ingest.png", "shapes.png", "latency.png")


def chart_specs(lines):
    """[(file, title, gnuplot data text, gnuplot commands)] for the charts the file has data for."""
    specs = []
    # ingest rates by system: one panel per workload
    panels = []
    for kind, field, title in (("net_ingest", "points_per_s", "network ingest, points/s"),
                               ("gw_ingest", "steady_msg_per_s", "GW-IF over MQTT, steady messages/s")):
        ls = sorted([l for l in of(lines, kind) if bl.is_num(l.get(field))], key=lambda l: sys_order(l.get("system")))
        if ls:
            panels.append((title, ["%s %s" % (gp_str(l.get("system")), gp_num(l.get(field))) for l in ls]))
    if panels:
        data, cmds = [], ["set multiplot layout 1,%d" % len(panels)]
        for i, (title, rows) in enumerate(panels):
            data += rows + ["", ""]
            cmds += ["set title %s" % gp_str(title), "set yrange [0:*]", "set style fill solid 0.8 border -1",
                     "set boxwidth 0.6", "set grid ytics", "set format y \"%.1s%c\"", "unset key",
                     "plot DATA index %d using 0:2:xtic(1) with boxes lc rgb \"#3b6ea5\"" % i]
        cmds.append("unset multiplot")
        specs.append(("ingest.png", "Ingest rates by system", "\n".join(data) + "\n", cmds, 420 * len(panels) + 160))
    # message shapes: points/s by system, one panel per shape
    panels = []
    si = of(lines, "shape_ingest")
    for sh in sorted({l.get("shape") for l in si}, key=shape_order):
        ls = [l for l in si if l.get("shape") == sh and bl.is_num(l.get("points_per_s"))]
        ls.sort(key=lambda l: (SHAPE_SYSTEMS.index(l["system"]), "") if l.get("system") in SHAPE_SYSTEMS
                else (99, str(l.get("system"))))
        if ls:
            panels.append(("%s: points/s" % sh, ["%s %s" % (gp_str(l.get("system")), gp_num(l.get("points_per_s")))
                                                 for l in ls]))
    if panels:
        data, cmds = [], ["set multiplot layout 1,%d" % len(panels)]
        for i, (title, rows) in enumerate(panels):
            data += rows + ["", ""]
            cmds += ["set title %s" % gp_str(title), "set yrange [0:*]", "set style fill solid 0.8 border -1",
                     "set boxwidth 0.6", "set grid ytics", "set format y \"%.1s%c\"", "unset key",
                     "set xtics rotate by -30",
                     "plot DATA index %d using 0:2:xtic(1) with boxes lc rgb \"#3b6ea5\"" % i]
        cmds.append("unset multiplot")
        specs.append(("shapes.png", "Durable ingest by message shape and system", "\n".join(data) + "\n", cmds,
                      420 * len(panels) + 160))
    # AP-IF latency p50/p99 by system and query
    aq = [l for l in of(lines, "ap_query") if bl.is_num(l.get("p50_ms")) or bl.is_num(l.get("p99_ms"))]
    if aq:
        systems = sorted({str(l.get("system")) for l in aq}, key=sys_order)
        queries = sorted({str(l.get("query")) for l in aq}, key=query_order)
        get = {(str(l.get("system")), str(l.get("query"))): l for l in aq}
        rows = ["# query, then p50 and p99 of: " + " ".join(systems)]
        for q in queries:
            cells = []
            for s in systems:
                l = get.get((s, q), {})
                cells += [gp_num(l.get("p50_ms")), gp_num(l.get("p99_ms"))]
            rows.append(gp_str(q) + " " + " ".join(cells))
        palette = ["#3b6ea5", "#c0504d", "#9bbb59", "#8064a2", "#f79646"]
        plots = []
        for i, s in enumerate(systems):
            c = palette[i % len(palette)]
            plots.append("DATA using %d:xtic(1) title %s lc rgb \"%s\" fs solid 0.9" % (2 + 2 * i, gp_str(s + " p50"), c))
            plots.append("DATA using %d title %s lc rgb \"%s\" fs pattern 4" % (3 + 2 * i, gp_str(s + " p99"), c))
        cmds = ["set title \"AP-IF query latency, ms (log scale)\"", "set style data histograms",
                "set style histogram clustered gap 1", "set style fill border -1", "set logscale y",
                "set grid ytics", "set key outside right top", "set datafile missing \"?\"",
                "plot " + ", \\\n  ".join(plots)]
        specs.append(("latency.png", "AP-IF query latency p50/p99 by system and query", "\n".join(rows) + "\n", cmds,
                      900))
    return specs


# ---- goal charts: one panel per goal (GOALS), one PNG per report section ------------------------

# The report's sections that table goal figures: (slug of the PNG goals-<slug>.png, the line kinds the
# section tables). A goal's chart goes under the section that tables its kind; a goal of a kind no
# section tables goes under the goals at a glance ("glance").
GOAL_SECTIONS = [
    ("log", ["log_append"]), ("codec", ["series_codec", "series_downsample"]), ("ingest", ["engine_ingest"]),
    ("query", ["engine_query", "downsample_year"]),
    ("restart", ["engine_restart", "restart", "restart_size", "restart_size_ratio"]),
    ("gw", ["gw_ingest", "gw_ingest_ratio", "gw_parse"]), ("net", ["net_ingest", "net_ingest_ratio"]),
    ("disk", ["disk_bytes"]), ("shapes", ["shape_ingest", "shape_ingest_paced", "shape_ratio"]),
    ("ap", ["ap_query", "ap_query_ratio"]), ("overload", ["overload"]), ("callgrind", ["callgrind"]),
]
MET_RGB, SOME_RGB, NOT_RGB = 0x4a9a4a, 0xe0a030, 0xc0504d


def goal_section(kind):
    return next((slug for slug, kinds in GOAL_SECTIONS if kind in kinds), "glance")


def wrap(text, width):
    out, cur = [], ""
    for w in str(text).split():
        if cur and len(cur) + 1 + len(w) > width:
            out.append(cur)
            cur = w
        else:
            cur = (cur + " " + w) if cur else w
    return out + ([cur] if cur else [])


def goal_panels(lines):
    """{section slug: [panel]}: one panel per figure a goal is on (goals on the same lines and figure, such as
    one figure with two issues' limits, share a panel); a panel has the goals, the bars [(label, value,
    colour)] of the lines the goals apply to, and the shapes a per-shape goal has no figure for."""
    groups = []
    for g in GOALS:
        key = (g["kind"], g["field"], sorted(g["where"].items()))
        for grp in groups:
            if grp[0] == key:
                grp[1].append(g)
                break
        else:
            groups.append((key, [g]))
    out = {}
    for (kind, field, _), gs in groups:
        g0 = gs[0]
        hits = [l for l in lines if l["bench"] == kind and matches(l, g0["where"])]
        if not any(bl.is_num(l.get(field)) for l in hits):
            continue
        missing = []
        if any(g.get("per_shape") for g in gs):
            have = {l.get("shape") for l in hits if bl.is_num(l.get(field))}
            missing = [sh for sh in g0.get("shapes", SHAPES) if sh not in have]
        # label each bar by the configuration keys that tell the lines apart: a key is kept where it splits
        # lines the keys before it left together (late_bp, the same on every series line, is not)
        def val(l, k):
            return bl.fmt_plain(l.get(k)) if l.get(k) is not None else ""
        keys, seen = [], 1
        for k in [k for k in bl.id_keys(hits[0]) if k not in g0["where"]]:
            n = len({tuple(val(l, x) for x in keys + [k]) for l in hits})
            if n > seen:
                keys.append(k)
                seen = n
        bars, nofig = [], []
        for l in hits:
            parts = [("%s" % l[k]) if isinstance(l.get(k), str) else "%s=%s" % (k, bl.fmt_plain(l.get(k)))
                     for k in keys if k in l]
            name = "\n".join(wrap(" ".join(parts), 10)) or " ".join(str(v) for v in g0["where"].values()) or kind
            v = l.get(field)
            if not bl.is_num(v):
                nofig.append(name)
                continue
            n_met = sum(1 for g in gs if goal_status(g, v) == "met")
            bars.append((name, v, MET_RGB if n_met == len(gs) else NOT_RGB if n_met == 0 else SOME_RGB))
        out.setdefault(goal_section(kind), []).append(dict(goals=gs, field=field, bars=bars,
                                                           missing=missing + nofig))
    return out


def short(v):
    """A figure for a bar's label: as the file has it below 10,000, else to 3 significant digits and k or M
    (the tables have it whole)."""
    d = D(v)
    for div, unit in ((D(1000000), " M"), (D(1000), " k")):
        if abs(d) >= div * (10 if div == 1000 else 1):
            q = d / div
            return ("%.3g" % q if q < 1000 else "%d" % q) + unit
    return num(v)


def goal_chart_specs(lines):
    """[(file, title, data, commands, width, height)]: for each section with goal figures, goals-<slug>.png,
    one panel per goal: a bar per line the goal applies to (green: met, red: not met, amber: met by some of
    the goals on that figure), a dashed line at each limit, log scale where the figures span decades."""
    specs = []
    panels_of = goal_panels(lines)
    for slug in [s for s, _ in GOAL_SECTIONS] + ["glance"]:
        panels = panels_of.get(slug)
        if not panels:
            continue
        panel_w = max(470, 85 * max(len(p["bars"]) for p in panels) + 140)
        cols = max(1, min(len(panels), 3, 1500 // panel_w))
        rows = (len(panels) + cols - 1) // cols
        data, cmds = [], ["set multiplot layout %d,%d" % (rows, cols), "set style fill solid 0.85 border -1",
                          "set boxwidth 0.6", "set grid ytics", "unset key"]
        for i, p in enumerate(panels):
            vals = [D(v) for _, v, _ in p["bars"]]
            lims = [D(g["limit"]) for g in p["goals"]]
            allv = vals + lims
            pos = [v for v in allv if v > 0]
            log = len(pos) == len(allv) and max(pos) / min(pos) >= 30
            for name, v, rgb in p["bars"]:
                data.append("%s %d %s" % (gp_num(v), rgb, gp_str(short(v))))
            data += ["", ""]
            title = []
            for g in p["goals"]:
                title += wrap(g["text"], 62)
            if p["missing"]:
                title += ["no figure: " + ", ".join(p["missing"])]
            if log:
                title[-1] += " (log scale)"
            n = len(p["bars"])
            tall = max(name.count("\n") + 1 for name, _, _ in p["bars"])
            pad = max(D(0), (3 - n) * D("0.5"))  # one or two bars: not as wide as the panel
            cmds += ["unset arrow", "unset label", "unset logscale y",
                     "set title %s" % gp_str("\n".join(title)).replace("\n", "\\n"),
                     "set xrange [%s:%s]" % (D("-0.6") - pad, D(n) - D("0.4") + pad),
                     "set bmargin %d" % (tall + 2), "set rmargin 11",
                     "set xtics nomirror (%s)" % ", ".join("%s %d" % (gp_str(name).replace("\n", "\\n"), j)
                                                           for j, (name, _, _) in enumerate(p["bars"]))]
            if log:
                lo, hi = min(pos) / 3, max(pos) * 4
                cmds += ["set logscale y", "set yrange [%s:%s]" % (lo, hi), "set format y \"%.0s%c\""]
            else:
                hi = max(allv) * D("1.22")
                lo = min(D(0), min(allv) * D("1.22"))
                cmds += ["set yrange [%s:%s]" % (lo, hi), "set format y \"%g\"" if hi < 10000 else "set format y \"%.1s%c\""]
            cmds += ["set ylabel %s" % gp_str("suiro ÷ system" if p["field"] == "_ratio" else p["field"])]
            for j, g in enumerate(p["goals"]):
                lim = D(g["limit"])
                cmds += ["set arrow from graph 0, first %s to graph 1, first %s nohead dt 2 lw 2 lc rgb \"#333333\" front"
                         % (lim, lim),
                         "set label %s at graph 1, first %s left offset 0.6,0 front tc rgb \"#333333\""
                         % (gp_str("goal %s %s" % (SYM[g["op"]], short(g["limit"]))), lim)]
            cmds += ["plot DATA index %d using 0:1:2 with boxes lc rgb variable, "
                     "DATA index %d using 0:1:3 with labels offset 0,0.6 font \",8\"" % (i, i)]
        cmds.append("unset multiplot")
        specs.append(("goals-%s.png" % slug, "The goals of this section, figure by figure", "\n".join(data) + "\n",
                      cmds, panel_w * cols + 40, 340 * rows + 40))
    return specs


def render_charts(lines, chart_dir):
    """Render the charts; return (note for the run section, [(title, file)])."""
    specs = [sp + (480,) for sp in chart_specs(lines)] + goal_chart_specs(lines)
    if not specs:
        return "nothing to chart (no `net_ingest`, `gw_ingest`, `shape_ingest` or `ap_query` lines)", []
    gp = shutil.which("gnuplot")
    if not gp:
        return "not rendered: gnuplot is not installed (Debian package gnuplot-nox); the tables have every figure", []
    os.makedirs(chart_dir, exist_ok=True)
    done, errs = [], []
    with tempfile.TemporaryDirectory(prefix="suiro-report-") as tmp:
        for name, title, data, cmds, width, height in specs:
            dpath = os.path.join(tmp, name + ".dat")
            with open(dpath, "w", encoding="utf-8") as f:
                f.write(data)
            script = ["set terminal pngcairo size %d,%d font \"sans,9\"" % (width, height),
                      "set output %s" % gp_str(os.path.join(chart_dir, name)),
                      "set termoption noenhanced", "DATA = %s" % gp_str(dpath)] + cmds + ["unset output"]
            spath = os.path.join(tmp, name + ".gp")
            with open(spath, "w", encoding="utf-8") as f:
                f.write("\n".join(script) + "\n")
            r = subprocess.run([gp, spath], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            if r.returncode != 0:
                errs.append("%s: %s" % (name, r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "failed"))
            else:
                done.append((title, name))
    # a chart this file has no data for must not linger from an earlier run
    stale = list(CHART_FILES) + sorted(n for n in os.listdir(chart_dir) if n.startswith("goals-") and n.endswith(".png"))
    for name in stale:
        if name not in [n for _, n in done] and os.path.exists(os.path.join(chart_dir, name)):
            os.remove(os.path.join(chart_dir, name))
    if errs:
        print("report: gnuplot: " + "; ".join(errs), file=sys.stderr)
    note = "%d rendered with gnuplot" % len(done) + (" (%d failed)" % len(errs) if errs else "")
    return note, done


# ---- main ------------------------------------------------------------------------------------

def display_path(path):
    a = os.path.abspath(path)
    if a.startswith(REPO + os.sep):
        return os.path.relpath(a, REPO)
    return os.path.basename(a)


def build(path, lines, bad, charts_note, charts, chart_rel):
    src = ratios(lines)
    out = ["# suiro performance", "",
           "Generated by `bench/report.py` from `%s`; do not edit by hand. Every figure below is the results "
           "file's, as the benchmark printed it; goals are the issues' targets (`GOALS` in `bench/report.py`). "
           "The analysis behind the figures is in `docs/performance-notes.md`." % display_path(path), ""]
    out += sec_run(path, lines, bad, charts_note) + [""]
    out += sec_machine(lines) + [""]
    goal_charts = {n[len("goals-"):-len(".png")]: n for _, n in charts if n.startswith("goals-")}
    charts = [(t, n) for t, n in charts if not n.startswith("goals-")]

    def goal_chart(slug):
        """The chart of the goals a section tables, under its tables."""
        if slug not in goal_charts:
            return []
        return ["", "![The goals above, one panel per goal](%s)"
                % "/".join(x for x in (chart_rel, goal_charts[slug]) if x)]

    out += ["## Goals at a glance", ""] + goals_glance(lines)
    if goal_charts:
        out += ["", "Each goal has its chart under the table of its figures in the sections below: one panel per "
                    "goal, a bar per line the goal applies to (green: met, red: not met, amber: met by only some of "
                    "the goals on that figure), a dashed line at the goal."]
    out += goal_chart("glance") + [""]
    for slug, sec in (("log", sec_log(lines)), ("codec", sec_codec(lines)), ("ingest", sec_ingest(lines)),
                      ("query", sec_query(lines)), (None, sec_sealed(lines)),
                      ("restart", sec_restart(lines, src)), (None, sec_crypto(lines)),
                      ("gw", sec_gw(lines, src)), ("net", sec_net(lines, src)), ("disk", sec_disk(lines, src)),
                      ("shapes", sec_shapes(lines)), ("ap", sec_ap(lines, src)), ("overload", sec_overload(lines)),
                      (None, sec_cluster(lines)), ("callgrind", sec_callgrind(lines))):
        out += sec + goal_chart(slug) + [""]
    if charts:
        out += ["## Charts", ""]
        for title, name in charts:
            out += ["![%s](%s)" % (title, "/".join([chart_rel, name]) if chart_rel else name), ""]
    out += sec_other(lines)
    return "\n".join(out).rstrip("\n") + "\n"


def main(argv):
    ap = argparse.ArgumentParser(description="docs/performance.md from a bench/results file")
    ap.add_argument("results")
    ap.add_argument("--out", help="the Markdown file to write (default: stdout)")
    ap.add_argument("--charts", help="directory for the PNG charts (default: perf/ next to --out)")
    ap.add_argument("--no-charts", action="store_true", help="tables only (no gnuplot)")
    a = ap.parse_args(argv)
    try:
        good, bad = bl.load(a.results)
    except OSError as e:
        print("report: %s" % e, file=sys.stderr)
        return 1
    lines = [obj for _, obj in good]
    charts, chart_rel = [], ""
    chart_dir = a.charts or (os.path.join(os.path.dirname(os.path.abspath(a.out)), "perf") if a.out else None)
    if a.no_charts:
        note = "not rendered (--no-charts)"
    elif not chart_dir:
        note = "not rendered (no --out or --charts)"
    else:
        ratios(lines)  # the goals on suiro ÷ a peer chart the ratios
        note, charts = render_charts(lines, chart_dir)
        base = os.path.dirname(os.path.abspath(a.out)) if a.out else os.getcwd()
        chart_rel = os.path.relpath(os.path.abspath(chart_dir), base).replace(os.sep, "/")
    text = build(a.results, lines, bad, note, charts, chart_rel)
    if a.out:
        os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
        tmp = a.out + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, a.out)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
