//! `books organizations`: a shorthand over [`crate::api`] (`GET /books/v3/organizations`, with
//! the same refresh on 401 code 57 and the same handling of Books' limits), shown as a table.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::{Session, organizations_answer};
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
    parse_organizations(answer.json.unwrap_or_default())
}

/// The `organizations` list of a successful reply.
pub fn parse_organizations(mut envelope: Value) -> Result<Vec<Organization>, AppError> {
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

    #[test]
    fn ids_may_be_numbers_and_other_fields_are_kept() {
        let orgs = parse_organizations(serde_json::json!({
            "code": 0,
            "organizations": [{"organization_id": 10234695, "name": "Zillum", "plan_name": "Free"}]
        }))
        .unwrap();
        assert_eq!(orgs[0].organization_id, "10234695");
        assert_eq!(orgs[0].rest["plan_name"], "Free");
        let e = parse_organizations(serde_json::json!({"organizations": {"x": 1}})).unwrap_err();
        assert_eq!(e.exit, Exit::Unexpected);
    }
}
