//! Settings: flags over environment over the config file, validated once.

use std::collections::BTreeMap;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use zoho_device_core::{ClientAuth, ClientCredentials, ClientSecret, DataCenter, DcSecrets, Profile, ServerUrl};

use crate::cli::{ClientAuthArg, GlobalArgs, ProfileArg};
use crate::exit::AppError;

/// Default scope: enough to list Books organizations.
pub const DEFAULT_SCOPE: &str = "ZohoBooks.settings.READ";

/// The config file (`config.toml`). Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Client ID.
    pub client_id: Option<String>,
    /// Path of a file holding the client secret.
    pub client_secret_file: Option<PathBuf>,
    /// Multi-DC: files holding the secret of a data centre, by location code
    /// (`client_secret_files = { eu = "/etc/zoho-device/secret-eu" }`).
    pub client_secret_files: Option<BTreeMap<String, PathBuf>>,
    /// Data centre or `auto`.
    pub dc: Option<String>,
    /// Accounts server override.
    pub accounts_url: Option<String>,
    /// Scopes, comma-separated.
    pub scope: Option<String>,
    /// Token file.
    pub token_file: Option<PathBuf>,
    /// Displays for login and the agent.
    pub display: Option<Vec<String>>,
    /// `zoho` or `rfc8628`.
    pub profile: Option<String>,
    /// rfc8628: device authorization endpoint.
    pub device_authorization_url: Option<String>,
    /// rfc8628: token endpoint.
    pub token_url: Option<String>,
    /// rfc8628: revocation endpoint.
    pub revocation_url: Option<String>,
    /// rfc8628: issuer, for discovery of the endpoints not given.
    pub issuer: Option<String>,
    /// Ask for a refresh token (Zoho: default true; rfc8628: default when the server lists
    /// `offline_access`).
    pub offline_access: Option<bool>,
    /// rfc8628: `basic` or `post` (how a confidential client sends its secret).
    pub client_auth: Option<String>,
    /// Command for the agent when pairing is needed.
    pub on_needs_pairing: Option<String>,
    /// Books organization for `api` (default: the pairing's default organization).
    pub organization_id: Option<String>,
    /// The agent's Books gateway: where it listens (`unix:PATH`, `127.0.0.1:PORT`).
    pub serve: Option<Vec<String>>,
    /// The gateway passes POST, PUT and DELETE on.
    pub serve_allow_writes: Option<bool>,
    /// Group of the gateway's Unix sockets (name or number).
    pub serve_group: Option<String>,
    /// Origins (`http://localhost:8080`) whose pages may call the gateway (CORS).
    pub serve_origins: Option<Vec<String>>,
    /// The gateway's cache lifetime: seconds, or `60s`, `2m`, `1h`.
    pub cache_ttl: Option<TtlValue>,
    /// Cache lifetimes by path prefix (`"/books/v3/organizations" = "1h"`).
    pub cache_ttl_paths: Option<BTreeMap<String, TtlValue>>,
    /// Calls a day the gateway spreads over the day (default: Books Free's 1,000).
    pub daily_budget: Option<u32>,
}

/// A cache lifetime in the config file: a number of seconds or a string (`90s`, `2m`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum TtlValue {
    /// Seconds.
    Seconds(u64),
    /// Text: `60`, `60s`, `2m`, `1h`.
    Text(String),
}

/// The gateway keys of the config file, as given (checked by [`crate::gateway`]).
#[derive(Debug, Clone, Default)]
pub struct ServeFile {
    /// `serve`.
    pub serve: Vec<String>,
    /// `serve_allow_writes`.
    pub allow_writes: bool,
    /// `serve_group`.
    pub group: Option<String>,
    /// `serve_origins`.
    pub origins: Vec<String>,
    /// `cache_ttl`.
    pub cache_ttl: Option<TtlValue>,
    /// `cache_ttl_paths`.
    pub cache_ttl_paths: BTreeMap<String, TtlValue>,
    /// `daily_budget`.
    pub daily_budget: Option<u32>,
}

/// Which DC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DcChoice {
    /// A fixed DC.
    Fixed(DataCenter),
    /// Probe every accounts server.
    Auto,
}

/// Where the server is.
#[derive(Clone, Debug)]
pub enum Endpoint {
    /// Zoho: a DC (or auto), possibly with an accounts-server override.
    Zoho {
        /// The DC choice.
        dc: DcChoice,
        /// An override of the accounts server (the simulator, a proxy).
        accounts_override: Option<ServerUrl>,
    },
    /// A standard RFC 8628 server.
    Standard {
        /// Device authorization endpoint.
        device_authorization_url: ServerUrl,
        /// Token endpoint.
        token_url: ServerUrl,
        /// Revocation endpoint.
        revocation_url: Option<ServerUrl>,
    },
    /// A standard RFC 8628 server named by its issuer: login completes the explicit endpoints
    /// from its discovery document ([`crate::discovery`]).
    Issuer {
        /// The issuer URL.
        issuer: ServerUrl,
        /// Endpoints given explicitly; they win over discovered ones.
        explicit: crate::discovery::ExplicitEndpoints,
    },
}

/// Where the secret came from (shown by `doctor`, never the value).
#[derive(Clone, Debug)]
pub enum SecretSource {
    /// `ZOHO_CLIENT_SECRET`.
    Env,
    /// Another environment variable, by name (`ZOHO_CLIENT_SECRET_EU`).
    EnvVar(String),
    /// A file (flag, env or config).
    File(PathBuf),
    /// systemd credential.
    Credential(PathBuf),
}

/// Resolved settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Protocol profile.
    pub profile: Profile,
    /// Client ID, when configured.
    pub client_id: Option<String>,
    /// Client secret, when configured.
    pub client_secret: Option<ClientSecret>,
    /// Where it came from.
    pub secret_source: Option<SecretSource>,
    /// Multi-DC: the data centres with a secret of their own (the others use the common one).
    pub dc_secrets: Vec<DcSecret>,
    /// The server.
    pub endpoint: Endpoint,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Token file.
    pub token_file: PathBuf,
    /// Displays from the config file (flags replace them).
    pub displays: Vec<String>,
    /// The config file read, if any.
    pub config_path: Option<PathBuf>,
    /// Hook command from the config file.
    pub on_needs_pairing: Option<String>,
    /// Ask for a refresh token (`access_type=offline` / the `offline_access` scope).
    pub offline_access: bool,
    /// Whether the user said so (flag or config key); the standard profile otherwise asks for
    /// `offline_access` only when the server's discovery document lists it.
    pub offline_access_explicit: Option<bool>,
    /// rfc8628: the client authentication method given (flag or config key).
    pub client_auth: Option<ClientAuth>,
    /// Books organization for `api` (config key `organization_id`).
    pub organization_id: Option<String>,
    /// The agent gateway's keys of the config file.
    pub serve: ServeFile,
}

/// A data centre's own client secret (Zoho Multi-DC), and where it came from.
#[derive(Clone, Debug)]
pub struct DcSecret {
    /// The DC.
    pub dc: DataCenter,
    /// Its secret.
    pub secret: ClientSecret,
    /// Where it came from.
    pub source: SecretSource,
}

/// Where a DC's own secret can be set, for messages: `ZOHO_CLIENT_SECRET_EU`, ….
pub fn dc_secret_settings(dc: DataCenter) -> String {
    let loc = dc.location();
    let up = loc.to_ascii_uppercase();
    format!(
        "ZOHO_CLIENT_SECRET_{up}, ZOHO_CLIENT_SECRET_FILE_{up}, client_secret_files.{loc} in the config file, or the systemd credential zoho-client-secret-{loc}"
    )
}

impl Settings {
    /// Resolves settings from flags (which clap already merged with the environment), the
    /// secret's environment variables, and the config file.
    pub fn resolve(args: &GlobalArgs) -> Result<Settings, AppError> {
        if let Err(std::env::VarError::NotUnicode(_)) = std::env::var("ZOHO_CLIENT_SECRET") {
            return Err(AppError::usage("ZOHO_CLIENT_SECRET is set but is not valid UTF-8 text")
                .hint("set it to the secret shown in api-console.zoho.com (plain text), or use --client-secret-file"));
        }
        Settings::resolve_with(args, &|k| std::env::var(k).ok())
    }

    /// As [`Settings::resolve`], with the environment given (tests).
    pub fn resolve_with(args: &GlobalArgs, env: &dyn Fn(&str) -> Option<String>) -> Result<Settings, AppError> {
        let (file, config_path) = load_config_file(args.config.as_deref(), env)?;

        let profile = match (args.profile, file.profile.as_deref()) {
            (Some(ProfileArg::Zoho), _) => Profile::Zoho,
            (Some(ProfileArg::Rfc8628), _) => Profile::Rfc8628,
            (None, None) => Profile::Zoho,
            (None, Some(p)) => Profile::parse(p)
                .ok_or_else(|| AppError::usage(format!("config: profile {p:?} is not zoho or rfc8628")))?,
        };

        let client_id = args.client_id.clone().or(file.client_id).map(|s| s.trim().to_string());
        if client_id.as_deref() == Some("") {
            return Err(AppError::usage("the client ID is empty").hint("set --client-id or ZOHO_CLIENT_ID"));
        }

        let (client_secret, secret_source) = load_secret(args, file.client_secret_file.as_deref(), env)?;
        let dc_secrets = match profile {
            Profile::Zoho => load_dc_secrets(file.client_secret_files.as_ref(), env)?,
            Profile::Rfc8628 => Vec::new(),
        };

        let endpoint = match profile {
            Profile::Zoho => {
                let dc = match args.dc.clone().or(file.dc) {
                    None => DcChoice::Fixed(DataCenter::Us),
                    Some(d) if d.trim().eq_ignore_ascii_case("auto") => DcChoice::Auto,
                    Some(d) => DcChoice::Fixed(DataCenter::from_location(&d).ok_or_else(|| {
                        AppError::usage(format!("unknown data centre {d:?}"))
                            .hint("use one of us, eu, in, au, jp, ca, sa, uk, ae, cn, or auto")
                    })?),
                };
                let accounts_override = match args.accounts_url.clone().or(file.accounts_url) {
                    Some(u) => Some(parse_url("accounts URL", &u)?),
                    None => None,
                };
                Endpoint::Zoho { dc, accounts_override }
            }
            Profile::Rfc8628 => {
                let need = |flag: &str, v: Option<String>| -> Result<ServerUrl, AppError> {
                    let v = v.ok_or_else(|| {
                        AppError::usage(format!("--profile rfc8628 needs --{flag} (or --issuer)")).hint(format!(
                            "pass --{flag} URL or set {} in the config file, or name the server with --issuer URL to discover its endpoints",
                            flag.replace('-', "_")
                        ))
                    })?;
                    parse_url(flag, &v)
                };
                let optional = |flag: &str, v: Option<String>| v.map(|v| parse_url(flag, &v)).transpose();
                match args.issuer.clone().or(file.issuer) {
                    Some(issuer) => Endpoint::Issuer {
                        issuer: parse_url("issuer", &issuer)?,
                        explicit: crate::discovery::ExplicitEndpoints {
                            device_authorization_url: optional(
                                "device-authorization-url",
                                args.device_authorization_url.clone().or(file.device_authorization_url),
                            )?,
                            token_url: optional("token-url", args.token_url.clone().or(file.token_url))?,
                            revocation_url: optional(
                                "revocation-url",
                                args.revocation_url.clone().or(file.revocation_url),
                            )?,
                        },
                    },
                    None => Endpoint::Standard {
                        device_authorization_url: need(
                            "device-authorization-url",
                            args.device_authorization_url.clone().or(file.device_authorization_url),
                        )?,
                        token_url: need("token-url", args.token_url.clone().or(file.token_url))?,
                        revocation_url: optional(
                            "revocation-url",
                            args.revocation_url.clone().or(file.revocation_url),
                        )?,
                    },
                }
            }
        };

        let scope = args.scope.clone().or(file.scope).unwrap_or_else(|| match profile {
            Profile::Zoho => DEFAULT_SCOPE.to_string(),
            _ => "openid".to_string(),
        });
        let scopes: Vec<String> = scope
            .split([',', ' '])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        if scopes.is_empty() {
            return Err(AppError::usage("the scope is empty").hint(format!("e.g. --scope {DEFAULT_SCOPE}")));
        }

        let token_file = match args.token_file.clone().or(file.token_file) {
            Some(p) => expand_home("token file path", p, env)?,
            None => default_token_file(env)?,
        };

        let client_auth = match (args.client_auth, file.client_auth.as_deref()) {
            (Some(ClientAuthArg::Basic), _) => Some(ClientAuth::Basic),
            (Some(ClientAuthArg::Post), _) => Some(ClientAuth::Post),
            (None, None) => None,
            (None, Some(v)) => match ClientAuth::parse(v) {
                Some(ClientAuth::Auto) => None,
                Some(auth) => Some(auth),
                None => {
                    return Err(
                        AppError::usage(format!("config: client_auth {v:?} is not basic or post"))
                            .hint("client_auth = \"basic\" (HTTP Basic) or \"post\" (the form body)"),
                    );
                }
            },
        };
        let offline_access_explicit = if args.no_offline_access {
            Some(false)
        } else {
            file.offline_access
        };

        Ok(Settings {
            profile,
            client_id,
            client_secret,
            secret_source,
            dc_secrets,
            endpoint,
            scopes,
            token_file,
            displays: file.display.unwrap_or_default(),
            config_path,
            on_needs_pairing: file.on_needs_pairing,
            offline_access: !args.no_offline_access && file.offline_access.unwrap_or(true),
            offline_access_explicit,
            client_auth,
            organization_id: file.organization_id,
            serve: ServeFile {
                serve: file.serve.unwrap_or_default(),
                allow_writes: file.serve_allow_writes.unwrap_or(false),
                group: file.serve_group,
                origins: file.serve_origins.unwrap_or_default(),
                cache_ttl: file.cache_ttl,
                cache_ttl_paths: file.cache_ttl_paths.unwrap_or_default(),
                daily_budget: file.daily_budget,
            },
        })
    }

    /// The client credentials, or a usage error saying what is missing.
    pub fn client(&self) -> Result<ClientCredentials, AppError> {
        let client_id = self.client_id.clone().ok_or_else(|| {
            AppError::usage("no client ID configured").hint(
                "create a \"Non-browser Application\" at https://api-console.zoho.com, then set --client-id or ZOHO_CLIENT_ID (or try `zoho-device demo`)",
            )
        })?;
        if self.profile == Profile::Zoho && self.client_secret.is_none() && self.dc_secrets.is_empty() {
            return Err(AppError::usage("no client secret configured").hint(
                "set ZOHO_CLIENT_SECRET, ZOHO_CLIENT_SECRET_FILE or --client-secret-file (the secret is never accepted as a flag value); a client with Multi-DC secrets: ZOHO_CLIENT_SECRET_<DC> or ZOHO_CLIENT_SECRET_FILE_<DC>",
            ));
        }
        Ok(ClientCredentials {
            client_id,
            client_secret: self.client_secret.clone(),
        })
    }

    /// The per-DC secrets for the core ([`zoho_device_core::DeviceFlow::with_dc_secrets`],
    /// [`ClientCredentials::at`]).
    pub fn dc_secret_map(&self) -> DcSecrets {
        let mut out = DcSecrets::new();
        for s in &self.dc_secrets {
            out.insert(s.dc.location(), s.secret.clone());
        }
        out
    }
}

fn parse_url(what: &str, value: &str) -> Result<ServerUrl, AppError> {
    ServerUrl::parse(value).map_err(|e| {
        AppError::new(crate::exit::Exit::Usage, format!("{what} {value:?} refused: {e}"))
            .hint("use https://…, or http://127.0.0.1:PORT for a local test server")
    })
}

fn load_config_file(
    explicit: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(ConfigFile, Option<PathBuf>), AppError> {
    let path = match explicit {
        Some(p) => Some(expand_home("config file path", p.to_path_buf(), env)?),
        None => {
            let xdg = env("XDG_CONFIG_HOME")
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
                .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".config")))
                .map(|d| d.join("zoho-device/config.toml"));
            [xdg, Some(PathBuf::from("/etc/zoho-device/config.toml"))]
                .into_iter()
                .flatten()
                .find(|p| p.exists())
        }
    };
    let Some(path) = path else {
        return Ok((ConfigFile::default(), None));
    };
    let text = read_text_file(&path, MAX_CONFIG_BYTES).map_err(|e| {
        AppError::usage(format!("cannot read the config file {}: {e}", path.display()))
            .hint("check the path given with --config (or ZOHO_DEVICE_CONFIG): a regular file of TOML")
    })?;
    let file: ConfigFile = toml::from_str(&text).map_err(|e| {
        AppError::usage(format!("the config file {} is not valid: {}", path.display(), e.message().trim()))
            .hint("keys: client_id, client_secret_file, client_secret_files (a table: eu = \"PATH\"), dc, accounts_url, scope, token_file, display, profile, device_authorization_url, token_url, revocation_url, issuer, offline_access, client_auth, on_needs_pairing, organization_id, serve, serve_allow_writes, serve_group, serve_origins, cache_ttl, cache_ttl_paths, daily_budget")
    })?;
    Ok((file, Some(path)))
}

/// Reads a client secret file (trimmed; empty is an error).
fn read_secret_file(path: &Path) -> Result<ClientSecret, AppError> {
    let text = read_text_file(path, MAX_SECRET_BYTES).map_err(|e| {
        AppError::usage(format!("cannot read the client secret file {}: {e}", path.display()))
            .hint("check the path and that this user may read it: a regular file holding only the secret")
    })?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(AppError::usage(format!(
            "the client secret file {} is empty",
            path.display()
        )));
    }
    Ok(ClientSecret::new(secret))
}

/// Multi-DC secrets, for each DC the first of: `ZOHO_CLIENT_SECRET_FILE_<DC>`,
/// `ZOHO_CLIENT_SECRET_<DC>`, the systemd credential `zoho-client-secret-<dc>`, the config
/// file's `client_secret_files.<dc>` — the order of the common secret's sources.
fn load_dc_secrets(
    files: Option<&BTreeMap<String, PathBuf>>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<DcSecret>, AppError> {
    if let Some(files) = files
        && let Some(bad) = files.keys().find(|k| DataCenter::from_location(k).is_none())
    {
        return Err(AppError::usage(format!(
            "config: client_secret_files names {bad:?}, which is not a data centre"
        ))
        .hint("use location codes: us, eu, in, au, jp, ca, sa, uk, ae, cn (e.g. client_secret_files = { eu = \"/etc/zoho-device/secret-eu\" })"));
    }
    let credentials = env("CREDENTIALS_DIRECTORY")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from);
    let mut out = Vec::new();
    for dc in DataCenter::ALL {
        let up = dc.location().to_ascii_uppercase();
        let file_var = format!("ZOHO_CLIENT_SECRET_FILE_{up}");
        let value_var = format!("ZOHO_CLIENT_SECRET_{up}");
        let from_file = |p: PathBuf| -> Result<(ClientSecret, SecretSource), AppError> {
            Ok((read_secret_file(&p)?, SecretSource::File(p)))
        };
        let found = if let Some(p) = env(&file_var).filter(|s| !s.trim().is_empty()) {
            Some(from_file(PathBuf::from(p))?)
        } else if let Some(v) = env(&value_var).filter(|s| !s.trim().is_empty()) {
            Some((ClientSecret::new(v.trim()), SecretSource::EnvVar(value_var)))
        } else if let Some(p) = credentials
            .as_ref()
            .map(|d| d.join(format!("zoho-client-secret-{}", dc.location())))
            .filter(|p| p.exists())
        {
            Some((read_secret_file(&p)?, SecretSource::Credential(p)))
        } else if let Some(p) = files.and_then(|f| {
            f.iter()
                .find(|(k, _)| k.trim().eq_ignore_ascii_case(dc.location()))
                .map(|(_, p)| p.clone())
        }) {
            Some(from_file(p)?)
        } else {
            None
        };
        if let Some((secret, source)) = found {
            out.push(DcSecret { dc, secret, source });
        }
    }
    Ok(out)
}

fn load_secret(
    args: &GlobalArgs,
    file_secret: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Option<ClientSecret>, Option<SecretSource>), AppError> {
    let read = |path: &Path, source: SecretSource| -> Result<(Option<ClientSecret>, Option<SecretSource>), AppError> {
        Ok((Some(read_secret_file(path)?), Some(source)))
    };
    if let Some(p) = &args.client_secret_file {
        let p = expand_home("client secret file path", p.clone(), env)?;
        return read(&p, SecretSource::File(p.clone()));
    }
    if let Some(s) = env("ZOHO_CLIENT_SECRET").filter(|s| !s.trim().is_empty()) {
        return Ok((Some(ClientSecret::new(s.trim())), Some(SecretSource::Env)));
    }
    if let Some(dir) = env("CREDENTIALS_DIRECTORY") {
        let p = PathBuf::from(dir).join("zoho-client-secret");
        if p.exists() {
            return read(&p, SecretSource::Credential(p.clone()));
        }
    }
    if let Some(p) = file_secret {
        let p = expand_home("client_secret_file", p.to_path_buf(), env)?;
        return read(&p, SecretSource::File(p.clone()));
    }
    Ok((None, None))
}

fn default_token_file(env: &dyn Fn(&str) -> Option<String>) -> Result<PathBuf, AppError> {
    if let Some(dir) = env("STATE_DIRECTORY").filter(|s| !s.is_empty()) {
        // systemd may list several, colon-separated; the first is ours.
        let first = dir.split(':').next().unwrap_or(&dir);
        return Ok(PathBuf::from(first).join("token.json"));
    }
    let base = env("XDG_STATE_HOME")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            env("HOME")
                .filter(|s| !s.is_empty())
                .map(|h| PathBuf::from(h).join(".local/state"))
        })
        .ok_or_else(|| {
            AppError::usage("cannot choose a token file: neither HOME nor XDG_STATE_HOME is set")
                .hint("set --token-file or ZOHO_TOKEN_FILE")
        })?;
    Ok(base.join("zoho-device/token.json"))
}

/// The largest config file read.
pub const MAX_CONFIG_BYTES: u64 = 64 * 1024;
/// The largest client secret file read (a Zoho secret is 42 characters).
pub const MAX_SECRET_BYTES: u64 = 4 * 1024;

/// Reads `path`, which must be a regular file of at most `max` bytes: a FIFO, a device such
/// as `/dev/zero`, a directory or a socket is refused at once (the file is opened non-blocking
/// and checked with `fstat` before any read, so a FIFO without a writer cannot hang the
/// program), and so is a file over `max` (checked again while reading, should it grow). With
/// `follow_links` false a symbolic link as the last component is refused too (`O_NOFOLLOW`).
///
/// The errors read well after "cannot read FILE: ": "it is a FIFO (named pipe), not a regular
/// file", "it is 1048577 bytes, more than the 65536 allowed", or the OS error. A missing file is
/// `ErrorKind::NotFound`; a refused kind of file `InvalidInput`; an oversize one `FileTooLarge`.
pub fn read_regular_file(path: &Path, max: u64, follow_links: bool) -> io::Result<Vec<u8>> {
    use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
    let mut flags = libc::O_NONBLOCK | libc::O_CLOEXEC;
    if !follow_links {
        flags |= libc::O_NOFOLLOW;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .map_err(|e| {
            if !follow_links && e.raw_os_error() == Some(libc::ELOOP) {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "it is a symbolic link, which is not followed here (a link planted beside it could redirect the read)",
                )
            } else {
                e
            }
        })?;
    let meta = file.metadata()?;
    let kind = meta.file_type();
    if !kind.is_file() {
        let what = if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO (named pipe)"
        } else if kind.is_char_device() {
            "a character device"
        } else if kind.is_block_device() {
            "a block device"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "something else"
        };
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("it is {what}, not a regular file"),
        ));
    }
    let too_large = |len: u64| {
        io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!("it is {len} bytes, more than the {max} allowed"),
        )
    };
    if meta.len() > max {
        return Err(too_large(meta.len()));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(max.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

/// [`read_regular_file`] (links followed) for text: UTF-8 or an error saying it is not.
pub fn read_text_file(path: &Path, max: u64) -> io::Result<String> {
    let bytes = read_regular_file(path, max, true)?;
    String::from_utf8(bytes).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "it is not UTF-8 text"))
}

/// Expands a leading `~` or `~/` in a configured path to `HOME` (as a shell would, also where
/// no shell ran: the config file, `--token-file=~/…`, a systemd `Environment=`). `~user` is
/// refused rather than taken literally, and so is `~` without `HOME`.
pub fn expand_home(what: &str, path: PathBuf, env: &dyn Fn(&str) -> Option<String>) -> Result<PathBuf, AppError> {
    let Some(text) = path.to_str() else { return Ok(path) };
    let rest = match text.strip_prefix('~') {
        None => return Ok(path),
        Some("") => "",
        Some(r) if r.starts_with('/') => r.trim_start_matches('/'),
        Some(_) => {
            return Err(
                AppError::usage(format!("the {what} {text:?} starts with ~user, which is not expanded"))
                    .hint("give the full path (e.g. /home/NAME/...)"),
            );
        }
    };
    let home = env("HOME").filter(|h| !h.is_empty()).ok_or_else(|| {
        AppError::usage(format!("the {what} {text:?} starts with ~, but HOME is not set"))
            .hint("give an absolute path, or set HOME")
    })?;
    Ok(if rest.is_empty() {
        PathBuf::from(home)
    } else {
        PathBuf::from(home).join(rest)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn a_leading_tilde_is_home_and_tilde_user_is_refused() {
        let env = |k: &str| (k == "HOME").then(|| "/home/kiosk".to_string());
        let x = |p: &str| expand_home("token file path", PathBuf::from(p), &env);
        assert_eq!(x("~/a/token.json").unwrap(), PathBuf::from("/home/kiosk/a/token.json"));
        assert_eq!(x("~").unwrap(), PathBuf::from("/home/kiosk"));
        assert_eq!(x("/abs/~/x").unwrap(), PathBuf::from("/abs/~/x"));
        assert_eq!(x("rel/x").unwrap(), PathBuf::from("rel/x"));
        assert!(x("~bob/x").unwrap_err().message.contains("~user"));
        let no_home = |_: &str| None;
        let e = expand_home("token file path", PathBuf::from("~/x"), &no_home).unwrap_err();
        assert!(e.message.contains("HOME is not set"), "{}", e.message);
    }

    #[test]
    fn only_regular_files_under_the_cap_are_read() {
        let e = read_regular_file(Path::new("/dev/zero"), 10, true).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("a character device"), "{e}");
        let e = read_regular_file(Path::new("/"), 10, true).unwrap_err();
        assert!(e.to_string().contains("a directory"), "{e}");
        let dir = std::env::temp_dir().join(format!("zd-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("f");
        std::fs::write(&f, b"0123456789A").unwrap();
        let e = read_regular_file(&f, 10, true).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::FileTooLarge);
        assert_eq!(read_regular_file(&f, 11, true).unwrap(), b"0123456789A");
        let link = dir.join("link");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&f, &link).unwrap();
        assert!(read_regular_file(&link, 11, true).is_ok());
        let e = read_regular_file(&link, 11, false).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn args(extra: &[&str]) -> GlobalArgs {
        let mut argv = vec!["zoho-device"];
        argv.extend_from_slice(extra);
        argv.push("status");
        crate::cli::Cli::try_parse_from(argv).unwrap().global
    }

    #[test]
    fn each_dcs_secret_comes_from_the_first_of_its_sources() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let write = |name: &str, text: &str| {
            let p = d.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, text).unwrap();
            p
        };
        let eu_config = write("eu-config", "eu-from-config");
        let jp_config = write("jp-config", "jp-from-config");
        let ca_config = write("ca-config", "ca-from-config\n");
        write(
            "config/zoho-device/config.toml",
            &format!(
                "client_secret_files = {{ eu = {:?}, JP = {:?}, ca = {:?} }}\n",
                eu_config.display().to_string(),
                jp_config.display().to_string(),
                ca_config.display().to_string()
            ),
        );
        let eu_file = write("eu-file", " eu-from-file \n");
        write("creds/zoho-client-secret-jp", "jp-from-credential");
        write("creds/zoho-client-secret-in", "in-from-credential");
        let vars: Vec<(String, String)> = vec![
            ("XDG_CONFIG_HOME".into(), d.join("config").display().to_string()),
            ("HOME".into(), d.display().to_string()),
            ("CREDENTIALS_DIRECTORY".into(), d.join("creds").display().to_string()),
            ("ZOHO_CLIENT_SECRET".into(), "common".into()),
            ("ZOHO_CLIENT_SECRET_EU".into(), "eu-from-env".into()),
            ("ZOHO_CLIENT_SECRET_FILE_EU".into(), eu_file.display().to_string()),
            ("ZOHO_CLIENT_SECRET_AU".into(), "au-from-env".into()),
            ("ZOHO_CLIENT_SECRET_UK".into(), "  ".into()),
        ];
        let env = |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let s = Settings::resolve_with(&args(&[]), &env).unwrap();
        let got: Vec<(&str, &str, String)> = s
            .dc_secrets
            .iter()
            .map(|x| {
                let src = match &x.source {
                    SecretSource::Env => "ZOHO_CLIENT_SECRET".to_string(),
                    SecretSource::EnvVar(n) => n.clone(),
                    SecretSource::File(p) | SecretSource::Credential(p) => {
                        p.strip_prefix(d).unwrap().display().to_string()
                    }
                };
                (x.dc.location(), x.secret.expose(), src)
            })
            .collect();
        assert_eq!(
            got,
            [
                ("eu", "eu-from-file", "eu-file".to_string()),
                ("in", "in-from-credential", "creds/zoho-client-secret-in".to_string()),
                ("au", "au-from-env", "ZOHO_CLIENT_SECRET_AU".to_string()),
                ("jp", "jp-from-credential", "creds/zoho-client-secret-jp".to_string()),
                ("ca", "ca-from-config", "ca-config".to_string()),
            ]
        );
        assert_eq!(s.client_secret.as_ref().map(ClientSecret::expose), Some("common"));
        let map = s.dc_secret_map();
        assert_eq!(map.get("EU").map(ClientSecret::expose), Some("eu-from-file"));
        assert_eq!(map.get("us"), None);

        // The standard profile has no data centres: nothing is read.
        let s = Settings::resolve_with(
            &args(&[
                "--profile",
                "rfc8628",
                "--device-authorization-url",
                "https://x.example/d",
                "--token-url",
                "https://x.example/t",
            ]),
            &env,
        )
        .unwrap();
        assert!(s.dc_secrets.is_empty());
    }

    #[test]
    fn per_dc_secrets_alone_are_enough_to_start() {
        let vars = [("HOME", "/nonexistent-home"), ("ZOHO_CLIENT_SECRET_EU", "eu-only")];
        let env = |k: &str| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string());
        let s = Settings::resolve_with(&args(&["--client-id", "1004.X"]), &env).unwrap();
        let client = s.client().unwrap();
        assert!(client.client_secret.is_none(), "no common secret");
        let eu = client.at(&s.dc_secret_map(), Some("eu"));
        assert_eq!(eu.client_secret.as_ref().map(ClientSecret::expose), Some("eu-only"));
        // Neither: a usage error naming both kinds of setting.
        let env = |k: &str| (k == "HOME").then(|| "/nonexistent-home".to_string());
        let e = Settings::resolve_with(&args(&["--client-id", "1004.X"]), &env)
            .unwrap()
            .client()
            .unwrap_err();
        assert!(e.hint.unwrap().contains("ZOHO_CLIENT_SECRET_<DC>"));
    }
}
