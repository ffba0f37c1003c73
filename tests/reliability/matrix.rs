//! The fault matrix: every network phase × every fault, through the simulator (and an
//! unpluggable forwarder in front of it). A transient fault (it clears after a few requests) is
//! retried and the command completes; a permanent one ends with exit 7 and a message naming
//! the failure; nothing panics; the token file is untouched by every failure (bytes compared).
//!
//! The table is printed (`cargo test --test reliability -- --nocapture`) and, with
//! `ZOHO_DEVICE_WRITE_DOCS=1`, written into docs/reliability.md.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::proxy::Proxy;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    DeviceCode,
    Polling,
    Refresh,
    Revoke,
    Books,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Refused,
    Reset,
    Timeout,
    Slow,
    Html5xx,
    Garbage,
    Truncated,
    Dns,
}

pub const PHASES: [Phase; 5] = [
    Phase::DeviceCode,
    Phase::Polling,
    Phase::Refresh,
    Phase::Revoke,
    Phase::Books,
];
pub const KINDS: [Kind; 8] = [
    Kind::Refused,
    Kind::Reset,
    Kind::Timeout,
    Kind::Slow,
    Kind::Html5xx,
    Kind::Garbage,
    Kind::Truncated,
    Kind::Dns,
];

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::DeviceCode => "device-code request (`login`)",
            Phase::Polling => "polling (`login`)",
            Phase::Refresh => "refresh (`refresh`)",
            Phase::Revoke => "revoke (`logout`)",
            Phase::Books => "Books call (`books organizations`)",
        }
    }
    fn path(self) -> &'static str {
        match self {
            Phase::DeviceCode => "/oauth/v3/device/code",
            Phase::Polling => "/oauth/v3/device/token",
            Phase::Refresh => "/oauth/v2/token",
            Phase::Revoke => "/oauth/v2/token/revoke",
            Phase::Books => "/books/v3/organizations",
        }
    }
    fn args(self) -> &'static [&'static str] {
        match self {
            Phase::DeviceCode | Phase::Polling => &["login", "--events", "json", "--display", "none"],
            Phase::Refresh => &["refresh"],
            Phase::Revoke => &["logout"],
            Phase::Books => &["books", "organizations"],
        }
    }
    fn is_login(self) -> bool {
        matches!(self, Phase::DeviceCode | Phase::Polling)
    }
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Refused => "connection refused",
            Kind::Reset => "reset mid-response",
            Kind::Timeout => "timeout",
            Kind::Slow => "slow response",
            Kind::Html5xx => "5xx HTML page",
            Kind::Garbage => "200 garbage",
            Kind::Truncated => "truncated JSON",
            Kind::Dns => "DNS failure",
        }
    }
    fn sim_fault(self) -> Option<FaultKind> {
        match self {
            Kind::Reset => Some(FaultKind::Reset),
            Kind::Timeout => Some(FaultKind::Delay {
                ms: HTTP_TIMEOUT_MS + 800,
            }),
            Kind::Slow => Some(FaultKind::Delay {
                ms: HTTP_TIMEOUT_MS / 2,
            }),
            Kind::Html5xx => Some(FaultKind::Html { status: 503 }),
            Kind::Garbage => Some(FaultKind::Garbage),
            Kind::Truncated => Some(FaultKind::Truncated),
            Kind::Refused | Kind::Dns => None,
        }
    }
    /// What the `last failure:` part of the message must say.
    fn expect(self) -> &'static [&'static str] {
        match self {
            Kind::Refused => &["could not connect"],
            Kind::Reset => &["reset", "transport error"],
            Kind::Timeout => &["timed out"],
            Kind::Html5xx => &["HTTP 503 with a non-JSON body"],
            Kind::Garbage | Kind::Truncated => &["HTTP 200 with a non-JSON body"],
            Kind::Dns => &["did not resolve"],
            Kind::Slow => &[],
        }
    }
}

/// A host name that cannot resolve. Commands that use it run in a network namespace of their
/// own (`unshare --net`), where the resolver cannot reach any name server: no query leaves.
pub const UNRESOLVABLE: &str = "https://nonexistent.invalid";

/// One cell's result: the text for the two columns.
#[derive(Clone, Debug)]
pub struct Cell {
    pub transient: String,
    pub permanent: String,
}

fn world(phase: Phase, kind: Kind) -> (World, Proxy) {
    let mut cfg = auto_config().throttle(1000, Duration::from_secs(600));
    if phase == Phase::Polling {
        // 10 s: the shortest lifetime the Zoho unit rule reads as milliseconds.
        cfg = cfg.code_lifetime_ms(10_000);
        if kind == Kind::Timeout {
            // Delayed polls reach the simulated Zoho (as a slow network does): approve on the
            // third, after the two that time out.
            cfg.auto_approve = None;
            cfg = cfg.auto_approve_after_polls(3);
        }
    }
    let sim = Simulator::spawn(cfg).expect("the simulator starts");
    let proxy = Proxy::start(&sim.accounts_url("us"));
    let mut w = World::bare(&proxy.url);
    w.sim = sim.into();
    (w, proxy)
}

/// A real pairing, with `api_domain` moved behind the forwarder too.
fn pair(w: &World, proxy: &Proxy) {
    w.login();
    let url = proxy.url.clone();
    w.edit_token(|t| {
        t.insert("api_domain".into(), url.into());
    });
}

/// A token file that login must leave alone when it fails.
fn handmade(w: &World) {
    let url = w.env["ZOHO_ACCOUNTS_URL"].clone();
    w.write_token(&token_file(&url, &url, now_ms() + 3_600_000));
}

fn short(o: &Output) -> String {
    let e = o.error_line();
    match e.find("last failure: ") {
        Some(i) => e[i + "last failure: ".len()..].to_string(),
        None => e,
    }
}

pub fn run_cell(phase: Phase, kind: Kind) -> Cell {
    if kind == Kind::Dns && !can_unshare_net() {
        assert!(
            std::env::var_os("ZOHO_DEVICE_REQUIRE_UNSHARE").is_none(),
            "`unshare --net true` fails here but ZOHO_DEVICE_REQUIRE_UNSHARE is set (CI runs as root)"
        );
        return Cell {
            transient: "skipped: `unshare --net` is not available here".into(),
            permanent: "skipped: `unshare --net` is not available here".into(),
        };
    }
    let (mut w, proxy) = world(phase, kind);
    let path = phase.path();
    let args = phase.args();

    if phase.is_login() {
        handmade(&w);
    } else {
        pair(&w, &proxy);
    }

    // --- permanent -----------------------------------------------------------------------
    let _ = w.token_bytes();
    let mut saved_env = None;
    let permanent = if kind == Kind::Slow {
        String::from("(never fails: see transient)")
    } else if kind == Kind::Dns && phase == Phase::Polling {
        String::from("n/a: polls go to the host that just answered the code request")
    } else {
        match kind {
            Kind::Refused if phase == Phase::Polling => {}
            Kind::Refused => proxy.set_open(false),
            Kind::Dns => {
                let bad = UNRESOLVABLE.to_string();
                match phase {
                    Phase::DeviceCode => {
                        saved_env = Some(w.env["ZOHO_ACCOUNTS_URL"].clone());
                        w.set("ZOHO_ACCOUNTS_URL", Some(&bad));
                    }
                    Phase::Refresh | Phase::Revoke => w.edit_token(|t| {
                        t.insert("accounts_url".into(), bad.clone().into());
                    }),
                    Phase::Books => w.edit_token(|t| {
                        // Inside the allow-list (*.zohoapis.com), yet unresolvable.
                        t.insert("api_domain".into(), "https://nonexistent.zohoapis.com".into());
                    }),
                    Phase::Polling => unreachable!(),
                }
            }
            _ => w.sim.inject(Fault::new(path, kind.sim_fault().unwrap(), 100_000)),
        }
        let before = w.token_bytes();
        let refresh_token = w.token_json()["refresh_token"].as_str().map(String::from);
        let out = if kind == Kind::Dns {
            w.run_offline(args)
        } else if kind == Kind::Refused && phase == Phase::Polling {
            unplug_after_code(&w, &proxy, None)
        } else {
            w.run(args)
        };
        out.code(7);
        let msg = out.error_line();
        assert!(
            kind.expect().iter().any(|e| msg.contains(e)),
            "{phase:?}/{kind:?}: message {msg:?} names none of {:?}\n{}",
            kind.expect(),
            out.stderr
        );
        if phase == Phase::Revoke {
            // logout deletes the local file even when revoking fails, and says so.
            assert!(!w.token_path().exists(), "{phase:?}/{kind:?}: logout deletes the file");
            assert!(
                msg.contains("the local token was deleted, but revoking it at Zoho failed"),
                "{msg}"
            );
            let live = w.sim.refresh_tokens(USER);
            assert!(
                live.contains(refresh_token.as_ref().unwrap()),
                "nothing was revoked at the simulator"
            );
        } else {
            assert_eq!(
                w.token_bytes(),
                before,
                "{phase:?}/{kind:?}: the token file changed on failure"
            );
        }
        w.sim.clear_faults();
        proxy.set_open(true);
        if let Some(url) = saved_env.take() {
            w.set("ZOHO_ACCOUNTS_URL", Some(&url));
        }
        format!("exit 7 in {:.1} s: \"…{}\"", out.elapsed.as_secs_f64(), short(&out))
    };

    // --- transient -----------------------------------------------------------------------
    if phase == Phase::Revoke || (kind == Kind::Dns && !phase.is_login()) {
        let _ = std::fs::remove_file(w.token_path());
        pair(&w, &proxy);
    }
    if phase.is_login() {
        handmade(&w);
    }
    let before = w.token_bytes();
    let refresh_token = w.token_json()["refresh_token"].as_str().map(String::from);
    let faults_before = w.sim.stats().faults_applied;
    let mut transient_count = 2;
    let transient = if kind == Kind::Dns {
        String::from("n/a: a name that never resolves cannot clear (same path as refused)")
    } else {
        let out = match kind {
            Kind::Refused if phase == Phase::Polling => {
                unplug_after_code(&w, &proxy, Some(Duration::from_millis(1_200)))
            }
            Kind::Refused => {
                // Refused until 250 ms after start; a slower backoff makes sure the retry
                // comes after that.
                w.set("ZOHO_DEVICE_BACKOFF_MS", Some("1000"));
                proxy.set_open(false);
                proxy.open_after(Duration::from_millis(250));
                let out = w.run(args);
                w.set("ZOHO_DEVICE_BACKOFF_MS", Some(&BACKOFF_MS.to_string()));
                out
            }
            Kind::Slow => {
                transient_count = 100_000;
                w.sim.inject(Fault::new(path, kind.sim_fault().unwrap(), 100_000));
                w.run(args)
            }
            _ => {
                w.sim.inject(Fault::new(path, kind.sim_fault().unwrap(), 2));
                w.run(args)
            }
        };
        out.code(0);
        let applied = w.sim.stats().faults_applied - faults_before;
        if kind.sim_fault().is_some() && kind != Kind::Slow {
            assert_eq!(
                applied, transient_count,
                "{phase:?}/{kind:?}: the fault hit {applied} requests"
            );
        }
        w.sim.clear_faults();
        // The operation completed.
        match phase {
            Phase::DeviceCode | Phase::Polling | Phase::Refresh => {
                assert_ne!(w.token_bytes(), before, "{phase:?}/{kind:?}: a new token was saved");
                let token = w.token_json()["access_token"].as_str().unwrap().to_string();
                assert!(
                    w.sim.access_token_live(&token),
                    "{phase:?}/{kind:?}: the saved token works"
                );
            }
            Phase::Revoke => {
                assert!(!w.token_path().exists());
                let live = w.sim.refresh_tokens(USER);
                assert!(
                    !live.contains(refresh_token.as_ref().unwrap()),
                    "the refresh token was revoked"
                );
            }
            Phase::Books => {
                assert!(out.stdout.contains("Zillum"), "{}", out.stdout);
                assert_eq!(w.token_bytes(), before);
            }
        }
        let what = match kind {
            Kind::Slow => format!("every reply {} ms late", HTTP_TIMEOUT_MS / 2),
            Kind::Refused => "refused for a while".to_string(),
            _ => format!("{transient_count} requests faulted"),
        };
        format!("{what} → completed, exit 0 in {:.1} s", out.elapsed.as_secs_f64())
    };
    Cell { transient, permanent }
}

/// Runs `login`, unplugging the forwarder once the code request got through (and plugging it
/// back in after `replug`, if given): the polls in between are refused.
fn unplug_after_code(w: &World, proxy: &Proxy, replug: Option<Duration>) -> Output {
    let started = Instant::now();
    std::thread::scope(|s| {
        let watcher = s.spawn(|| {
            while w.sim.requests_to("/oauth/v3/device/code").is_empty() {
                assert!(started.elapsed() < Duration::from_secs(20));
                std::thread::sleep(Duration::from_millis(5));
            }
            std::thread::sleep(Duration::from_millis(300));
            proxy.set_open(false);
            if let Some(d) = replug {
                std::thread::sleep(d);
                proxy.set_open(true);
            }
        });
        let out = w.run(Phase::Polling.args());
        watcher.join().unwrap();
        out
    })
}

/// The matrix as a Markdown table.
pub fn table(cells: &[(Phase, Kind, Result<Cell, String>)]) -> String {
    let mut s = String::from("| phase | fault | transient (clears) | permanent (never clears) |\n|---|---|---|---|\n");
    for (p, k, c) in cells {
        let (t, perm) = match c {
            Ok(c) => (c.transient.clone(), c.permanent.clone()),
            Err(e) => (format!("**FAILED**: {}", e.lines().next().unwrap_or("")), String::new()),
        };
        s.push_str(&format!("| {} | {} | {} | {} |\n", p.name(), k.name(), t, perm));
    }
    s
}

#[test]
fn fault_matrix() {
    let jobs: Vec<(Phase, Kind)> = PHASES
        .iter()
        .flat_map(|p| KINDS.iter().map(move |k| (*p, *k)))
        .collect();
    type Results = Vec<(usize, Phase, Kind, Result<Cell, String>)>;
    let results: Arc<Mutex<Results>> = Arc::new(Mutex::new(Vec::new()));
    let next = Arc::new(Mutex::new(0usize));
    let workers = 10;
    std::thread::scope(|s| {
        for _ in 0..workers {
            let (jobs, results, next) = (&jobs, results.clone(), next.clone());
            s.spawn(move || {
                loop {
                    let i = {
                        let mut n = next.lock().unwrap();
                        let i = *n;
                        *n += 1;
                        i
                    };
                    let Some(&(p, k)) = jobs.get(i) else { break };
                    let r = std::panic::catch_unwind(|| run_cell(p, k)).map_err(|e| {
                        e.downcast_ref::<String>()
                            .cloned()
                            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_default()
                    });
                    results.lock().unwrap().push((i, p, k, r));
                }
            });
        }
    });
    let mut results = Arc::try_unwrap(results).ok().unwrap().into_inner().unwrap();
    results.sort_by_key(|r| r.0);
    let cells: Vec<_> = results.into_iter().map(|(_, p, k, r)| (p, k, r)).collect();
    let table = table(&cells);
    println!("\nFault matrix\n\n{table}");
    if std::env::var("ZOHO_DEVICE_WRITE_DOCS").as_deref() == Ok("1") {
        crate::docs::write_matrix(&table);
    }
    let failed: Vec<_> = cells
        .iter()
        .filter_map(|(p, k, r)| r.as_ref().err().map(|e| format!("{p:?} × {k:?}: {e}")))
        .collect();
    assert!(
        failed.is_empty(),
        "{} cell(s) failed:\n{}",
        failed.len(),
        failed.join("\n\n")
    );
}
