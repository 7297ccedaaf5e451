#!/usr/bin/env python3
"""profile_publish: instructions per publish of `hubcast serve`, counted by valgrind's callgrind.

Instruction counts do not depend on how busy the machine is, so unlike compare.sh this gives
the same figure on a shared machine, run after run (within a few percent). For each cell
(publisher x group size) it starts hubcast under callgrind with instrumentation off, connects
the members with bench_loadgen, starts a closed-loop publish phase, switches instrumentation
on for the measurement window only (callgrind_control), and prints:

  - instructions (Ir, all threads) per acknowledged publish and per delivery in the window;
  - the top inclusive functions of the window (callgrind_annotate --inclusive=yes).

Run from the repository root after building hubcast and bench_loadgen:

  tests/bench/profile_publish.py                          # rest and client, groups of 1 and 10
  tests/bench/profile_publish.py --pub rest --sizes 1 --top 40
  tests/bench/profile_publish.py --native     # no valgrind: user/system CPU, context switches

Everything stays on 127.0.0.1 (port 0); every process started is stopped by its pid. The
callgrind files are kept in --out (default: a new temporary folder) for callgrind_annotate or
kcachegrind. A profile, not a test: nothing is asserted.
"""

import argparse
import atexit
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import types

# The harness's process bookkeeping and generator driver (same folder).
from compare import ACCESS_KEY, CHILDREN, Generator, HarnessError, wait_for_file


def kernel_counts(pid):
    """The server's user and system CPU (us) and context switches so far, all threads."""
    tick_us = 1e6 / os.sysconf("SC_CLK_TCK")
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    counts = {"user_us": int(fields[11]) * tick_us, "system_us": int(fields[12]) * tick_us,
              "voluntary_switches": 0, "involuntary_switches": 0}
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/status") as f:
                for line in f:
                    name, _, value = line.partition(":")
                    if name == "voluntary_ctxt_switches":
                        counts["voluntary_switches"] += int(value)
                    elif name == "nonvoluntary_ctxt_switches":
                        counts["involuntary_switches"] += int(value)
        except FileNotFoundError:
            pass  # a thread that ended meanwhile
    return counts


def callgrind_control(flag, pid):
    subprocess.run(["callgrind_control", flag, str(pid)], check=True, stdout=subprocess.DEVNULL)


def total_ir(path):
    """The program's total from a callgrind output file (its `summary:` line may say 0 when
    instrumentation started off; `totals:` has the count)."""
    best = 0
    with open(path) as f:
        for line in f:
            if line.startswith(("totals:", "summary:")):
                best = max(best, int(line.split()[1]))
    return best


def top_functions(path, top):
    out = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", path],
                         check=True, capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+)\s+\(\s*([\d.]+)%\)\s+(.*)", line)
        if m and "PROGRAM TOTALS" not in line:
            rows.append((int(m.group(1).replace(",", "")), m.group(2), m.group(3)))
    return rows[:top]


def run_cell(args, pub, size, out_dir):
    cell = f"{pub}-g{size}" if args.to == "group" else f"{pub}-{args.to}"
    data = tempfile.mkdtemp(prefix=f"hubcast-{cell}-", dir=out_dir)
    port_file = os.path.join(data, "port")
    cg_file = os.path.join(out_dir, f"callgrind.{cell}.out")
    tool = [] if args.native else [
        "valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={cg_file}"]
    server = CHILDREN.start(
        "hubcast", tool + [args.hubcast, "serve", "--port", "0", "--ports-file", port_file,
                           "--data-dir", os.path.join(data, "data"), "--access-key", ACCESS_KEY,
                           "--log-level", "warn", "--event-loops", "1"],
        os.path.join(out_dir, f"hubcast.{cell}.log"))
    generator = None
    try:
        wait_for_file(port_file, server, 180, "hubcast")
        target = types.SimpleNamespace(kind="hubcast", port=int(open(port_file).read().split()[0]),
                                       nats_port=0, reliable=False)
        members = max(args.members, size) // size * size
        generator = Generator(target, 0, members, args, out_dir, [size])
        generator.expect("ready", 300)
        generator.send(f"phase to={args.to} pub={pub} mode=closed size={size} "
                       f"bytes={args.bytes} window={args.window}")
        generator.expect("started", 30)
        time.sleep(args.warmup)
        if args.native:
            first = kernel_counts(server.pid)
        else:
            callgrind_control("--instr=on", server.pid)
        generator.send("measure")
        generator.expect("measuring", 30)
        time.sleep(args.seconds)
        generator.send("stop")
        if args.native:
            # The window only: the drain after "stop" is mostly waiting.
            last = kernel_counts(server.pid)
        result = json.loads(generator.expect("result", 120))
        if not args.native:
            callgrind_control("--instr=off", server.pid)
    finally:
        if generator:
            generator.quit()
        CHILDREN.stop(server, grace=120)  # callgrind writes its file on the way out
    if args.native:
        publishes = max(result["window_acked"], 1)
        spent = {k: (last[k] - first[k]) / publishes for k in first}
        return {"cell": cell, "publishes": publishes, "errors": result["window_errors"],
                "lost": result["lost"], **spent}
    ir = total_ir(cg_file)
    # Instrumentation covered the window and the drain: every publish acknowledged from the
    # window's start on, and every delivery of those.
    publishes = max(result["window_acked"], 1)
    deliveries = max(result["window_deliveries"], 1)
    return {"cell": cell, "ir": ir, "publishes": publishes, "deliveries": deliveries,
            "ir_per_publish": ir / publishes, "ir_per_delivery": ir / deliveries,
            "errors": result["window_errors"], "lost": result["lost"], "file": cg_file}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hubcast", default=os.environ.get("HUBCAST_BINARY",
                                                            "build/server/hubcast"))
    parser.add_argument("--loadgen", default="build/tests/bench/bench_loadgen")
    parser.add_argument("--pub", default="rest,client", help="publishers: rest,client")
    parser.add_argument("--sizes", default="1,10", help="group sizes (1,10)")
    parser.add_argument("--to", default="group", choices=["group", "connection", "user"],
                        help="what a REST publish targets (group; connection and user take "
                             "one size, and their publishes go to a random member)")
    parser.add_argument("--members", type=int, default=100, help="connected members (100)")
    parser.add_argument("--window", type=int, default=16, help="publishes in flight (16)")
    parser.add_argument("--bytes", type=int, default=100, help="payload bytes (100)")
    parser.add_argument("--warmup", type=float, default=3, help="seconds before counting (3)")
    parser.add_argument("--seconds", type=float, default=10, help="counted seconds (10)")
    parser.add_argument("--top", type=int, default=25, help="inclusive functions shown (25)")
    parser.add_argument("--out", default=None, help="folder for the callgrind files")
    parser.add_argument("--native", action="store_true",
                        help="no valgrind: user and system CPU and context switches per "
                             "publish instead (from /proc; these depend on the machine's load)")
    args = parser.parse_args()
    args.pin_generator = []
    atexit.register(CHILDREN.stop_all)
    for tool in (args.hubcast, args.loadgen):
        if not os.access(tool, os.X_OK):
            sys.exit(f"profile_publish: {tool} is not built (cmake --build build --target "
                     "hubcast bench_loadgen)")
    out_dir = args.out or tempfile.mkdtemp(prefix="hubcast-profile-")
    os.makedirs(out_dir, exist_ok=True)
    rows = []
    for pub in args.pub.split(","):
        for size in (int(s) for s in args.sizes.split(",")):
            try:
                row = run_cell(args, pub, size, out_dir)
            except HarnessError as e:
                sys.exit(f"profile_publish: {e}")
            rows.append(row)
            if args.native:
                print(f"== {row['cell']}: {row['user_us']:.1f} us user + {row['system_us']:.1f} "
                      f"us system CPU, {row['voluntary_switches']:.2f} voluntary + "
                      f"{row['involuntary_switches']:.2f} involuntary context switches per "
                      f"publish ({row['publishes']} publishes, {row['errors']} errors)")
                continue
            print(f"\n== {row['cell']}: {row['ir_per_publish']:,.0f} Ir/publish, "
                  f"{row['ir_per_delivery']:,.0f} Ir/delivery ({row['publishes']} publishes, "
                  f"{row['deliveries']} deliveries, {row['errors']} errors, {row['lost']} lost)")
            print("   inclusive Ir per publish, top functions:")
            for ir, pct, name in top_functions(row["file"], args.top):
                print(f"   {ir / row['publishes']:>12,.0f} {pct:>6}%  {name[:110]}")
    if args.native:
        return
    print("\n| cell | Ir / publish | Ir / delivery | publishes |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['cell']} | {r['ir_per_publish']:,.0f} | {r['ir_per_delivery']:,.0f} | "
              f"{r['publishes']} |")
    print(f"\ncallgrind files: {out_dir}")


if __name__ == "__main__":
    main()
