#!/usr/bin/env python3
"""conn_memory: user-space memory of `hubcast serve` per idle client connection.

Starts hubcast (one event loop, a fresh data dir), reads its VmRSS and RssAnon
(/proc/<pid>/status), connects --connections idle JSON-subprotocol clients with ws_loadgen
(every client `connected`, in no group, all with one token), waits until the server's RSS is
steady, reads them again and prints the difference per connection. With --massif the server
runs under valgrind's massif instead and the script also prints where the heap bytes are at
the peak (ms_print), per connection.

  tests/bench/conn_memory.py --connections 5000
  tests/bench/conn_memory.py --connections 2000 --massif

Run from the repository root after building hubcast and ws_loadgen. Everything stays on
127.0.0.1 (port 0); every process started is stopped by its pid. Kernel socket buffers are not
user space and not counted. It also prints the RocksDB memtables' growth (the admin listener's
hubcast_rocksdb_bytes{kind="memtable"}): the part of the RSS that the store holds until it
flushes, which a massif run shows only as RocksStore::Write. A measurement, not a test:
nothing is asserted.
"""

import argparse
import atexit
import base64
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request

# The harness's process bookkeeping (same folder): every child is stopped by pid.
from compare import ACCESS_KEY, CHILDREN, HUB, HarnessError, wait_for_file


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def client_token(port):
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64url(json.dumps({"aud": f"http://127.0.0.1:{port}/client/hubs/{HUB}",
                                 "exp": int(time.time()) + 3600, "sub": "idle"}).encode())
    signature = hmac.new(ACCESS_KEY.encode(), f"{header}.{payload}".encode(), hashlib.sha256)
    return f"{header}.{payload}.{b64url(signature.digest())}"


def status_kib(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "RssAnon"):
                fields[name] = int(value.split()[0])
    return fields


def steady_status(pid, seconds=10):
    """Status once VmRSS moved by less than 64 KiB over a second (at most `seconds`)."""
    last = status_kib(pid)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(1)
        now = status_kib(pid)
        if abs(now["VmRSS"] - last["VmRSS"]) < 64:
            return now
        last = now
    return last


def memtable_bytes(log_path):
    """The store's memtable bytes from the admin listener (its URL is on hubcast's stdout)."""
    with open(log_path) as f:
        m = re.search(r"^Admin=(http://\S+)", f.read(), re.M)
    if not m:
        return None
    with urllib.request.urlopen(m.group(1) + "metrics", timeout=10) as r:
        text = r.read().decode()
    m = re.search(r'^hubcast_rocksdb_bytes\{kind="memtable"\} (\d+)', text, re.M)
    return int(m.group(1)) if m else None


def snapshot(pid, path):
    """A detailed massif snapshot of the running server (valgrind's gdbserver, vgdb)."""
    subprocess.run(["vgdb", f"--pid={pid}", "detailed_snapshot", path], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def attribute(path):
    """Heap bytes of a massif snapshot file by the first frame (walking from the allocation
    towards main) that is Hubcast's own code; bytes with no such frame go to their
    allocation function's caller, marked "(library)"."""
    lines = [l for l in open(path) if re.match(r"^ *n\d+: ", l)]
    totals = {}
    # (depth, bytes, name) rows in tree order; a node's children follow it one level deeper.
    rows = []
    for line in lines:
        depth = len(line) - len(line.lstrip(" "))
        m = re.match(r"^ *n(\d+): (\d+) (?:0x[0-9A-Fa-f]+: )?(.*)", line)
        rows.append((depth, int(m.group(2)), int(m.group(1)), m.group(3).strip()))

    def walk(i, owner):
        depth, size, children, name = rows[i]
        if owner is None and name.startswith("hubcast::"):
            short = name.replace("(anonymous namespace)", "{anon}")
            owner = short[:short.find("(")] if "(" in short else short
        j, covered = i + 1, 0
        for _ in range(children):
            covered += rows[j][1]
            j = walk(j, owner)
        if children == 0 or size > covered:
            rest = size - covered if children else size
            key = owner or f"(library) {name[:90]}"
            totals[key] = totals.get(key, 0) + rest
        return j

    # rows[0] is the root; its children are the allocation functions' callers.
    j = 1
    for _ in range(rows[0][2]):
        j = walk(j, None)
    return totals


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hubcast", default=os.environ.get("HUBCAST_BINARY",
                                                            "build/server/hubcast"))
    parser.add_argument("--ws-loadgen", default="build/tests/bench/ws_loadgen")
    parser.add_argument("--connections", type=int, default=5000)
    parser.add_argument("--massif", action="store_true",
                        help="run the server under valgrind's massif and print the peak")
    parser.add_argument("--out", default=None, help="folder for logs (and massif.out)")
    args = parser.parse_args()
    out = args.out or tempfile.mkdtemp(prefix="hubcast-memory-")
    os.makedirs(out, exist_ok=True)
    port_file = os.path.join(out, "port")
    massif_file = os.path.join(out, "massif.out")
    argv = [args.hubcast, "serve", "--port", "0", "--ports-file", port_file, "--data-dir",
            os.path.join(out, "data"), "--access-key", ACCESS_KEY, "--log-level", "warn",
            "--event-loops", "1"]
    if args.massif:
        argv = ["valgrind", "--tool=massif", "--threshold=0", "--depth=30",
                f"--massif-out-file={massif_file}"] + argv
    atexit.register(CHILDREN.stop_all)
    server_log = os.path.join(out, "hubcast.log")
    server = CHILDREN.start("hubcast", argv, server_log)
    clients = None
    try:
        wait_for_file(port_file, server, 120, "hubcast")
        port = int(open(port_file).read().split()[0])
        time.sleep(1)
        before = steady_status(server.pid)
        memtable_before = memtable_bytes(server_log)
        if args.massif:
            snapshot(server.pid, os.path.join(out, "massif.idle"))
        ready = os.path.join(out, "ready")
        clients = CHILDREN.start(
            "ws_loadgen",
            [args.ws_loadgen, "--port", str(port), "--path",
             f"/client/hubs/{HUB}?access_token={client_token(port)}", "--connections",
             str(args.connections), "--subprotocol", "json.webpubsub.azure.v1",
             "--expect-messages", "1", "--skip-connected", "--timeout-seconds", "900",
             "--max-handshakes", "100", "--ready-file", ready],
            os.path.join(out, "ws_loadgen.log"))
        started = time.monotonic()
        while not os.path.exists(ready):
            if clients.poll() is not None:
                sys.exit("conn_memory: ws_loadgen ended before every client connected "
                         "(see ws_loadgen.log)")
            time.sleep(0.2)
        connect_seconds = time.monotonic() - started
        after = steady_status(server.pid)
        memtable_after = memtable_bytes(server_log)
        if args.massif:
            snapshot(server.pid, os.path.join(out, "massif.connected"))
    except HarnessError as e:
        sys.exit(f"conn_memory: {e}")
    finally:
        if clients:
            CHILDREN.stop(clients)
        CHILDREN.stop(server, grace=120)  # massif writes its file on the way out
    n = args.connections
    print(f"{n} idle connections, connected in {connect_seconds:.1f} s"
          f"{' (under massif)' if args.massif else ''}")
    for name in ("VmRSS", "RssAnon"):
        delta = after[name] - before[name]
        print(f"  {name}: {before[name]} KiB idle, {after[name]} KiB connected: "
              f"{delta * 1024 / n:,.0f} bytes per connection")
    if memtable_before is not None and memtable_after is not None:
        print(f"  RocksDB memtables: {memtable_before // 1024} KiB idle, "
              f"{memtable_after // 1024} KiB connected: "
              f"{(memtable_after - memtable_before) / n:,.0f} bytes per connection")
    if args.massif:
        grown = {}
        for where, size in attribute(os.path.join(out, "massif.connected")).items():
            grown[where] = grown.get(where, 0) + size
        for where, size in attribute(os.path.join(out, "massif.idle")).items():
            grown[where] = grown.get(where, 0) - size
        print("  heap growth by the first Hubcast frame that allocated (massif snapshots "
              "before and after connecting), bytes per connection:")
        for where, size in sorted(grown.items(), key=lambda kv: -kv[1]):
            if size >= n * 4:
                print(f"  {size / n:>8,.0f}  {where}")
        print(f"  total heap (useful bytes): {sum(grown.values()) / n:,.0f} per connection; "
              f"snapshots: {out}/massif.idle, massif.connected")

if __name__ == "__main__":
    main()
