#!/usr/bin/env python3
"""TCP behaviour with a known outcome, speaking trafficgen's protocol (ready / go / result).

`resets`: one bulk connection (RTT samples), one connection closed with SO_LINGER 0 (this
process sends one RST on a socket and receives it on the accepted one), and one connect to a
closed port (this process receives one RST; the kernel sends one RST with no socket).
`loss`: one bulk connection, meant to run where a firewall rule drops some data segments
(the test adds an nftables rule in its namespace), so data segments are retransmitted.
The bulk client reports its final smoothed RTT from TCP_INFO as `client_srtt_us`.
`lifecycle`: this process is the client and a forked child the server; each connection's first
byte tells the server how it ends (see `serve_scripted`): closes begun by either side, an
abortive close, a handshake slowed by a dropped SYN (one SYN retransmission, ~1 s) and a
connection whose receiver stops reading until its window is zero.
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


def serve_scripted(listener, count, done_w):
    """The server child of `lifecycle`: `count` connections, one at a time. `C`: read to EOF,
    then close (the client closed first). `S`: close after that one byte (first here). `R`:
    read until the client's reset. `Z`: stop reading for 1 s (the small receive buffer fills
    and the window goes to zero), then read to EOF and close."""
    for _ in range(count):
        conn, _ = listener.accept()
        kind = conn.recv(1)
        try:
            if kind == b"S":
                pass
            else:
                if kind == b"Z":
                    time.sleep(1.0)
                while conn.recv(65536):
                    pass
        except ConnectionResetError:
            pass
        conn.close()
    os.write(done_w, b"x")
    # Alive while netmon reads this process's last counters.
    time.sleep(1.5)


def lifecycle():
    client_first, server_first = 3, 2
    listener = socket.socket()
    # Inherited by accepted sockets: a small receive buffer fills in a few writes.
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    count = client_first + server_first + 3
    done_r, done_w = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(done_r)
        serve_scripted(listener, count, done_w)
        os._exit(0)
    listener.close()
    os.close(done_w)

    def connect(kind):
        c = socket.create_connection(("127.0.0.1", port))
        c.sendall(kind)
        return c

    for _ in range(client_first):
        c = connect(b"C")
        c.sendall(b"c" * 100)
        c.close()
    for _ in range(server_first):
        c = connect(b"S")
        while c.recv(100):
            pass
        c.close()
    r = connect(b"R")
    time.sleep(0.2)
    r.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    r.close()
    # The first SYN is dropped, the retransmitted one (initial RTO 1 s) gets through.
    nft = lambda *a: subprocess.run(["nft", *a], check=True)
    nft("add", "table", "inet", "nmsyn")
    nft("add", "chain", "inet", "nmsyn", "in", "{ type filter hook input priority 0 ; }")
    nft("add", "rule", "inet", "nmsyn", "in", "tcp", "dport", str(port),
        "tcp", "flags", "&", "(syn|ack)", "==", "syn", "drop")
    unblock = threading.Timer(0.3, nft, args=("delete", "table", "inet", "nmsyn"))
    unblock.start()
    started = time.monotonic()
    try:
        c = socket.create_connection(("127.0.0.1", port), timeout=10)
    finally:
        unblock.join()
    slow_us = int((time.monotonic() - started) * 1e6)
    c.sendall(b"C")
    c.close()
    # Zero window: write without blocking until the peer's window and our buffer are full.
    z = connect(b"Z")
    # A fixed send buffer (no autotuning) bounds what is queued behind the closed window.
    z.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    z.setblocking(False)
    queued = 0
    try:
        while True:
            queued += z.send(b"z" * 4096)
    except BlockingIOError:
        pass
    time.sleep(0.5)
    z.setblocking(True)
    z.close()
    os.read(done_r, 1)
    return {
        "client_pid": os.getpid(),
        "server_pid": child,
        "connections": count,
        # Both closes of the slow and the zero-window connections are the client's.
        "client_first": client_first + 2,
        "server_first": server_first,
        "slow_connect_us": slow_us,
        "zero_window_queued": queued,
    }


def wait_for(results, n, timeout=30):
    deadline = time.time() + timeout
    while len(results) < n and time.time() < deadline:
        time.sleep(0.01)


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "resets"
    print(json.dumps({"ready": os.getpid()}), flush=True)
    sys.stdin.readline()
    if mode == "lifecycle":
        truth = lifecycle()
        print(json.dumps(truth), flush=True)
        os.waitpid(truth["server_pid"], 0)
        return

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
