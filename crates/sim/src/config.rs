//! [`SimConfig`]: which data centres run, who is registered, and how fast time goes.

use std::time::Duration;

use crate::fault::Fault;

/// A client registered in the API console ("Non-browser Applications").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientConfig {
    /// Client ID, e.g. `1004.SIMCLIENT`.
    pub id: String,
    /// Client secret; required when polling and refreshing.
    pub secret: String,
    /// Location codes of the DCs that know this client (its home DC plus the "Multi-DC" ones).
    pub locations: Vec<String>,
    /// Multi-DC: DCs where the client has a secret of its own, as (location, secret). At such a
    /// DC only that secret is accepted; elsewhere [`ClientConfig::secret`].
    pub dc_secrets: Vec<(String, String)>,
}

impl ClientConfig {
    /// A client known in the given DCs.
    pub fn new(id: &str, secret: &str, locations: &[&str]) -> Self {
        ClientConfig {
            id: id.to_owned(),
            secret: secret.to_owned(),
            locations: locations.iter().map(|l| (*l).to_owned()).collect(),
            dc_secrets: Vec::new(),
        }
    }

    /// Gives the client a secret of its own in DC `location` (Multi-DC).
    pub fn with_dc_secret(mut self, location: &str, secret: &str) -> Self {
        self.dc_secrets.retain(|(l, _)| l != location);
        self.dc_secrets.push((location.to_owned(), secret.to_owned()));
        self
    }

    /// The secret this client must send at DC `location`.
    pub fn secret_at(&self, location: &str) -> &str {
        self.dc_secrets
            .iter()
            .find(|(l, _)| l == location)
            .map_or(self.secret.as_str(), |(_, s)| s.as_str())
    }
}

/// How `other_dc` names the user's DC (Zoho's pages and public clients differ).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OtherDcField {
    /// `user_location` (Zoho's pages; the default).
    #[default]
    UserLocation,
    /// `dc` (as a public Zoho client reads it).
    Dc,
    /// Both `user_location` and `dc`.
    Both,
    /// `user_location` holding the whole accounts URL of the DC instead of its code.
    AccountsUrl,
    /// No location at all.
    None,
}

impl std::str::FromStr for OtherDcField {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "user_location" => Ok(OtherDcField::UserLocation),
            "dc" => Ok(OtherDcField::Dc),
            "both" => Ok(OtherDcField::Both),
            "url" => Ok(OtherDcField::AccountsUrl),
            "none" => Ok(OtherDcField::None),
            other => Err(format!("{other:?} is not user_location, dc, both, url or none")),
        }
    }
}

/// The Zoho Books organization a user owns (one per user in the simulator).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrgConfig {
    /// `organization_id`, e.g. `10234695`.
    pub id: String,
    /// Organization name, e.g. `Zillum`.
    pub name: String,
    /// ISO currency code, e.g. `USD`.
    pub currency_code: String,
}

impl Default for OrgConfig {
    fn default() -> Self {
        OrgConfig {
            id: "10234695".to_owned(),
            name: "Zillum".to_owned(),
            currency_code: "USD".to_owned(),
        }
    }
}

/// A Zoho user: a name and the DC where the account lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserConfig {
    /// User name (shown on the approval page; also an e-mail-like handle).
    pub name: String,
    /// Location code of the user's home DC (`us`, `eu`, ...).
    pub location: String,
    /// The Books organization the user sees.
    pub org: OrgConfig,
}

impl UserConfig {
    /// A user living in `location`, owning the default `Zillum` organization.
    pub fn new(name: &str, location: &str) -> Self {
        UserConfig {
            name: name.to_owned(),
            location: location.to_owned(),
            org: OrgConfig::default(),
        }
    }
}

/// Approve pending codes without a person, for demos and tests.
///
/// A code is approved when it is polled and either condition holds (whichever is set).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AutoApprove {
    /// Approve once this long has passed since the code was issued.
    pub after: Option<Duration>,
    /// Approve on the N-th poll of the code (that poll already gets the tokens, or `other_dc`).
    pub after_polls: Option<u32>,
    /// The user who approves; `None` means [`SimConfig::approver`].
    pub user: Option<String>,
}

/// Configuration of a [`Simulator`](crate::Simulator). `Default` is Zoho's behaviour with two
/// DCs (`us`, `eu`), one client `1004.SIMCLIENT`/`sim-secret` known in `us`, and one user in `us`.
///
/// Fields are public; the builder methods are shorthands.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Location codes of the DCs to run, one listener each, in order.
    pub locations: Vec<String>,
    /// If set, DC number `i` listens on `port_base + i`; otherwise on an ephemeral port.
    pub port_base: Option<u16>,
    /// Registered clients.
    pub clients: Vec<ClientConfig>,
    /// Users; the first one is the default approver unless [`SimConfig::approver`] is set.
    pub users: Vec<UserConfig>,
    /// Name of the user approvals are done as (approval page default, [`crate::Simulator::approve`]).
    pub approver: Option<String>,
    /// Minimum spacing of polls of one device code, in ms (Zoho: 30 000). Sent as `interval`.
    pub interval_ms: u64,
    /// Lifetime of a device/user code in ms (Zoho: 300 000). Sent as `expires_in`.
    pub code_lifetime_ms: u64,
    /// Access-token lifetime in seconds (Zoho: 3600).
    pub token_lifetime_s: u64,
    /// Answer OAuth errors with HTTP 400 instead of Zoho's usual HTTP 200.
    pub errors_as_400: bool,
    /// Leave `verification_uri_complete` out of the device-code reply.
    pub omit_verification_uri_complete: bool,
    /// Answer a lapsed code with RFC 8628's `expired_token` instead of Zoho's `expired`.
    pub expired_token_error: bool,
    /// How `other_dc` names the user's DC.
    pub other_dc_field: OtherDcField,
    /// Token replies in the legacy shape: `expires_in` in milliseconds beside `expires_in_sec`.
    pub legacy_token_expiry: bool,
    /// Access tokens one refresh token may mint by refresh within [`SimConfig::throttle_window`]
    /// (Zoho: 10).
    pub throttle_limit: u32,
    /// Sliding window of the refresh throttle (Zoho: 10 minutes).
    pub throttle_window: Duration,
    /// Live access tokens per refresh token; minting one more kills the oldest (Zoho: 15).
    pub max_access_tokens: usize,
    /// Refresh tokens per user per client; the next one evicts the oldest (Zoho: 20).
    pub max_refresh_tokens: usize,
    /// Books API calls per organization within [`SimConfig::books_rate_window`] (Zoho: 100).
    pub books_rate_limit: u32,
    /// Window of the Books rate limit (Zoho: one minute).
    pub books_rate_window: Duration,
    /// Books API calls per organization within [`SimConfig::books_daily_window`] (Zoho: from
    /// 1,000 on the Free plan to 10,000).
    pub books_daily_limit: u32,
    /// The "day" of the daily Books budget, counted from the simulator's start (Zoho: a day).
    pub books_daily_window: Duration,
    /// Books calls served at once (on all DCs); one more is answered 429 code 1070.
    pub books_max_concurrent: u32,
    /// How long Books takes to answer each call (lets calls overlap, for code 1070).
    pub books_latency: Duration,
    /// Automatic approval, if any.
    pub auto_approve: Option<AutoApprove>,
    /// Faults armed at start.
    pub faults: Vec<Fault>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            locations: vec!["us".to_owned(), "eu".to_owned()],
            port_base: None,
            clients: vec![ClientConfig::new("1004.SIMCLIENT", "sim-secret", &["us"])],
            users: vec![UserConfig::new("sim.user@example.com", "us")],
            approver: None,
            interval_ms: 30_000,
            code_lifetime_ms: 300_000,
            token_lifetime_s: 3600,
            errors_as_400: false,
            omit_verification_uri_complete: false,
            expired_token_error: false,
            other_dc_field: OtherDcField::UserLocation,
            legacy_token_expiry: false,
            throttle_limit: 10,
            throttle_window: Duration::from_secs(600),
            max_access_tokens: 15,
            max_refresh_tokens: 20,
            books_rate_limit: 100,
            books_rate_window: Duration::from_secs(60),
            books_daily_limit: 1000,
            books_daily_window: Duration::from_secs(86_400),
            books_max_concurrent: 10,
            books_latency: Duration::ZERO,
            auto_approve: None,
            faults: Vec::new(),
        }
    }
}

impl SimConfig {
    /// The default configuration (same as `Default`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the DCs to run, e.g. `&["us", "eu", "in"]`.
    pub fn locations(mut self, locations: &[&str]) -> Self {
        self.locations = locations.iter().map(|l| (*l).to_owned()).collect();
        self
    }

    /// Listen on `base`, `base + 1`, ... instead of ephemeral ports.
    pub fn port_base(mut self, base: u16) -> Self {
        self.port_base = Some(base);
        self
    }

    /// Replaces the registered clients with this one.
    pub fn client(mut self, id: &str, secret: &str, locations: &[&str]) -> Self {
        self.clients = vec![ClientConfig::new(id, secret, locations)];
        self
    }

    /// Registers one more client.
    pub fn add_client(mut self, id: &str, secret: &str, locations: &[&str]) -> Self {
        self.clients.push(ClientConfig::new(id, secret, locations));
        self
    }

    /// Replaces the users with this one (who becomes the default approver).
    pub fn user(mut self, name: &str, location: &str) -> Self {
        self.users = vec![UserConfig::new(name, location)];
        self
    }

    /// Adds one more user.
    pub fn add_user(mut self, name: &str, location: &str) -> Self {
        self.users.push(UserConfig::new(name, location));
        self
    }

    /// Approvals (page default, [`crate::Simulator::approve`], auto-approve) are done as `name`.
    pub fn approver(mut self, name: &str) -> Self {
        self.approver = Some(name.to_owned());
        self
    }

    /// Poll interval in milliseconds.
    pub fn interval_ms(mut self, ms: u64) -> Self {
        self.interval_ms = ms;
        self
    }

    /// Device-code lifetime in milliseconds.
    pub fn code_lifetime_ms(mut self, ms: u64) -> Self {
        self.code_lifetime_ms = ms;
        self
    }

    /// Access-token lifetime in seconds.
    pub fn token_lifetime_s(mut self, s: u64) -> Self {
        self.token_lifetime_s = s;
        self
    }

    /// OAuth errors with HTTP 400 (`true`) or Zoho's HTTP 200 (`false`).
    pub fn errors_as_400(mut self, on: bool) -> Self {
        self.errors_as_400 = on;
        self
    }

    /// Leave out `verification_uri_complete`.
    pub fn omit_verification_uri_complete(mut self, on: bool) -> Self {
        self.omit_verification_uri_complete = on;
        self
    }

    /// Say `expired_token` (RFC 8628) instead of `expired` (Zoho).
    pub fn expired_token_error(mut self, on: bool) -> Self {
        self.expired_token_error = on;
        self
    }

    /// Gives client `id` a secret of its own in DC `location` (Multi-DC).
    ///
    /// # Panics
    ///
    /// If no client `id` is registered (a test bug).
    pub fn dc_secret(mut self, id: &str, location: &str, secret: &str) -> Self {
        let Some(c) = self.clients.iter_mut().find(|c| c.id == id) else {
            panic!("no client {id:?} is registered");
        };
        *c = c.clone().with_dc_secret(location, secret);
        self
    }

    /// How `other_dc` names the user's DC.
    pub fn other_dc_field(mut self, field: OtherDcField) -> Self {
        self.other_dc_field = field;
        self
    }

    /// Token replies with `expires_in` in milliseconds beside `expires_in_sec` (`true`).
    pub fn legacy_token_expiry(mut self, on: bool) -> Self {
        self.legacy_token_expiry = on;
        self
    }

    /// Refresh throttle: `limit` mints per refresh token within `window`.
    pub fn throttle(mut self, limit: u32, window: Duration) -> Self {
        self.throttle_limit = limit;
        self.throttle_window = window;
        self
    }

    /// Books rate limit: `limit` calls per organization within `window`.
    pub fn books_rate_limit(mut self, limit: u32, window: Duration) -> Self {
        self.books_rate_limit = limit;
        self.books_rate_window = window;
        self
    }

    /// Books daily budget: `limit` calls per organization within `window`.
    pub fn books_daily_limit(mut self, limit: u32, window: Duration) -> Self {
        self.books_daily_limit = limit;
        self.books_daily_window = window;
        self
    }

    /// Books concurrency: at most `max` calls at once, each taking `latency`.
    pub fn books_concurrency(mut self, max: u32, latency: Duration) -> Self {
        self.books_max_concurrent = max;
        self.books_latency = latency;
        self
    }

    /// Approve every code automatically; see [`AutoApprove`].
    pub fn auto_approve(mut self, auto: AutoApprove) -> Self {
        self.auto_approve = Some(auto);
        self
    }

    /// Approve automatically once `after` has passed since the code was issued.
    pub fn auto_approve_after(mut self, after: Duration) -> Self {
        self.auto_approve.get_or_insert_with(AutoApprove::default).after = Some(after);
        self
    }

    /// Approve automatically on the `polls`-th poll of a code.
    pub fn auto_approve_after_polls(mut self, polls: u32) -> Self {
        self.auto_approve.get_or_insert_with(AutoApprove::default).after_polls = Some(polls);
        self
    }

    /// Arms a fault from the start.
    pub fn fault(mut self, fault: Fault) -> Self {
        self.faults.push(fault);
        self
    }

    /// The approver's name: [`SimConfig::approver`] or else the first user.
    pub(crate) fn default_approver(&self) -> Option<&str> {
        self.approver
            .as_deref()
            .or_else(|| self.users.first().map(|u| u.name.as_str()))
    }

    /// Checks the configuration for contradictions before any socket is opened.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.locations.is_empty() {
            return Err("no data centre to run".to_owned());
        }
        for (i, l) in self.locations.iter().enumerate() {
            if self.locations[..i].contains(l) {
                return Err(format!("data centre {l:?} listed twice"));
            }
        }
        for c in &self.clients {
            if let Some(l) = c.locations.iter().find(|l| !self.locations.contains(l)) {
                return Err(format!("client {} is registered in {l:?}, which is not run", c.id));
            }
            if let Some((l, _)) = c.dc_secrets.iter().find(|(l, _)| !c.locations.contains(l)) {
                return Err(format!(
                    "client {} has a secret for {l:?}, where it is not registered",
                    c.id
                ));
            }
        }
        for u in &self.users {
            if !self.locations.contains(&u.location) {
                return Err(format!("user {} lives in {:?}, which is not run", u.name, u.location));
            }
        }
        if let Some(a) = self.default_approver()
            && !self.users.iter().any(|u| u.name == a)
        {
            return Err(format!("approver {a:?} is not a user"));
        }
        if let Some(a) = self.auto_approve.as_ref().and_then(|a| a.user.as_deref())
            && !self.users.iter().any(|u| u.name == a)
        {
            return Err(format!("auto-approve user {a:?} is not a user"));
        }
        if self.interval_ms == 0 || self.code_lifetime_ms == 0 || self.token_lifetime_s == 0 {
            return Err("interval, code lifetime and token lifetime must be positive".to_owned());
        }
        Ok(())
    }
}
