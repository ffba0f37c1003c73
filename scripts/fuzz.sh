#!/usr/bin/env bash
# Fuzz every parser of zoho-device for a bounded time: scripts/fuzz.sh [SECONDS_PER_TARGET]
#
# Targets (fuzz/fuzz_targets): device_code, token_reply, serverinfo_revoke, books_envelope,
# config_file, token_file, flow, url_policy (differential: the host the URL policy approves is
# the host reqwest and hyper connect to). Seeds come from crates/core/tests/fixtures. Works on the
# stable toolchain: cargo-fuzz needs nightly-only flags (-Z sanitizer, sancov), which
# RUSTC_BOOTSTRAP=1 unlocks on stable. cargo-fuzz is installed from crates.io when missing.
# A crash leaves its input under fuzz/artifacts/<target>/ and fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET="${1:-30}"
export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR=never

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

targets=(device_code token_reply serverinfo_revoke books_envelope config_file token_file flow url_policy)
fixtures=crates/core/tests/fixtures

seed() {
    local t="$1" dir="fuzz/corpus/$1"
    mkdir -p "$dir"
    case "$t" in
        device_code | token_reply | serverinfo_revoke | books_envelope)
            # One selector byte (HTTP status, dialect) before each fixture body.
            for f in "$fixtures"/*.json "$fixtures"/*.html; do
                for sel in '\x00' '\x0b'; do
                    { printf "$sel"; cat "$f"; } >"$dir/$(basename "$f").${sel//\\/}"
                done
            done
            printf '\x00{"code":0,"message":"success","organizations":[{"organization_id":"10234695","name":"Zillum","is_default_org":true,"currency_code":"USD"}]}' >"$dir/books_ok"
            printf '\x01{"code":57,"message":"You are not authorized to perform this operation"}' >"$dir/books_57"
            ;;
        config_file)
            printf 'client_id = "1004.X"\ndc = "eu"\nscope = "ZohoBooks.settings.READ"\ndisplay = ["terminal", "png:/tmp/x.png"]\n' >"$dir/config.toml"
            ;;
        url_policy)
            for u in 'https://accounts.zoho.eu' 'https://www.zohoapis.com' 'https://evil.example\.zohoapis.com' \
                'http://127.0.0.1:8080/o/token/' 'http://[::1]:9/base?x=1' 'https://www.zohoapis.com\@evil.example' \
                'HTTPS://WWW.ZOHOAPIS.EU:443/' 'http://0x7f.1/' 'https://xn--zoho-0ra.example/'; do
                printf '%s' "$u" >"$dir/$(printf '%s' "$u" | md5sum | cut -c1-12)"
            done
            ;;
        token_file)
            printf '{"version":1,"profile":"zoho","client_id":"1004.X","access_token":"1000.a","refresh_token":"1000.r","api_domain":"https://www.zohoapis.eu","accounts_url":"https://accounts.zoho.eu","location":"eu","scope":"ZohoBooks.settings.READ","token_type":"Bearer","expires_at":1800000000000,"paired_at":1,"refreshed_at":2}' >"$dir/token.json"
            ;;
        flow)
            # mode byte, then [kind, len, body] records: a code reply, pending, success.
            python3 - "$dir" "$fixtures" <<'PY'
import sys, pathlib
d, fx = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
def rec(kind, body):
    body = body[:255]
    return bytes([kind, len(body)]) + body
code = (fx / "code_seconds.json").read_bytes()
for name in ["pending.json", "slow_down.json", "other_dc_eu.json", "token_us.json", "expired.json", "html_503.html"]:
    body = (fx / name).read_bytes()
    for mode in (0, 2, 4):
        (d / f"{mode}_{name}").write_bytes(bytes([mode]) + rec(0x10, code) + rec(0x20, body) + rec(0x30, (fx / "token_us.json").read_bytes()))
PY
            ;;
    esac
}

failed=0
summary=()
for t in "${targets[@]}"; do
    seed "$t"
    echo "=== fuzzing $t for ${SECONDS_PER_TARGET}s"
    log="fuzz/$t.log"
    if cargo fuzz run --fuzz-dir fuzz "$t" "fuzz/corpus/$t" -- \
        -max_total_time="$SECONDS_PER_TARGET" -max_len=70000 -rss_limit_mb=1024 -malloc_limit_mb=256 \
        -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
        execs=$(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}')
        summary+=("$t: ok, ${execs:-?} execs")
    else
        failed=1
        summary+=("$t: FAILED (see $log and fuzz/artifacts/$t/)")
        tail -40 "$log"
    fi
done
printf '\n=== fuzz summary (%ss per target)\n' "$SECONDS_PER_TARGET"
printf '%s\n' "${summary[@]}"
exit "$failed"
