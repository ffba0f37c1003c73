//! The second independent server: django-oauth-toolkit (Python, PyPI), configured by
//! `django/` beside this file and served by `django/serve.py` on 127.0.0.1 with its own,
//! unmodified URLs — every endpoint ends in `/`.
//!
//! What it checks that oidc-provider cannot: trailing slashes kept, a redirect to a POST
//! reported as the configuration error it is, the RFC 8414 document completing the OpenID
//! one (revocation endpoint, authentication methods), no `offline_access` asked of a server
//! that does not list it, a 404 `device_not_found`, and refresh-token rotation.
//!
//! The person is played through django-oauth-toolkit's own pages: the login page (Django's),
//! the code entry page and the accept/deny page, with a cookie jar and CSRF tokens, as a
//! browser without JavaScript would.
//!
//! The server runs from the virtual environment `django/.venv` (`python3 -m venv`, then
//! `pip install -r requirements.txt`), created on first use when `python3` is on the PATH.
//! Without Python the tests print why and pass, unless `ZOHO_DEVICE_REQUIRE_DJANGO` is set (CI
//! sets it, so a missing server fails there).

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Mutex;

use serde_json::Value;
use tokio::process::Command;

use super::{Device, Page, Server, User, bearer_get, interop_dir, ready_once, refresh_grant_status, unavailable};

const PUBLIC: &str = "zoho-device-public";
const CONFIDENTIAL: &str = "zoho-device-confidential";
const CONFIDENTIAL_SECRET: &str = "interop-secret";
const PASSWORD: &str = "interop-password";

fn django_dir() -> PathBuf {
    interop_dir().join("django")
}

fn venv_python() -> PathBuf {
    django_dir().join(".venv/bin/python")
}

/// Whether the tests can run: the virtual environment with django-oauth-toolkit, made once per
/// process when missing. Without `python3`: skipped, or a failure under
/// `ZOHO_DEVICE_REQUIRE_DJANGO`.
fn django_ready() -> bool {
    static READY: Mutex<Option<bool>> = Mutex::new(None);
    ready_once(&READY, || {
        let imports = || {
            std::process::Command::new(venv_python())
                .args(["-c", "import oauth2_provider, django"])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if imports() {
            return true;
        }
        let python = std::process::Command::new("python3").arg("--version").output();
        if !python.is_ok_and(|o| o.status.success()) {
            return unavailable(
                "ZOHO_DEVICE_REQUIRE_DJANGO",
                "`python3` is not on the PATH",
                "Python 3.10 or later (with venv)",
            );
        }
        eprintln!(
            "interop: installing django-oauth-toolkit into {}",
            django_dir().join(".venv").display()
        );
        let venv = std::process::Command::new("python3")
            .args(["-m", "venv", ".venv"])
            .current_dir(django_dir())
            .status()
            .expect("run python3 -m venv");
        assert!(venv.success(), "python3 -m venv failed in {}", django_dir().display());
        let pip = std::process::Command::new(django_dir().join(".venv/bin/pip"))
            .args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
                "requirements.txt",
            ])
            .current_dir(django_dir())
            .status()
            .expect("run pip");
        assert!(
            pip.success(),
            "pip install -r requirements.txt failed in {}",
            django_dir().display()
        );
        assert!(imports(), "django-oauth-toolkit does not import after installing it");
        true
    })
}

/// django-oauth-toolkit: `python serve.py` on a free loopback port.
struct Dot {
    origin: String,
    _server: Server,
    /// The server's database and key; removed when dropped, after the server (killed, so it
    /// cannot clean up after itself).
    _data: tempfile::TempDir,
}

impl Dot {
    async fn start(code_ttl: u32) -> Dot {
        let data = tempfile::Builder::new()
            .prefix("dot-interop-")
            .tempdir()
            .expect("a temporary directory");
        let mut python = Command::new(venv_python());
        python
            .args(["serve.py", "0", "--exit-with-stdin"])
            .current_dir(django_dir())
            .env("DOT_DATA_DIR", data.path())
            .env("DEVICE_CODE_TTL", code_ttl.to_string())
            .env("PYTHONDONTWRITEBYTECODE", "1");
        let server = Server::start("django-oauth-toolkit", python).await;
        Dot {
            origin: server.said("origin"),
            _server: server,
            _data: data,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }

    /// The issuer both metadata documents name.
    fn issuer(&self) -> String {
        self.url("/o")
    }
}

/// The value of the form input named `name` (Django's `csrfmiddlewaretoken`, …).
fn input(page: &Page, name: &str) -> String {
    page.input(name)
}

impl User {
    /// Signs in on Django's login page (reached by a redirect from a protected page).
    async fn dot_sign_in(&self, page: Page, name: &str) -> Page {
        page.assert_contains("Sign in");
        let csrf = input(&page, "csrfmiddlewaretoken");
        let next = input(&page, "next");
        self.post(
            page.url.clone(),
            &[
                ("csrfmiddlewaretoken", csrf.as_str()),
                ("username", name),
                ("password", PASSWORD),
                ("next", next.as_str()),
            ],
        )
        .await
    }

    /// Opens the code as the person would (the QR's complete URI, or the page and the code
    /// typed in), signs in, submits the code: the accept/deny page.
    async fn dot_open(&self, code: &Value, name: &str, scan: bool) -> Page {
        let user_code = code["user_code"].as_str().expect("user_code");
        let start = if scan {
            code["verification_uri_complete"]
                .as_str()
                .expect("verification_uri_complete")
        } else {
            code["verification_url"].as_str().expect("verification_url")
        };
        let login = self.get(start).await;
        let entry = self.dot_sign_in(login, name).await;
        entry.assert_contains("Enter code displayed on device");
        if scan {
            assert_eq!(input(&entry, "user_code"), user_code, "the QR fills the code in");
        }
        let csrf = input(&entry, "csrfmiddlewaretoken");
        let confirm = self
            .post(
                entry.url.clone(),
                &[("csrfmiddlewaretoken", csrf.as_str()), ("user_code", user_code)],
            )
            .await;
        confirm.assert_contains("requests access");
        confirm
    }

    /// Accepts (or denies) on django-oauth-toolkit's page; its status page says which.
    async fn dot_decide(&self, confirm: Page, action: &str) {
        let csrf = input(&confirm, "csrfmiddlewaretoken");
        let done = self
            .post(
                confirm.url.clone(),
                &[("csrfmiddlewaretoken", csrf.as_str()), ("action", action)],
            )
            .await;
        let expected = if action == "accept" { "Authorized" } else { "Denied" };
        done.assert_contains(expected);
    }
}

/// `GET /api/me/` with the access token: the status and who the server says it is.
async fn me(dot: &Dot, access_token: &str) -> (u16, Value) {
    bearer_get(&dot.url("/api/me/"), access_token).await
}

/// A device of the public client with its endpoints given (no discovery): the device
/// authorization endpoint at `device_authorization` and the token endpoint; scope `read`.
fn explicit_device(dot: &Dot, device_authorization: &str) -> Device {
    Device::new(&[
        "--profile",
        "rfc8628",
        "--device-authorization-url",
        &dot.url(device_authorization),
        "--token-url",
        &dot.url("/o/token/"),
        "--client-id",
        PUBLIC,
        "--scope",
        "read",
    ])
}

/// A public client, endpoints from the issuer's metadata (the device endpoint given: neither
/// document lists it): pair by QR, use the token, refresh with rotation, log out.
#[tokio::test]
async fn dot_public_client_pairs_refreshes_and_logs_out() {
    if !django_ready() {
        return;
    }
    let dot = Dot::start(1800).await;
    let device = Device::new(&[
        "--profile",
        "rfc8628",
        "--issuer",
        &dot.issuer(),
        "--device-authorization-url",
        &dot.url("/o/device-authorization/"),
        "--client-id",
        PUBLIC,
        "--scope",
        "read",
    ]);
    let mut login = device.login();
    let code = login.event("code").await;
    assert_eq!(code["verification_url"], dot.url("/o/device/"));
    let user = User::new();
    user.dot_decide(user.dot_open(&code, "ada", true).await, "accept").await;
    let (exit, events, stderr) = login.finish().await;
    assert_eq!(exit, Some(0), "login: events {events:?}, stderr:\n{stderr}");

    let stored = device.stored();
    assert_eq!(
        stored["token_url"],
        dot.url("/o/token/"),
        "kept as discovered, slash included"
    );
    assert_eq!(
        stored["revocation_url"],
        dot.url("/o/revoke_token/"),
        "the RFC 8414 document completes the OpenID one"
    );
    assert_eq!(
        stored["scope"], "read",
        "no offline_access asked of a server that does not list it"
    );
    let first_refresh = stored["refresh_token"].as_str().expect("a refresh token").to_string();

    let out = device.run(&["doctor", "--json"]).await;
    assert_eq!(out.code, Some(0), "doctor: {out:?}");
    let findings: Value = serde_json::from_str(&out.stdout).expect("doctor JSON");
    let discovery = findings
        .as_array()
        .expect("findings")
        .iter()
        .find(|x| x["check"] == "discovery")
        .unwrap_or_else(|| panic!("no discovery finding: {findings}"))
        .to_string();
    assert!(
        discovery.contains("revoke_token/") && discovery.contains("does not list it"),
        "{discovery}"
    );

    let access = device.token().await;
    let (status, body) = me(&dot, &access).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"], "ada");

    let out = device.run(&["refresh"]).await;
    assert_eq!(out.code, Some(0), "refresh: {out:?}");
    let fresh = device.token().await;
    assert_ne!(fresh, access);
    assert_eq!(me(&dot, &fresh).await.0, 200);
    let rotated = device.stored()["refresh_token"]
        .as_str()
        .expect("refresh token")
        .to_string();
    assert_ne!(rotated, first_refresh, "the rotated refresh token is stored");

    let out = device.run(&["logout"]).await;
    assert_eq!(out.code, Some(0), "logout: {out:?}");
    assert!(out.stderr.contains("Revoked"), "{out:?}");
    assert!(!device.token_file().exists());
    // RFC 7009: revoking the refresh token revokes its access token too.
    assert_eq!(
        me(&dot, &fresh).await.0,
        403,
        "the token no longer opens the protected view"
    );
    let reuse = refresh_grant_status(&dot.url("/o/token/"), &rotated, PUBLIC).await;
    assert_eq!(reuse, 400, "the revoked refresh token is refused");
}

/// A confidential client with every endpoint explicit and HTTP Basic asked for: the code
/// typed in by hand; refresh and logout authenticate the same way.
#[tokio::test]
async fn dot_confidential_client_with_basic_authentication() {
    if !django_ready() {
        return;
    }
    let dot = Dot::start(1800).await;
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, format!("{CONFIDENTIAL_SECRET}\n")).unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "profile = \"rfc8628\"\ndevice_authorization_url = \"{}\"\ntoken_url = \"{}\"\nrevocation_url = \"{}\"\nclient_id = \"{CONFIDENTIAL}\"\nclient_secret_file = \"{}\"\nscope = \"read\"\nclient_auth = \"basic\"\n",
            dot.url("/o/device-authorization/"),
            dot.url("/o/token/"),
            dot.url("/o/revoke_token/"),
            secret.display()
        ),
    )
    .unwrap();
    let device = Device::new(&["--config", config.to_str().unwrap()]);
    let mut login = device.login();
    let code = login.event("code").await;
    let user = User::new();
    user.dot_decide(user.dot_open(&code, "grace", false).await, "accept")
        .await;
    let (exit, events, stderr) = login.finish().await;
    assert_eq!(exit, Some(0), "login: events {events:?}, stderr:\n{stderr}");
    assert!(!stderr.contains(CONFIDENTIAL_SECRET), "the secret never shows");
    assert_eq!(device.stored()["client_auth"], "basic");

    let access = device.token().await;
    assert_eq!(me(&dot, &access).await.1["user"], "grace");
    let out = device.run(&["refresh"]).await;
    assert_eq!(out.code, Some(0), "refresh: {out:?}");
    let out = device.run(&["logout"]).await;
    assert_eq!(out.code, Some(0), "logout: {out:?}");
    assert!(out.stderr.contains("Revoked"), "{out:?}");
    assert_eq!(me(&dot, &access).await.0, 403);
}

/// "Deny" on django-oauth-toolkit's page: exit 3.
#[tokio::test]
async fn dot_denial_exits_3() {
    if !django_ready() {
        return;
    }
    let dot = Dot::start(1800).await;
    let device = explicit_device(&dot, "/o/device-authorization/");
    let mut login = device.login();
    let code = login.event("code").await;
    let user = User::new();
    user.dot_decide(user.dot_open(&code, "ada", false).await, "deny").await;
    let (exit, events, stderr) = login.finish().await;
    assert_eq!(exit, Some(3), "events {events:?}, stderr:\n{stderr}");
    assert!(!device.token_file().exists());
}

/// Nobody enters a code that lives 3 s: exit 4.
#[tokio::test]
async fn dot_expiry_exits_4() {
    if !django_ready() {
        return;
    }
    let dot = Dot::start(3).await;
    let device = explicit_device(&dot, "/o/device-authorization/");
    let mut login = device.login();
    let code = login.event("code").await;
    assert_eq!(code["expires_in_s"], 3, "{code}");
    let (exit, events, stderr) = login.finish().await;
    assert_eq!(exit, Some(4), "events {events:?}, stderr:\n{stderr}");
    assert!(events.contains(&"expired".to_string()), "{events:?}");
}

/// An endpoint configured without its trailing slash: Django answers 301, and the device says
/// which URL to use instead of retrying an "unreachable" server.
#[tokio::test]
async fn dot_a_missing_trailing_slash_is_named() {
    if !django_ready() {
        return;
    }
    let dot = Dot::start(1800).await;
    let device = explicit_device(&dot, "/o/device-authorization");
    let started = std::time::Instant::now();
    let out = device.run(&["login", "--display", "none"]).await;
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr
            .contains("the server moved /o/device-authorization to /o/device-authorization/"),
        "{out:?}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "no retries");
}
