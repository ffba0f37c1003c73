//! The command line: one clap definition, also the source of completions and the man page.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

const AFTER_HELP: &str = "\
Configuration: flags override environment variables, which override the config
file (--config PATH, else $XDG_CONFIG_HOME/zoho-device/config.toml, else
/etc/zoho-device/config.toml). The client secret is never taken from argv: use
ZOHO_CLIENT_SECRET, ZOHO_CLIENT_SECRET_FILE, --client-secret-file, or the
systemd credential $CREDENTIALS_DIRECTORY/zoho-client-secret. A Multi-DC client
with a secret per data centre: ZOHO_CLIENT_SECRET_<DC> (ZOHO_CLIENT_SECRET_EU),
ZOHO_CLIENT_SECRET_FILE_<DC>, client_secret_files = { eu = \"PATH\" } in the
config file, or the credential zoho-client-secret-<dc>.

Exit codes:
  0 ok · 1 unexpected · 2 usage/configuration · 3 denied
  4 code expired or no longer accepted
  5 client rejected (invalid_client, invalid_client_secret, wrong DC)
  6 not paired / pair again
  7 Zoho or network unavailable, throttled, the clock not set yet, or the
    refresh lock held elsewhere over 60 s
  8 unsafe server data refused
  9 the token file, its directory or lock could not be read or written
    (disk full, read-only, wrong file type) · 130 interrupted

Examples:
  zoho-device demo              # the whole flow against a built-in simulator
  ZOHO_CLIENT_ID=1004.XXXX ZOHO_CLIENT_SECRET_FILE=~/.zoho-secret \\
      zoho-device login --dc eu
  curl -H \"Authorization: Zoho-oauthtoken $(zoho-device token)\" \\
      https://www.zohoapis.eu/books/v3/organizations
  zoho-device books organizations --json
  zoho-device api /books/v3/invoices -f status=overdue --paginate";

/// Pair this device with Zoho through the OAuth device flow, and keep it authorised.
#[derive(Debug, Parser)]
#[command(name = "zoho-device", version, about, long_about = None, after_help = AFTER_HELP)]
pub struct Cli {
    /// Settings shared by every command.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options accepted before or after the subcommand. Every subcommand's `--help` lists them
/// under one heading of their own, after the subcommand's own options.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Config file (TOML).
    #[arg(long, global = true, value_name = "PATH", env = "ZOHO_DEVICE_CONFIG")]
    pub config: Option<PathBuf>,
    /// OAuth client ID of a "Non-browser Application" from api-console.zoho.com.
    #[arg(long, global = true, value_name = "ID", env = "ZOHO_CLIENT_ID")]
    pub client_id: Option<String>,
    /// File holding the client secret (the secret itself is never accepted in argv).
    #[arg(long, global = true, value_name = "PATH", env = "ZOHO_CLIENT_SECRET_FILE")]
    pub client_secret_file: Option<PathBuf>,
    /// Data centre where the client was registered: us, eu, in, au, jp, ca, sa, uk, ae, cn, or
    /// auto (ask every accounts server; first that knows the client wins). Default: us.
    #[arg(long, global = true, value_name = "DC", env = "ZOHO_DC")]
    pub dc: Option<String>,
    /// Accounts server override (https; http only on loopback, e.g. the simulator).
    #[arg(long, global = true, value_name = "URL", env = "ZOHO_ACCOUNTS_URL")]
    pub accounts_url: Option<String>,
    /// Scopes, comma-separated. Default: ZohoBooks.settings.READ.
    #[arg(long, global = true, value_name = "SCOPES", env = "ZOHO_SCOPE")]
    pub scope: Option<String>,
    /// Token file. Default: $STATE_DIRECTORY/token.json under systemd, else
    /// $XDG_STATE_HOME/zoho-device/token.json (~/.local/state/zoho-device/token.json).
    /// Its directory must belong to you (or root) and not be writable by group or others.
    #[arg(long, global = true, value_name = "PATH", env = "ZOHO_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Protocol profile: zoho (default) or rfc8628 (any standard device-flow server).
    #[arg(long, global = true, value_enum, env = "ZOHO_PROFILE")]
    pub profile: Option<ProfileArg>,
    /// rfc8628 profile: the device authorization endpoint.
    #[arg(long, global = true, value_name = "URL")]
    pub device_authorization_url: Option<String>,
    /// rfc8628 profile: the token endpoint.
    #[arg(long, global = true, value_name = "URL")]
    pub token_url: Option<String>,
    /// rfc8628 profile: the revocation endpoint (optional).
    #[arg(long, global = true, value_name = "URL")]
    pub revocation_url: Option<String>,
    /// rfc8628 profile: the issuer; the endpoints not given explicitly are read at login from
    /// its /.well-known/openid-configuration (else /.well-known/oauth-authorization-server).
    #[arg(long, global = true, value_name = "URL")]
    pub issuer: Option<String>,
    /// Do not ask for a refresh token (Zoho: access_type=online; rfc8628: no offline_access
    /// scope — some providers, e.g. Google, refuse that scope). The device then needs pairing
    /// again when the access token expires.
    #[arg(long, global = true)]
    pub no_offline_access: bool,
    /// rfc8628 profile: how a confidential client sends its secret — basic (HTTP Basic, RFC 6749
    /// §2.3.1) or post (the form body). Default: what the server's discovery document lists,
    /// else the form body with one retry in Basic when the server answers 401 invalid_client.
    #[arg(long, global = true, value_enum, value_name = "METHOD")]
    pub client_auth: Option<ClientAuthArg>,
    /// More logs on stderr (-v info, -vv debug). Never shows secrets.
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

/// Protocol profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProfileArg {
    /// Zoho Accounts' dialect.
    Zoho,
    /// Standard RFC 8628.
    Rfc8628,
}

/// How a confidential client authenticates to a standard server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClientAuthArg {
    /// client_secret_basic: an `Authorization: Basic` header.
    Basic,
    /// client_secret_post: `client_secret` in the form body.
    Post,
}

/// Machine-readable output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EventsFormat {
    /// One JSON object per line on stdout.
    Json,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Pair this device: show a code and QR, wait for approval, save the token.
    Login(LoginArgs),
    /// Print a valid access token (and nothing else) on stdout, refreshing it first when it
    /// expires within 5 minutes (within the last quarter of its lifetime for tokens that live
    /// less than 20 minutes).
    Token,
    /// Show whether the device is paired, where, and until when. Never prints a secret.
    Status {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Refresh the access token now.
    Refresh,
    /// Revoke the refresh token at Zoho, then delete the token file.
    ///
    /// When Zoho cannot be reached to revoke it, the file is deleted anyway and the failure is
    /// reported (exit 7). When the configuration cannot revoke it (no client secret, a token
    /// file of another client), nothing is deleted (exit 2): fix the configuration, or delete
    /// the file without revoking with --local-only.
    Logout {
        /// Delete the token file without revoking the refresh token at the server; it stays
        /// valid until removed under Connected Apps at accounts.zoho.com.
        #[arg(long)]
        local_only: bool,
    },
    /// Call any Zoho Books API v3 endpoint with the pairing, like `gh api`: PATH on api_domain,
    /// organization_id added, the token refreshed on 401, Books' rate limits handled, JSON out.
    Api(crate::api::ApiArgs),
    /// Zoho Books API v3.
    Books {
        /// Books command.
        #[command(subcommand)]
        command: BooksCommand,
    },
    /// Check the configuration, the client registration, the network, the clock and the token
    /// file, each finding with its fix. Safe to paste: prints no secret.
    ///
    /// Exits 0 when no check failed (warnings allowed), else with the exit code of the first
    /// failure: 2 configuration (a token file others can read, a token directory others can
    /// write or another user owns, included), 5 client rejected, 6 token unusable, 7 network or
    /// clock, 8 unsafe server data in the token file, 9 the token file cannot be read or a new
    /// one written (a directory, FIFO or link in its place, a full or read-only disk).
    Doctor {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Run a whole pairing against a built-in Zoho simulator on loopback (no Zoho account
    /// needed): code and QR, auto-approval, token saved, refreshed, Books organizations listed.
    Demo(DemoArgs),
    /// Long-running mode for kiosks: pair when needed, keep the token fresh, report to systemd.
    Agent(AgentArgs),
    /// Print shell completions.
    Completions {
        /// Shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), or write one page per command into a directory.
    Man {
        /// Write zoho-device.1, zoho-device-login.1, ... (one per command) into this
        /// directory instead of printing the main page.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
}

/// `login` options.
#[derive(Debug, Clone, Args)]
pub struct LoginArgs {
    /// Where to show the code: terminal (terminal=dark|light picks the QR's polarity without
    /// colours), none, svg=PATH, png=PATH, fb=DEVICE, web=ADDR[,dashboard=URL]
    /// (repeatable). Default: the config file's `display`, else terminal (nothing with
    /// --events json when stderr is not a terminal).
    #[arg(long = "display", value_name = "OUTPUT")]
    pub displays: Vec<String>,
    /// Machine-readable events on stdout.
    #[arg(long, value_enum)]
    pub events: Option<EventsFormat>,
    /// Replace a lapsed code with a new one, indefinitely (longer pauses after several
    /// unattended codes), instead of exiting with code 4.
    #[arg(long)]
    pub kiosk: bool,
}

/// `books` commands.
#[derive(Debug, Subcommand)]
pub enum BooksCommand {
    /// List the organizations the token can see (GET /books/v3/organizations).
    Organizations {
        /// Print the JSON organizations array.
        #[arg(long)]
        json: bool,
    },
}

/// `demo` options.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Do not auto-approve: approve in a browser at the printed URL.
    #[arg(long)]
    pub manual: bool,
    /// Seconds before the simulator auto-approves.
    #[arg(long, default_value_t = 3, value_name = "SECONDS")]
    pub approve_after: u64,
    /// Where to show the code (as for login).
    #[arg(long = "display", value_name = "OUTPUT")]
    pub displays: Vec<String>,
    /// Machine-readable events on stdout.
    #[arg(long, value_enum)]
    pub events: Option<EventsFormat>,
}

/// `agent` options.
#[derive(Debug, Clone, Args)]
pub struct AgentArgs {
    /// Where to show the code when pairing is needed (repeatable, as for login).
    #[arg(long = "display", value_name = "OUTPUT")]
    pub displays: Vec<String>,
    /// Machine-readable events on stdout.
    #[arg(long, value_enum)]
    pub events: Option<EventsFormat>,
    /// Command run (via /bin/sh -c) when the device needs a person to pair it; the code, URL and
    /// expiry are in ZOHO_USER_CODE, ZOHO_VERIFICATION_URL, ZOHO_VERIFICATION_URI_COMPLETE,
    /// ZOHO_CODE_EXPIRES_IN and ZOHO_NEEDS_PAIRING_REASON.
    #[arg(long, value_name = "CMD")]
    pub on_needs_pairing: Option<String>,
    /// Refresh this long before expiry (plus up to a quarter of it as random jitter).
    #[arg(long, default_value_t = 600, value_name = "SECONDS")]
    pub refresh_margin: u64,
    /// Serve Books to local apps without handing them the token (repeatable):
    /// unix:/run/zoho-device/api.sock or 127.0.0.1:8181 (loopback only). GET /books/v3/…
    /// is forwarded with the current token, cached and budgeted; GET /_zoho-device/status
    /// reports the gateway. A loopback port is open to every local user and program; a
    /// Unix socket only to its group. Config key: serve (a list).
    #[arg(long = "serve", value_name = "ADDR", help_heading = "Gateway")]
    pub serve: Vec<String>,
    /// Let the gateway pass POST, PUT and DELETE on (never retried, never cached). On a
    /// loopback port that lets every local user write to Books: prefer a unix: socket.
    #[arg(long, help_heading = "Gateway")]
    pub serve_allow_writes: bool,
    /// Group of the gateway's Unix sockets (mode 0660), a name or a number.
    #[arg(long, value_name = "GROUP", help_heading = "Gateway")]
    pub serve_group: Option<String>,
    /// An origin whose pages may call the gateway (CORS), e.g. http://localhost:8080
    /// (repeatable). Other origins are refused.
    #[arg(long = "serve-origin", value_name = "ORIGIN", help_heading = "Gateway")]
    pub serve_origins: Vec<String>,
    /// How long the gateway keeps a GET answer: seconds, or 60s, 2m, 1h [default: 60]. Longer
    /// when the daily budget is tight. Per path prefix: config key cache_ttl_paths.
    #[arg(long, value_name = "TTL", help_heading = "Gateway")]
    pub cache_ttl: Option<String>,
    /// Books calls a day the gateway spreads over the day [default: 1000, Books Free's cap].
    #[arg(long, value_name = "N", help_heading = "Gateway")]
    pub daily_budget: Option<u32>,
}

/// The completion script for `shell`, generated from this definition.
///
/// For bash, clap_complete 4.6 spells the states of a hyphenated program name two ways: the
/// loop that reads the words computes `zoho__device__subcmd__login` while the case arms are
/// labelled `zoho__subcmd__device__subcmd__login`, so nothing below the top level completed.
/// The arms are relabelled the way the loop spells them (a no-op once clap_complete agrees).
#[cfg(feature = "docs")]
pub fn completions(shell: clap_complete::Shell) -> Vec<u8> {
    let mut cmd = <Cli as clap::CommandFactory>::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, BIN, &mut out);
    if shell == clap_complete::Shell::Bash {
        let loop_spelling = BIN.replace('-', "__");
        let arm_spelling = BIN.replace('-', "__subcmd__");
        let fixed = String::from_utf8_lossy(&out).replace(
            &format!("{arm_spelling}__subcmd__"),
            &format!("{loop_spelling}__subcmd__"),
        );
        out = fixed.into_bytes();
    }
    out
}

/// The program's name, as installed.
pub const BIN: &str = "zoho-device";

/// The man pages: `zoho-device.1` and one per subcommand (`zoho-device-login.1`,
/// `zoho-device-books-organizations.1`, ...), each as (file name, roff).
#[cfg(feature = "docs")]
pub fn man_pages() -> std::io::Result<Vec<(String, Vec<u8>)>> {
    fn walk(cmd: &clap::Command, out: &mut Vec<(String, Vec<u8>)>) -> std::io::Result<()> {
        let man = clap_mangen::Man::new(cmd.clone());
        let mut page = Vec::new();
        man.render(&mut page)?;
        out.push((man.get_filename(), page));
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            walk(sub, out)?;
        }
        Ok(())
    }
    let mut cmd = <Cli as clap::CommandFactory>::command().disable_help_subcommand(true);
    cmd.build();
    let mut pages = Vec::new();
    walk(&cmd, &mut pages)?;
    Ok(pages)
}
