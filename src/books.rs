//! Zoho Books API v3: enough to prove a token works.
//!
//! `GET {api_domain}/books/v3/organizations` with `Authorization: Zoho-oauthtoken …`. The
//! envelope's `code` decides (0 = success); 401 with code 57 means the token expired or lacks
//! the scope: refresh once, retry once. 429 with codes 44/45/1070 are Books' rate limits.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use zoho_device_core::reqwest_driver::{classify, read_capped};
use zoho_device_core::{Error, Next, Retry, Transient};

use crate::app::{Context, REFRESH_MARGIN};
use crate::exit::{AppError, Exit};
use crate::store::StoredToken;

/// One organization (the fields we show; the rest is kept for `--json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Organization {
    /// ID for `?organization_id=`.
    #[serde(default, deserialize_with = "string_or_number")]
    pub organization_id: String,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Whether it is the user's default.
    #[serde(default)]
    pub is_default_org: bool,
    /// Currency.
    #[serde(default)]
    pub currency_code: String,
    /// Everything else.
    #[serde(flatten)]
    pub rest: serde_json::Map<String, Value>,
}

fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => s,
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    })
}

/// What a `/organizations` reply means.
#[derive(Debug)]
pub enum Outcome {
    /// The organizations.
    Ok(Vec<Organization>),
    /// 401 code 57: refresh and retry.
    Expired,
}

/// Tries of one Books call on transient failures (network, 5xx, non-JSON pages).
const BOOKS_ATTEMPTS: u32 = 3;

/// Lists organizations, refreshing once on 401 code 57.
pub async fn organizations(ctx: &Context) -> Result<Vec<Organization>, AppError> {
    let stored = ctx.fresh_token(REFRESH_MARGIN).await?;
    match fetch_retrying(ctx, &stored).await? {
        Outcome::Ok(orgs) => Ok(orgs),
        Outcome::Expired => {
            tracing::info!("Books answered 401 (code 57): refreshing the token and retrying once");
            let stored = ctx.force_refresh(Some(&stored)).await?;
            match fetch_retrying(ctx, &stored).await? {
                Outcome::Ok(orgs) => Ok(orgs),
                Outcome::Expired => Err(AppError::new(
                    Exit::NeedsPairing,
                    "Zoho Books still rejects the token after a refresh (401, code 57): the token lacks the scope ZohoBooks.settings.READ or was revoked",
                )
                .hint("pair again with `zoho-device login --scope ZohoBooks.settings.READ`")),
            }
        }
    }
}

/// [`fetch`], retried with capped, jittered backoff while it fails transiently (the same GET
/// is safe to repeat); Books' own rate limits (429) are not retried here.
async fn fetch_retrying(ctx: &Context, stored: &StoredToken) -> Result<Outcome, AppError> {
    let mut backoff = crate::app::retry_backoff();
    let mut retry = Retry::new(BOOKS_ATTEMPTS, &mut backoff);
    loop {
        let core = match fetch(ctx, stored).await {
            Err(AppError {
                core: Some(e @ Error::Unavailable { .. }),
                ..
            }) => e,
            other => return other,
        };
        match retry.after::<Outcome>(Err(core)) {
            Next::Sleep(delay) => {
                tracing::info!(delay_ms = delay.as_millis() as u64, "Books call failed; retrying");
                tokio::time::sleep(delay).await;
            }
            Next::Return(result) => return result.map_err(AppError::from),
        }
    }
}

async fn fetch(ctx: &Context, stored: &StoredToken) -> Result<Outcome, AppError> {
    let api = ctx.checked_api_domain(stored)?;
    let url = api.join("/books/v3/organizations");
    let mut resp = ctx
        .http
        .reqwest()
        .get(url.as_url().clone())
        .header(
            "Authorization",
            format!("Zoho-oauthtoken {}", stored.tokens.access_token.expose()),
        )
        .header("Accept", "application/json")
        .send()
        .await
        .map_err(|e| AppError::from(Error::from(classify(&e))))?;
    let status = resp.status().as_u16();
    let body = read_capped(&mut resp)
        .await
        .map_err(|e| AppError::from(Error::from(e)))?;
    parse_organizations(status, &body)
}

/// Reads a `GET /books/v3/organizations` reply (status and body, as read with the size cap):
/// the envelope's `code` and the HTTP status decide, never the message text. Transient
/// failures come back as exit 7 with the core's [`Error::Unavailable`] inside.
pub fn parse_organizations(status: u16, body: &[u8]) -> Result<Outcome, AppError> {
    let unavailable = |t: Transient| AppError::from(Error::Unavailable { attempts: 1, last: t });
    if body.len() > zoho_device_core::http::MAX_RESPONSE_BYTES {
        return Err(unavailable(Transient::Oversize));
    }
    let envelope: Option<serde_json::Map<String, Value>> = serde_json::from_slice(body).ok();
    let code = envelope.as_ref().and_then(|m| m.get("code")).and_then(Value::as_i64);
    let message = envelope
        .as_ref()
        .and_then(|m| m.get("message"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    match (status, code) {
        (200, Some(0)) => {
            let orgs = envelope
                .and_then(|mut m| m.remove("organizations"))
                .unwrap_or(Value::Array(vec![]));
            let orgs: Vec<Organization> = serde_json::from_value(orgs).map_err(|e| {
                AppError::new(
                    Exit::Unexpected,
                    format!("Books sent organizations in an unexpected shape: {e}"),
                )
            })?;
            Ok(Outcome::Ok(orgs))
        }
        (401, Some(57)) => Ok(Outcome::Expired),
        (401, Some(14)) => Err(AppError::new(
            Exit::Unexpected,
            "Zoho Books did not accept the Authorization header (401, code 14)",
        )
        .hint("this is a bug in zoho-device; please report it with `zoho-device doctor` output")),
        (401, _) => Ok(Outcome::Expired),
        (429, Some(44)) => Err(AppError::new(
            Exit::Unavailable,
            "Zoho Books rate limit: more than 100 requests per minute for this organization (429, code 44)",
        )
        .hint("wait a minute and try again")),
        (429, Some(45)) => Err(AppError::new(
            Exit::Unavailable,
            "Zoho Books daily request limit of your plan reached (429, code 45)",
        )
        .hint("try again tomorrow, or upgrade the Books plan")),
        (429, Some(1070)) => Err(AppError::new(
            Exit::Unavailable,
            "Zoho Books: too many concurrent requests (429, code 1070)",
        )
        .hint("retry in a few seconds, with fewer requests in parallel")),
        (429, _) => {
            Err(AppError::new(Exit::Unavailable, "Zoho Books is rate limiting (429)")
                .hint("wait a minute and try again"))
        }
        (s, _) if s >= 500 || envelope.is_none() => Err(unavailable(if envelope.is_none() {
            Transient::NotJson(s)
        } else {
            Transient::Status(s)
        })),
        (s, Some(c)) => Err(AppError::new(
            Exit::Unexpected,
            format!("Zoho Books answered HTTP {s}, code {c}: {message}"),
        )),
        (s, None) => Err(AppError::new(
            Exit::Unexpected,
            format!("Zoho Books answered HTTP {s} without a code"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(status: u16, body: &str) -> AppError {
        match parse_organizations(status, body.as_bytes()) {
            Err(e) => e,
            Ok(o) => panic!("{status} {body}: {o:?}"),
        }
    }

    #[test]
    fn every_documented_rate_limit_is_explained_with_exit_7() {
        for (code, says, hint) in [
            (44, "more than 100 requests per minute", "wait a minute"),
            (45, "daily request limit", "tomorrow"),
            (1070, "too many concurrent requests", "fewer requests in parallel"),
            (9999, "rate limiting (429)", "wait a minute"),
        ] {
            let e = err(429, &format!(r#"{{"code":{code},"message":"x"}}"#));
            assert_eq!(e.exit, Exit::Unavailable, "{code}");
            assert!(e.message.contains(says), "{code}: {}", e.message);
            assert!(e.hint.as_deref().unwrap_or("").contains(hint), "{code}: {:?}", e.hint);
        }
    }

    #[test]
    fn the_envelope_code_decides_not_the_message() {
        assert!(matches!(
            parse_organizations(401, br#"{"code":57,"message":"You are not authorized"}"#),
            Ok(Outcome::Expired)
        ));
        let e = err(401, r#"{"code":14,"message":"Invalid value passed for Authorization"}"#);
        assert_eq!(e.exit, Exit::Unexpected);
        assert!(e.message.contains("code 14"), "{}", e.message);
    }
}
