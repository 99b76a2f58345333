#!/usr/bin/env python3
"""Sends hand-built frames out of IFACE through an AF_PACKET socket: one of each kind the
capture test decodes on the other end of a veth pair. Field values are fixed so the test can
assert them. Usage: craft.py IFACE SRC_MAC DST_MAC"""
import socket
import struct
import sys

iface, src_mac, dst_mac = sys.argv[1], sys.argv[2], sys.argv[3]
SRC = bytes.fromhex(src_mac.replace(":", ""))
DST = bytes.fromhex(dst_mac.replace(":", ""))
SRC4, DST4 = socket.inet_aton("10.77.0.1"), socket.inet_aton("10.77.0.2")
SRC6, DST6 = socket.inet_pton(socket.AF_INET6, "fd77::1"), socket.inet_pton(socket.AF_INET6, "fd77::2")


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def eth(ethertype, payload):
    return DST + SRC + struct.pack("!H", ethertype) + payload


def ipv4(proto, payload, ident):
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, 0, 64, proto, 0, SRC4, DST4)
    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    return hdr + payload


def udp4(sport, dport, data, good=True):
    length = 8 + len(data)
    pseudo = SRC4 + DST4 + struct.pack("!BBH", 0, 17, length)
    u = struct.pack("!HHHH", sport, dport, length, 0) + data
    c = csum(pseudo + u) or 0xFFFF
    if not good:
        c ^= 0x5555
    return struct.pack("!HHHH", sport, dport, length, c) + data


def dns_query(name, qid):
    q = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + q + struct.pack("!HH", 1, 1)


frames = []
# ARP who-has 10.77.0.2 tell 10.77.0.1
frames.append(eth(0x0806, struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, SRC, SRC4, b"\0" * 6, DST4)))
# ICMP echo request id 0x4242 seq 7
icmp = struct.pack("!BBHHH", 8, 0, 0, 0x4242, 7) + b"netmon-echo"
icmp = icmp[:2] + struct.pack("!H", csum(icmp)) + icmp[4:]
frames.append(eth(0x0800, ipv4(1, icmp, 0x1001)))
# DNS query for netmon.test, id 0x1234, to port 53
frames.append(eth(0x0800, ipv4(17, udp4(40053, 53, dns_query("netmon.test", 0x1234)), 0x1002)))
# UDP with a deliberately wrong checksum
frames.append(eth(0x0800, ipv4(17, udp4(40001, 9999, b"bad-checksum", good=False), 0x1003)))
# IPv6: hop-by-hop (PadN) then a fragment header (first fragment, id 0xabcd) then UDP
udp6_data = b"frag-payload"
udp6 = struct.pack("!HHHH", 40006, 6000, 8 + len(udp6_data), 0) + udp6_data
hbh = struct.pack("!BB", 44, 0) + b"\x01\x04\x00\x00\x00\x00"
frag = struct.pack("!BBHI", 17, 0, 0x0001, 0xABCD)
v6_payload = hbh + frag + udp6
frames.append(eth(0x86DD, struct.pack("!IHBB16s16s", 6 << 28, len(v6_payload), 0, 64, SRC6, DST6) + v6_payload))
# LLDP: chassis id (MAC), port id "vA-port", TTL 120, system name "netmon-lldp", end
def tlv(t, v):
    return struct.pack("!H", (t << 9) | len(v)) + v
lldp = tlv(1, b"\x04" + SRC) + tlv(2, b"\x05vA-port") + tlv(3, struct.pack("!H", 120)) + tlv(5, b"netmon-lldp") + tlv(0, b"")
frames.append(b"\x01\x80\xc2\x00\x00\x0e" + SRC + struct.pack("!H", 0x88CC) + lldp)
# 802.3 + LLC/SNAP carrying CDP (OUI 00:00:0c, PID 0x2000): version 2, ttl 180, device id
cdp_body = struct.pack("!BBH", 2, 180, 0) + struct.pack("!HH", 1, 4 + 11) + b"netmon-cdp1"
cdp_body = cdp_body[:2] + struct.pack("!H", csum(cdp_body)) + cdp_body[4:]
llc = b"\xaa\xaa\x03" + b"\x00\x00\x0c" + struct.pack("!H", 0x2000) + cdp_body
frames.append(b"\x01\x00\x0c\xcc\xcc\xcc" + SRC + struct.pack("!H", len(llc)) + llc)

s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((iface, 0))
for f in frames:
    s.send(f.ljust(60, b"\0") if len(f) < 60 else f)
print(len(frames), flush=True)
