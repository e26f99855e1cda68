#!/usr/bin/env bash
# carebridge against Medplum's in-memory FHIR router, in one interleaved run of the peers'
# load generator (../shared/peers/loadgen.py, default counts):
#
#   medplum-memory     Medplum router over its MemoryRepository (start-medplum.sh)
#   carebridge-sqlite  carebridge serve, 1 process, fresh SQLite store
#   carebridge-pg-2w   carebridge serve --workers 2, fresh PostgreSQL database
#
#   benchmarks/http_vs_medplum.sh [OUT_DIR]        # default benchmarks/results/http-<UTC time>
#   LOADGEN_ARGS='--creates 500' benchmarks/http_vs_medplum.sh    # extra loadgen flags
#   CAREBRIDGE_BENCH_PG=postgresql://postgres@127.0.0.1:5432  (the default) picks the PostgreSQL server
#
# Every server listens on a free loopback port and is stopped by the PID this script started
# (workers too), and the PostgreSQL database is dropped WITH (FORCE), on any exit (trap).
# Writes http.json (loadgen), loadgen.log, machine.txt, the server logs and summary.md to OUT_DIR.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=benchmarks/_serve.sh
source "$root/benchmarks/_serve.sh"
peers=${CAREBRIDGE_PEERS_DIR:-$root/../shared/peers}
pg=${CAREBRIDGE_BENCH_PG:-postgresql://postgres@127.0.0.1:5432}
out=${1:-$root/benchmarks/results/http-$(date -u +%Y%m%dT%H%M%SZ)}
cb=$root/.venv/bin/carebridge
[[ -x $cb ]] || { echo "http_vs_medplum: no $cb (make install)" >&2; exit 1; }
mkdir -p "$out"
work=$(mktemp -d "${TMPDIR:-/tmp}/carebridge-bench-http.XXXXXX")
db=cb_http_$$_$(date +%s)
db_made=
server_pids=()
worker_pids=()

cleanup() {
  for p in "${server_pids[@]}"; do stop "$p" 20; done
  for p in "${worker_pids[@]}"; do kill -0 "$p" 2>/dev/null && kill -9 "$p" 2>/dev/null; done
  if [[ -n $db_made ]]; then
    psql "$pg/postgres" -qAtc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 \
      || echo "http_vs_medplum: could not drop database $db" >&2
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM


{
  machine_lines "$root"
  echo "postgres: $(psql "$pg/postgres" -qAtc 'show server_version' 2>&1)"
} | tee "$out/machine.txt" >&2

"$peers/setup-medplum.sh" router >&2 || exit 1
client_py=$("$peers/setup-client.sh") || { echo "http_vs_medplum: setup-client.sh failed" >&2; exit 1; }

psql "$pg/postgres" -qAtc "CREATE DATABASE \"$db\"" >/dev/null || { echo "http_vs_medplum: cannot create database $db" >&2; exit 1; }
db_made=1

export CAREBRIDGE_VAR_DIR=$work/var   # a signing key of this run's own, shared by serve and token
mkdir -p "$CAREBRIDGE_VAR_DIR"
CB_TOKEN=$("$cb" token --client loadgen --scope 'system/*.cruds') || exit 1
export CB_TOKEN

# Schema and search-parameter state first, from one process: two workers starting on an empty
# PostgreSQL store race to record the search-parameter definitions and one can die on
# search_param_state_pkey (uvicorn then restarts it). An import of nothing does that set-up.
"$cb" import /dev/null --quiet --database-url "postgresql+psycopg://${pg#*://}/$db" >/dev/null || exit 1

port_mp=$(free_port)
"$peers/start-medplum.sh" "$port_mp" >"$out/medplum.log" 2>&1 &
pid_mp=$!; server_pids+=("$pid_mp")
port_sq=$(free_port)
"$cb" serve --port "$port_sq" --database-url "sqlite:///$work/bench.sqlite" --log-level warning \
  >"$out/carebridge-sqlite.log" 2>&1 &
pid_sq=$!; server_pids+=("$pid_sq")
port_pg=$(free_port)
"$cb" serve --port "$port_pg" --workers 2 --database-url "postgresql+psycopg://${pg#*://}/$db" \
  --log-level warning >"$out/carebridge-pg-2w.log" 2>&1 &
pid_pg=$!; server_pids+=("$pid_pg")

for spec in "medplum $port_mp $pid_mp" "carebridge-sqlite $port_sq $pid_sq" "carebridge-pg-2w $port_pg $pid_pg"; do
  read -r name port pid <<<"$spec"
  if ! wait_up "http://127.0.0.1:$port/fhir/metadata" "$pid"; then
    echo "http_vs_medplum: $name did not come up; see $out" >&2; exit 1
  fi
done
# the 2-worker server's worker processes (children of the PID started here), for CPU accounting
sleep 2
mapfile -t worker_pids < <(pgrep -P "$pid_pg")
pg_pids=$(IFS=,; echo "$pid_pg${worker_pids[*]:+,${worker_pids[*]}}")
echo "pids: medplum $pid_mp, carebridge-sqlite $pid_sq, carebridge-pg-2w $pg_pids" | tee -a "$out/machine.txt" >&2

# shellcheck disable=SC2086
timeout 3600 "$client_py" "$peers/loadgen.py" \
  "http://127.0.0.1:$port_mp/fhir" "http://127.0.0.1:$port_sq/fhir" "http://127.0.0.1:$port_pg/fhir" \
  --label medplum-memory --label carebridge-sqlite --label carebridge-pg-2w \
  --token '' --token env:CB_TOKEN --token env:CB_TOKEN \
  --server-pid "$pid_mp" --server-pid "$pid_sq" --server-pid "$pg_pids" \
  --out "$out/http.json" ${LOADGEN_ARGS:-} >/dev/null 2>"$out/loadgen.log"
rc=$?
cat "$out/loadgen.log" >&2
[[ $rc == 0 ]] || { echo "http_vs_medplum: loadgen failed ($rc)" >&2; exit "$rc"; }

"$root/.venv/bin/python" "$root/benchmarks/summarize.py" "$out" | tee "$out/summary.md"
echo "results: $out" >&2
