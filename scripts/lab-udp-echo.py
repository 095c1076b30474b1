#!/usr/bin/env python3
"""A UDP service for the ferrovs lab, and its client.

  serve --name NAME --port P --addr IP [--addr IP]... [--ready FILE]
      Answers every datagram to one of the addresses (the VIP in DR and TUN,
      where real servers hold it; the real server's own address in NAT and
      FULLNAT; addresses not held here are skipped) with "NAME " and the
      datagram, from the address it was sent to. Writes FILE when listening.

  probe --dst IP --port P [--requests N] [--workers W] [--timeout S]
        [--retries R] [--until-gone PID] [--while-exists FILE]
        [--stream-interval S] [--pause S]
      Legitimate clients: W threads each send requests, each from a fresh
      socket (a new flow), and wait TIMEOUT for the answer, asking again on
      the same socket up to R times, as a DNS resolver does; N requests in
      all, or, with --until-gone, as many as fit while process PID lives
      (--while-exists: while FILE exists), each thread pausing S seconds
      between them (--pause).
      With --stream-interval one more socket asks every S seconds for as
      long as the requests run (a long-lived flow) and must always be
      answered by the same real server. Prints one JSON object: requests,
      answered (at all), first_try (answered without asking again), and the
      stream's sent, answered and servers.

  gap --dst IP --port P [--interval S] [--duration S] [--while-exists FILE]
      One flow that sends a numbered datagram every S seconds (default
      0.001) and records when each answer comes back, for DURATION
      seconds or while FILE exists. Prints one JSON object: sent,
      answered, max_gap_ms (the longest time between two answers: how
      long the path was down), gap_at_s (when that gap began, from the
      start) and servers.
"""

import argparse
import json
import os
import select
import socket
import sys
import threading
import time


def serve(a):
    socks = []
    for addr in a.addr:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        try:
            s.bind((addr, a.port))
        except OSError:
            s.close()
            continue
        s.setblocking(False)
        socks.append(s)
    if not socks:
        sys.exit(f"lab-udp-echo: none of {a.addr} is local")
    prefix = (a.name + " ").encode()
    if a.ready:
        with open(a.ready, "w") as f:
            f.write("ready\n")
    while True:
        r, _, _ = select.select(socks, [], [])
        for s in r:
            for _ in range(64):
                try:
                    data, peer = s.recvfrom(2048)
                except BlockingIOError:
                    break
                try:
                    s.sendto(prefix + data, peer)
                except OSError:
                    pass


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def probe(a):
    lock = threading.Lock()
    st = {"requests": 0, "answered": 0, "first_try": 0}
    left = [a.requests]
    running = [True]

    def take():
        with lock:
            if a.until_gone or a.while_exists:
                if a.until_gone and not alive(a.until_gone):
                    return False
                if a.while_exists and not os.path.exists(a.while_exists):
                    return False
            elif left[0] <= 0:
                return False
            left[0] -= 1
            st["requests"] += 1
            return True

    def worker(w):
        n = 0
        while take():
            n += 1
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(a.timeout)
            msg = f"q{w}-{n}".encode()
            got = False
            for attempt in range(a.retries + 1):
                try:
                    s.sendto(msg, (a.dst, a.port))
                    deadline = time.monotonic() + a.timeout
                    while time.monotonic() < deadline:
                        data = s.recv(2048)
                        if data.endswith(b" " + msg):
                            got = True
                            break
                except (socket.timeout, OSError):
                    pass
                if got:
                    with lock:
                        st["answered"] += 1
                        st["first_try"] += attempt == 0
                    break
            s.close()
            if a.pause:
                time.sleep(a.pause)

    stream = {"sent": 0, "answered": 0, "servers": []}

    def streamer():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(1.0)
        servers = set()
        k = 0
        while running[0]:
            k += 1
            msg = f"s-{k}".encode()
            try:
                s.sendto(msg, (a.dst, a.port))
                stream["sent"] += 1
                t_end = time.monotonic() + 1.0
                while time.monotonic() < t_end:
                    data = s.recv(2048)
                    if data.endswith(b" " + msg):
                        stream["answered"] += 1
                        servers.add(data.split(b" ", 1)[0].decode())
                        break
            except (socket.timeout, OSError):
                pass
            time.sleep(a.stream_interval)
        stream["servers"] = sorted(servers)

    ts = [threading.Thread(target=worker, args=(w,)) for w in range(a.workers)]
    sth = threading.Thread(target=streamer) if a.stream_interval > 0 else None
    if sth:
        sth.start()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    # A stream alone runs as long as the requests would have.
    while sth and not ts and (
        (a.until_gone and alive(a.until_gone)) or (a.while_exists and os.path.exists(a.while_exists))
    ):
        time.sleep(0.05)
    running[0] = False
    if sth:
        sth.join()
    st["stream"] = stream
    print(json.dumps(st))


def gap(a):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((a.dst, a.port))
    s.settimeout(0.2)
    t0 = time.monotonic()
    arrivals = []
    servers = set()
    running = [True]

    def receiver():
        while running[0]:
            try:
                data = s.recv(2048)
            except (socket.timeout, OSError):
                continue
            arrivals.append(time.monotonic())
            servers.add(data.split(b" ", 1)[0].decode(errors="replace"))

    th = threading.Thread(target=receiver, daemon=True)
    th.start()
    sent = 0
    nxt = time.monotonic()
    while True:
        now = time.monotonic()
        if a.while_exists and not os.path.exists(a.while_exists):
            break
        if not a.while_exists and now - t0 >= a.duration:
            break
        try:
            s.send(b"%d" % sent)
            sent += 1
        except OSError:
            pass
        nxt += a.interval
        delay = nxt - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    time.sleep(0.3)
    running[0] = False
    th.join()
    worst, at = 0.0, 0.0
    for x, y in zip(arrivals, arrivals[1:]):
        if y - x > worst:
            worst, at = y - x, x - t0
    print(json.dumps({
        "sent": sent,
        "answered": len(arrivals),
        "max_gap_ms": round(worst * 1000, 1),
        "gap_at_s": round(at, 3),
        "servers": sorted(servers),
    }))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--name", required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--addr", action="append", required=True)
    s.add_argument("--ready")
    p = sub.add_parser("probe")
    p.add_argument("--dst", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--requests", type=int, default=100)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--timeout", type=float, default=1.0)
    p.add_argument("--retries", type=int, default=2)
    p.add_argument("--until-gone", type=int, default=0)
    p.add_argument("--while-exists")
    p.add_argument("--stream-interval", type=float, default=0.0)
    p.add_argument("--pause", type=float, default=0.0, help="seconds each thread waits between requests")
    g = sub.add_parser("gap")
    g.add_argument("--dst", required=True)
    g.add_argument("--port", type=int, required=True)
    g.add_argument("--interval", type=float, default=0.001)
    g.add_argument("--duration", type=float, default=5.0)
    g.add_argument("--while-exists")
    a = ap.parse_args()
    if a.cmd == "serve":
        serve(a)
    elif a.cmd == "gap":
        gap(a)
    else:
        probe(a)


if __name__ == "__main__":
    main()
