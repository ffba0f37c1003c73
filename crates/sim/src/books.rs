//! Zoho Books API v3 in the simulator: organizations, contacts, items and invoices of a small
//! shop, with Books' envelope, paging, `organization_id` checks and budgets.
//!
//! * **Envelope.** Every reply is `{"code":0,"message":"success",...}` on success; errors carry
//!   a non-zero `code` and a `message`, and the HTTP status says the class: 401 code 14 (no or
//!   garbled `Authorization`), 401 code 57 (unknown or expired token, token of another DC, or a
//!   scope that does not grant the operation), 400 code 6041 (`organization_id` missing or not
//!   the caller's), 429 code 44 (per-minute budget), 429 code 45 (daily budget), 404 code 5
//!   (unknown URL), 404 code 1002 (unknown record), 400 code 4 (a write with a bad value).
//! * **Paging.** Lists take `page` (from 1) and `per_page` (1..=200, default 200) and answer with
//!   `page_context` (`page`, `per_page`, `has_more_page`, ...), newest record first.
//! * **Scopes.** `ZohoBooks.<module>.<OPERATION>` with module `invoices`, `contacts` or `settings`
//!   (organizations and items) and operation `READ`/`CREATE`/`UPDATE`/`DELETE` after the method;
//!   `ALL`, `*` and `ZohoBooks.fullaccess.all` grant everything.
//! * **Budgets, per organization.** [`SimConfig::books_rate_limit`] calls in a sliding
//!   [`SimConfig::books_rate_window`] (Zoho: 100 a minute), and [`SimConfig::books_daily_limit`]
//!   calls per [`SimConfig::books_daily_window`] (Zoho: 1,000 a day on the Free plan), the
//!   windows counted from the simulator's start. Every call that passed authentication counts,
//!   refused ones (6041, 404, 400) included, as in Books; a 429 does not count. Calls served at
//!   once are capped ([`SimConfig::books_max_concurrent`], each taking
//!   [`SimConfig::books_latency`]): one more is 429 code 1070, without `Retry-After`.
//! * **Choices where Books' documentation is silent.** Both 429s carry `Retry-After` (seconds
//!   until the budget has room again). Writes take Books' `JSONString` form field or a JSON
//!   body (`Content-Type: application/json`). Lists leave out `line_items` (as Books' do); the
//!   single-record reply has them.
//!
//! [`SimConfig::books_rate_limit`]: crate::SimConfig::books_rate_limit
//! [`SimConfig::books_rate_window`]: crate::SimConfig::books_rate_window
//! [`SimConfig::books_daily_limit`]: crate::SimConfig::books_daily_limit
//! [`SimConfig::books_daily_window`]: crate::SimConfig::books_daily_window
//! [`SimConfig::books_max_concurrent`]: crate::SimConfig::books_max_concurrent
//! [`SimConfig::books_latency`]: crate::SimConfig::books_latency

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use crate::config::OrgConfig;
use crate::zoho::{Reply, Zoho};

/// Lists answer at most this many records per page (Books: 200).
const MAX_PER_PAGE: usize = 200;

/// One Books request, decoded by the HTTP layer.
pub(crate) struct BooksRequest<'a> {
    /// `GET`, `POST`, `PUT`, `DELETE`.
    pub method: &'a str,
    /// The path after `/books/v3/`.
    pub rest: &'a str,
    /// Query string and form parameters, in that order.
    pub params: &'a [(String, String)],
    /// The `Authorization` header.
    pub authorization: Option<&'a str>,
    /// The `Content-Type` header.
    pub content_type: &'a str,
    /// The raw body.
    pub body: &'a [u8],
    /// Today as days since 1970-01-01 (dates of new records).
    pub today: i64,
}

/// A Books answer: the reply and, for a 429, `Retry-After` in seconds.
pub(crate) struct BooksReply {
    pub reply: Reply,
    pub retry_after: Option<u64>,
}

impl From<Reply> for BooksReply {
    fn from(reply: Reply) -> Self {
        BooksReply {
            reply,
            retry_after: None,
        }
    }
}

/// Books' state: each organization's records and budgets.
#[derive(Default)]
pub(crate) struct Books {
    orgs: HashMap<String, OrgData>,
    /// organization id → recent calls (sliding per-minute window).
    minute: HashMap<String, VecDeque<Instant>>,
    /// organization id → (index of the daily window, calls in it).
    daily: HashMap<String, (u64, u32)>,
    /// Calls being served.
    in_flight: u32,
}

struct OrgData {
    contacts: Vec<Value>,
    items: Vec<Value>,
    invoices: Vec<Value>,
    next_id: u64,
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

fn error(status: u16, code: i64, message: &str) -> Reply {
    Reply {
        status,
        body: json!({ "code": code, "message": message }),
    }
}

/// Whether `scope` grants `operation` (`READ`, `CREATE`, ...) on Books module `module`.
pub(crate) fn scope_grants(scope: &str, module: &str, operation: &str) -> bool {
    scope.split(',').any(|s| {
        let s = s.trim().to_ascii_lowercase();
        s == "zohobooks.fullaccess.all"
            || s.strip_prefix("zohobooks.")
                .and_then(|s| s.strip_prefix(module))
                .and_then(|s| s.strip_prefix('.'))
                .is_some_and(|op| op == "all" || op == "*" || op.eq_ignore_ascii_case(operation))
    })
}

impl Zoho {
    /// Admits one Books call, or answers 429 code 1070 when
    /// [`SimConfig::books_max_concurrent`](crate::SimConfig::books_max_concurrent) are being
    /// served. An admitted call is released with [`Zoho::books_release`].
    pub(crate) fn books_admit(&mut self) -> Option<BooksReply> {
        if self.books.in_flight >= self.cfg.books_max_concurrent {
            self.stats.books_refused += 1;
            return Some(
                error(
                    429,
                    1070,
                    "The number of concurrent API requests has exceeded the limit. Please try again after some time.",
                )
                .into(),
            );
        }
        self.books.in_flight += 1;
        None
    }

    /// Ends an admitted call.
    pub(crate) fn books_release(&mut self) {
        self.books.in_flight = self.books.in_flight.saturating_sub(1);
    }

    /// How long each Books call takes.
    pub(crate) fn books_latency(&self) -> Duration {
        self.cfg.books_latency
    }

    /// A request to `{api_domain}/books/v3/...` at DC `location`.
    pub(crate) fn books(&mut self, location: &str, req: &BooksRequest<'_>, now: Instant) -> BooksReply {
        let r = self.books_inner(location, req, now);
        if (200..300).contains(&r.reply.status) {
            self.stats.books_ok += 1;
        } else {
            self.stats.books_refused += 1;
        }
        r
    }

    fn books_inner(&mut self, location: &str, req: &BooksRequest<'_>, now: Instant) -> BooksReply {
        let segments: Vec<&str> = req.rest.split('/').collect();
        let (module, collection, id) = match segments.as_slice() {
            ["organizations"] => ("settings", "organizations", None),
            [c @ ("invoices" | "contacts" | "items")] => (module_of(c), *c, None),
            [c @ ("invoices" | "contacts" | "items"), id] if !id.is_empty() => (module_of(c), *c, Some(*id)),
            _ => return error(404, 5, "Invalid URL Passed").into(),
        };
        let operation = match (req.method, id) {
            ("GET", _) => "READ",
            ("POST", None) if collection != "organizations" => "CREATE",
            ("PUT", Some(_)) => "UPDATE",
            ("DELETE", Some(_)) => "DELETE",
            _ => {
                return error(
                    405,
                    37,
                    &format!(
                        "The HTTP method {} is not allowed for the requested resource",
                        req.method
                    ),
                )
                .into();
            }
        };
        let (user, scope) = match self.books_caller(location, req.authorization, now) {
            Ok(c) => c,
            Err(r) => return r.into(),
        };
        if !scope_grants(&scope, module, operation) {
            return error(401, 57, "You are not authorized to perform this operation").into();
        }
        if let Some(limited) = self.spend_budget(&user.org.id, now) {
            return limited;
        }
        if collection == "organizations" {
            return organizations(&user.org, &user.name).into();
        }
        match param(req.params, "organization_id") {
            Some(o) if o == user.org.id => {}
            Some(_) => return error(400, 6041, "This user is not associated with the organization").into(),
            None => return error(400, 6041, "organization_id is required for this request").into(),
        }
        let org = self
            .books
            .orgs
            .entry(user.org.id.clone())
            .or_insert_with(|| OrgData::seed(&user.org));
        match (req.method, id) {
            ("GET", None) => org.list(collection, req.params),
            ("GET", Some(id)) => org.get(collection, id),
            ("POST", None) => match body_json(req) {
                Ok(fields) => org.create(collection, fields, req.today),
                Err(r) => r,
            },
            ("PUT", Some(id)) => match body_json(req) {
                Ok(fields) => org.update(collection, id, fields),
                Err(r) => r,
            },
            (_, Some(id)) => org.delete(collection, id),
            _ => error(404, 5, "Invalid URL Passed"),
        }
        .into()
    }

    /// Counts one call against the organization's budgets, or answers 429 (not counted).
    fn spend_budget(&mut self, org: &str, now: Instant) -> Option<BooksReply> {
        let window = self.cfg.books_rate_window;
        let calls = self.books.minute.entry(org.to_owned()).or_default();
        while calls
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= window)
        {
            calls.pop_front();
        }
        if calls.len() >= self.cfg.books_rate_limit as usize {
            let room_at = calls.front().map_or(now, |t| *t + window);
            return Some(BooksReply {
                reply: error(
                    429,
                    44,
                    "You have made too many requests. Please try again after some time.",
                ),
                retry_after: Some(ceil_secs(room_at.saturating_duration_since(now))),
            });
        }
        let day_window = self.cfg.books_daily_window.max(Duration::from_millis(1));
        let since_start = now.saturating_duration_since(self.start);
        let day = (since_start.as_nanos() / day_window.as_nanos()) as u64;
        let (d, used) = self.books.daily.entry(org.to_owned()).or_insert((day, 0));
        if *d != day {
            *d = day;
            *used = 0;
        }
        if *used >= self.cfg.books_daily_limit {
            let next = day_window * u32::try_from(day + 1).unwrap_or(u32::MAX);
            return Some(BooksReply {
                reply: error(
                    429,
                    45,
                    "You have reached the maximum number of API requests allowed per day for your plan.",
                ),
                retry_after: Some(ceil_secs(next.saturating_sub(since_start))),
            });
        }
        *used += 1;
        calls.push_back(now);
        None
    }
}

fn ceil_secs(d: Duration) -> u64 {
    (d.as_millis().div_ceil(1000) as u64).max(1)
}

fn module_of(collection: &str) -> &'static str {
    match collection {
        "invoices" => "invoices",
        "contacts" => "contacts",
        _ => "settings",
    }
}

fn singular(collection: &str) -> &'static str {
    match collection {
        "invoices" => "invoice",
        "contacts" => "contact",
        _ => "item",
    }
}

fn id_field(collection: &str) -> &'static str {
    match collection {
        "invoices" => "invoice_id",
        "contacts" => "contact_id",
        _ => "item_id",
    }
}

/// The fields of a write: Books' `JSONString` form field, or a JSON body.
fn body_json(req: &BooksRequest<'_>) -> Result<Map<String, Value>, Reply> {
    let bad = || error(400, 4, "Invalid value passed for JSONString");
    let value: Value = if req.content_type.starts_with("application/json") {
        serde_json::from_slice(req.body).map_err(|_| bad())?
    } else {
        let s = param(req.params, "JSONString").ok_or_else(bad)?;
        serde_json::from_str(s).map_err(|_| bad())?
    };
    match value {
        Value::Object(m) => Ok(m),
        _ => Err(bad()),
    }
}

fn organizations(org: &OrgConfig, user: &str) -> Reply {
    Reply {
        status: 200,
        body: json!({
            "code": 0,
            "message": "success",
            "organizations": [{
                "organization_id": org.id,
                "name": org.name,
                "contact_name": user,
                "email": user,
                "is_default_org": true,
                "plan_type": 0,
                "tax_group_enabled": true,
                "plan_name": "SIMULATED",
                "plan_period": "",
                "language_code": "en",
                "fiscal_year_start_month": 0,
                "account_created_date": "2016-02-18",
                "account_created_date_formatted": "18 Feb 2016",
                "time_zone": "PST",
                "is_org_active": true,
                "currency_id": "460000000000097",
                "currency_code": org.currency_code,
                "currency_symbol": "$",
                "currency_format": "###,##0.00",
                "price_precision": 2
            }]
        }),
    }
}

/// `YYYY-MM-DD` of a day count since 1970-01-01 (proleptic Gregorian).
fn date(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Money with two decimals, as Books sends amounts (a JSON number).
fn money(cents: i64) -> Value {
    json!((cents as f64) / 100.0)
}

fn cents(v: &Value) -> Option<i64> {
    let f = match v {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    (f.is_finite() && (0.0..1e12).contains(&f)).then(|| (f * 100.0).round() as i64)
}

const CUSTOMERS: [&str; 12] = [
    "Blue Door Café",
    "Harbour Books",
    "Marigold Florist",
    "Northside Gym",
    "Pine & Co. Bakery",
    "Riverside Dental",
    "Sunrise Yoga Studio",
    "The Corner Deli",
    "Tidewater Bikes",
    "Urban Sprout Market",
    "Willow Vet Clinic",
    "Zest Juice Bar",
];

/// (name, unit price in cents, unit, goods or service).
const ITEMS: [(&str, i64, &str, &str); 15] = [
    ("Espresso beans 1 kg", 2400, "kg", "goods"),
    ("House blend 250 g", 850, "bag", "goods"),
    ("Ceramic mug", 1200, "pcs", "goods"),
    ("Travel tumbler", 2200, "pcs", "goods"),
    ("Pour-over kit", 3500, "pcs", "goods"),
    ("Paper filters (100)", 450, "box", "goods"),
    ("Oat milk 1 L", 320, "carton", "goods"),
    ("Chai syrup", 900, "bottle", "goods"),
    ("Gift card 25", 2500, "pcs", "goods"),
    ("Barista workshop", 6000, "seat", "service"),
    ("Cold brew bottle", 500, "bottle", "goods"),
    ("Tea sampler", 1800, "box", "goods"),
    ("Croissants (dozen)", 3000, "dozen", "goods"),
    ("Grinder service", 4500, "hour", "service"),
    ("Delivery", 750, "trip", "service"),
];

/// Seed invoices: 45, one every two days from 2026-08-01.
const SEED_INVOICES: usize = 45;

impl OrgData {
    /// A small coffee shop's books: 12 customers, 15 items, 45 invoices.
    fn seed(org: &OrgConfig) -> OrgData {
        let first_day = 20_666; // 2026-08-01
        let mut d = OrgData {
            contacts: Vec::new(),
            items: Vec::new(),
            invoices: Vec::new(),
            next_id: 460_000_000_030_000,
        };
        for (i, name) in CUSTOMERS.iter().enumerate() {
            let slug: String = name
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .collect::<String>()
                .to_ascii_lowercase();
            d.contacts.push(json!({
                "contact_id": (460_000_000_026_049_u64 + i as u64).to_string(),
                "contact_name": name,
                "company_name": name,
                "contact_type": "customer",
                "status": "active",
                "email": format!("accounts@{slug}.example"),
                "currency_code": org.currency_code,
                "outstanding_receivable_amount": 0.0,
                "created_time": format!("{}T09:00:00-0700", date(first_day - 60 + i as i64)),
            }));
        }
        for (i, (name, rate, unit, kind)) in ITEMS.iter().enumerate() {
            d.items.push(json!({
                "item_id": (460_000_000_027_001_u64 + i as u64).to_string(),
                "name": name,
                "sku": format!("SKU-{:03}", i + 1),
                "rate": money(*rate),
                "unit": unit,
                "product_type": kind,
                "status": "active",
                "stock_on_hand": if *kind == "goods" { json!(((i * 37) % 90 + 5) as i64) } else { Value::Null },
                "created_time": format!("{}T08:00:00-0700", date(first_day - 90 + i as i64)),
            }));
        }
        for i in 0..SEED_INVOICES {
            let customer = d.contacts[(i * 5) % CUSTOMERS.len()].clone();
            let lines: Vec<Value> = (0..1 + i % 3)
                .map(|k| {
                    let item = &d.items[(i * 7 + k * 4) % ITEMS.len()];
                    json!({ "item_id": item["item_id"], "quantity": 1 + ((i + k) % 4) })
                })
                .collect();
            let status = match i % 9 {
                0..=3 => "paid",
                4 | 5 => "sent",
                6 | 7 => "overdue",
                _ => "draft",
            };
            let day = first_day + 2 * i as i64;
            let mut fields = Map::new();
            fields.insert("customer_id".into(), customer["contact_id"].clone());
            fields.insert("line_items".into(), Value::Array(lines));
            fields.insert("date".into(), json!(date(day)));
            let Ok(mut invoice) = d.build_invoice(&fields, day) else {
                continue;
            };
            let total = invoice["total"].clone();
            invoice["status"] = json!(status);
            invoice["balance"] = if status == "paid" { json!(0.0) } else { total };
            d.invoices.insert(0, invoice);
        }
        d.recompute_receivables();
        d
    }

    fn records(&mut self, collection: &str) -> &mut Vec<Value> {
        match collection {
            "invoices" => &mut self.invoices,
            "contacts" => &mut self.contacts,
            _ => &mut self.items,
        }
    }

    fn new_id(&mut self) -> String {
        self.next_id += 1;
        self.next_id.to_string()
    }

    fn list(&mut self, collection: &str, params: &[(String, String)]) -> Reply {
        let page = match param(params, "page").map(str::parse::<usize>) {
            None => 1,
            Some(Ok(p)) if p >= 1 => p,
            Some(_) => return error(400, 2, "Invalid value passed for page"),
        };
        let per_page = match param(params, "per_page").map(str::parse::<usize>) {
            None => MAX_PER_PAGE,
            Some(Ok(n)) if n >= 1 => n.min(MAX_PER_PAGE),
            Some(_) => return error(400, 2, "Invalid value passed for per_page"),
        };
        let status = param(params, "status");
        let customer = param(params, "customer_id");
        let matching: Vec<Value> = self
            .records(collection)
            .iter()
            .filter(|r| match status {
                None => true,
                Some("unpaid") => matches!(r["status"].as_str(), Some("sent" | "overdue" | "partially_paid")),
                Some(s) => r["status"].as_str() == Some(s),
            })
            .filter(|r| customer.is_none_or(|c| r["customer_id"].as_str() == Some(c)))
            .map(|r| {
                let mut r = r.clone();
                if let Some(m) = r.as_object_mut() {
                    m.remove("line_items");
                }
                r
            })
            .collect();
        let start = (page - 1).saturating_mul(per_page);
        let slice: Vec<Value> = matching.iter().skip(start).take(per_page).cloned().collect();
        let has_more = matching.len() > start.saturating_add(per_page);
        let mut body = json!({
            "code": 0,
            "message": "success",
            "page_context": {
                "page": page,
                "per_page": per_page,
                "has_more_page": has_more,
                "report_name": collection[..1].to_ascii_uppercase() + &collection[1..],
                "applied_filter": status.map_or("Status.All".to_owned(), |s| format!("Status.{s}")),
                "sort_column": "created_time",
                "sort_order": "D"
            }
        });
        body[collection] = Value::Array(slice);
        Reply { status: 200, body }
    }

    fn find(&mut self, collection: &str, id: &str) -> Option<usize> {
        let field = id_field(collection);
        self.records(collection)
            .iter()
            .position(|r| r[field].as_str() == Some(id))
    }

    fn not_found(collection: &str) -> Reply {
        let what = match collection {
            "invoices" => "Invoice",
            "contacts" => "Contact",
            _ => "Item",
        };
        error(404, 1002, &format!("{what} does not exist."))
    }

    fn get(&mut self, collection: &str, id: &str) -> Reply {
        match self.find(collection, id) {
            Some(i) => {
                let record = self.records(collection)[i].clone();
                let mut body = json!({ "code": 0, "message": "success" });
                body[singular(collection)] = record;
                Reply { status: 200, body }
            }
            None => Self::not_found(collection),
        }
    }

    fn created(collection: &str, record: Value, status: u16, verb: &str) -> Reply {
        let noun = singular(collection);
        let mut body = json!({ "code": 0, "message": format!("The {noun} has been {verb}.") });
        body[noun] = record;
        Reply { status, body }
    }

    fn create(&mut self, collection: &str, fields: Map<String, Value>, today: i64) -> Reply {
        let record = match collection {
            "invoices" => match self.build_invoice(&fields, today) {
                Ok(mut inv) => {
                    inv["status"] = json!("draft");
                    inv
                }
                Err(r) => return r,
            },
            "contacts" => {
                let Some(name) = fields
                    .get("contact_name")
                    .and_then(Value::as_str)
                    .filter(|s| !s.trim().is_empty())
                else {
                    return error(400, 4, "Invalid value passed for contact_name");
                };
                if self.contacts.iter().any(|c| c["contact_name"].as_str() == Some(name)) {
                    return error(
                        400,
                        3062,
                        "The contact name already exists. Please specify a different name.",
                    );
                }
                let mut c = fields.clone();
                c.insert("contact_id".into(), json!(self.new_id()));
                c.entry("contact_type").or_insert(json!("customer"));
                c.insert("status".into(), json!("active"));
                c.insert("outstanding_receivable_amount".into(), json!(0.0));
                c.insert("created_time".into(), json!(format!("{}T12:00:00-0700", date(today))));
                Value::Object(c)
            }
            _ => {
                let name = fields
                    .get("name")
                    .and_then(Value::as_str)
                    .filter(|s| !s.trim().is_empty());
                let rate = fields.get("rate").and_then(cents);
                let (Some(_), Some(rate)) = (name, rate) else {
                    return error(400, 4, "Invalid value passed for name or rate");
                };
                let mut item = fields.clone();
                item.insert("item_id".into(), json!(self.new_id()));
                item.insert("rate".into(), money(rate));
                item.insert("status".into(), json!("active"));
                item.insert("created_time".into(), json!(format!("{}T12:00:00-0700", date(today))));
                Value::Object(item)
            }
        };
        self.records(collection).insert(0, record.clone());
        self.recompute_receivables();
        Self::created(collection, record, 201, "created")
    }

    fn update(&mut self, collection: &str, id: &str, fields: Map<String, Value>) -> Reply {
        let Some(i) = self.find(collection, id) else {
            return Self::not_found(collection);
        };
        let key = id_field(collection);
        if let Some(m) = self.records(collection)[i].as_object_mut() {
            for (k, v) in fields {
                if k != key {
                    m.insert(k, v);
                }
            }
        }
        let record = self.records(collection)[i].clone();
        self.recompute_receivables();
        Self::created(collection, record, 200, "updated")
    }

    fn delete(&mut self, collection: &str, id: &str) -> Reply {
        let Some(i) = self.find(collection, id) else {
            return Self::not_found(collection);
        };
        self.records(collection).remove(i);
        self.recompute_receivables();
        error(200, 0, &format!("The {} has been deleted.", singular(collection)))
    }

    /// An invoice from `customer_id` and `line_items` (`item_id` or `name` + `rate`, `quantity`).
    fn build_invoice(&mut self, fields: &Map<String, Value>, today: i64) -> Result<Value, Reply> {
        let customer_id = fields.get("customer_id").and_then(Value::as_str).unwrap_or_default();
        let Some(customer) = self
            .contacts
            .iter()
            .find(|c| c["contact_id"].as_str() == Some(customer_id))
            .cloned()
        else {
            return Err(error(400, 4, "Invalid value passed for customer_id"));
        };
        let Some(lines) = fields
            .get("line_items")
            .and_then(Value::as_array)
            .filter(|l| !l.is_empty())
        else {
            return Err(error(400, 4, "Invalid value passed for line_items"));
        };
        let mut out = Vec::new();
        let mut total = 0_i64;
        for line in lines {
            let quantity = line.get("quantity").map_or(Some(100), cents);
            let item = line
                .get("item_id")
                .and_then(Value::as_str)
                .and_then(|id| self.items.iter().find(|i| i["item_id"].as_str() == Some(id)))
                .cloned();
            let item = item.as_ref();
            let name = item
                .and_then(|i| i["name"].as_str())
                .or_else(|| line.get("name").and_then(Value::as_str));
            let rate = line
                .get("rate")
                .and_then(cents)
                .or_else(|| item.and_then(|i| cents(&i["rate"])));
            let (Some(name), Some(rate), Some(quantity)) = (name, rate, quantity) else {
                return Err(error(400, 4, "Invalid value passed for line_items"));
            };
            let amount = rate * quantity / 100;
            total += amount;
            out.push(json!({
                "line_item_id": self.new_id(),
                "item_id": item.map_or(Value::Null, |i| i["item_id"].clone()),
                "name": name,
                "rate": money(rate),
                "quantity": (quantity as f64) / 100.0,
                "item_total": money(amount),
            }));
        }
        let day = fields
            .get("date")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| date(today));
        let due = fields
            .get("due_date")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| date(today + 30));
        let number = self.invoices.len() + 1;
        Ok(json!({
            "invoice_id": self.new_id(),
            "invoice_number": format!("INV-{number:06}"),
            "customer_id": customer["contact_id"],
            "customer_name": customer["contact_name"],
            "date": day,
            "due_date": due,
            "currency_code": customer["currency_code"],
            "line_items": out,
            "total": money(total),
            "balance": money(total),
            "reference_number": fields.get("reference_number").cloned().unwrap_or(Value::Null),
            "created_time": format!("{}T10:00:00-0700", day),
        }))
    }

    fn recompute_receivables(&mut self) {
        let mut owed: HashMap<String, i64> = HashMap::new();
        for inv in &self.invoices {
            if let (Some(c), Some(b)) = (inv["customer_id"].as_str(), cents(&inv["balance"])) {
                *owed.entry(c.to_owned()).or_default() += b;
            }
        }
        for c in &mut self.contacts {
            let id = c["contact_id"].as_str().unwrap_or_default().to_owned();
            c["outstanding_receivable_amount"] = money(owed.get(&id).copied().unwrap_or(0));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(20_666), "2026-08-01");
        assert_eq!(date(20_666 + 31), "2026-09-01");
    }

    #[test]
    fn scopes_grant_by_module_and_operation() {
        assert!(scope_grants("ZohoBooks.settings.READ", "settings", "READ"));
        assert!(!scope_grants("ZohoBooks.settings.READ", "invoices", "READ"));
        assert!(!scope_grants("ZohoBooks.invoices.READ", "invoices", "CREATE"));
        assert!(scope_grants("ZohoBooks.invoices.ALL", "invoices", "CREATE"));
        assert!(scope_grants("a.b.c,ZohoBooks.fullaccess.all", "contacts", "DELETE"));
    }

    #[test]
    fn the_seed_looks_like_a_shop() {
        let d = OrgData::seed(&OrgConfig::default());
        assert_eq!((d.contacts.len(), d.items.len(), d.invoices.len()), (12, 15, 45));
        let inv = &d.invoices[0];
        assert!(inv["total"].as_f64().unwrap() > 0.0, "{inv}");
        assert!(
            d.contacts
                .iter()
                .any(|c| c["outstanding_receivable_amount"].as_f64().unwrap() > 0.0)
        );
    }
}
