#!/usr/bin/env bash
# CI stage for the board builds: on a fresh Debian machine, as root, build the release binaries
# for pi4 (aarch64-unknown-linux-musl), pi-zero (arm-unknown-linux-musleabihf, ARMv6) and x86_64
# (x86_64-unknown-linux-musl), run them under qemu-user on the boards' CPU models (cortex-a72,
# arm1176, qemu64) against the simulator, and package them. Called from .ci/run; needs Rust
# through rustup.
#
# What it installs: qemu-user-static, lintian (and python3-venv when missing) from apt; the rest is
# installed by `cargo board build` itself: rust-src (std is built from source for every board,
# -Zbuild-std with optimize_for_size: the size budgets rely on it), and zig + cargo-zigbuild
# from PyPI into ~/.cache/zigenv.
#
# Environment: ZOHO_DEVICE_BOARDS_DIR (cargo target dirs of the board builds, default
# target/boards), ZOHO_DEVICE_ZIGENV (the virtualenv, default ~/.cache/zigenv), BOARDS
# (default "pi4 pi-zero x86_64").
set -euo pipefail
cd "$(dirname "$0")/../.."

BOARDS=${BOARDS:-"pi4 pi-zero x86_64"}
board_args=()
arm_args=()
pc_args=()
for b in $BOARDS; do
    board_args+=(--board "$b")
    if [ "$b" = x86_64 ]; then pc_args+=(--board "$b"); else arm_args+=(--board "$b"); fi
done
# Tests fail instead of skipping when dpkg-deb or qemu is missing.
export ZOHO_DEVICE_REQUIRE_TOOLS=1

step() { printf '\n=== [%4ss] %s\n' "$SECONDS" "$*"; }

step "apt: qemu-user-static, python3-venv, lintian"
need=()
command -v qemu-aarch64-static >/dev/null && command -v qemu-arm-static >/dev/null \
    && command -v qemu-x86_64-static >/dev/null || need+=(qemu-user-static)
command -v lintian >/dev/null || need+=(lintian)
python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
if ((${#need[@]})); then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
command -v cargo >/dev/null || { echo "cargo not found: install Rust with rustup" >&2; exit 1; }

step "tests of the target crate (catalogue, .deb checks with dpkg-deb and dpkg -x)"
cargo test -q -p zoho-device-board

step "build ${BOARDS} (installs rust-src and zig when missing)"
# Fails when a Pi binary is over the 3.0 MB budget (aarch64 is the largest of them). x86-64 code
# is bigger (3.36 MB at the first build) and a PC's disk is not a Pi's SD card: it gets a budget
# of its own, as a guard against growth.
if ((${#arm_args[@]})); then cargo board build "${arm_args[@]}" --max-size-mb 3.0; fi
if ((${#pc_args[@]})); then cargo board build "${pc_args[@]}" --max-size-mb 3.5; fi

step "smoke ${BOARDS} under qemu-user"
cargo board smoke "${board_args[@]}"

step "package ${BOARDS} (builds again only what changed; man pages and completions from a host build)"
out=$(mktemp -d)
cargo board package "${board_args[@]}" --out-dir "$out"
for deb in "$out"/*.deb; do
    dpkg-deb --info "$deb" >/dev/null
    dpkg-deb --contents "$deb" | grep ' ./usr/bin/zoho-device$' >/dev/null
done

step "lintian ${BOARDS}: fails on any error or warning (overrides in the package say why)"
for deb in "$out"/*.deb; do
    lintian --fail-on error,warning --display-info "$deb"
done
rm -rf "$out"

step "done"
