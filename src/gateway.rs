//! `zoho-device agent --serve`: Books for the apps on the device, without handing them the token.
//!
//! A kiosk page or script asks the agent (`GET /books/v3/invoices` on a Unix socket or a
//! loopback port) instead of Books. The gateway:
//!
//! * **forwards** through the same code as `zoho-device api` ([`crate::api`]): the path rules
//!   ([`ApiPath::parse`]: only paths under the APIs the pairing's scope allows, nothing that
//!   could send the token elsewhere), `organization_id` (the query's, else the config key, else
//!   the pairing's default, remembered), the token from the token file the agent keeps fresh,
//!   refreshed once on 401 code 57 through [`Context::force_refresh`], and Books' 429s. The
//!   reply is rebuilt: its status, its `Content-Type` and its body, in which the access token
//!   (should Books ever echo it) is replaced; no header of Books' is passed on.
//! * **is read-only by default**: POST, PUT and DELETE need `--serve-allow-writes`; a write is
//!   never retried once it may have reached Books, never cached, and it empties the cache of
//!   its module.
//! * **caches GET answers** for a TTL (`--cache-ttl`, per path prefix `cache_ttl_paths`):
//!   identical requests while one is on its way wait for it (one upstream call), and when
//!   Books or the network fails the last good answer is served, with `Age` and
//!   `X-Zoho-Device-Stale: <seconds>`; `X-Zoho-Device-Cache` says `hit`, `miss`, `coalesced`
//!   or `stale`. A failure is itself remembered for the TTL (an outage is not hammered).
//! * **budgets**: at most [`PER_MINUTE`] upstream calls in any 60 s per organization, for all
//!   clients together, and a daily budget (`--daily-budget`, Books Free's 1,000 by default)
//!   spread over the UTC day: the TTL becomes `max(TTL, active paths × seconds left today /
//!   calls left today)`, so a tight budget means older data, never a dark screen. Over either
//!   limit the gateway serves what it has (stale) or answers 429 with `Retry-After`. The day's
//!   count is kept beside the token file (`<token file>.budget`, written atomically): a restart
//!   of the agent goes on counting.
//! * **is local only**: Unix sockets (mode 0660, `--serve-group`) and loopback TCP. On TCP
//!   the `Host` header must name the loopback (`localhost`, `127.0.0.1`, `[::1]`: a page on
//!   another name that rebinds its DNS to 127.0.0.1 is refused), a request with an `Origin`
//!   is served only for the configured origins (CORS), one marked `Sec-Fetch-Site: cross-site`
//!   is refused, request targets, headers and bodies are capped, and so are Books' replies.
//!
//! HTTP/1.1 is read here, on the tokio runtime the agent already has and `httparse` (which
//! reqwest's client already links): no HTTP server crate, so the gateway fits the board builds.
//! `HEAD` is answered for every GET path, from the same cache, without the body.
//!
//! `GET /_zoho-device/status` reports calls used, cache figures, the budget left, the token's
//! state and the last error: never a token or secret. `GET /` serves the example dashboard
//! (examples/dashboard/index.html: open invoices, marked stale when Books is down).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use serde_json::json;
use tokio::net::{TcpListener, UnixListener};
use zoho_device_core::Safe;
use zoho_device_core::url;

use crate::api::{self, ApiMethod, ApiPath, Body, Failure, OrgSource, Session};
use crate::app::Context;
use crate::cli::AgentArgs;
use crate::exit::{AppError, Exit};
use crate::settings::{Settings, TtlValue};
use crate::store::{Pairing, wall_now};

/// Books' per-minute limit per organization, kept by all clients together.
pub const PER_MINUTE: usize = 100;
/// Books Free's daily cap: the default daily budget.
pub const FREE_DAILY: u32 = 1000;
/// The default cache lifetime.
pub const DEFAULT_TTL: Duration = Duration::from_secs(60);
/// Longest request target (path and query).
const MAX_TARGET: usize = 4096;
/// Longest request body (writes).
const MAX_REQUEST_BODY: usize = 1 << 20;
/// Largest answer kept in the cache (larger ones are passed on, not kept).
const MAX_CACHED_BODY: usize = 4 << 20;
/// Most paths kept in the cache; the least recently used goes first.
const MAX_ENTRIES: usize = 256;
/// An answer older than this is not served even when Books is down.
const MAX_STALE: Duration = Duration::from_secs(24 * 3600);
/// A path counts as active (for the daily budget) this long after its last request.
const ACTIVE_FOR: Duration = Duration::from_secs(600);
/// Connections served at once.
const MAX_CONNECTIONS: usize = 128;
/// Time for a client to send its request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

// ------------------------------------------------------------------------------ configuration

/// Where the gateway listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// A Unix socket at this path.
    Unix(PathBuf),
    /// A loopback TCP address.
    Tcp(SocketAddr),
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Unix(p) => write!(f, "unix:{}", p.display()),
            Listen::Tcp(a) => write!(f, "{a}"),
        }
    }
}

/// Reads `unix:/ABSOLUTE/PATH`, `127.0.0.1:PORT`, `[::1]:PORT` or `localhost:PORT`. Any
/// other address is refused: the gateway is for the device itself.
pub fn parse_listen(s: &str) -> Result<Listen, AppError> {
    let hint = "use unix:/run/zoho-device/api.sock or 127.0.0.1:PORT (the gateway serves this device only)";
    if let Some(p) = s.strip_prefix("unix:") {
        let path = PathBuf::from(p);
        if !path.is_absolute() {
            return Err(AppError::usage(format!("--serve {s:?}: the socket path must be absolute")).hint(hint));
        }
        return Ok(Listen::Unix(path));
    }
    let addr = match s.strip_prefix("localhost:") {
        Some(port) => port
            .parse::<u16>()
            .ok()
            .map(|p| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), p)),
        None => s.parse::<SocketAddr>().ok(),
    };
    match addr {
        Some(a) if a.ip().is_loopback() => Ok(Listen::Tcp(a)),
        Some(a) => Err(AppError::usage(format!(
            "--serve {s:?}: {} is not a loopback address; the gateway never listens on the network",
            a.ip()
        ))
        .hint(hint)),
        None => Err(AppError::usage(format!("--serve {s:?} is not unix:PATH or HOST:PORT")).hint(hint)),
    }
}

/// Reads a cache lifetime: seconds (`60`), or with a unit (`60s`, `2m`, `1h`).
pub fn parse_ttl(s: &str) -> Result<Duration, AppError> {
    let t = s.trim();
    let (num, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let mult = match unit.trim() {
        "s" | "sec" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        _ => 0,
    };
    match num.parse::<u64>() {
        Ok(n) if mult > 0 && n.checked_mul(mult).is_some_and(|v| v <= 7 * 86_400) => Ok(Duration::from_secs(n * mult)),
        _ => Err(AppError::usage(format!("cache TTL {s:?} is not a duration"))
            .hint("seconds (60), or 60s, 2m, 1h; at most a week; 0 turns caching off")),
    }
}

fn ttl_value(v: &TtlValue) -> Result<Duration, AppError> {
    match v {
        TtlValue::Seconds(n) => parse_ttl(&n.to_string()),
        TtlValue::Text(t) => parse_ttl(t),
    }
}

/// The gateway's settings: flags over the config file.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Where to listen.
    pub listen: Vec<Listen>,
    /// POST, PUT, DELETE passed on.
    pub allow_writes: bool,
    /// Group id of the Unix sockets.
    pub group: Option<u32>,
    /// Origins allowed by CORS (lower case, no trailing slash).
    pub origins: Vec<String>,
    /// Default cache lifetime.
    pub ttl: Duration,
    /// Cache lifetimes by path prefix (the longest that matches applies).
    pub ttl_prefixes: Vec<(String, Duration)>,
    /// Calls a day.
    pub daily_budget: u32,
}

impl GatewayConfig {
    /// The gateway asked for by flags and config, or `None` when nothing is to be served.
    pub fn resolve(settings: &Settings, args: &AgentArgs) -> Result<Option<GatewayConfig>, AppError> {
        let file = &settings.serve;
        let addrs = if args.serve.is_empty() {
            &file.serve
        } else {
            &args.serve
        };
        if addrs.is_empty() {
            return Ok(None);
        }
        let listen = addrs.iter().map(|a| parse_listen(a)).collect::<Result<Vec<_>, _>>()?;
        let ttl = match (&args.cache_ttl, &file.cache_ttl) {
            (Some(t), _) => parse_ttl(t)?,
            (None, Some(v)) => ttl_value(v)?,
            (None, None) => DEFAULT_TTL,
        };
        let mut ttl_prefixes = Vec::new();
        for (prefix, v) in &file.cache_ttl_paths {
            if !prefix.starts_with('/') {
                return Err(
                    AppError::usage(format!("config: cache_ttl_paths key {prefix:?} is not a path"))
                        .hint("e.g. cache_ttl_paths = { \"/books/v3/organizations\" = \"1h\" }"),
                );
            }
            ttl_prefixes.push((prefix.clone(), ttl_value(v)?));
        }
        let origins = if args.serve_origins.is_empty() {
            &file.origins
        } else {
            &args.serve_origins
        };
        let origins = origins
            .iter()
            .map(|o| {
                let o = o.trim_end_matches('/').to_ascii_lowercase();
                if (o.starts_with("http://") || o.starts_with("https://")) && !o["https://".len() - 1..].contains('/') {
                    Ok(o)
                } else {
                    Err(AppError::usage(format!("--serve-origin {o:?} is not an origin"))
                        .hint("scheme, host and port only: http://localhost:8080"))
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        let group = match args.serve_group.as_ref().or(file.group.as_ref()) {
            Some(g) => Some(group_id(g)?),
            None => None,
        };
        let daily_budget = args.daily_budget.or(file.daily_budget).unwrap_or(FREE_DAILY);
        if daily_budget == 0 {
            return Err(AppError::usage("--daily-budget 0 would never call Books").hint("the Free plan allows 1000"));
        }
        Ok(Some(GatewayConfig {
            listen,
            allow_writes: args.serve_allow_writes || file.allow_writes,
            group,
            origins,
            ttl,
            ttl_prefixes,
            daily_budget,
        }))
    }

    /// The configured lifetime of a path (longest prefix), before budget stretching.
    pub fn ttl_for(&self, path: &str) -> Duration {
        self.ttl_prefixes
            .iter()
            .filter(|(p, _)| path.starts_with(p.as_str()))
            .max_by_key(|(p, _)| p.len())
            .map_or(self.ttl, |(_, t)| *t)
    }
}

/// A group name (from /etc/group) or number.
fn group_id(g: &str) -> Result<u32, AppError> {
    if let Ok(n) = g.parse() {
        return Ok(n);
    }
    let text = std::fs::read_to_string("/etc/group").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            Some((f.next()?, f.nth(1)?))
        })
        .find(|(name, _)| *name == g)
        .and_then(|(_, id)| id.parse().ok())
        .ok_or_else(|| {
            AppError::usage(format!("--serve-group {:?}: no such group", Safe(g).to_string()))
                .hint("give a group from /etc/group (e.g. the kiosk user's), or its number")
        })
}

/// The lifetime for a path whose base lifetime is `base`, given the daily budget: long enough
/// that `active` paths, each fetched once per lifetime, last the `secs_left` of the day on the
/// `used` calls of `budget`.
pub fn stretched_ttl(base: Duration, active: usize, used: u32, budget: u32, secs_left: u64) -> Duration {
    let left = u64::from(budget.saturating_sub(used));
    if left == 0 {
        return Duration::from_secs(secs_left.max(1)).max(base);
    }
    let need = (active.max(1) as u64).saturating_mul(secs_left) / left;
    base.max(Duration::from_secs(need))
}

// ------------------------------------------------------------------------------ state

/// A cached answer.
#[derive(Clone)]
struct Entry {
    status: u16,
    content_type: String,
    body: Bytes,
    at: Instant,
}

/// One cached path: its answer, its last failure, and the gate that lets one request at a
/// time go upstream.
struct Slot {
    entry: Option<Entry>,
    failed: Option<(Instant, Entry)>,
    gate: Arc<tokio::sync::Mutex<()>>,
    used: Instant,
}

#[derive(Default)]
struct Stats {
    upstream_calls: u64,
    hits: u64,
    misses: u64,
    coalesced: u64,
    stale: u64,
    limited: u64,
    last_error: Option<(u64, String)>,
}

#[derive(Default)]
struct Budget {
    minute: HashMap<String, VecDeque<Instant>>,
    day: u64,
    used_today: u32,
}

/// What `<token file>.budget` holds: the upstream calls of one UTC day, so that a restart of
/// the agent (an upgrade, a crash, a reboot) does not hand out the day's budget a second time.
#[derive(serde::Serialize, serde::Deserialize)]
struct BudgetFile {
    version: u32,
    /// Days since 1970-01-01, UTC.
    day: u64,
    used: u32,
}

/// The calls already made today, from the budget file: 0 when it is missing, of another day,
/// not a regular file (a link is not followed) or not readable as one.
fn load_budget(path: &Path, today: u64) -> u32 {
    let Ok(bytes) = crate::settings::read_regular_file(path, 4096, false) else {
        return 0;
    };
    match serde_json::from_slice::<BudgetFile>(&bytes) {
        Ok(f) if f.version == 1 && f.day == today => f.used,
        _ => 0,
    }
}

struct Gateway {
    ctx: Context,
    config: GatewayConfig,
    cache: Mutex<HashMap<String, Slot>>,
    stats: Mutex<Stats>,
    budget: Mutex<Budget>,
    org: tokio::sync::Mutex<Option<(String, OrgSource)>>,
    started: Instant,
    /// Keeps the day's count on disk (`<token file>.budget`).
    budget_saver: Arc<BudgetSaver>,
    /// The API prefixes the pairing's scope allows, with the token file's stamp they were read
    /// at: a request (a cache hit too) costs a `stat`, not a read and a parse of the file.
    allowed: Mutex<Option<(FileStamp, Vec<&'static str>)>>,
}

/// What tells that the token file was replaced or rewritten: device, inode, size, mtime (ns).
type FileStamp = (u64, u64, u64, i64, i64);

fn file_stamp(path: &Path) -> Option<FileStamp> {
    use std::os::unix::fs::MetadataExt;
    // Not followed: the store never reads the file through a link either.
    let m = std::fs::symlink_metadata(path).ok()?;
    Some((m.dev(), m.ino(), m.len(), m.mtime(), m.mtime_nsec()))
}

/// Writes the day's count off the gateway's thread (an atomic write syncs twice: milliseconds
/// on a disk, more on an SD card, which every client would otherwise wait for): one writer at a
/// time, always the latest count, so the file never goes back to an older one. The gateway's
/// runtime waits for the writer when it stops.
struct BudgetSaver {
    path: PathBuf,
    /// The count to write next, and whether a writer is at work.
    pending: Mutex<(Option<BudgetFile>, bool)>,
    /// Whether a failed write was reported (once is enough).
    warned: std::sync::atomic::AtomicBool,
}

impl BudgetSaver {
    fn save(self: &Arc<Self>, file: BudgetFile) {
        let mut pending = lock(&self.pending);
        pending.0 = Some(file);
        if pending.1 {
            return;
        }
        pending.1 = true;
        drop(pending);
        let saver = self.clone();
        tokio::task::spawn_blocking(move || saver.write_pending());
    }

    fn write_pending(&self) {
        loop {
            let file = {
                let mut pending = lock(&self.pending);
                match pending.0.take() {
                    Some(f) => f,
                    None => {
                        pending.1 = false;
                        return;
                    }
                }
            };
            let mut bytes = serde_json::to_vec(&file).unwrap_or_default();
            bytes.push(b'\n');
            // Atomically, never through a link: [`crate::store::write_atomically`].
            if let Err(e) = crate::store::write_atomically(&self.path, &bytes)
                && !self.warned.swap(true, std::sync::atomic::Ordering::Relaxed)
            {
                tracing::warn!(
                    "gateway: cannot keep the day's call count in {} ({e}); a restart would count from 0",
                    self.path.display()
                );
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn utc_day_and_left() -> (u64, u64) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    (now / 86_400, 86_400 - now % 86_400)
}

impl Gateway {
    /// Takes one upstream call from the budgets of `org`, or says how long until there is one.
    fn take_call(&self, org: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let (day, left) = utc_day_and_left();
        let mut b = lock(&self.budget);
        if b.day != day {
            b.day = day;
            b.used_today = 0;
        }
        if b.used_today >= self.config.daily_budget {
            return Err(Duration::from_secs(left));
        }
        let window = b.minute.entry(org.to_string()).or_default();
        while window
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            window.pop_front();
        }
        if window.len() >= PER_MINUTE {
            let oldest = *window.front().expect("a full window");
            return Err(Duration::from_secs(60).saturating_sub(now.duration_since(oldest)) + Duration::from_secs(1));
        }
        window.push_back(now);
        b.used_today += 1;
        let file = BudgetFile {
            version: 1,
            day,
            used: b.used_today,
        };
        drop(b);
        lock(&self.stats).upstream_calls += 1;
        self.budget_saver.save(file);
        Ok(())
    }

    /// The lifetime of `path` now: its configured one, stretched by the daily budget.
    fn ttl(&self, path: &str) -> Duration {
        let base = self.config.ttl_for(path);
        let active = {
            let cache = lock(&self.cache);
            cache.values().filter(|s| s.used.elapsed() < ACTIVE_FOR).count()
        };
        let (day, left) = utc_day_and_left();
        let used = {
            let b = lock(&self.budget);
            if b.day == day { b.used_today } else { 0 }
        };
        stretched_ttl(base, active, used, self.config.daily_budget, left)
    }

    fn note_error(&self, message: &str) {
        let at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        lock(&self.stats).last_error = Some((at, message.to_string()));
    }
}

// ------------------------------------------------------------------------------ starting

/// A running gateway (on a thread of its own, with its own single-threaded runtime: the
/// agent's loop is never slowed by a client); dropping it stops the gateway (and waits for
/// the thread: the day's count is on disk when the agent exits) and removes its Unix sockets.
pub struct Running {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    sockets: Vec<PathBuf>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        for s in &self.sockets {
            let _ = std::fs::remove_file(s);
        }
    }
}

enum Bound {
    Tcp(TcpListener),
    Unix(UnixListener),
}

/// Starts the gateway the flags and config ask for (none: `Ok(None)`). Binding errors are the
/// agent's start errors (exit 2).
pub async fn start(settings: &Settings, args: &AgentArgs) -> Result<Option<Running>, AppError> {
    let Some(config) = GatewayConfig::resolve(settings, args)? else {
        return Ok(None);
    };
    let settings = settings.clone();
    let sockets: Vec<PathBuf> = config
        .listen
        .iter()
        .filter_map(|l| match l {
            Listen::Unix(p) => Some(p.clone()),
            Listen::Tcp(_) => None,
        })
        .collect();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Result<(), AppError>>();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new().name("gateway".into()).spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                let _ = ready_tx.send(Err(AppError::new(
                    Exit::Unexpected,
                    format!("cannot start the gateway: {e}"),
                )));
                return;
            }
        };
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, async move {
            let ctx = match Context::new(settings) {
                Ok(c) => c,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let mut bound = Vec::new();
            for listen in &config.listen {
                let b = match listen {
                    Listen::Tcp(addr) => TcpListener::bind(addr).await.map(Bound::Tcp),
                    Listen::Unix(path) => bind_unix(path, config.group).map(Bound::Unix),
                };
                match b {
                    Ok(b) => bound.push(b),
                    Err(e) => {
                        let _ = ready_tx.send(Err(bind_error(listen, &e)));
                        return;
                    }
                }
                tracing::info!(
                    "gateway serving Books on {listen} (cache TTL {} s, daily budget {}, writes {})",
                    config.ttl.as_secs(),
                    config.daily_budget,
                    if config.allow_writes { "allowed" } else { "refused" }
                );
                if config.allow_writes && matches!(listen, Listen::Tcp(_)) {
                    tracing::warn!(
                        "{listen} is open to every local user and program on this device, and writes are allowed: any of them can change Books through it; serve writes on a unix: socket instead (its group decides who may)"
                    );
                }
            }
            let budget_file = ctx.store.beside(crate::store::Beside::Budget);
            let (day, _) = utc_day_and_left();
            let budget = Budget {
                day,
                used_today: load_budget(&budget_file, day),
                ..Budget::default()
            };
            let gw = Arc::new(Gateway {
                ctx,
                config,
                cache: Mutex::new(HashMap::new()),
                stats: Mutex::new(Stats::default()),
                budget: Mutex::new(budget),
                org: tokio::sync::Mutex::new(None),
                started: Instant::now(),
                allowed: Mutex::new(None),
                budget_saver: Arc::new(BudgetSaver {
                    path: budget_file,
                    pending: Mutex::new((None, false)),
                    warned: std::sync::atomic::AtomicBool::new(false),
                }),
            });
            let conns = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
            for b in bound {
                let (gw, conns) = (gw.clone(), conns.clone());
                tokio::task::spawn_local(async move {
                    loop {
                        match &b {
                            // Over the connection cap, new clients wait in the listen backlog.
                            Bound::Tcp(l) => {
                                let Ok(permit) = conns.clone().acquire_owned().await else {
                                    return;
                                };
                                if let Ok((s, _)) = l.accept().await {
                                    serve_connection(gw.clone(), permit, s, true);
                                }
                            }
                            Bound::Unix(l) => {
                                let Ok(permit) = conns.clone().acquire_owned().await else {
                                    return;
                                };
                                if let Ok((s, _)) = l.accept().await {
                                    serve_connection(gw.clone(), permit, s, false);
                                }
                            }
                        }
                    }
                });
            }
            let _ = ready_tx.send(Ok(()));
            let _ = stop_rx.await;
        });
        // The day's count is written by a blocking task; so are a refresh waiting for the
        // token file's lock (up to a minute) and a DNS lookup. Stopping waits for the first,
        // not for the others: a `systemctl stop` must not wait out a lock.
        rt.shutdown_timeout(SHUTDOWN_WAIT);
    });
    let thread = match thread {
        Ok(t) => t,
        Err(e) => {
            return Err(AppError::new(
                Exit::Unexpected,
                format!("cannot start the gateway: {e}"),
            ));
        }
    };
    match ready_rx.await {
        Ok(Ok(())) => Ok(Some(Running {
            stop: Some(stop_tx),
            thread: Some(thread),
            sockets,
        })),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(AppError::new(Exit::Unexpected, "the gateway stopped while starting")),
    }
}

fn bind_error(listen: &Listen, e: &std::io::Error) -> AppError {
    AppError::usage(format!("cannot serve on {listen}: {e}")).hint(
        "pick a free port, or a socket path in a directory this user may write (systemd: RuntimeDirectory=zoho-device)",
    )
}

/// Binds a Unix socket: a stale socket left by a previous run is replaced (anything else at the
/// path is not touched); then mode 0660 and the group.
fn bind_unix(path: &Path, group: Option<u32>) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path)?,
        Ok(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "something other than a socket is at that path",
            ));
        }
        Err(_) => {}
    }
    let l = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    if let Some(gid) = group {
        std::os::unix::fs::lchown(path, None, Some(gid))?;
    }
    Ok(l)
}

fn serve_connection<S>(gw: Arc<Gateway>, permit: tokio::sync::OwnedSemaphorePermit, stream: S, tcp: bool)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + 'static,
{
    tokio::task::spawn_local(async move {
        let _permit = permit;
        let _ = connection(&gw, stream, tcp).await;
    });
}

// ------------------------------------------------------------------------------ HTTP/1.1

/// How long stopping the gateway waits for its blocking tasks (the day's count on disk).
const SHUTDOWN_WAIT: Duration = Duration::from_secs(3);

/// Longest request head (request line and headers).
const MAX_HEAD: usize = 16 * 1024;
/// Most request headers.
const MAX_HEADERS: usize = 64;
/// Time for a client to send a request body, and to take an answer.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// A request head, parsed.
struct Head {
    method: Method,
    target: String,
    http11: bool,
    headers: HeaderMap,
}

/// What became of reading a head.
enum Read {
    Head(Head, usize),
    Refused(Resp),
    More,
}

/// One client connection: requests one after the other (keep-alive in HTTP/1.1), each head
/// read within [`HEADER_TIMEOUT`] (from the first wait: an idle connection is closed too) and
/// at most [`MAX_HEAD`] bytes and [`MAX_HEADERS`] headers, each body given by `Content-Length`
/// (no chunked request bodies: 411) and at most [`MAX_REQUEST_BODY`] within [`BODY_TIMEOUT`].
/// A request that cannot be read is answered and the connection closed (where the next
/// request would start is not known).
async fn connection<S>(gw: &Gateway, mut io: S, tcp: bool) -> std::io::Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::AsyncReadExt;
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    loop {
        let deadline = tokio::time::Instant::now() + HEADER_TIMEOUT;
        // Parsed again only when a line may have ended (a head sent a byte at a time costs a
        // parse per line, not per byte).
        let mut parse = !buf.is_empty();
        let (head, head_len) = loop {
            if parse {
                match read_head(&buf) {
                    Read::Head(h, n) => break (h, n),
                    Read::Refused(r) => return refuse(&mut io, &r).await,
                    Read::More => {}
                }
            }
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout_at(deadline, io.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return Ok(()),
                Ok(Ok(n)) => {
                    buf.extend_from_slice(&chunk[..n]);
                    parse = chunk[..n].contains(&b'\n') || buf.len() >= MAX_HEAD;
                }
            }
        };
        buf.drain(..head_len);
        let keep_alive = head.http11
            && !head
                .headers
                .get_all(header::CONNECTION)
                .iter()
                .any(|v| v.to_str().unwrap_or_default().to_ascii_lowercase().contains("close"));
        if head.headers.contains_key(header::TRANSFER_ENCODING) {
            let r = error_response(
                StatusCode::LENGTH_REQUIRED,
                "length_required",
                "send the request body with Content-Length (chunked bodies are not taken)",
            );
            return refuse(&mut io, &r).await;
        }
        let mut lengths = head.headers.get_all(header::CONTENT_LENGTH).iter();
        let len = match (lengths.next(), lengths.next()) {
            (None, _) => Some(0),
            // 1*DIGIT (RFC 9110): not the sign or blanks Rust's integer parser would also take.
            (Some(v), None) if !v.is_empty() && v.as_bytes().iter().all(u8::is_ascii_digit) => {
                v.to_str().ok().and_then(|v| v.parse::<usize>().ok())
            }
            (Some(_), None) => None,
            (Some(_), Some(_)) => None,
        };
        let len = match len {
            Some(n) if n <= MAX_REQUEST_BODY => n,
            Some(_) => {
                let r = error_response(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    "the request body is over 1 MiB",
                );
                return refuse(&mut io, &r).await;
            }
            None => {
                let r = error_response(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    "Content-Length is not one number",
                );
                return refuse(&mut io, &r).await;
            }
        };
        // Only origin-form targets (`/books/v3/…`): an absolute URL names a host this
        // gateway does not check.
        let uri = match http::Uri::try_from(head.target) {
            Ok(uri) if uri.scheme().is_none() && uri.authority().is_none() && uri.path().starts_with('/') => uri,
            _ => {
                let r = error_response(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    "the request target must be a path (/books/v3/…)",
                );
                return refuse(&mut io, &r).await;
            }
        };
        // Everything the head decides is decided before a byte of the body is read: a request
        // the gateway refuses is never buffered, nor told to go on (100 Continue).
        let target = uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_default();
        let origin = match admit(gw, &head.headers, &target, tcp) {
            Ok(origin) => origin,
            Err(r) if len == 0 => {
                send(
                    &mut io,
                    &with_common_headers(*r, None),
                    head.method == Method::HEAD,
                    keep_alive,
                )
                .await?;
                if !keep_alive {
                    return Ok(());
                }
                continue;
            }
            Err(r) => return refuse(&mut io, &with_common_headers(*r, None)).await,
        };
        if len > 0 && !takes_body(gw, &head.method) {
            let r = if is_write(&head.method) {
                writes_refused()
            } else {
                error_response(
                    StatusCode::BAD_REQUEST,
                    "body_refused",
                    "only POST, PUT and DELETE carry a body",
                )
            };
            return refuse(&mut io, &with_common_headers(r, origin)).await;
        }
        if buf.len() < len
            && head
                .headers
                .get(header::EXPECT)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
        {
            write_timed(&mut io, b"HTTP/1.1 100 Continue\r\n\r\n").await?;
        }
        let deadline = tokio::time::Instant::now() + BODY_TIMEOUT;
        buf.reserve(len.saturating_sub(buf.len()));
        while buf.len() < len {
            let mut chunk = [0u8; 16 * 1024];
            let want = (len - buf.len()).min(chunk.len());
            match tokio::time::timeout_at(deadline, io.read(&mut chunk[..want])).await {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return Ok(()),
                Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body = Bytes::copy_from_slice(&buf[..len]);
        buf.drain(..len);
        // A body's room is not kept for the rest of a keep-alive connection.
        buf.shrink_to(4096);
        let head_only = head.method == Method::HEAD;
        let mut req = Request::new(body);
        *req.method_mut() = head.method;
        *req.uri_mut() = uri;
        *req.headers_mut() = head.headers;
        let resp = with_common_headers(route(gw, req, &target).await, origin);
        send(&mut io, &resp, head_only, keep_alive).await?;
        if !keep_alive {
            return Ok(());
        }
    }
}

/// Answers `resp` and closes the connection, reading (and dropping) for a moment what the
/// client still sends: closing with unread input would make TCP reset the connection, and the
/// client could lose the answer.
async fn refuse<S>(io: &mut S, resp: &Resp) -> std::io::Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::AsyncReadExt;
    send(io, resp, false, false).await?;
    let deadline = tokio::time::Instant::now() + LINGER;
    let mut drained = 0;
    let mut chunk = [0u8; 16 * 1024];
    while drained < MAX_REQUEST_BODY + MAX_HEAD {
        match tokio::time::timeout_at(deadline, io.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => drained += n,
            _ => break,
        }
    }
    Ok(())
}

/// How long [`refuse`] reads what a refused client still sends.
const LINGER: Duration = Duration::from_millis(500);

/// Whether `method` may carry a body to Books (writes, when allowed).
fn takes_body(gw: &Gateway, method: &Method) -> bool {
    gw.config.allow_writes && is_write(method)
}

fn is_write(method: &Method) -> bool {
    *method == Method::POST || *method == Method::PUT || *method == Method::DELETE
}

/// Parses the head at the start of `buf`: complete, not yet (read more), or refused.
fn read_head(buf: &[u8]) -> Read {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let too_large = || {
        Read::Refused(error_response(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "head_too_large",
            "the request line and headers are over 16 KiB or 64 headers",
        ))
    };
    let bad = |what: &str| Read::Refused(error_response(StatusCode::BAD_REQUEST, "bad_request", what));
    match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) if n <= MAX_HEAD => {
            let Some(method) = req.method.and_then(|m| Method::from_bytes(m.as_bytes()).ok()) else {
                return bad("no method");
            };
            let mut map = HeaderMap::with_capacity(req.headers.len());
            for h in req.headers.iter() {
                match (
                    HeaderName::from_bytes(h.name.as_bytes()),
                    HeaderValue::from_bytes(h.value),
                ) {
                    (Ok(k), Ok(v)) => {
                        map.append(k, v);
                    }
                    _ => return bad("a header that is not HTTP"),
                }
            }
            Read::Head(
                Head {
                    method,
                    target: req.path.unwrap_or_default().to_string(),
                    http11: req.version == Some(1),
                    headers: map,
                },
                n,
            )
        }
        Ok(httparse::Status::Complete(_)) | Err(httparse::Error::TooManyHeaders) => too_large(),
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => too_large(),
        Ok(httparse::Status::Partial) => Read::More,
        Err(_) => bad("not an HTTP/1 request"),
    }
}

async fn write_timed<S: tokio::io::AsyncWrite + Unpin>(io: &mut S, bytes: &[u8]) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    match tokio::time::timeout(BODY_TIMEOUT, io.write_all(bytes)).await {
        Ok(r) => r,
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

/// Writes `resp` (the head only for HEAD: its `Content-Length` is the body's a GET gets).
async fn send<S: tokio::io::AsyncWrite + Unpin>(
    io: &mut S,
    resp: &Resp,
    head_only: bool,
    keep_alive: bool,
) -> std::io::Result<()> {
    use std::io::Write;
    let status = resp.status();
    let mut head = Vec::with_capacity(512);
    let _ = write!(
        head,
        "HTTP/1.1 {} {}\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    for (k, v) in resp.headers() {
        head.extend_from_slice(k.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(v.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    if status != StatusCode::NO_CONTENT {
        let _ = write!(head, "content-length: {}\r\n", resp.body().len());
    }
    let _ = write!(head, "date: {}\r\n", httpdate::fmt_http_date(SystemTime::now()));
    if !keep_alive {
        head.extend_from_slice(b"connection: close\r\n");
    }
    head.extend_from_slice(b"\r\n");
    if !head_only && status != StatusCode::NO_CONTENT {
        head.extend_from_slice(resp.body());
    }
    write_timed(io, &head).await?;
    if !keep_alive {
        use tokio::io::AsyncWriteExt;
        let _ = io.shutdown().await;
    }
    Ok(())
}

// ------------------------------------------------------------------------------ requests

type Resp = Response<Bytes>;

fn error_response(status: StatusCode, error: &str, message: &str) -> Resp {
    let body = json!({ "error": error, "message": message });
    let mut r = Response::new(Bytes::from(body.to_string()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// Whether `host` (a `Host` header) names the loopback.
pub fn loopback_host(host: &str) -> bool {
    let h = host.trim().to_ascii_lowercase();
    let name = if let Some(rest) = h.strip_prefix('[') {
        match rest.split_once(']') {
            Some((ip, port)) if port.is_empty() || port.strip_prefix(':').is_some_and(|p| p.parse::<u16>().is_ok()) => {
                return ip == "::1";
            }
            _ => return false,
        }
    } else {
        match h.split_once(':') {
            Some((n, p)) if p.parse::<u16>().is_ok() => n.to_string(),
            Some(_) => return false,
            None => h,
        }
    };
    name == "localhost" || name == "127.0.0.1"
}

/// What the head alone decides: the target's length, a loopback `Host` (TCP), the `Origin`
/// (CORS) and `Sec-Fetch-Site`. `Ok`: the origin to answer to, if any.
fn admit(gw: &Gateway, headers: &HeaderMap, target: &str, tcp: bool) -> Result<Option<String>, Box<Resp>> {
    if target.len() > MAX_TARGET {
        return Err(Box::new(error_response(
            StatusCode::URI_TOO_LONG,
            "target_too_long",
            "the path and query are too long",
        )));
    }
    let mut hosts = headers.get_all(header::HOST).iter();
    let host = match (hosts.next(), hosts.next()) {
        (host, None) => host.and_then(|v| v.to_str().ok()),
        (_, Some(_)) => {
            return Err(Box::new(error_response(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "one Host header",
            )));
        }
    };
    if tcp && !host.is_some_and(loopback_host) {
        return Err(Box::new(error_response(
            StatusCode::FORBIDDEN,
            "host_refused",
            "the Host header must be localhost, 127.0.0.1 or [::1]",
        )));
    }
    let origin = match headers.get(header::ORIGIN) {
        None => None,
        Some(o) => {
            let o = o.to_str().unwrap_or_default().to_ascii_lowercase();
            let same = host.is_some_and(|h| o == format!("http://{}", h.to_ascii_lowercase()));
            if !same && !gw.config.origins.contains(&o) {
                return Err(Box::new(error_response(
                    StatusCode::FORBIDDEN,
                    "origin_refused",
                    "this origin may not call the gateway (add it with --serve-origin)",
                )));
            }
            Some(o)
        }
    };
    // A page of another site loading a URL without CORS (an <img>, a <script>) sends no
    // Origin, but browsers say where the request comes from.
    if origin.is_none()
        && headers
            .get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"))
    {
        return Err(Box::new(error_response(
            StatusCode::FORBIDDEN,
            "origin_refused",
            "a page of another site may not call the gateway",
        )));
    }
    Ok(origin)
}

/// The headers every answer carries, and CORS's for an admitted `origin`.
fn with_common_headers(mut resp: Resp, origin: Option<String>) -> Resp {
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    if let Some(o) = origin.and_then(|o| HeaderValue::from_str(&o).ok()) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("Age, X-Zoho-Device-Cache, X-Zoho-Device-Stale"),
        );
    }
    resp
}

fn writes_refused() -> Resp {
    let mut r = error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "writes_refused",
        "the gateway is read-only; start the agent with --serve-allow-writes to pass writes on",
    );
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    r
}

async fn route(gw: &Gateway, req: Request<Bytes>, target: &str) -> Resp {
    let path = target.split('?').next().unwrap_or_default();
    let method = req.method().clone();
    if method == Method::OPTIONS {
        let mut r = Response::new(Bytes::new());
        *r.status_mut() = StatusCode::NO_CONTENT;
        let methods = if gw.config.allow_writes {
            "GET, HEAD, POST, PUT, DELETE"
        } else {
            "GET, HEAD"
        };
        let h = r.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(methods));
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("Content-Type"),
        );
        h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
        return r;
    }
    // HEAD is a GET without the body (the connection leaves it out): the same cache, the same
    // upstream call on a miss.
    let reads = method == Method::GET || method == Method::HEAD;
    if path == "/_zoho-device/status" && reads {
        return status(gw);
    }
    if (path == "/" || path == "/_zoho-device/dashboard") && reads {
        return dashboard();
    }
    let api_method = match method {
        Method::GET | Method::HEAD => ApiMethod::Get,
        Method::POST => ApiMethod::Post,
        Method::PUT => ApiMethod::Put,
        Method::DELETE => ApiMethod::Delete,
        _ => {
            return error_response(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "GET and HEAD only (writes: POST, PUT, DELETE with --serve-allow-writes)",
            );
        }
    };
    if api_method != ApiMethod::Get && !gw.config.allow_writes {
        return writes_refused();
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    // Read whole by the connection, within MAX_REQUEST_BODY.
    let body = req.into_body();
    // Path rules of `api`, against the scope of the pairing in the token file.
    let allowed = match allowed_prefixes(gw) {
        Ok(a) => a,
        Err(e) => return app_error(gw, &e),
    };
    let api_path = match ApiPath::parse(target, &allowed) {
        Ok(p) => p,
        Err(e) if e.exit == Exit::Usage => return error_response(StatusCode::NOT_FOUND, "path_refused", &e.message),
        Err(e) => return error_response(StatusCode::BAD_REQUEST, "path_refused", &e.message),
    };
    if api_method == ApiMethod::Get {
        get(gw, &api_path, &allowed).await
    } else {
        let body = if body.is_empty() {
            Body::Empty
        } else if content_type.starts_with("application/json") {
            Body::Json(body.to_vec())
        } else {
            Body::Form(body.to_vec())
        };
        write(gw, api_method, &api_path, &allowed, &body).await
    }
}

/// The HTTP answer to an error of ours (not Books').
/// The API prefixes the current pairing's scope allows (`api`'s rule), read from the token
/// file again only when the file changed since the last request (a new pairing may have
/// another scope).
fn allowed_prefixes(gw: &Gateway) -> Result<Vec<&'static str>, AppError> {
    let stamp = file_stamp(gw.ctx.store.path());
    if let (Some(now), Some((seen, allowed))) = (stamp, lock(&gw.allowed).as_ref())
        && now == *seen
    {
        return Ok(allowed.clone());
    }
    let stored = gw.ctx.store.load_required()?;
    let scope = stored
        .tokens()
        .scope
        .clone()
        .unwrap_or_else(|| gw.ctx.settings.scopes.join(","));
    let allowed = api::allowed_prefixes(&scope);
    // Keyed by the stamp taken before the read: a file replaced meanwhile has a new stamp, and
    // the next request reads it again.
    *lock(&gw.allowed) = stamp.map(|s| (s, allowed.clone()));
    Ok(allowed)
}

fn app_error(gw: &Gateway, e: &AppError) -> Resp {
    gw.note_error(&e.message);
    let (status, kind) = match e.exit {
        Exit::NeedsPairing => (StatusCode::SERVICE_UNAVAILABLE, "needs_pairing"),
        Exit::Unavailable => (StatusCode::BAD_GATEWAY, "unavailable"),
        Exit::Usage => (StatusCode::BAD_REQUEST, "bad_request"),
        Exit::Unsafe => (StatusCode::BAD_REQUEST, "unsafe"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    };
    error_response(status, kind, &e.message)
}

/// A cache key: the path and query as given.
fn key(path: &ApiPath) -> String {
    match &path.query {
        Some(q) => format!("{}?{q}", path.path),
        None => path.path.clone(),
    }
}

fn answer_response(entry: &Entry, cache: &str) -> Resp {
    let mut r = Response::new(entry.body.clone());
    *r.status_mut() = StatusCode::from_u16(entry.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let h = r.headers_mut();
    let ct = HeaderValue::from_str(&entry.content_type)
        .ok()
        .filter(|_| !entry.content_type.is_empty() && entry.content_type.len() <= 128)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    h.insert(header::CONTENT_TYPE, ct);
    h.insert(header::AGE, HeaderValue::from(entry.at.elapsed().as_secs()));
    h.insert(
        "x-zoho-device-cache",
        HeaderValue::from_str(cache).unwrap_or(HeaderValue::from_static("miss")),
    );
    r
}

fn stale_response(gw: &Gateway, entry: &Entry, why: &str) -> Resp {
    lock(&gw.stats).stale += 1;
    let mut r = answer_response(entry, "stale");
    r.headers_mut()
        .insert("x-zoho-device-stale", HeaderValue::from(entry.at.elapsed().as_secs()));
    tracing::debug!("gateway: serving a stale answer ({why})");
    r
}

/// Replaces every occurrence of the access tokens in `body`.
fn redact(body: &[u8], tokens: &[&Pairing]) -> Bytes {
    let mut out = body.to_vec();
    for t in tokens {
        let secret = t.tokens().access_token.expose().as_bytes();
        if secret.len() < 8 {
            continue;
        }
        let mut i = 0;
        let mut clean = Vec::with_capacity(out.len());
        while i < out.len() {
            if out[i..].starts_with(secret) {
                clean.extend_from_slice(b"[redacted]");
                i += secret.len();
            } else {
                clean.push(out[i]);
                i += 1;
            }
        }
        out = clean;
    }
    Bytes::from(out)
}

/// The organization for Books paths: resolved once (config key, remembered, else asked).
async fn org_for(gw: &Gateway, session: &mut Session<'_>, fresh: bool) -> Result<(String, OrgSource), Failure> {
    let mut org = gw.org.lock().await;
    if !fresh && let Some(o) = org.as_ref() {
        return Ok(o.clone());
    }
    let given = gw.ctx.settings.organization_id.clone();
    let found = api::organization(session, given.as_deref(), fresh).await?;
    if found.1 == OrgSource::LookedUp {
        let _ = gw.take_call(&found.0);
    }
    *org = Some(found.clone());
    Ok(found)
}

/// One upstream call (with the organization, and a second look-up after Books' 6041 for a
/// remembered one), budgets taken.
async fn upstream(
    gw: &Gateway,
    method: ApiMethod,
    path: &ApiPath,
    allowed: &[&str],
    body: &Body,
) -> Result<Result<Entry, (Failure, Vec<Pairing>)>, Duration> {
    let mut session = match Session::start(&gw.ctx).await {
        Ok(s) => s,
        Err(e) => return Ok(Err((e.into(), Vec::new()))),
    };
    let org_in_query = path
        .query
        .as_deref()
        .is_some_and(|q| url::form_urlencoded::parse(q.as_bytes()).any(|(k, _)| k == "organization_id"));
    let mut org = None;
    if path.needs_org() && !org_in_query {
        match org_for(gw, &mut session, false).await {
            Ok(o) => org = Some(o),
            Err(f) => return Ok(Err((f, vec![session.token().clone()]))),
        }
    }
    let first = session.token().clone();
    let mut relooked = false;
    loop {
        gw.take_call(org.as_ref().map_or("", |(id, _)| id.as_str()))?;
        let extra: Vec<(String, String)> = org
            .iter()
            .map(|(id, _)| ("organization_id".to_string(), id.clone()))
            .collect();
        let url = match session
            .api_domain()
            .and_then(|api| api::build_url(&api, path, &extra, allowed))
        {
            Ok(u) => u,
            Err(e) => return Ok(Err((e.into(), vec![first]))),
        };
        match api::call(&mut session, method, path, &url, body).await {
            Ok(a) => {
                let body = redact(&a.body, &[&first, session.token()]);
                return Ok(Ok(Entry {
                    status: a.status,
                    content_type: a.content_type,
                    body,
                    at: Instant::now(),
                }));
            }
            Err(f) if !relooked && f.unknown_org() && matches!(org, Some((_, OrgSource::Remembered))) => {
                relooked = true;
                match org_for(gw, &mut session, true).await {
                    Ok(o) => org = Some(o),
                    Err(f) => return Ok(Err((f, vec![first, session.token().clone()]))),
                }
            }
            Err(f) => return Ok(Err((f, vec![first, session.token().clone()]))),
        }
    }
}

/// Books' error reply passed on (its status and JSON, the token redacted), or ours.
fn failure_entry(gw: &Gateway, f: &Failure, tokens: &[Pairing]) -> Option<Entry> {
    gw.note_error(&f.error.message);
    let body = f.body.as_deref()?;
    let refs: Vec<&Pairing> = tokens.iter().collect();
    Some(Entry {
        status: f.status.unwrap_or(502),
        content_type: "application/json".into(),
        body: redact(body, &refs),
        at: Instant::now(),
    })
}

fn limited_response(gw: &Gateway, wait: Duration) -> Resp {
    lock(&gw.stats).limited += 1;
    let mut r = error_response(
        StatusCode::TOO_MANY_REQUESTS,
        "budget",
        "the gateway keeps Books' per-minute and daily budgets and has no answer cached for this path yet",
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(wait.as_secs().max(1)));
    r
}

async fn get(gw: &Gateway, path: &ApiPath, allowed: &[&str]) -> Resp {
    let key = key(path);
    let ttl = gw.ttl(&path.path);
    let gate = {
        let mut cache = lock(&gw.cache);
        if !cache.contains_key(&key)
            && cache.len() >= MAX_ENTRIES
            && let Some(old) = cache.iter().min_by_key(|(_, s)| s.used).map(|(k, _)| k.clone())
        {
            cache.remove(&old);
        }
        let slot = cache.entry(key.clone()).or_insert_with(|| Slot {
            entry: None,
            failed: None,
            gate: Arc::new(tokio::sync::Mutex::new(())),
            used: Instant::now(),
        });
        slot.used = Instant::now();
        if let Some(e) = slot.entry.as_ref().filter(|e| e.at.elapsed() < ttl) {
            let e = e.clone();
            drop(cache);
            lock(&gw.stats).hits += 1;
            return answer_response(&e, "hit");
        }
        slot.gate.clone()
    };
    let _turn = gate.lock().await;
    // Whoever held the gate may have fetched (or failed) meanwhile.
    let (entry, failed) = {
        let cache = lock(&gw.cache);
        match cache.get(&key) {
            Some(s) => (s.entry.clone(), s.failed.clone()),
            None => (None, None),
        }
    };
    if let Some(e) = entry.as_ref().filter(|e| e.at.elapsed() < ttl) {
        lock(&gw.stats).coalesced += 1;
        return answer_response(e, "coalesced");
    }
    let usable_stale = entry.filter(|e| e.at.elapsed() < MAX_STALE);
    if let Some((at, fail)) =
        failed.filter(|(at, _)| at.elapsed() < ttl.min(Duration::from_secs(60)).max(Duration::from_secs(5)))
    {
        let _ = at;
        return match &usable_stale {
            Some(e) => stale_response(gw, e, "a recent failure"),
            None => answer_response(&fail, "coalesced"),
        };
    }
    lock(&gw.stats).misses += 1;
    let result = match upstream(gw, ApiMethod::Get, path, allowed, &Body::Empty).await {
        Err(wait) => {
            return match &usable_stale {
                Some(e) => stale_response(gw, e, "over budget"),
                None => limited_response(gw, wait),
            };
        }
        Ok(r) => r,
    };
    let mut cache = lock(&gw.cache);
    let slot = cache.get_mut(&key);
    match result {
        Ok(e) => {
            if let Some(slot) = slot {
                slot.failed = None;
                if e.body.len() <= MAX_CACHED_BODY && (200..300).contains(&e.status) {
                    slot.entry = Some(e.clone());
                }
            }
            answer_response(&e, "miss")
        }
        Err((f, tokens)) => {
            drop(cache);
            let passed = failure_entry(gw, &f, &tokens);
            let transient = matches!(f.error.exit, Exit::Unavailable) || f.status.is_some_and(|s| s >= 500);
            if transient && let Some(e) = &usable_stale {
                let mut cache = lock(&gw.cache);
                if let Some(slot) = cache.get_mut(&key) {
                    slot.failed = Some((Instant::now(), passed.clone().unwrap_or_else(|| e.clone())));
                }
                drop(cache);
                return stale_response(gw, e, &f.error.message);
            }
            let resp = match &passed {
                Some(p) => answer_response(p, "miss"),
                None => app_error(gw, &f.error),
            };
            if transient && let Some(p) = passed {
                let mut cache = lock(&gw.cache);
                if let Some(slot) = cache.get_mut(&key) {
                    slot.failed = Some((Instant::now(), p));
                }
            }
            resp
        }
    }
}

async fn write(gw: &Gateway, method: ApiMethod, path: &ApiPath, allowed: &[&str], body: &Body) -> Resp {
    let result = match upstream(gw, method, path, allowed, body).await {
        Err(wait) => return limited_response(gw, wait),
        Ok(r) => r,
    };
    // The module's cached answers may be out of date now.
    let module: String = path.path.split('/').take(4).collect::<Vec<_>>().join("/");
    lock(&gw.cache).retain(|k, _| !k.starts_with(&module));
    match result {
        Ok(e) => answer_response(&e, "miss"),
        Err((f, tokens)) => match failure_entry(gw, &f, &tokens) {
            Some(p) => answer_response(&p, "miss"),
            None => app_error(gw, &f.error),
        },
    }
}

/// The example dashboard (examples/dashboard), same-origin with the gateway.
const DASHBOARD: &str = include_str!("../examples/dashboard/index.html");

fn dashboard() -> Resp {
    let mut r = Response::new(Bytes::from_static(DASHBOARD.as_bytes()));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'",
        ),
    );
    r
}

fn status(gw: &Gateway) -> Resp {
    let token = match gw.ctx.store.load() {
        Ok(Some(t)) => {
            let now = wall_now();
            let left = t.tokens().expires_in(now).as_secs();
            if t.tokens().expires_within(now, Duration::ZERO) {
                json!({ "state": "expired" })
            } else {
                json!({ "state": "valid", "expires_in_s": left })
            }
        }
        Ok(None) => json!({ "state": "needs_pairing" }),
        Err(e) => json!({ "state": "unreadable", "message": e.message }),
    };
    let (day, left_s) = utc_day_and_left();
    let (used, minute) = {
        let b = lock(&gw.budget);
        let used = if b.day == day { b.used_today } else { 0 };
        let minute: BTreeMap<String, usize> = b
            .minute
            .iter()
            .map(|(org, w)| {
                (
                    org.clone(),
                    w.iter().filter(|t| t.elapsed() < Duration::from_secs(60)).count(),
                )
            })
            .collect();
        (used, minute)
    };
    let entries = lock(&gw.cache).values().filter(|s| s.entry.is_some()).count();
    let s = lock(&gw.stats);
    let body = json!({
        "uptime_s": gw.started.elapsed().as_secs(),
        "upstream_calls": s.upstream_calls,
        "calls_today": used,
        "daily_budget": gw.config.daily_budget,
        "budget_left": gw.config.daily_budget.saturating_sub(used),
        "day_resets_in_s": left_s,
        "per_minute_limit": PER_MINUTE,
        "calls_last_minute": minute,
        "cache": {
            "entries": entries,
            "hits": s.hits,
            "misses": s.misses,
            "coalesced": s.coalesced,
            "stale_served": s.stale,
            "refused_over_budget": s.limited,
            "ttl_s": gw.config.ttl.as_secs(),
            "effective_ttl_s": gw.ttl("/").as_secs(),
        },
        "writes": gw.config.allow_writes,
        "token": token,
        "last_error": s.last_error.as_ref().map(|(at, m)| json!({ "at_unix": at, "message": m })),
    });
    drop(s);
    let mut r = Response::new(Bytes::from(body.to_string()));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_are_loopback_or_unix_only() {
        assert_eq!(
            parse_listen("unix:/run/x.sock").unwrap(),
            Listen::Unix("/run/x.sock".into())
        );
        assert!(matches!(parse_listen("127.0.0.1:8181").unwrap(), Listen::Tcp(_)));
        assert!(matches!(parse_listen("[::1]:8181").unwrap(), Listen::Tcp(_)));
        assert!(matches!(parse_listen("localhost:8181").unwrap(), Listen::Tcp(_)));
        for bad in [
            "0.0.0.0:8181",
            "192.168.1.2:80",
            "unix:rel.sock",
            "example.com:80",
            "8181",
        ] {
            assert!(parse_listen(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ttls_take_seconds_and_units() {
        assert_eq!(parse_ttl("60").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_ttl("60s").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_ttl("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_ttl("1h").unwrap(), Duration::from_secs(3600));
        for bad in ["", "m", "5x", "-1", "9999999h"] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn host_must_name_the_loopback() {
        for ok in [
            "localhost",
            "localhost:8181",
            "127.0.0.1:8181",
            "[::1]:8181",
            "LOCALHOST",
        ] {
            assert!(loopback_host(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8181",
            "127.0.0.1.nip.io",
            "localhost.evil.com",
            "[::2]:80",
            "localhost:x",
        ] {
            assert!(!loopback_host(bad), "{bad}");
        }
    }

    #[test]
    fn the_longest_matching_prefix_sets_the_ttl() {
        let config = GatewayConfig {
            listen: Vec::new(),
            allow_writes: false,
            group: None,
            origins: Vec::new(),
            ttl: Duration::from_secs(60),
            ttl_prefixes: vec![
                ("/books/v3".into(), Duration::from_secs(10)),
                ("/books/v3/organizations".into(), Duration::from_secs(3600)),
                ("/books/v3/items".into(), Duration::from_secs(5)),
            ],
            daily_budget: FREE_DAILY,
        };
        assert_eq!(config.ttl_for("/books/v3/organizations/1"), Duration::from_secs(3600));
        assert_eq!(config.ttl_for("/books/v3/items"), Duration::from_secs(5));
        assert_eq!(config.ttl_for("/books/v3/invoices"), Duration::from_secs(10));
        assert_eq!(config.ttl_for("/_zoho-device/status"), Duration::from_secs(60));
    }

    #[test]
    fn the_daily_budget_stretches_the_ttl() {
        let base = Duration::from_secs(60);
        // Plenty left: the configured TTL.
        assert_eq!(stretched_ttl(base, 3, 0, 100_000, 86_400), base);
        // Free plan, three paths, a whole day: about 4.3 minutes.
        assert_eq!(stretched_ttl(base, 3, 0, 1000, 86_400), Duration::from_secs(259));
        // Half spent by noon: the same pace.
        assert_eq!(stretched_ttl(base, 3, 500, 1000, 43_200), Duration::from_secs(259));
        // Spent: until the day ends.
        assert_eq!(stretched_ttl(base, 3, 1000, 1000, 7200), Duration::from_secs(7200));
    }
}
