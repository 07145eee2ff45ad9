#!/usr/bin/env bash
# Runs every libFuzzer target of tests/fuzz for SECONDS each, one after the
# other, on a temporary copy of its seed corpus and of its committed grown
# corpus, if any (tests/fuzz/corpus-grown/<target>; neither grows during a
# run), and prints executions, exec/s and coverage per target. Exits
# non-zero if any target crashed, leaked, timed out or ran out of memory;
# the input that did it is kept and its path printed.
#
#   tests/fuzz/run-fuzzers.sh SECONDS [BUILD_DIR]      (BUILD_DIR: build-fuzz)
#
# Environment:
#   FUZZ_TARGETS="fuzz_config fuzz_tls_server"  run only these
#   FUZZ_RSS_LIMIT_MB=2048     -rss_limit_mb (per process)
#   FUZZ_TIMEOUT=25            -timeout: seconds for one input
#   FUZZ_ARTIFACTS=DIR         where crash/leak/timeout inputs and logs go
#                              (default BUILD_DIR/fuzz-artifacts)
#   FUZZ_KEEP_CORPUS=DIR       keep each target's grown corpus in DIR/<target>
#   FUZZ_EXTRA_ARGS="..."      more libFuzzer flags (e.g. -use_value_profile=1)
# Set up the build dir first (see tests/fuzz/README.md):
#   CXX=clang++ meson setup build-fuzz -Dfuzz=true -Db_sanitize=address,undefined \
#     -Db_lundef=false -Dbuildtype=debugoptimized && meson compile -C build-fuzz
set -uo pipefail

if [ $# -lt 1 ] || ! [[ "$1" =~ ^[0-9]+$ ]] || [ "$1" -lt 1 ]; then
  echo "usage: $0 SECONDS [BUILD_DIR]" >&2
  exit 2
fi
seconds=$1
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
build=${2:-$repo/build-fuzz}
build=$(cd "$build" 2>/dev/null && pwd) || { echo "run-fuzzers: no build dir ${2:-$repo/build-fuzz}" >&2; exit 2; }
artifacts=${FUZZ_ARTIFACTS:-$build/fuzz-artifacts}
mkdir -p "$artifacts"
artifacts=$(cd "$artifacts" && pwd)
targets=${FUZZ_TARGETS:-fuzz_http_request fuzz_http_response fuzz_config fuzz_target fuzz_tls_server fuzz_peer_identity fuzz_session_machine}

# Per-target flags: dictionary and the largest input worth trying.
target_args() {
  case "$1" in
    fuzz_http_request|fuzz_http_response) echo "-dict=$here/http.dict -max_len=16384" ;;
    fuzz_config) echo "-dict=$here/config.dict -max_len=16384" ;;
    fuzz_target) echo "-dict=$here/target.dict -max_len=1024" ;;
    fuzz_tls_server|fuzz_peer_identity) echo "-max_len=8192" ;;
    *) echo "" ;;
  esac
}

# UBSan findings must stop the run (libFuzzer then saves the input); leaks
# are reported by LeakSanitizer at the end of each input.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1}"

work=$(mktemp -d "${TMPDIR:-/tmp}/fedproxy-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT

failed=()
summary=()
for t in $targets; do
  exe="$build/tests/fuzz/$t"
  if [ ! -x "$exe" ]; then
    echo "run-fuzzers: $exe not built (meson compile -C $build)" >&2
    failed+=("$t (not built)")
    continue
  fi
  corpus="$work/$t"
  mkdir -p "$corpus"
  cp -r "$here/corpus/$t/." "$corpus/" 2>/dev/null || true
  [ -d "$here/corpus-grown/$t" ] && cp -r "$here/corpus-grown/$t/." "$corpus/"
  seeds=$(find "$corpus" -type f | wc -l)
  mkdir -p "$artifacts/$t"
  log="$artifacts/$t/run.log"
  echo "== $t: ${seconds}s, $seeds seeds, log $log"
  # shellcheck disable=SC2046
  "$exe" -max_total_time="$seconds" -rss_limit_mb="${FUZZ_RSS_LIMIT_MB:-2048}" \
    -timeout="${FUZZ_TIMEOUT:-25}" -print_final_stats=1 -jobs=0 -workers=0 \
    -artifact_prefix="$artifacts/$t/" $(target_args "$t") ${FUZZ_EXTRA_ARGS:-} \
    "$corpus" >"$log" 2>&1
  rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  rss=$(grep -o 'stat::peak_rss_mb: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  last=$(grep -E '^#[0-9]+' "$log" | grep -E 'cov: ' | tail -1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9]*[a-zA-Z]*\).*/\1/p' <<<"$last")
  line=$(printf '%-20s execs %-10s exec/s %-7s cov %-6s ft %-7s corpus %-12s peak-rss %sMB' \
    "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "${rss:-?}")
  if [ $rc -ne 0 ]; then
    echo "$line  FAILED (exit $rc)"
    # What happened, and the input that did it.
    grep -E '^==[0-9]+==ERROR|^SUMMARY:|INVARIANT VIOLATED|^==fuzz==|ERROR: libFuzzer|runtime error:' "$log" | head -12 | sed 's/^/    /'
    grep -E 'Test unit written to|written to ' "$log" | sed 's/^/    /'
    echo "    reproduce: $exe <that file>   (full log: $log)"
    failed+=("$t")
  else
    echo "$line  ok"
  fi
  summary+=("$line  $([ $rc -eq 0 ] && echo ok || echo FAILED)")
  if [ -n "${FUZZ_KEEP_CORPUS:-}" ]; then
    mkdir -p "$FUZZ_KEEP_CORPUS/$t"
    cp -r "$corpus/." "$FUZZ_KEEP_CORPUS/$t/"
  fi
done

echo "== fuzz summary (${seconds}s per target)"
for l in "${summary[@]}"; do echo "  $l"; done
if [ ${#failed[@]} -gt 0 ]; then
  echo "== fuzz FAILED: ${failed[*]}"
  exit 1
fi
echo "== fuzz: no crash, leak or timeout"
