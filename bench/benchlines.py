"""bench/benchlines.py -- what bench/report.py and bench/compare.py share: reading
a results file (bench/results/<UTC time>.jsonl, one JSON object a line, each
with a "bench" key), which keys identify a line (its configuration) and which
are its figures, and which way a figure is better.

Numbers are read as int or decimal.Decimal, so a figure prints exactly as the
benchmark wrote it (2.50 stays 2.50) and arithmetic on it is exact.
"""
import json
from decimal import Decimal

# Keys that say which configuration a line measured, per line kind. Two
# results files are compared line by line on (bench, these keys).
ID_KEYS = {
    "run": [],
    "machine": [],
    "fsync": ["n", "size"],
    "log_append": ["size", "batch", "sync", "zstd", "enc", "keys", "run", "threads", "records"],
    "series_codec": ["type", "data", "chunk", "points"],
    "series_downsample": ["points", "interval_ms", "chunk"],
    "downsample_year": ["days", "interval_ms", "chunk_samples"],
    "engine_ingest": ["shape", "points", "seconds", "batch", "late_bp", "threads", "window", "enc", "zstd", "sync"],
    "engine_query": ["points", "seconds", "enc", "zstd"],
    "engine_restart": ["points", "seconds", "enc", "zstd"],
    "gw_ingest": ["system", "gateways", "points", "batch", "messages_per_gateway", "window", "qos"],
    "gw_ingest_ratio": [],
    "gw_parse": ["messages", "batch", "points"],
    "net_ingest": ["system"],
    "net_ingest_ratio": [],
    "disk_bytes": ["system"],
    "restart": ["system"],
    "ap_query": ["system", "query"],
    "ap_query_ratio": ["query"],
    "callgrind": ["what"],
    "overload": ["phase"],
    "shape_ingest": ["shape", "system"],
    "shape_ingest_paced": ["shape", "system"],
    "shape_ratio": ["shape"],
    "restart_size": ["system", "shape", "size", "stop"],
    "restart_size_ratio": ["shape", "size"],
    "sealed_ratio": ["source", "what"],
    "cluster_ingest": ["config", "shape"],
    "cluster_puback": ["config"],
    "cluster_takeover": ["nodes", "lease_ms"],
    "cluster_catchup": ["nodes", "lease_ms"],
    "cluster_summary": [],
}

# The figures bench/compare.py shows by default (--all: every number).
HEADLINE = {
    "machine": ["cores", "mem_kb"],
    "fsync": ["p50_ms", "p99_ms"],
    "log_append": ["rec_per_s", "ratio_to_floor", "replay_rec_per_s", "disk_bytes_per_rec"],
    "series_codec": ["encode_pts_per_s", "decode_pts_per_s", "bytes_per_point"],
    "series_downsample": ["agg_us", "decode_agg_us"],
    "downsample_year": ["series_p50_ms", "series_old_p50_ms", "engine_p50_ms", "engine_p99_ms", "chunk_bytes"],
    "engine_ingest": ["points_per_s", "events_per_s", "log_b_per_point", "index_b_per_point", "index_b_per_chunk_value"],
    "engine_query": ["latest_per_s", "latest_p50_us", "latest_p99_us", "range_pts_per_s",
                     "downsample_p50_us", "downsample_p99_us"],
    "engine_restart": ["rebuild_pts_per_s", "restart_s"],
    "gw_ingest": ["steady_msg_per_s", "msg_per_s", "puback_p50_ms", "puback_p99_ms"],
    "gw_ingest_ratio": ["ratio"],
    "gw_parse": ["msg_per_s", "ns_per_msg"],
    "net_ingest": ["points_per_s"],
    "disk_bytes": ["bytes_per_point", "log_bytes_per_point", "index_bytes_per_point"],
    "restart": ["secs"],
    "ap_query": ["req_per_s", "p50_ms", "p99_ms"],
    "ap_query_ratio": ["suiro_vs_influxdb", "suiro_vs_victoriametrics"],
    "callgrind": ["instr_per_unit"],
    "sealed_ratio": ["plain", "sealed", "sealed_over_plain"],
    "overload": ["latest_p50_ms", "latest_p99_ms", "latest_p99_x_quiet", "puback_p50_ms", "puback_p99_ms",
                 "puback_p99_x_quiet", "errors", "rss_max_mb"],
    "shape_ingest": ["points_per_s", "msg_per_s", "ack_p50_ms", "ack_p99_ms", "bytes_per_point", "log_bytes_per_point",
                     "index_bytes_per_point", "gen_cpu_pct", "server_cpu_pct", "server_cpu_us_per_value"],
    "shape_ingest_paced": ["ack_p50_ms", "ack_p99_ms"],
    "shape_ratio": ["suiro_mqtt_vs_victoriametrics", "suiro_mqtt_vs_influxdb", "suiro_http_vs_victoriametrics",
                    "suiro_http_vs_influxdb", "msg_per_s_suiro_vs_mosquitto", "bytes_suiro_vs_victoriametrics"],
    "restart_size": ["secs", "replay_events"],
    "restart_size_ratio": ["suiro_vs_victoriametrics", "suiro_kill9_vs_victoriametrics"],
    "cluster_ingest": ["values_per_s", "msg_per_s", "ack_p50_ms", "ack_p99_ms", "owner_lag_s", "suiro_cpu_us_per_value",
                       "nats_cpu_us_per_value"],
    "cluster_puback": ["ack_p50_ms", "ack_p99_ms"],
    "cluster_takeover": ["owned_p50_s", "owned_max_s", "readable_p50_s", "readable_max_s"],
    "cluster_catchup": ["events_per_s", "apply_events_per_s", "catchup_s"],
    "cluster_summary": [],
}

# String fields that never identify a line of an unknown kind (free text,
# hashes, versions).
NOT_ID = {"verify", "hash", "why", "date", "commit", "version", "request", "durability", "dir", "args", "note",
          "kernel", "valgrind", "collect", "program", "unit"}

# Kinds that are not measurements and so carry no "verify".
NO_VERIFY = {"run", "machine"}


def is_num(v):
    return isinstance(v, (int, Decimal)) and not isinstance(v, bool)


def load(path):
    """[(line number, object)] of the JSON lines with a "bench" key, and
    [(line number, reason)] of the others (blank lines are skipped)."""
    good, bad = [], []
    with open(path, encoding="utf-8") as f:
        for no, text in enumerate(f, 1):
            text = text.strip()
            if not text:
                continue
            try:
                obj = json.loads(text, parse_float=Decimal)
            except ValueError as e:
                bad.append((no, "not JSON: %s" % e.msg))
                continue
            if not isinstance(obj, dict) or not isinstance(obj.get("bench"), str):
                bad.append((no, "no \"bench\" key"))
                continue
            if obj["bench"] == "engine_ingest":
                obj.setdefault("shape", "series")  # lines from before the shapes (issue #13)
            good.append((no, obj))
    return good, bad


def id_keys(obj):
    """The identifying keys of a line, in a fixed order."""
    kind = obj["bench"]
    if kind in ID_KEYS:
        return [k for k in ID_KEYS[kind] if k in obj]
    first = [k for k in ("system", "query", "what") if k in obj]
    rest = sorted(k for k, v in obj.items()
                  if k not in first and k != "bench" and k not in NOT_ID and isinstance(v, str))
    return first + rest


def fmt_plain(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, Decimal)):
        return str(v)
    if isinstance(v, str):
        return v
    return json.dumps(v, separators=(",", ":"), sort_keys=True, default=str)


def ident(obj):
    """A line's identity as text: 'kind k=v k=v'."""
    parts = [obj["bench"]] + ["%s=%s" % (k, fmt_plain(obj[k])) for k in id_keys(obj)]
    return " ".join(parts)


def figures(obj, everything=False):
    """The numeric figures of a line (name, value), in a fixed order."""
    ids = set(id_keys(obj))
    kind = obj["bench"]
    if not everything and kind in HEADLINE:
        return [(k, obj[k]) for k in HEADLINE[kind] if k in obj and (is_num(obj[k]) or obj[k] is None)]
    return [(k, v) for k, v in sorted(obj.items()) if k not in ids and k != "bench" and is_num(v)]


def better(name):
    """+1 if a higher value of this figure is better, -1 if lower, 0 if neither."""
    n = name.lower()
    if n in ("cores", "mem_kb", "n", "size"):
        return 0
    if n.endswith("_x_quiet") or n in ("errors", "rss_max_mb", "sealed_over_plain", "cost_pct"):
        return -1
    if "cpu_us_per" in n:  # CPU per value
        return -1
    if "_vs_" in n and n.startswith("bytes_"):  # shape_ratio: suiro's bytes over a peer's
        return -1
    if "_vs_" in n and n.startswith(("suiro_mqtt_", "suiro_http_", "msg_per_s_")):  # shape_ratio: rates
        return 1
    if n.endswith("_per_s") or "ratio" in n or n.startswith("suiro_vs_"):
        return 1
    if (n.endswith(("_ms", "_us", "_s", "_ns")) or n in ("secs", "ns_per_msg") or "bytes_per" in n
            or "b_per_point" in n or n.startswith("instr")):
        return -1
    return 0
