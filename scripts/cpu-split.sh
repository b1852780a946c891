# cpu-split.sh — sourced by cpu-refresh.sh and cpu-floor.sh: CPU per request
# split by process (the server, every postgres process on the machine, the
# load generator), read from /proc over a window of a running load.
#
#   before=$(cpu_sample SERVER_PID LOAD_PID); sleep …; after=$(cpu_sample …)
#   cpu_report LABEL CONC REQ_PER_S "$before" "$after" NOUN
#
# LABEL, if not empty, starts the line; NOUN names what was counted
# ("refresh", "request").

cpu_ticks() { # utime+stime of the given pids, in clock ticks
  for p in "$@"; do awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || true; done | awk '{ s += $1 } END { print s + 0 }'
}

cpu_sample() { # server_pid load_pid: "server postgres load time"
  # shellcheck disable=SC2046
  echo "$(cpu_ticks "$1") $(cpu_ticks $(pgrep -x postgres)) $(cpu_ticks "$2") $(date +%s.%N)"
}

cpu_report() { # label conc rps before after noun
  awk -v label="$1" -v c="$2" -v rps="$3" -v before="$4" -v after="$5" -v noun="$6" -v hz="$(getconf CLK_TCK)" 'BEGIN {
    split(before, x); split(after, y)
    n = rps * (y[4] - x[4]); ms = 1000 / hz / n
    s = (y[1] - x[1]) * ms; p = (y[2] - x[2]) * ms; b = (y[3] - x[3]) * ms
    if (label != "") printf "%-9s ", label
    printf "c=%-3s %6d req/s   per %s: server %.3f ms, postgres %.3f ms, load generator %.3f ms, all %.3f ms\n",
      c, rps, noun, s, p, b, s + p + b }'
}
