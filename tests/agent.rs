//! `zoho-device agent` end to end: the real binary against the simulator on loopback, with
//! access tokens that live a few seconds. What is I/O is tested here — the hook, signals,
//! systemd, the clock gate, doctor's view, secrets in logs. The refresh policy (cycles, jitter,
//! backoff, throttle, a revoked refresh token, clock jumps) is the core's keeper, tested in
//! simulated time in crates/core/tests/keeper.rs.

#[path = "common/mod.rs"]
#[allow(dead_code, unused_imports)] // the agent suite uses part of the shared harness
mod common;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Fault, FaultKind, Running, SECRET, World, now_ms, sim_config};
use serde_json::Value;

/// What this suite's worlds add to the environment: nothing (the agent's own timing is real).
fn suite_env() -> Vec<(&'static str, String)> {
    Vec::new()
}

const TOKEN_PATH: &str = "/oauth/v2/token";

/// A world whose simulator mints `token_lifetime_s`-second tokens and approves every code at
/// once, with the environment `env` added.
fn world(token_lifetime_s: u64, env: &[(&str, &str)]) -> World {
    let mut w = World::new(
        sim_config()
            .token_lifetime_s(token_lifetime_s)
            .auto_approve_after_polls(1)
            .throttle(1000, Duration::from_secs(600)),
    );
    for (k, v) in env {
        w.set(k, Some(v));
    }
    w
}

/// `zoho-device agent` in `w`, its JSON events on stdout, its log (`-v`) on stderr.
fn agent<'w>(w: &'w World, args: &[&str]) -> Running<'w> {
    let mut all = vec!["agent", "--display", "none", "--events", "json", "-v"];
    all.extend_from_slice(args);
    w.spawn(&all)
}

/// The names of the events an agent has sent so far.
fn names(agent: &Running) -> Vec<String> {
    agent
        .events_so_far()
        .iter()
        .map(|v| v["event"].as_str().unwrap_or("?").to_string())
        .collect()
}

/// `zoho-device doctor`'s report in `w`.
fn doctor(w: &World) -> String {
    w.run(&["doctor"]).stdout
}

/// The agent's state file, beside the token file.
fn state_file(w: &World) -> PathBuf {
    w.token_path().with_file_name("token.json.agent")
}

fn read_token(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("token file is not JSON ({e}): {text}"))
}

/// Watches the token file every 25 ms: it must always hold an access token that has not
/// expired. Stops when dropped.
struct Watch {
    stop: Arc<AtomicBool>,
    checks: Arc<AtomicU32>,
    gaps: Arc<Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watch {
    fn start(path: PathBuf) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let checks = Arc::new(AtomicU32::new(0));
        let gaps = Arc::new(Mutex::new(Vec::new()));
        let (s, c, g) = (stop.clone(), checks.clone(), gaps.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let t = read_token(&path);
                let exp = t["expires_at"].as_u64().expect("expires_at in Unix ms");
                let now = now_ms();
                if exp <= now {
                    g.lock().unwrap().push(format!("token expired {} ms ago", now - exp));
                }
                c.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(25));
            }
        });
        Watch {
            stop,
            checks,
            gaps,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> (u32, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().expect("the watcher does not panic");
        }
        (self.checks.load(Ordering::Relaxed), self.gaps.lock().unwrap().clone())
    }
}

#[test]
fn a_revoked_refresh_token_leads_to_pairing_again_with_the_hook() {
    let w = world(4, &[("ZOHO_CLIENT_SECRET_EU", "eu-secret-never-in-the-hook")]);
    let out = w.path("hooks");
    std::fs::create_dir(&out).unwrap();
    let mut w = w;
    w.set("HOOK_OUT", Some(out.to_str().unwrap()));
    let (w, sim) = (&w, &w.sim);
    let hook = r#"env | grep '^ZOHO_' | sort > "$HOOK_OUT/$ZOHO_NEEDS_PAIRING_REASON.tmp" && mv "$HOOK_OUT/$ZOHO_NEEDS_PAIRING_REASON.tmp" "$HOOK_OUT/$ZOHO_NEEDS_PAIRING_REASON.env""#;
    let mut agent = agent(w, &["--on-needs-pairing", hook]);
    let first = agent.event("needs_pairing", Duration::from_secs(5));
    assert_eq!(first["reason"], "not_paired");
    agent.event("authorized", Duration::from_secs(10));
    let before = read_token(&w.token_path());
    agent.event("refreshed", Duration::from_secs(6));

    sim.revoke_refresh_tokens();
    let np = agent.event("needs_pairing", Duration::from_secs(6));
    assert_eq!(np["reason"], "refresh_token_rejected", "{np}");
    assert!(np["message"].as_str().unwrap().contains("pair"), "{np}");
    let code = agent.event("code", Duration::from_secs(5));
    agent.event("authorized", Duration::from_secs(10));
    agent.event("refreshed", Duration::from_secs(6));

    let after = read_token(&w.token_path());
    assert_ne!(
        before["refresh_token"], after["refresh_token"],
        "a new pairing, a new refresh token"
    );
    assert!(sim.access_token_live(after["access_token"].as_str().unwrap()));

    let file = out.join("refresh_token_rejected.env");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !file.exists() {
        assert!(
            Instant::now() < deadline,
            "the hook did not run; log:\n{}",
            agent.stderr_so_far()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let env = std::fs::read_to_string(&file).unwrap();
    let var = |k: &str| {
        env.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("{k} missing from the hook's environment:\n{env}"))
            .to_string()
    };
    assert_eq!(var("ZOHO_USER_CODE"), code["user_code"].as_str().unwrap());
    assert_eq!(var("ZOHO_VERIFICATION_URL"), code["verification_url"].as_str().unwrap());
    assert!(var("ZOHO_VERIFICATION_URI_COMPLETE").contains(code["user_code"].as_str().unwrap()));
    let expires: u64 = var("ZOHO_CODE_EXPIRES_IN").parse().unwrap();
    assert!(expires > 0 && expires <= 300, "{expires}");
    assert_eq!(var("ZOHO_NEEDS_PAIRING_REASON"), "refresh_token_rejected");
    assert!(
        !env.contains("ZOHO_CLIENT_SECRET") && !env.contains(SECRET) && !env.contains("eu-secret-never"),
        "a secret reached the hook:\n{env}"
    );
    assert!(
        out.join("not_paired.env").exists(),
        "the first pairing ran the hook too"
    );
}

#[test]
fn a_clock_years_in_the_past_delays_every_decision() {
    let mut w = world(3, &[]);
    let offset = w.path("clock-offset");
    std::fs::write(&offset, "-157680000").unwrap(); // five years back
    w.set("ZOHO_DEVICE_TEST_CLOCK_OFFSET_S", Some(offset.to_str().unwrap()));
    let (w, sim) = (&w, &w.sim);
    let mut agent = agent(w, &[]);
    let waiting = agent.event("waiting_for_clock", Duration::from_secs(5));
    assert!(
        waiting["clock_unix"].as_i64().unwrap() < waiting["build_unix"].as_i64().unwrap(),
        "{waiting}"
    );
    // Proving a negative takes a while: nothing is sent and nothing repeats while it waits.
    let more = agent.events_within(Duration::from_millis(2500));
    assert!(more.is_empty(), "events while waiting for the clock: {more:?}");
    assert!(
        sim.requests().is_empty(),
        "{} requests with a bad clock",
        sim.requests().len()
    );
    assert!(!w.token_path().exists());

    // NTP arrives.
    std::fs::write(&offset, "0").unwrap();
    agent.event("clock_ok", Duration::from_secs(3));
    agent.event("authorized", Duration::from_secs(10));
    agent.event("refreshed", Duration::from_secs(5));
    assert_eq!(names(&agent).iter().filter(|n| *n == "waiting_for_clock").count(), 1);
}

#[test]
fn sigterm_mid_refresh_leaves_a_valid_token_file() {
    let w = world(6, &[]);
    let sim = &w.sim;
    let mut agent = agent(&w, &[]);
    agent.event("authorized", Duration::from_secs(10));
    let before = read_token(&w.token_path());
    sim.inject(Fault::new(TOKEN_PATH, FaultKind::Delay { ms: 4000 }, 1));
    let deadline = Instant::now() + Duration::from_secs(8);
    while sim.requests_to(TOKEN_PATH).is_empty() {
        assert!(
            Instant::now() < deadline,
            "no refresh started; log:\n{}",
            agent.stderr_so_far()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let sent = Instant::now();
    agent.signal("TERM");
    agent.wait().code(0);
    assert!(
        sent.elapsed() < Duration::from_secs(2),
        "SIGTERM waited for the slow refresh"
    );
    let after = read_token(&w.token_path());
    assert_eq!(
        before["access_token"], after["access_token"],
        "the abandoned refresh left the file alone"
    );
    assert!(
        after["expires_at"].as_u64().unwrap() > now_ms(),
        "the token file is still valid"
    );
    let stray: Vec<_> = std::fs::read_dir(w.token_path().parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !["token.json", "token.json.lock", "token.json.agent"].contains(&n.as_str()))
        .collect();
    assert!(stray.is_empty(), "left behind: {stray:?}");
}

#[test]
fn systemd_notifications_ready_status_watchdog_reload() {
    let sockdir = tempfile::tempdir().unwrap();
    let path = sockdir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let w = world(
        3600,
        &[("NOTIFY_SOCKET", path.to_str().unwrap()), ("WATCHDOG_USEC", "400000")],
    );
    let sim = &w.sim;
    let mut agent = agent(&w, &[]);
    let mut got: Vec<String> = Vec::new();
    let wait_for = |pred: &dyn Fn(&str) -> bool, what: &str, got: &mut Vec<String>| {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = sock.recv(&mut buf) {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                got.push(msg.clone());
                if pred(&msg) {
                    return msg;
                }
            }
        }
        panic!("no {what} from the agent; got {got:?}");
    };
    wait_for(&|m| m == "READY=1", "READY=1", &mut got);
    let waiting = wait_for(
        &|m| m.starts_with("STATUS=waiting for approval: "),
        "waiting status",
        &mut got,
    );
    assert!(waiting.ends_with(" left"), "{waiting}");
    // The simulator is reached through an accounts-URL override, so no DC is named.
    let paired = wait_for(
        &|m| m.starts_with("STATUS=paired, token valid for "),
        "paired status",
        &mut got,
    );
    assert!(paired.ends_with(" min"), "{paired}");
    wait_for(&|m| m == "WATCHDOG=1", "WATCHDOG=1", &mut got);
    agent.event("authorized", Duration::from_secs(5));

    agent.signal("HUP");
    wait_for(&|m| m == "RELOADING=1", "RELOADING=1", &mut got);
    wait_for(&|m| m == "READY=1", "READY=1 after the reload", &mut got);
    agent.event("reloaded", Duration::from_secs(3));
    wait_for(
        &|m| m.starts_with("STATUS=paired, token valid"),
        "paired status after the reload",
        &mut got,
    );
    assert_eq!(
        sim.requests_to(TOKEN_PATH).len(),
        0,
        "a reload does not refresh a fresh token"
    );

    agent.signal("TERM");
    wait_for(&|m| m == "STOPPING=1", "STOPPING=1", &mut got);
    agent.wait().code(0);
    assert!(!got.iter().any(|m| m.contains(SECRET)), "{got:?}");
}

#[test]
fn doctor_reports_what_the_agent_last_said() {
    let w = world(4, &[]);
    let sim = &w.sim;
    let mut agent = agent(&w, &[]);
    agent.event("authorized", Duration::from_secs(10));
    agent.event("refreshed", Duration::from_secs(6));
    let report = doctor(&w);
    let line = report
        .lines()
        .find(|l| l.contains("] agent"))
        .unwrap_or_else(|| panic!("{report}"));
    assert!(line.starts_with("[ok  ]") && line.contains("running (pid"), "{line}");
    assert!(line.contains("token valid for"), "{line}");
    // Zoho down: the last error shows up in doctor's report, with no secret.
    sim.inject(Fault::new(TOKEN_PATH, FaultKind::Html { status: 503 }, 1000));
    agent.event("refresh_failed", Duration::from_secs(6));
    let report = doctor(&w);
    assert!(report.contains("refresh failed"), "{report}");
    let token = read_token(&w.token_path());
    for secret in ["access_token", "refresh_token"] {
        assert!(!report.contains(token[secret].as_str().unwrap()), "{report}");
    }
    sim.clear_faults();
    agent.signal("TERM");
    agent.wait().code(0);
    let report = doctor(&w);
    assert!(report.contains("stopped cleanly"), "{report}");
    // The state file sits beside the token, private like it.
    use std::os::unix::fs::PermissionsExt;
    let state = state_file(&w);
    let mode = std::fs::metadata(&state).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn no_secret_in_the_agents_logs_or_events_at_trace_level() {
    let w = world(4, &[("RUST_LOG", "trace")]);
    let sim = &w.sim;
    let mut agent = agent(&w, &["-vv"]);
    agent.event("authorized", Duration::from_secs(10));
    let mut secrets = vec![SECRET.to_string()];
    let first = read_token(&w.token_path());
    let watch = Watch::start(w.token_path());
    agent.event("refreshed", Duration::from_secs(6));
    // A failing refresh too: errors are where secrets leak in other tools.
    sim.inject(Fault::new(TOKEN_PATH, FaultKind::Html { status: 503 }, 1));
    let f = agent.event("refresh_failed", Duration::from_secs(6));
    // The keeper's retry of a 4-second token comes within a second; the event says so.
    assert_eq!(f["kind"], "unavailable", "{f}");
    assert!(f["retry_in_s"].as_f64().unwrap() <= 1.0, "{f}");
    assert!(f["token_valid_s"].as_u64().is_some(), "{f}");
    agent.event("refreshed", Duration::from_secs(6));
    let (checks, gaps) = watch.finish();
    assert!(checks > 20, "the watcher ran ({checks} checks)");
    assert!(gaps.is_empty(), "the token file held an expired token: {gaps:?}");
    let last = read_token(&w.token_path());
    for t in [&first, &last] {
        for k in ["access_token", "refresh_token"] {
            secrets.push(t[k].as_str().unwrap().to_string());
        }
    }
    for r in sim.requests_to("/oauth/v3/device/token") {
        secrets.extend(r.param("code").map(String::from));
    }
    agent.signal("TERM");
    let events: String = agent.events_so_far().iter().map(|e| e.to_string()).collect();
    let log = agent.wait().stderr;
    assert!(
        log.contains("TRACE") || log.contains("DEBUG"),
        "ran at a verbose level:\n{log}"
    );
    for s in &secrets {
        assert!(s.len() >= 8, "a real secret: {s:?}");
        assert!(!log.contains(s.as_str()), "a secret in the agent's log:\n{log}");
        assert!(!events.contains(s.as_str()), "a secret in the agent's events: {events}");
    }
    let state = std::fs::read_to_string(state_file(&w)).unwrap();
    assert!(secrets.iter().all(|s| !state.contains(s.as_str())), "{state}");
}
