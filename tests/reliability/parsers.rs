//! The always-run stand-in for fuzzing (the real pass is scripts/fuzz.sh): thousands of seeded
//! random and mutated bodies — from the fixtures — fed to every parser and to the device flow.
//! No panic; timings clamped; no wait into the past; no access token for a foreign host.

use std::time::Duration;

use zoho_device_core::codec::{self, MAX_CODE_LIFETIME, MAX_INTERVAL, MAX_TOKEN_LIFETIME, Reply};
use zoho_device_core::*;

use crate::harness::Rng;

const STATUSES: [u16; 8] = [200, 400, 401, 429, 500, 502, 503, 302];

fn fixtures() -> Vec<Vec<u8>> {
    let dir = format!("{}/crates/core/tests/fixtures", env!("CARGO_MANIFEST_DIR"));
    let mut v: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "json" || x == "html"))
        .map(|e| std::fs::read(e.path()).unwrap())
        .collect();
    v.push(br#"{"code":0,"message":"success","organizations":[{"organization_id":10234695,"name":"Zillum","is_default_org":true,"currency_code":"USD"}]}"#.to_vec());
    v.push(br#"{"code":57,"message":"You are not authorized to perform this operation"}"#.to_vec());
    v.push(br#"{"version":1,"profile":"zoho","client_id":"1004.X","access_token":"1000.a","refresh_token":"1000.r","api_domain":"https://www.zohoapis.eu","accounts_url":"https://accounts.zoho.eu","location":"eu","scope":"ZohoBooks.settings.READ","token_type":"Bearer","expires_at":1800000000000,"paired_at":1,"refreshed_at":2}"#.to_vec());
    v.push(
        b"client_id = \"1004.X\"\ndc = \"eu\"\nscope = \"ZohoBooks.settings.READ\"\ndisplay = [\"terminal\"]\n"
            .to_vec(),
    );
    v
}

const INTERESTING: &[&[u8]] = &[
    b"0",
    b"-1",
    b"1e308",
    b"18446744073709551616",
    b"-9223372036854775808",
    b"null",
    b"true",
    b"[]",
    b"{}",
    b"\"\"",
    b"\"x\"",
    b"1000000000000",
    b"0.5",
    b"\"\\u0000\"",
    b"{\"error\":{}}",
    b"\xff\xfe",
];

/// One mutation of `input`: byte flips, truncation, splices, numbers swapped for absurd ones,
/// nesting bombs.
fn mutate(rng: &mut Rng, input: &[u8], pool: &[Vec<u8>]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..=rng.below(4) {
        match rng.below(9) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len() as u64) as usize;
                v[i] ^= 1 << rng.below(8);
            }
            1 => {
                let n = rng.below(v.len() as u64 + 1) as usize;
                v.truncate(n);
            }
            2 => {
                let other = &pool[rng.below(pool.len() as u64) as usize];
                let a = rng.below(v.len() as u64 + 1) as usize;
                let b = rng.below(other.len() as u64 + 1) as usize;
                v.splice(a..a, other[b..].iter().copied());
            }
            3 => {
                // Replace a number with an absurd one.
                if let Some(pos) = v.iter().position(|c| c.is_ascii_digit()) {
                    let end = v[pos..]
                        .iter()
                        .position(|c| !c.is_ascii_digit())
                        .map_or(v.len(), |e| pos + e);
                    let with = INTERESTING[rng.below(INTERESTING.len() as u64) as usize];
                    v.splice(pos..end, with.iter().copied());
                }
            }
            4 => {
                // Replace a string value.
                if let Some(pos) = v.windows(2).position(|w| w == b":\"") {
                    let with = INTERESTING[rng.below(INTERESTING.len() as u64) as usize];
                    v.splice(pos + 1..pos + 1, with.iter().copied().chain(*b",\"_\":"));
                }
            }
            5 => {
                let depth = 1 + rng.below(5000) as usize;
                v = [vec![b'['; depth], vec![b']'; depth]].concat();
            }
            6 => v = (0..rng.below(300)).map(|_| rng.next() as u8).collect(),
            7 if !v.is_empty() => {
                let i = rng.below(v.len() as u64) as usize;
                v.insert(i, rng.next() as u8);
            }
            _ => {}
        }
    }
    v
}

fn check_parsers(status: u16, body: &[u8]) {
    for profile in [Profile::Zoho, Profile::Rfc8628] {
        if let Reply::Ok(d) = codec::parse_device_authorization(profile, status, body) {
            assert!(d.interval <= MAX_INTERVAL && d.expires_in <= MAX_CODE_LIFETIME && !d.expires_in.is_zero());
        }
        let _ = codec::parse_revoke(profile, status, body);
    }
    if let Reply::Ok(g) = codec::parse_token(status, body) {
        assert!(g.expires_in <= MAX_TOKEN_LIFETIME);
    }
    let _ = codec::parse_serverinfo(status, body);
    let accounts = ServerUrl::parse("https://accounts.zoho.eu").unwrap();
    let previous = Tokens {
        access_token: AccessToken::new("old"),
        refresh_token: Some(RefreshToken::new("refresh")),
        api_domain: None,
        accounts_url: Some(accounts.clone()),
        location: None,
        scope: None,
        token_type: "Bearer".into(),
        expires_at: Timestamp::ZERO,
    };
    if let Ok(t) = TokenEndpoint::zoho(&accounts).refresh_response(Timestamp::ZERO, status, body, &previous)
        && let Some(api) = &t.api_domain
    {
        assert!(api.is_https() && api.host().contains("zohoapis."), "{api:?}");
    }
    let _ = zoho_device::books::parse_organizations(status, body);
    if let Ok(text) = std::str::from_utf8(body) {
        let _ = toml::from_str::<zoho_device::settings::ConfigFile>(text);
    }
    if let Ok(t) = serde_json::from_slice::<zoho_device::store::Pairing>(body) {
        let again = serde_json::to_vec(&t).unwrap();
        let back: zoho_device::store::Pairing = serde_json::from_slice(&again).unwrap();
        assert_eq!(back, t);
    }
}

#[test]
fn every_parser_survives_mutated_replies() {
    let pool = fixtures();
    let mut rng = Rng::new(0xf022_0010);
    let mut n = 0;
    // Oversize, at the cap and past it.
    for len in [64 * 1024, 64 * 1024 + 1, 1 << 20] {
        let mut big = b"{\"access_token\":\"".to_vec();
        big.resize(len - 2, b'a');
        big.extend_from_slice(b"\"}");
        for s in STATUSES {
            check_parsers(s, &big);
        }
    }
    while n < 8_000 {
        let base = &pool[rng.below(pool.len() as u64) as usize];
        let body = mutate(&mut rng, base, &pool);
        let status = STATUSES[rng.below(8) as usize];
        let outcome = std::panic::catch_unwind(|| check_parsers(status, &body));
        assert!(
            outcome.is_ok(),
            "a parser panicked on status {status}, body {:?}",
            String::from_utf8_lossy(&body)
        );
        n += 1;
    }
}

#[test]
fn the_flow_survives_arbitrary_reply_sequences() {
    let pool = fixtures();
    let mut rng = Rng::new(0xf10e_0010);
    let transport = [
        TransportError::Connect,
        TransportError::Dns,
        TransportError::Timeout,
        TransportError::Reset,
        TransportError::Tls,
        TransportError::Other,
    ];
    for run in 0..1_500 {
        let profile = if rng.below(4) == 0 {
            Profile::Rfc8628
        } else {
            Profile::Zoho
        };
        let server = match (profile, rng.below(2)) {
            (Profile::Zoho, 0) => Server::zoho_dc(DataCenter::Us),
            (Profile::Zoho, _) => Server::zoho(ServerUrl::parse("http://127.0.0.1:9").unwrap()),
            _ => Server::Standard {
                device_authorization_url: ServerUrl::parse("https://idp.example/device").unwrap(),
                token_url: ServerUrl::parse("https://idp.example/token").unwrap(),
            },
        };
        let config = FlowConfig {
            profile,
            kiosk: (rng.below(3) == 0).then(KioskPolicy::default),
            jitter_seed: rng.next(),
            ..FlowConfig::default()
        };
        let client = ClientCredentials {
            client_id: "1004.FUZZ".into(),
            client_secret: Some(ClientSecret::new("secret")),
        };
        let mut now = Timestamp::from_millis(rng.below(1 << 40));
        let mut flow = DeviceFlow::new(config, client, server, now);
        for _ in 0..60 {
            match flow.poll(now) {
                Err(_) => break,
                Ok(Step::Done(t)) => {
                    if let Some(api) = &t.api_domain {
                        assert!(api.is_https() || api.is_loopback(), "run {run}: {api:?}");
                    }
                    break;
                }
                Ok(Step::Wait(t)) => {
                    assert!(t >= now, "run {run}: a wait into the past");
                    now = t;
                }
                Ok(Step::Prompt(p)) => assert!(p.expires_at >= now && p.interval >= Duration::from_secs(1)),
                Ok(Step::Notice(_)) => {}
                Ok(Step::Send(_)) => {
                    now = now.saturating_add(Duration::from_millis(rng.below(5_000)));
                    if rng.below(6) == 0 {
                        flow.handle_transport_error(now, transport[rng.below(6) as usize]);
                    } else {
                        let base = &pool[rng.below(pool.len() as u64) as usize];
                        let body = if rng.below(3) == 0 {
                            mutate(&mut rng, base, &pool)
                        } else {
                            base.clone()
                        };
                        flow.handle_response(now, STATUSES[rng.below(8) as usize], &body);
                    }
                }
            }
        }
    }
}
