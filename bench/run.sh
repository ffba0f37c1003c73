#!/bin/sh
# The benchmark suite: builds the shipped binary and the simulator, sets up the Python
# baseline, and prints the figures beside their targets and the baseline. Loopback only.
#
#   bench/run.sh            full run (~4 min after the builds), then the gateway's (bench/gateway.py, ~4 min)
#   bench/run.sh --short    CI: proves the suite works (~1 min after the builds)
#   bench/run.sh --board    also build the aarch64-musl binary (cargo board build --board pi4, slow)
#   bench/run.sh --no-baseline   skip the Python baseline (no venv, no PyPI)
#
# Extra arguments after -- go to bench/measure.py (e.g. -- --agents 50 --json out.json).
set -eu
cd "$(dirname "$0")/.."

short=""
board=""
baseline=1
while [ $# -gt 0 ]; do
    case "$1" in
        --short) short="--short" ;;
        --board) board=1 ;;
        --no-baseline) baseline="" ;;
        --) shift; break ;;
        *) echo "usage: bench/run.sh [--short] [--board] [--no-baseline] [-- measure.py args]" >&2; exit 2 ;;
    esac
    shift
done

# The shipped binary (no built-in simulator), then the simulator; the former is copied out
# first because other builds of the workspace (default features) write the same path.
cargo build --release --no-default-features -p zoho-device --bin zoho-device
mkdir -p target/bench
cp target/release/zoho-device target/bench/zoho-device
cargo build --release -p zoho-device-sim --bin zoho-device-sim
cp target/release/zoho-device-sim target/bench/zoho-device-sim
# Peak RSS and CPU of one child, measured from a small parent (see bench/rusage.rs).
rustc --edition 2024 -O -o target/bench/rusage bench/rusage.rs

if [ -n "$board" ]; then
    cargo board build --board pi4
fi
aarch64=""
for f in target/boards/*/aarch64-unknown-linux-musl/release/zoho-device; do
    [ -f "$f" ] && { [ -z "$aarch64" ] || [ "$f" -nt "$aarch64" ]; } && aarch64="$f"
done

python=""
if [ -n "$baseline" ]; then
    py="bench/.venv/bin/python"
    if ! [ -x "$py" ] || ! "$py" -c 'import requests' 2>/dev/null; then
        python3 -m venv bench/.venv && "$py" -m pip install --quiet --disable-pip-version-check requests \
            || echo "warning: no venv with requests; running without the baseline" >&2
    fi
    "$py" -c 'import requests' 2>/dev/null && python="$py"
fi

python3 bench/measure.py --bin target/bench/zoho-device --sim target/bench/zoho-device-sim --rusage target/bench/rusage \
    ${python:+--python "$python"} ${aarch64:+--aarch64 "$aarch64"} $short "$@"
# The Books gateway (agent --serve): Books calls, latency and RSS beside no gateway, direct
# calls and an agent without --serve, all in this run.
python3 bench/gateway.py target/bench/zoho-device target/bench/zoho-device-sim $short
