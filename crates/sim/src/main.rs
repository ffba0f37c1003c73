//! `zoho-device-sim`: run the Zoho simulator in the foreground until Ctrl-C.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use zoho_device_sim::{AutoApprove, ClientConfig, Fault, OtherDcField, SimConfig, Simulator, UserConfig};

/// A local Zoho Accounts (device flow) + Books simulator on 127.0.0.1, one port per data centre.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Data centres to run (location codes), comma-separated, in port order.
    #[arg(long = "dc", value_delimiter = ',', default_value = "us,eu")]
    dcs: Vec<String>,

    /// Listen on PORT, PORT+1, ... (one per DC) instead of ephemeral ports.
    #[arg(long, value_name = "PORT")]
    port_base: Option<u16>,

    /// A registered client as ID:SECRET:DC[,DC...] (repeatable; replaces the default
    /// 1004.SIMCLIENT:sim-secret:us). The secret is a fake one: the simulator's, not Zoho's.
    #[arg(long = "client", value_name = "ID:SECRET:DCS", value_parser = parse_client)]
    clients: Vec<ClientConfig>,

    /// Multi-DC: a secret of a client's own in one DC, as ID:DC:SECRET (repeatable). There only
    /// that secret is accepted; the client must be registered in that DC.
    #[arg(long = "dc-secret", value_name = "ID:DC:SECRET", value_parser = parse_dc_secret)]
    dc_secrets: Vec<(String, String, String)>,

    /// How other_dc names the user's DC: user_location (Zoho's pages), dc (as a public Zoho
    /// client reads it), both, url (user_location holding the whole accounts URL), or none.
    #[arg(long, value_name = "FIELD", default_value = "user_location")]
    other_dc_field: OtherDcField,

    /// Token replies in the legacy shape: expires_in in milliseconds beside expires_in_sec.
    #[arg(long)]
    legacy_expiry: bool,

    /// A user as NAME:DC (repeatable; replaces the default user in us). The first one approves
    /// unless --approver says otherwise.
    #[arg(long = "user", value_name = "NAME:DC", value_parser = parse_user)]
    users: Vec<UserConfig>,

    /// Name of the user approvals are done as (web page default, auto-approve).
    #[arg(long, value_name = "NAME")]
    approver: Option<String>,

    /// Poll interval sent to devices, in milliseconds (Zoho: 30000).
    #[arg(long, default_value_t = 30_000)]
    interval_ms: u64,

    /// Device-code lifetime, in milliseconds (Zoho: 300000).
    #[arg(long, default_value_t = 300_000)]
    code_lifetime_ms: u64,

    /// Access-token lifetime, in seconds (Zoho: 3600).
    #[arg(long, default_value_t = 3600)]
    token_lifetime_s: u64,

    /// Approve pending codes automatically this many seconds after they were issued.
    #[arg(long, value_name = "N")]
    auto_approve_after_s: Option<f64>,

    /// Approve pending codes automatically on their N-th poll.
    #[arg(long, value_name = "N")]
    auto_approve_after_polls: Option<u32>,

    /// Auto-approve as this user (default: the approver).
    #[arg(long, value_name = "NAME")]
    auto_approve_as: Option<String>,

    /// Answer OAuth errors with HTTP 400 instead of Zoho's HTTP 200.
    #[arg(long)]
    errors_as_400: bool,

    /// Leave verification_uri_complete out of device-code replies.
    #[arg(long)]
    omit_verification_uri_complete: bool,

    /// Say expired_token (RFC 8628) instead of expired (Zoho) for a lapsed code.
    #[arg(long)]
    expired_token: bool,

    /// Refreshes allowed per refresh token within the throttle window (Zoho: 10).
    #[arg(long, default_value_t = 10)]
    throttle_limit: u32,

    /// Sliding throttle window, in seconds (Zoho: 600).
    #[arg(long, default_value_t = 600.0)]
    throttle_window_s: f64,

    /// Live access tokens per refresh token (Zoho: 15).
    #[arg(long, default_value_t = 15)]
    max_access_tokens: usize,

    /// Refresh tokens per user and client before the oldest is evicted (Zoho: 20).
    #[arg(long, default_value_t = 20)]
    max_refresh_tokens: usize,

    /// Books API calls per organization per window (Zoho: 100 per minute).
    #[arg(long, default_value_t = 100)]
    books_rate_limit: u32,

    /// Books rate-limit window, in seconds.
    #[arg(long, default_value_t = 60.0)]
    books_rate_window_s: f64,

    /// Books API calls per organization per daily window (Zoho: 1000 on the Free plan).
    #[arg(long, default_value_t = 1000)]
    books_daily_limit: u32,

    /// Books daily-budget window, in seconds.
    #[arg(long, default_value_t = 86_400.0)]
    books_daily_window_s: f64,

    /// Books calls served at once; one more is answered 429 code 1070.
    #[arg(long, default_value_t = 10)]
    books_max_concurrent: u32,

    /// Milliseconds each Books call takes (lets calls overlap).
    #[arg(long, default_value_t = 0)]
    books_latency_ms: u64,

    /// Inject a fault as PATH:KIND[:COUNT] (repeatable). KIND: htmlNNN (an HTML error page with
    /// status NNN), reset (TCP reset, no response), delayMS (answer late), garbage (200, not
    /// JSON), truncated (200, JSON cut short). PATH * matches every path.
    #[arg(long = "fault", value_name = "PATH:KIND:COUNT")]
    faults: Vec<Fault>,

    /// Print one line per request (method, DC, path, status; never parameters).
    #[arg(long)]
    log_requests: bool,
}

/// `println!` that ignores a closed stdout.
macro_rules! say {
    ($out:expr, $($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!($out, $($arg)*);
    }};
}

fn parse_client(s: &str) -> Result<ClientConfig, String> {
    let mut it = s.splitn(3, ':');
    match (it.next(), it.next(), it.next()) {
        (Some(id), Some(secret), Some(dcs)) if !id.is_empty() && !secret.is_empty() => {
            let dcs: Vec<&str> = dcs.split(',').filter(|d| !d.is_empty()).collect();
            if dcs.is_empty() {
                return Err("a client needs at least one DC".to_owned());
            }
            Ok(ClientConfig::new(id, secret, &dcs))
        }
        _ => Err(format!("{s:?} is not ID:SECRET:DC[,DC...]")),
    }
}

fn parse_dc_secret(s: &str) -> Result<(String, String, String), String> {
    let mut it = s.splitn(3, ':');
    match (it.next(), it.next(), it.next()) {
        (Some(id), Some(dc), Some(secret)) if !id.is_empty() && !dc.is_empty() && !secret.is_empty() => {
            Ok((id.to_owned(), dc.to_owned(), secret.to_owned()))
        }
        _ => Err(format!("{s:?} is not ID:DC:SECRET")),
    }
}

fn parse_user(s: &str) -> Result<UserConfig, String> {
    match s.rsplit_once(':') {
        Some((name, dc)) if !name.is_empty() && !dc.is_empty() => Ok(UserConfig::new(name, dc)),
        _ => Err(format!("{s:?} is not NAME:DC")),
    }
}

fn secs(s: f64, what: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(s).map_err(|_| format!("{what}: {s} is not a duration"))
}

fn config(args: Args) -> Result<(SimConfig, bool), String> {
    let mut cfg = SimConfig {
        locations: args.dcs,
        port_base: args.port_base,
        approver: args.approver,
        interval_ms: args.interval_ms,
        code_lifetime_ms: args.code_lifetime_ms,
        token_lifetime_s: args.token_lifetime_s,
        errors_as_400: args.errors_as_400,
        omit_verification_uri_complete: args.omit_verification_uri_complete,
        expired_token_error: args.expired_token,
        other_dc_field: args.other_dc_field,
        legacy_token_expiry: args.legacy_expiry,
        throttle_limit: args.throttle_limit,
        throttle_window: secs(args.throttle_window_s, "--throttle-window-s")?,
        max_access_tokens: args.max_access_tokens,
        max_refresh_tokens: args.max_refresh_tokens,
        books_rate_limit: args.books_rate_limit,
        books_rate_window: secs(args.books_rate_window_s, "--books-rate-window-s")?,
        books_daily_limit: args.books_daily_limit,
        books_daily_window: secs(args.books_daily_window_s, "--books-daily-window-s")?,
        books_max_concurrent: args.books_max_concurrent,
        books_latency: Duration::from_millis(args.books_latency_ms),
        faults: args.faults,
        ..SimConfig::default()
    };
    if !args.clients.is_empty() {
        cfg.clients = args.clients;
    }
    if !args.users.is_empty() {
        cfg.users = args.users;
    }
    for (id, dc, secret) in args.dc_secrets {
        let Some(c) = cfg.clients.iter_mut().find(|c| c.id == id) else {
            return Err(format!("--dc-secret {id}:{dc}:…: no client {id} is registered"));
        };
        *c = c.clone().with_dc_secret(&dc, &secret);
    }
    if args.auto_approve_after_s.is_some() || args.auto_approve_after_polls.is_some() || args.auto_approve_as.is_some()
    {
        cfg.auto_approve = Some(AutoApprove {
            after: args
                .auto_approve_after_s
                .map(|s| secs(s, "--auto-approve-after-s"))
                .transpose()?,
            after_polls: args.auto_approve_after_polls,
            user: args.auto_approve_as,
        });
    }
    Ok((cfg, args.log_requests))
}

/// The `export` line that points zoho-device at this simulator: client, secret, accounts
/// server, and a token file of its own (never a real pairing's).
fn export_block(id: &str, secret: &str, accounts_url: &str) -> String {
    format!(
        "export ZOHO_CLIENT_ID={} ZOHO_CLIENT_SECRET={} ZOHO_ACCOUNTS_URL={} \\\n       ZOHO_TOKEN_FILE=\"${{XDG_STATE_HOME:-$HOME/.local/state}}/zoho-device/sim-token.json\"",
        shell_quote(id),
        shell_quote(secret),
        shell_quote(accounts_url)
    )
}

/// `value` as one POSIX shell word: as it is when it is made of safe characters, else in
/// single quotes.
fn shell_quote(value: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_.:/,@%+=".contains(c);
    if !value.is_empty() && value.chars().all(safe) {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\'', "'\\''"))
    }
}

fn main() -> ExitCode {
    let (cfg, log_requests) = match config(Args::parse()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("zoho-device-sim: {e}");
            return ExitCode::from(2);
        }
    };
    let first_client = cfg
        .clients
        .first()
        .map(|c| (c.id.clone(), c.secret.clone(), c.locations.first().cloned()));
    let clients: Vec<String> = cfg
        .clients
        .iter()
        .map(|c| {
            let own: Vec<&str> = c.dc_secrets.iter().map(|(l, _)| l.as_str()).collect();
            match own.is_empty() {
                true => format!("{} (in {})", c.id, c.locations.join(",")),
                false => format!(
                    "{} (in {}; own secret in {})",
                    c.id,
                    c.locations.join(","),
                    own.join(",")
                ),
            }
        })
        .collect();
    let users: Vec<String> = cfg
        .users
        .iter()
        .map(|u| format!("{} (in {})", u.name, u.location))
        .collect();
    let sim = match Simulator::spawn(cfg) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("zoho-device-sim: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The banner and the request log are for whoever reads stdout; a reader that went away
    // (a test that read the URLs, `| head`) must not stop the simulator.
    let mut out = std::io::stdout();
    say!(out, "Zoho simulator running (Ctrl-C to stop)");
    for l in sim.locations() {
        let url = sim.accounts_url(&l);
        say!(
            out,
            "  {l}: accounts + api_domain {url}   approve at {url}/oauth/v3/device"
        );
    }
    say!(out, "  clients: {}", clients.join(", "));
    say!(out, "  users:   {}", users.join(", "));
    if let Some((id, secret, Some(home))) = &first_client {
        // Ready to paste: the CLI pointed at this simulator, with its own token file beside
        // (never over) a real pairing's.
        say!(out, "\nTo point zoho-device at it, paste into a shell:\n");
        say!(out, "{}", export_block(id, secret, &sim.accounts_url(home)));
        say!(out, "zoho-device login\n");
    }
    let mut seen = 0;
    loop {
        std::thread::sleep(Duration::from_millis(200));
        if log_requests {
            let since = seen;
            for r in sim.requests().into_iter().filter(|r| r.seq > since) {
                let reset = r.fault == Some(zoho_device_sim::FaultKind::Reset);
                if r.status.is_none() && !reset {
                    break; // still in flight: print it (and what follows) next time
                }
                seen = r.seq;
                let status = r.status.map_or("-".to_owned(), |s| s.to_string());
                let fault = r.fault.map(|f| format!(" [fault {f}]")).unwrap_or_default();
                say!(
                    out,
                    "{:>8} ms  {}  {} {} -> {status}{fault}",
                    r.elapsed_ms(),
                    r.location,
                    r.method,
                    r.path
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_export_block_sets_every_variable_when_pasted_into_sh() {
        let block = export_block("1004.SIMCLIENT", "it's a secret $HOME", "http://127.0.0.1:4242");
        let script = format!(
            "{block}\nprintf '%s\\n' \"$ZOHO_CLIENT_ID\" \"$ZOHO_CLIENT_SECRET\" \"$ZOHO_ACCOUNTS_URL\" \"$ZOHO_TOKEN_FILE\""
        );
        let out = std::process::Command::new("sh")
            .args(["-c", &script])
            .env("HOME", "/home/someone")
            .env_remove("XDG_STATE_HOME")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "1004.SIMCLIENT\nit's a secret $HOME\nhttp://127.0.0.1:4242\n/home/someone/.local/state/zoho-device/sim-token.json\n"
        );
    }
}
