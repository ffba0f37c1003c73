//! `books organizations`: a shorthand over [`crate::api`] (`GET /books/v3/organizations`, with
//! the same refresh on 401 code 57 and the same handling of Books' limits), shown as a table.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::{Class, Session, classify_reply, failure, organizations_answer, parse_reply};
use crate::app::Context;
use crate::exit::{AppError, Exit};

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

/// Lists the organizations the pairing sees (through [`crate::api::call`]).
pub async fn organizations(ctx: &Context) -> Result<Vec<Organization>, AppError> {
    let mut session = Session::start(ctx).await?;
    let answer = organizations_answer(&mut session).await.map_err(|f| f.error)?;
    match answer.json {
        Some(v) => organizations_of(v),
        None => Err(AppError::new(
            Exit::Unexpected,
            "Books sent organizations that are not JSON",
        )),
    }
}

/// Reads a `GET /books/v3/organizations` reply with `api`'s rules ([`crate::api::classify_reply`]:
/// status and `code` decide, never the message): the organizations, or the error `api` would
/// give when it no longer retries.
pub fn parse_organizations(status: u16, body: &[u8]) -> Result<Vec<Organization>, AppError> {
    let answer = parse_reply(status, body.to_vec(), "application/json");
    match classify_reply(&answer) {
        Class::Ok => organizations_of(answer.json.unwrap_or_default()),
        class => Err(failure(class, answer, None).error),
    }
}

/// The `organizations` list of a successful reply.
fn organizations_of(mut envelope: Value) -> Result<Vec<Organization>, AppError> {
    let list = envelope
        .get_mut("organizations")
        .map(Value::take)
        .unwrap_or(Value::Array(vec![]));
    serde_json::from_value(list).map_err(|e| {
        AppError::new(
            Exit::Unexpected,
            format!("Books sent organizations in an unexpected shape: {e}"),
        )
    })
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
    fn ids_may_be_numbers_and_other_fields_are_kept() {
        let orgs = parse_organizations(
            200,
            br#"{"code":0,"organizations":[{"organization_id":10234695,"name":"Zillum","plan_name":"Free"}]}"#,
        )
        .unwrap();
        assert_eq!(orgs[0].organization_id, "10234695");
        assert_eq!(orgs[0].rest["plan_name"], "Free");
        assert_eq!(err(200, r#"{"code":0,"organizations":{"x":1}}"#).exit, Exit::Unexpected);
    }

    #[test]
    fn every_documented_rate_limit_is_explained_with_exit_7() {
        for (code, says, hint) in [
            (44, "requests per minute", "100 calls a minute"),
            (45, "daily request limit", "daily budget"),
            (1070, "too many concurrent requests", "fewer requests in parallel"),
            (9999, "rate limiting", "wait a minute"),
        ] {
            let e = err(429, &format!(r#"{{"code":{code},"message":"x"}}"#));
            assert_eq!(e.exit, Exit::Unavailable, "{code}");
            assert!(e.message.contains(says), "{code}: {}", e.message);
            assert!(e.hint.as_deref().unwrap_or("").contains(hint), "{code}: {:?}", e.hint);
        }
    }

    #[test]
    fn the_code_decides_not_the_message() {
        let e = err(401, r#"{"code":57,"message":"success"}"#);
        assert_eq!(e.exit, Exit::NeedsPairing);
        let e = err(401, r#"{"code":14,"message":"You are not authorized"}"#);
        assert_eq!(e.exit, Exit::Unexpected);
        assert!(e.message.contains("code 14"), "{}", e.message);
        let e = err(400, r#"{"code":6041,"message":"\u001b[2Jhi"}"#);
        assert_eq!(e.exit, Exit::Usage);
        assert!(e.message.contains("\\x1b[2J"), "server text escaped: {}", e.message);
        assert_eq!(err(502, "<html>bad gateway</html>").exit, Exit::Unavailable);
        assert_eq!(err(200, "<html>portal</html>").exit, Exit::Unavailable);
        assert_eq!(err(200, r#"{"code":0,"organizations":["#).exit, Exit::Unavailable);
    }
}
