//! The switches for Zoho's dialect as it varies: per-DC secrets, the name `other_dc` gives the
//! location, HTTP 400 for OAuth errors, and legacy token lifetimes.

use std::time::Duration;

use crate::util::*;
use zoho_device_sim::{OtherDcField, SimConfig, Simulator};

/// The default client known in us and eu, the user in eu, a 1 ms interval.
fn multi_dc() -> SimConfig {
    fast()
        .client(CLIENT, SECRET, &["us", "eu"])
        .user("eu.user@example.com", "eu")
}

/// Issues a code at us, approves it as the eu user, and returns the other_dc reply and the code.
async fn other_dc(sim: &Simulator) -> (Resp, String) {
    let us = sim.accounts_url("us");
    let (user_code, code) = new_code(&us).await;
    assert!(sim.approve(&user_code));
    (poll(&us, &code).await, code)
}

#[tokio::test]
async fn a_dc_with_its_own_secret_accepts_only_that_one() {
    let sim = Simulator::spawn(multi_dc().dc_secret(CLIENT, "eu", "eu-secret")).unwrap();
    let eu = sim.accounts_url("eu");
    let (r, code) = other_dc(&sim).await;
    assert_eq!(
        r.error().as_deref(),
        Some("other_dc"),
        "us still takes the common secret"
    );
    tokio::time::sleep(Duration::from_millis(5)).await;
    let r = poll_as(&eu, CLIENT, SECRET, &code).await;
    assert_eq!(
        r.error().as_deref(),
        Some("invalid_client_secret"),
        "the us secret at eu"
    );
    tokio::time::sleep(Duration::from_millis(5)).await;
    let r = poll_as(&eu, CLIENT, "eu-secret", &code).await;
    let v = r.json();
    assert!(v["access_token"].is_string(), "{v}");
    // Refresh at eu: only eu's secret.
    let rt = s(&v["refresh_token"]);
    let r = refresh(&eu, &rt).await;
    assert_eq!(
        r.error().as_deref(),
        Some("invalid_client"),
        "Zoho's v2 endpoint: invalid_client"
    );
    let r = post(
        &format!("{eu}/oauth/v2/token"),
        &[
            ("client_id", CLIENT),
            ("client_secret", "eu-secret"),
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt),
        ],
    )
    .await;
    assert!(r.json()["access_token"].is_string(), "{}", r.text);
}

#[tokio::test]
async fn a_secret_for_a_dc_the_client_is_not_in_is_refused_at_spawn() {
    let e = Simulator::spawn(fast().dc_secret(CLIENT, "eu", "x")).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    assert!(e.to_string().contains("not registered"), "{e}");
}

#[tokio::test]
async fn other_dc_names_the_location_as_configured() {
    for (field, want_user_location, want_dc) in [
        (OtherDcField::UserLocation, Some("eu".to_string()), None),
        (OtherDcField::Dc, None, Some("eu".to_string())),
        (OtherDcField::Both, Some("eu".to_string()), Some("eu".to_string())),
        (OtherDcField::None, None, None),
    ] {
        let sim = Simulator::spawn(multi_dc().other_dc_field(field)).unwrap();
        let (r, _) = other_dc(&sim).await;
        let v = r.json();
        assert_eq!(v["error"], "other_dc", "{field:?}");
        assert_eq!(
            v["user_location"].as_str().map(str::to_owned),
            want_user_location,
            "{field:?}: {v}"
        );
        assert_eq!(v["dc"].as_str().map(str::to_owned), want_dc, "{field:?}: {v}");
    }
    let sim = Simulator::spawn(multi_dc().other_dc_field(OtherDcField::AccountsUrl)).unwrap();
    let (r, _) = other_dc(&sim).await;
    assert_eq!(s(&r.json()["user_location"]), sim.accounts_url("eu"));
}

#[tokio::test]
async fn errors_as_400_covers_pending_denial_expiry_and_the_throttle() {
    let sim = Simulator::spawn(fast().errors_as_400(true).throttle(1, Duration::from_secs(600))).unwrap();
    let us = sim.accounts_url("us");
    let (user_code, code) = new_code(&us).await;
    let r = poll(&us, &code).await;
    assert_eq!((r.status, r.error().as_deref()), (400, Some("authorization_pending")));
    assert!(sim.deny(&user_code));
    tokio::time::sleep(Duration::from_millis(5)).await;
    let r = poll(&us, &code).await;
    assert_eq!((r.status, r.error().as_deref()), (400, Some("access_denied")));
    let (_, code) = new_code(&us).await;
    sim.expire_codes();
    let r = poll(&us, &code).await;
    assert_eq!((r.status, r.error().as_deref()), (400, Some("expired")));
    let v = pair(&sim).await;
    let rt = s(&v["refresh_token"]);
    assert_eq!(refresh(&us, &rt).await.status, 200);
    let r = refresh(&us, &rt).await;
    assert_eq!((r.status, r.error().as_deref()), (400, Some("Access Denied")));
}

#[tokio::test]
async fn legacy_expiry_sends_milliseconds_beside_expires_in_sec() {
    let sim = Simulator::spawn(fast().legacy_token_expiry(true)).unwrap();
    let v = pair(&sim).await;
    assert_eq!(
        (v["expires_in"].as_u64(), v["expires_in_sec"].as_u64()),
        (Some(3_600_000), Some(3600))
    );
    let r = refresh(&sim.accounts_url("us"), &s(&v["refresh_token"])).await.json();
    assert_eq!(
        (r["expires_in"].as_u64(), r["expires_in_sec"].as_u64()),
        (Some(3_600_000), Some(3600))
    );
    // Off (Zoho today): seconds only.
    let sim = Simulator::spawn(fast()).unwrap();
    let v = pair(&sim).await;
    assert_eq!(
        (v["expires_in"].as_u64(), v["expires_in_sec"].as_u64()),
        (Some(3600), None)
    );
}

/// Kills the child on drop, so a failing test leaves no simulator running.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_binary_has_a_flag_for_each_variant() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let child = Command::new(env!("CARGO_BIN_EXE_zoho-device-sim"))
        .args([
            "--client",
            "1004.MDC:common-secret:us,eu",
            "--dc-secret",
            "1004.MDC:eu:eu-secret",
            "--user",
            "eve@example.eu:eu",
            "--interval-ms",
            "1",
            "--auto-approve-after-polls",
            "1",
            "--other-dc-field",
            "dc",
            "--legacy-expiry",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = Child(child);
    let stdout = child.0.stdout.take().unwrap();
    let mut urls = std::collections::HashMap::new();
    for line in BufReader::new(stdout).lines().take(5) {
        let line = line.unwrap();
        if let Some((dc, rest)) = line.trim().split_once(": accounts + api_domain ") {
            urls.insert(dc.to_owned(), rest.split_whitespace().next().unwrap().to_owned());
        }
    }
    let (us, eu) = (&urls["us"], &urls["eu"]);
    let code = device_code(us, "1004.MDC").await.json();
    let code = s(&code["device_code"]);
    let r = poll_as(us, "1004.MDC", "common-secret", &code).await.json();
    assert_eq!(
        (r["error"].as_str(), r["dc"].as_str()),
        (Some("other_dc"), Some("eu")),
        "{r}"
    );
    tokio::time::sleep(Duration::from_millis(5)).await;
    let r = poll_as(eu, "1004.MDC", "common-secret", &code).await;
    assert_eq!(r.error().as_deref(), Some("invalid_client_secret"));
    tokio::time::sleep(Duration::from_millis(5)).await;
    let r = poll_as(eu, "1004.MDC", "eu-secret", &code).await.json();
    assert_eq!(r["expires_in_sec"], 3600, "{r}");
    assert_eq!(r["expires_in"], 3_600_000);
    // A bad switch value is a usage error.
    let out = Command::new(env!("CARGO_BIN_EXE_zoho-device-sim"))
        .args(["--other-dc-field", "region"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
