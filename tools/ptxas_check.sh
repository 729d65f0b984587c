#!/usr/bin/env bash
# Compiles one CUDA source as the build does and fails on what ptxas says costs speed: wgmma
# serialisation (remark C7515, printed as an "info" line, so a build never fails on it), injected
# warpgroup waits (C7519) and register spills. ctest runs it on the wgmma kernel (CMakeLists.txt:
# ptxas_wgmma), so a change that serialises its pipeline fails here, on a machine without a GPU,
# rather than on the next lease.
# setmaxnreg (warp specialisation) is checked too: ptxas ignores it, with a warning, where it
# cannot tell a kernel's register count at entry, and --entry-registers PATTERN=N requires the
# kernels whose mangled names match the grep -E PATTERN to enter with N registers (the count
# setmaxnreg's moves are sized for).
#   tools/ptxas_check.sh NVCC SOURCE [--entry-registers PATTERN=N] -- NVCC_FLAGS...
set -euo pipefail
nvcc=$1 src=$2
shift 2
entry_pattern="" entry_registers=""
if [ "${1:-}" = "--entry-registers" ]; then
  entry_pattern=${2%=*} entry_registers=${2##*=}
  shift 2
fi
[ "${1:-}" = "--" ] && shift
out=$("$nvcc" "$@" -Xptxas -v -c "$src" -o /dev/null 2>&1) || { echo "$out"; echo "ptxas_check: $src did not compile" >&2; exit 1; }
status=0
if grep -q 'C7515\|wgmma.mma_async instructions are serialized' <<<"$out"; then
  grep 'C7515\|serialized' <<<"$out" >&2
  echo "ptxas_check: $src: ptxas serialises its wgmmas" >&2
  status=1
fi
# C7519: ptxas injected a warpgroup.arrive to let ordinary code touch wgmma registers (a wait the
# kernel did not ask for).
if grep -q 'C7519\|warpgroup.arrive is injected' <<<"$out"; then
  grep 'C7519\|injected' <<<"$out" >&2
  echo "ptxas_check: $src: ptxas injects warpgroup.arrive" >&2
  status=1
fi
if grep -qE '(^|[^0-9])[1-9][0-9]* bytes spill (stores|loads)' <<<"$out"; then
  grep -E 'Compiling entry|spill' <<<"$out" >&2
  echo "ptxas_check: $src: register spills" >&2
  status=1
fi
if grep -qi 'setmaxnreg' <<<"$out"; then
  grep -i 'setmaxnreg' <<<"$out" >&2
  echo "ptxas_check: $src: ptxas says something of setmaxnreg (ignored: the warpgroups keep the entry's registers)" >&2
  status=1
fi
if [ -n "$entry_pattern" ]; then
  # Each entry's name, then its "Used N registers" line.
  counts=$(awk '/Compiling entry function/ {name = $0} /Used [0-9]+ registers/ {print name " " $0}' <<<"$out" |
    grep -E "$entry_pattern" | sed -E 's/.*Used ([0-9]+) registers.*/\1/' || true)
  if [ -z "$counts" ]; then
    echo "ptxas_check: $src: no kernel matches $entry_pattern" >&2
    status=1
  elif grep -qv "^$entry_registers\$" <<<"$counts"; then
    echo "ptxas_check: $src: kernels matching $entry_pattern use $(tr '\n' ' ' <<<"$counts")registers, not $entry_registers" >&2
    status=1
  fi
fi
[ $status = 0 ] && echo "ptxas_check: $src: $(grep -c 'Used [0-9]* registers' <<<"$out") kernels, no wgmma serialisation or injected waits, no spills"
exit $status
