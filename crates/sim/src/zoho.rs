//! The simulated Zoho: accounts (device codes, tokens) and Books, as a plain state machine.
//!
//! Nothing here does I/O or reads the clock: every entry point takes `now` and the request's
//! parameters, and returns a [`Reply`]. The HTTP layer (`server`) only decodes and encodes.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::config::{OtherDcField, SimConfig, UserConfig};
use crate::fault::{Fault, FaultKind};
use crate::log::{LoggedRequest, Stats};

/// An answer before HTTP encoding.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    fn ok(body: Value) -> Self {
        Reply { status: 200, body }
    }
}

/// Where a device code stands.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Approval {
    Pending,
    Approved {
        user: String,
    },
    Denied,
    /// Tokens were handed out; the code is spent.
    Used,
}

#[derive(Clone, Debug)]
struct DeviceCode {
    user_code: String,
    client_id: String,
    scope: String,
    offline: bool,
    consent: bool,
    issued_at: Instant,
    expires_at: Instant,
    last_poll: Option<Instant>,
    polls: u32,
    approval: Approval,
}

#[derive(Clone, Debug)]
struct RefreshToken {
    user: String,
    client_id: String,
    location: String,
    scope: String,
    /// Mint order, to find the oldest of a user's tokens.
    seq: u64,
    /// When refreshes minted access tokens, for the sliding-window throttle.
    mints: VecDeque<Instant>,
    /// Live access tokens, oldest first.
    access: VecDeque<String>,
}

#[derive(Clone, Debug)]
struct AccessToken {
    user: String,
    location: String,
    scope: String,
    expires_at: Instant,
}

/// Everything the simulated Zoho knows, across all DCs.
pub(crate) struct Zoho {
    pub(crate) cfg: SimConfig,
    pub(crate) start: Instant,
    /// location code → base URL (`http://127.0.0.1:PORT`).
    urls: BTreeMap<String, String>,
    /// device code → state.
    codes: HashMap<String, DeviceCode>,
    /// user code → device code.
    user_codes: HashMap<String, String>,
    refresh: HashMap<String, RefreshToken>,
    refresh_seq: u64,
    access: HashMap<String, AccessToken>,
    /// (user, client) pairs that already got a refresh token (for `prompt=consent`).
    consented: HashSet<(String, String)>,
    /// Books' records and budgets (`crate::books`).
    pub(crate) books: crate::books::Books,
    faults: Vec<Fault>,
    log: Vec<LoggedRequest>,
    log_seq: u64,
    pub(crate) stats: Stats,
    random: RandomState,
    random_counter: u64,
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// Upper-cases, drops spaces, and puts the dash back into `WLKU4502`.
pub(crate) fn normalize_user_code(code: &str) -> String {
    let mut c: String = code
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if c.len() == 8 && !c.contains('-') && c.is_ascii() {
        c.insert(4, '-');
    }
    c
}

/// Scopes are comma-separated `Service.resource.OPERATION` (or `Service.scope`) names.
fn scope_is_valid(scope: &str) -> bool {
    !scope.is_empty()
        && scope.split(',').all(|s| {
            let parts: Vec<&str> = s.split('.').collect();
            (2..=3).contains(&parts.len())
                && parts
                    .iter()
                    .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '*'))
        })
}

impl Zoho {
    pub(crate) fn new(cfg: SimConfig, urls: BTreeMap<String, String>, start: Instant) -> Self {
        let faults = cfg.faults.clone();
        Zoho {
            cfg,
            start,
            urls,
            codes: HashMap::new(),
            user_codes: HashMap::new(),
            refresh: HashMap::new(),
            refresh_seq: 0,
            access: HashMap::new(),
            consented: HashSet::new(),
            books: crate::books::Books::default(),
            faults,
            log: Vec::new(),
            log_seq: 0,
            stats: Stats::default(),
            random: RandomState::new(),
            random_counter: 0,
        }
    }

    // ---------------------------------------------------------------- randomness, ids

    fn random_u64(&mut self) -> u64 {
        self.random_counter += 1;
        let mut h = self.random.build_hasher();
        h.write_u64(self.random_counter);
        h.write_u128(self.start.elapsed().as_nanos());
        h.finish()
    }

    fn random_hex(&mut self, words: usize) -> String {
        (0..words).map(|_| format!("{:016x}", self.random_u64())).collect()
    }

    fn new_user_code(&mut self) -> String {
        loop {
            let r = self.random_u64();
            let letters: String = (0..4).map(|i| char::from(b'A' + ((r >> (i * 8)) % 26) as u8)).collect();
            let digits = (r >> 32) % 10_000;
            let code = format!("{letters}-{digits:04}");
            if !self.user_codes.contains_key(&code) {
                return code;
            }
        }
    }

    fn error(&self, error: &str) -> Reply {
        Reply {
            status: if self.cfg.errors_as_400 { 400 } else { 200 },
            body: json!({ "error": error }),
        }
    }

    fn client_known(&self, client_id: Option<&str>, location: &str) -> bool {
        client_id.is_some_and(|id| {
            self.cfg
                .clients
                .iter()
                .any(|c| c.id == id && c.locations.iter().any(|l| l == location))
        })
    }

    /// Whether `secret` is the client's secret at DC `location` (its own there, else the common).
    fn client_secret_ok(&self, client_id: &str, secret: Option<&str>, location: &str) -> bool {
        secret.is_some_and(|s| {
            self.cfg
                .clients
                .iter()
                .any(|c| c.id == client_id && c.secret_at(location) == s)
        })
    }

    /// A token reply's lifetime fields: seconds, or the legacy milliseconds + `expires_in_sec`.
    fn lifetime_fields(&self, body: &mut Value) {
        let s = self.cfg.token_lifetime_s;
        if self.cfg.legacy_token_expiry {
            body["expires_in"] = json!(s.saturating_mul(1000));
            body["expires_in_sec"] = json!(s);
        } else {
            body["expires_in"] = json!(s);
        }
    }

    fn user(&self, name: &str) -> Option<&UserConfig> {
        self.cfg.users.iter().find(|u| u.name == name)
    }

    pub(crate) fn base_url(&self, location: &str) -> Option<&str> {
        self.urls.get(location).map(String::as_str)
    }

    pub(crate) fn users(&self) -> &[UserConfig] {
        &self.cfg.users
    }

    pub(crate) fn default_approver(&self) -> Option<String> {
        self.cfg.default_approver().map(str::to_owned)
    }

    // ---------------------------------------------------------------- device code

    /// `POST /oauth/v3/device/code` at DC `location`.
    pub(crate) fn device_code(&mut self, location: &str, params: &[(String, String)], now: Instant) -> Reply {
        let client_id = param(params, "client_id");
        if !self.client_known(client_id, location) {
            return self.error("invalid_client");
        }
        if param(params, "grant_type") != Some("device_request") {
            return self.error("unsupported_grant_type");
        }
        let scope = param(params, "scope").unwrap_or("");
        if !scope_is_valid(scope) {
            return self.error("invalid_scope");
        }
        let client_id = client_id.unwrap_or_default().to_owned();
        let user_code = self.new_user_code();
        let device_code = format!("1004.{}", self.random_hex(2));
        let code = DeviceCode {
            user_code: user_code.clone(),
            client_id,
            scope: scope.to_owned(),
            offline: param(params, "access_type") == Some("offline"),
            consent: param(params, "prompt") == Some("consent"),
            issued_at: now,
            expires_at: now + Duration::from_millis(self.cfg.code_lifetime_ms),
            last_poll: None,
            polls: 0,
            approval: Approval::Pending,
        };
        self.codes.insert(device_code.clone(), code);
        self.user_codes.insert(user_code.clone(), device_code.clone());
        self.stats.codes_issued += 1;
        let base = self.base_url(location).unwrap_or_default();
        let mut body = json!({
            "user_code": user_code,
            "device_code": device_code,
            "interval": self.cfg.interval_ms,
            "expires_in": self.cfg.code_lifetime_ms,
            "verification_url": format!("{base}/oauth/v3/device"),
        });
        if !self.cfg.omit_verification_uri_complete {
            body["verification_uri_complete"] = json!(format!("{base}/oauth/v3/device/setCode?devcode={user_code}"));
        }
        Reply::ok(body)
    }

    // ---------------------------------------------------------------- approval

    /// Approves `user_code` as `user`; `false` if the code is unknown, lapsed or decided.
    pub(crate) fn approve(&mut self, user_code: &str, user: &str, now: Instant) -> bool {
        if self.user(user).is_none() {
            return false;
        }
        self.decide(user_code, Approval::Approved { user: user.to_owned() }, now)
    }

    /// Denies `user_code`; `false` if the code is unknown, lapsed or decided.
    pub(crate) fn deny(&mut self, user_code: &str, now: Instant) -> bool {
        self.decide(user_code, Approval::Denied, now)
    }

    fn decide(&mut self, user_code: &str, decision: Approval, now: Instant) -> bool {
        let key = normalize_user_code(user_code);
        let Some(device_code) = self.user_codes.get(&key) else {
            return false;
        };
        match self.codes.get_mut(device_code) {
            Some(c) if c.approval == Approval::Pending && now < c.expires_at => {
                c.approval = decision;
                true
            }
            _ => false,
        }
    }

    /// User codes still waiting for a decision.
    pub(crate) fn pending_user_codes(&self, now: Instant) -> Vec<String> {
        let mut v: Vec<(Instant, String)> = self
            .codes
            .values()
            .filter(|c| c.approval == Approval::Pending && now < c.expires_at)
            .map(|c| (c.issued_at, c.user_code.clone()))
            .collect();
        v.sort();
        v.into_iter().map(|(_, c)| c).collect()
    }

    /// Lapses every device code now.
    pub(crate) fn expire_codes(&mut self, now: Instant) {
        for c in self.codes.values_mut() {
            if c.expires_at > now {
                c.expires_at = now;
            }
        }
    }

    // ---------------------------------------------------------------- polling

    /// `POST /oauth/v3/device/token` at DC `location`.
    pub(crate) fn device_token(&mut self, location: &str, params: &[(String, String)], now: Instant) -> Reply {
        let client_id = param(params, "client_id");
        if !self.client_known(client_id, location) {
            return self.error("invalid_client");
        }
        let client_id = client_id.unwrap_or_default();
        if !self.client_secret_ok(client_id, param(params, "client_secret"), location) {
            return self.error("invalid_client_secret");
        }
        if param(params, "grant_type") != Some("device_token") {
            return self.error("unsupported_grant_type");
        }
        let Some(device_code) = param(params, "code") else {
            return self.error("invalid_code");
        };
        let device_code = device_code.to_owned();
        let interval = Duration::from_millis(self.cfg.interval_ms);
        let expired = if self.cfg.expired_token_error {
            "expired_token"
        } else {
            "expired"
        };
        let auto = self.cfg.auto_approve.clone();
        let auto_user = auto
            .as_ref()
            .and_then(|a| a.user.clone())
            .or_else(|| self.default_approver());

        let Some(code) = self.codes.get_mut(&device_code) else {
            return self.error("invalid_code");
        };
        if code.client_id != client_id || code.approval == Approval::Used {
            return self.error("invalid_code");
        }
        self.stats.polls += 1;
        if now >= code.expires_at {
            return self.error(expired);
        }
        let too_soon = code
            .last_poll
            .is_some_and(|last| now.saturating_duration_since(last) < interval);
        code.last_poll = Some(now);
        if too_soon {
            self.stats.slow_downs += 1;
            return self.error("slow_down");
        }
        code.polls += 1;
        if code.approval == Approval::Pending
            && let (Some(auto), Some(user)) = (auto, auto_user)
        {
            let by_time = auto
                .after
                .is_some_and(|after| now.saturating_duration_since(code.issued_at) >= after);
            let by_polls = auto.after_polls.is_some_and(|n| code.polls >= n);
            if by_time || by_polls {
                code.approval = Approval::Approved { user };
            }
        }
        match code.approval.clone() {
            Approval::Pending => self.error("authorization_pending"),
            Approval::Denied => self.error("access_denied"),
            Approval::Used => self.error("invalid_code"),
            Approval::Approved { user } => {
                let user_location = self.cfg.users.iter().find(|u| u.name == user);
                let Some(user_location) = user_location.map(|u| u.location.clone()) else {
                    return self.error("access_denied");
                };
                if user_location != location {
                    let mut r = self.error("other_dc");
                    match self.cfg.other_dc_field {
                        OtherDcField::UserLocation => r.body["user_location"] = json!(user_location),
                        OtherDcField::Dc => r.body["dc"] = json!(user_location),
                        OtherDcField::Both => {
                            r.body["user_location"] = json!(user_location);
                            r.body["dc"] = json!(user_location);
                        }
                        OtherDcField::AccountsUrl => {
                            r.body["user_location"] = json!(self.base_url(&user_location).unwrap_or_default());
                        }
                        OtherDcField::None => {}
                    }
                    return r;
                }
                code.approval = Approval::Used;
                let code = code.clone();
                self.stats.pairings += 1;
                self.pair(&code, &user, &user_location, now)
            }
        }
    }

    /// Mints the tokens of a completed pairing.
    fn pair(&mut self, code: &DeviceCode, user: &str, location: &str, now: Instant) -> Reply {
        let key = (user.to_owned(), code.client_id.clone());
        let with_refresh = code.offline && (code.consent || !self.consented.contains(&key));
        let refresh_token = if with_refresh {
            self.consented.insert(key);
            Some(self.mint_refresh(user, &code.client_id, location, &code.scope))
        } else {
            None
        };
        let access_token = self.mint_access(user, location, &code.scope, refresh_token.as_deref(), now);
        let mut body = json!({
            "access_token": access_token,
            "api_domain": self.base_url(location).unwrap_or_default(),
            "token_type": "Bearer",
        });
        self.lifetime_fields(&mut body);
        if let Some(rt) = refresh_token {
            body["refresh_token"] = json!(rt);
        }
        Reply::ok(body)
    }

    fn mint_refresh(&mut self, user: &str, client_id: &str, location: &str, scope: &str) -> String {
        // The 21st refresh token of a user and client silently deletes the oldest.
        loop {
            let mine: Vec<(u64, &String)> = self
                .refresh
                .iter()
                .filter(|(_, r)| r.user == user && r.client_id == client_id)
                .map(|(t, r)| (r.seq, t))
                .collect();
            if mine.len() < self.cfg.max_refresh_tokens.max(1) {
                break;
            }
            let oldest = mine.iter().min().map(|(_, t)| (*t).clone());
            if let Some(t) = oldest {
                self.remove_refresh(&t);
                self.stats.refresh_tokens_evicted += 1;
            }
        }
        let token = format!("1000.{}.{}", self.random_hex(2), self.random_hex(2));
        self.refresh_seq += 1;
        self.refresh.insert(
            token.clone(),
            RefreshToken {
                user: user.to_owned(),
                client_id: client_id.to_owned(),
                location: location.to_owned(),
                scope: scope.to_owned(),
                seq: self.refresh_seq,
                mints: VecDeque::new(),
                access: VecDeque::new(),
            },
        );
        self.stats.refresh_tokens_issued += 1;
        token
    }

    fn mint_access(&mut self, user: &str, location: &str, scope: &str, refresh: Option<&str>, now: Instant) -> String {
        let token = format!("1000.{}.{}", self.random_hex(2), self.random_hex(2));
        self.access.insert(
            token.clone(),
            AccessToken {
                user: user.to_owned(),
                location: location.to_owned(),
                scope: scope.to_owned(),
                expires_at: now + Duration::from_secs(self.cfg.token_lifetime_s),
            },
        );
        self.stats.access_tokens_minted += 1;
        if let Some(rt) = refresh.and_then(|r| self.refresh.get_mut(r)) {
            rt.access.push_back(token.clone());
            while rt.access.len() > self.cfg.max_access_tokens.max(1) {
                if let Some(old) = rt.access.pop_front() {
                    self.access.remove(&old);
                }
            }
        }
        token
    }

    fn remove_refresh(&mut self, token: &str) -> bool {
        match self.refresh.remove(token) {
            Some(rt) => {
                for a in rt.access {
                    self.access.remove(&a);
                }
                true
            }
            None => false,
        }
    }

    // ---------------------------------------------------------------- refresh, revoke

    /// `POST /oauth/v2/token` at DC `location`.
    pub(crate) fn refresh(&mut self, location: &str, params: &[(String, String)], now: Instant) -> Reply {
        let r = self.refresh_inner(location, params, now);
        if r.body.get("access_token").is_none() {
            if r.body["error"] == "Access Denied" {
                self.stats.throttled += 1;
            } else {
                self.stats.refresh_failures += 1;
            }
        }
        r
    }

    fn refresh_inner(&mut self, location: &str, params: &[(String, String)], now: Instant) -> Reply {
        let client_id = param(params, "client_id");
        if !self.client_known(client_id, location) {
            return self.error("invalid_client");
        }
        let client_id = client_id.unwrap_or_default();
        if !self.client_secret_ok(client_id, param(params, "client_secret"), location) {
            // Zoho's v2 token endpoint says invalid_client for a wrong secret.
            return self.error("invalid_client");
        }
        if param(params, "grant_type") != Some("refresh_token") {
            return self.error("unsupported_grant_type");
        }
        let token = param(params, "refresh_token").unwrap_or_default();
        let window = self.cfg.throttle_window;
        let limit = self.cfg.throttle_limit as usize;
        let Some(rt) = self.refresh.get_mut(token) else {
            return self.error("invalid_code");
        };
        // Each DC has its own accounts database: the token does not exist at another DC.
        if rt.client_id != client_id || rt.location != location {
            return self.error("invalid_code");
        }
        while rt
            .mints
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= window)
        {
            rt.mints.pop_front();
        }
        if rt.mints.len() >= limit {
            let mut r = self.error("Access Denied");
            r.body["error_description"] = json!(
                "Token creation throttle limit reached. You have made too many requests for access tokens; try again later."
            );
            return r;
        }
        rt.mints.push_back(now);
        let (user, scope) = (rt.user.clone(), rt.scope.clone());
        let token = token.to_owned();
        let access_token = self.mint_access(&user, location, &scope, Some(&token), now);
        self.stats.refreshes += 1;
        let mut body = json!({
            "access_token": access_token,
            "scope": scope,
            "api_domain": self.base_url(location).unwrap_or_default(),
            "token_type": "Bearer",
        });
        self.lifetime_fields(&mut body);
        Reply::ok(body)
    }

    /// `POST /oauth/v2/token/revoke` at DC `location`.
    pub(crate) fn revoke(&mut self, location: &str, params: &[(String, String)]) -> Reply {
        let token = param(params, "token").unwrap_or_default();
        let here = self.refresh.get(token).is_some_and(|r| r.location == location);
        if here && self.remove_refresh(token) {
            self.stats.refresh_tokens_revoked += 1;
            Reply::ok(json!({ "status": "success" }))
        } else {
            Reply {
                status: 400,
                body: json!({ "status": "failure", "error": "invalid_token" }),
            }
        }
    }

    /// Revokes one refresh token as the user would (removing the app); `false` if unknown.
    pub(crate) fn revoke_refresh_token(&mut self, token: &str) -> bool {
        let done = self.remove_refresh(token);
        if done {
            self.stats.refresh_tokens_revoked += 1;
        }
        done
    }

    /// Revokes every refresh token (and so every access token minted from one).
    pub(crate) fn revoke_all(&mut self) {
        let all: Vec<String> = self.refresh.keys().cloned().collect();
        for t in all {
            self.revoke_refresh_token(&t);
        }
    }

    /// A user's live refresh tokens, oldest first.
    pub(crate) fn refresh_tokens_of(&self, user: &str) -> Vec<String> {
        let mut v: Vec<(u64, String)> = self
            .refresh
            .iter()
            .filter(|(_, r)| r.user == user)
            .map(|(t, r)| (r.seq, t.clone()))
            .collect();
        v.sort();
        v.into_iter().map(|(_, t)| t).collect()
    }

    /// Whether `token` is a live access token (at any DC).
    pub(crate) fn access_token_live(&self, token: &str, now: Instant) -> bool {
        self.access.get(token).is_some_and(|a| now < a.expires_at)
    }

    // ---------------------------------------------------------------- serverinfo, Books

    /// `GET /oauth/serverinfo`.
    pub(crate) fn serverinfo(&self) -> Reply {
        let locations: serde_json::Map<String, Value> = self.urls.iter().map(|(l, u)| (l.clone(), json!(u))).collect();
        Reply::ok(json!({ "result": "success", "locations": locations }))
    }

    /// The user and scope behind a Books `Authorization` header at DC `location`, or Books'
    /// 401: code 14 without a `Zoho-oauthtoken` header, code 57 for a token that is unknown,
    /// expired, or of another DC (scopes are checked by the caller, per operation).
    pub(crate) fn books_caller(
        &self,
        location: &str,
        authorization: Option<&str>,
        now: Instant,
    ) -> Result<(UserConfig, String), Reply> {
        let token = authorization
            .and_then(|h| h.strip_prefix("Zoho-oauthtoken "))
            .map(str::trim)
            .filter(|t| !t.is_empty() && !t.contains(' '));
        let Some(token) = token else {
            return Err(Reply {
                status: 401,
                body: json!({ "code": 14, "message": "Invalid value passed for Authorization header." }),
            });
        };
        let not_authorized = Reply {
            status: 401,
            body: json!({ "code": 57, "message": "You are not authorized to perform this operation" }),
        };
        match self.access.get(token) {
            Some(at) if now < at.expires_at && at.location == location => match self.user(&at.user) {
                Some(user) => Ok((user.clone(), at.scope.clone())),
                None => Err(not_authorized),
            },
            _ => Err(not_authorized),
        }
    }

    // ---------------------------------------------------------------- faults, log, stats

    /// Takes one shot of the first armed fault matching `path`.
    pub(crate) fn take_fault(&mut self, path: &str) -> Option<FaultKind> {
        let i = self.faults.iter().position(|f| f.matches(path))?;
        let kind = self.faults[i].kind;
        self.faults[i].count -= 1;
        if self.faults[i].count == 0 {
            self.faults.remove(i);
        }
        self.stats.faults_applied += 1;
        Some(kind)
    }

    pub(crate) fn inject(&mut self, fault: Fault) {
        if fault.count > 0 {
            self.faults.push(fault);
        }
    }

    pub(crate) fn clear_faults(&mut self) {
        self.faults.clear();
    }

    /// Appends to the log and returns the entry's sequence number.
    pub(crate) fn log(&mut self, mut entry: LoggedRequest) -> u64 {
        self.log_seq += 1;
        entry.seq = self.log_seq;
        self.log.push(entry);
        self.log_seq
    }

    pub(crate) fn log_status(&mut self, seq: u64, status: u16) {
        if let Some(e) = self.log.iter_mut().rev().find(|e| e.seq == seq) {
            e.status = Some(status);
        }
    }

    pub(crate) fn requests(&self) -> Vec<LoggedRequest> {
        self.log.clone()
    }

    pub(crate) fn clear_log(&mut self) {
        self.log.clear();
    }

    pub(crate) fn stats(&self) -> Stats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_normalize() {
        assert_eq!(normalize_user_code(" wlku4502 "), "WLKU-4502");
        assert_eq!(normalize_user_code("wlku-4502"), "WLKU-4502");
    }

    #[test]
    fn scopes_are_comma_separated() {
        assert!(scope_is_valid("ZohoBooks.settings.READ,ZohoBooks.contacts.READ"));
        assert!(scope_is_valid("ZohoBooks.fullaccess.all"));
        assert!(!scope_is_valid("ZohoBooks.settings.READ ZohoBooks.contacts.READ"));
        assert!(!scope_is_valid(""));
    }
}
