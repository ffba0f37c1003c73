//! The standard profile against the reply shapes real device-flow servers send: GitHub, Google,
//! Microsoft Entra, Twitch, Keycloak, Auth0 and django-oauth-toolkit. Each fixture under
//! `fixtures/providers/` is one reply as that server documents or was seen to send it; each
//! test scripts a flow (or a refresh) with them on a simulated clock and checks what the device
//! does.

use std::collections::VecDeque;
use std::time::Duration;

use zoho_device_core::blocking::{self, Clock, HttpResponse};
use zoho_device_core::codec::{self, ClientAuth};
use zoho_device_core::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/providers/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn url(s: &str) -> ServerUrl {
    ServerUrl::parse(s).unwrap()
}

fn public() -> ClientCredentials {
    ClientCredentials {
        client_id: "device-client".into(),
        client_secret: None,
    }
}

fn confidential() -> ClientCredentials {
    ClientCredentials {
        client_id: "device client".into(),
        client_secret: Some(ClientSecret::new("s3cr:t/+")),
    }
}

fn config(scopes: &[&str], offline: bool) -> FlowConfig {
    FlowConfig {
        profile: Profile::Rfc8628,
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        offline_access: offline,
        ..FlowConfig::default()
    }
}

fn flow(config: FlowConfig, client: ClientCredentials) -> DeviceFlow {
    let server = Server::Standard {
        device_authorization_url: url("https://idp.example/device"),
        token_url: url("https://idp.example/token"),
    };
    DeviceFlow::new(config, client, server, Timestamp::ZERO)
}

/// What a scripted run did.
struct Run {
    transcript: Vec<String>,
    sent: Vec<HttpRequest>,
    prompts: Vec<UserPrompt>,
    end: Duration,
    result: Result<Tokens, Error>,
}

/// Drives `flow` with `(status, fixture)` replies on a clock that jumps to each wake-up.
fn drive(flow: &mut DeviceFlow, replies: &[(u16, &str)]) -> Run {
    let mut replies: VecDeque<(u16, &str)> = replies.iter().copied().collect();
    let mut now = Timestamp::ZERO;
    let mut run = Run {
        transcript: Vec::new(),
        sent: Vec::new(),
        prompts: Vec::new(),
        end: Duration::ZERO,
        result: Err(Error::Cancelled),
    };
    for _ in 0..1000 {
        let step = match flow.poll(now) {
            Ok(s) => s,
            Err(e) => {
                run.transcript.push(format!("error {}", e.code()));
                run.result = Err(e);
                break;
            }
        };
        match step {
            Step::Send(req) => {
                run.transcript.push(format!("send {:?}", req.purpose));
                run.sent.push(req);
                let (status, name) = replies.pop_front().expect("more requests than scripted replies");
                flow.handle_response(now, status, &fixture(name));
            }
            Step::Prompt(p) => {
                run.transcript.push(format!("prompt {}", p.user_code));
                run.prompts.push(p);
            }
            Step::Notice(Notice::Pending) => run.transcript.push("pending".into()),
            Step::Notice(Notice::SlowDown { interval }) => {
                run.transcript.push(format!("slow_down {}", interval.as_secs()))
            }
            Step::Notice(Notice::Retry { reason, .. }) => run.transcript.push(format!("retry {}", reason.code())),
            Step::Notice(n) => run.transcript.push(format!("{n:?}")),
            Step::Wait(t) => now = now.max(t),
            Step::Done(t) => {
                run.transcript.push("done".into());
                run.result = Ok(t);
                break;
            }
        }
    }
    run.end = Duration::from_millis(now.as_millis());
    run
}

fn body(req: &HttpRequest) -> String {
    String::from_utf8(req.body.clone()).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Device authorization replies

#[test]
fn every_providers_code_reply_reads() {
    let cases = [
        (
            "github_code.json",
            "WDJB-MJHT",
            "https://github.com/login/device",
            5,
            900,
        ),
        (
            "google_code.json",
            "GQVQ-JKEC",
            "https://www.google.com/device",
            5,
            1800,
        ),
        (
            "entra_code.json",
            "FG8VMZ3K2",
            "https://microsoft.com/devicelogin",
            5,
            900,
        ),
        // The old v1 endpoint: `verification_url`, numbers as strings.
        (
            "entra_v1_code.json",
            "FG8VMZ3K2",
            "https://microsoft.com/devicelogin",
            5,
            900,
        ),
        (
            "twitch_code.json",
            "ABCDEFGH",
            "https://www.twitch.tv/activate?public=true&device-code=ABCDEFGH",
            5,
            1800,
        ),
        (
            "keycloak_code.json",
            "WKQJ-BGKS",
            "https://kc.example/realms/home/device",
            5,
            600,
        ),
        (
            "auth0_code.json",
            "QTZL-MCBW",
            "https://tenant.auth0.com/activate",
            5,
            900,
        ),
        ("dot_code.json", "K7PQW2XR", "http://127.0.0.1:8000/o/device/", 5, 1800),
    ];
    for (name, user_code, verification, interval, lifetime) in cases {
        let codec::Reply::Ok(d) = codec::parse_device_authorization(Profile::Rfc8628, 200, &fixture(name)) else {
            panic!("{name} does not read");
        };
        assert_eq!(d.user_code, user_code, "{name}");
        assert_eq!(d.verification_url, verification, "{name}");
        assert_eq!(d.interval, Duration::from_secs(interval), "{name}");
        assert_eq!(d.expires_in, Duration::from_secs(lifetime), "{name}");
    }
}

#[test]
fn an_https_verification_url_with_a_query_is_not_flagged() {
    // Twitch's verification URI carries a query; it is https all the same.
    let mut f = flow(config(&["openid"], false), public());
    let run = drive(
        &mut f,
        &[
            (200, "twitch_code.json"),
            (400, "twitch_pending.json"),
            (200, "twitch_token.json"),
        ],
    );
    assert_eq!(run.prompts[0].warning, None, "{:?}", run.prompts[0]);
    // A plain-http one off loopback still is.
    let mut f = flow(config(&["openid"], false), public());
    let run = drive(&mut f, &[(200, "dot_code.json"), (200, "dot_token.json")]);
    assert_eq!(run.prompts[0].warning, None, "loopback http is fine");
    assert!(run.result.is_ok());
}

// ---------------------------------------------------------------------------------------------
// Polling

fn transcript(run: &Run) -> Vec<&str> {
    run.transcript.iter().map(String::as_str).collect()
}

#[test]
fn twitch_pending_is_pending_not_a_retry() {
    let mut f = flow(config(&["openid"], false), public());
    let run = drive(
        &mut f,
        &[
            (200, "twitch_code.json"),
            (400, "twitch_pending.json"),
            (400, "twitch_pending.json"),
            (200, "twitch_token.json"),
        ],
    );
    assert_eq!(
        transcript(&run),
        [
            "send DeviceCode",
            "prompt ABCDEFGH",
            "send Poll",
            "pending",
            "send Poll",
            "pending",
            "send Poll",
            "done"
        ]
    );
    // Three polls, five seconds apart, the first one interval after the code.
    assert_eq!(run.end, Duration::from_secs(15));
}

#[test]
fn a_proxys_message_body_is_still_not_an_answer() {
    // Only RFC 8628's own words in `message` count; anything else is retried like a 503.
    let reply = codec::parse_token_for(Profile::Rfc8628, 403, br#"{"message":"Forbidden"}"#);
    assert!(
        matches!(
            reply,
            codec::Reply::Transient(zoho_device_core::Transient::UnexpectedJson(403))
        ),
        "{reply:?}"
    );
    let reply = codec::parse_token_for(Profile::Rfc8628, 400, &fixture("twitch_pending.json"));
    assert!(
        matches!(reply, codec::Reply::Error(ref e) if e.code == "authorization_pending"),
        "{reply:?}"
    );
}

#[test]
fn github_slow_down_at_http_200_takes_the_interval_it_names() {
    let mut f = flow(config(&["repo"], false), public());
    let run = drive(
        &mut f,
        &[
            (200, "github_code.json"),
            (200, "github_pending.json"),
            (200, "github_slow_down.json"),
            (200, "github_token.json"),
        ],
    );
    // 5 s, 5 s, then the named 20 s (more than 5 + 5).
    assert_eq!(
        transcript(&run),
        [
            "send DeviceCode",
            "prompt WDJB-MJHT",
            "send Poll",
            "pending",
            "send Poll",
            "slow_down 20",
            "send Poll",
            "done"
        ]
    );
    assert_eq!(run.end, Duration::from_secs(30));
    let tokens = run.result.unwrap();
    assert_eq!(tokens.token_type, "bearer");
    assert_eq!(tokens.refresh_token, None, "GitHub sends none by default");
    assert_eq!(tokens.scope.as_deref(), Some("repo,gist"));
}

#[test]
fn slow_down_never_shortens_the_interval() {
    // A named interval below current + 5 s does not win; without one, + 5 s (Auth0's 429).
    let mut f = flow(config(&["openid"], false), public());
    let run = drive(
        &mut f,
        &[
            (200, "auth0_code.json"),
            (429, "auth0_slow_down.json"),
            (429, "auth0_slow_down.json"),
            (403, "auth0_expired.json"),
        ],
    );
    assert_eq!(
        transcript(&run),
        [
            "send DeviceCode",
            "prompt QTZL-MCBW",
            "send Poll",
            "slow_down 10",
            "send Poll",
            "slow_down 15",
            "send Poll",
            "error expired"
        ]
    );
    // A named interval shorter than current + 5 s loses.
    let mut f = flow(config(&["repo"], false), public());
    let run = drive(
        &mut f,
        &[
            (200, "github_code.json"),
            (200, "slow_down_short.json"),
            (200, "github_token.json"),
        ],
    );
    assert!(
        run.transcript.contains(&"slow_down 10".to_string()),
        "{:?}",
        run.transcript
    );
}

#[test]
fn google_428_pending_then_a_token() {
    let mut f = flow(config(&["openid"], false), public());
    let run = drive(
        &mut f,
        &[
            (200, "google_code.json"),
            (428, "google_pending.json"),
            (200, "google_token.json"),
        ],
    );
    assert!(run.transcript.contains(&"pending".to_string()));
    let t = run.result.unwrap();
    assert_eq!(t.refresh_token.unwrap().expose(), "1//0g-google-refresh");
}

#[test]
fn entra_pending_with_crlf_then_declined_is_a_denial() {
    let mut f = flow(config(&["openid", "User.Read"], true), public());
    let run = drive(
        &mut f,
        &[
            (200, "entra_code.json"),
            (400, "entra_pending.json"),
            (400, "entra_declined.json"),
        ],
    );
    assert_eq!(run.result, Err(Error::Denied));
    assert_eq!(run.result.unwrap_err().kind(), ErrorKind::Denied);
}

#[test]
fn codes_the_server_no_longer_knows_are_gone() {
    for (status, name, code) in [
        (400, "entra_bad_verification_code.json", "bad_verification_code"),
        (404, "dot_device_not_found.json", "device_not_found"),
    ] {
        let mut f = flow(config(&["openid"], false), public());
        let run = drive(&mut f, &[(200, "entra_code.json"), (status, name)]);
        let err = run.result.unwrap_err();
        assert_eq!(err, Error::CodeRejected { code: code.into() }, "{name}");
        assert_eq!(err.kind(), ErrorKind::Expired, "{name}");
        // Kiosk mode asks for a new code instead.
        let mut cfg = config(&["openid"], false);
        cfg.kiosk = Some(KioskPolicy::default());
        let mut f = flow(cfg, public());
        let run = drive(
            &mut f,
            &[
                (200, "entra_code.json"),
                (status, name),
                (200, "dot_code.json"),
                (200, "dot_token.json"),
            ],
        );
        assert!(run.result.is_ok(), "{name}: {:?}", run.transcript);
    }
}

#[test]
fn auth0_403_expired_and_denied() {
    let mut f = flow(config(&["openid"], false), public());
    let run = drive(&mut f, &[(200, "auth0_code.json"), (403, "auth0_expired.json")]);
    assert_eq!(run.result, Err(Error::CodeExpired));
    let mut f = flow(config(&["openid"], false), public());
    let run = drive(&mut f, &[(200, "auth0_code.json"), (403, "auth0_denied.json")]);
    assert_eq!(run.result, Err(Error::Denied));
}

#[test]
fn django_oauth_toolkit_pairs() {
    let mut f = flow(config(&["read"], false), public());
    let run = drive(
        &mut f,
        &[
            (200, "dot_code.json"),
            (400, "dot_pending.json"),
            (200, "dot_token.json"),
        ],
    );
    let t = run.result.unwrap();
    assert_eq!(t.refresh_token.unwrap().expose(), "u7yH0dotrefresh");
    assert_eq!(
        run.prompts[0].verification_uri_complete.as_deref(),
        Some("http://127.0.0.1:8000/o/device/?user_code=K7PQW2XR")
    );
    assert_eq!(
        run.sent[0].url.as_str(),
        "https://idp.example/device",
        "the endpoint as configured"
    );
}

#[test]
fn a_byte_order_mark_before_json_is_tolerated() {
    let mut bom = b"\xEF\xBB\xBF".to_vec();
    bom.extend_from_slice(&fixture("keycloak_token.json"));
    let codec::Reply::Ok(t) = codec::parse_token_for(Profile::Rfc8628, 200, &bom) else {
        panic!("a BOM made the token unreadable");
    };
    // Keycloak's default: five-minute access tokens.
    assert_eq!(t.expires_in, Duration::from_secs(300));
    assert!(t.refresh_token.is_some());
}

// ---------------------------------------------------------------------------------------------
// Errors at the device authorization endpoint

#[test]
fn invalid_scope_is_a_configuration_error_naming_offline_access() {
    let mut f = flow(config(&["openid"], true), public());
    let run = drive(&mut f, &[(400, "google_invalid_scope.json")]);
    let err = run.result.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    let Error::InvalidScope {
        scope, offline_added, ..
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(scope, "openid offline_access");
    assert!(offline_added);
    assert!(err.to_string().contains("openid offline_access"), "{err}");
    // Asked for by the user: not "added".
    let mut f = flow(config(&["openid", "offline_access"], true), public());
    let run = drive(&mut f, &[(400, "google_invalid_scope.json")]);
    assert!(matches!(
        run.result,
        Err(Error::InvalidScope {
            offline_added: false,
            ..
        })
    ));
}

#[test]
fn a_client_not_allowed_the_device_grant_is_rejected_and_told_why() {
    let mut f = flow(config(&["repo"], false), public());
    let run = drive(&mut f, &[(400, "github_unauthorized_client.json")]);
    let err = run.result.unwrap_err();
    assert!(matches!(err, Error::GrantNotAllowed { .. }), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::ClientRejected);
    assert!(err.to_string().contains("device authorization grant"), "{err}");
    let mut f = flow(config(&["repo"], false), public());
    let run = drive(&mut f, &[(400, "dot_unsupported_grant_type.json")]);
    assert_eq!(run.result.unwrap_err().kind(), ErrorKind::ClientRejected);
}

#[test]
fn a_standard_invalid_client_speaks_no_zoho() {
    let mut f = flow(config(&["openid"], false), public());
    let run = drive(&mut f, &[(401, "invalid_client.json")]);
    let err = run.result.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ClientRejected);
    let text = err.to_string();
    assert!(!text.contains("data centre") && !text.contains("Zoho"), "{text}");
    assert!(text.contains("https://idp.example"), "{text}");
}

#[test]
fn unknown_errors_are_sanitised() {
    let mut f = flow(config(&["openid"], false), public());
    let run = drive(&mut f, &[(200, "entra_code.json"), (400, "unknown_error.json")]);
    let err = run.result.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Other);
    let text = err.to_string();
    assert!(
        !text.contains('\x1b') && !text.contains('\r') && !text.contains('\n'),
        "{text:?}"
    );
    assert!(
        text.contains("tenant_blocked") && text.contains("AADSTS53003"),
        "{text}"
    );
}

// ---------------------------------------------------------------------------------------------
// Client authentication

#[test]
fn auto_retries_once_with_basic_on_401_invalid_client_and_keeps_it() {
    let mut f = flow(config(&["openid"], false), confidential());
    let run = drive(
        &mut f,
        &[
            (401, "invalid_client.json"),
            (200, "keycloak_code.json"),
            (400, "dot_pending.json"),
            (200, "keycloak_token.json"),
        ],
    );
    assert!(run.result.is_ok(), "{:?}", run.transcript);
    let first = &run.sent[0];
    assert!(first.authorization.is_none());
    assert!(body(first).contains("client_secret=s3cr%3At%2F%2B"), "{}", body(first));
    for req in &run.sent[1..] {
        // RFC 6749 §2.3.1: both parts form-encoded, then base64 of "id:secret".
        assert_eq!(
            req.authorization.as_deref(),
            Some("Basic ZGV2aWNlK2NsaWVudDpzM2NyJTNBdCUyRiUyQg=="),
            "{req:?}"
        );
        let b = body(req);
        assert!(!b.contains("client_secret"), "{b}");
        assert!(b.contains("client_id=device+client"), "{b}");
    }
    assert_eq!(f.client_auth(), ClientAuth::Basic);
    // Debug never shows the header.
    assert!(!format!("{:?}", run.sent[1]).contains("ZGV2"));
}

#[test]
fn a_second_invalid_client_is_final_and_post_is_never_retried() {
    let mut f = flow(config(&["openid"], false), confidential());
    let run = drive(&mut f, &[(401, "invalid_client.json"), (401, "invalid_client.json")]);
    assert_eq!(run.sent.len(), 2);
    assert_eq!(run.result.unwrap_err().kind(), ErrorKind::ClientRejected);
    let mut cfg = config(&["openid"], false);
    cfg.client_auth = ClientAuth::Post;
    let mut f = flow(cfg, confidential());
    let run = drive(&mut f, &[(401, "invalid_client.json")]);
    assert_eq!(run.sent.len(), 1);
    // A public client has no secret to send another way.
    let mut f = flow(config(&["openid"], false), public());
    let run = drive(&mut f, &[(401, "invalid_client.json")]);
    assert_eq!(run.sent.len(), 1);
}

#[test]
fn zoho_keeps_the_form_body() {
    let req = codec::poll_request(
        Profile::Zoho,
        zoho_device_core::ServerUrl::parse("https://accounts.zoho.com/oauth/v3/device/token").unwrap(),
        &confidential(),
        &DeviceCode::new("dc"),
        ClientAuth::Basic,
    );
    assert!(req.authorization.is_none());
    assert!(body(&req).contains("client_secret="));
}

/// A clock for the blocking driver that never sleeps.
struct Instant0(u64);
impl Clock for Instant0 {
    fn now(&mut self) -> Timestamp {
        Timestamp::from_millis(self.0)
    }
    fn sleep_until(&mut self, deadline: Timestamp) {
        self.0 = self.0.max(deadline.as_millis());
    }
}

fn stored_tokens() -> Tokens {
    Tokens {
        access_token: AccessToken::new("old"),
        refresh_token: Some(RefreshToken::new("refresh-1")),
        api_domain: None,
        accounts_url: None,
        location: None,
        scope: Some("read".into()),
        token_type: "Bearer".into(),
        expires_at: Timestamp::ZERO,
    }
}

#[test]
fn refresh_and_revoke_retry_once_with_basic() {
    let endpoint = TokenEndpoint::standard(
        &url("http://127.0.0.1:8000/o/token/"),
        Some(&url("http://127.0.0.1:8000/o/revoke_token/")),
    );
    let mut seen: Vec<HttpRequest> = Vec::new();
    let mut replies: VecDeque<(u16, Vec<u8>)> = vec![
        (401, fixture("invalid_client.json")),
        (200, fixture("dot_token.json")),
        (401, fixture("invalid_client.json")),
        (200, Vec::new()),
    ]
    .into();
    let mut transport = |req: &HttpRequest| {
        seen.push(req.clone());
        let (status, body) = replies.pop_front().unwrap();
        Ok(HttpResponse { status, body })
    };
    let mut backoff = Backoff::new(Duration::from_millis(1), Duration::from_millis(2), 1);
    let fresh = blocking::refresh(
        &endpoint,
        &confidential(),
        &stored_tokens(),
        &mut transport,
        &mut Instant0(0),
        3,
        &mut backoff,
    )
    .unwrap();
    // django-oauth-toolkit rotates refresh tokens: the new one is kept.
    assert_eq!(fresh.refresh_token.unwrap().expose(), "u7yH0dotrefresh");
    assert!(
        blocking::revoke(
            &endpoint,
            &confidential(),
            &stored_tokens(),
            &mut transport,
            &mut Instant0(0),
            3,
            &mut backoff
        )
        .unwrap()
    );
    let auth: Vec<bool> = seen.iter().map(|r| r.authorization.is_some()).collect();
    assert_eq!(auth, [false, true, false, true]);
    // With Basic configured, the first request already uses it.
    let basic = endpoint.clone().with_client_auth(ClientAuth::Basic);
    let req = basic.refresh_request(&confidential(), &RefreshToken::new("r"));
    assert!(req.authorization.is_some() && !body(&req).contains("client_secret"));
}

// ---------------------------------------------------------------------------------------------
// Redirects

#[test]
fn a_redirect_answered_to_a_post_names_the_new_url() {
    let req = codec::poll_request(
        Profile::Rfc8628,
        zoho_device_core::ServerUrl::parse("http://127.0.0.1:8000/o/token").unwrap(),
        &public(),
        &DeviceCode::new("dc"),
        ClientAuth::Auto,
    );
    let err = blocking::redirect_error(&req, 301, Some("/o/token/")).unwrap();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(
        err.to_string().contains("the server moved /o/token to /o/token/"),
        "{err}"
    );
    let err = blocking::redirect_error(&req, 308, Some("https://idp.example/o/token/")).unwrap();
    assert!(
        err.to_string()
            .contains("moved http://127.0.0.1:8000/o/token to https://idp.example/o/token/"),
        "{err}"
    );
    assert!(blocking::redirect_error(&req, 200, None).is_none());
    assert!(blocking::redirect_error(&req, 400, None).is_none());
    // The blocking driver ends the flow at once instead of retrying an unreachable server.
    let mut f = flow(config(&["openid"], false), public());
    let mut transport = |_: &HttpRequest| {
        Ok(HttpResponse {
            status: 301,
            body: Vec::new(),
        })
    };
    let err = blocking::run(&mut f, &mut transport, &mut Instant0(0), |_| {
        core::ops::ControlFlow::Continue(())
    })
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
}
