#!/usr/bin/python3
"""tests/integration/test_push_restart.py -- pushes survive a restart (R-AP-17,
issue #15; docs/requests.md "Push to apps", docs/durability.md) through the
real `suiro serve`, with test_push.py's helpers (receiver, gateway, app).

The app's push URL is a real HTTP receiver (srtest.PushReceiver) on a free
loopback port; "the app is down" is that receiver stopped, "it comes back"
a new receiver on the same port. The app de-duplicates by X-Suiro-Delivery;
so, per case, over every request the receivers accepted (HTTP 200):
  - every value the gateway stored arrives (no delivery id missing), in order;
  - a delivery id accepted twice is one accepted before the crash (the
    crash fell between the app's 2xx and the durable mark) and carries the
    same body both times; none is accepted twice after the restart;
  - every request's X-Suiro-Signature verifies with the platform key.
Cases:
  kill9_app_down  values and an async request's outcome stored while the
                  app is down, kill -9, restart, the app comes back: all of
                  them arrive (the outcome with what GET /requests/{id} says)
  sigterm         the same with a clean stop: no id is delivered twice at all
  kill9_inflight  kill -9 while the receiver holds a delivery (answers
                  slowly): that message comes again, same id and body
  bound           10 pending, restarted with max_queue = 5: the newest come
  kill9_twice     an app never reached (no mark of its own), killed, restarted
                  and killed again while it is down: all its values come
  url_gone        the app's push URL removed while the server is down: the
                  recovery queues nothing, nothing reaches the old URL

Every process is stopped by its PID; every wait is on a condition with a
deadline. usage: test_push_restart.py SUIRO_BIN"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import srtest  # noqa: E402
import test_push as tp  # noqa: E402  (helpers only: its main() runs under __main__)

BIN = tp.BIN
check = tp.check


def server(d, name, max_queue=None):
    conf = os.path.join(tp.T, name + ".ini")
    with open(conf, "w") as f:
        f.write("[engine]\ndata_dir = %s\n\n[push]\nmax_backoff_ms = 500\n%s\n[log]\nlevel = debug\n"
                % (d, "max_queue = %d\n" % max_queue if max_queue else ""))
    return tp.Server(BIN, d, conf, name)


def kill9(srv):
    srv.p.kill()
    srv.p.wait()


def marks(d):
    """The push_mark events of data directory d (`suiro replay`)."""
    r = subprocess.run([BIN, "replay", d, "--kind", "push_mark"], capture_output=True, text=True)
    return len([ln for ln in r.stdout.splitlines() if ln.strip()]) if r.returncode == 0 else -1


def accepted(rcvs, prefix):
    out = []
    for r in rcvs:
        out.extend(r.accepted(prefix))
    return out


def judge(name, rcvs_before, rcvs_after, prefix, want, pub, dup_allowed):
    """The app's view (de-duplicated by delivery id) over both lives."""
    before, after = accepted(rcvs_before, prefix), accepted(rcvs_after, prefix)
    seen = {}
    dups = []
    for r in before + after:
        i = r["headers"].get("x-suiro-delivery")
        if i in seen:
            dups.append((i, seen[i]["body"] == r["body"]))
        else:
            seen[i] = r
    ids = sorted(seen, key=int)
    vals = tp.values_of([seen[i] for i in ids])
    check("%s: every stored value arrived, in order (de-duplicated by delivery id)" % name, vals == want,
          (vals, want))
    after_ids = [r["headers"].get("x-suiro-delivery") for r in after]
    check("%s: no delivery id accepted twice after the restart" % name, len(after_ids) == len(set(after_ids)),
          after_ids)
    check("%s: delivery ids are increasing (the events' seqs)" % name,
          [int(i) for i in ids] == sorted(int(i) for i in ids) and len(ids) == len(want), ids)
    if dup_allowed:
        check("%s: an id delivered again carries the same body (it was accepted before the crash)" % name,
              all(same for _, same in dups), dups)
    else:
        check("%s: no id delivered twice at all (the clean stop wrote the mark)" % name, not dups, dups)
    check("%s: every request's signature verifies with the platform key" % name,
          all(tp.verify(pub, r["body"], r["headers"].get("x-suiro-signature")) for r in before + after))
    return dups


def case(name, stop, inflight=False):
    rcv1 = tp.Receiver()
    port = rcv1.port
    d = tp.make_data(name, "http://127.0.0.1:%d/hook" % port)
    pub = tp.platform_key(d)
    srv = server(d, name + "-1")
    gw = tp.Gateway(srv)
    app = tp.App(srv)
    mon = tp.start_monitor(app, gw)
    prefix = "/hook/monitors/%s" % mon
    check("%s: 5 values stored and delivered with the app up" % name,
          gw.publish_values(mon, [0, 1, 2, 3, 4])
          and rcv1.wait_for(lambda r: len(tp.values_of(r.accepted(prefix))) >= 5))
    held = rid = None
    if inflight:
        rcv1.mode = "hold"   # the next delivery is held: the kill comes while it is in flight
        check("%s: 3 more values stored" % name, gw.publish_values(mon, [5, 6, 7]))
        check("%s: a delivery is in flight (held by the receiver)" % name,
              rcv1.wait_for(lambda r: len(r.arrived) >= 6))
        kill9(srv)
        rcv1.release()   # it records 200 (the app processed it); suiro never saw the answer
        rcv1.wait_for(lambda r: len(r.reqs) >= 6)
        held = rcv1.arrived[5]
        rcv1.mode = "fail"
        rcv1.stop()
    else:
        rcv1.mode = "fail"   # the app goes down: 503 on a kept-alive connection, then refused
        rcv1.stop()
        check("%s: 10 more values stored while the app is down" % name, gw.publish_values(mon, list(range(5, 15))))
        st, js = app.call("POST", "/api/v1/current-values?async=true", {"dataIds": ["P001"], "timeoutMs": 5000})
        rid = (js or {}).get("requestId")
        check("%s: an async request while the app is down (202)" % name, st == 202 and rid, (st, js))
        check("%s: its outcome is stored (SUCCEEDED)" % name,
              tp.wait_until(lambda: (app.call("GET", "/api/v1/requests/%s" % rid)[1] or {}).get("status")
                            == "SUCCEEDED"))
        if stop == "kill":
            kill9(srv)
        else:
            check("%s: SIGTERM: the server exits 0" % name, srtest.stop_server(srv.p, 30) == 0)
    gw.close()
    want = list(range(8 if inflight else 15))
    srv2 = server(d, name + "-2")
    log = srv2.logtext()
    check("%s: the restart rebuilt the pending pushes from the log (`push recovered`)" % name,
          "msg=\"push recovered\"" in log and "messages_pending=0" not in log.split("push recovered")[1][:200],
          log[-2000:])
    rcv2 = tp.Receiver(port=port)   # the app comes back on the same URL
    rcv2.wait_for(lambda r: len(tp.values_of(r.accepted(prefix))) >= len(want) - (3 if inflight else 10), 30)
    # anything more would come at once: wait for the last value, then a little for extras (bounded by a condition)
    tp.wait_until(lambda: set(tp.values_of(accepted([rcv1, rcv2], prefix))) >= set(want), 30)
    dups = judge(name, [rcv1], [rcv2], prefix, want, pub, stop == "kill")
    if rid:
        rpath = "/hook/requests/%s" % rid
        rcv2.wait_for(lambda r: r.accepted(rpath), 20)
        out = rcv2.accepted(rpath)
        st, js = tp.App(srv2).call("GET", "/api/v1/requests/%s" % rid)
        check("%s: the async outcome pending at the stop arrived once after the restart, with what GET answers"
              % name, len(out) == 1 and not rcv1.accepted(rpath) and st == 200 and json.loads(out[0]["body"]) == js,
              (out, st, js))
        check("%s: ... signed, after the monitor's values (FIFO: its event came later)" % name,
              out and tp.verify(pub, out[0]["body"], out[0]["headers"].get("x-suiro-signature"))
              and all(int(out[0]["headers"]["x-suiro-delivery"]) > int(r["headers"]["x-suiro-delivery"])
                      for r in accepted([rcv1, rcv2], prefix)))
    if inflight:
        check("%s: the message in flight at the kill came again (same id, same body)" % name,
              any(i == held and same for i, same in dups), (held, dups))
    check("%s: the restarted server stops cleanly" % name, srv2.stop() == 0)
    check("%s: no sanitizer report" % name, tp.asan_clean(srv2), srv2.logtext()[-2000:])
    if stop == "term":
        # the start after srv2 moves the marks past srv2's last events (its
        # sessions' ends); a start and stop after that, with nothing new, writes none
        srv3 = server(d, name + "-3")
        srv3.stop()
        n = marks(d)
        srv4 = server(d, name + "-4")
        check("%s: a start and stop with nothing new in the log writes no mark" % name,
              srv4.stop() == 0 and n > 0 and marks(d) == n, (n, marks(d)))
    rcv2.stop()


def pending_at_kill(name, n):
    """A data directory whose app (its push URL a receiver, then stopped: the
    app is down) has n values of a monitor pending when the server is
    kill -9'd: (data directory, the app's port, the monitor's push path)."""
    rcv1 = tp.Receiver()
    port = rcv1.port
    d = tp.make_data(name, "http://127.0.0.1:%d/hook" % port)
    srv = server(d, name + "-1")
    gw = tp.Gateway(srv)
    app = tp.App(srv)
    mon = tp.start_monitor(app, gw)
    rcv1.mode = "fail"
    rcv1.stop()
    check("%s: %d values stored while the app is down" % (name, n), gw.publish_values(mon, list(range(n))))
    gw.close()
    kill9(srv)
    return d, port, "/hook/monitors/%s" % mon


def case_bound():
    """10 values pending at a kill -9, restarted with [push] max_queue = 5: the
    bound holds at the recovery as it does live (the oldest not in flight
    dropped, with the alarm), the newest arrive."""
    name = "bound"
    d, port, prefix = pending_at_kill(name, 10)
    srv2 = server(d, name + "-2", max_queue=5)
    rcv2 = tp.Receiver(port=port)
    rcv2.wait_for(lambda r: len(tp.values_of(r.accepted(prefix))) >= 5, 30)
    got = tp.values_of(rcv2.accepted(prefix))
    check("%s: 5 of the 10 arrive: the newest (the head, in flight at once, is kept)" % name,
          len(got) == 5 and got[1:] == [6, 7, 8, 9], got)
    log = srv2.logtext()
    check("%s: the drop at the recovery is logged and alarmed" % name,
          "push queue over its bound" in log and "messages_pending=5" in log, log[-2000:])
    check("%s: the restarted server stops cleanly" % name, srv2.stop() == 0)
    rcv2.stop()


def case_twice():
    """An app that never received anything (no mark of its own): 5 values
    pending, kill -9, a restart while it is still down, kill -9 again, a
    restart: all 5 arrive (the first recovery gave the app a mark before it
    moved the start past its messages)."""
    name = "kill9_twice"
    rcv1 = tp.Receiver()
    port = rcv1.port
    d = tp.make_data(name, "http://127.0.0.1:%d/hook" % port)
    rcv1.mode = "fail"
    rcv1.stop()
    srv = server(d, name + "-1")
    gw = tp.Gateway(srv)
    app = tp.App(srv)
    mon = tp.start_monitor(app, gw)
    prefix = "/hook/monitors/%s" % mon
    check("%s: 5 values stored, the app down from the start" % name, gw.publish_values(mon, list(range(5))))
    gw.close()
    kill9(srv)
    srv2 = server(d, name + "-2")
    check("%s: the first restart finds them" % name,
          tp.wait_until(lambda: "messages_pending=5" in srv2.logtext()), srv2.logtext()[-1500:])
    kill9(srv2)
    srv3 = server(d, name + "-3")
    rcv2 = tp.Receiver(port=port)
    rcv2.wait_for(lambda r: len(tp.values_of(r.accepted(prefix))) >= 5, 30)
    got = tp.values_of(rcv2.accepted(prefix))
    check("%s: after a second kill -9 all 5 arrive, once each, in order" % name, got == list(range(5)), got)
    check("%s: the restarted server stops cleanly" % name, srv3.stop() == 0)
    rcv2.stop()


def case_gone():
    """5 values pending at a kill -9 while the app is down; before the
    restart its push URL is removed (an offline sheet import): the recovery
    queues nothing for it, and the app, back on its old URL, gets nothing
    (the values stay readable through AP-IF)."""
    name = "url_gone"
    d, port, prefix = pending_at_kill(name, 5)
    sheet = os.path.join(tp.T, name + "-nourl.csv")
    with open(sheet, "w") as f:
        f.write(tp.sheet_with_push(""))
    r = subprocess.run([BIN, "sheet", "import", sheet, d], capture_output=True, text=True)
    check("%s: the app's push URL removed while the server is down" % name, r.returncode == 0, r.stderr)
    rcv2 = tp.Receiver(port=port)  # the app is up on its old URL
    srv2 = server(d, name + "-2")
    check("%s: the recovery queues nothing for an app without a push URL" % name,
          tp.wait_until(lambda: "msg=\"push recovered\"" in srv2.logtext())
          and "messages_pending=0" in srv2.logtext().split("push recovered")[1][:300], srv2.logtext()[-1500:])
    st, js = tp.App(srv2).call("GET", "/api/v1/stored-values?dataId=P001")
    check("%s: the values stay readable through AP-IF" % name, st == 200 and len((js or {}).get("values", [])) >= 5,
          (st, js))
    check("%s: the restarted server stops cleanly" % name, srv2.stop() == 0)
    check("%s: nothing reached the app's old URL" % name, not rcv2.accepted(prefix), rcv2.accepted(prefix))
    rcv2.stop()


def main():
    tp.run_all([("kill -9 with pushes pending, the app down", lambda: case("kill9_app_down", "kill")),
                ("SIGTERM with pushes pending, the app down", lambda: case("sigterm", "term")),
                ("kill -9 during a delivery", lambda: case("kill9_inflight", "kill", inflight=True)),
                ("the bound at the restart", case_bound),
                ("kill -9 twice, the app never reached", case_twice),
                ("the app's push URL removed before the restart", case_gone)])


if __name__ == "__main__":
    main()
