#!/usr/bin/env bash
# Installs the Debian packages gdnserve builds and tests with. Idempotent: does nothing when all
# are present. Needs root (or sudo) only when something is missing.
set -euo pipefail

pkgs=(
  g++ cmake ninja-build pkg-config        # toolchain
  nlohmann-json3-dev                      # JSON (config, safetensors headers, CLI output)
  libfmt-dev libspdlog-dev                # formatting, logging
  libcli11-dev                            # command-line parsing
  libpcre2-dev libutf8proc-dev            # tokenizer: Unicode regex, NFC normalisation
  libgtest-dev                            # tests
  clang libclang-rt-dev                   # libFuzzer targets (run briefly by the test command)
)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing: ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
