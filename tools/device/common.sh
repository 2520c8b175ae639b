# Shared by the GPU-machine scripts (sourced, not run). The device image has CUDA, CMake and ninja
# but not our C++ -dev packages: the .debs carried in .deps/debs are unpacked with dpkg -x into a
# private prefix (never into /) and CMake / pkg-config are pointed at it.
#
# gdn_script_setup NAME DEFAULT_STAGES
#                       sets OUT, BUILD, DEPS, BUDGET, STAGES, SUMMARY (from GDN_* knobs) and defines
#                       note (a summary line prefixed [NAME]), left (seconds of budget left), has_stage
# gdn_unpack_deps DIR   sets CMAKE_DEPS (array of cmake flags) and the library / pkg-config paths
# gdn_gpu_id            prints h100, h200 or the lower-cased device name

gdn_script_setup() {
  GDN_SCRIPT_NAME="$1"
  OUT="${OUT:-$ROOT/build-gpu/out}"
  BUILD="${GDN_BUILD_DIR:-$ROOT/build-gpu}"
  DEPS="${GDN_DEPS_DIR:-/tmp/gdn-deps}"
  BUDGET="${GDN_TIME_BUDGET:-570}"
  STAGES="${GDN_STAGES:-$2}"
  mkdir -p "$OUT"
  SUMMARY="$OUT/summary.txt"
  : >"$SUMMARY"
}
note() { echo "[$GDN_SCRIPT_NAME] $*" | tee -a "$SUMMARY"; }
left() { echo $((BUDGET - SECONDS)); }
has_stage() { [[ " $STAGES " == *" $1 "* ]]; }

gdn_unpack_deps() {
  local deps="$1" f
  CMAKE_DEPS=()
  compgen -G ".deps/debs/*.deb" >/dev/null || return 1
  rm -rf "$deps" && mkdir -p "$deps"
  for f in .deps/debs/*.deb; do dpkg -x "$f" "$deps"; done
  # pkg-config files say prefix=/usr: point them at the unpacked tree.
  find "$deps" -name '*.pc' -exec sed -i -e "s|^prefix=/usr\$|prefix=$deps/usr|" -e "s|=/usr/|=$deps/usr/|g" {} +
  export LD_LIBRARY_PATH="$deps/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export PKG_CONFIG_LIBDIR="$deps/usr/lib/x86_64-linux-gnu/pkgconfig:$deps/usr/share/pkgconfig"
  export PKG_CONFIG_PATH="$PKG_CONFIG_LIBDIR"
  CMAKE_DEPS=(-DCMAKE_PREFIX_PATH="$deps/usr" -DPKG_CONFIG_EXECUTABLE="$deps/usr/bin/pkgconf")
}

gdn_gpu_id() {
  local name
  name="$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 || echo unknown)"
  case "$name" in *H200*) echo h200 ;; *H100*) echo h100 ;; *) echo "$name" | tr 'A-Z ' 'a-z-' ;; esac
}
