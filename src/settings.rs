//! Settings: flags over environment over the config file, validated once.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use zoho_device_core::{ClientCredentials, ClientSecret, DataCenter, Profile, ServerUrl};

use crate::cli::{GlobalArgs, ProfileArg};
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
    /// Ask for a refresh token (default true).
    pub offline_access: Option<bool>,
    /// Command for the agent when pairing is needed.
    pub on_needs_pairing: Option<String>,
    /// Books organization for `api` (default: the pairing's default organization).
    pub organization_id: Option<String>,
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
    /// A file (flag, env or config).
    File(PathBuf),
    /// systemd credential.
    Credential(PathBuf),
}

/// Resolved settings.
#[derive(Debug)]
pub struct Settings {
    /// Protocol profile.
    pub profile: Profile,
    /// Client ID, when configured.
    pub client_id: Option<String>,
    /// Client secret, when configured.
    pub client_secret: Option<ClientSecret>,
    /// Where it came from.
    pub secret_source: Option<SecretSource>,
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
    /// Books organization for `api` (config key `organization_id`).
    pub organization_id: Option<String>,
}

impl Settings {
    /// Resolves settings from flags (which clap already merged with the environment), the
    /// secret's environment variables, and the config file.
    pub fn resolve(args: &GlobalArgs) -> Result<Settings, AppError> {
        Settings::resolve_with(args, &|k| std::env::var(k).ok())
    }

    /// As [`Settings::resolve`], with the environment given (tests).
    pub fn resolve_with(args: &GlobalArgs, env: &dyn Fn(&str) -> Option<String>) -> Result<Settings, AppError> {
        let (file, config_path) = load_config_file(args.config.as_deref(), env)?;

        let profile = match (args.profile, file.profile.as_deref()) {
            (Some(ProfileArg::Zoho), _) => Profile::Zoho,
            (Some(ProfileArg::Rfc8628), _) => Profile::Rfc8628,
            (None, None) => Profile::Zoho,
            (None, Some(p)) => match p {
                "zoho" => Profile::Zoho,
                "rfc8628" => Profile::Rfc8628,
                other => {
                    return Err(AppError::usage(format!(
                        "config: profile {other:?} is not zoho or rfc8628"
                    )));
                }
            },
        };

        let client_id = args.client_id.clone().or(file.client_id).map(|s| s.trim().to_string());
        if client_id.as_deref() == Some("") {
            return Err(AppError::usage("the client ID is empty").hint("set --client-id or ZOHO_CLIENT_ID"));
        }

        let (client_secret, secret_source) = load_secret(args, file.client_secret_file.as_deref(), env)?;

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
            Some(p) => p,
            None => default_token_file(env)?,
        };

        Ok(Settings {
            profile,
            client_id,
            client_secret,
            secret_source,
            endpoint,
            scopes,
            token_file,
            displays: file.display.unwrap_or_default(),
            config_path,
            on_needs_pairing: file.on_needs_pairing,
            offline_access: !args.no_offline_access && file.offline_access.unwrap_or(true),
            organization_id: file.organization_id,
        })
    }

    /// The client credentials, or a usage error saying what is missing.
    pub fn client(&self) -> Result<ClientCredentials, AppError> {
        let client_id = self.client_id.clone().ok_or_else(|| {
            AppError::usage("no client ID configured").hint(
                "create a \"Non-browser Application\" at https://api-console.zoho.com, then set --client-id or ZOHO_CLIENT_ID (or try `zoho-device demo`)",
            )
        })?;
        if self.profile == Profile::Zoho && self.client_secret.is_none() {
            return Err(AppError::usage("no client secret configured").hint(
                "set ZOHO_CLIENT_SECRET, ZOHO_CLIENT_SECRET_FILE or --client-secret-file (the secret is never accepted as a flag value)",
            ));
        }
        Ok(ClientCredentials {
            client_id,
            client_secret: self.client_secret.clone(),
        })
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
        Some(p) => Some(p.to_path_buf()),
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
    let text = std::fs::read_to_string(&path).map_err(|e| {
        AppError::usage(format!("cannot read the config file {}: {e}", path.display()))
            .hint("check the path given with --config (or ZOHO_DEVICE_CONFIG)")
    })?;
    let file: ConfigFile = toml::from_str(&text).map_err(|e| {
        AppError::usage(format!("the config file {} is not valid: {}", path.display(), e.message().trim()))
            .hint("keys: client_id, client_secret_file, dc, accounts_url, scope, token_file, display, profile, device_authorization_url, token_url, revocation_url, issuer, offline_access, on_needs_pairing, organization_id")
    })?;
    Ok((file, Some(path)))
}

fn load_secret(
    args: &GlobalArgs,
    file_secret: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Option<ClientSecret>, Option<SecretSource>), AppError> {
    let read = |path: &Path, source: SecretSource| -> Result<(Option<ClientSecret>, Option<SecretSource>), AppError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            AppError::usage(format!("cannot read the client secret file {}: {e}", path.display()))
                .hint("check the path and that this user may read it")
        })?;
        let secret = text.trim();
        if secret.is_empty() {
            return Err(AppError::usage(format!(
                "the client secret file {} is empty",
                path.display()
            )));
        }
        Ok((Some(ClientSecret::new(secret)), Some(source)))
    };
    if let Some(p) = &args.client_secret_file {
        return read(p, SecretSource::File(p.clone()));
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
        return read(p, SecretSource::File(p.to_path_buf()));
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
