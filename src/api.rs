//! `zoho-device api`: any Zoho Books (or other Zoho API) endpoint with the stored pairing.
//!
//! One implementation of "call Books with the token": `books organizations` is a shorthand over
//! [`call`]. What it takes care of, so that scripts do not have to:
//!
//! * **Where the token goes.** `PATH` is a path on the pairing's `api_domain` (checked against
//!   today's configuration by [`Context::checked_api_domain`]); the URL is built from that parsed
//!   URL with `url`'s own setters, never by pasting strings. A full URL, `..` or `.` segments,
//!   backslashes and percent-encoded `/`, `\` or `.` are refused (exit 8) before anything is sent,
//!   and the path must lie under an allowed API prefix ([`allowed_prefixes`]: Books always, and
//!   the APIs the pairing's scope names), else exit 2.
//! * **`organization_id`.** Added to every Books path but `/organizations`: `--org`, the config
//!   key `organization_id`, else the pairing's default organization, looked up once and
//!   remembered next to the token file (`<token file>.org`, 0600, written atomically), looked up
//!   again when Books answers 6041 for a remembered one.
//! * **Books' answers, decided on HTTP status and `code`, never on the message:** 401 code 57 →
//!   refresh once under the lock (a token another process refreshed meanwhile is reused), retry
//!   once; 429 code 44 → wait for the per-minute window (`Retry-After`, else a minute), saying
//!   so, and retry; 429 code 45 → exit 7 with when the daily budget resets; 429 code 1070 → short
//!   backoff. A 429 or 401 means Books did not act on the request, so even a write is repeated
//!   after one.
//! * **Writes are never repeated once they may have reached Books:** after a reset, a timeout
//!   or a 5xx, a POST/PUT/DELETE fails with exit 7 and says to check before sending it again.
//!   Only a failure to connect at all (nothing was sent) is retried.

use std::fs::OpenOptions;
use std::io::{IsTerminal, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use zoho_device_core::reqwest_driver::classify;
use zoho_device_core::url;
use zoho_device_core::{Error, Safe, ServerUrl, Transient, TransportError};

use crate::app::{Context, REFRESH_MARGIN};
use crate::exit::{AppError, Exit};
use crate::store::Pairing;

/// Largest API reply read (a page of 200 invoices is a few hundred KB).
const MAX_BODY_BYTES: usize = 32 << 20;
/// Largest `--input` body.
const MAX_INPUT_BYTES: usize = 32 << 20;
/// Tries of a GET (or of a write that could not connect) on transient failures.
const ATTEMPTS: u32 = 3;
/// Waits for Books' per-minute window (code 44) per request before giving up.
const MINUTE_WAITS: u32 = 3;
/// The longest wait for the per-minute window; a longer `Retry-After` is reported (exit 7).
const MAX_MINUTE_WAIT: Duration = Duration::from_secs(65);
/// Without `Retry-After`, the per-minute window reopens within a minute.
const MINUTE: Duration = Duration::from_secs(60);
/// Backoffs after code 1070 (too many concurrent calls) without `Retry-After`.
const CONCURRENCY_BACKOFF: [Duration; 3] = [Duration::from_secs(1), Duration::from_secs(2), Duration::from_secs(4)];

/// HTTP method of `api`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "UPPER")]
pub enum ApiMethod {
    /// Read (the default).
    Get,
    /// Create.
    Post,
    /// Update.
    Put,
    /// Delete.
    Delete,
}

impl ApiMethod {
    fn as_str(self) -> &'static str {
        match self {
            ApiMethod::Get => "GET",
            ApiMethod::Post => "POST",
            ApiMethod::Put => "PUT",
            ApiMethod::Delete => "DELETE",
        }
    }

    fn reqwest(self) -> reqwest::Method {
        match self {
            ApiMethod::Get => reqwest::Method::GET,
            ApiMethod::Post => reqwest::Method::POST,
            ApiMethod::Put => reqwest::Method::PUT,
            ApiMethod::Delete => reqwest::Method::DELETE,
        }
    }

    fn is_write(self) -> bool {
        self != ApiMethod::Get
    }

    /// The operation of Books' scopes (`ZohoBooks.invoices.CREATE`).
    fn operation(self) -> &'static str {
        match self {
            ApiMethod::Get => "READ",
            ApiMethod::Post => "CREATE",
            ApiMethod::Put => "UPDATE",
            ApiMethod::Delete => "DELETE",
        }
    }
}

/// `api` options.
#[derive(Debug, Clone, Args)]
#[command(after_help = API_AFTER_HELP)]
pub struct ApiArgs {
    /// Path on the pairing's api_domain, with an optional query: /books/v3/invoices?status=overdue.
    /// Never a full URL: the token goes only to api_domain.
    #[arg(value_name = "PATH")]
    pub path: String,
    /// HTTP method. Writes (POST, PUT, DELETE) must be asked for explicitly and are never
    /// repeated once they may have reached Books.
    #[arg(short = 'X', long, value_enum, default_value_t = ApiMethod::Get, ignore_case = true)]
    pub method: ApiMethod,
    /// A field (repeatable): a query parameter for GET and DELETE (and with --input); for POST
    /// and PUT a string member of the JSON object sent as Books' JSONString form field.
    #[arg(short = 'f', long = "field", value_name = "KEY=VALUE")]
    pub fields: Vec<String>,
    /// As -f, with a JSON value for writes: -F quantity=2, -F 'line_items=[{"item_id":"1","quantity":2}]'.
    #[arg(short = 'F', long = "typed-field", value_name = "KEY=JSON")]
    pub typed_fields: Vec<String>,
    /// Send this file (or stdin with -) as the JSON body, as is (POST and PUT).
    #[arg(long, value_name = "FILE|-")]
    pub input: Option<PathBuf>,
    /// Follow page_context.has_more_page through every page (GET) and print one document with
    /// the list concatenated; a progress line on a terminal.
    #[arg(long)]
    pub paginate: bool,
    /// With --paginate: stop after N pages (page_context then says whether more remain).
    #[arg(long, value_name = "N", requires = "paginate", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_pages: Option<u32>,
    /// organization_id for Books paths (default: config key organization_id, else the
    /// pairing's default organization, looked up once and remembered).
    #[arg(long, value_name = "ID", env = "ZOHO_ORGANIZATION_ID")]
    pub org: Option<String>,
    /// Compact JSON even on a terminal (compact is the default when stdout is not one).
    #[arg(long, conflicts_with = "raw")]
    pub json: bool,
    /// The body exactly as Books sent it.
    #[arg(long, conflicts_with = "paginate")]
    pub raw: bool,
    /// Also print the status line and response headers, on stderr.
    #[arg(short = 'i', long = "include")]
    pub include: bool,
}

const API_AFTER_HELP: &str = "\
Allowed paths: /books/v3/… always; /inventory/v1/…, /invoice/v3/… and /crm/… when the pairing's
scope names ZohoInventory, ZohoInvoice or ZohoCRM. organization_id is added to Books paths
(not /books/v3/organizations) unless the query has one.

Books' limits: 401 code 57 refreshes the token once and retries once; 429 code 44 (100 calls a
minute per organization) waits for the window and retries, saying so; 429 code 45 (the plan's
daily cap) exits 7 with when it resets; 429 code 1070 backs off briefly.

Exit codes: 0 ok · 2 bad request (Books' 4xx, a path outside the allowed APIs) · 6 pair again ·
7 Books or the network unavailable, a budget spent, or a write whose outcome is unknown ·
8 a PATH that would send the token elsewhere, or an unsafe token file. On a Books error its JSON
is still printed on stdout.

Examples:
  zoho-device api /books/v3/invoices -f status=overdue
  zoho-device api /books/v3/invoices --paginate --max-pages 5 | jq '.invoices | length'
  zoho-device api -X POST /books/v3/contacts -f contact_name='Blue Door Café'
  zoho-device api -X POST /books/v3/invoices -f customer_id=460000000026049 -F 'line_items=[{\"item_id\":\"460000000027001\",\"quantity\":2}]'
  zoho-device api -X PUT /books/v3/items/460000000027001 --input item.json";

// ------------------------------------------------------------------------------ paths

/// API prefixes a pairing may call: Books always; Inventory, Invoice and CRM when the scope
/// names their service (`ZohoInventory.…`, `ZohoInvoice.…`, `ZohoCRM.…`).
pub fn allowed_prefixes(scope: &str) -> Vec<&'static str> {
    let mut v = vec!["/books/v3/"];
    for s in scope.split([',', ' ']) {
        let service = s.split('.').next().unwrap_or_default().to_ascii_lowercase();
        let prefix = match service.as_str() {
            "zohoinventory" => "/inventory/v1/",
            "zohoinvoice" => "/invoice/v3/",
            "zohocrm" => "/crm/",
            _ => continue,
        };
        if !v.contains(&prefix) {
            v.push(prefix);
        }
    }
    v
}

/// A checked `PATH`: the path and the raw query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiPath {
    /// The path, under one of the allowed prefixes.
    pub path: String,
    /// The query as given (without `?`).
    pub query: Option<String>,
}

impl ApiPath {
    /// Checks `input` against the rules of the module docs. Exit 8 for what would send the
    /// token elsewhere (full URL, dot segments, backslashes, encoded separators), exit 2 for
    /// a path outside `allowed`.
    pub fn parse(input: &str, allowed: &[&str]) -> Result<ApiPath, AppError> {
        let unsafe_path = |why: &str| {
            AppError::new(
                Exit::Unsafe,
                format!("PATH {:?} refused: {why}", Safe(input).to_string()),
            )
            .hint("give a path on the pairing's api_domain, e.g. /books/v3/invoices; the token is only ever sent there")
        };
        if input.is_empty() {
            return Err(AppError::usage("PATH is empty").hint("e.g. zoho-device api /books/v3/organizations"));
        }
        if input.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(AppError::usage(format!(
                "PATH {:?} contains spaces or control characters",
                Safe(input).to_string()
            ))
            .hint("percent-encode them (%20), or pass query values with -f key=value"));
        }
        let head = input.split(['/', '?', '#']).next().unwrap_or_default();
        if input.starts_with("//") || head.contains(':') {
            return Err(unsafe_path("it is a full URL; only a path on api_domain is accepted"));
        }
        if input.contains('#') {
            return Err(AppError::usage(
                "PATH has a fragment (#…), which is never sent to a server",
            ));
        }
        let with_slash;
        let input = if input.starts_with('/') {
            input
        } else {
            with_slash = format!("/{input}");
            &with_slash
        };
        let (path, query) = match input.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (input, None),
        };
        if path.contains('\\') {
            return Err(unsafe_path("it contains a backslash"));
        }
        let lower = path.to_ascii_lowercase();
        if ["%2f", "%5c", "%2e"].iter().any(|e| lower.contains(e)) {
            return Err(unsafe_path("it contains a percent-encoded '/', '\\' or '.'"));
        }
        let segments: Vec<&str> = path[1..].split('/').collect();
        for (i, s) in segments.iter().enumerate() {
            if *s == "." || *s == ".." {
                return Err(unsafe_path("it contains a '.' or '..' segment"));
            }
            if s.is_empty() && i + 1 != segments.len() {
                return Err(unsafe_path("it contains an empty segment (//)"));
            }
        }
        if !allowed.iter().any(|p| path.starts_with(p) && path.len() > p.len()) {
            return Err(AppError::usage(format!(
                "PATH {:?} is outside the APIs this pairing may call ({})",
                Safe(path).to_string(),
                allowed.join(", ")
            ))
            .hint("Books paths start with /books/v3/; for Inventory, Invoice or CRM pair with a scope that names them (--scope ZohoInventory.items.READ,…)"));
        }
        Ok(ApiPath {
            path: path.to_string(),
            query: query.filter(|q| !q.is_empty()).map(str::to_string),
        })
    }

    /// Whether Books needs `organization_id` on this path.
    pub fn needs_org(&self) -> bool {
        self.path.starts_with("/books/v3/")
            && self.path != "/books/v3/organizations"
            && !self.path.starts_with("/books/v3/organizations/")
    }

    /// The Books scope a call needs (for the hint after a 401 that a refresh did not cure).
    pub fn books_scope(&self, method: ApiMethod) -> Option<String> {
        let seg = self.path.strip_prefix("/books/v3/")?.split('/').next()?;
        let module = match seg {
            "invoices" | "contacts" | "estimates" | "salesorders" | "purchaseorders" | "bills" | "expenses"
            | "projects" | "creditnotes" | "customerpayments" | "vendorpayments" | "debitnotes" => seg,
            "bankaccounts" | "banktransactions" | "chartofaccounts" | "journals" => "accountants",
            _ => "settings",
        };
        Some(format!("ZohoBooks.{module}.{}", method.operation()))
    }
}

/// Builds the request URL on `api` (the checked `api_domain`) with `url`'s setters: the path,
/// the given query, then `extra` pairs. Checked again afterwards: same origin, allowed prefix.
pub fn build_url(
    api: &ServerUrl,
    path: &ApiPath,
    extra: &[(String, String)],
    allowed: &[&str],
) -> Result<url::Url, AppError> {
    let mut url = api.as_url().clone();
    url.set_path(&path.path);
    url.set_query(path.query.as_deref());
    if !extra.is_empty() {
        let mut q = url.query_pairs_mut();
        for (k, v) in extra {
            q.append_pair(k, v);
        }
    }
    let same_origin = url.origin() == api.as_url().origin();
    if !same_origin || !allowed.iter().any(|p| url.path().starts_with(p)) {
        return Err(AppError::new(
            Exit::Unsafe,
            format!("the request URL left the allowed API ({})", url.path()),
        ));
    }
    Ok(url)
}

/// The same URL with `page=N` (any `page` of the query replaced).
fn with_page(url: &url::Url, page: u64) -> url::Url {
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != "page")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut u = url.clone();
    u.query_pairs_mut()
        .clear()
        .extend_pairs(pairs)
        .append_pair("page", &page.to_string());
    u
}

// ------------------------------------------------------------------------------ org cache

/// What `<token file>.org` holds: the default organization of one pairing.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct OrgMemo {
    version: u32,
    client_id: String,
    api_domain: String,
    paired_at: u64,
    organization_id: String,
    #[serde(default)]
    name: String,
}

fn valid_org_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 32 && id.bytes().all(|b| b.is_ascii_digit())
}

/// The remembered organization of this pairing, if the memo is there, is a regular file (not
/// followed through a link), and belongs to this pairing.
fn read_org_memo(path: &Path, stored: &Pairing) -> Option<String> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut text = String::new();
    file.take(4096).read_to_string(&mut text).ok()?;
    let memo: OrgMemo = serde_json::from_str(&text).ok()?;
    let api = stored.tokens().api_domain.as_ref()?.as_str();
    (memo.version == 1
        && memo.client_id == stored.client_id()
        && memo.api_domain == api
        && memo.paired_at == stored.paired_at().as_millis()
        && valid_org_id(&memo.organization_id))
    .then_some(memo.organization_id)
}

fn write_org_memo(path: &Path, stored: &Pairing, id: &str, name: &str) {
    let memo = OrgMemo {
        version: 1,
        client_id: stored.client_id().to_string(),
        api_domain: stored
            .tokens()
            .api_domain
            .as_ref()
            .map(|u| u.as_str().to_string())
            .unwrap_or_default(),
        paired_at: stored.paired_at().as_millis(),
        organization_id: id.to_string(),
        name: name.to_string(),
    };
    let mut bytes = serde_json::to_vec_pretty(&memo).unwrap_or_default();
    bytes.push(b'\n');
    if let Err(e) = crate::store::write_atomically(path, &bytes) {
        tracing::warn!("cannot remember the organization in {}: {e}", path.display());
    }
}

// ------------------------------------------------------------------------------ one call

/// A request body.
#[derive(Debug, Clone)]
pub enum Body {
    /// None.
    Empty,
    /// `application/x-www-form-urlencoded` (Books' `JSONString` field).
    Form(Vec<u8>),
    /// `application/json`, as given.
    Json(Vec<u8>),
}

/// A reply from the API.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The body, as received.
    pub body: Vec<u8>,
    /// The body as JSON, when it is.
    pub json: Option<Value>,
    /// The `Content-Type` header (empty when absent).
    pub content_type: String,
}

/// A failed call: the error, and Books' JSON reply when there was one (printed by `api`).
#[derive(Debug)]
pub struct Failure {
    /// What went wrong.
    pub error: AppError,
    /// The reply's body (boxed: errors stay small).
    pub body: Option<Box<[u8]>>,
    /// The reply's HTTP status, when there was a reply.
    pub status: Option<u16>,
}

impl From<AppError> for Failure {
    fn from(error: AppError) -> Failure {
        Failure {
            error,
            body: None,
            status: None,
        }
    }
}

impl Failure {
    /// Whether Books said it does not know the organization (400 code 6041).
    pub fn unknown_org(&self) -> bool {
        self.error.exit == Exit::Usage
            && self
                .body
                .as_deref()
                .and_then(|b| serde_json::from_slice::<Value>(b).ok())
                .is_some_and(|v| v["code"] == 6041)
    }
}

/// The token used so far by one command, and whether it was refreshed after a 401.
pub struct Session<'a> {
    ctx: &'a Context,
    stored: Pairing,
    refreshed: bool,
    /// `-i`: print status line and headers on stderr.
    pub include: bool,
}

impl<'a> Session<'a> {
    /// A session with a token valid for a while (refreshed first when it expires soon).
    pub async fn start(ctx: &'a Context) -> Result<Session<'a>, AppError> {
        let stored = ctx.fresh_token(REFRESH_MARGIN).await?;
        ctx.checked_api_domain(&stored)?;
        Ok(Session {
            ctx,
            stored,
            refreshed: false,
            include: false,
        })
    }

    /// The token in use (after a refresh on 401, the new one).
    pub fn token(&self) -> &Pairing {
        &self.stored
    }

    /// The checked `api_domain` of the current token.
    pub fn api_domain(&self) -> Result<ServerUrl, AppError> {
        self.ctx.checked_api_domain(&self.stored)
    }
}

/// What one HTTP exchange came to.
enum Verdict {
    Done(Answer),
    Expired(Answer),
    WrongOrg(Answer),
}

/// Calls `method url` with the session's token and Books' rules (module docs). `path` is the
/// checked path (for messages); `url` must come from [`build_url`].
pub async fn call(
    session: &mut Session<'_>,
    method: ApiMethod,
    path: &ApiPath,
    url: &url::Url,
    body: &Body,
) -> Result<Answer, Failure> {
    match exchange(session, method, url, body).await? {
        Verdict::Done(a) => Ok(a),
        Verdict::WrongOrg(a) => Err(wrong_org(&a, url)),
        Verdict::Expired(a) => {
            if session.refreshed {
                return Err(still_rejected(&a, path, method));
            }
            tracing::info!("Books answered 401 (code 57): refreshing the token and retrying once");
            let fresh = session.ctx.force_refresh(Some(&session.stored)).await?;
            session.stored = fresh;
            session.refreshed = true;
            // The refreshed file's servers pass the same check before the token is sent again.
            let api = session.api_domain()?;
            if api.as_url().origin() != url.origin() {
                return Err(AppError::new(
                    Exit::Unsafe,
                    format!("the refreshed token names another api_domain ({api}); the call was not repeated"),
                )
                .into());
            }
            match exchange(session, method, url, body).await? {
                Verdict::Done(a) => Ok(a),
                Verdict::WrongOrg(a) => Err(wrong_org(&a, url)),
                Verdict::Expired(a) => Err(still_rejected(&a, path, method)),
            }
        }
    }
}

fn books_code(json: Option<&Value>) -> Option<i64> {
    json.and_then(|v| v.get("code")).and_then(Value::as_i64)
}

fn books_message(json: Option<&Value>) -> String {
    let m = json
        .and_then(|v| v.get("message"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    Safe(m).to_string()
}

fn described(a: &Answer) -> String {
    match books_code(a.json.as_ref()) {
        Some(c) => format!("HTTP {}, code {c}: {}", a.status, books_message(a.json.as_ref())),
        None => format!("HTTP {}", a.status),
    }
}

fn still_rejected(a: &Answer, path: &ApiPath, method: ApiMethod) -> Failure {
    let scope = path.books_scope(method);
    Failure {
        error: AppError::new(
            Exit::NeedsPairing,
            format!(
                "Zoho Books still rejects the token after a refresh ({}): the token lacks the scope {} or was revoked",
                described(a),
                scope.as_deref().unwrap_or("this API needs")
            ),
        )
        .hint(format!(
            "pair again with a scope that covers the call: `zoho-device login --scope {}`",
            scope.as_deref().unwrap_or("…")
        )),
        body: Some(a.body.clone().into()),
        status: Some(a.status),
    }
}

fn wrong_org(a: &Answer, url: &url::Url) -> Failure {
    let org = url
        .query_pairs()
        .find(|(k, _)| k == "organization_id")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    Failure {
        error: AppError::usage(format!(
            "Zoho Books does not know organization {:?} for this pairing ({})",
            Safe(&org).to_string(),
            described(a)
        ))
        .hint("list the organizations with `zoho-device books organizations`, then pass --org ID (or set organization_id in the config file)"),
        body: Some(a.body.clone().into()),
        status: Some(a.status),
    }
}

/// One request, repeated while that is safe and useful (transient failures of a GET, Books'
/// per-minute window and concurrency limit); the 401/6041 decisions are the caller's.
async fn exchange(
    session: &mut Session<'_>,
    method: ApiMethod,
    url: &url::Url,
    body: &Body,
) -> Result<Verdict, Failure> {
    let mut backoff = crate::app::retry_backoff();
    let mut failures = 0_u32;
    let mut minute_waits = 0_u32;
    let mut concurrency_waits = 0_usize;
    loop {
        let sent = send(session, method, url, body).await;
        let (answer, retry_after) = match sent {
            Ok(r) => r,
            Err(t) => {
                failures += 1;
                // A write is repeated only when nothing can have reached Books.
                let nothing_sent = matches!(t, TransportError::Connect | TransportError::Dns);
                if method.is_write() && !nothing_sent {
                    return Err(write_outcome_unknown(method, &t.to_string()).into());
                }
                if failures >= ATTEMPTS {
                    return Err(AppError::from(Error::Unavailable {
                        attempts: failures,
                        last: Transient::Transport(t),
                    })
                    .into());
                }
                let delay = backoff.delay(failures);
                tracing::warn!("Books call failed ({t}); retrying in {} ms", delay.as_millis());
                tokio::time::sleep(delay).await;
                continue;
            }
        };
        match classify_reply(&answer) {
            Class::Ok => return Ok(Verdict::Done(answer)),
            Class::Expired => return Ok(Verdict::Expired(answer)),
            Class::WrongOrg => return Ok(Verdict::WrongOrg(answer)),
            Class::PerMinute => {
                let wait = retry_after.unwrap_or(MINUTE);
                minute_waits += 1;
                if wait > MAX_MINUTE_WAIT || minute_waits > MINUTE_WAITS {
                    return Err(failure(Class::PerMinute, answer, retry_after));
                }
                eprintln!(
                    "Zoho Books: the organization's per-minute request budget is spent (429, code 44); waiting {} for the window, then retrying",
                    human(wait)
                );
                tokio::time::sleep(wait).await;
            }
            Class::Concurrency if concurrency_waits < CONCURRENCY_BACKOFF.len() => {
                let wait = retry_after.unwrap_or(CONCURRENCY_BACKOFF[concurrency_waits]);
                concurrency_waits += 1;
                eprintln!(
                    "Zoho Books: too many concurrent requests for the organization (429, code 1070); retrying in {}",
                    human(wait)
                );
                tokio::time::sleep(wait).await;
            }
            Class::Transient(last) => {
                failures += 1;
                if method.is_write() {
                    let s = answer.status;
                    return Err(Failure {
                        error: write_outcome_unknown(method, &format!("Books answered HTTP {s}")),
                        body: answer.json.is_some().then_some(answer.body.into()),
                        status: Some(s),
                    });
                }
                if failures >= ATTEMPTS {
                    return Err(Failure {
                        error: AppError::from(Error::Unavailable {
                            attempts: failures,
                            last,
                        }),
                        status: Some(answer.status),
                        body: answer.json.is_some().then_some(answer.body.into()),
                    });
                }
                let delay = backoff.delay(failures);
                tracing::warn!(
                    "Books answered HTTP {}; retrying in {} ms",
                    answer.status,
                    delay.as_millis()
                );
                tokio::time::sleep(delay).await;
            }
            class => return Err(failure(class, answer, retry_after)),
        }
    }
}

/// What a Books reply means, decided on the HTTP status and the envelope's `code`, never on
/// the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Class {
    /// 2xx with code 0 (or a 2xx body that is neither JSON nor an HTML page, e.g. a PDF).
    Ok,
    /// 401 (code 57, or any code but 14): refresh once, retry once.
    Expired,
    /// 401 code 14: the header was not accepted (a bug here).
    BadHeader,
    /// 400 code 6041: not an organization of this pairing.
    WrongOrg,
    /// 429 code 44: the organization's per-minute budget.
    PerMinute,
    /// 429 code 45: the plan's daily budget.
    Daily,
    /// 429 code 1070: too many concurrent calls.
    Concurrency,
    /// Another 429.
    Limited,
    /// 5xx, or a body that is not JSON (a proxy's page): transient.
    Transient(Transient),
    /// Any other refusal (4xx with a code): the request as sent is wrong.
    Refused,
}

/// Reads a reply: the body as JSON when it is a JSON object (over [`MAX_BODY_BYTES`] it is
/// transient, [`Transient::Oversize`]).
pub fn parse_reply(status: u16, body: Vec<u8>, content_type: &str) -> Answer {
    let json = if body.len() > MAX_BODY_BYTES {
        None
    } else {
        serde_json::from_slice::<Value>(&body).ok().filter(Value::is_object)
    };
    Answer {
        status,
        body,
        json,
        content_type: content_type.to_ascii_lowercase(),
    }
}

/// The [`Class`] of a reply.
pub fn classify_reply(a: &Answer) -> Class {
    if a.body.len() > MAX_BODY_BYTES {
        return Class::Transient(Transient::Oversize);
    }
    match (a.status, books_code(a.json.as_ref())) {
        (200..=299, Some(0)) => Class::Ok,
        // A body that is not JSON, and says so (a PDF asked for with accept=pdf). JSON cut short,
        // or an HTML page (a captive portal), is transient.
        (200..=299, None)
            if a.json.is_some() || !(a.content_type.contains("json") || a.content_type.starts_with("text/html")) =>
        {
            Class::Ok
        }
        (401, Some(14)) => Class::BadHeader,
        (401, _) => Class::Expired,
        (400, Some(6041)) => Class::WrongOrg,
        (429, Some(44)) => Class::PerMinute,
        (429, Some(45)) => Class::Daily,
        (429, Some(1070)) => Class::Concurrency,
        (429, _) => Class::Limited,
        (s, _) if a.json.is_none() => Class::Transient(Transient::NotJson(s)),
        (s, _) if s >= 500 => Class::Transient(Transient::Status(s)),
        _ => Class::Refused,
    }
}

/// The error of a reply of class `class` that is not retried (any longer).
pub fn failure(class: Class, answer: Answer, retry_after: Option<Duration>) -> Failure {
    let error = match class {
        Class::BadHeader => AppError::new(
            Exit::Unexpected,
            "Zoho Books did not accept the Authorization header (401, code 14)",
        )
        .hint("this is a bug in zoho-device; please report it with `zoho-device doctor` output"),
        Class::Expired => AppError::new(
            Exit::NeedsPairing,
            format!("Zoho Books rejects the token ({})", described(&answer)),
        )
        .hint("pair again with `zoho-device login`"),
        Class::WrongOrg => AppError::usage(format!(
            "Zoho Books does not know the organization for this pairing ({})",
            described(&answer)
        ))
        .hint("list the organizations with `zoho-device books organizations`, then pass --org ID"),
        Class::PerMinute => AppError::new(
            Exit::Unavailable,
            format!(
                "Zoho Books rate limit: more than the organization's requests per minute (429, code 44); {}",
                resets(retry_after)
            ),
        )
        .hint("Books allows 100 calls a minute per organization, shared by every app using it: try again later"),
        Class::Daily => AppError::new(
            Exit::Unavailable,
            format!(
                "Zoho Books daily request limit of the plan reached (429, code 45); {}",
                resets(retry_after)
            ),
        )
        .hint("every app using the organization shares the daily budget (1,000 calls on Free up to 10,000): cache replies, or upgrade the Books plan"),
        Class::Concurrency => AppError::new(
            Exit::Unavailable,
            "Zoho Books: too many concurrent requests for the organization (429, code 1070)",
        )
        .hint("retry in a few seconds, with fewer requests in parallel"),
        Class::Limited => AppError::new(
            Exit::Unavailable,
            format!("Zoho Books is rate limiting ({})", described(&answer)),
        )
        .hint("wait a minute and try again, with fewer requests in parallel"),
        Class::Transient(last) => AppError::from(Error::Unavailable { attempts: 1, last }),
        Class::Refused | Class::Ok => {
            let hint = if answer.status == 404 {
                "check the path and method against Books' API reference (zoho.com/books/api/v3)"
            } else {
                "Books refused the request as sent: check the fields against Books' API reference"
            };
            AppError::usage(format!("Zoho Books refused the request ({})", described(&answer))).hint(hint)
        }
    };
    Failure {
        error,
        status: Some(answer.status),
        body: answer.json.is_some().then_some(answer.body.into()),
    }
}

fn write_outcome_unknown(method: ApiMethod, what: &str) -> AppError {
    AppError::new(
        Exit::Unavailable,
        format!(
            "the {} may have reached Zoho Books, but no answer came back ({what}); it was not repeated, so nothing is done twice",
            method.as_str()
        ),
    )
    .hint("check with a GET whether it took effect (e.g. the list the record would be in) before sending it again")
}

/// "resets in …": from `Retry-After`, else what is known.
fn resets(retry_after: Option<Duration>) -> String {
    match retry_after {
        Some(d) => {
            let at = SystemTime::now() + d;
            format!("it resets in {} (at {})", human(d), httpdate::fmt_http_date(at))
        }
        None => "Books did not say when it resets (the budget is per day: try again tomorrow)".to_string(),
    }
}

/// `1 h 20 min`, `3 min 5 s`, `42 s`.
fn human(d: Duration) -> String {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    match s {
        0..60 => format!("{s} s"),
        60..3600 if s.is_multiple_of(60) => format!("{} min", s / 60),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

/// `Retry-After`: seconds, or an HTTP date.
fn retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(s) = v.parse::<u64>() {
        return Some(Duration::from_secs(s.min(7 * 86_400)));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO))
}

/// Sends one request and reads the reply (capped). The error is a transport failure.
async fn send(
    session: &Session<'_>,
    method: ApiMethod,
    url: &url::Url,
    body: &Body,
) -> Result<(Answer, Option<Duration>), TransportError> {
    let mut req = session
        .ctx
        .http
        .reqwest()
        .request(method.reqwest(), url.clone())
        .header(
            "Authorization",
            format!("Zoho-oauthtoken {}", session.stored.tokens().access_token.expose()),
        )
        .header("Accept", "application/json");
    req = match body {
        Body::Empty => req,
        Body::Form(b) => req
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(b.clone()),
        Body::Json(b) => req.header("Content-Type", "application/json").body(b.clone()),
    };
    let mut resp = req.send().await.map_err(|e| classify(&e))?;
    let status = resp.status();
    if session.include {
        let mut head = format!(
            "{:?} {} {}\n",
            resp.version(),
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        );
        for (name, value) in resp.headers() {
            head.push_str(&format!(
                "{}: {}\n",
                name.as_str(),
                Safe(&String::from_utf8_lossy(value.as_bytes()))
            ));
        }
        eprintln!("{head}");
    }
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let retry = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(retry_after);
    let mut bytes = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| classify(&e))? {
        bytes.extend_from_slice(&chunk[..chunk.len().min(MAX_BODY_BYTES + 1 - bytes.len())]);
        if bytes.len() > MAX_BODY_BYTES {
            break;
        }
    }
    Ok((parse_reply(status.as_u16(), bytes, &content_type), retry))
}

// ------------------------------------------------------------------------------ organizations

/// `GET /books/v3/organizations`: the envelope with the list.
pub async fn organizations_answer(session: &mut Session<'_>) -> Result<Answer, Failure> {
    let path = ApiPath {
        path: "/books/v3/organizations".into(),
        query: None,
    };
    let allowed = ["/books/v3/"];
    let url = build_url(&session.api_domain()?, &path, &[], &allowed)?;
    call(session, ApiMethod::Get, &path, &url, &Body::Empty).await
}

/// Where the organization of a call came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OrgSource {
    /// Given (flag or config).
    Given,
    /// Read from the memo beside the token file.
    Remembered,
    /// Asked of Books (one call), then remembered.
    LookedUp,
}

/// The organization for Books paths: given, configured, remembered, else looked up (and
/// remembered). `fresh` skips the memo (after a 6041 for a remembered one).
pub(crate) async fn organization(
    session: &mut Session<'_>,
    given: Option<&str>,
    fresh: bool,
) -> Result<(String, OrgSource), Failure> {
    if let Some(id) = given {
        return Ok((id.to_string(), OrgSource::Given));
    }
    let memo = session.ctx.store.beside(crate::store::Beside::OrgMemo);
    if !fresh && let Some(id) = read_org_memo(&memo, &session.stored) {
        return Ok((id, OrgSource::Remembered));
    }
    let answer = organizations_answer(session).await?;
    let orgs = answer
        .json
        .as_ref()
        .and_then(|v| v.get("organizations"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let id_of = |o: &Value| match &o["organization_id"] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    };
    let chosen = orgs
        .iter()
        .find(|o| o["is_default_org"] == Value::Bool(true))
        .or(if orgs.len() == 1 { orgs.first() } else { None });
    let Some(org) = chosen else {
        let ids: Vec<String> = orgs.iter().map(|o| Safe(&id_of(o)).to_string()).collect();
        return Err(AppError::usage(if ids.is_empty() {
            "the pairing sees no Books organization".to_string()
        } else {
            format!(
                "the pairing sees several Books organizations and none is the default: {}",
                ids.join(", ")
            )
        })
        .hint("pass --org ID (or set organization_id in the config file)")
        .into());
    };
    let id = id_of(org);
    if !valid_org_id(&id) {
        return Err(AppError::new(
            Exit::Unexpected,
            format!(
                "Books named an organization_id that is not a number: {:?}",
                Safe(&id).to_string()
            ),
        )
        .into());
    }
    let name = org["name"].as_str().unwrap_or_default();
    write_org_memo(&memo, &session.stored, &id, name);
    tracing::info!(
        "using the default organization {id} ({}), remembered in {}",
        Safe(name),
        memo.display()
    );
    Ok((id, OrgSource::LookedUp))
}

// ------------------------------------------------------------------------------ the command

fn split_field(f: &str, flag: &str) -> Result<(String, String), AppError> {
    match f.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(AppError::usage(format!("{flag} {f:?} is not KEY=VALUE")).hint(format!("e.g. {flag} status=overdue"))),
    }
}

fn read_input(path: &Path) -> Result<Vec<u8>, AppError> {
    let mut bytes = Vec::new();
    let res = if path == Path::new("-") {
        std::io::stdin()
            .lock()
            .take(MAX_INPUT_BYTES as u64 + 1)
            .read_to_end(&mut bytes)
    } else {
        std::fs::File::open(path).and_then(|f| f.take(MAX_INPUT_BYTES as u64 + 1).read_to_end(&mut bytes))
    };
    res.map_err(|e| AppError::usage(format!("cannot read --input {}: {e}", path.display())))?;
    if bytes.len() > MAX_INPUT_BYTES {
        return Err(AppError::usage(format!(
            "--input {} is over {} MiB",
            path.display(),
            MAX_INPUT_BYTES >> 20
        )));
    }
    Ok(bytes)
}

/// How the command prints JSON.
#[derive(Clone, Copy)]
enum Style {
    Pretty,
    Compact,
    Raw,
}

fn print_body(style: Style, bytes: &[u8], json: Option<&Value>) -> Result<(), AppError> {
    // Rendered first, then written through the one stdout writer (a closed pipe ends quietly).
    let rendered = match (style, json) {
        (Style::Pretty, Some(v)) => serde_json::to_vec_pretty(v),
        (Style::Compact, Some(v)) => serde_json::to_vec(v),
        _ => return crate::ui::stdout_bytes(bytes),
    };
    let mut text = rendered.map_err(|e| AppError::new(Exit::Unexpected, format!("cannot render JSON: {e}")))?;
    text.push(b'\n');
    crate::ui::stdout_bytes(&text)
}

/// Runs `zoho-device api`.
pub async fn run(ctx: &Context, args: &ApiArgs) -> Result<(), AppError> {
    if args.method.is_write() && args.paginate {
        return Err(AppError::usage(
            "--paginate follows pages of a GET; it cannot be used with a write",
        ));
    }
    if args.input.is_some() && !matches!(args.method, ApiMethod::Post | ApiMethod::Put) {
        return Err(AppError::usage("--input sends a body, which only POST and PUT carry")
            .hint("add --method POST or --method PUT"));
    }
    if let Some(org) = &args.org
        && !valid_org_id(org)
    {
        return Err(AppError::usage(format!(
            "--org {:?} is not an organization ID (digits)",
            Safe(org).to_string()
        ))
        .hint("list them with `zoho-device books organizations`"));
    }
    let style = if args.raw {
        Style::Raw
    } else if args.json || !std::io::stdout().is_terminal() {
        Style::Compact
    } else {
        Style::Pretty
    };
    // Everything about the request that needs no network is checked first.
    let mut query: Vec<(String, String)> = Vec::new();
    let mut object = serde_json::Map::new();
    let body_fields = matches!(args.method, ApiMethod::Post | ApiMethod::Put) && args.input.is_none();
    for f in &args.fields {
        let (k, v) = split_field(f, "-f")?;
        if body_fields {
            object.insert(k, Value::String(v));
        } else {
            query.push((k, v));
        }
    }
    for f in &args.typed_fields {
        let (k, v) = split_field(f, "-F")?;
        if body_fields {
            let value: Value = serde_json::from_str(&v).map_err(|e| {
                AppError::usage(format!("-F {k}: {v:?} is not JSON ({e})"))
                    .hint("quote strings (-F 'name=\"Mug\"') or use -f for a string")
            })?;
            object.insert(k, value);
        } else {
            query.push((k, v));
        }
    }
    let body = match (&args.input, body_fields) {
        (Some(p), _) => Body::Json(read_input(p)?),
        (None, true) => {
            let json = serde_json::to_string(&Value::Object(object)).unwrap_or_default();
            Body::Form(
                zoho_device_core::http::Form::new()
                    .field("JSONString", &json)
                    .as_bytes()
                    .to_vec(),
            )
        }
        (None, false) => Body::Empty,
    };

    // The pairing's scope decides which APIs may be called; check the path before any network.
    let stored = ctx.store.load_required()?;
    let scope = stored
        .tokens()
        .scope
        .clone()
        .unwrap_or_else(|| ctx.settings.scopes.join(","));
    let allowed = allowed_prefixes(&scope);
    let path = ApiPath::parse(&args.path, &allowed)?;
    let api = ctx.checked_api_domain(&stored)?;
    // A URL with the query alone, to see whether the caller named the organization.
    let probe = build_url(&api, &path, &query, &allowed)?;
    let org_in_query = probe.query_pairs().any(|(k, _)| k == "organization_id");

    let mut session = Session::start(ctx).await?;
    session.include = args.include;
    let given = args.org.clone().or_else(|| ctx.settings.organization_id.clone());
    if let Some(id) = &given
        && !valid_org_id(id)
    {
        return Err(AppError::usage(format!(
            "the config key organization_id {:?} is not an organization ID (digits)",
            Safe(id).to_string()
        ))
        .hint("list them with `zoho-device books organizations`"));
    }
    let mut org: Option<(String, OrgSource)> = None;
    if path.needs_org() && !org_in_query {
        org = Some(
            organization(&mut session, given.as_deref(), false)
                .await
                .map_err(|f| print_failure(style, f))?,
        );
    }
    let mut relooked = false;
    loop {
        let mut extra = query.clone();
        if let Some((id, _)) = &org {
            extra.push(("organization_id".into(), id.clone()));
        }
        let url = build_url(&session.api_domain()?, &path, &extra, &allowed)?;
        let result = if args.paginate {
            paginate(&mut session, &path, &url, args.max_pages).await
        } else {
            call(&mut session, args.method, &path, &url, &body).await
        };
        match result {
            Ok(answer) => return print_body(style, &answer.body, answer.json.as_ref()),
            // A remembered (or looked-up) organization Books no longer knows: look it up again
            // once — the pairing's default may have changed.
            Err(f)
                if !relooked
                    && f.error.exit == Exit::Usage
                    && matches!(org, Some((_, OrgSource::Remembered)))
                    && f.unknown_org() =>
            {
                tracing::warn!("Books does not know the remembered organization (code 6041); looking it up again");
                relooked = true;
                org = Some(
                    organization(&mut session, None, true)
                        .await
                        .map_err(|f| print_failure(style, f))?,
                );
            }
            Err(f) => return Err(print_failure(style, f)),
        }
    }
}

/// Prints Books' JSON of a failed call on stdout (scripts read `code`), returns the error.
fn print_failure(style: Style, f: Failure) -> AppError {
    if let Some(body) = &f.body {
        let json = serde_json::from_slice::<Value>(body).ok();
        if json.is_some() || matches!(style, Style::Raw) {
            let _ = print_body(style, body, json.as_ref());
        }
    }
    f.error
}

/// GETs every page from `url`'s `page` (or 1) while `page_context.has_more_page`, up to
/// `max_pages`, and merges them: the first page's envelope, the list concatenated, the last
/// page's `page_context`.
async fn paginate(
    session: &mut Session<'_>,
    path: &ApiPath,
    url: &url::Url,
    max_pages: Option<u32>,
) -> Result<Answer, Failure> {
    let progress = std::io::stderr().is_terminal();
    let mut page: u64 = url
        .query_pairs()
        .find(|(k, _)| k == "page")
        .and_then(|(_, v)| v.parse().ok())
        .filter(|p| *p >= 1)
        .unwrap_or(1);
    let mut merged: Option<serde_json::Map<String, Value>> = None;
    let mut list_key: Option<String> = None;
    let mut pages = 0_u32;
    loop {
        let answer = call(session, ApiMethod::Get, path, &with_page(url, page), &Body::Empty).await?;
        pages += 1;
        let Some(Value::Object(mut doc)) = answer.json else {
            return Err(AppError::new(Exit::Unexpected, "Books sent a page that is not a JSON object").into());
        };
        let more = doc
            .get("page_context")
            .and_then(|p| p.get("has_more_page"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let key = list_key.get_or_insert_with(|| {
            doc.iter()
                .find(|(k, v)| v.is_array() && k.as_str() != "page_context")
                .map(|(k, _)| k.clone())
                .unwrap_or_default()
        });
        let count = match merged.as_mut() {
            None => {
                let n = doc.get(key.as_str()).and_then(Value::as_array).map_or(0, Vec::len);
                merged = Some(doc);
                n
            }
            Some(m) => {
                let items = doc.remove(key.as_str()).and_then(|v| match v {
                    Value::Array(a) => Some(a),
                    _ => None,
                });
                let list = m.get_mut(key.as_str()).and_then(Value::as_array_mut);
                if let (Some(list), Some(items)) = (list, items) {
                    list.extend(items);
                }
                if let Some(pc) = doc.remove("page_context") {
                    m.insert("page_context".into(), pc);
                }
                m.get(key.as_str()).and_then(Value::as_array).map_or(0, Vec::len)
            }
        };
        if progress {
            eprint!("\r\x1b[Kpage {page}: {count} {} so far", Safe(key));
        }
        if !more || key.is_empty() {
            break;
        }
        if max_pages.is_some_and(|m| pages >= m) {
            if progress {
                eprintln!();
            }
            eprintln!("Stopped after {pages} page(s) (--max-pages); more remain (page_context.has_more_page is true).");
            break;
        }
        page += 1;
    }
    if progress {
        eprint!("\r\x1b[K");
    }
    let doc = Value::Object(merged.unwrap_or_default());
    let body = serde_json::to_vec(&doc).unwrap_or_default();
    Ok(Answer {
        status: 200,
        body,
        json: Some(doc),
        content_type: "application/json".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOOKS: &[&str] = &["/books/v3/"];

    fn refused(input: &str) -> Exit {
        match ApiPath::parse(input, BOOKS) {
            Err(e) => e.exit,
            Ok(p) => panic!("{input} accepted as {p:?}"),
        }
    }

    #[test]
    fn paths_that_would_send_the_token_elsewhere_are_unsafe() {
        for p in [
            "https://evil.example/books/v3/invoices",
            "//evil.example/books/v3/invoices",
            "http:/books/v3/x",
            "/books/v3/../../evil",
            "/books/v3/%2e%2e/x",
            "/books/v3/%2E%2E/x",
            "/books/v3/invoices%2f..%2f..%2fx",
            "/books/v3\\..\\x",
            "/books/v3/./invoices",
            "/books//v3/invoices",
        ] {
            assert_eq!(refused(p), Exit::Unsafe, "{p}");
        }
    }

    #[test]
    fn paths_outside_the_allowed_apis_are_usage_errors() {
        for p in [
            "/crm/v2/Leads",
            "/books/v3/",
            "/books/v3",
            "/oauth/v2/token",
            "/books/v30/x",
            "/x#frag",
        ] {
            assert_eq!(refused(p), Exit::Usage, "{p}");
        }
        let crm = allowed_prefixes("ZohoBooks.settings.READ,ZohoCRM.modules.READ");
        assert!(ApiPath::parse("/crm/v2/Leads", &crm).is_ok());
    }

    #[test]
    fn a_good_path_keeps_its_query_and_gets_the_organization() {
        let p = ApiPath::parse("books/v3/invoices?status=overdue&sort_column=date", BOOKS).unwrap();
        assert_eq!(p.path, "/books/v3/invoices");
        assert!(p.needs_org());
        let api = ServerUrl::parse("https://www.zohoapis.eu").unwrap();
        let url = build_url(&api, &p, &[("organization_id".into(), "123".into())], BOOKS).unwrap();
        assert_eq!(
            url.as_str(),
            "https://www.zohoapis.eu/books/v3/invoices?status=overdue&sort_column=date&organization_id=123"
        );
        let paged = with_page(&url, 3);
        assert!(paged.as_str().ends_with("organization_id=123&page=3"), "{paged}");
        assert!(!ApiPath::parse("/books/v3/organizations", BOOKS).unwrap().needs_org());
    }

    #[test]
    fn query_values_are_encoded_not_interpreted() {
        let p = ApiPath::parse("/books/v3/contacts", BOOKS).unwrap();
        let api = ServerUrl::parse("https://www.zohoapis.com").unwrap();
        let url = build_url(&api, &p, &[("contact_name".into(), "A&B /../#x".into())], BOOKS).unwrap();
        assert_eq!(url.host_str(), Some("www.zohoapis.com"));
        assert_eq!(url.path(), "/books/v3/contacts");
        assert_eq!(url.query_pairs().next().unwrap().1, "A&B /../#x");
    }

    #[test]
    fn scopes_named_after_the_path_and_method() {
        let p = ApiPath::parse("/books/v3/invoices/1", BOOKS).unwrap();
        assert_eq!(p.books_scope(ApiMethod::Post).unwrap(), "ZohoBooks.invoices.CREATE");
        let p = ApiPath::parse("/books/v3/organizations", BOOKS).unwrap();
        assert_eq!(p.books_scope(ApiMethod::Get).unwrap(), "ZohoBooks.settings.READ");
    }

    #[test]
    fn retry_after_and_durations() {
        assert_eq!(retry_after("37"), Some(Duration::from_secs(37)));
        assert_eq!(retry_after("soon"), None);
        assert_eq!(human(Duration::from_secs(42)), "42 s");
        assert_eq!(human(Duration::from_secs(185)), "3 min 5 s");
        assert_eq!(human(Duration::from_secs(3600 + 1200)), "1 h 20 min");
    }
}
