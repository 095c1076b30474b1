#!/usr/bin/env python3
"""Clients, a TCP echo service and the report of perf/soak.sh.

  echo-serve --name NAME --port P --ready FILE
      A threaded TCP echo service on every address (the VIP too, in DR and
      TUN): every line it reads is answered with "NAME " + the line.

  hold --dst IP --port P --conns N --interval S --stall S --stop-file FILE
       --out FILE
      N long-lived connections, opened at the start and never reopened.
      Each sends a numbered line every S seconds and waits for its echo. A
      connection is lost when it is reset or closed, when an echo is wrong
      or comes from another real server than its first, or when no echo
      comes within --stall seconds. Runs until FILE is gone; writes a JSON
      summary to --out (also every 10 s while running).

  short --dst IP --port P --rate R --threads T --stop-file FILE --log FILE
      New short HTTP/1.1 connections (`Connection: close`), R per second in
      all from T threads, until FILE is gone. One line per request in the
      log: start end result detail. result is ok, refused, connect_timeout,
      reset, read_timeout, http_NNN or error.

  report --work DIR --start T --end T --warmup-end T [--json FILE]
      Reads what soak.sh left in DIR and prints the report (table), and
      writes it as JSON.
"""

import argparse
import errno
import json
import os
import re
import socket
import socketserver
import sys
import threading
import time


# ------------------------------------------------------------------ echo

def echo_serve(a):
    name = a.name.encode()

    class H(socketserver.StreamRequestHandler):
        def handle(self):
            try:
                for line in self.rfile:
                    self.wfile.write(name + b" " + line)
                    self.wfile.flush()
            except OSError:
                pass

    class S(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True
        request_queue_size = 256

    srv = S(("0.0.0.0", a.port), H)
    with open(a.ready, "w") as f:
        f.write("%d\n" % os.getpid())
    srv.serve_forever()


# ------------------------------------------------------------------ hold

def hold(a):
    lock = threading.Lock()
    conns = []  # dicts
    stop = threading.Event()

    def one(i):
        st = {"id": i, "server": None, "exchanges": 0, "lost": None, "lost_at": None,
              "max_rtt": 0.0}
        with lock:
            conns.append(st)
        try:
            s = socket.create_connection((a.dst, a.port), timeout=10)
        except OSError as e:
            st["lost"] = "connect: %s" % e
            st["lost_at"] = time.time()
            return
        s.settimeout(a.stall)
        f = s.makefile("rb")
        seq = 0
        try:
            while not stop.is_set():
                seq += 1
                msg = b"%d %d\n" % (i, seq)
                t0 = time.time()
                s.sendall(msg)
                line = f.readline()
                rtt = time.time() - t0
                if not line:
                    raise ConnectionError("closed by peer")
                parts = line.split(b" ", 1)
                if len(parts) != 2 or parts[1] != msg:
                    raise ConnectionError("wrong echo %r" % line[:60])
                srv = parts[0].decode(errors="replace")
                if st["server"] is None:
                    st["server"] = srv
                elif st["server"] != srv:
                    raise ConnectionError("echo from %s, was %s" % (srv, st["server"]))
                st["exchanges"] += 1
                st["max_rtt"] = max(st["max_rtt"], rtt)
                stop.wait(a.interval)
        except socket.timeout:
            st["lost"] = "stall: no echo within %gs" % a.stall
            st["lost_at"] = time.time()
        except OSError as e:
            st["lost"] = "%s: %s" % (type(e).__name__, e)
            st["lost_at"] = time.time()
        finally:
            try:
                s.close()
            except OSError:
                pass

    def summary():
        with lock:
            cs = [dict(c) for c in conns]
        return {
            "conns": a.conns,
            "opened": sum(1 for c in cs if c["exchanges"] > 0),
            "lost": sum(1 for c in cs if c["lost"]),
            "exchanges": sum(c["exchanges"] for c in cs),
            "max_rtt_s": round(max([c["max_rtt"] for c in cs] or [0]), 3),
            "servers": sorted({c["server"] for c in cs if c["server"]}),
            "losses": [{"id": c["id"], "server": c["server"], "reason": c["lost"],
                        "at": c["lost_at"]} for c in cs if c["lost"]],
        }

    def write():
        tmp = a.out + ".tmp"
        with open(tmp, "w") as f:
            json.dump(summary(), f)
        os.replace(tmp, a.out)

    ts = []
    for i in range(a.conns):
        t = threading.Thread(target=one, args=(i,), daemon=True)
        t.start()
        ts.append(t)
        time.sleep(0.05)
    last = 0.0
    while os.path.exists(a.stop_file):
        if time.time() - last >= 10:
            write()
            last = time.time()
        time.sleep(0.2)
    stop.set()
    for t in ts:
        t.join(a.stall + 2)
    write()


# ------------------------------------------------------------------ short

def short(a):
    req = ("GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % a.dst).encode()
    out = open(a.log, "a", buffering=1)
    lock = threading.Lock()
    period = a.threads / a.rate

    def one():
        t0 = time.time()
        res, detail = "ok", ""
        s = None
        port = 0
        connected = [False]
        try:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(a.connect_timeout)
            try:
                s.connect((a.dst, a.port))
            except OSError:
                port = s.getsockname()[1]  # the kernel keeps the port it chose
                raise
            port = s.getsockname()[1]
            connected[0] = True
            s.settimeout(a.read_timeout)
            s.sendall(req)
            buf = b""
            while True:
                d = s.recv(4096)
                if not d:
                    break
                buf += d
            m = re.match(rb"HTTP/1\.[01] (\d{3})", buf)
            body = buf.split(b"\r\n\r\n", 1)[-1].strip().decode(errors="replace")
            if not m:
                res, detail = "error", "no status line (%d bytes)" % len(buf)
            elif m.group(1) != b"200":
                res, detail = "http_" + m.group(1).decode(), body[:30]
            else:
                detail = "%s:%d" % (body[:30], port)
        except socket.timeout:
            res, detail = ("read_timeout" if port and connected[0] else "connect_timeout"), "port=%d" % port
        except ConnectionRefusedError:
            res, detail = "refused", "port=%d" % port
        except ConnectionResetError:
            res, detail = "reset", "port=%d" % port
        except OSError as e:
            res, detail = "error", "%s_port=%d" % (errno.errorcode.get(e.errno, e), port)
        finally:
            if s is not None:
                s.close()
        return t0, res, detail

    def loop():
        nxt = time.time()
        while os.path.exists(a.stop_file):
            t0, res, detail = one()
            t1 = time.time()
            with lock:
                out.write("%.3f %.3f %s %s\n" % (t0, t1, res, detail.replace(" ", "_") or "-"))
            nxt += period
            if nxt > t1:
                time.sleep(nxt - t1)
            else:
                nxt = t1  # behind (a slow request): no catching up in a burst

    ts = [threading.Thread(target=loop, daemon=True) for _ in range(a.threads)]
    for i, t in enumerate(ts):
        t.start()
        time.sleep(period / a.threads)
    for t in ts:
        t.join()


# ------------------------------------------------------------------ report

def parse_metrics(path):
    """{(name, frozenset(labels)): value} of a Prometheus text file."""
    out = {}
    try:
        with open(path) as f:
            for line in f:
                if not line or line[0] == "#":
                    continue
                m = re.match(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)', line)
                if not m:
                    continue
                labels = frozenset(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
                try:
                    out[(m.group(1), labels)] = float(m.group(3))
                except ValueError:
                    pass
    except OSError:
        pass
    return out


def msum(m, name, **want):
    return sum(v for (n, ls), v in m.items()
               if n == name and all((k, w) in ls for k, w in want.items()))


def by_label(m, name, label):
    out = {}
    for (n, ls), v in m.items():
        if n == name:
            d = dict(ls)
            if label in d:
                out[d[label]] = out.get(d[label], 0) + v
    return out


def read_events(path):
    ev = []
    try:
        with open(path) as f:
            for line in f:
                p = line.rstrip("\n").split(" ", 2)
                if len(p) >= 2:
                    ev.append((float(p[0]), p[1], p[2] if len(p) > 2 else ""))
    except OSError:
        pass
    return ev


def report(a):
    w = a.work
    start, end, warm = a.start, a.end, a.warmup_end
    ev = read_events(os.path.join(w, "events.log"))

    # Samples: "t rss_kb metrics_file".
    samples = []
    with open(os.path.join(w, "samples.tsv")) as f:
        for line in f:
            t, rss, mf = line.split()
            m = parse_metrics(mf)
            cap = msum(m, "ferrovs_worker_connection_table_size")
            conns = msum(m, "ferrovs_worker_connections")
            samples.append({
                "t": round(float(t) - start, 1),
                "rss_kib": int(rss),
                "connections": int(conns),
                "unconfirmed": int(msum(m, "ferrovs_worker_connections_unconfirmed")),
                "occupancy_pct": round(100 * conns / cap, 2) if cap else None,
                "pressure": int(msum(m, "ferrovs_worker_conn_table_pressure")),
                "drops": {k: int(v) for k, v in sorted(by_label(m, "ferrovs_worker_drops_total", "reason").items()) if v},
                "evicted": {k: int(v) for k, v in sorted(by_label(m, "ferrovs_worker_connections_evicted_total", "reason").items()) if v},
                "reloads_ok": int(msum(m, "ferrovs_reloads_total", result="success")),
                "reloads_failed": int(msum(m, "ferrovs_reloads_total", result="failure")),
                "_m": m,
            })
    samples = [s for s in samples if s["rss_kib"] > 0]
    first, last = samples[0], samples[-1]
    table_size = int(msum(last["_m"], "ferrovs_worker_connection_table_size"))

    # RSS after warm-up.
    post = [s for s in samples if s["t"] + start >= warm]

    def med3(ss):
        v = sorted(x["rss_kib"] for x in ss)
        return v[len(v) // 2] if v else first["rss_kib"]
    # Levels, not single samples: the median of the first three samples
    # after warm-up and of the last three (a sample that lands on a listing
    # of the whole table, or inside a flood, sees transient allocations
    # that are given back; the peak is reported beside).
    base = med3(post[:3])
    fin = med3(post[-3:])
    peak = max(s["rss_kib"] for s in post) if post else fin
    growth = fin - base
    bound = max(a.rss_bound_kib, base * a.rss_bound_pct / 100)
    slope = None
    if len(post) >= 3:
        xs = [s["t"] for s in post]
        ys = [s["rss_kib"] for s in post]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        den = sum((x - mx) ** 2 for x in xs)
        if den:
            slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den * 3600  # KiB/h
    rss = {
        "warmup_end_s": round(warm - start, 1),
        "at_start_kib": first["rss_kib"],
        "after_warmup_kib": base,
        "at_end_kib": fin,
        "peak_after_warmup_kib": peak,
        "growth_after_warmup_kib": growth,
        "growth_after_warmup_pct": round(100 * growth / base, 2) if base else None,
        "peak_growth_after_warmup_kib": peak - base,
        "bound_kib": int(bound),
        "trend_kib_per_hour": round(slope) if slope is not None else None,
        "verdict": "flat" if growth <= bound else "growing",
    }

    # Windows in which short requests may fail.
    fail_windows = []  # (from, to, why)
    down = {}
    for t, kind, det in ev:
        if kind == "rs_stop":
            down[det.split()[0]] = t
        elif kind == "rs_out":
            rs = det.split()[0]
            if rs in down:
                fail_windows.append((down.pop(rs), t + a.margin, "server_failure:" + rs))
        elif kind == "rs_start":
            rs = det.split()[0]
            if rs in down:  # never seen out: the whole stop
                fail_windows.append((down.pop(rs), t + a.margin, "server_failure:" + rs))
    for rs, t in down.items():
        fail_windows.append((t, end, "server_failure:" + rs))
    flood_start = None
    floods = []
    for t, kind, det in ev:
        if kind == "flood_start":
            flood_start = t
        elif kind == "flood_end" and flood_start is not None:
            fail_windows.append((flood_start, t + a.margin, "flood"))
            floods.append({"at_s": round(flood_start - start, 1), "seconds": round(t - flood_start, 1),
                           "generator": det})
            flood_start = None

    downs = []  # (rs, stopped, back in the director's list)
    st = {}
    for t, kind, det in ev:
        if kind == "rs_stop":
            st[det.split()[0]] = t
        elif kind in ("rs_back", "rs_error") and det.split()[0] in st:
            downs.append((det.split()[0], st.pop(det.split()[0]), t))
    for r, t in st.items():
        downs.append((r, t, end))

    def is_down(rs, t):
        return any(r == rs and f <= t <= to for r, f, to in downs)

    def why(t0, t1):
        ws = [k.split(":")[0] for f, to, k in fail_windows if t0 <= to and t1 >= f]
        if "flood" in ws and "server_failure" in ws:
            return "flood+server_failure"
        return ws[0] if ws else "unexplained"

    short_tot, short_ok = 0, 0
    fails = {}
    unexplained = []
    served = {}
    last_on_port = {}
    try:
        with open(os.path.join(w, "short.log")) as f:
            for line in f:
                p = line.split()
                if len(p) < 4:
                    continue
                t0, t1, res, det = float(p[0]), float(p[1]), p[2], p[3]
                short_tot += 1
                pm = re.search(r"port=(\d+)", det) if res != "ok" else re.search(r":(\d+)$", det)
                port = int(pm.group(1)) if pm else None
                prev = last_on_port.get(port)
                if port:
                    last_on_port[port] = (t0, res, det)
                if res == "ok":
                    short_ok += 1
                    rs = det.split(":")[0]
                    served[rs] = served.get(rs, 0) + 1
                    continue
                c = why(t0, t1)
                if c == "unexplained" and prev and t0 - prev[0] < a.reuse_window:
                    prev_rs = prev[2].split(":")[0] if prev[1] == "ok" else None
                    if prev[1] != "ok" or (prev_rs and is_down(prev_rs, t0)):
                        # The client reused the source port of a connection
                        # of less than a TIME_WAIT ago that went to a server
                        # that is out now (or that failed): the SYN matched
                        # that connection's entry and followed it to the
                        # dead server instead of being scheduled anew (IPVS
                        # reschedules such a SYN: conn_reuse_mode,
                        # expire_nodest_conn).
                        c = "stale_entry"
                fails.setdefault(c, {}).setdefault(res, 0)
                fails[c][res] += 1
                if c in ("unexplained", "stale_entry") and sum(1 for u in unexplained if u["class"] == c) < 10:
                    unexplained.append({"class": c, **{"at_s": round(t0 - start, 2), "result": res, "detail": det,
                                        "port_before": None if not prev else
                                        {"s_earlier": round(t0 - prev[0], 2), "result": prev[1], "detail": prev[2]}}})
    except OSError:
        pass

    try:
        with open(os.path.join(w, "hold.json")) as f:
            held = json.load(f)
    except (OSError, ValueError):
        held = {"conns": 0, "lost": None, "error": "no summary"}
    for l in held.get("losses", []):
        if l.get("at"):
            l["at_s"] = round(l["at"] - start, 1)
            l.pop("at")

    reload_ev = [e for e in ev if e[1] == "reload"]
    reloads = {
        "sent": len(reload_ev),
        "ok": last["reloads_ok"] - first["reloads_ok"],
        "failed": last["reloads_failed"] - first["reloads_failed"],
        "weight_not_applied": sum(1 for e in reload_ev if "mismatch" in e[2]),
        "failed_server_readded": sum(1 for e in ev if e[1] == "readded"),
    }
    lnc = [e for e in ev if e[1] == "lnc"]
    lnc_rows = [int(re.search(r"rows=(\d+)", e[2]).group(1)) for e in lnc if "rows=" in e[2]]
    lnc_ms = [float(re.search(r"ms=([\d.]+)", e[2]).group(1)) for e in lnc if "ms=" in e[2]]
    rs_cycles = sum(1 for e in ev if e[1] == "rs_stop")
    rs_out = [e for e in ev if e[1] == "rs_out"]
    rs_back = [e for e in ev if e[1] == "rs_back"]

    drops_total = {k: v - first["drops"].get(k, 0) for k, v in last["drops"].items()}
    drops_total = {k: v for k, v in drops_total.items() if v}
    evicted = {k: v - first["evicted"].get(k, 0) for k, v in last["evicted"].items()}
    explained = sum(sum(v.values()) for k, v in fails.items() if k not in ("unexplained", "stale_entry"))
    unexp = sum(fails.get("unexplained", {}).values())
    stale = sum(fails.get("stale_entry", {}).values())
    still = [e for e in ev if e[1] == "ferrovs_gone"]

    rep = {
        "mode": a.mode, "workers": a.workers, "minutes": round((end - start) / 60, 2),
        "conn_table_size": table_size,
        "rss": rss,
        "occupancy": {
            "max_connections": max(s["connections"] for s in samples),
            "max_pct": max((s["occupancy_pct"] or 0) for s in samples),
            "max_unconfirmed": max(s["unconfirmed"] for s in samples),
            "pressure_samples": sum(s["pressure"] for s in samples),
            "at_end": last["connections"],
        },
        "drops_by_reason": drops_total,
        "evicted_by_reason": {k: v for k, v in evicted.items() if v},
        "long_lived": held,
        "short_requests": {
            "total": short_tot, "ok": short_ok, "failed": short_tot - short_ok,
            "served_by": served,
            "failed_by_window": fails,
            "explained": explained, "stale_entry": stale, "unexplained": unexp,
            "stale_or_unexplained_examples": unexplained,
        },
        "reloads": reloads,
        "server_failures": {"stops": rs_cycles, "taken_out": len(rs_out), "brought_back": len(rs_back),
                            "out_after_s": [float(e[2].split("after=")[1].rstrip("s")) for e in rs_out if "after=" in e[2]],
                            "back_after_s": [float(e[2].split("after=")[1].rstrip("s")) for e in rs_back if "after=" in e[2]]},
        "listings": {"count": len(lnc), "failed": sum(1 for e in lnc if "rc=0" not in e[2]),
                     "max_rows": max(lnc_rows or [0]), "max_ms": max(lnc_ms or [0])},
        "floods": floods,
        "ferrovs_exited": bool(still),
        "samples": [{k: v for k, v in s.items() if k != "_m"} for s in samples],
    }
    lost = held.get("lost")
    rep["verdict"] = {
        "rss_flat": rss["verdict"] == "flat",
        "long_lived_lost": lost,
        "unexplained_short_failures": unexp,
        "stale_entry_short_failures": stale,
        "pass": rss["verdict"] == "flat" and lost == 0 and held.get("opened") == held.get("conns")
        and unexp == 0 and stale == 0 and reloads["failed"] == 0 and not still
        and reloads["weight_not_applied"] == 0 and reloads["failed_server_readded"] == 0,
    }

    # ---- the table
    P = print
    P("soak: %s, %d worker(s), %.1f min, conn_table_size %d" % (a.mode, a.workers, rep["minutes"], table_size))
    P("")
    P("%8s %9s %8s %7s %6s %4s  %s" % ("t (s)", "RSS MiB", "conns", "occ %", "unconf", "prs", "drops (cumulative, by reason)"))
    for s in samples:
        P("%8.0f %9.1f %8d %7.2f %6d %4d  %s" % (s["t"], s["rss_kib"] / 1024, s["connections"], s["occupancy_pct"] or 0,
                                            s["unconfirmed"], s["pressure"],
                                            " ".join("%s=%d" % kv for kv in s["drops"].items()) or "-"))
    P("")
    P("RSS (medians of 3 samples): %.1f MiB at start, %.1f MiB after warm-up (t=%.0fs), %.1f MiB at the end, peak %.1f MiB;"
      % (rss["at_start_kib"] / 1024, base / 1024, rss["warmup_end_s"], fin / 1024, peak / 1024))
    P("     growth after warm-up %+d KiB (%+.2f %%), bound %d KiB, trend %s KiB/h -> %s"
      % (growth, rss["growth_after_warmup_pct"] or 0, rss["bound_kib"], rss["trend_kib_per_hour"], rss["verdict"].upper()))
    o = rep["occupancy"]
    P("occupancy: max %d connections (%.2f %% of %d), max %d unconfirmed, under pressure in %d samples"
      % (o["max_connections"], o["max_pct"], table_size, o["max_unconfirmed"], o["pressure_samples"]))
    P("drops by reason: %s" % (" ".join("%s=%d" % kv for kv in sorted(drops_total.items())) or "none"))
    P("evicted: %s" % (" ".join("%s=%d" % kv for kv in rep["evicted_by_reason"].items()) or "none"))
    P("long-lived: %s of %s opened, %s lost, %s exchanges, max echo RTT %ss, servers %s"
      % (held.get("opened"), held.get("conns"), lost, held.get("exchanges"), held.get("max_rtt_s"),
         ",".join(held.get("servers", []))))
    for l in held.get("losses", []):
        P("   lost: %s" % l)
    sr = rep["short_requests"]
    P("short requests: %d, %d ok, %d failed: %s; expected %d, stale entry %d, unexplained %d"
      % (sr["total"], sr["ok"], sr["failed"],
         "; ".join("%s: %s" % (k, ",".join("%s=%d" % kv for kv in v.items())) for k, v in sorted(fails.items())) or "-",
         explained, stale, unexp))
    for c in ("unexplained", "stale_entry"):
        for u in [u for u in unexplained if u["class"] == c][:4]:
            P("   %s" % u)
    P("reloads: %d sent, %d ok, %d failed, weight not applied %d, failed server re-added %d"
      % (reloads["sent"], reloads["ok"], reloads["failed"], reloads["weight_not_applied"], reloads["failed_server_readded"]))
    sf = rep["server_failures"]
    P("server failures: %d stops, %d taken out (after %s s), %d brought back (after %s s)"
      % (sf["stops"], sf["taken_out"], ",".join("%.1f" % x for x in sf["out_after_s"]) or "-",
         sf["brought_back"], ",".join("%.1f" % x for x in sf["back_after_s"]) or "-"))
    li = rep["listings"]
    P("-Lnc listings: %d (%d failed), up to %d rows, up to %.0f ms" % (li["count"], li["failed"], li["max_rows"], li["max_ms"]))
    for fl in floods:
        P("flood at %.0fs for %.0fs: %s" % (fl["at_s"], fl["seconds"], fl["generator"]))
    P("verdict: %s" % ("PASS" if rep["verdict"]["pass"] else "FAIL") + (" (ferrovs exited!)" if still else ""))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rep, f, indent=1)
    return 0 if rep["verdict"]["pass"] else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("echo-serve")
    p.add_argument("--name", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ready", required=True)
    p = sub.add_parser("hold")
    p.add_argument("--dst", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--conns", type=int, default=16)
    p.add_argument("--interval", type=float, default=2)
    p.add_argument("--stall", type=float, default=20)
    p.add_argument("--stop-file", required=True)
    p.add_argument("--out", required=True)
    p = sub.add_parser("short")
    p.add_argument("--dst", required=True)
    p.add_argument("--port", type=int, default=80)
    p.add_argument("--rate", type=float, default=30)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--connect-timeout", type=float, default=8)
    p.add_argument("--read-timeout", type=float, default=5)
    p.add_argument("--stop-file", required=True)
    p.add_argument("--log", required=True)
    p = sub.add_parser("report")
    p.add_argument("--work", required=True)
    p.add_argument("--start", type=float, required=True)
    p.add_argument("--end", type=float, required=True)
    p.add_argument("--warmup-end", type=float, required=True)
    p.add_argument("--mode", default="?")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--margin", type=float, default=3, help="seconds after a window a failure still belongs to it")
    p.add_argument("--reuse-window", type=float, default=120,
                   help="a failure outside the windows on a source port whose previous connection, this recently (the TIME_WAIT timeout), failed or went to a server that is out now is classed stale_entry")
    p.add_argument("--rss-bound-kib", type=int, default=4096)
    p.add_argument("--rss-bound-pct", type=float, default=2)
    p.add_argument("--json")
    a = ap.parse_args()
    if a.cmd == "echo-serve":
        echo_serve(a)
    elif a.cmd == "hold":
        hold(a)
    elif a.cmd == "short":
        short(a)
    else:
        sys.exit(report(a))


if __name__ == "__main__":
    main()
