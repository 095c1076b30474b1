#!/usr/bin/env python3
"""Hand-made frames for checking the ferrovs lab's plumbing without a load
balancer (used by tests/lab_selftest.sh; handy for end-to-end tests too).

  send-echo  --dev IF --dst-mac MAC --src IP --dst IP --ident N
             [--outer-src IP --outer-dst IP]
      Sends one ICMP echo request SRC -> DST in an Ethernet frame to DST-MAC
      out of IF (AF_PACKET), as a DR director would forward it; with --outer-*
      wrapped in an outer IPv4 header, protocol 4 (IPIP), as a TUN director.
  recv-echo  --dev IF --src IP --ident N [--timeout S]
      Waits for the ICMP echo reply from SRC with identifier N on IF and
      prints "reply from IP via MAC" (the frame's source MAC: who handed it
      over). Exit 1 on timeout.
  arp        --dev IF --target IP [--timeout S]
      Sends an ARP request for TARGET out of IF and prints every MAC that
      answers. Exit 1 when nobody answers.
  send-syn   --dev IF --dst-mac MAC --src IP --dst IP --sport N
             [--count N] [--dport N] [--ttl N] [--vlan ID]
      Sends COUNT TCP SYNs SRC:SPORT.. -> DST:DPORT (source ports counting
      up), optionally tagged with 802.1Q VLAN ID: what a spoofing or
      misdirected sender puts on the wire.
  send-arp   --dev IF --sender-mac MAC --sender IP --target IP
      Sends one broadcast ARP request whose sender fields are the given
      ones (a forger's).
  send-vrrp  --dev IF --dst-mac MAC --src IP --dst IP --vip IP
             [--vrid N] [--prio N] [--ttl N] [--count N] [--interval S]
      Sends COUNT VRRPv3 adverts (interval 1 s carried) from SRC with this
      TTL, INTERVAL seconds apart.
"""

import argparse
import fcntl
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
SIOCGIFHWADDR = 0x8927
SIOCGIFADDR = 0x8915


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ipv4(src, dst, proto, payload, ident=0x1234, ttl=64):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, 0x4000, ttl, proto, 0,
                    socket.inet_aton(src), socket.inet_aton(dst))
    return h[:10] + struct.pack("!H", csum(h)) + h[12:] + payload


def mac_bytes(m):
    return bytes(int(x, 16) for x in m.split(":"))


def mac_str(b):
    return ":".join("%02x" % x for x in b)


def if_info(dev):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    req = struct.pack("256s", dev.encode()[:15])
    mac = fcntl.ioctl(s.fileno(), SIOCGIFHWADDR, req)[18:24]
    try:
        ip = socket.inet_ntoa(fcntl.ioctl(s.fileno(), SIOCGIFADDR, req)[20:24])
    except OSError:
        ip = "0.0.0.0"
    return mac, ip


def packet_socket(dev, proto):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(proto))
    s.bind((dev, proto))
    return s


def send_echo(a):
    mac, _ = if_info(a.dev)
    icmp = struct.pack("!BBHHH", 8, 0, 0, a.ident, 1) + b"ferrovs-lab-probe"
    icmp = icmp[:2] + struct.pack("!H", csum(icmp)) + icmp[4:]
    pkt = ipv4(a.src, a.dst, 1, icmp)
    if a.outer_src:
        pkt = ipv4(a.outer_src, a.outer_dst, 4, pkt, ident=0x4321)
    s = packet_socket(a.dev, ETH_P_IP)
    s.send(mac_bytes(a.dst_mac) + mac + struct.pack("!H", ETH_P_IP) + pkt)
    return 0


def recv_echo(a):
    s = packet_socket(a.dev, ETH_P_IP)
    want = socket.inet_aton(a.src)
    end = time.time() + a.timeout
    while time.time() < end:
        s.settimeout(max(0.01, end - time.time()))
        try:
            f = s.recv(65535)
        except socket.timeout:
            break
        ip = f[14:]
        if len(ip) < 28 or ip[9] != 1 or ip[12:16] != want:
            continue
        ihl = (ip[0] & 15) * 4
        typ, _, _, ident = struct.unpack("!BBHH", ip[ihl:ihl + 6])
        if typ == 0 and ident == a.ident:
            print("reply from %s via %s" % (a.src, mac_str(f[6:12])))
            return 0
    print("no reply from %s" % a.src)
    return 1


def arp(a):
    mac, ip = if_info(a.dev)
    s = packet_socket(a.dev, ETH_P_ARP)
    body = struct.pack("!HHBBH6s4s6s4s", 1, ETH_P_IP, 6, 4, 1, mac, socket.inet_aton(ip),
                       b"\0" * 6, socket.inet_aton(a.target))
    s.send(b"\xff" * 6 + mac + struct.pack("!H", ETH_P_ARP) + body)
    end = time.time() + a.timeout
    seen = []
    while time.time() < end:
        s.settimeout(max(0.01, end - time.time()))
        try:
            f = s.recv(2048)
        except socket.timeout:
            break
        if len(f) < 42:
            continue
        op = struct.unpack("!H", f[20:22])[0]
        if op == 2 and f[28:32] == socket.inet_aton(a.target):
            m = mac_str(f[22:28])
            if m not in seen:
                seen.append(m)
                print("%s is-at %s" % (a.target, m))
    if not seen:
        print("nobody answers ARP for %s" % a.target)
    return 0 if seen else 1


def pseudo_csum(src, dst, proto, seg):
    return csum(socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, proto, len(seg)) + seg)


def send_syn(a):
    mac, _ = if_info(a.dev)
    tag = struct.pack("!HH", 0x8100, a.vlan) if a.vlan else b""
    s = packet_socket(a.dev, ETH_P_IP)
    for i in range(a.count):
        tcp = struct.pack("!HHIIBBHHH", a.sport + i, a.dport, 1000 + i, 0, 5 << 4, 0x02, 64240, 0, 0)
        tcp = tcp[:16] + struct.pack("!H", pseudo_csum(a.src, a.dst, 6, tcp)) + tcp[18:]
        pkt = ipv4(a.src, a.dst, 6, tcp, ttl=a.ttl)
        s.send(mac_bytes(a.dst_mac) + mac + tag + struct.pack("!H", ETH_P_IP) + pkt)
    return 0


def send_arp(a):
    mac, _ = if_info(a.dev)
    body = struct.pack("!HHBBH6s4s6s4s", 1, ETH_P_IP, 6, 4, 1, mac_bytes(a.sender_mac),
                       socket.inet_aton(a.sender), b"\0" * 6, socket.inet_aton(a.target))
    packet_socket(a.dev, ETH_P_ARP).send(b"\xff" * 6 + mac + struct.pack("!H", ETH_P_ARP) + body)
    return 0


def send_vrrp(a):
    mac, _ = if_info(a.dev)
    msg = struct.pack("!BBBBH", 0x31, a.vrid, a.prio, 1, 100) + b"\0\0" + socket.inet_aton(a.vip)
    msg = msg[:6] + struct.pack("!H", pseudo_csum(a.src, a.dst, 112, msg)) + msg[8:]
    pkt = ipv4(a.src, a.dst, 112, msg, ident=0, ttl=a.ttl)
    s = packet_socket(a.dev, ETH_P_IP)
    for _ in range(a.count):
        s.send(mac_bytes(a.dst_mac) + mac + struct.pack("!H", ETH_P_IP) + pkt)
        time.sleep(a.interval)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("send-echo")
    p.add_argument("--dev", required=True)
    p.add_argument("--dst-mac", required=True)
    p.add_argument("--src", required=True)
    p.add_argument("--dst", required=True)
    p.add_argument("--ident", type=int, required=True)
    p.add_argument("--outer-src")
    p.add_argument("--outer-dst")
    p = sub.add_parser("recv-echo")
    p.add_argument("--dev", required=True)
    p.add_argument("--src", required=True)
    p.add_argument("--ident", type=int, required=True)
    p.add_argument("--timeout", type=float, default=3)
    p = sub.add_parser("arp")
    p.add_argument("--dev", required=True)
    p.add_argument("--target", required=True)
    p.add_argument("--timeout", type=float, default=1)
    p = sub.add_parser("send-syn")
    p.add_argument("--dev", required=True)
    p.add_argument("--dst-mac", required=True)
    p.add_argument("--src", required=True)
    p.add_argument("--dst", required=True)
    p.add_argument("--sport", type=int, required=True)
    p.add_argument("--dport", type=int, default=80)
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--ttl", type=int, default=64)
    p.add_argument("--vlan", type=int, default=0)
    p = sub.add_parser("send-arp")
    p.add_argument("--dev", required=True)
    p.add_argument("--sender-mac", required=True)
    p.add_argument("--sender", required=True)
    p.add_argument("--target", required=True)
    p = sub.add_parser("send-vrrp")
    p.add_argument("--dev", required=True)
    p.add_argument("--dst-mac", required=True)
    p.add_argument("--src", required=True)
    p.add_argument("--dst", required=True)
    p.add_argument("--vip", required=True)
    p.add_argument("--vrid", type=int, default=51)
    p.add_argument("--prio", type=int, default=254)
    p.add_argument("--ttl", type=int, default=255)
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--interval", type=float, default=0.1)
    a = ap.parse_args()
    if a.cmd == "send-echo" and bool(a.outer_src) != bool(a.outer_dst):
        ap.error("--outer-src and --outer-dst go together")
    return {"send-echo": send_echo, "recv-echo": recv_echo, "arp": arp, "send-syn": send_syn,
            "send-arp": send_arp, "send-vrrp": send_vrrp}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
