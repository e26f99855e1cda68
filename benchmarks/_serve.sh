# Shell helpers the HTTP benchmark scripts share (sourced, not run): stopping a server by
# the PID the script started, a free loopback port, waiting for a 200, the machine record.

stop() {  # PID [SECONDS]: TERM, then KILL after SECONDS (default 30)
  kill "$1" 2>/dev/null || return 0
  for _ in $(seq $(( ${2:-30} * 10 ))); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$1" 2>/dev/null
  return 0
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_up() {  # URL PID: up to 120 s for a 200, failing at once if PID exits
  for _ in $(seq 240); do
    kill -0 "$2" 2>/dev/null || return 1
    [[ $(curl -s -o /dev/null -w '%{http_code}' "$1") == 200 ]] && return 0
    sleep 0.5
  done
  return 1
}

machine_lines() {  # ROOT: the lines every run records about the machine and the code
  echo "date: $(date -u +%FT%TZ)"; echo "commit: $(git -C "$1" describe --always --dirty --abbrev=7)"
  echo "nproc: $(nproc)"; echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "memory: $(free -h | awk '/Mem:/{print $2}')"; echo "kernel: $(uname -r)"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "loadgen args: ${LOADGEN_ARGS:-(defaults)}"
}
