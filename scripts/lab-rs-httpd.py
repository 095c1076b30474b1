#!/usr/bin/env python3
"""The real servers' HTTP server in the ferrovs namespace lab (scripts/lab.sh).

Started by `lab.sh up` inside each real-server namespace. Listens on every
--port on all addresses (so it answers on the VIP too in DR and TUN mode) and
serves:

  GET /            its name and a newline ("rs1\n")
  GET /health      the same (a target for HTTP_GET health checks)
  GET /ip          "NAME client=IP:PORT local=IP:PORT\n": the connection as the
                   server sees it (the real client in DR/NAT/TUN, a local
                   address in FULLNAT; the local port shows NAT port mapping)
  GET /big         BIG_MIB MiB of deterministic bytes (see big_blocks); the
                   sha256 is printed by `--big-sha256` and recorded by lab.sh
  GET /big?rate=R  the same, paced to R bytes a second (R: a number, k or m
                   for KiB or MiB, as curl's --limit-rate), so that a
                   download lasts BIG_MIB MiB / R: curl's own limit lets a
                   download run up to twice as fast (it counts its average
                   over windows of a few seconds, and every window starts
                   with what waits in the receive buffer)
  GET /status/NNN  answers with status NNN

Switches, files in --run-dir, looked at on every request:

  fail    exists: every path but /status/ answers with the status code the
          file holds (500 when empty), for health-check tests
  delay   holds seconds: every answer is delayed that long

Every request is logged, one line each, to RUN_DIR/access.log:
  client_ip client_port local_ip local_port method path status
"""

import argparse
import hashlib
import http.server
import os
import socket
import sys
import threading
import time

BLOCK = 1 << 20
# The paced /big's writes, bytes.
PACE_CHUNK = 4096


def parse_rate(text):
    """curl's --limit-rate syntax: "32768", "32k", "1m" (KiB, MiB)."""
    mult = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(text[-1:].lower(), 1)
    value = float(text[:-1] if mult > 1 else text) * mult
    if value <= 0:
        raise ValueError(text)
    return value


def big_block(i):
    """Block i of /big: 1 MiB of SHAKE-256 output seeded with the index."""
    return hashlib.shake_256(b"ferrovs-lab-big:%d" % i).digest(BLOCK)


def big_sha256(mib):
    h = hashlib.sha256()
    for i in range(mib):
        h.update(big_block(i))
    return h.hexdigest()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ferrovs-lab-rs"
    sys_version = ""
    timeout = 120  # idle keep-alive connections do not live forever
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):  # the access log replaces stderr logging
        pass

    def _log(self, status):
        cip, cport = self.client_address[:2]
        lip, lport = self.connection.getsockname()[:2]
        line = "%s %d %s %d %s %s %d\n" % (cip, cport, lip, lport, self.command, self.path, status)
        with self.server.ctx["log_lock"]:
            self.server.ctx["log"].write(line)
            self.server.ctx["log"].flush()

    def _send(self, status, body, ctype="text/plain"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Real-Server", self.server.ctx["name"])
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self._log(status)

    def _switches(self):
        run_dir = self.server.ctx["run_dir"]
        try:
            with open(os.path.join(run_dir, "delay")) as f:
                time.sleep(min(float(f.read().strip() or 0), 600))
        except (OSError, ValueError):
            pass
        try:
            with open(os.path.join(run_dir, "fail")) as f:
                txt = f.read().strip()
            return int(txt) if txt else 500
        except (OSError, ValueError):
            return None

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        name = self.server.ctx["name"]
        path = self.path.split("?", 1)[0]
        if path.startswith("/status/"):
            try:
                code = int(path[len("/status/"):])
                if not 100 <= code <= 599:
                    raise ValueError
            except ValueError:
                return self._send(400, b"bad status\n")
            return self._send(code, ("%s\n" % name).encode())
        fail = self._switches()
        if fail is not None:
            return self._send(fail, ("%s failing\n" % name).encode())
        if path in ("/", "/health"):
            return self._send(200, ("%s\n" % name).encode())
        if path == "/ip":
            cip, cport = self.client_address[:2]
            lip, lport = self.connection.getsockname()[:2]
            return self._send(200, ("%s client=%s:%d local=%s:%d\n" % (name, cip, cport, lip, lport)).encode())
        if path == "/big":
            rate = None
            query = self.path.split("?", 1)[1] if "?" in self.path else ""
            for kv in query.split("&"):
                if kv.startswith("rate="):
                    try:
                        rate = parse_rate(kv[len("rate="):])
                    except ValueError:
                        return self._send(400, b"bad rate\n")
            mib = self.server.ctx["big_mib"]
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(mib * BLOCK))
            self.send_header("X-Real-Server", name)
            self.end_headers()
            status = 200
            if self.command != "HEAD":
                try:
                    start, sent = time.monotonic(), 0
                    for i in range(mib):
                        block = big_block(i)
                        if rate is None:
                            self.wfile.write(block)
                            continue
                        for off in range(0, BLOCK, PACE_CHUNK):
                            ahead = (sent + PACE_CHUNK) / rate - (time.monotonic() - start)
                            if ahead > 0:
                                time.sleep(ahead)
                            self.wfile.write(block[off:off + PACE_CHUNK])
                            sent += PACE_CHUNK
                except (BrokenPipeError, ConnectionResetError):
                    status = 499  # nginx's "client closed the connection"
                    self.close_connection = True
            self._log(status)
            return None
        return self._send(404, b"not found\n")


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024


class Server6(Server):
    address_family = socket.AF_INET6

    def server_bind(self):
        # IPv6 only, so that it binds beside the IPv4 instance's 0.0.0.0.
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        super().server_bind()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", help="answer of GET /")
    ap.add_argument("--port", type=int, action="append", help="port to listen on (repeatable)")
    ap.add_argument("--run-dir", help="switch files, access.log and the ready marker")
    ap.add_argument("--big-mib", type=int, default=64, help="size of /big in MiB")
    ap.add_argument("--big-sha256", action="store_true", help="print the sha256 of /big and exit")
    ap.add_argument("--ipv6", action="store_true",
                    help="listen on IPv6 (::, IPv6 only) instead of IPv4; a second instance beside the IPv4 one")
    a = ap.parse_args()
    if a.big_sha256:
        print(big_sha256(a.big_mib))
        return 0
    if not (a.name and a.port and a.run_dir):
        ap.error("--name, --port and --run-dir are required")
    os.makedirs(a.run_dir, exist_ok=True)
    ctx = {
        "name": a.name,
        "run_dir": a.run_dir,
        "big_mib": a.big_mib,
        "log": open(os.path.join(a.run_dir, "access.log"), "a"),
        "log_lock": threading.Lock(),
    }
    servers = []
    for port in a.port:
        s = (Server6 if a.ipv6 else Server)(("::" if a.ipv6 else "0.0.0.0", port), Handler)
        s.ctx = ctx
        servers.append(s)
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for t in threads:
        t.start()
    # Every socket is bound and listening: tell lab.sh.
    with open(os.path.join(a.run_dir, "ready"), "w") as f:
        f.write("%d\n" % os.getpid())
    for t in threads:
        t.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
