//! A minimal HTTP client for talking to the simulator, and pairing shorthands.

use serde_json::Value;
use zoho_device_sim::{SimConfig, Simulator};

pub const CLIENT: &str = "1004.SIMCLIENT";
pub const SECRET: &str = "sim-secret";
pub const SCOPE: &str = "ZohoBooks.settings.READ,ZohoBooks.contacts.READ";

/// A reply: status and raw body.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub text: String,
}

impl Resp {
    /// The body as JSON; panics (failing the test) when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }

    /// The `error` field of a JSON body, if any.
    pub fn error(&self) -> Option<String> {
        self.json()["error"].as_str().map(str::to_owned)
    }
}

/// A plain-HTTP client. In a workspace build reqwest's TLS support is unified in (rustls without
/// a built-in provider), and building a client then needs a process-wide crypto provider.
pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().no_proxy().build().unwrap()
}

pub async fn post(url: &str, form: &[(&str, &str)]) -> Resp {
    let r = client().post(url).form(form).send().await.unwrap();
    let status = r.status().as_u16();
    Resp {
        status,
        text: r.text().await.unwrap(),
    }
}

pub async fn get(url: &str, authorization: Option<&str>) -> Resp {
    let mut req = client().get(url);
    if let Some(a) = authorization {
        req = req.header("Authorization", a);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    Resp {
        status,
        text: r.text().await.unwrap(),
    }
}

/// Defaults with a 1 ms interval, for tests that do not exercise `slow_down`.
pub fn fast() -> SimConfig {
    SimConfig::default().interval_ms(1)
}

/// `POST {base}/oauth/v3/device/code` with offline access and consent, as a form body.
pub async fn device_code(base: &str, client_id: &str) -> Resp {
    post(
        &format!("{base}/oauth/v3/device/code"),
        &[
            ("client_id", client_id),
            ("grant_type", "device_request"),
            ("scope", SCOPE),
            ("access_type", "offline"),
            ("prompt", "consent"),
        ],
    )
    .await
}

/// Issues a code at `base` and returns (user_code, device_code).
pub async fn new_code(base: &str) -> (String, String) {
    let r = device_code(base, CLIENT).await.json();
    (
        r["user_code"].as_str().unwrap().to_owned(),
        r["device_code"].as_str().unwrap().to_owned(),
    )
}

/// One poll of `code` at `base` with the default client.
pub async fn poll(base: &str, code: &str) -> Resp {
    poll_as(base, CLIENT, SECRET, code).await
}

pub async fn poll_as(base: &str, client_id: &str, secret: &str, code: &str) -> Resp {
    post(
        &format!("{base}/oauth/v3/device/token"),
        &[
            ("client_id", client_id),
            ("client_secret", secret),
            ("grant_type", "device_token"),
            ("code", code),
        ],
    )
    .await
}

/// A whole pairing at the `us` DC, approved programmatically; returns the token reply.
pub async fn pair(sim: &Simulator) -> Value {
    let us = sim.accounts_url("us");
    let (user_code, code) = new_code(&us).await;
    assert!(sim.approve(&user_code));
    let r = poll(&us, &code).await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert!(v["access_token"].is_string(), "no token: {v}");
    v
}

/// `POST {base}/oauth/v2/token` with grant_type=refresh_token.
pub async fn refresh(base: &str, refresh_token: &str) -> Resp {
    post(
        &format!("{base}/oauth/v2/token"),
        &[
            ("client_id", CLIENT),
            ("client_secret", SECRET),
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ],
    )
    .await
}

/// `GET {base}/books/v3/organizations` with a Zoho-oauthtoken header.
pub async fn orgs(base: &str, access_token: &str) -> Resp {
    get(
        &format!("{base}/books/v3/organizations"),
        Some(&format!("Zoho-oauthtoken {access_token}")),
    )
    .await
}

pub fn s(v: &Value) -> String {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}")).to_owned()
}
