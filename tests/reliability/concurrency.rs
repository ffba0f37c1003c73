//! 50 processes ask for a token at the moment it expires: one refresh reaches the simulator
//! (the cross-process lock, and a re-read of the file after taking it), and all 50 print the
//! same valid token.

use std::time::{Duration, Instant};

use crate::harness::*;

#[test]
fn fifty_processes_one_refresh() {
    let w = World::new(auto_config().throttle(1000, Duration::from_secs(600)));
    w.login();
    let old = w.token_json()["access_token"].as_str().unwrap().to_string();
    // The token expires now.
    w.edit_token(|t| {
        t.insert("expires_at".into(), now_ms().into());
    });
    let refreshes_before = w.sim.stats().refreshes;
    let started = Instant::now();
    let children: Vec<_> = (0..50)
        .map(|_| w.command(&["token"]).spawn().expect("the binary starts"))
        .collect();
    let outputs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().expect("it finishes"))
        .collect();
    let elapsed = started.elapsed();
    let mut tokens = Vec::new();
    for o in &outputs {
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(
            o.status.code() == Some(0) && !stderr.contains("panicked"),
            "exit {:?}\n{stderr}",
            o.status.code()
        );
        tokens.push(String::from_utf8_lossy(&o.stdout).trim().to_string());
    }
    let refreshes = w.sim.stats().refreshes - refreshes_before;
    assert_eq!(refreshes, 1, "exactly one refresh reached the simulator");
    tokens.sort();
    tokens.dedup();
    assert_eq!(tokens.len(), 1, "all 50 printed the same token: {tokens:?}");
    assert_ne!(tokens[0], old, "the printed token is the refreshed one");
    assert!(w.sim.access_token_live(&tokens[0]), "and it is valid");
    assert_eq!(w.token_json()["access_token"], tokens[0].as_str());
    println!(
        "50 concurrent `token` at expiry: 1 refresh, 1 token, {:.1} s",
        elapsed.as_secs_f64()
    );
}
