#!/usr/bin/env python3
"""Long-lived TCP connections for the ECMP lab (scripts/lab-ecmp.sh,
tests/e2e_ecmp.sh): a server for the real servers and a client that keeps N
connections busy and says, per connection, whether it stayed intact.

  lab-longconn.py server --port P --name NAME [--ready FILE]
  lab-longconn.py client --dst VIP --port P [--conns 1000] [--sources A,B,...]
                  [--interval 0.2] [--stall-timeout 30] [--duration 300]
                  [--ready FILE] [--report FILE]

Protocol, one line each way every --interval seconds per connection:
  client -> server   "SEQ PAYLOAD\\n"        (SEQ counts from 0, PAYLOAD hex)
  server -> client   "NAME SEQ SHA256HEX\\n"  (NAME: the real server; SHA256:
                      of every byte the server received on this connection)
The client hashes what it sent and compares, so a reply proves that this
server received every byte of the connection, in order, and nothing else. A
connection is intact when it never saw a reset, an end of stream, a wrong
reply or a reply later than --stall-timeout, never changed real server, and
its last exchange (after the client is told to stop) succeeds too.

The client runs until SIGTERM or SIGINT (or --duration, a bound), then
finishes each connection's exchange in flight, closes, and writes a JSON
report (--report, else stdout). --ready gets a JSON line once every
connection has been opened and answered once (or failed to open).
One process, asyncio, standard library only.
"""

import argparse
import asyncio
import hashlib
import json
import os
import random
import resource
import signal
import socket
import sys
import time


def raise_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


# ------------------------------------------------------------------ server


async def serve(args):
    name = args.name.encode()
    stats = {"open": 0, "total": 0}

    async def handle(reader, writer):
        stats["open"] += 1
        stats["total"] += 1
        h = hashlib.sha256()
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                if len(line) > 256 or not line.endswith(b"\n"):
                    break  # not our client: drop it
                h.update(line)
                seq = line.split(b" ", 1)[0]
                writer.write(b"%s %s %s\n" % (name, seq, h.hexdigest().encode()))
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            stats["open"] -= 1
            writer.close()

    server = await asyncio.start_server(handle, host=args.bind, port=args.port, backlog=4096, reuse_address=True)
    if args.ready:
        write_atomic(args.ready, "listening %d\n" % args.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set)
    async with server:
        await stop.wait()


# ------------------------------------------------------------------ client


class Conn:
    __slots__ = ("idx", "src", "sport", "rs", "state", "detail", "t_fail", "seq", "max_rtt", "slow")

    def __init__(self, idx, src):
        self.idx = idx
        self.src = src
        self.sport = 0
        self.rs = None
        self.state = "new"  # new | open | intact | failed kinds
        self.detail = ""
        self.t_fail = None
        self.seq = 0
        self.max_rtt = 0.0
        self.slow = 0  # exchanges slower than 1 s


class Client:
    def __init__(self, args):
        self.a = args
        self.sources = [s for s in (args.sources or "").split(",") if s] or [None]
        self.conns = [Conn(i, self.sources[i % len(self.sources)]) for i in range(args.conns)]
        self.stop = asyncio.Event()
        self.t0 = time.monotonic()
        self.answered = 0
        self.ready_done = asyncio.Event()

    def fail(self, c, kind, detail):
        if c.state in ("open", "new"):
            c.state = kind
            c.detail = detail
            c.t_fail = round(time.monotonic() - self.t0, 3)

    async def open(self, c, sem):
        last = ""
        for attempt in range(3):
            async with sem:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                try:
                    if c.src:
                        sock.bind((c.src, 0))
                    await asyncio.wait_for(
                        asyncio.get_running_loop().sock_connect(sock, (self.a.dst, self.a.port)), 5
                    )
                    reader, writer = await asyncio.open_connection(sock=sock)
                    c.sport = sock.getsockname()[1]
                    return reader, writer
                except (OSError, asyncio.TimeoutError) as e:
                    sock.close()
                    last = repr(e)
            await asyncio.sleep(0.5)
        self.fail(c, "connect", last)
        return None

    async def run_conn(self, c, sem):
        # Spread the openings and the exchanges over the interval.
        await asyncio.sleep(random.random() * self.a.interval)
        rw = await self.open(c, sem)
        if rw is None:
            self.note_answered()
            return
        reader, writer = rw
        c.state = "open"
        h = hashlib.sha256()
        first = True
        rnd = random.Random(c.idx)
        try:
            while True:
                last = self.stop.is_set()
                payload = "%016x" % rnd.getrandbits(64)
                line = ("%d %s\n" % (c.seq, payload)).encode()
                h.update(line)
                t = time.monotonic()
                writer.write(line)
                try:
                    reply = await asyncio.wait_for(reader.readline(), self.a.stall_timeout)
                except asyncio.TimeoutError:
                    self.fail(c, "stall", "no reply to seq %d in %ss" % (c.seq, self.a.stall_timeout))
                    break
                rtt = time.monotonic() - t
                c.max_rtt = max(c.max_rtt, rtt)
                if rtt > 1.0:
                    c.slow += 1
                if not reply:
                    self.fail(c, "eof", "end of stream after seq %d" % (c.seq - 1))
                    break
                parts = reply.decode(errors="replace").split()
                if len(parts) != 3 or parts[1] != str(c.seq) or parts[2] != h.hexdigest():
                    self.fail(c, "mismatch", "seq %d: got %r" % (c.seq, reply[:120]))
                    break
                if c.rs is None:
                    c.rs = parts[0]
                elif parts[0] != c.rs:
                    self.fail(c, "moved", "from %s to %s at seq %d" % (c.rs, parts[0], c.seq))
                    break
                c.seq += 1
                if first:
                    first = False
                    self.note_answered()
                if last:
                    c.state = "intact"
                    break
                # Sleep one interval, or less if told to stop (then one more
                # exchange proves the connection still works).
                try:
                    await asyncio.wait_for(self.stop.wait(), self.a.interval * (0.8 + 0.4 * rnd.random()))
                except asyncio.TimeoutError:
                    pass
        except ConnectionResetError as e:
            self.fail(c, "reset", repr(e))
        except (OSError, asyncio.IncompleteReadError) as e:
            self.fail(c, "error", repr(e))
        finally:
            if first:
                self.note_answered()
            try:
                writer.close()
            except OSError:
                pass

    def note_answered(self):
        self.answered += 1
        if self.answered >= len(self.conns):
            self.ready_done.set()

    def report(self):
        kinds = {}
        by_rs = {}
        by_src = {}
        for c in self.conns:
            kinds[c.state] = kinds.get(c.state, 0) + 1
            if c.rs:
                by_rs[c.rs] = by_rs.get(c.rs, 0) + 1
                # Which real servers each source address reached (persistence).
                per = by_src.setdefault(c.src or "", {})
                per[c.rs] = per.get(c.rs, 0) + 1
        opened = sum(1 for c in self.conns if c.state != "connect")
        intact = kinds.get("intact", 0)
        rtts = sorted(c.max_rtt for c in self.conns if c.state != "connect")
        failures = [
            {"conn": c.idx, "src": c.src, "sport": c.sport, "rs": c.rs, "kind": c.state, "t": c.t_fail, "detail": c.detail}
            for c in self.conns
            if c.state not in ("intact", "connect")
        ]
        return {
            "conns": len(self.conns),
            "opened": opened,
            "intact": intact,
            "intact_pct": round(100.0 * intact / opened, 2) if opened else 0.0,
            "states": kinds,
            "by_rs": by_rs,
            "by_src": by_src,
            "exchanges": sum(c.seq for c in self.conns),
            "max_rtt_s": round(rtts[-1], 3) if rtts else None,
            "p99_max_rtt_s": round(rtts[int(len(rtts) * 0.99) - 1], 3) if len(rtts) >= 100 else None,
            "conns_with_slow_exchange": sum(1 for c in self.conns if c.slow),
            "duration_s": round(time.monotonic() - self.t0, 1),
            "failures": failures,
        }

    async def main(self):
        loop = asyncio.get_running_loop()
        for s in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(s, self.stop.set)
        sem = asyncio.Semaphore(self.a.parallel_connects)
        tasks = [asyncio.create_task(self.run_conn(c, sem)) for c in self.conns]

        async def ready_writer():
            await self.ready_done.wait()
            if self.a.ready:
                opened = sum(1 for c in self.conns if c.state == "open")
                write_atomic(
                    self.a.ready,
                    json.dumps({"opened": opened, "conns": len(self.conns), "t": round(time.monotonic() - self.t0, 2)}) + "\n",
                )

        rw = asyncio.create_task(ready_writer())
        try:
            await asyncio.wait_for(self.stop.wait(), self.a.duration)
        except asyncio.TimeoutError:
            self.stop.set()
        # Every connection finishes its last exchange (bounded by the stall
        # timeout, plus the connects still retrying).
        await asyncio.wait(tasks, timeout=self.a.stall_timeout + 20)
        for t in tasks:
            t.cancel()
        for c in self.conns:
            if c.state == "open":
                self.fail(c, "stall", "did not finish")
        rw.cancel()
        out = json.dumps(self.report(), indent=1) + "\n"
        if self.a.report:
            write_atomic(self.a.report, out)
        else:
            sys.stdout.write(out)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("server")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--bind", default="0.0.0.0")
    s.add_argument("--name", required=True)
    s.add_argument("--ready")
    c = sub.add_parser("client")
    c.add_argument("--dst", required=True)
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--conns", type=int, default=1000)
    c.add_argument("--sources", default="", help="comma-separated source addresses, used in turn")
    c.add_argument("--interval", type=float, default=0.2)
    c.add_argument("--stall-timeout", type=float, default=30.0)
    c.add_argument("--duration", type=float, default=300.0, help="upper bound, seconds")
    c.add_argument("--parallel-connects", type=int, default=64)
    c.add_argument("--ready")
    c.add_argument("--report")
    a = p.parse_args()
    if a.cmd == "server":
        raise_nofile(65536)
        asyncio.run(serve(a))
    else:
        if not 1 <= a.conns <= 20000:
            p.error("--conns 1..20000")
        raise_nofile(a.conns + 256)
        asyncio.run(Client(a).main())


if __name__ == "__main__":
    main()
