//! The pieces of `smoke` that parse what the simulator and the binary print.

use zoho_device_board::smoke::{Outcome, Step, all_passed, event_names, loopback_url};

#[test]
fn finds_the_simulator_url_in_whatever_it_prints() {
    assert_eq!(
        loopback_url("zoho-device-sim: us http://127.0.0.1:41234 (accounts + api)"),
        Some("http://127.0.0.1:41234".to_owned())
    );
    assert_eq!(
        loopback_url("listening on http://localhost:8080/oauth"),
        Some("http://127.0.0.1:8080".to_owned())
    );
    assert_eq!(loopback_url("http://127.0.0.1:/x"), None);
    assert_eq!(loopback_url("starting"), None);
}

#[test]
fn reads_event_names_from_json_lines() {
    let out = "{\"event\":\"code\",\"user_code\":\"ABCD-1234\"}\n\
               not json\n\
               {\"event\":\"pending\"}\n\
               {\"event\":\"authorized\",\"api_domain\":\"http://127.0.0.1:1\"}\n";
    assert_eq!(event_names(out), ["code", "pending", "authorized"]);
}

#[test]
fn skipped_steps_do_not_fail_a_run_but_failed_ones_do() {
    let step = |outcome| Step {
        name: "x".to_owned(),
        outcome,
        elapsed: std::time::Duration::ZERO,
    };
    let mut steps = vec![
        step(Outcome::Passed("zoho-device 0.1.0".to_owned())),
        step(Outcome::Skipped("no login yet".to_owned())),
    ];
    assert!(all_passed(&steps));
    steps.push(step(Outcome::Failed("exit 7".to_owned())));
    assert!(!all_passed(&steps));
    assert!(steps[2].line().contains("FAIL"));
}
