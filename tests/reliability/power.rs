//! Power loss while writing tokens: `zoho-device refresh` killed with SIGKILL at a seeded random
//! moment, hundreds of times. The token file is always a complete token — the old one or one the
//! simulator minted — never empty or partial, and the next command works.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;

#[test]
fn sigkill_while_refreshing_never_leaves_a_partial_token() {
    let mut cfg = auto_config().throttle(100_000, Duration::from_secs(600));
    // Every minted access token stays live, so "minted by the simulator" is checkable.
    cfg.max_access_tokens = 100_000;
    let w = World::new(cfg);
    w.login();
    let refresh_token = w.token_json()["refresh_token"].as_str().unwrap().to_string();
    let mut minted_or_old = vec![w.token_json()["access_token"].as_str().unwrap().to_string()];

    // How long a refresh takes here, to spread the kills over its whole run.
    let t = Instant::now();
    w.run(&["refresh"]).code(0);
    let typical = t.elapsed().as_millis().max(10) as u64;
    minted_or_old.push(w.token_json()["access_token"].as_str().unwrap().to_string());

    let mut rng = Rng::new(0x5eed_0010);
    let mut outcomes: BTreeMap<&str, u32> = BTreeMap::new();
    let budget = Duration::from_secs(25);
    let started = Instant::now();
    let mut iterations = 0;
    while iterations < 300 && started.elapsed() < budget {
        iterations += 1;
        let delay = rng.below(typical + typical / 2 + 1);
        let mut child = w.command(&["refresh"]).spawn().expect("the binary starts");
        std::thread::sleep(Duration::from_millis(delay));
        // SIGKILL: no destructor, no flush, no cleanup — as a power cut for this process.
        let _ = child.kill();
        let status = child.wait().unwrap();
        let outcome = match status.code() {
            Some(0) => "finished before the kill",
            Some(c) => panic!("refresh exited {c} (iteration {iterations}, delay {delay} ms)"),
            None => "killed",
        };
        *outcomes.entry(outcome).or_default() += 1;

        let bytes = w.token_bytes();
        let v: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "iteration {iterations} (kill after {delay} ms): the token file is not a complete token ({e}): {:?}",
                String::from_utf8_lossy(&bytes)
            )
        });
        let access = v["access_token"].as_str().expect("an access token").to_string();
        assert_eq!(v["refresh_token"], refresh_token.as_str(), "the refresh token is kept");
        assert!(
            minted_or_old.contains(&access) || w.sim.access_token_live(&access),
            "iteration {iterations}: {access:?} is neither the old token nor one the simulator minted"
        );
        if !minted_or_old.contains(&access) {
            minted_or_old.push(access);
        }
        // The next command works (every 25th iteration, to keep the time bounded).
        if iterations % 25 == 0 {
            let o = w.run(&["token"]);
            o.code(0);
            assert!(w.sim.access_token_live(o.stdout.trim()));
        }
    }
    // And after the last kill.
    let o = w.run(&["token"]);
    o.code(0);
    assert!(w.sim.access_token_live(o.stdout.trim()));
    w.run(&["status"]).code(0);
    // The next save sweeps the temp files that killed writers left behind.
    w.run(&["refresh"]).code(0);
    let leftovers = std::fs::read_dir(w.token_path().parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp."))
        .count();
    println!(
        "power loss: {iterations} SIGKILLs over 0–{} ms in {:.1} s: {outcomes:?}; {} tokens seen; {leftovers} orphan temp files after the next save",
        typical + typical / 2,
        started.elapsed().as_secs_f64(),
        minted_or_old.len()
    );
    assert!(iterations >= 100, "at least 100 kills ran ({iterations})");
    assert!(outcomes.get("killed").copied().unwrap_or(0) >= 20, "{outcomes:?}");
    assert_eq!(leftovers, 0, "orphan temp files (copies of tokens) are swept");
}
