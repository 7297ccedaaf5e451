#!/usr/bin/env bash
# A Hubcast cluster of three "regions" on this machine's loopback, for trying the cluster mode
# and for tests:
#   - three nats-servers (nats-eu-west, nats-us-east, nats-ap-south) in ONE JetStream cluster,
#     started from deploy/nats/three-regions/ (only the store dir and the ports differ), so an R3
#     hub stream keeps one replica per region;
#   - with --wan-delay-ms N, the routes between them pass through delay proxies
#     (build/tests/tools/delay_proxy): every byte between two regions waits N ms each way, so a
#     round trip between regions costs 2N ms (the kernel here has no netem);
#   - two `hubcast serve` nodes per region (eu-west-1, eu-west-2, ...), each with its own data
#     dir, pointed at its region's nats-server, --region set, --stream-replicas 3, one shared
#     access key.
#
# Usage:
#   deploy/local-cluster.sh up [--wan-delay-ms N] [--state DIR] [--nats-only] [-- SERVE_ARGS...]
#   deploy/local-cluster.sh status [--state DIR]
#   deploy/local-cluster.sh down [--state DIR]
#
# Every port is picked free at run time, on 127.0.0.1 only. Pids, logs, data and the endpoint
# table live in the state folder (default ./hubcast-cluster, or $HUBCAST_CLUSTER_STATE); `down`
# stops what `up` started, by pid, and removes the folder. `up` prints a table of endpoints and
# writes it to STATE/endpoints.txt; STATE/endpoints.tsv has the same for scripts
# (kind, name, region, url, extra). --nats-only starts the NATS half alone (proxies included);
# arguments after `--` go to every `hubcast serve`.
#
# Binaries: build/server/hubcast and build/tests/tools/delay_proxy (deploy/build.sh builds both),
# nats-server from PATH; HUBCAST_BINARY, DELAY_PROXY and NATS_SERVER override them. Also needs
# curl and python3 (deploy/install-deps.sh installs them).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REGIONS=(eu-west us-east ap-south)
NODES_PER_REGION=2
MARKER=.hubcast-local-cluster
START_TIMEOUT=60  # seconds for one process to come up

say() { printf 'local-cluster: %s\n' "$*"; }
die() { printf 'local-cluster: error: %s\n' "$*" >&2; exit 1; }
usage() {
  sed -n '/^# Usage:/,/^#   deploy\/local-cluster.sh down/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

command_name=${1:-}
[ -n "$command_name" ] || usage
shift
state="${HUBCAST_CLUSTER_STATE:-./hubcast-cluster}"
wan_delay_ms=0
nats_only=0
serve_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --wan-delay-ms)
      [ $# -ge 2 ] || die "--wan-delay-ms needs a value"
      if ! [[ "$2" =~ ^[0-9]+$ ]] || [ "$2" -gt 10000 ]; then
        die "--wan-delay-ms must be 0..10000, not '$2'"
      fi
      wan_delay_ms=$2
      shift 2
      ;;
    --state)
      [ $# -ge 2 ] || die "--state needs a value"
      state=$2
      shift 2
      ;;
    --nats-only) nats_only=1; shift ;;
    --) shift; serve_args=("$@"); break ;;
    -h | --help) usage ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
case "$command_name" in up | down | status) ;; *) usage ;; esac
state="$(realpath -m -- "$state")"

HUBCAST="${HUBCAST_BINARY:-$ROOT/build/server/hubcast}"
PROXY="${DELAY_PROXY:-$ROOT/build/tests/tools/delay_proxy}"
NATS="${NATS_SERVER:-$(command -v nats-server || echo /usr/sbin/nats-server)}"

# ---- processes, by pid -------------------------------------------------------------------------

# The pids file has one "PID START_TIME NAME BINARY" line per process started, in start order.
# A process is ours while its pid has the start time (/proc/PID/stat, field 22) recorded when it
# was started: a recycled pid is never taken for it.
start_time() { sed -E 's/.*\) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f20; }
alive() { [ "$2" != - ] && [ "$(start_time "$1")" = "$2" ]; }  # pid start_time

start() {  # name log binary args...: starts in its own session; records and prints the pid
  local name=$1 log=$2 binary=$3 pid started
  shift 3
  setsid "$binary" "$@" >"$log" 2>&1 </dev/null &
  pid=$!
  started=$(start_time "$pid")
  printf '%s %s %s %s\n' "$pid" "${started:--}" "$name" "$binary" >>"$state/pids"
  echo "$pid"
}

stop_all() {  # stops every recorded process, newest first: nodes, then NATS, then proxies
  [ -f "$state/pids" ] || return 0
  local pid started name binary waited i
  local -a pids=() starts=()
  while read -r pid started name binary; do
    if alive "$pid" "$started"; then
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
      starts+=("$started")
    fi
  done < <(tac "$state/pids")
  for i in "${!pids[@]}"; do
    waited=0
    while alive "${pids[$i]}" "${starts[$i]}" && [ $waited -lt 150 ]; do
      sleep 0.1
      waited=$((waited + 1))
    done
    if alive "${pids[$i]}" "${starts[$i]}"; then
      say "pid ${pids[$i]} ignored SIGTERM for 15 s; SIGKILL"
      kill -KILL "${pids[$i]}" 2>/dev/null || true
    fi
  done
}

any_alive() {
  [ -f "$state/pids" ] || return 1
  local pid started name binary
  while read -r pid started name binary; do
    alive "$pid" "$started" && return 0
  done <"$state/pids"
  return 1
}

wait_until() {  # description pid command...: polls the command until it succeeds
  local what=$1 pid=$2 deadline=$((SECONDS + START_TIMEOUT))
  shift 2
  until "$@" >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || return 1
    [ $SECONDS -lt $deadline ] || { say "timed out waiting for $what"; return 1; }
    sleep 0.1
  done
}

file_has_line() { [ -s "$1" ] && [ "$(tail -c 1 "$1" | od -An -c | tr -d ' ')" = '\n' ]; }

# count: prints that many free TCP ports of 127.0.0.1, below the kernel's ephemeral range so that
# nothing bound to port 0 in the meantime (the other processes here) can take them first.
free_ports() {
  python3 -c '
import random, socket, sys
low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
ports = []
while len(ports) < int(sys.argv[1]):
    port = random.randrange(max(1024, low - 12000), low)
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
    if port not in ports:
        ports.append(port)
print(" ".join(map(str, ports)))' "$1"
}

# ---- up ----------------------------------------------------------------------------------------

failed_log=""
on_up_failure() {
  local rc=$?
  [ $rc -eq 0 ] && return
  if [ -n "$failed_log" ] && [ -f "$failed_log" ]; then
    printf -- '----- last lines of %s -----\n' "$failed_log" >&2
    tail -n 30 "$failed_log" >&2
  fi
  stop_all
  say "up failed; everything it started is stopped. Logs stay in $state (\`$0 down --state $state\` removes them)" >&2
}

start_proxy() {  # region cluster_port: a delay proxy in front of that region's route port
  local region=$1 to=$2 pid
  local dir="$state/proxy-$region"
  mkdir -p "$dir"
  pid=$(start "proxy-$region" "$dir/proxy.log" "$PROXY" --listen-port 0 --ports-file "$dir/port" \
    --to "127.0.0.1:$to" --delay-ms "$wan_delay_ms")
  wait_until "proxy-$region" "$pid" file_has_line "$dir/port" || return 1
  tr -d '\n' <"$dir/port"
}

start_nats() {  # region cluster_port routes advertise
  local region=$1 cluster_port=$2 routes=$3 advertise=$4 pid
  local name="nats-$region"
  local dir="$state/$name"
  mkdir -p "$dir/conf" "$dir/store"
  # The shipped files, unchanged but for the store dir; flags move every port to loopback.
  cp "$ROOT/deploy/nats/three-regions/cluster.conf" "$ROOT/deploy/nats/three-regions/$name.conf" \
    "$dir/conf/"
  sed -i -E "s#^([[:space:]]*store_dir:).*#\1 \"$dir/store\"#" "$dir/conf/cluster.conf"
  grep -q "store_dir: \"$dir/store\"" "$dir/conf/cluster.conf" ||
    die "deploy/nats/three-regions/cluster.conf has no store_dir line to point at $dir/store"
  local args=(-c "$dir/conf/$name.conf" -a 127.0.0.1 -p -1 -m -1
    --cluster "nats://127.0.0.1:$cluster_port" --routes "$routes" --ports_file_dir "$dir")
  [ -n "$advertise" ] && args+=(--cluster_advertise "$advertise")
  failed_log="$dir/nats.log"
  pid=$(start "$name" "$dir/nats.log" "$NATS" "${args[@]}")
  echo "$pid" >"$dir/pid"
}

nats_ports() {  # region: "client_port monitoring_port" from the server's ports file
  local dir="$state/nats-$1"
  sed -E 's/.*"nats":\["nats:\/\/[^"]*:([0-9]+)".*"monitoring":\["http:\/\/[^"]*:([0-9]+)".*/\1 \2/' \
    "$dir/nats-server_$(cat "$dir/pid").ports"
}

# monitoring_port...: every server sees the same JetStream meta leader in a group of all of them,
# and the leader (the one that lists replicas) sees every other server current.
jetstream_ready() {
  python3 -c '
import json, sys, urllib.request
ports = sys.argv[1:]
metas = [json.load(urllib.request.urlopen("http://127.0.0.1:%s/jsz" % p, timeout=2))
         .get("meta_cluster") or {} for p in ports]
leaders = {m.get("leader") for m in metas}
peers = [r for m in metas for r in m.get("replicas") or []]
ok = len(leaders) == 1 and None not in leaders and "" not in leaders \
     and all(m.get("cluster_size") == len(ports) for m in metas) \
     and len(peers) == len(ports) - 1 and all(r.get("current") for r in peers)
sys.exit(0 if ok else 1)' "$@"
}

health_ok() { curl -sf -o /dev/null "http://127.0.0.1:$1/api/health"; }

start_node() {  # node_id region nats_url
  local id=$1 region=$2 nats_url=$3 dir="$state/node-$1" pid
  mkdir -p "$dir/data"
  failed_log="$dir/hubcast.log"
  pid=$(start "$id" "$dir/hubcast.log" "$HUBCAST" serve --bind 127.0.0.1 --port 0 \
    --ports-file "$dir/port" --data-dir "$dir/data" --node-id "$id" --access-key "$access_key" \
    --nats "$nats_url" --region "$region" --stream-replicas 3 "${serve_args[@]}")
  wait_until "node $id" "$pid" file_has_line "$dir/port" || return 1
  wait_until "node $id /api/health" "$pid" health_ok "$(tr -d '\n' <"$dir/port")" || return 1
}

up() {
  if [ -e "$state" ]; then
    [ -f "$state/$MARKER" ] || die "$state exists and is not a local cluster's state; pick another --state"
    any_alive && die "a cluster is already up in $state (\`$0 down --state $state\` first)"
    rm -rf "$state"  # a previous run that left no process behind
  fi
  [ -x "$NATS" ] || die "nats-server not found (deploy/install-deps.sh installs it)"
  [ $nats_only -eq 1 ] || [ -x "$HUBCAST" ] || die "$HUBCAST not found: run deploy/build.sh"
  [ "$wan_delay_ms" -eq 0 ] || [ -x "$PROXY" ] || die "$PROXY not found: run deploy/build.sh"
  if ! command -v curl >/dev/null || ! command -v python3 >/dev/null; then
    die "needs curl and python3 (deploy/install-deps.sh installs them)"
  fi

  mkdir -p "$state"
  printf 'regions: %s\nwan-delay-ms: %s\n' "${REGIONS[*]}" "$wan_delay_ms" >"$state/$MARKER"
  : >"$state/pids"
  trap on_up_failure EXIT

  # Route ports are chosen before any server starts: every server lists all of them.
  local -a cluster_ports advertised
  read -r -a cluster_ports <<<"$(free_ports ${#REGIONS[@]})"
  local i
  for i in "${!REGIONS[@]}"; do
    if [ "$wan_delay_ms" -gt 0 ]; then
      failed_log="$state/proxy-${REGIONS[$i]}/proxy.log"
      # One proxy in front of each server's route port, and the server advertises the proxy:
      # every route (configured or learnt by gossip) between two regions crosses one proxy.
      advertised[i]=$(start_proxy "${REGIONS[$i]}" "${cluster_ports[$i]}")
    else
      advertised[i]=${cluster_ports[$i]}
    fi
  done
  local routes="" advertise=""
  for i in "${!REGIONS[@]}"; do
    routes+="${routes:+,}nats-route://127.0.0.1:${advertised[$i]}"
  done
  for i in "${!REGIONS[@]}"; do
    [ "$wan_delay_ms" -gt 0 ] && advertise="127.0.0.1:${advertised[$i]}"
    start_nats "${REGIONS[$i]}" "${cluster_ports[$i]}" "$routes" "$advertise"
  done
  local -A client_port monitor_port
  local region client monitor
  for region in "${REGIONS[@]}"; do
    failed_log="$state/nats-$region/nats.log"
    local pid
    pid=$(cat "$state/nats-$region/pid")
    wait_until "nats-$region ports file" "$pid" test -s "$state/nats-$region/nats-server_$pid.ports"
    read -r client monitor <<<"$(nats_ports "$region")"
    [[ "$client $monitor" =~ ^[0-9]+\ [0-9]+$ ]] || die "cannot read the ports of nats-$region"
    client_port[$region]=$client
    monitor_port[$region]=$monitor
  done
  failed_log="$state/nats-${REGIONS[0]}/nats.log"
  wait_until "the JetStream cluster" "$(cat "$state/nats-${REGIONS[0]}/pid")" \
    jetstream_ready "${monitor_port[@]}"

  access_key="$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')"
  printf '%s\n' "$access_key" >"$state/access-key"
  local tsv="$state/endpoints.tsv"
  printf 'kind\tname\tregion\turl\textra\n' >"$tsv"
  for i in "${!REGIONS[@]}"; do
    region=${REGIONS[$i]}
    printf 'nats\tnats-%s\t%s\tnats://127.0.0.1:%s\thttp://127.0.0.1:%s\n' "$region" "$region" \
      "${client_port[$region]}" "${monitor_port[$region]}" >>"$tsv"
    if [ "$wan_delay_ms" -gt 0 ]; then
      printf 'proxy\tproxy-%s\t%s\t127.0.0.1:%s\troutes to 127.0.0.1:%s, %s ms each way\n' \
        "$region" "$region" "${advertised[$i]}" "${cluster_ports[$i]}" "$wan_delay_ms" >>"$tsv"
    fi
  done
  if [ $nats_only -eq 0 ]; then
    local n id port
    for region in "${REGIONS[@]}"; do
      for n in $(seq 1 $NODES_PER_REGION); do
        id="$region-$n"
        start_node "$id" "$region" "nats://127.0.0.1:${client_port[$region]}"
        port=$(tr -d '\n' <"$state/node-$id/port")
        printf 'node\t%s\t%s\thttp://127.0.0.1:%s\tEndpoint=http://127.0.0.1:%s;AccessKey=%s;Version=1.0;\n' \
          "$id" "$region" "$port" "$port" "$access_key" >>"$tsv"
      done
    done
  fi
  trap - EXIT
  print_table >"$state/endpoints.txt"
  cat "$state/endpoints.txt"
  say "up; state in $state; stop with: $0 down --state $state"
}

print_table() {  # endpoints.tsv as aligned columns: region, name, URL, connection string or extra
  awk -F'\t' '
    NR == 1 { rows[++n] = "REGION\tNAME\tURL\tCONNECTION STRING (nodes) / MONITORING (nats)"; next }
    { rows[++n] = $3 "\t" $2 "\t" $4 "\t" $5 }
    END {
      for (i = 1; i <= n; i++) {
        c = split(rows[i], f, "\t")
        for (j = 1; j < c; j++) if (length(f[j]) > w[j]) w[j] = length(f[j])
      }
      for (i = 1; i <= n; i++) {
        c = split(rows[i], f, "\t")
        line = ""
        for (j = 1; j < c; j++) line = line sprintf("%-" w[j] + 2 "s", f[j])
        print line f[c]
      }
    }' "$state/endpoints.tsv"
}

# ---- status, down ------------------------------------------------------------------------------

status() {
  [ -f "$state/$MARKER" ] || die "no local cluster in $state"
  [ -f "$state/endpoints.tsv" ] && print_table
  local pid started name binary
  while read -r pid started name binary; do
    if alive "$pid" "$started"; then
      printf '%-16s pid %-8s running\n' "$name" "$pid"
    else
      printf '%-16s pid %-8s STOPPED (log in %s)\n' "$name" "$pid" "$state"
    fi
  done <"$state/pids"
}

down() {
  if [ ! -e "$state" ]; then
    say "nothing to stop in $state"
    return 0
  fi
  [ -f "$state/$MARKER" ] || die "$state is not a local cluster's state; not touching it"
  stop_all
  rm -rf "$state"
  say "down; $state removed"
}

"$command_name"
