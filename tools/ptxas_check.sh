#!/usr/bin/env bash
# Compiles one CUDA source as the build does and fails on what ptxas says costs speed: wgmma
# serialisation (remark C7515, printed as an "info" line, so a build never fails on it), injected
# warpgroup waits (C7519) and register spills. ctest runs it on the wgmma kernel (CMakeLists.txt:
# ptxas_wgmma), so a change that serialises its pipeline fails here, on a machine without a GPU,
# rather than on the next lease.
#   tools/ptxas_check.sh NVCC SOURCE -- NVCC_FLAGS...
set -euo pipefail
nvcc=$1 src=$2
shift 2
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
[ $status = 0 ] && echo "ptxas_check: $src: $(grep -c 'Used [0-9]* registers' <<<"$out") kernels, no wgmma serialisation or injected waits, no spills"
exit $status
