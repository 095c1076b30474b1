#!/usr/bin/env python3
"""Userspace IPIP decapsulation for the TUN-mode real servers of the ferrovs lab.

LVS-TUN real servers normally decapsulate with the kernel's `ipip` module
(`tunl0`). Kernels built without CONFIG_NET_IPIP (some CI and micro-VM kernels)
cannot, so scripts/lab.sh falls back to this: a TUN device named like the
kernel's (`tunl0`, holding the VIP, rp_filter off) and this process, which
receives IP-in-IP packets (IP protocol 4) addressed to the real server on a raw
socket and writes the inner packet into the TUN device. The kernel then
receives the inner packet on tunl0 exactly as if the ipip module had
decapsulated it, and the real server answers the client directly.

The kernel hands every local IP protocol 4 packet to the raw socket (after
reassembly, so outer fragments work) and, since a raw socket took it, sends
no "protocol unreachable".

With --ipv6 it does the same for what IPVS tunnels to the servers of an
IPv6 service, for kernels without ip6_tunnel and sit: IPv6-in-IPv6 (next
header 41, RFC 2473), for which an IPv6 raw socket hands over what follows
the outer header, the inner IPv6 packet; and IPv6-in-IPv4 (protocol 41,
RFC 4213), to an IPv4 server of an IPv6 service, for which an IPv4 raw
socket hands over the whole packet, outer header included; and, for an
IPv4 service's IPv6 server, IPv4-in-IPv6 (next header 4). The inner
packet goes into the TUN device (the kernel tells the families apart by
the version nibble).

usage: lab-ipip-decap.py [--ipv6] --dev tunl0 --ready FILE
"""

import argparse
import fcntl
import os
import select
import socket
import struct
import sys

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IPPROTO_IPIP = 4
IPPROTO_IPV6 = 41


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dev", default="tunl0", help="the (persistent) TUN device to attach to")
    ap.add_argument("--ready", help="file written once attached and listening")
    ap.add_argument("--ipv6", action="store_true", help="IPv6-in-IPv6 instead of IPv4-in-IPv4")
    a = ap.parse_args()

    tun = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(tun, TUNSETIFF, struct.pack("16sH", a.dev.encode(), IFF_TUN | IFF_NO_PI))
    if a.ipv6:
        six = socket.socket(socket.AF_INET6, socket.SOCK_RAW, IPPROTO_IPV6)
        six.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sit = socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_IPV6)
        sit.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        four = socket.socket(socket.AF_INET6, socket.SOCK_RAW, IPPROTO_IPIP)
        four.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        if a.ready:
            with open(a.ready, "w") as f:
                f.write("%d\n" % os.getpid())
        while True:
            for s in select.select([six, sit, four], [], [])[0]:
                pkt = s.recv(65535)
                if s is sit:
                    # IPv4 raw sockets deliver the outer header too.
                    if len(pkt) < 20 or pkt[0] >> 4 != 4:
                        continue
                    pkt = pkt[(pkt[0] & 0x0F) * 4:]
                if s is four and len(pkt) >= 20 and pkt[0] >> 4 == 4:
                    try:
                        os.write(tun, pkt)
                    except OSError:
                        pass
                elif len(pkt) >= 40 and pkt[0] >> 4 == 6:
                    try:
                        os.write(tun, pkt)
                    except OSError:
                        pass
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_IPIP)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    if a.ready:
        with open(a.ready, "w") as f:
            f.write("%d\n" % os.getpid())
    while True:
        pkt = raw.recv(65535)
        if len(pkt) < 20 or pkt[0] >> 4 != 4:
            continue
        inner = pkt[(pkt[0] & 0x0F) * 4:]
        if len(inner) < 20 or inner[0] >> 4 != 4:
            continue
        try:
            os.write(tun, inner)
        except OSError:
            pass  # a malformed inner packet: drop it, as the kernel would


if __name__ == "__main__":
    sys.exit(main())
