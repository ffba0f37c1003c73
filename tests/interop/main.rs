//! Interoperability: `zoho-device --profile rfc8628` against an authorization server nobody on
//! this project wrote — oidc-provider (OpenID Certified), pinned in `package-lock.json` and
//! configured by `server.mjs` beside this file.
//!
//! Each test starts its own provider on 127.0.0.1, runs the built binary in a clean
//! environment, and plays the user with an HTTP client and a cookie jar: the provider's
//! verification page, its login form and its consent form, exactly as a browser would post
//! them. The packages are installed with `npm ci` when `node_modules` is missing.
//!
//! Without `node` on the PATH the tests print why and pass, unless `ZOHO_DEVICE_REQUIRE_NODE`
//! is set (CI sets it, so a missing Node fails there).
//!
//! A second, unrelated server — django-oauth-toolkit in Python — is driven the same way by the
//! tests in `dot.rs` (`dot_*`).

#[path = "../common/env.rs"]
mod binary_env;
mod dot;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// A public client (`token_endpoint_auth_method: none`).
const PUBLIC: &str = "zoho-device-test";
/// A confidential client (`client_secret_post`) and its secret.
const CONFIDENTIAL: &str = "zoho-device-confidential";
const CONFIDENTIAL_SECRET: &str = "interop-secret";
/// A public client whose device codes live `SHORT_DEVICE_CODE_TTL` seconds.
const SHORT_LIVED: &str = "zoho-device-short-lived";
/// Longest any single step (a command, a page, the provider starting) may take.
const STEP: Duration = Duration::from_secs(30);

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop")
}

/// Whether a server's tests can run, decided once per process by `check` (which installs what
/// is missing, or returns [`unavailable`]).
fn ready_once(cell: &Mutex<Option<bool>>, check: impl FnOnce() -> bool) -> bool {
    let mut ready = cell.lock().unwrap_or_else(|e| e.into_inner());
    *ready.get_or_insert_with(check)
}

/// A server's tests cannot run here because `missing`: they are skipped with a message, or
/// fail when the variable `require` is set (CI sets it).
fn unavailable(require: &str, missing: &str, need: &str) -> bool {
    if std::env::var_os(require).is_some() {
        panic!("{require} is set but {missing}: install {need}");
    }
    // Straight to stderr: the test harness captures eprintln!, and a skip must be seen.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: {missing}, and the interop tests against it need {need}; set {require} to fail instead"
    );
    false
}

/// Whether the tests can run: Node present and the packages installed (once per process).
fn node_ready() -> bool {
    static READY: Mutex<Option<bool>> = Mutex::new(None);
    ready_once(&READY, || {
        let node = std::process::Command::new("node").arg("--version").output();
        let Some(node) = node.ok().filter(|o| o.status.success()) else {
            return unavailable(
                "ZOHO_DEVICE_REQUIRE_NODE",
                "`node` is not on the PATH",
                "Node.js 18 or later",
            );
        };
        eprintln!("interop: node {}", String::from_utf8_lossy(&node.stdout).trim());
        let dir = interop_dir();
        if !dir.join("node_modules/oidc-provider").exists() {
            eprintln!("interop: installing the provider (npm ci in {})", dir.display());
            let status = std::process::Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                .current_dir(&dir)
                .status()
                .expect("run npm (it comes with Node.js)");
            assert!(status.success(), "npm ci failed in {}", dir.display());
        }
        true
    })
}

// ---------------------------------------------------------------------------------------------
// The servers

/// An authorization server run as a child process that prints one JSON line when it listens
/// (`node server.mjs`, `python serve.py`, both with `--exit-with-stdin`); killed when dropped.
/// Its stdout and stderr are kept as its log, printed when a test fails.
struct Server {
    name: &'static str,
    _child: Child,
    /// The JSON line it printed when ready.
    hello: Value,
    log: Arc<Mutex<String>>,
}

impl Server {
    async fn start(name: &'static str, mut command: Command) -> Server {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        let log = Arc::new(Mutex::new(String::new()));
        let mut stderr = child.stderr.take().expect("piped");
        let sink = log.clone();
        tokio::spawn(async move {
            let mut buf = vec![0; 4096];
            while let Ok(n) = stderr.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let mut stdout = BufReader::new(child.stdout.take().expect("piped")).lines();
        let line = tokio::time::timeout(STEP, stdout.next_line())
            .await
            .unwrap_or_else(|_| panic!("{name} did not start in time; its log:\n{}", log.lock().unwrap()))
            .unwrap_or_else(|e| panic!("read {name}'s stdout: {e}"))
            .unwrap_or_else(|| panic!("{name} exited; its log:\n{}", log.lock().unwrap()));
        // Keep draining stdout: servers print notices there, and a closed pipe kills them.
        let sink = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = stdout.next_line().await {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let hello = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("{name} prints where it listens as JSON ({e}): {line}"));
        Server {
            name,
            _child: child,
            hello,
            log,
        }
    }

    /// A string field of the line it printed when ready.
    fn said(&self, field: &str) -> String {
        self.hello[field]
            .as_str()
            .unwrap_or_else(|| panic!("{} said no {field}: {}", self.name, self.hello))
            .to_string()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- {} log ---\n{}", self.name, self.log.lock().unwrap());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The provider

/// oidc-provider: `node server.mjs` on a free loopback port.
struct Provider {
    issuer: String,
    _server: Server,
}

impl Provider {
    async fn start() -> Provider {
        let mut node = Command::new("node");
        node.args(["server.mjs", "0", "--exit-with-stdin"])
            .current_dir(interop_dir())
            .env("SHORT_DEVICE_CODE_TTL", "2");
        let server = Server::start("the provider", node).await;
        Provider {
            issuer: server.said("issuer"),
            _server: server,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }
}

// ---------------------------------------------------------------------------------------------
// The device: the built binary in a clean environment

struct Device {
    home: tempfile::TempDir,
    env: BTreeMap<String, String>,
    args: Vec<String>,
}

/// A finished command.
#[derive(Debug)]
struct Output {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Device {
    /// A device whose every command gets `args` (profile, server, client) and its token file.
    fn new(args: &[&str]) -> Device {
        let home = tempfile::tempdir().expect("temp dir");
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        all.push("--token-file".into());
        all.push(home.path().join("token.json").display().to_string());
        let env = binary_env::scrubbed_env(home.path());
        Device { home, env, args: all }
    }

    fn token_file(&self) -> PathBuf {
        self.home.path().join("token.json")
    }

    fn command(&self, sub: &[&str]) -> Command {
        let mut cmd = Command::from(binary_env::command_in(binary_env::BIN, self.home.path(), &self.env));
        cmd.args(sub).args(&self.args).kill_on_drop(true);
        cmd
    }

    async fn run(&self, sub: &[&str]) -> Output {
        let out = tokio::time::timeout(STEP, self.command(sub).output())
            .await
            .unwrap_or_else(|_| panic!("zoho-device {sub:?} did not finish in {STEP:?}"))
            .expect("run zoho-device");
        Output {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Starts `login` with JSON events and no display.
    fn login(&self) -> Login {
        let mut child = self
            .command(&["login", "--events", "json", "--display", "none"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start zoho-device login");
        let events = BufReader::new(child.stdout.take().expect("piped")).lines();
        Login {
            child,
            events,
            seen: Vec::new(),
        }
    }

    /// `zoho-device token`, asserting success: the access token.
    async fn token(&self) -> String {
        let out = self.run(&["token"]).await;
        assert_eq!(out.code, Some(0), "token: {out:?}");
        out.stdout.trim().to_string()
    }

    fn stored(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.token_file()).expect("token file")).expect("token JSON")
    }
}

/// A running `login`.
struct Login {
    child: Child,
    events: Lines<BufReader<ChildStdout>>,
    seen: Vec<Value>,
}

impl Login {
    /// The next JSON event named `name` (others are kept for [`Login::finish`]).
    async fn event(&mut self, name: &str) -> Value {
        loop {
            let line = tokio::time::timeout(STEP, self.events.next_line())
                .await
                .unwrap_or_else(|_| panic!("no {name:?} event in {STEP:?}; seen {:?}", self.seen))
                .expect("read events")
                .unwrap_or_else(|| panic!("login ended before a {name:?} event; seen {:?}", self.seen));
            let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            self.seen.push(v.clone());
            if v["event"] == name {
                return v;
            }
        }
    }

    /// Waits (at most [`STEP`]) for the exit: the code, every event, stderr.
    async fn finish(mut self) -> (Option<i32>, Vec<String>, String) {
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            match tokio::time::timeout_at(deadline, self.events.next_line()).await {
                Ok(Ok(Some(line))) => {
                    if let Ok(v) = serde_json::from_str::<Value>(&line) {
                        self.seen.push(v);
                    }
                }
                Ok(_) => break,
                Err(_) => {
                    let _ = self.child.kill().await;
                    panic!("login still running after {STEP:?}; events {:?}", self.seen);
                }
            }
        }
        let mut stderr = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut stderr).await;
        }
        let status = tokio::time::timeout(STEP, self.child.wait())
            .await
            .expect("login exits")
            .expect("wait for login");
        let names = self
            .seen
            .iter()
            .map(|v| v["event"].as_str().unwrap_or_default().to_string())
            .collect();
        (status.code(), names, stderr)
    }
}

/// A client for the test's own requests: no proxies; rustls needs its crypto provider
/// installed (the workspace's reqwest brings TLS without one).
fn http() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().no_proxy().timeout(STEP)
}

// ---------------------------------------------------------------------------------------------
// The user: the provider's own pages, driven like a browser without JavaScript

struct User {
    http: reqwest::Client,
}

/// The page a user sees: where it came from and its HTML.
struct Page {
    url: reqwest::Url,
    html: String,
}

impl Page {
    /// The `value` of the input named `name`.
    fn input(&self, name: &str) -> String {
        let needle = format!("name=\"{name}\"");
        self.html
            .split("<input")
            .skip(1)
            .map(|tag| &tag[..tag.find('>').unwrap_or(tag.len())])
            .find(|tag| tag.contains(&needle))
            .and_then(|tag| attribute(tag, "value"))
            .unwrap_or_else(|| panic!("no input {name:?} on {}:\n{}", self.url, self.html))
    }

    /// The absolute URL of the first form's action.
    fn action(&self) -> reqwest::Url {
        let form = self
            .html
            .split("<form")
            .nth(1)
            .unwrap_or_else(|| panic!("no form on {}:\n{}", self.url, self.html));
        let action = attribute(&form[..form.find('>').unwrap_or(form.len())], "action").expect("form action");
        self.url.join(&action).expect("action URL")
    }

    #[track_caller]
    fn assert_contains(&self, text: &str) {
        assert!(self.html.contains(text), "{} lacks {text:?}:\n{}", self.url, self.html);
    }
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let end = start + tag[start..].find('"')?;
    Some(
        tag[start..end]
            .replace("&#x2F;", "/")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

impl User {
    fn new() -> User {
        User {
            http: http().cookie_store(true).build().expect("HTTP client"),
        }
    }

    async fn page(&self, req: reqwest::RequestBuilder) -> Page {
        let resp = req.send().await.expect("the provider answers");
        let url = resp.url().clone();
        let status = resp.status();
        let html = resp.text().await.expect("page body");
        assert!(status.is_success(), "{url}: HTTP {status}:\n{html}");
        Page { url, html }
    }

    async fn get(&self, url: &str) -> Page {
        self.page(self.http.get(url)).await
    }

    async fn post(&self, url: reqwest::Url, form: &[(&str, &str)]) -> Page {
        self.page(self.http.post(url).form(form)).await
    }

    /// Opens the code the device shows: by scanning the QR (`verification_uri_complete`) or by
    /// typing the code at `verification_uri`. Returns the "Confirm Device" page.
    async fn open_code(&self, code: &Value, scan: bool) -> Page {
        let user_code = code["user_code"].as_str().expect("user_code");
        let entry = if scan {
            // The page auto-submits the code with JavaScript; post its form instead.
            self.get(
                code["verification_uri_complete"]
                    .as_str()
                    .expect("verification_uri_complete"),
            )
            .await
        } else {
            self.get(code["verification_url"].as_str().expect("verification_url"))
                .await
        };
        let xsrf = entry.input("xsrf");
        let confirm = self
            .post(entry.action(), &[("xsrf", &xsrf), ("user_code", user_code)])
            .await;
        confirm.assert_contains("Confirm Device");
        confirm
    }

    /// Confirms the device, signs in as `login`, and lands on the consent page.
    async fn sign_in(&self, confirm: &Page, login: &str) -> Page {
        let form = [
            ("xsrf", confirm.input("xsrf")),
            ("user_code", confirm.input("user_code")),
            ("confirm", "yes".to_string()),
        ];
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let sign_in = self.post(confirm.action(), &form).await;
        sign_in.assert_contains("name=\"login\"");
        let consent = self
            .post(
                sign_in.action(),
                &[("prompt", "login"), ("login", login), ("password", "anything")],
            )
            .await;
        consent.assert_contains("value=\"consent\"");
        consent
    }

    /// Everything a person does to approve the device.
    async fn approve(&self, code: &Value, login: &str, scan: bool) {
        let confirm = self.open_code(code, scan).await;
        let consent = self.sign_in(&confirm, login).await;
        let done = self.post(consent.action(), &[("prompt", "consent")]).await;
        done.assert_contains("Sign-in Success");
    }

    /// Signs in, then aborts at the consent page (the provider's "cancel").
    async fn deny_at_consent(&self, code: &Value, login: &str) {
        let confirm = self.open_code(code, false).await;
        let consent = self.sign_in(&confirm, login).await;
        let abort = format!("{}/abort", consent.action().as_str().trim_end_matches('/'));
        let done = self.get(&abort).await;
        done.assert_contains("interrupted");
    }

    /// Presses "[ Abort ]" on the "Confirm Device" page.
    async fn abort_on_confirm_page(&self, code: &Value) {
        let confirm = self.open_code(code, false).await;
        let form = [
            ("xsrf", confirm.input("xsrf")),
            ("user_code", confirm.input("user_code")),
            ("abort", "yes".to_string()),
        ];
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let resp = self
            .http
            .post(confirm.action())
            .form(&form)
            .send()
            .await
            .expect("abort");
        let html = resp.text().await.expect("abort page");
        assert!(html.contains("interrupted"), "abort page:\n{html}");
    }
}

// ---------------------------------------------------------------------------------------------
// What the resource side sees

/// `GET url` with the access token: the HTTP status and the JSON body.
async fn bearer_get(url: &str, access_token: &str) -> (u16, Value) {
    let resp = http()
        .build()
        .expect("HTTP client")
        .get(url)
        .bearer_auth(access_token)
        .send()
        .await
        .expect("the resource answers");
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// The status of a refresh-token grant at `token_url` (after revocation: refused).
async fn refresh_grant_status(token_url: &str, refresh_token: &str, client_id: &str) -> u16 {
    http()
        .build()
        .expect("HTTP client")
        .post(token_url)
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", client_id),
        ])
        .send()
        .await
        .expect("token endpoint")
        .status()
        .as_u16()
}

/// `GET /me` with the access token: the HTTP status and the JSON claims.
async fn userinfo(p: &Provider, access_token: &str) -> (u16, Value) {
    bearer_get(&p.url("/me"), access_token).await
}

/// RFC 7662 introspection, authenticated as the confidential client.
async fn introspect(p: &Provider, token: &str) -> Value {
    let body = http()
        .build()
        .expect("HTTP client")
        .post(p.url("/token/introspection"))
        .form(&[
            ("token", token),
            ("client_id", CONFIDENTIAL),
            ("client_secret", CONFIDENTIAL_SECRET),
        ])
        .send()
        .await
        .expect("introspection")
        .text()
        .await
        .expect("introspection body");
    serde_json::from_str(&body).expect("introspection JSON")
}

// ---------------------------------------------------------------------------------------------
// The tests

/// The whole life of a public client: discovery, pairing by QR, a working token, refresh,
/// revocation.
#[tokio::test]
async fn public_client_pairs_refreshes_and_revokes() {
    if !node_ready() {
        return;
    }
    let p = Provider::start().await;
    let device = Device::new(&["--profile", "rfc8628", "--issuer", &p.issuer, "--client-id", PUBLIC]);

    let mut login = device.login();
    let code = login.event("code").await;
    assert_eq!(code["verification_url"], p.url("/device"));
    assert_eq!(code["interval_s"], 5.0, "no interval from the server: RFC 8628's 5 s");
    User::new().approve(&code, "ada", true).await;
    let (exit, events, stderr) = login.finish().await;
    assert_eq!(exit, Some(0), "login: events {events:?}, stderr:\n{stderr}");
    assert!(events.contains(&"authorized".to_string()), "{events:?}");

    let stored = device.stored();
    assert_eq!(stored["profile"], "rfc8628");
    assert_eq!(stored["token_url"], p.url("/token"), "discovered");
    assert_eq!(stored["revocation_url"], p.url("/token/revocation"), "discovered");
    let scope = stored["scope"].as_str().unwrap_or_default();
    assert!(
        scope.contains("openid") && scope.contains("offline_access"),
        "scope {scope:?}"
    );
    let first_refresh = stored["refresh_token"].as_str().expect("a refresh token").to_string();

    let first = device.token().await;
    let (status, claims) = userinfo(&p, &first).await;
    assert_eq!(status, 200, "{claims}");
    assert_eq!(claims["sub"], "ada");

    let out = device.run(&["refresh"]).await;
    assert_eq!(out.code, Some(0), "refresh: {out:?}");
    let second = device.token().await;
    assert_ne!(second, first, "refresh yields a new access token");
    assert_eq!(userinfo(&p, &second).await.0, 200);
    let rotated = device.stored()["refresh_token"]
        .as_str()
        .expect("refresh token")
        .to_string();
    assert_ne!(
        rotated, first_refresh,
        "oidc-provider rotates public clients' refresh tokens"
    );

    let out = device.run(&["doctor", "--json"]).await;
    assert_eq!(out.code, Some(0), "doctor: {out:?}");
    let findings: Value = serde_json::from_str(&out.stdout).expect("doctor JSON");
    let findings = findings.as_array().expect("findings");
    assert!(
        findings.iter().any(|x| x["check"] == "discovery" && x["level"] == "ok"),
        "{findings:?}"
    );
    assert!(!findings.iter().any(|x| x["level"] == "fail"), "{findings:?}");

    let out = device.run(&["status", "--json"]).await;
    assert_eq!(out.code, Some(0), "status: {out:?}");
    assert!(!out.stdout.contains(&second), "status never prints the token");

    let out = device.run(&["logout"]).await;
    assert_eq!(out.code, Some(0), "logout: {out:?}");
    assert!(out.stderr.contains("Revoked"), "{out:?}");
    assert!(!device.token_file().exists());
    assert_eq!(
        userinfo(&p, &second).await.0,
        401,
        "revoking the refresh token ends the grant"
    );
    let reuse = refresh_grant_status(&p.url("/token"), &rotated, PUBLIC).await;
    assert_eq!(reuse, 400, "the revoked refresh token is refused");

    let out = device.run(&["token"]).await;
    assert_eq!(out.code, Some(6), "not paired after logout: {out:?}");
}

/// A confidential client configured in the config file (`profile`, `issuer`,
/// `client_secret_file`), with the code typed in; the token checked by introspection.
#[tokio::test]
async fn confidential_client_from_the_config_file() {
    if !node_ready() {
        return;
    }
    let p = Provider::start().await;
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, format!("{CONFIDENTIAL_SECRET}\n")).unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "profile = \"rfc8628\"\nissuer = \"{}\"\nclient_id = \"{CONFIDENTIAL}\"\nclient_secret_file = \"{}\"\nscope = \"openid\"\n",
            p.issuer,
            secret.display()
        ),
    )
    .unwrap();
    let device = Device::new(&["--config", config.to_str().unwrap()]);

    let mut login = device.login();
    let code = login.event("code").await;
    User::new().approve(&code, "grace", false).await;
    let (exit, events, stderr) = login.finish().await;
    assert_eq!(exit, Some(0), "login: events {events:?}, stderr:\n{stderr}");
    assert!(!stderr.contains(CONFIDENTIAL_SECRET), "the secret never shows");

    let access = device.token().await;
    let info = introspect(&p, &access).await;
    assert_eq!(info["active"], true, "{info}");
    assert_eq!(info["client_id"], CONFIDENTIAL, "{info}");
    assert_eq!(info["sub"], "grace", "{info}");

    let out = device.run(&["refresh"]).await;
    assert_eq!(out.code, Some(0), "refresh: {out:?}");
    let fresh = device.token().await;
    assert_ne!(fresh, access);
    assert_eq!(introspect(&p, &fresh).await["active"], true);

    let out = device.run(&["logout"]).await;
    assert_eq!(out.code, Some(0), "logout: {out:?}");
    assert!(out.stderr.contains("Revoked"), "{out:?}");
    assert_eq!(introspect(&p, &fresh).await["active"], false, "revoked with the grant");
}

/// Denied at the consent page, with explicit endpoints (no discovery): exit 3.
#[tokio::test]
async fn denial_at_consent_exits_3() {
    if !node_ready() {
        return;
    }
    let p = Provider::start().await;
    let device = Device::new(&[
        "--profile",
        "rfc8628",
        "--device-authorization-url",
        &p.url("/device/auth"),
        "--token-url",
        &p.url("/token"),
        "--client-id",
        PUBLIC,
    ]);
    let mut login = device.login();
    let code = login.event("code").await;
    User::new().deny_at_consent(&code, "mallory").await;
    let (exit, events, stderr) = login.finish().await;
    assert_eq!(exit, Some(3), "events {events:?}, stderr:\n{stderr}");
    assert!(events.contains(&"denied".to_string()), "{events:?}");
    assert!(!device.token_file().exists());
}

/// "[ Abort ]" on the provider's "Confirm Device" page: exit 3.
#[tokio::test]
async fn abort_on_the_confirm_page_exits_3() {
    if !node_ready() {
        return;
    }
    let p = Provider::start().await;
    let device = Device::new(&["--profile", "rfc8628", "--issuer", &p.issuer, "--client-id", PUBLIC]);
    let mut login = device.login();
    let code = login.event("code").await;
    User::new().abort_on_confirm_page(&code).await;
    let (exit, events, stderr) = login.finish().await;
    assert_eq!(exit, Some(3), "events {events:?}, stderr:\n{stderr}");
}

/// Nobody approves a code that lives 2 s: exit 4.
#[tokio::test]
async fn expiry_exits_4() {
    if !node_ready() {
        return;
    }
    let p = Provider::start().await;
    let device = Device::new(&[
        "--profile",
        "rfc8628",
        "--issuer",
        &p.issuer,
        "--client-id",
        SHORT_LIVED,
    ]);
    let mut login = device.login();
    let code = login.event("code").await;
    assert_eq!(code["expires_in_s"], 2, "{code}");
    let (exit, events, stderr) = login.finish().await;
    assert_eq!(exit, Some(4), "events {events:?}, stderr:\n{stderr}");
    assert!(events.contains(&"expired".to_string()), "{events:?}");
}

/// Discovery failures: an issuer with no document is a configuration error (2); an
/// unreachable one is unavailable (7).
#[tokio::test]
async fn discovery_errors() {
    if !node_ready() {
        return;
    }
    let p = Provider::start().await;
    let device = Device::new(&[
        "--profile",
        "rfc8628",
        "--issuer",
        &p.url("/nowhere"),
        "--client-id",
        PUBLIC,
    ]);
    let out = device.run(&["login", "--display", "none"]).await;
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("no discovery document"), "{out:?}");

    let (_held, gone) = binary_env::refusing_url();
    let device = Device::new(&["--profile", "rfc8628", "--issuer", &gone, "--client-id", PUBLIC]);
    let out = device.run(&["login", "--display", "none"]).await;
    assert_eq!(out.code, Some(7), "{out:?}");
    assert!(out.stderr.contains("cannot reach the issuer"), "{out:?}");
}
