#!/usr/bin/env python3
"""Hubcast against the servers people pick instead: nats-server (WebSocket), Socket.IO 4, ws.

Run it through tests/bench/compare.sh (which installs, builds and then calls this file); see
tests/bench/README.md for what every column means. In short:

  * Blocks: for each connection count (and once more for reliable clients) every server is
    started, pinned to core 0, and bench_loadgen processes, pinned to core 1, connect the
    clients to it (one server after another, so connect times are clean). Then every cell of the
    block runs against every server in turn (the order rotates from cell to cell), so slow drift
    on the machine hits all servers alike. Repetitions repeat whole blocks with fresh servers,
    the server order rotating too.
  * A cell: "phase" to every generator, a warm-up, then a measurement window over which the
    server's and the generators' CPU time is read from /proc/<pid>/stat, then "stop" and the
    generators' results (after their drain). A run whose generators used more than 80% of their
    core is marked invalid: the generator, not the server, may have been the limit; one where
    something else took more than 10% of the server's core is marked disturbed.
  * Medians over the repetitions, Hubcast/peer ratios, and the raw runs go to a results folder
    (runs.csv, summary.csv, summary.md) and the summary to stdout.

Exit status 1 when the harness itself failed (a server that did not start or died, a generator
that failed, a run without a single delivery), 2 on bad arguments, else 0; the figures are
never judged.
"""

import argparse
import atexit
import csv
import dataclasses
import json
import math
import os
import queue
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
SERVERS = ["hubcast", "nats", "ws", "socketio"]
RELIABLE_SERVERS = ["hubcast", "socketio"]  # Hubcast's reliable subprotocol; Socket.IO recovery
GENERATOR_CPU_LIMIT = 0.80  # of one core, all generator processes of the run together
DISTURBANCE_LIMIT = 0.10  # of the server's core used by other processes: the run was disturbed
MAX_PER_GENERATOR = 10000  # members per bench_loadgen process (a process may open 20,000 files)
ACCESS_KEY = "hubcast-bench-access-key-0123456789abcdef"  # also the peers' bearer secret
HUB = "bench"


class HarnessError(Exception):
    """The harness broke (not a slow server): the run stops and the exit status is 1."""


# ---------------------------------------------------------------------------------------------
# Cells and plans


@dataclass(frozen=True)
class Cell:
    conns: int
    to: str = "group"  # group | connection | user
    pub: str = "rest"  # rest (app server) | client (members' sendToGroup with acks)
    # closed (throughput) | overload (a publisher waits for its acknowledgement only, not for
    # the deliveries: what bounds delivery latency is the server's backpressure) | rate
    # (fixed rate, latency) | half (fixed rate: half of Hubcast's closed-loop publishes/s in
    # the same cell and repetition, the same for every server)
    mode: str = "closed"
    size: int = 100  # group size
    payload: int = 100  # bytes
    reliable: bool = False

    def name(self):
        conns = f"{self.conns // 1000}k" if self.conns % 1000 == 0 else str(self.conns)
        target = {"group": f"g{self.size}", "connection": "toConn", "user": "toUser"}[self.to]
        size = f"{self.payload // 1024}KB" if self.payload % 1024 == 0 else f"{self.payload}B"
        rel = " reliable" if self.reliable else ""
        return f"{conns} {target} {size} {self.pub} {self.mode}{rel}"

    def rate(self, rate_cap, deliveries_target):
        """Publishes per second of a fixed-rate cell."""
        if self.to != "group":
            return rate_cap
        return max(1, min(rate_cap, deliveries_target // self.size))


def default_cells(conns_list, smoke, full):
    """The cells of each block, keyed by (conns, reliable); a group cell needs a group size
    that divides the connection count (every group is full)."""
    blocks = matrix(conns_list, smoke, full)
    return {key: [c for c in cells if c.to != "group" or c.conns % c.size == 0]
            for key, cells in blocks.items()}


def matrix(conns_list, smoke, full):
    """The cells of each block, keyed by (conns, reliable)."""
    blocks = {}
    if smoke:
        n = conns_list[0]
        blocks[(n, False)] = [
            Cell(n, size=10),
            Cell(n, size=10, pub="client", mode="rate"),
            Cell(n, size=10, mode="overload"),
            Cell(n, to="connection"),
        ]
        blocks[(n, True)] = [Cell(n, size=10, reliable=True)]
        return blocks
    if full:
        for n in conns_list:
            cells = []
            for mode in ("closed", "rate"):
                for pub in ("rest", "client"):
                    for size in (1, 10, 100, 1000):
                        for payload in (100, 2048):
                            cells.append(Cell(n, pub=pub, mode=mode, size=size, payload=payload))
                for to in ("connection", "user"):
                    cells.append(Cell(n, to=to, mode=mode))
            cells += [Cell(n, mode="overload", size=size) for size in (1, 10, 100, 1000)]
            blocks[(n, False)] = cells
            blocks[(n, True)] = [
                Cell(n, mode=mode, size=size, reliable=True)
                for mode in ("closed", "rate")
                for size in (10, 100)
            ]
        return blocks
    # Default: every dimension at least once, the most telling cells at every scale.
    for n in conns_list:
        if n == conns_list[0]:
            cells = [
                Cell(n, size=1),
                Cell(n, size=10),
                Cell(n, size=100),
                Cell(n, size=100, payload=2048),
                Cell(n, size=100, pub="client"),
                Cell(n, size=100, mode="rate"),
                Cell(n, size=100, pub="client", mode="rate"),
                Cell(n, size=10, mode="overload"),
                Cell(n, size=100, mode="overload"),
                Cell(n, size=1, mode="half"),
                Cell(n, size=10, mode="half"),
                Cell(n, size=100, mode="half"),
                Cell(n, to="connection"),
                Cell(n, to="connection", mode="rate"),
                Cell(n, to="user"),
            ]
        elif n == conns_list[-1]:
            cells = [
                Cell(n, size=100),
                Cell(n, size=1000, payload=2048),
                Cell(n, size=100, mode="rate"),
            ]
        else:
            cells = [
                Cell(n, size=100),
                Cell(n, size=1000),
                Cell(n, size=100, mode="rate"),
            ]
        blocks[(n, False)] = cells
    n = conns_list[0]
    blocks[(n, True)] = [Cell(n, size=100, reliable=True), Cell(n, size=100, mode="rate", reliable=True)]
    return blocks


def split_members(conns, largest_group):
    """[(first, count)] per generator process: at most MAX_PER_GENERATOR members each, and
    multiples of the largest group size, so no group spans two processes."""
    unit = largest_group if conns % largest_group == 0 else 1
    per = max(unit, MAX_PER_GENERATOR // unit * unit)
    parts, first = [], 0
    while first < conns:
        count = min(per, conns - first)
        parts.append((first, count))
        first += count
    return parts


# ---------------------------------------------------------------------------------------------
# Processes


class Children:
    """Every process the harness started; all are stopped by pid on exit, whatever happens."""

    def __init__(self):
        self.procs = []
        self.nice = 0

    def start(self, name, argv, log_path, **kwargs):
        log = open(log_path, "wb")
        proc = subprocess.Popen(argv, stdout=kwargs.pop("stdout", log), stderr=log,
                                start_new_session=True, **kwargs)
        proc.bench_name = name
        proc.bench_log = log_path
        self.procs.append(proc)
        log.close()
        if self.nice:
            # Each child leads its own session, hence its own scheduler autogroup: with
            # autogroups, a process's nice value only counts inside its group.
            try:
                with open(f"/proc/{proc.pid}/autogroup", "w") as f:
                    f.write(str(self.nice))
            except OSError as e:
                print(f"compare: cannot set the autogroup nice of {name}: {e}", flush=True)
        return proc

    def stop(self, proc, grace=5.0):
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            except ProcessLookupError:
                pass
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self):
        for proc in list(reversed(self.procs)):
            self.stop(proc, grace=3.0)


CHILDREN = Children()


def on_signal(signum, _frame):
    CHILDREN.stop_all()
    sys.exit(128 + signum)


def cpu_seconds(pid):
    """utime + stime of a process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_delay_seconds(pid):
    """Time the process's threads spent runnable but waiting for a CPU (/proc/.../schedstat)."""
    total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[1])
            except (OSError, IndexError, ValueError):
                pass
    except OSError:
        pass
    return total / 1e9


def core_busy_seconds(core):
    """Time core `core` spent on anything but idle and iowait (steal, the hypervisor's share,
    included), from /proc/stat."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith(f"cpu{core} "):
                v = [int(x) for x in line.split()[1:]]
                return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / os.sysconf("SC_CLK_TCK")
    return 0.0


def ksoftirqd_pid(core):
    """The kernel thread that runs deferred interrupt work (on loopback, much of TCP's receive
    path) on `core`; no process is charged for its time."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() == f"ksoftirqd/{core}":
                    return int(pid)
        except OSError:
            pass
    return None


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def wait_for_file(path, proc, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path) and os.path.getsize(path) > 0:
            return
        if proc.poll() is not None:
            raise HarnessError(f"{what} exited with {proc.returncode} before it listened; "
                               f"log: {proc.bench_log}\n{tail(proc.bench_log)}")
        time.sleep(0.05)
    raise HarnessError(f"{what} did not listen within {timeout} s; log: {proc.bench_log}")


def tail(path, lines=15):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return "(no log)"


class Server:
    """One server under test, started on a free loopback port."""

    def __init__(self, kind, reliable, work, log_dir, args):
        self.kind = kind
        self.reliable = reliable
        self.dir = tempfile.mkdtemp(prefix=f"{kind}-", dir=work)
        self.nats_port = 0
        log = os.path.join(log_dir, f"{os.path.basename(self.dir)}.log")
        pin = args.pin_server
        if kind == "hubcast":
            port_file = os.path.join(self.dir, "port")
            argv = pin + [args.hubcast, "serve", "--port", "0", "--ports-file", port_file,
                          "--data-dir", os.path.join(self.dir, "data"), "--access-key", ACCESS_KEY,
                          "--log-level", "warn", "--event-loops", "1"]
            self.proc = CHILDREN.start("hubcast", argv, log)
            wait_for_file(port_file, self.proc, 60, "hubcast")
            self.port = int(open(port_file).read().strip())
        elif kind == "nats":
            conf = os.path.join(self.dir, "nats.conf")
            with open(conf, "w") as f:
                f.write('listen: "127.0.0.1:-1"\nwebsocket {\n  listen: "127.0.0.1:-1"\n'
                        "  no_tls: true\n}\n")
            argv = pin + ["nats-server", "-c", conf, "--ports_file_dir", self.dir]
            self.proc = CHILDREN.start("nats-server", argv, log)
            ports_file = os.path.join(self.dir, f"nats-server_{self.proc.pid}.ports")
            wait_for_file(ports_file, self.proc, 30, "nats-server")
            ports = json.load(open(ports_file))
            self.port = int(ports["websocket"][0].rsplit(":", 1)[1])
            self.nats_port = int(ports["nats"][0].rsplit(":", 1)[1])
        else:
            script = {"ws": "ws_server.mjs", "socketio": "socketio_server.mjs"}[kind]
            port_file = os.path.join(self.dir, "port")
            argv = pin + ["node", os.path.join(HERE, "peers", script), "--port-file", port_file,
                          "--secret", ACCESS_KEY] + (["--recovery"] if reliable else [])
            self.proc = CHILDREN.start(kind, argv, log)
            wait_for_file(port_file, self.proc, 30, kind)
            self.port = int(open(port_file).read().strip())
        self.pid = self.proc.pid
        self.generators = []
        self.connect_seconds = 0.0
        self.rss_per_conn_kib = 0.0

    def check_alive(self):
        if self.proc.poll() is not None:
            raise HarnessError(f"{self.kind} died (exit {self.proc.returncode}); log: "
                               f"{self.proc.bench_log}\n{tail(self.proc.bench_log)}")

    def stop(self):
        for gen in self.generators:
            gen.quit()
        CHILDREN.stop(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


class Generator:
    """One bench_loadgen process, driven line by line (protocol in loadgen/loadgen.h)."""

    def __init__(self, server, first, count, args, log_dir, group_sizes):
        self.count = count
        log = os.path.join(log_dir, f"loadgen-{server.kind}-{first}-{time.monotonic_ns()}.log")
        argv = args.pin_generator + [
            args.loadgen, "--server", server.kind, "--port", str(server.port), "--key", ACCESS_KEY,
            "--hub", HUB, "--first", str(first), "--count", str(count),
            "--group-sizes", ",".join(str(s) for s in group_sizes)]
        if server.nats_port:
            argv += ["--nats-port", str(server.nats_port)]
        if server.reliable and server.kind == "hubcast":
            argv.append("--reliable")
        self.proc = CHILDREN.start(f"loadgen-{server.kind}", argv, log, stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE)
        self.pid = self.proc.pid
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for raw in self.proc.stdout:
            self.lines.put(raw.decode(errors="replace").rstrip("\n"))
        self.lines.put(None)

    def send(self, line):
        try:
            self.proc.stdin.write((line + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError) as e:
            raise HarnessError(f"bench_loadgen is gone ({e}); log: {self.proc.bench_log}")

    def expect(self, word, timeout):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise HarnessError(f"bench_loadgen: no '{word}' within {timeout:.0f} s; log: "
                                   f"{self.proc.bench_log}\n{tail(self.proc.bench_log)}")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise HarnessError(f"bench_loadgen exited ({self.proc.wait()}) waiting for "
                                   f"'{word}'; log: {self.proc.bench_log}\n"
                                   f"{tail(self.proc.bench_log)}")
            head, _, rest = line.partition(" ")
            if head == word:
                return rest
            if head in ("fatal", "error"):
                raise HarnessError(f"bench_loadgen: {line}; log: {self.proc.bench_log}\n"
                                   f"{tail(self.proc.bench_log)}")

    def quit(self):
        if self.proc.poll() is None:
            try:
                self.send("quit")
                self.proc.wait(timeout=10)
            except (HarnessError, subprocess.TimeoutExpired):
                pass
        CHILDREN.stop(self.proc)


# ---------------------------------------------------------------------------------------------
# Measuring


def bucket_value(index):
    """Inverse of Histogram::BucketIndex (loadgen/histogram.h): the bucket's middle, in ns."""
    if index < 64:
        return float(index)
    exponent = index // 64 + 5
    low = (index % 64 + 64) << (exponent - 6)
    return low + (1 << (exponent - 6)) / 2


def percentiles(sparse_list, quantiles):
    counts = {}
    for sparse in sparse_list:
        for item in filter(None, sparse.split(",")):
            index, count = item.split(":")
            counts[int(index)] = counts.get(int(index), 0) + int(count)
    total = sum(counts.values())
    if total == 0:
        return [None] * len(quantiles)
    out = []
    for q in quantiles:
        rank, seen = max(1, math.ceil(q * total)), 0
        for index in sorted(counts):
            seen += counts[index]
            if seen >= rank:
                out.append(bucket_value(index) / 1e6)  # ms
                break
    return out


def quiesce(servers, limit=10.0, quiet_windows=3):
    """Waits (at most `limit` s) until no server of the block has been busy for `quiet_windows`
    windows of 0.2 s in a row: a server may go on working after its run (a Node server's
    garbage collection, Hubcast's log compaction), which would disturb the next run."""
    deadline = time.monotonic() + limit
    quiet = 0
    while time.monotonic() < deadline and quiet < quiet_windows:
        before = {s.pid: cpu_seconds(s.pid) for s in servers}
        time.sleep(0.2)
        busy = any(cpu_seconds(s.pid) - before[s.pid] > 0.01 for s in servers)
        quiet = 0 if busy else quiet + 1


def run_cell(cell, server, block, args, fixed_rate=None):
    """One run of one cell against one server (`block`: every server of the block): a dict of
    figures. `fixed_rate`: the publishes/s of a "half" cell."""
    gens = server.generators
    total = sum(g.count for g in gens)
    mode = "rate" if cell.mode == "half" else cell.mode
    spec = f"to={cell.to} pub={cell.pub} mode={mode} size={cell.size} bytes={cell.payload}"
    for g in gens:
        share = g.count / total
        if mode == "rate":
            target = fixed_rate if cell.mode == "half" else cell.rate(args.rate_cap,
                                                                      args.rate_deliveries)
            rate = max(1, round(target * share))
            g.send(f"phase {spec} rate={rate}")
        else:
            g.send(f"phase {spec} window={max(1, round(args.window * share))}")
    for g in gens:
        g.expect("started", 30)
    time.sleep(args.warmup)
    for g in gens:
        g.send("measure")
    for g in gens:
        g.expect("measuring", 30)
    wall0 = time.monotonic()
    server_cpu0 = cpu_seconds(server.pid)
    gen_cpu0 = sum(cpu_seconds(g.pid) for g in gens)
    core0 = core_busy_seconds(args.cores[0]) if args.cores else 0.0
    softirq0 = cpu_seconds(args.ksoftirqd) if args.ksoftirqd else 0.0
    idle0 = {s.kind: cpu_seconds(s.pid) for s in block if s is not server}
    delay0 = run_delay_seconds(server.pid), sum(run_delay_seconds(g.pid) for g in gens)
    time.sleep(args.seconds)
    for g in gens:
        g.send("stop")
    server_cpu1 = cpu_seconds(server.pid)
    gen_cpu1 = sum(cpu_seconds(g.pid) for g in gens)
    core1 = core_busy_seconds(args.cores[0]) if args.cores else 0.0
    softirq1 = cpu_seconds(args.ksoftirqd) if args.ksoftirqd else 0.0
    idle1 = {s.kind: cpu_seconds(s.pid) for s in block if s is not server}
    delay1 = run_delay_seconds(server.pid), sum(run_delay_seconds(g.pid) for g in gens)
    wall1 = time.monotonic()
    results = [json.loads(g.expect("result", 90)) for g in gens]
    server.check_alive()

    wall = wall1 - wall0
    window = statistics.mean(r["window_seconds"] for r in results)
    deliveries = sum(r["window_deliveries"] for r in results)
    publishes = sum(r["window_acked"] for r in results)
    server_cpu = server_cpu1 - server_cpu0
    gen_share = (gen_cpu1 - gen_cpu0) / wall
    # What else ran on the server's core during the window: other users' work, and the block's
    # idle servers (keep-alive pings). ksoftirqd is apart: it runs loopback TCP's receive path
    # for the server's own writes. With priority (--nice below 0) others only get what the
    # server leaves idle, so then only the block's servers can disturb a run.
    softirq = (softirq1 - softirq0) / wall
    other = max(0.0, (core1 - core0) - server_cpu - (softirq1 - softirq0)) / wall
    idle_by_kind = {k: (idle1[k] - idle0[k]) / wall for k in idle0}
    idle_servers = sum(idle_by_kind.values())
    quiet = idle_servers <= DISTURBANCE_LIMIT and (args.nice < 0 or other <= DISTURBANCE_LIMIT)
    p50, p99, p999 = percentiles([r["latency_ns"] for r in results], [0.5, 0.99, 0.999])
    row = {
        "cell": cell.name(), "server": server.kind,
        "deliveries_per_s": deliveries / window, "publishes_per_s": publishes / window,
        "server_cpu_pct": 100 * server_cpu / wall, "generator_cpu_pct": 100 * gen_share,
        "server_us_per_publish": 1e6 * server_cpu / publishes if publishes else None,
        "server_us_per_delivery": 1e6 * server_cpu / deliveries if deliveries else None,
        "p50_ms": p50, "p99_ms": p99, "p999_ms": p999,
        "other_cpu_pct": 100 * other,
        "idle_servers_cpu_pct": 100 * idle_servers,
        "idle_servers": " ".join(f"{k}:{100 * v:.1f}" for k, v in idle_by_kind.items()),
        "ksoftirqd_cpu_pct": 100 * softirq,
        "server_wait_pct": 100 * (delay1[0] - delay0[0]) / wall,
        "generator_wait_pct": 100 * (delay1[1] - delay0[1]) / wall,
        "valid": gen_share <= GENERATOR_CPU_LIMIT,
        "quiet": quiet,
    }
    for key in ("sent", "expected", "received", "lost", "duplicates", "strays", "corrupt",
                "errors", "given_up", "disconnects", "late", "backlog_max", "channel_connects"):
        row[key] = sum(r[key] for r in results)
    return row


def start_block(kinds, reliable, conns, cells, args, work, log_dir):
    """Starts every server of a block and connects its members, one server after another."""
    largest = max([c.size for c in cells if c.to == "group"] + [1])
    group_sizes = sorted({s for s in (1, 10, 100, 1000) if s <= conns} | {largest})
    servers = []
    for kind in kinds:
        server = Server(kind, reliable, work, log_dir, args)
        servers.append(server)
        time.sleep(args.settle)
        idle_rss = rss_kib(server.pid)
        t0 = time.monotonic()
        server.generators = [Generator(server, first, count, args, log_dir, group_sizes)
                             for first, count in split_members(conns, largest)]
        ready = [json.loads(g.expect("ready", args.connect_timeout)) for g in server.generators]
        server.connect_seconds = max(r["seconds"] for r in ready)
        log(f"  {kind}: {conns} members ready in {server.connect_seconds:.1f} s "
            f"(wall {time.monotonic() - t0:.1f} s)")
        time.sleep(args.settle)
        server.rss_per_conn_kib = (rss_kib(server.pid) - idle_rss) / conns
        server.check_alive()
    return servers


def log(text):
    print(text, flush=True)


def environment(args):
    """One line: what ran, on what."""
    def output(argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return "?"

    def package(name):
        try:
            with open(os.path.join(HERE, "peers", "node_modules", name, "package.json")) as f:
                return json.load(f)["version"]
        except (OSError, ValueError, KeyError):
            return "?"

    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    rev = output(["git", "-C", HERE, "describe", "--always", "--dirty"]) or "?"
    return (f"hubcast {rev}, {output(['nats-server', '--version'])}, node "
            f"{output(['node', '--version'])}, socket.io {package('socket.io')}, ws "
            f"{package('ws')}; {os.cpu_count()} x {cpu}, Linux {os.uname().release}")


# ---------------------------------------------------------------------------------------------
# Reporting


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(value, digits=0):
    if value is None:
        return "-"
    if digits == 0:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.2f}x"


def summarize(runs, memory, cells_in_order, kinds):
    """Rows of medians per (cell, server), and the tables to print."""
    by_key = {}
    for run in runs:
        by_key.setdefault((run["cell"], run["server"]), []).append(run)
    summary = []
    for cell in cells_in_order:
        for kind in kinds:
            rs = by_key.get((cell, kind))
            if not rs:
                continue
            row = {"cell": cell, "server": kind, "runs": len(rs),
                   "invalid_runs": sum(1 for r in rs if not r["valid"]),
                   "disturbed_runs": sum(1 for r in rs if not r["quiet"])}
            for key in ("deliveries_per_s", "publishes_per_s", "server_cpu_pct",
                        "generator_cpu_pct", "other_cpu_pct", "server_us_per_publish",
                        "server_us_per_delivery", "p50_ms", "p99_ms", "p999_ms"):
                row[key] = median(r[key] for r in rs)
            values = [r["deliveries_per_s"] for r in rs if r["deliveries_per_s"]]
            row["deliveries_spread_pct"] = (100 * (max(values) - min(values)) / min(values)
                                            if len(values) > 1 else None)
            for key in ("lost", "duplicates", "strays", "corrupt", "errors", "disconnects"):
                row[key] = sum(r[key] for r in rs)
            summary.append(row)
    mem = []
    for (conns, reliable, kind), samples in memory.items():
        mem.append({"conns": conns, "reliable": reliable, "server": kind, "runs": len(samples),
                    "rss_per_conn_kib": median(s[0] for s in samples),
                    "connect_seconds": median(s[1] for s in samples)})
    return summary, mem


def tables(summary, mem, kinds, header):
    """The summary as (title, columns, rows) tables."""
    peers = [k for k in kinds if k != "hubcast"]
    get = {(r["cell"], r["server"]): r for r in summary}
    cells = list(dict.fromkeys(r["cell"] for r in summary))
    out = [("", [], [[header]])]

    def validity(cell):
        marks = []
        for key, word in (("invalid_runs", "INVALID"), ("disturbed_runs", "disturbed")):
            bad = [f"{k} {get[(cell, k)][key]}/{get[(cell, k)]['runs']}" for k in kinds
                   if (cell, k) in get and get[(cell, k)][key]]
            if bad:
                marks.append(f"{word} " + ", ".join(bad))
        return "; ".join(marks) or "ok"

    def metric_table(title, cell_filter, key, digits, unit_note, ratios=True):
        rows = []
        shown = peers if ratios and "hubcast" in kinds else []
        for cell in filter(cell_filter, cells):
            values = {k: get[(cell, k)][key] if (cell, k) in get else None for k in kinds}
            rows.append([cell] + [fmt(values[k], digits) for k in kinds] +
                        [ratio(values["hubcast"], values[p]) for p in shown] + [validity(cell)])
        cols = ["cell"] + kinds + [f"hub/{p}" for p in shown] + ["valid"]
        if rows:
            out.append((f"{title} ({unit_note})", cols, rows))

    closed = lambda c: (c.endswith("closed") or c.endswith("closed reliable") or
                        c.endswith("overload"))
    rate = lambda c: not closed(c)
    overload = lambda c: c.endswith("overload")
    metric_table("Throughput, closed loop", closed, "deliveries_per_s", 0,
                 "deliveries/s, median; ratio > 1: Hubcast delivers more")
    metric_table("Throughput spread, closed loop", closed, "deliveries_spread_pct", 0,
                 "(max - min) / min of the repetitions, %; ratios well away from 1 survive it",
                 ratios=False)
    metric_table("Publishes, closed loop", closed, "publishes_per_s", 0,
                 "acknowledged publishes/s, median")
    for key, label in (("p50_ms", "p50"), ("p99_ms", "p99"), ("p999_ms", "p99.9")):
        metric_table(f"Latency {label}, fixed rate", rate, key, 3,
                     "ms publish to delivery, median; ratio < 1: Hubcast is faster")
    for key, label in (("p50_ms", "p50"), ("p99_ms", "p99"), ("p999_ms", "p99.9")):
        metric_table(f"Latency {label}, overload", overload, key, 3,
                     "ms publish to delivery while publishers wait for acknowledgements only")
    metric_table("Server CPU per delivery, closed loop", closed, "server_us_per_delivery", 2,
                 "us of server CPU; ratio < 1: Hubcast spends less")
    metric_table("Server CPU per publish, closed loop", closed, "server_us_per_publish", 1,
                 "us of server CPU; ratio < 1: Hubcast spends less")
    metric_table("Server CPU per delivery, fixed rate", rate, "server_us_per_delivery", 2,
                 "us of server CPU")
    metric_table("Server busy, closed loop", closed, "server_cpu_pct", 0, "% of its core",
                 ratios=False)
    metric_table("Generator busy", lambda c: True, "generator_cpu_pct", 0,
                 "% of its core; above 80 marks the run invalid", ratios=False)
    metric_table("Other processes on the server's core", lambda c: True, "other_cpu_pct", 0,
                 "% of the core; see Validity in README.md", ratios=False)

    rows = []
    for r in summary:
        if any(r[k] for k in ("lost", "duplicates", "strays", "corrupt", "errors", "disconnects")):
            rows.append([r["cell"], r["server"]] + [fmt(r[k]) for k in
                        ("lost", "duplicates", "strays", "corrupt", "errors", "disconnects")])
    out.append(("Losses and duplicates (sums over all runs; only cells with any)",
                ["cell", "server", "lost", "duplicates", "strays", "corrupt", "errors",
                 "disconnects"], rows or [["none", "", "", "", "", "", "", ""]]))

    rows = []
    for conns in sorted({m["conns"] for m in mem}):
        for reliable in (False, True):
            ms = {m["server"]: m for m in mem if m["conns"] == conns and m["reliable"] == reliable}
            if not ms:
                continue
            label = f"{conns}{' reliable' if reliable else ''}"
            hub = ms.get("hubcast")
            for key, metric, digits in (("rss_per_conn_kib", "RSS KiB/conn", 1),
                                        ("connect_seconds", "connect s", 2)):
                rows.append([label, metric] +
                            [fmt(ms[k][key], digits) if k in ms else "-" for k in kinds] +
                            [ratio(hub and hub[key], ms[p][key]) if p in ms else "-"
                             for p in peers])
    out.append(("Memory and connecting (medians; ratio < 1: Hubcast uses less / is faster)",
                ["conns", "metric"] + kinds + [f"hub/{p}" for p in peers], rows))
    return out


def render_text(tabs):
    lines = []
    for title, cols, rows in tabs:
        if not cols:
            lines += [rows[0][0], ""]
            continue
        widths = [max(len(str(x)) for x in [c] + [r[i] for r in rows]) for i, c in
                  enumerate(cols)]
        lines.append(f"== {title} ==")
        for r in [cols] + rows:
            lines.append("  ".join(str(x).ljust(w) if i == 0 else str(x).rjust(w)
                                   for i, (x, w) in enumerate(zip(r, widths))))
        lines.append("")
    return "\n".join(lines)


def render_markdown(tabs):
    lines = []
    for title, cols, rows in tabs:
        if not cols:
            lines += [rows[0][0], ""]
            continue
        lines += [f"### {title}", "", "| " + " | ".join(cols) + " |",
                  "|" + "|".join("---" for _ in cols) + "|"]
        lines += ["| " + " | ".join(str(x) for x in r) + " |" for r in rows]
        lines.append("")
    return "\n".join(lines)


def write_csv(path, rows):
    if not rows:
        return
    keys = list(rows[0].keys())
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)


# ---------------------------------------------------------------------------------------------
# Main


def parse_args(argv):
    p = argparse.ArgumentParser(prog="compare.sh", description=__doc__.split("\n\n")[0])
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--smoke", action="store_true", help="about 30 s: 200 members, 3+1 cells, 1 run")
    mode.add_argument("--full", action="store_true", help="the whole cross product (about two hours)")
    p.add_argument("--reps", type=int, help="repetitions (default 3; --smoke: 1)")
    p.add_argument("--servers", default=",".join(SERVERS), help="comma list of " + ",".join(SERVERS))
    p.add_argument("--conns", help="comma list of connection counts (default 2000,10000,19000)")
    p.add_argument("--seconds", type=float, help="measurement window per run (default 2)")
    p.add_argument("--warmup", type=float, help="publishing before the window (default 1)")
    p.add_argument("--window", type=int, default=64, help="closed loop: messages in flight (64)")
    p.add_argument("--rate-cap", type=int, default=1000,
                   help="fixed rate: at most this many publishes/s (1000)")
    p.add_argument("--rate-deliveries", type=int, default=20000,
                   help="fixed rate: aim at this many deliveries/s (20000)")
    p.add_argument("--out", help="results folder (default tests/bench/results/<time>)")
    p.add_argument("--hubcast", default=os.environ.get("HUBCAST_BINARY", ""), help="hubcast binary")
    p.add_argument("--loadgen", default=os.environ.get("HUBCAST_BENCH_LOADGEN", ""),
                   help="bench_loadgen binary")
    p.add_argument("--only", help="run only the cells whose name matches this regular expression")
    p.add_argument("--list", action="store_true", help="print the cells and exit")
    p.add_argument("--no-pin", action="store_true", help="do not pin with taskset")
    p.add_argument("--nice", type=int, default=0,
                   help="run servers and generators at this nice value (e.g. -10 as root, to "
                        "shield them from other work on a shared machine; default 0)")
    p.add_argument("--connect-timeout", type=float, default=240)
    args = p.parse_args(argv)
    args.reps = args.reps or (1 if args.smoke else 3)
    args.seconds = args.seconds or (1.0 if args.smoke else 2.0)
    args.warmup = args.warmup if args.warmup is not None else (0.3 if args.smoke else 1.0)
    args.settle = 0.3 if args.smoke else 1.0
    conns = args.conns or ("200" if args.smoke else "2000,10000,19000")
    try:
        args.conns = [int(x) for x in conns.split(",")]
    except ValueError:
        p.error(f"--conns: not a comma list of numbers: {conns}")
    if any(n < 1 or n > 19500 for n in args.conns):
        p.error("--conns: each count must be 1..19500 (each server holds them all)")
    if args.only:
        try:
            re.compile(args.only)
        except re.error as e:
            p.error(f"--only: not a regular expression: {e}")
    args.servers = [s for s in args.servers.split(",") if s]
    if not args.servers or any(s not in SERVERS for s in args.servers):
        p.error(f"--servers: choose from {','.join(SERVERS)}")
    if args.reps < 1 or args.seconds <= 0 or args.warmup < 0 or args.window < 1:
        p.error("--reps, --seconds and --window must be positive")
    for name in ("hubcast", "loadgen"):
        path = getattr(args, name)
        if not path or not os.access(path, os.X_OK):
            p.error(f"--{name}: no executable at '{path}' (compare.sh builds and passes it)")
    return args


def preflight(args):
    if shutil.which("nats-server") is None and "nats" in args.servers:
        raise HarnessError("nats-server is not installed (deploy/install-deps.sh installs it)")
    if any(s in args.servers for s in ("ws", "socketio")):
        if shutil.which("node") is None:
            raise HarnessError("node is not installed (deploy/install-deps.sh installs it)")
        for module in ("ws", "socket.io"):
            if not os.path.isdir(os.path.join(HERE, "peers", "node_modules", module)):
                raise HarnessError(f"tests/bench/peers/node_modules/{module} is missing: run "
                                   "deploy/install-deps.sh (npm ci in tests/bench/peers)")
    args.pinned = not args.no_pin and shutil.which("taskset") and len(os.sched_getaffinity(0)) >= 2
    if args.pinned:
        cores = sorted(os.sched_getaffinity(0))
        args.cores = cores[:2]
        args.ksoftirqd = ksoftirqd_pid(cores[0])
        args.pin_server = ["taskset", "-c", str(cores[0])]
        args.pin_generator = ["taskset", "-c", str(cores[1])]
    else:
        args.cores = []
        args.ksoftirqd = None
        args.pin_server = args.pin_generator = []
    if args.nice:
        if args.nice < 0 and os.geteuid() != 0:
            raise HarnessError("--nice below 0 needs root")
        args.pin_server = ["nice", "-n", str(args.nice)] + args.pin_server
        args.pin_generator = ["nice", "-n", str(args.nice)] + args.pin_generator
        CHILDREN.nice = args.nice
    # Every server holds all members of a block; every generator up to 10,000.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard != resource.RLIM_INFINITY and hard < max(args.conns) + 200:
        raise HarnessError(f"RLIMIT_NOFILE hard limit is {hard}; {max(args.conns) + 200} needed")


def main(argv):
    args = parse_args(argv)
    blocks = default_cells(args.conns, args.smoke, args.full)
    if args.only:
        blocks = {key: [c for c in cells if re.search(args.only, c.name())]
                  for key, cells in blocks.items()}
    blocks = {key: cells for key, cells in blocks.items() if cells}
    if args.list:
        print("\n".join(c.name() for cells in blocks.values() for c in cells))
        return 0
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    atexit.register(CHILDREN.stop_all)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = args.out or os.path.join(HERE, "results", stamp + ("-smoke" if args.smoke else ""))
    os.makedirs(out, exist_ok=True)
    log_dir = os.path.join(out, "logs")
    os.makedirs(log_dir, exist_ok=True)
    work = tempfile.mkdtemp(prefix="hubcast-bench-")
    runs, memory, failures = [], {}, []
    started = time.monotonic()
    try:
        preflight(args)
        cells_in_order = [c.name() for cells in blocks.values() for c in cells]
        mode = "smoke" if args.smoke else "full" if args.full else "default"
        n_runs = sum(len(cells) * len([k for k in args.servers if not key[1] or k in
                                       RELIABLE_SERVERS]) for key, cells in blocks.items())
        log(f"compare: {mode} matrix, {len(cells_in_order)} cells, {n_runs} runs x {args.reps} "
            f"repetitions, window {args.seconds} s after {args.warmup} s warm-up; "
            f"{'server on core ' + str(args.cores[0]) + ', generators on core ' + str(args.cores[1]) if args.pinned else 'NOT pinned'}; "
            f"nice {args.nice}; "
            f"results in {out}")
        for rep in range(args.reps):
            for b, ((conns, reliable), cells) in enumerate(blocks.items()):
                kinds = [k for k in args.servers if not reliable or k in RELIABLE_SERVERS]
                if not kinds:
                    continue
                shift = (rep + b) % len(kinds)
                kinds = kinds[shift:] + kinds[:shift]
                log(f"rep {rep + 1}/{args.reps}, {conns} members{' (reliable)' if reliable else ''}:"
                    f" starting {', '.join(kinds)}")
                servers = start_block(kinds, reliable, conns, cells, args, work, log_dir)
                try:
                    for s in servers:
                        memory.setdefault((conns, reliable, s.kind), []).append(
                            (s.rss_per_conn_kib, s.connect_seconds))
                    closed_rates = {}  # Hubcast's publishes/s per closed cell, this block
                    for i, cell in enumerate(cells):
                        order = servers[i % len(servers):] + servers[:i % len(servers)]
                        fixed_rate = None
                        if cell.mode == "half":
                            fixed_rate = closed_rates.get(dataclasses.replace(cell, mode="closed"))
                            if not fixed_rate:
                                log(f"  {cell.name()}: skipped (no closed-loop Hubcast run of "
                                    f"this cell before it)")
                                continue
                            fixed_rate /= 2
                        for server in order:
                            quiesce(servers)
                            row = run_cell(cell, server, servers, args, fixed_rate)
                            if cell.mode == "closed" and server.kind == "hubcast":
                                closed_rates[cell] = row["publishes_per_s"]
                            row["rep"] = rep + 1
                            runs.append(row)
                            if row["deliveries_per_s"] == 0:
                                failures.append(f"{row['cell']} on {server.kind}: no delivery")
                            log(f"  {cell.name():34} {server.kind:8} "
                                f"{row['deliveries_per_s']:>10,.0f} deliv/s  p99 "
                                f"{fmt(row['p99_ms'], 2):>7} ms  srv {row['server_cpu_pct']:3.0f}%"
                                f"  gen {row['generator_cpu_pct']:3.0f}%"
                                f"  other {row['other_cpu_pct']:3.0f}%"
                                f"{'' if row['valid'] else '  INVALID'}"
                                f"{'' if row['quiet'] else '  disturbed'}"
                                f"{'  lost ' + str(row['lost']) if row['lost'] else ''}")
                finally:
                    for s in servers:
                        s.stop()
    except HarnessError as e:
        failures.append(str(e))
    finally:
        CHILDREN.stop_all()
        shutil.rmtree(work, ignore_errors=True)

    kinds = args.servers
    summary, mem = summarize(runs, memory, list(dict.fromkeys(r["cell"] for r in runs)), kinds)
    header = (f"Hubcast vs peers, {time.strftime('%Y-%m-%d %H:%M')}, "
              f"{args.reps} repetition(s), {args.seconds:g} s windows, "
              f"{'pinned: server core 0, generators core 1' if getattr(args, 'pinned', False) else 'not pinned'}, "
              f"nice {args.nice}, "
              f"{time.monotonic() - started:.0f} s in all")
    header += "\n" + environment(args)
    tabs = tables(summary, mem, kinds, header)
    text = render_text(tabs)
    log("")
    log(text)
    write_csv(os.path.join(out, "runs.csv"), runs)
    write_csv(os.path.join(out, "summary.csv"), summary)
    write_csv(os.path.join(out, "memory.csv"), mem)
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(render_markdown(tabs))
    with open(os.path.join(out, "summary.txt"), "w") as f:
        f.write(text)
    log(f"results: {out}")
    if failures:
        for failure in failures:
            log(f"compare: HARNESS FAILURE: {failure}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
