//! `zoho-device doctor`: the registration guide's troubleshooting table as a command.
//!
//! Each check prints a finding and, when something is wrong, the fix. Nothing printed is a
//! secret: tokens appear only as short fingerprints.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use serde_json::json;
use zoho_device_core::ClientCredentials;
use zoho_device_core::probe::{self, ClientAnswer, SecretAnswer};
use zoho_device_core::{DataCenter, HttpRequest, Profile, Purpose, ServerUrl};

use crate::app::{self, Context, ProbeResult};
use crate::clock;
use crate::exit::Exit;
use crate::settings::{DcChoice, Endpoint, SecretSource};
use crate::store::wall_now;

/// A finding's severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Fine.
    Ok,
    /// Worth knowing.
    Warn,
    /// Broken: the fix says what to do; `doctor` exits with this code (the first failure's).
    Fail(Exit),
}

/// One finding.
#[derive(Debug, Clone)]
pub struct Finding {
    /// Severity.
    pub level: Level,
    /// Which check.
    pub check: &'static str,
    /// What was found.
    pub detail: String,
    /// What to do.
    pub fix: Option<String>,
}

fn f(level: Level, check: &'static str, detail: impl Into<String>, fix: Option<&str>) -> Finding {
    Finding {
        level,
        check,
        detail: detail.into(),
        fix: fix.map(String::from),
    }
}

/// Runs every check.
pub async fn run(ctx: &Context) -> Vec<Finding> {
    let mut out = Vec::new();
    let s = &ctx.settings;
    out.push(match &s.config_path {
        Some(p) => f(Level::Ok, "config", format!("config file {}", p.display()), None),
        None => f(Level::Ok, "config", "no config file (flags and environment only)", None),
    });

    // Client ID and secret.
    let client_id = s.client_id.clone();
    match &client_id {
        None => out.push(f(Level::Fail(Exit::Usage), "client id", "no client ID configured", Some("create a \"Non-browser Application\" at https://api-console.zoho.com and set ZOHO_CLIENT_ID or --client-id"))),
        Some(id) if s.profile == Profile::Zoho && crate::commands::client_id_problem(id).is_some() => out.push(f(
            Level::Fail(Exit::Usage),
            "client id",
            format!("{id:?} cannot be a Zoho client ID: {}", crate::commands::client_id_problem(id).unwrap_or_default()),
            Some("copy the Client ID of your \"Non-browser Application\" from https://api-console.zoho.com"),
        )),
        Some(id) if s.profile == Profile::Zoho && !id.starts_with("1004.") => out.push(f(
            Level::Warn,
            "client id",
            format!("{id} does not start with 1004. as device-flow (Non-browser) clients usually do"),
            Some("check that the client type is \"Non-browser Applications\" (Self Client, Server-based and Client-based clients do not work with the device flow)"),
        )),
        Some(id) => out.push(f(Level::Ok, "client id", id.clone(), None)),
    }
    match (&s.secret_source, &s.client_secret) {
        (Some(src), Some(secret)) => {
            out.extend(secret_source_findings(None, src, secret));
        }
        _ if s.profile == Profile::Zoho && !s.dc_secrets.is_empty() => {
            let dcs: Vec<&str> = s.dc_secrets.iter().map(|d| d.dc.location()).collect();
            out.push(f(
                Level::Ok,
                "client secret",
                format!("no common secret; data centres with their own: {} (the others cannot be used)", dcs.join(", ")),
                None,
            ));
        }
        _ if s.profile == Profile::Zoho => out.push(f(Level::Fail(Exit::Usage), "client secret", "no client secret configured", Some("set ZOHO_CLIENT_SECRET, ZOHO_CLIENT_SECRET_FILE or --client-secret-file (a Client-based/JS client has no secret: create a Non-browser Application)"))),
        _ => out.push(f(Level::Ok, "client secret", "none (public client)", None)),
    }

    for d in &s.dc_secrets {
        out.extend(secret_source_findings(Some(d.dc), &d.source, &d.secret));
    }

    // Clock.
    let now_s = clock::now_s();
    if !clock::plausible(now_s) {
        out.push(f(Level::Fail(Exit::Unavailable), "clock", clock::behind(now_s), Some("the board has no real-time clock or NTP has not synchronised yet: wait for time sync (timedatectl), TLS and expiry decisions need the right date")));
    } else {
        out.push(f(
            Level::Ok,
            "clock",
            "plausible (not before this release's date)",
            None,
        ));
    }

    // A standard server named by its issuer: can its endpoints be discovered?
    if let Endpoint::Issuer { issuer, explicit } = &s.endpoint {
        out.push(match crate::discovery::endpoints(&ctx.http, issuer, explicit).await {
            Ok(e) => f(
                Level::Ok,
                "discovery",
                format!(
                    "{issuer}: device authorization {}, token {}, revocation {}; client authentication {}; offline_access {}",
                    e.device_authorization_url,
                    e.token_url,
                    e.revocation_url.as_ref().map_or("none".to_string(), |u| u.to_string()),
                    s.client_auth.or(e.client_auth).unwrap_or_default().as_str(),
                    match s.offline_access_explicit {
                        Some(true) => "asked for (configured)",
                        Some(false) => "not asked for (configured)",
                        None if e.offline_access_offered => "asked for (the server lists it)",
                        None => "not asked for (the server does not list it)",
                    }
                ),
                None,
            ),
            Err(e) => f(Level::Fail(e.exit), "discovery", e.message, e.hint.as_deref()),
        });
    }

    // Accounts server reachability and client registration.
    let mut checked_dc: Option<DataCenter> = None;
    if let (Endpoint::Zoho { dc, accounts_override }, Some(id)) = (&s.endpoint, &client_id) {
        // `--dc auto` probes as login does, also behind an override (its serverinfo lists the DCs).
        let accounts = match (dc, accounts_override) {
            (DcChoice::Auto, _) => None,
            (_, Some(u)) => Some(u.clone()),
            (DcChoice::Fixed(dc), None) => Some(dc.accounts_server()),
        };
        if let Some(accounts) = &accounts {
            out.extend(reachability(ctx, accounts).await);
            match app::probe(&ctx.http, accounts, id, &s.scopes).await {
                ProbeResult::Knows => {
                    out.push(f(Level::Ok, "registration", format!("{accounts} knows client {id}"), None));
                    let location = match (dc, accounts_override) {
                        (DcChoice::Fixed(dc), None) => Some(*dc),
                        _ => None,
                    };
                    if let Some(x) = check_secret_at(ctx, accounts, location, id).await {
                        out.push(x);
                    }
                    checked_dc = location;
                }
                ProbeResult::Unknown => {
                    let found = app::find_client_dcs(ctx, id).await.unwrap_or_default();
                    let fix = match found.first() {
                        Some((loc, url)) => app::dc_fix(s, loc, url),
                        None => "no data centre knows this client ID: check it in https://api-console.zoho.com (copy it again)".to_string(),
                    };
                    out.push(Finding { level: Level::Fail(Exit::ClientRejected), check: "registration", detail: format!("{accounts} answers invalid_client for {id}"), fix: Some(fix) });
                }
                ProbeResult::Error(code) => out.push(Finding {
                    level: Level::Fail(Exit::ClientRejected),
                    check: "registration",
                    detail: format!("{accounts} refused the device-code request: {code}"),
                    fix: Some("the client must be a \"Non-browser Application\"; check the scope too (e.g. ZohoBooks.settings.READ)".into()),
                }),
                ProbeResult::Unreachable(why) => out.push(f(Level::Fail(Exit::Unavailable), "registration", format!("could not ask {accounts}: {why}"), Some("check the network, DNS and HTTPS_PROXY"))),
            }
        } else {
            if let Some(u) = accounts_override {
                out.extend(reachability(ctx, u).await);
            }
            let found = app::find_client_dcs(ctx, id).await.unwrap_or_default();
            match found.first() {
                Some((loc, url)) => {
                    out.push(f(
                        Level::Ok,
                        "registration",
                        format!("--dc auto: client {id} is registered in {loc} ({url})"),
                        None,
                    ));
                    checked_dc = DataCenter::from_location(loc);
                    if let Some(x) = check_secret_at(ctx, url, checked_dc, id).await {
                        out.push(x);
                    }
                }
                None => out.push(f(
                    Level::Fail(Exit::ClientRejected),
                    "registration",
                    format!("--dc auto: no data centre knows client {id}"),
                    Some("check the client ID and the network"),
                )),
            }
        }
    }

    // Multi-DC: every other data centre with a secret of its own.
    if let (Endpoint::Zoho { .. }, Some(id)) = (&s.endpoint, &client_id) {
        out.extend(other_dc_secrets(ctx, id, checked_dc).await);
    }

    out.extend(token_file(ctx).await);
    out.extend(agent_state(ctx));
    out
}

/// Where a secret came from (never the value: a fingerprint), and a warning when its file is
/// readable by others. `dc`: a data centre's own secret; `None`: the common one.
fn secret_source_findings(
    dc: Option<DataCenter>,
    src: &SecretSource,
    secret: &zoho_device_core::ClientSecret,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let from = match src {
        SecretSource::Env => "ZOHO_CLIENT_SECRET".to_string(),
        SecretSource::EnvVar(name) => name.clone(),
        SecretSource::File(p) => format!("file {}", p.display()),
        SecretSource::Credential(p) => format!("systemd credential {}", p.display()),
    };
    let whose = dc.map(|dc| format!("data centre {dc}: ")).unwrap_or_default();
    out.push(f(
        Level::Ok,
        "client secret",
        format!("{whose}from {from} (fingerprint {})", secret.fingerprint()),
        None,
    ));
    if let SecretSource::File(p) | SecretSource::Credential(p) = src
        && let Ok(m) = std::fs::metadata(p)
        && m.permissions().mode() & 0o077 != 0
    {
        out.push(f(
            Level::Warn,
            "client secret",
            format!(
                "{} is readable by other users (mode {:o})",
                p.display(),
                m.permissions().mode() & 0o777
            ),
            Some("chmod 600 the file"),
        ));
    }
    out
}

/// Checks the secret used at `accounts` (of data centre `dc`, when known): its own, else the
/// common one. `None` when there is none to check.
async fn check_secret_at(ctx: &Context, accounts: &ServerUrl, dc: Option<DataCenter>, id: &str) -> Option<Finding> {
    let s = &ctx.settings;
    let own = dc.and_then(|dc| s.dc_secrets.iter().find(|d| d.dc == dc));
    let secret = own.map(|d| d.secret.clone()).or_else(|| s.client_secret.clone())?;
    let mut x = check_secret(ctx, accounts, id, secret).await;
    if let Some(dc) = dc.filter(|_| own.is_some() || !s.dc_secrets.is_empty()) {
        x.detail = format!("data centre {dc}: {}", x.detail);
        if matches!(x.level, Level::Fail(_)) {
            x.fix = Some(format!(
                "copy data centre {dc}'s secret from api-console.zoho.com (the client, Settings, Multi-DC) into {}",
                crate::settings::dc_secret_settings(dc)
            ));
        }
    }
    Some(x)
}

/// Checks the secret of every data centre that has its own, other than the one checked already
/// (the configured DC, or the one `--dc auto` found): at its accounts server (an override's
/// `serverinfo` says where), a device code and one poll.
async fn other_dc_secrets(ctx: &Context, id: &str, checked: Option<DataCenter>) -> Vec<Finding> {
    let s = &ctx.settings;
    let mut out = Vec::new();
    if s.dc_secrets.is_empty() {
        return out;
    }
    let Endpoint::Zoho { accounts_override, .. } = &s.endpoint else {
        return out;
    };
    let servers = match accounts_override {
        Some(_) => app::candidate_servers(ctx).await.unwrap_or_default(),
        None => DataCenter::ALL
            .iter()
            .map(|dc| (dc.location().to_string(), dc.accounts_server()))
            .collect(),
    };
    for d in s.dc_secrets.iter().filter(|d| Some(d.dc) != checked) {
        let prefix = format!("data centre {}: ", d.dc);
        let Some((_, accounts)) = servers.iter().find(|(l, _)| l.eq_ignore_ascii_case(d.dc.location())) else {
            out.push(f(
                Level::Warn,
                "client secret",
                format!("{prefix}not checked: the accounts server does not list this data centre"),
                None,
            ));
            continue;
        };
        match app::probe(&ctx.http, accounts, id, &s.scopes).await {
            ProbeResult::Knows => {
                if let Some(x) = check_secret_at(ctx, accounts, Some(d.dc), id).await {
                    out.push(x);
                }
            }
            ProbeResult::Unknown => out.push(f(
                Level::Warn,
                "client secret",
                format!("{prefix}a secret is configured, but {accounts} does not know client {id} (invalid_client)"),
                Some("enable the data centre for the client under Multi-DC in api-console.zoho.com (Settings), or remove its secret"),
            )),
            ProbeResult::Error(code) => out.push(f(
                Level::Warn,
                "client secret",
                format!("{prefix}not checked: {accounts} refused the device-code request ({code})"),
                None,
            )),
            ProbeResult::Unreachable(why) => out.push(f(
                Level::Warn,
                "client secret",
                format!("{prefix}not checked: could not ask {accounts}: {why}"),
                Some("check the network, DNS and HTTPS_PROXY"),
            )),
        }
    }
    out
}

/// What the agent keeping this token file last said (its `STATUS=` line, last error included).
fn agent_state(ctx: &Context) -> Option<Finding> {
    let path = ctx.store.agent_state_path();
    let state = crate::notify::AgentState::read(&path)?;
    let age = u64::try_from(clock::now_s() - state.updated_unix).unwrap_or(0);
    let when = format!("{} ago", fmt_secs(age));
    Some(if state.running() {
        f(
            Level::Ok,
            "agent",
            format!("running (pid {}); status {when}: {}", state.pid, state.status),
            None,
        )
    } else if state.status.starts_with("stopped (SIGTERM)") {
        f(Level::Ok, "agent", format!("stopped cleanly {when}"), None)
    } else {
        f(
            Level::Warn,
            "agent",
            format!(
                "not running (was pid {}); its last status, {when}: {}",
                state.pid, state.status
            ),
            Some("see `journalctl -u zoho-device` for why it ended; `systemctl restart zoho-device` starts it again"),
        )
    })
}

async fn reachability(ctx: &Context, accounts: &ServerUrl) -> Vec<Finding> {
    let mut out = Vec::new();
    let port = if accounts.is_https() { 443 } else { 80 };
    let host = accounts.host().to_string();
    let explicit_port = accounts
        .as_str()
        .rsplit_once(':')
        .and_then(|(_, p)| p.split('/').next()?.parse::<u16>().ok());
    let lookup = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::lookup_host((host.as_str(), explicit_port.unwrap_or(port))),
    )
    .await
    .map(|r| r.map(|addrs| addrs.count()));
    match lookup {
        Ok(Ok(n)) if n > 0 => out.push(f(Level::Ok, "dns", format!("{host} resolves"), None)),
        Ok(_) => {
            out.push(f(
                Level::Fail(Exit::Unavailable),
                "dns",
                format!("{host} does not resolve"),
                Some("check DNS (/etc/resolv.conf) and the network"),
            ));
            return out;
        }
        Err(_) => {
            out.push(f(
                Level::Fail(Exit::Unavailable),
                "dns",
                format!("resolving {host} timed out"),
                Some("check DNS and the network"),
            ));
            return out;
        }
    }
    let req = HttpRequest::get(accounts.join("/oauth/serverinfo"), Purpose::ServerInfo);
    match ctx.http.send(&req).await {
        Ok(resp) => {
            let what = if accounts.is_https() { "TLS and HTTP" } else { "HTTP" };
            out.push(f(
                Level::Ok,
                "reachability",
                format!("{what} to {accounts} work (HTTP {})", resp.response.status),
                None,
            ));
            if let Some(date) = resp.date.as_deref().and_then(clock::parse_http_date) {
                let offset = clock::now_s() - date as i64;
                if offset.unsigned_abs() > 300 {
                    out.push(f(
                        Level::Warn,
                        "clock",
                        format!("the local clock is {offset} s off the server's Date header"),
                        Some("enable NTP (timedatectl set-ntp true)"),
                    ));
                } else {
                    out.push(f(
                        Level::Ok,
                        "clock",
                        format!("within {} s of the server's clock", offset.unsigned_abs()),
                        None,
                    ));
                }
            }
        }
        Err(e) => out.push(f(
            Level::Fail(Exit::Unavailable),
            "reachability",
            format!("{accounts}: {e}"),
            Some("check the network, firewall, HTTPS_PROXY, and the clock (TLS fails with a wrong date)"),
        )),
    }
    out
}

/// Polls with the probe's code: `authorization_pending` proves the secret, not the user.
async fn check_secret(
    ctx: &Context,
    accounts: &ServerUrl,
    id: &str,
    secret: zoho_device_core::ClientSecret,
) -> Finding {
    let client = ClientCredentials {
        client_id: id.to_string(),
        client_secret: Some(secret),
    };
    let code_req = probe::device_code_request(accounts, &client, &ctx.settings.scopes);
    let code = match ctx.http.send(&code_req).await {
        Ok(resp) => match probe::read_device_code(resp.response.status, &resp.response.body) {
            ClientAnswer::Knows(code) => code,
            _ => {
                return f(
                    Level::Warn,
                    "client secret",
                    "could not check the secret (no device code)",
                    None,
                );
            }
        },
        Err(_) => {
            return f(
                Level::Warn,
                "client secret",
                "could not check the secret (no device code)",
                None,
            );
        }
    };
    let poll = probe::secret_poll_request(accounts, &client, &code);
    match ctx
        .http
        .send(&poll)
        .await
        .map(|r| probe::read_secret_poll(r.response.status, &r.response.body))
    {
        Ok(SecretAnswer::Rejected) => f(
            Level::Fail(Exit::ClientRejected),
            "client secret",
            "Zoho rejects the client secret (invalid_client_secret)",
            Some("copy the secret again from api-console.zoho.com (it changes when reset)"),
        ),
        Ok(SecretAnswer::Accepted) => f(Level::Ok, "client secret", "accepted by Zoho", None),
        Ok(SecretAnswer::Other(code)) => f(Level::Warn, "client secret", format!("test poll answered {code}"), None),
        _ => f(Level::Warn, "client secret", "could not check the secret", None),
    }
}

async fn token_file(ctx: &Context) -> Vec<Finding> {
    let mut out = Vec::new();
    let path = ctx.store.path();
    match std::fs::metadata(path) {
        Err(_) => {
            out.push(f(
                Level::Warn,
                "token file",
                format!("{} does not exist: not paired", path.display()),
                Some("run `zoho-device login`"),
            ));
            return out;
        }
        Ok(m) => {
            let mode = m.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                out.push(f(
                    Level::Fail(Exit::Usage),
                    "token file",
                    format!("{} has mode {mode:o}: other users can read the tokens", path.display()),
                    Some("chmod 600 the file (zoho-device writes it 0600)"),
                ));
            } else {
                out.push(f(
                    Level::Ok,
                    "token file",
                    format!("{} (mode {mode:o})", path.display()),
                    None,
                ));
            }
            // What a refresh would need: a directory safe to write in, with room for the token.
            // Another user's directory is theirs to write (root checking a service's): a warning.
            if let Err(e) = ctx.store.check_writable() {
                out.push(Finding {
                    level: if crate::store::is_foreign_directory(&e) {
                        Level::Warn
                    } else {
                        Level::Fail(e.exit)
                    },
                    check: "token file",
                    detail: e.message,
                    fix: e.hint,
                });
            }
        }
    }
    match ctx.store.load() {
        Ok(Some(t)) => {
            let now = wall_now();
            let left = (i128::from(t.tokens().expires_at.as_millis()) - i128::from(now.as_millis()))
                .clamp(i128::from(-i64::MAX), i128::from(i64::MAX)) as i64;
            out.push(f(
                if left > 0 { Level::Ok } else { Level::Warn },
                "token",
                format!(
                    "client {}, {}, access token {} {} (fingerprint {}), refresh token {}",
                    t.client_id(),
                    t.location()
                        .map(|l| format!("DC {l}"))
                        .unwrap_or_else(|| "standard server".into()),
                    if left > 0 { "valid for" } else { "expired" },
                    fmt_secs(left.unsigned_abs() / 1000),
                    t.tokens().access_token.fingerprint(),
                    t.tokens()
                        .refresh_token
                        .as_ref()
                        .map(|r| format!("held (fingerprint {})", r.fingerprint()))
                        .unwrap_or_else(|| "missing".into()),
                ),
                None,
            ));
            // Every server the file names must pass today's policy; standard servers have no
            // api_domain to check.
            let checked = match ctx.checked_servers(&t).await {
                Ok(_) if t.profile() == Profile::Zoho && t.tokens().api_domain.is_some() => {
                    ctx.checked_api_domain(&t).map(drop)
                }
                other => other.map(drop),
            };
            if let Err(e) = checked {
                out.push(f(
                    Level::Fail(e.exit),
                    "token",
                    e.message,
                    Some("pair again with `zoho-device login`"),
                ));
            }
        }
        Ok(None) => {}
        Err(e) => out.push(Finding {
            level: Level::Fail(e.exit),
            check: "token",
            detail: e.message,
            fix: e.hint,
        }),
    }
    out
}

fn fmt_secs(s: u64) -> String {
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

/// The findings for people, one line each (plus its fix), then the tally.
pub fn render(findings: &[Finding]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for x in findings {
        let mark = match x.level {
            Level::Ok => "ok  ",
            Level::Warn => "warn",
            Level::Fail(_) => "FAIL",
        };
        let _ = writeln!(out, "[{mark}] {:<14} {}", x.check, x.detail);
        if let Some(fix) = &x.fix {
            let _ = writeln!(out, "       {:<14} fix: {fix}", "");
        }
    }
    let fails = failed(findings).count();
    let warns = findings.iter().filter(|x| x.level == Level::Warn).count();
    let _ = writeln!(
        out,
        "\n{} checks: {} failed, {}",
        findings.len(),
        fails,
        plural(warns, "warning", "warnings")
    );
    out
}

/// `1 warning`, `2 warnings`.
fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The findings as JSON.
pub fn to_json(findings: &[Finding]) -> serde_json::Value {
    serde_json::Value::Array(
        findings
            .iter()
            .map(|x| {
                json!({
                    "level": match x.level { Level::Ok => "ok", Level::Warn => "warn", Level::Fail(_) => "fail" },
                    "check": x.check, "detail": x.detail, "fix": x.fix,
                })
            })
            .collect(),
    )
}

/// The failed checks, in the order they ran.
pub fn failed(findings: &[Finding]) -> impl Iterator<Item = &Finding> {
    findings.iter().filter(|x| matches!(x.level, Level::Fail(_)))
}

/// The outcome of a doctor run: `Ok` when no check failed, else an error with the exit code of
/// the first failure (checks run in the order to fix things: configuration, clock,
/// registration, network, token) naming every failed check.
pub fn verdict(findings: &[Finding]) -> Result<(), crate::exit::AppError> {
    let Some(Level::Fail(exit)) = failed(findings).next().map(|x| x.level) else {
        return Ok(());
    };
    let fails: Vec<&str> = failed(findings).map(|x| x.check).collect();
    Err(crate::exit::AppError::new(
        exit,
        format!("doctor: {} check(s) failed: {}", fails.len(), fails.join(", ")),
    )
    .hint("fix the first failure as shown above, then run `zoho-device doctor` again"))
}
