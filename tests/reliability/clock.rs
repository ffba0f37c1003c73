//! Clocks. The core never reads a clock: drivers pass a monotonic one, and wall time is used
//! only to persist expiries. These tests drive the core with a monotonic clock while a "wall
//! clock" jumps years, and the CLI with token files whose expiry is absurd (1970, year 3000).

use std::time::Duration;

use zoho_device_core::*;

use crate::harness::*;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/crates/core/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn flow(now: Timestamp) -> DeviceFlow {
    let client = ClientCredentials {
        client_id: "1004.CLOCK".into(),
        client_secret: Some(ClientSecret::new("secret")),
    };
    // A test server's own five-second interval (Zoho's hosts are polled every 30 s at least).
    let server = Server::zoho(ServerUrl::parse("http://127.0.0.1:9").unwrap());
    DeviceFlow::new(FlowConfig::default(), client, server, now)
}

const YEAR_MS: u64 = 365 * 24 * 3600 * 1000;

/// Runs a flow to its first poll on `clock(mono)`, pending replies until `polls` sent.
/// Returns the monotonic times at which requests were sent, and the result.
fn drive(clock: impl Fn(u64) -> u64, polls: usize) -> (Vec<u64>, Result<(), Error>) {
    let mut mono = 0u64;
    let mut f = flow(Timestamp::from_millis(clock(0)));
    let mut sent = Vec::new();
    for _ in 0..1000 {
        let now = Timestamp::from_millis(clock(mono));
        match f.poll(now) {
            Err(e) => return (sent, Err(e)),
            Ok(Step::Send(req)) => {
                sent.push(mono);
                mono += 50;
                let now = Timestamp::from_millis(clock(mono));
                if req.purpose == Purpose::DeviceCode {
                    f.handle_response(now, 200, &fixture("code_seconds.json"));
                } else if sent.len() > polls {
                    f.handle_response(now, 200, &fixture("token_us.json"));
                } else {
                    f.handle_response(now, 200, &fixture("pending.json"));
                }
            }
            Ok(Step::Wait(t)) => {
                assert!(t >= now, "a wait into the past");
                // The driver sleeps on the monotonic clock for (t - now), then re-reads it.
                mono += t.as_millis() - now.as_millis();
            }
            Ok(Step::Done(_)) => return (sent, Ok(())),
            Ok(_) => {}
        }
    }
    panic!("the flow did not finish")
}

#[test]
fn monotonic_deadlines_ignore_wall_clock_jumps() {
    // The driver's clock: monotonic. Whatever the wall clock does meanwhile (a board booting in
    // 1970 and NTP jumping it to today, or a clock set years ahead), the flow sees the same
    // times, so the schedule is the same: five-second polls, no instant "expired".
    let (steady, r) = drive(|m| m, 3);
    r.unwrap();
    assert_eq!(steady.len(), 4, "code request + 3 polls");
    for w in steady.windows(2).skip(1) {
        assert!(w[1] - w[0] >= 5_000, "polls keep the interval: {steady:?}");
    }
    // The same flow on an epoch far in the past or future (the monotonic clock's origin is
    // arbitrary): identical schedule.
    for origin in [0, 30 * YEAR_MS, 1000 * YEAR_MS] {
        let (sched, r) = drive(|m| origin + m, 3);
        r.unwrap();
        assert_eq!(sched, steady, "origin {origin}");
    }
}

#[test]
fn a_clock_that_jumps_during_a_wait_neither_storms_nor_expires_wrongly() {
    // Forward jump of five years in the middle of a wait (a suspend, or a driver fed with the
    // wall clock): one poll at once, then the code is seen lapsed — an honest "expired", never
    // a burst of polls.
    let mut f = flow(Timestamp::ZERO);
    let Ok(Step::Send(_)) = f.poll(Timestamp::ZERO) else {
        panic!()
    };
    f.handle_response(Timestamp::from_millis(10), 200, &fixture("code_seconds.json"));
    let mut sends = 0;
    let mut now = Timestamp::from_millis(10);
    let jumped = Timestamp::from_millis(5 * YEAR_MS);
    let mut result = None;
    for i in 0..100 {
        if i == 3 {
            now = jumped;
        }
        match f.poll(now) {
            Ok(Step::Send(_)) => {
                sends += 1;
                f.handle_response(now, 200, &fixture("pending.json"));
            }
            Ok(Step::Wait(t)) => {
                assert!(t >= now);
                if t == now {
                    break;
                }
                now = t;
            }
            Ok(_) => {}
            Err(e) => {
                result = Some(e);
                break;
            }
        }
    }
    assert_eq!(result, Some(Error::CodeExpired), "the lapsed code is reported once");
    assert!(sends <= 2, "no poll storm after the jump ({sends} polls)");

    // Backward jump (a clock set back while waiting): the flow waits — no poll before the
    // scheduled time, however often the driver wakes.
    let mut f = flow(Timestamp::from_millis(YEAR_MS));
    let t0 = Timestamp::from_millis(YEAR_MS);
    let Ok(Step::Send(_)) = f.poll(t0) else { panic!() };
    f.handle_response(t0, 200, &fixture("code_seconds.json"));
    let _ = f.poll(t0); // the prompt
    let back = Timestamp::from_millis(1_000);
    for _ in 0..1000 {
        match f.poll(back) {
            Ok(Step::Wait(t)) => assert!(t > back),
            Ok(Step::Notice(_)) => {}
            other => panic!("after a backward jump: {other:?}"),
        }
    }
}

#[test]
fn token_file_from_1970_refreshes_once_and_year_3000_is_used_then_healed_by_books() {
    let w = World::new(auto_config().throttle(1000, Duration::from_secs(600)));
    w.login();
    // A board without RTC saved the expiry while its clock read 1970.
    w.edit_token(|t| {
        t.insert("expires_at".into(), 3_600_000u64.into());
    });
    let before = w.sim.stats().refreshes;
    for _ in 0..5 {
        let o = w.run(&["token"]);
        o.code(0);
        assert!(w.sim.access_token_live(o.stdout.trim()));
    }
    assert_eq!(w.sim.stats().refreshes - before, 1, "one refresh, not a storm");
    let exp = w.token_json()["expires_at"].as_u64().unwrap();
    assert!(exp > now_ms() + 3_000_000, "the new expiry is on today's clock");

    // A clock years ahead saved "year 3000". `token` believes the file (it cannot know the
    // clock was wrong) and prints the token without refreshing; when that token is in fact
    // dead, Books gets 401/57, refreshes once and succeeds.
    w.edit_token(|t| {
        t.insert("expires_at".into(), 32_503_680_000_000u64.into());
    });
    let before = w.sim.stats().refreshes;
    let o = w.run(&["token"]);
    o.code(0);
    assert_eq!(w.sim.stats().refreshes, before, "no refresh for a far-future expiry");
    w.edit_token(|t| {
        t.insert("access_token".into(), "1000.dead-token-from-a-wrong-clock".into());
    });
    let o = w.run(&["books", "organizations"]);
    o.code(0);
    assert!(o.stdout.contains("Zillum"));
    assert_eq!(w.sim.stats().refreshes, before + 1, "one refresh on 401");
    let exp = w.token_json()["expires_at"].as_u64().unwrap();
    assert!(exp < now_ms() + 2 * 3_600_000, "the absurd expiry is replaced");
}
