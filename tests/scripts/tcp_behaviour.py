#!/usr/bin/env python3
"""TCP behaviour with a known outcome, speaking trafficgen's protocol (ready / go / result).

`resets`: one bulk connection (RTT samples), one connection closed with SO_LINGER 0 (this
process sends one RST on a socket and receives it on the accepted one), and one connect to a
closed port (this process receives one RST; the kernel sends one RST with no socket).
`loss`: one bulk connection, meant to run where a firewall rule drops some data segments
(the test adds an nftables rule in its namespace), so data segments are retransmitted.
The bulk client reports its final smoothed RTT from TCP_INFO as `client_srtt_us`.
"""
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time

CHUNK = 1000


def serve(listener, results):
    """Accepts connections and reads each to EOF or reset, recording bytes per connection."""
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        got = 0
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                got += len(data)
        except ConnectionResetError:
            results.append(("reset", got))
            conn.close()
            continue
        results.append(("eof", got))
        conn.close()


def bulk(port, chunks, pace):
    c = socket.create_connection(("127.0.0.1", port))
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return c, chunks, pace


def send_chunks(c, chunks, pace):
    payload = b"x" * CHUNK
    for _ in range(chunks):
        c.sendall(payload)
        time.sleep(pace)


def srtt_us(sock):
    """tcp_info.tcpi_rtt: 8 one-byte fields, then u32s of which rtt is the 16th."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    return struct.unpack_from("I", info, 8 + 15 * 4)[0]


def wait_for(results, n, timeout=30):
    deadline = time.time() + timeout
    while len(results) < n and time.time() < deadline:
        time.sleep(0.01)


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "resets"
    print(json.dumps({"ready": os.getpid()}), flush=True)
    sys.stdin.readline()

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    results = []
    threading.Thread(target=serve, args=(listener, results), daemon=True).start()
    truth = {}

    if mode == "resets":
        c, chunks, pace = bulk(port, 200, 0.002)
        send_chunks(c, chunks, pace)
        time.sleep(0.2)
        truth["client_srtt_us"] = srtt_us(c)
        c.close()
        wait_for(results, 1)
        # An abortive close: RST from this socket, received by the accepted one.
        r = socket.create_connection(("127.0.0.1", port))
        r.sendall(b"y" * 10)
        time.sleep(0.2)
        r.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        r.close()
        wait_for(results, 2)
        # A closed port: grab one, release it, connect to it.
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
        probe.close()
        refused = False
        try:
            socket.create_connection(("127.0.0.1", closed), timeout=5)
        except ConnectionRefusedError:
            refused = True
        truth.update({
            "results": results,
            "refused": refused,
            "resets_sent": 1,
            "resets_received": 2,
            "resets_without_socket": 1,
            "tcp_opened": 5,
        })
    elif mode == "loss":
        c, chunks, pace = bulk(port, 2000, 0.0005)
        send_chunks(c, chunks, pace)
        c.shutdown(socket.SHUT_WR)
        wait_for(results, 1, timeout=60)
        time.sleep(0.5)
        c.close()
        truth = {"results": results, "sent": chunks * CHUNK}
    elif mode == "stall":
        # Everything towards the server is dropped for 1.5 s: the sender's retransmission timer
        # fires at least at 200, 600 and 1400 ms (RTO_min 200 ms, doubling each time).
        c, chunks, pace = bulk(port, 10, 0)
        nft = lambda *a: subprocess.run(["nft", *a], check=True)
        nft("add", "table", "inet", "nmstall")
        nft("add", "chain", "inet", "nmstall", "in", "{ type filter hook input priority 0 ; }")
        nft("add", "rule", "inet", "nmstall", "in", "tcp", "dport", str(port), "drop")
        try:
            send_chunks(c, chunks, pace)
            time.sleep(1.5)
        finally:
            nft("delete", "table", "inet", "nmstall")
        c.shutdown(socket.SHUT_WR)
        wait_for(results, 1, timeout=30)
        c.close()
        truth = {"results": results, "sent": chunks * CHUNK, "stalled_ms": 1500}
    print(json.dumps(truth), flush=True)
    # Linger so netmon reads the last counters while this process is still alive.
    time.sleep(1)


if __name__ == "__main__":
    main()
