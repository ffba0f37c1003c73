//! The token keeper in simulated time: a scripted server, a clock that jumps straight to the
//! next wake-up, and transcripts of what the keeper did. Days of refreshes run in milliseconds.

use std::collections::VecDeque;
use std::time::Duration;

use zoho_device_core::keeper::{LOCK_RETRY, SLOW_RETRY_CAP, effective_margin, min_spacing, retry_bounds};
use zoho_device_core::*;

const S: u64 = 1000;
const MIN: u64 = 60 * S;
const HOUR: u64 = 60 * MIN;

/// What the scripted server does with one refresh request.
#[derive(Clone, Debug)]
enum Reply {
    /// A new access token valid this long (seconds).
    Token(u64),
    /// This status and body.
    Raw(u16, &'static str),
    /// No answer.
    Transport(TransportError),
}

const THROTTLE: &str = r#"{"error":"Access Denied","error_description":"Token creation throttle limit reached. Please try again after some time."}"#;
const INVALID_CODE: &str = r#"{"error":"invalid_code"}"#;
const INVALID_CLIENT: &str = r#"{"error":"invalid_client"}"#;
const HTML_503: &str = "<html><body>Service Unavailable</body></html>";

fn accounts() -> ServerUrl {
    ServerUrl::parse("https://accounts.zoho.com").unwrap()
}

fn client() -> ClientCredentials {
    ClientCredentials {
        client_id: "1004.CLIENT".into(),
        client_secret: Some(ClientSecret::new("the-secret")),
    }
}

fn tokens(access: &str, refresh: Option<&str>, expires_at_ms: u64) -> Tokens {
    Tokens {
        access_token: AccessToken::new(access),
        refresh_token: refresh.map(RefreshToken::new),
        api_domain: Some(ServerUrl::parse("https://www.zohoapis.com").unwrap()),
        accounts_url: Some(accounts()),
        location: Some("us".into()),
        scope: Some("ZohoBooks.settings.READ".into()),
        token_type: "Bearer".into(),
        expires_at: Timestamp::from_millis(expires_at_ms),
    }
}

fn agent_keeper(margin_s: u64, seed: u64) -> Keeper {
    Keeper::new(KeeperConfig::agent(Duration::from_secs(margin_s), seed))
        .with_endpoint(TokenEndpoint::zoho(&accounts()), client())
}

fn lone_agent(margin_s: u64, seed: u64) -> Keeper {
    let mut config = KeeperConfig::agent(Duration::from_secs(margin_s), seed);
    config.check_store = false;
    Keeper::new(config).with_endpoint(TokenEndpoint::zoho(&accounts()), client())
}

fn command_keeper(attempts: u32) -> Keeper {
    let retries = Retries::Attempts {
        attempts,
        base: Duration::from_millis(500),
        cap: Duration::from_secs(8),
    };
    Keeper::new(KeeperConfig::once(Duration::from_secs(300), retries, 7))
        .with_endpoint(TokenEndpoint::zoho(&accounts()), client())
}

/// The simulated world: clock, server script, shared store, transcript.
struct World {
    keeper: Keeper,
    now: u64,
    rtt: u64,
    script: VecDeque<Reply>,
    store: Option<(Tokens, Option<Duration>)>,
    minted: u32,
    sends: Vec<u64>,
    bodies: Vec<String>,
    log: Vec<String>,
    stopped: Option<KeepStep>,
}

impl World {
    fn new(keeper: Keeper) -> World {
        World {
            keeper,
            now: 0,
            rtt: 0,
            script: VecDeque::new(),
            store: None,
            minted: 0,
            sends: Vec::new(),
            bodies: Vec::new(),
            log: Vec::new(),
            stopped: None,
        }
    }

    /// Paired at `now` with a token of `lifetime_s`, saved in the store too.
    fn paired(mut self, lifetime_s: u64) -> World {
        let t = tokens("a0", Some("r0"), self.now + lifetime_s * S);
        self.keeper.adopt(t.clone(), Timestamp::from_millis(self.now));
        self.store = Some((t, Some(Duration::from_secs(lifetime_s))));
        self
    }

    fn script(mut self, replies: impl IntoIterator<Item = Reply>) -> World {
        self.script.extend(replies);
        self
    }

    fn held(&self) -> &Tokens {
        self.keeper.tokens().expect("a token is held")
    }

    /// Runs until simulated time `end_ms` or a terminal step (needs pairing, gave up).
    fn run_until(&mut self, end_ms: u64) {
        for _ in 0..100_000 {
            let step = self.keeper.poll(Timestamp::from_millis(self.now));
            match step {
                KeepStep::Wait(t) => {
                    assert!(t.as_millis() > self.now, "a wait into the past at {}: {t:?}", self.now);
                    if t.as_millis() > end_ms {
                        self.now = end_ms;
                        return;
                    }
                    self.now = t.as_millis();
                }
                KeepStep::Check => {
                    self.log.push("check".into());
                    let (t, life) = self.store.clone().expect("the store holds a token");
                    match self.keeper.handle_stored(Timestamp::from_millis(self.now), t, life) {
                        Checked::Adopted => self.log.push("adopted".into()),
                        Checked::Refresh | Checked::Nothing => {}
                    }
                }
                KeepStep::Send(req) => {
                    self.sends.push(self.now);
                    self.bodies.push(String::from_utf8(req.body.clone()).unwrap());
                    self.log.push("send".into());
                    let reply = self
                        .script
                        .pop_front()
                        .unwrap_or_else(|| panic!("no reply scripted; {:?}", self.log));
                    self.now += self.rtt;
                    let now = Timestamp::from_millis(self.now);
                    match reply {
                        Reply::Token(life) => {
                            self.minted += 1;
                            let body = format!(
                                r#"{{"access_token":"a{}","api_domain":"https://www.zohoapis.com","token_type":"Bearer","expires_in":{life}}}"#,
                                self.minted
                            );
                            self.keeper.handle_response(now, 200, body.as_bytes());
                        }
                        Reply::Raw(status, body) => self.keeper.handle_response(now, status, body.as_bytes()),
                        Reply::Transport(e) => self.keeper.handle_transport_error(now, e),
                    }
                }
                KeepStep::Refreshed(t) => {
                    assert!(t.expires_at.as_millis() > self.now, "a refreshed token is valid");
                    self.log.push(format!("refreshed {}", t.access_token.expose()));
                    let life = t.expires_in(Timestamp::from_millis(self.now));
                    self.store = Some((t, Some(life)));
                }
                KeepStep::Failed { error, retry_at } => {
                    assert!(retry_at.as_millis() > self.now);
                    self.log.push(format!(
                        "failed {} +{}ms",
                        error.code(),
                        retry_at.as_millis() - self.now
                    ));
                }
                s @ (KeepStep::GaveUp(_) | KeepStep::NeedsPairing(_)) => {
                    self.log.push(match &s {
                        KeepStep::GaveUp(e) => format!("gave up {}", e.code()),
                        KeepStep::NeedsPairing(n) => format!("needs pairing {}", n.code()),
                        _ => unreachable!(),
                    });
                    self.stopped = Some(s);
                    return;
                }
            }
        }
        panic!(
            "the keeper spun without moving time: {:?}",
            &self.log[self.log.len().saturating_sub(10)..]
        );
    }

    fn names(&self) -> Vec<&str> {
        self.log.iter().map(|l| l.split(' ').next().unwrap()).collect()
    }

    fn retry_delays(&self) -> Vec<u64> {
        self.log
            .iter()
            .filter_map(|l| {
                l.rsplit_once(" +")
                    .and_then(|(_, d)| d.strip_suffix("ms"))
                    .map(|d| d.parse().unwrap())
            })
            .collect()
    }
}

fn first_wait(k: &mut Keeper, now: u64) -> u64 {
    match k.poll(Timestamp::from_millis(now)) {
        KeepStep::Wait(t) => t.as_millis(),
        other => panic!("{other:?}"),
    }
}

// ---- the timing rules ----

#[test]
fn timing_for_zoho_and_test_tokens() {
    let hour = Duration::from_secs(3600);
    assert_eq!(
        effective_margin(Duration::from_secs(600), hour),
        Duration::from_secs(600)
    );
    assert_eq!(min_spacing(hour), Duration::from_secs(60));
    let short = Duration::from_secs(4);
    assert_eq!(
        effective_margin(Duration::from_secs(600), short),
        Duration::from_secs(1)
    );
    assert_eq!(min_spacing(short), Duration::from_secs(1));
    assert_eq!(min_spacing(Duration::ZERO), Duration::from_secs(1));
    assert_eq!(
        retry_bounds(Duration::from_secs(600)),
        (Duration::from_secs(1), Duration::from_secs(120))
    );
    assert_eq!(
        retry_bounds(Duration::from_secs(1)),
        (Duration::from_millis(125), Duration::from_secs(1))
    );
}

#[test]
fn a_zoho_hour_is_refreshed_10_to_12_5_minutes_before_expiry() {
    for seed in 0..50 {
        let mut k = agent_keeper(600, seed);
        k.adopt(tokens("a", Some("r"), HOUR), Timestamp::ZERO);
        let at = first_wait(&mut k, 0);
        assert!((HOUR - 750 * S..=HOUR - 600 * S).contains(&at), "seed {seed}: {at}");
    }
}

#[test]
fn jitter_spreads_a_fleet_within_a_quarter_of_the_margin() {
    let leads: Vec<_> = (0..200u64)
        .map(|i| {
            let seed = i * 2 + 1;
            let mut k = agent_keeper(600, seed);
            k.adopt(tokens("a", Some("r"), HOUR), Timestamp::ZERO);
            k.lead().unwrap()
        })
        .collect();
    assert!(
        leads
            .iter()
            .all(|l| (Duration::from_secs(600)..=Duration::from_secs(750)).contains(l))
    );
    let distinct: std::collections::BTreeSet<_> = leads.iter().collect();
    assert!(distinct.len() > 150, "{} distinct leads of 200", distinct.len());
    let spread = leads.iter().max().unwrap().saturating_sub(*leads.iter().min().unwrap());
    assert!(
        spread > Duration::from_secs(120),
        "the fleet spreads over the quarter: {spread:?}"
    );
}

#[test]
fn without_jitter_the_lead_is_the_margin() {
    let mut k = command_keeper(3);
    k.adopt_stored(
        tokens("a", Some("r"), HOUR),
        Some(Duration::from_secs(3600)),
        Timestamp::ZERO,
    );
    assert_eq!(first_wait(&mut k, 0), HOUR - 300 * S);
}

#[test]
fn a_five_minute_token_keeps_only_its_last_quarter() {
    let mut k = command_keeper(3);
    k.adopt_stored(
        tokens("a", Some("r"), 300 * S),
        Some(Duration::from_secs(300)),
        Timestamp::ZERO,
    );
    assert_eq!(
        first_wait(&mut k, 10 * S),
        225 * S,
        "75 s before expiry, not on every call"
    );
}

#[test]
fn an_unknown_lifetime_keeps_the_whole_margin() {
    let mut k = command_keeper(3);
    k.adopt_stored(tokens("a", Some("r"), 200 * S), None, Timestamp::ZERO);
    assert!(
        matches!(k.poll(Timestamp::ZERO), KeepStep::Send(_)),
        "200 s left is within 5 minutes"
    );
}

// ---- refresh cycles ----

#[test]
fn a_day_of_hour_tokens_one_refresh_each_and_never_a_gap() {
    let mut w = World::new(lone_agent(600, 3))
        .paired(3600)
        .script((0..40).map(|_| Reply::Token(3600)));
    w.rtt = 150;
    let mut expiry = w.held().expires_at.as_millis();
    let mut last = 0;
    while w.now < 24 * HOUR {
        w.run_until(w.now + 10 * MIN);
        let e = w.held().expires_at.as_millis();
        assert!(w.now < e, "the held token expired at {} (now {})", e, w.now);
        if e != expiry {
            expiry = e;
            let sent = *w.sends.last().unwrap();
            assert!(
                sent >= last + 47 * MIN && sent <= last + 50 * MIN + 1000,
                "{sent} after {last}"
            );
            last = sent;
        }
    }
    assert!(
        (28..=31).contains(&w.sends.len()),
        "{} refreshes in a day",
        w.sends.len()
    );
    assert!(
        w.names().iter().all(|n| ["send", "refreshed"].contains(n)),
        "{:?}",
        w.log
    );
}

#[test]
fn a_four_second_test_token_is_refreshed_after_about_three_seconds() {
    let mut w = World::new(lone_agent(600, 9))
        .paired(4)
        .script((0..10).map(|_| Reply::Token(4)));
    w.run_until(20 * S);
    assert!(w.sends.len() >= 5, "{:?}", w.sends);
    for pair in w.sends.windows(2) {
        let gap = pair[1] - pair[0];
        assert!((2750..=3000).contains(&gap), "refreshed {gap} ms apart");
    }
}

#[test]
fn tokens_that_arrive_nearly_expired_cause_no_storm() {
    // A server that grants 1-second tokens: the lead would be 250 ms; refreshes stay 1 s apart.
    let mut w = World::new(lone_agent(600, 1))
        .paired(1)
        .script((0..30).map(|_| Reply::Token(1)));
    w.run_until(10 * S);
    assert!(w.sends.len() <= 11, "{} refreshes in 10 s", w.sends.len());
    assert!(w.sends.windows(2).all(|p| p[1] - p[0] >= 750), "{:?}", w.sends);
}

#[test]
fn a_refreshed_token_counts_its_life_from_the_answer_and_keeps_the_refresh_token() {
    let mut w = World::new(lone_agent(600, 2)).paired(3600).script([Reply::Token(3600)]);
    w.rtt = 2000;
    w.run_until(HOUR);
    let sent = w.sends[0];
    assert_eq!(w.held().expires_at.as_millis(), sent + 2000 + HOUR);
    assert_eq!(
        w.held().refresh_token.as_ref().unwrap().expose(),
        "r0",
        "Zoho sends no new refresh token"
    );
    assert!(w.bodies[0].contains("grant_type=refresh_token") && w.bodies[0].contains("refresh_token=r0"));
}

#[test]
fn the_transcript_of_a_quiet_morning() {
    const EXPECTED: &[&str] = &[
        "check",
        "send",
        "refreshed a1",
        "check",
        "send",
        "refreshed a2",
        "check",
        "send",
        "refreshed a3",
    ];
    let mut w = World::new(agent_keeper(600, 5))
        .paired(3600)
        .script((0..3).map(|_| Reply::Token(3600)));
    w.run_until(3 * HOUR);
    assert_eq!(w.log, EXPECTED);
}

// ---- transient faults ----

#[test]
fn transient_faults_are_retried_quickly_and_the_token_stays_held() {
    let mut w = World::new(lone_agent(1, 4)).paired(4).script([
        Reply::Raw(503, HTML_503),
        Reply::Raw(503, HTML_503),
        Reply::Transport(TransportError::Reset),
        Reply::Token(4),
    ]);
    w.run_until(4 * S);
    assert_eq!(
        w.names(),
        [
            "send",
            "failed",
            "send",
            "failed",
            "send",
            "failed",
            "send",
            "refreshed"
        ]
    );
    // 4-second token: lead ~1 s, so backoff from 125 ms up to 1 s.
    assert!(
        w.retry_delays().iter().all(|&d| (62..=1000).contains(&d)),
        "{:?}",
        w.log
    );
    assert!(
        w.sends.last().unwrap() < &(4 * S),
        "refreshed before the old token expired"
    );
}

#[test]
fn a_long_outage_backs_off_to_the_cap_without_dropping_the_token() {
    let mut w = World::new(lone_agent(600, 8))
        .paired(3600)
        .script((0..200).map(|_| Reply::Transport(TransportError::Connect)));
    w.run_until(HOUR + 10 * MIN);
    let delays = w.retry_delays();
    assert!(delays.iter().all(|&d| d <= 120 * S), "capped at 2 minutes: {delays:?}");
    assert!(
        delays.iter().rev().take(5).all(|&d| d >= 60 * S),
        "grown to the cap: {delays:?}"
    );
    assert!(w.stopped.is_none(), "an outage never asks for pairing");
    assert_eq!(w.held().access_token.expose(), "a0", "the last good token is kept");
    assert_eq!(w.keeper.failures() as usize, w.sends.len());
}

#[test]
fn success_resets_the_backoff() {
    let mut w = World::new(lone_agent(600, 6)).paired(3600).script([
        Reply::Raw(502, HTML_503),
        Reply::Raw(502, HTML_503),
        Reply::Raw(502, HTML_503),
        Reply::Token(3600),
        Reply::Raw(502, HTML_503),
        Reply::Token(3600),
    ]);
    w.run_until(2 * HOUR);
    assert_eq!(w.keeper.failures(), 0);
    let d = w.retry_delays();
    assert_eq!(d.len(), 4);
    assert!(
        d[3] <= 1000,
        "the first failure after a success backs off from the base again: {d:?}"
    );
}

// ---- Zoho's throttle ----

#[test]
fn the_throttle_waits_at_least_the_spacing() {
    let mut w = World::new(lone_agent(600, 11))
        .paired(3600)
        .script([Reply::Raw(200, THROTTLE), Reply::Token(3600)]);
    w.run_until(HOUR);
    assert_eq!(w.names(), ["send", "failed", "send", "refreshed"]);
    assert!(w.log[1].starts_with("failed throttled"), "{:?}", w.log);
    assert!(w.retry_delays()[0] >= 60 * S, "not within the minute: {:?}", w.log);
}

#[test]
fn a_command_gives_up_on_the_throttle_at_once() {
    let mut w = World::new(command_keeper(3)).script([Reply::Raw(200, THROTTLE)]);
    w.keeper.adopt_stored(
        tokens("a", Some("r"), 100 * S),
        Some(Duration::from_secs(3600)),
        Timestamp::ZERO,
    );
    w.run_until(HOUR);
    assert_eq!(w.log, ["send", "gave up throttled"]);
    assert_eq!(w.stopped, Some(KeepStep::GaveUp(Error::Throttled)));
}

// ---- a command's attempts ----

#[test]
fn a_command_tries_three_times_then_reports_the_attempts() {
    let mut w = World::new(command_keeper(3)).script((0..3).map(|_| Reply::Raw(503, HTML_503)));
    w.keeper.adopt_stored(
        tokens("a", Some("r"), 100 * S),
        Some(Duration::from_secs(3600)),
        Timestamp::ZERO,
    );
    w.run_until(HOUR);
    assert_eq!(w.names(), ["send", "failed", "send", "failed", "send", "gave"]);
    let d = w.retry_delays();
    assert!(
        (250..=500).contains(&d[0]) && (500..=1000).contains(&d[1]),
        "500 ms doubling, jittered: {d:?}"
    );
    assert_eq!(
        w.stopped,
        Some(KeepStep::GaveUp(Error::Unavailable {
            attempts: 3,
            last: Transient::NotJson(503)
        }))
    );
    assert_eq!(w.held().access_token.expose(), "a", "the token is unchanged");
}

#[test]
fn a_command_gives_up_on_a_rejected_client_at_once() {
    let mut w = World::new(command_keeper(3)).script([Reply::Raw(400, INVALID_CLIENT)]);
    w.keeper.adopt_stored(tokens("a", Some("r"), 0), None, Timestamp::ZERO);
    w.run_until(HOUR);
    assert_eq!(w.log, ["send", "gave up invalid_client"]);
}

#[test]
fn the_agent_retries_a_rejected_client_slowly() {
    let mut w = World::new(lone_agent(600, 12))
        .paired(3600)
        .script((0..20).map(|_| Reply::Raw(400, INVALID_CLIENT)));
    w.run_until(HOUR + 30 * MIN);
    let d = w.retry_delays();
    assert!(d.len() >= 3, "{:?}", w.log);
    assert!(
        d.iter().all(|&x| x >= 30 * S && x <= SLOW_RETRY_CAP.as_millis() as u64),
        "{d:?}"
    );
    assert!(w.stopped.is_none());
}

// ---- a dead refresh token ----

#[test]
fn a_revoked_refresh_token_asks_for_pairing_until_a_new_one_is_adopted() {
    let mut w = World::new(lone_agent(600, 13))
        .paired(3600)
        .script([Reply::Raw(400, INVALID_CODE)]);
    w.run_until(2 * HOUR);
    assert_eq!(w.log, ["send", "needs pairing refresh_token_rejected"]);
    let need = PairingNeed::RefreshTokenRejected(Error::InvalidGrant {
        code: "invalid_code".into(),
    });
    assert_eq!(w.stopped, Some(KeepStep::NeedsPairing(need.clone())));
    for t in [w.now, w.now + HOUR] {
        assert_eq!(
            w.keeper.poll(Timestamp::from_millis(t)),
            KeepStep::NeedsPairing(need.clone()),
            "sticky"
        );
    }
    assert!(w.keeper.tokens().is_none());
    // Paired again: refreshes resume.
    w.script.extend([Reply::Token(3600)]);
    w.keeper
        .adopt(tokens("b0", Some("r1"), w.now + HOUR), Timestamp::from_millis(w.now));
    w.stopped = None;
    w.run_until(w.now + HOUR);
    assert!(w.log.last().unwrap().starts_with("refreshed"), "{:?}", w.log);
    assert!(w.bodies.last().unwrap().contains("refresh_token=r1"));
}

#[test]
fn a_keeper_holding_nothing_asks_for_pairing() {
    let mut k = agent_keeper(600, 0);
    assert_eq!(k.poll(Timestamp::ZERO), KeepStep::NeedsPairing(PairingNeed::NotPaired));
    k.adopt(tokens("a", Some("r"), HOUR), Timestamp::ZERO);
    k.forget();
    assert_eq!(k.poll(Timestamp::ZERO), KeepStep::NeedsPairing(PairingNeed::NotPaired));
}

// ---- no refresh token ----

#[test]
fn without_a_refresh_token_nothing_is_sent_and_expiry_means_pairing() {
    let mut k = lone_agent(600, 0);
    k.adopt(tokens("a", None, HOUR), Timestamp::ZERO);
    assert_eq!(first_wait(&mut k, 0), HOUR, "used until it expires");
    assert_eq!(
        k.poll(Timestamp::from_millis(HOUR)),
        KeepStep::NeedsPairing(PairingNeed::NoRefreshToken)
    );
}

#[test]
fn without_a_refresh_token_the_store_is_checked_at_expiry() {
    let mut w = World::new(agent_keeper(600, 0));
    let t = tokens("a", None, HOUR);
    w.keeper.adopt(t.clone(), Timestamp::ZERO);
    w.store = Some((t, None));
    w.run_until(2 * HOUR);
    assert_eq!(w.log, ["check", "needs pairing no_refresh_token"]);
    assert_eq!(w.now, HOUR);
    assert!(w.sends.is_empty());
}

#[test]
fn a_forced_refresh_without_a_refresh_token_asks_for_pairing() {
    let mut k = lone_agent(600, 0);
    k.adopt(tokens("a", None, HOUR), Timestamp::ZERO);
    k.force();
    assert_eq!(
        k.poll(Timestamp::ZERO),
        KeepStep::NeedsPairing(PairingNeed::NoRefreshToken)
    );
}

// ---- someone else refreshed ----

#[test]
fn another_processs_fresh_token_is_adopted_and_nothing_is_sent() {
    let mut w = World::new(agent_keeper(600, 14))
        .paired(3600)
        .script([Reply::Token(3600)]);
    let at = first_wait(&mut w.keeper, 0);
    // Another program refreshed two minutes before the agent's turn.
    w.store = Some((
        tokens("other", Some("r0"), at - 2 * MIN + HOUR),
        Some(Duration::from_secs(3600)),
    ));
    w.run_until(at + 30 * MIN);
    assert_eq!(w.log, ["check", "adopted"]);
    assert!(w.sends.is_empty());
    assert_eq!(w.held().access_token.expose(), "other");
    assert!(
        first_wait(&mut w.keeper, w.now) > at + 45 * MIN,
        "the next turn follows the adopted token"
    );
}

#[test]
fn the_same_token_in_the_store_is_refreshed() {
    let mut w = World::new(agent_keeper(600, 15))
        .paired(3600)
        .script([Reply::Token(3600)]);
    w.run_until(HOUR);
    assert_eq!(w.log, ["check", "send", "refreshed a1"]);
}

#[test]
fn another_token_that_is_due_itself_is_refreshed_with_its_refresh_token() {
    let mut w = World::new(agent_keeper(600, 16))
        .paired(3600)
        .script([Reply::Token(3600)]);
    let at = first_wait(&mut w.keeper, 0);
    // Re-paired by another process meanwhile, with a token as old as ours.
    w.store = Some((tokens("other", Some("r-other"), HOUR), Some(Duration::from_secs(3600))));
    w.run_until(at + MIN);
    assert_eq!(w.log, ["check", "send", "refreshed a1"]);
    assert!(w.bodies[0].contains("refresh_token=r-other"), "{}", w.bodies[0]);
}

#[test]
fn a_forced_refresh_takes_a_token_refreshed_meanwhile() {
    // The server rejected "a0"; under the lock the store holds another, unexpired one.
    let mut w = World::new(agent_keeper(600, 17)).paired(3600);
    w.keeper.force();
    w.store = Some((tokens("newer", Some("r0"), 10 * S), Some(Duration::from_secs(3600))));
    w.run_until(S);
    assert_eq!(
        w.log,
        ["check", "adopted"],
        "a token with 10 s left is good enough when asked for one"
    );
    // The store holds the very token that was rejected: refreshed.
    let mut w = World::new(agent_keeper(600, 17))
        .paired(3600)
        .script([Reply::Token(3600)]);
    w.keeper.force();
    w.run_until(S);
    assert_eq!(w.log, ["check", "send", "refreshed a1"]);
    assert_eq!(w.sends, [0]);
}

#[test]
fn a_busy_store_is_tried_again_after_half_a_minute_without_a_failure() {
    let mut k = agent_keeper(600, 18);
    k.adopt(tokens("a", Some("r"), HOUR), Timestamp::ZERO);
    let at = first_wait(&mut k, 0);
    assert_eq!(k.poll(Timestamp::from_millis(at)), KeepStep::Check);
    k.handle_store_busy(Timestamp::from_millis(at));
    assert_eq!(k.failures(), 0);
    assert_eq!(first_wait(&mut k, at), at + LOCK_RETRY.as_millis() as u64);
}

// ---- clocks ----

#[test]
fn a_timer_is_only_a_hint_early_wakes_wait_again() {
    let mut k = agent_keeper(600, 19);
    k.adopt(tokens("a", Some("r"), HOUR), Timestamp::ZERO);
    let at = first_wait(&mut k, 0);
    for early in [1, at / 2, at - 1] {
        assert_eq!(first_wait(&mut k, early), at);
    }
    assert_eq!(k.poll(Timestamp::from_millis(at)), KeepStep::Check);
}

#[test]
fn a_suspend_past_expiry_refreshes_at_once_on_waking() {
    let mut w = World::new(lone_agent(600, 20))
        .paired(3600)
        .script([Reply::Token(3600)]);
    // The board slept for three hours: the first poll after waking sends.
    w.now = 3 * HOUR;
    w.run_until(3 * HOUR + MIN);
    assert_eq!(w.sends, [3 * HOUR]);
    assert_eq!(w.held().expires_at.as_millis(), 4 * HOUR);
}

#[test]
fn a_clock_set_forward_then_back_changes_nothing_planned() {
    let mut k = agent_keeper(600, 21);
    k.adopt(tokens("a", Some("r"), HOUR), Timestamp::ZERO);
    let at = first_wait(&mut k, 0);
    // A caller whose clock stepped back (a wall clock before NTP): the plan stands.
    assert_eq!(first_wait(&mut k, 5 * S), at);
    assert_eq!(first_wait(&mut k, 0), at);
}

#[test]
fn a_token_re_read_after_a_clock_jump_is_planned_afresh() {
    // After a suspend the driver reads the store again: what is left decides, on the new clock.
    let mut k = lone_agent(600, 22);
    k.adopt_stored(
        tokens("a", Some("r"), HOUR),
        Some(Duration::from_secs(3600)),
        Timestamp::ZERO,
    );
    assert!(matches!(k.poll(Timestamp::ZERO), KeepStep::Wait(_)));
    k.adopt_stored(
        tokens("a", Some("r"), 5 * MIN),
        Some(Duration::from_secs(3600)),
        Timestamp::ZERO,
    );
    assert!(
        matches!(k.poll(Timestamp::ZERO), KeepStep::Send(_)),
        "5 minutes left is past the lead"
    );
}

// ---- dialect details ----

#[test]
fn a_standard_server_asking_for_basic_auth_gets_it_once_at_once() {
    let endpoint = TokenEndpoint::standard(&ServerUrl::parse("https://idp.example/token").unwrap(), None);
    let mut k = Keeper::new(KeeperConfig::once(
        Duration::from_secs(300),
        Retries::Attempts {
            attempts: 3,
            base: Duration::from_millis(500),
            cap: Duration::from_secs(8),
        },
        1,
    ))
    .with_endpoint(endpoint, client());
    k.adopt_stored(tokens("a", Some("r"), 0), None, Timestamp::ZERO);
    let KeepStep::Send(first) = k.poll(Timestamp::ZERO) else {
        panic!()
    };
    assert!(first.authorization.is_none());
    k.handle_response(Timestamp::ZERO, 401, br#"{"error":"invalid_client"}"#);
    let KeepStep::Send(second) = k.poll(Timestamp::ZERO) else {
        panic!("resent at once")
    };
    assert!(second.authorization.as_deref().is_some_and(|a| a.starts_with("Basic ")));
    k.handle_response(Timestamp::ZERO, 401, br#"{"error":"invalid_client"}"#);
    assert!(
        matches!(k.poll(Timestamp::ZERO), KeepStep::GaveUp(Error::ClientRejected { .. })),
        "only once"
    );
}

#[test]
fn an_unsafe_api_domain_is_not_adopted() {
    let mut w = World::new(lone_agent(600, 23)).paired(3600).script([
        Reply::Raw(
            200,
            r#"{"access_token":"x","api_domain":"https://evil.example","expires_in":3600}"#,
        ),
        Reply::Token(3600),
    ]);
    w.run_until(HOUR);
    assert_eq!(w.names(), ["send", "failed", "send", "refreshed"]);
    assert!(w.log[1].starts_with("failed unsafe"), "{:?}", w.log);
    assert_eq!(w.held().access_token.expose(), "a1", "the unsafe token was never held");
}

#[test]
fn events_are_reported_once() {
    let mut k = lone_agent(600, 24);
    k.adopt_stored(tokens("a", Some("r"), 0), None, Timestamp::ZERO);
    assert!(matches!(k.poll(Timestamp::ZERO), KeepStep::Send(_)));
    k.handle_response(
        Timestamp::from_millis(10),
        200,
        br#"{"access_token":"n","expires_in":3600}"#,
    );
    assert!(matches!(k.poll(Timestamp::from_millis(10)), KeepStep::Refreshed(_)));
    assert!(matches!(k.poll(Timestamp::from_millis(10)), KeepStep::Wait(_)));
    k.handle_transport_error(Timestamp::from_millis(20), TransportError::Reset);
    assert!(
        matches!(k.poll(Timestamp::from_millis(20)), KeepStep::Wait(_)),
        "no answer was awaited"
    );
}
