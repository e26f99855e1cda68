#!/usr/bin/env bash
# What the audit trail costs the API: create and read throughput with audit off, with
# AuditEvents in their own store (the default) and with AuditEvents in the clinical store,
# in one interleaved run of the peers' load generator (../shared/peers/loadgen.py):
#
#   audit-off     carebridge serve, CAREBRIDGE_AUDIT=off
#   audit-own     carebridge serve, the default: AuditEvents in <store>-audit.sqlite
#   audit-main    carebridge serve, CAREBRIDGE_AUDIT_DATABASE_URL=main (the clinical store)
#
#   benchmarks/audit_overhead.sh [OUT_DIR]       # default benchmarks/results/audit-<UTC time>
#   LOADGEN_ARGS='--creates 1000' benchmarks/audit_overhead.sh
#
# Each server is one process on a fresh SQLite store, on a free loopback port, stopped by the
# PID this script started (SIGTERM: the audit queue is drained), on any exit. Afterwards the
# AuditEvents in each store are counted against the requests the load generator made.
# Writes http.json, loadgen.log, machine.txt, the server logs and summary.md to OUT_DIR.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=benchmarks/_serve.sh
source "$root/benchmarks/_serve.sh"
peers=${CAREBRIDGE_PEERS_DIR:-$root/../shared/peers}
out=${1:-$root/benchmarks/results/audit-$(date -u +%Y%m%dT%H%M%SZ)}
cb=$root/.venv/bin/carebridge
py=$root/.venv/bin/python
[[ -x $cb ]] || { echo "audit_overhead: no $cb (make install)" >&2; exit 1; }
mkdir -p "$out"
work=$(mktemp -d "${TMPDIR:-/tmp}/carebridge-bench-audit.XXXXXX")
labels=(audit-off audit-own audit-main)
pids=()

cleanup() {
  for p in "${pids[@]}"; do stop "$p"; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

{
  machine_lines "$root"
} | tee "$out/machine.txt" >&2

client_py=$("$peers/setup-client.sh") || { echo "audit_overhead: setup-client.sh failed" >&2; exit 1; }
export CAREBRIDGE_VAR_DIR=$work/var
mkdir -p "$CAREBRIDGE_VAR_DIR"
CB_TOKEN=$("$cb" token --client loadgen --scope 'system/*.cruds') || exit 1
export CB_TOKEN

bases=(); label_args=(); token_args=(); pid_args=()
for label in "${labels[@]}"; do
  port=$(free_port)
  case $label in
    audit-off) envs=(CAREBRIDGE_AUDIT=off) ;;
    audit-own) envs=(CAREBRIDGE_AUDIT=on) ;;
    audit-main) envs=(CAREBRIDGE_AUDIT=on CAREBRIDGE_AUDIT_DATABASE_URL=main) ;;
  esac
  env "${envs[@]}" "$cb" serve --port "$port" --database-url "sqlite:///$work/$label.sqlite" \
    --log-level warning >"$out/$label.log" 2>&1 &
  pid=$!; pids+=("$pid")
  wait_up "http://127.0.0.1:$port/fhir/metadata" "$pid" || { echo "audit_overhead: $label did not come up" >&2; exit 1; }
  bases+=("http://127.0.0.1:$port/fhir"); label_args+=(--label "$label"); token_args+=(--token env:CB_TOKEN)
  pid_args+=(--server-pid "$pid")
done
echo "pids: ${pids[*]}" | tee -a "$out/machine.txt" >&2

# shellcheck disable=SC2086
timeout 3600 "$client_py" "$peers/loadgen.py" "${bases[@]}" "${label_args[@]}" "${token_args[@]}" "${pid_args[@]}" \
  --scenarios create_seq,create_c16,read_seq,read_c16 --out "$out/http.json" ${LOADGEN_ARGS:-} \
  >/dev/null 2>"$out/loadgen.log"
rc=$?
cat "$out/loadgen.log" >&2
[[ $rc == 0 ]] || { echo "audit_overhead: loadgen failed ($rc)" >&2; exit "$rc"; }

for p in "${pids[@]}"; do stop "$p"; done   # SIGTERM: each server drains its audit queue
pids=()
"$py" - "$out" "$work" <<'PY' | tee "$out/summary.md"
import json, sqlite3, sys
from pathlib import Path
out, work = Path(sys.argv[1]), Path(sys.argv[2])
runs = {r["label"]: r for r in json.loads((out / "http.json").read_text())["runs"]}
def events(label):
    path = work / (f"{label}-audit.sqlite" if label == "audit-own" else f"{label}.sqlite")
    if label == "audit-off" or not path.exists():
        return 0
    with sqlite3.connect(path) as db:
        return db.execute("select count(*) from resource where resource_type = 'AuditEvent'").fetchone()[0]
off = runs["audit-off"]["scenarios"]
print("| scenario | " + " | ".join(f"{l} req/s" for l in runs) + " | own/off | main/off | "
      + " | ".join(f"{l} server CPU ms/req" for l in runs) + " |")
print("|---" * (1 + 2 * len(runs) + 2) + "|")
for name in off:
    rps = {l: r["scenarios"][name]["rps"] for l, r in runs.items()}
    cpu = {l: r["scenarios"][name].get("server_cpu_pct", 0) * 10 / max(r["scenarios"][name]["rps"], 1e-9)
           for l, r in runs.items()}
    print(f"| {name} | " + " | ".join(f"{rps[l]:.0f}" for l in runs)
          + f" | {rps['audit-own'] / rps['audit-off']:.2f} | {rps['audit-main'] / rps['audit-off']:.2f} | "
          + " | ".join(f"{cpu[l]:.2f}" for l in runs) + " |")
print()
for label, r in runs.items():
    made = sum(s["requests"] for s in r["scenarios"].values())
    print(f"- {label}: {events(label)} AuditEvents stored for {made} measured requests (plus warm-up)")
PY
echo "results: $out" >&2
