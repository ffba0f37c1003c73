//! `zoho-device api`: paths, organization_id, paging, Books' budgets, the refresh on 401, writes
//! that are never repeated, and the output.

use std::os::unix::fs::PermissionsExt;

use serde_json::Value;

use crate::util::*;

/// The simulated organization.
const ORG: &str = "10234695";

/// A world paired with a scope that reaches every Books module.
fn paired(config: SimConfig) -> World {
    paired_for_books(config, &[])
}

fn json(out: &Output) -> Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", out.stdout))
}

fn memo_path(w: &World) -> std::path::PathBuf {
    w.path("state/zoho-device/token.json.org")
}

#[test]
fn paging_follows_has_more_page_across_three_pages_and_merges_the_list() {
    let w = paired(sim_config());
    let out = w.run(&["api", "/books/v3/invoices?per_page=20", "--paginate"]);
    out.code(0);
    assert_eq!(out.stdout.lines().count(), 1, "compact when stdout is not a terminal");
    let v = json(&out);
    let invoices = v["invoices"].as_array().unwrap();
    assert_eq!(invoices.len(), 45, "20 + 20 + 5");
    let mut ids: Vec<&str> = invoices.iter().map(|i| i["invoice_id"].as_str().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 45, "no page fetched twice");
    assert_eq!(v["page_context"]["has_more_page"], false);
    assert_eq!(v["code"], 0);
    let calls = w.sim.requests_to("/books/v3/invoices");
    let pages: Vec<&str> = calls.iter().map(|r| r.param("page").unwrap()).collect();
    assert_eq!(pages, ["1", "2", "3"]);
    for r in &calls {
        assert_eq!(r.param("organization_id"), Some(ORG));
        assert_eq!(r.param("per_page"), Some("20"));
    }
    // The organization was looked up once, and remembered beside the token file (0600).
    assert_eq!(w.sim.requests_to("/books/v3/organizations").len(), 1);
    let memo = std::fs::metadata(memo_path(&w)).expect("the organization is remembered");
    assert_eq!(memo.permissions().mode() & 0o777, 0o600);

    // --max-pages stops early and says so; page_context tells that more remain.
    let out = w.run(&[
        "api",
        "/books/v3/invoices",
        "-f",
        "per_page=20",
        "--paginate",
        "--max-pages",
        "2",
    ]);
    out.code(0).stderr_has(&["Stopped after 2 page(s)"]);
    let v = json(&out);
    assert_eq!(v["invoices"].as_array().unwrap().len(), 40);
    assert_eq!(v["page_context"]["has_more_page"], true);
    assert_eq!(
        w.sim.requests_to("/books/v3/organizations").len(),
        1,
        "the remembered organization is used"
    );
    w.assert_no_secret_leaked();
}

#[test]
fn fields_are_the_query_of_a_get_and_nothing_is_written_without_method() {
    let w = paired(sim_config());
    let out = w.run(&["api", "/books/v3/invoices", "-f", "status=overdue"]);
    out.code(0);
    let v = json(&out);
    let invoices = v["invoices"].as_array().unwrap();
    assert!(!invoices.is_empty());
    assert!(invoices.iter().all(|i| i["status"] == "overdue"), "{v}");
    // -f without --method is a GET: no contact is created.
    w.run(&["api", "/books/v3/contacts", "-f", "contact_name=Nobody Ltd"])
        .code(0);
    let posts = w
        .sim
        .requests()
        .iter()
        .filter(|r| r.method != "GET" && r.path.starts_with("/books"))
        .count();
    assert_eq!(posts, 0);
}

#[test]
fn writes_send_books_jsonstring_and_create_records() {
    let w = paired(sim_config());
    let out = w.run(&[
        "api",
        "--method",
        "POST",
        "/books/v3/contacts",
        "-f",
        "contact_name=Lighthouse Records",
        "-f",
        "email=hello@lighthouse.example",
    ]);
    out.code(0);
    let v = json(&out);
    let id = v["contact"]["contact_id"].as_str().unwrap().to_string();
    let post = w.sim.requests_to("/books/v3/contacts").pop().unwrap();
    assert_eq!(post.method, "POST");
    assert_eq!(post.param("organization_id"), Some(ORG));
    assert!(
        post.header("content-type")
            .unwrap()
            .starts_with("application/x-www-form-urlencoded")
    );
    let sent: Value = serde_json::from_str(post.param("JSONString").unwrap()).unwrap();
    assert_eq!(sent["contact_name"], "Lighthouse Records");
    assert!(
        !post.query.unwrap_or_default().contains("Lighthouse"),
        "fields of a write go in the body"
    );

    // An invoice for it with a typed field; then read back.
    let out = w.run(&[
        "api",
        "-X",
        "post",
        "/books/v3/invoices",
        "-f",
        &format!("customer_id={id}"),
        "-F",
        r#"line_items=[{"item_id":"460000000027001","quantity":2}]"#,
    ]);
    out.code(0);
    let inv = json(&out)["invoice"].clone();
    assert_eq!(inv["total"], 48.0);
    let out = w.run(&[
        "api",
        &format!("/books/v3/invoices/{}", inv["invoice_id"].as_str().unwrap()),
    ]);
    out.code(0);
    assert_eq!(json(&out)["invoice"]["customer_name"], "Lighthouse Records");

    // --input sends a JSON body as is (here from a file, to PUT).
    let file = write_file(&w.path("contact.json"), r#"{"email":"new@lighthouse.example"}"#);
    let out = w.run(&[
        "api",
        "-X",
        "PUT",
        &format!("/books/v3/contacts/{id}"),
        "--input",
        file.to_str().unwrap(),
    ]);
    out.code(0);
    assert_eq!(json(&out)["contact"]["email"], "new@lighthouse.example");
    let put = w.sim.requests_to(&format!("/books/v3/contacts/{id}")).pop().unwrap();
    assert_eq!(put.header("content-type"), Some("application/json"));

    // A write Books refuses: exit 2 with Books' code and message; its JSON still on stdout.
    let out = w.run(&["api", "-X", "POST", "/books/v3/invoices", "-f", "customer_id=1"]);
    out.code(2).stderr_has(&["code 4", "customer_id"]);
    assert_eq!(json(&out)["code"], 4);
    w.assert_no_secret_leaked();
}

#[test]
fn a_write_is_not_repeated_after_a_connection_reset_but_a_get_is() {
    let w = paired(sim_config());
    // Remember the organization first, so the only request below is the write.
    w.run(&["api", "/books/v3/items"]).code(0);
    w.sim.inject(Fault::new("/books/v3/contacts", FaultKind::Reset, 1));
    let out = w.run(&[
        "api",
        "-X",
        "POST",
        "/books/v3/contacts",
        "-f",
        "contact_name=Once Only",
    ]);
    out.code(7).stderr_has(&["POST", "not repeated", "hint:"]);
    let posts: Vec<_> = w
        .sim
        .requests_to("/books/v3/contacts")
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert_eq!(posts.len(), 1, "sent exactly once");

    // The same reset on a GET: repeated, and it succeeds.
    w.sim.clear_log();
    w.sim.inject(Fault::new("/books/v3/contacts", FaultKind::Reset, 1));
    w.run(&["api", "/books/v3/contacts"]).code(0);
    assert_eq!(w.sim.requests_to("/books/v3/contacts").len(), 2);
}

#[test]
fn the_per_minute_window_is_waited_for_and_said() {
    let w = paired(sim_config().books_rate_limit(2, secs(2)));
    w.run(&["api", "/books/v3/organizations"]).code(0);
    w.run(&["api", "/books/v3/organizations"]).code(0);
    let out = w.run(&["api", "/books/v3/organizations"]);
    out.code(0).stderr_has(&["429, code 44", "waiting"]);
    assert!(
        out.elapsed >= std::time::Duration::from_millis(900),
        "{:?}",
        out.elapsed
    );
    let statuses: Vec<Option<u16>> = w
        .sim
        .requests_to("/books/v3/organizations")
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [Some(200), Some(200), Some(429), Some(200)]);
    assert_eq!(json(&out)["organizations"][0]["organization_id"], ORG);
}

#[test]
fn a_window_longer_than_a_minute_is_reported_not_waited_for() {
    let w = paired(sim_config().books_rate_limit(1, secs(600)));
    w.run(&["api", "/books/v3/organizations"]).code(0);
    let out = w.run(&["api", "/books/v3/organizations"]);
    out.code(7).stderr_has(&["code 44", "resets in 10 min"]);
    assert!(out.elapsed < secs(10));
}

#[test]
fn the_daily_cap_exits_7_with_when_it_resets() {
    let w = paired(sim_config().books_daily_limit(2, secs(3600)));
    w.run(&["api", "/books/v3/organizations"]).code(0);
    w.run(&["api", "/books/v3/organizations"]).code(0);
    let out = w.run(&["api", "/books/v3/organizations"]);
    out.code(7)
        .stderr_has(&["daily request limit", "429, code 45", "resets in", " GMT", "hint:"]);
    assert_eq!(json(&out)["code"], 45, "Books' reply is on stdout");
    assert_eq!(w.sim.requests_to("/books/v3/organizations").len(), 3, "not retried");
}

#[test]
fn a_401_code_57_refreshes_once_and_retries_once() {
    // The simulator's token dies after 2 s; the file claims an hour, so only Books' 401 tells.
    let w = paired(sim_config().token_lifetime_s(2));
    let old = outlive_the_access_token(&w);
    let out = w.run(&["api", "/books/v3/organizations"]);
    out.code(0);
    assert_refreshed_once_and_retried(&w, &old, "/books/v3/organizations");
    w.assert_no_secret_leaked();
}

#[test]
fn a_token_without_the_scope_exits_6_naming_the_scope() {
    let w = World::new(auto_config());
    w.login(); // ZohoBooks.settings.READ only
    let out = w.run(&["api", "/books/v3/invoices", "--org", ORG]);
    out.code(6).stderr_has(&["401", "code 57", "ZohoBooks.invoices.READ"]);
    assert_eq!(w.sim.stats().refreshes, 1, "refreshed once");
    assert_eq!(w.sim.requests_to("/books/v3/invoices").len(), 2, "retried once");
}

#[test]
fn hosts_and_paths_outside_api_domain_are_refused_before_anything_is_sent() {
    let w = paired(sim_config());
    let eu = w.sim.accounts_url("eu");
    let before = w.sim.requests().len();
    for (path, code, says) in [
        (format!("{eu}/books/v3/organizations"), 8, "full URL"),
        ("https://evil.example/books/v3/invoices".to_string(), 8, "full URL"),
        ("//evil.example/books/v3/invoices".to_string(), 8, "full URL"),
        ("/books/v3/../../oauth/v2/token".to_string(), 8, "'..'"),
        (
            "/books/v3/%2e%2e/%2e%2e/oauth/v2/token".to_string(),
            8,
            "percent-encoded",
        ),
        ("/books/v3\\..\\oauth".to_string(), 8, "backslash"),
        ("/oauth/v2/token".to_string(), 2, "outside the APIs"),
        ("/crm/v2/Leads".to_string(), 2, "outside the APIs"),
    ] {
        w.run(&["api", &path]).code(code).stderr_has(&[says]);
    }
    assert_eq!(w.sim.requests().len(), before, "nothing was sent anywhere");
    // An api_domain planted in the token file: exit 8, nothing sent.
    w.edit_token(|t| {
        t.insert("api_domain".into(), "https://evil.example".into());
    });
    w.run(&["api", "/books/v3/invoices"])
        .code(8)
        .stderr_has(&["evil.example"]);
    assert_eq!(w.sim.requests().len(), before);
}

#[test]
fn a_remembered_organization_books_refuses_is_looked_up_again() {
    let w = paired(sim_config());
    w.run(&["api", "/books/v3/items"]).code(0);
    let memo = memo_path(&w);
    let text = std::fs::read_to_string(&memo).unwrap();
    assert!(text.contains(ORG), "{text}");
    std::fs::write(&memo, text.replace(ORG, "99999999")).unwrap();
    w.sim.clear_log();
    let out = w.run(&["api", "/books/v3/items"]);
    out.code(0).stderr_has(&["6041"]);
    let orgs: Vec<Option<String>> = w
        .sim
        .requests_to("/books/v3/items")
        .iter()
        .map(|r| r.param("organization_id").map(String::from))
        .collect();
    assert_eq!(orgs, [Some("99999999".into()), Some(ORG.into())]);
    assert_eq!(w.sim.requests_to("/books/v3/organizations").len(), 1);
    assert!(
        std::fs::read_to_string(&memo).unwrap().contains(ORG),
        "the memo was renewed"
    );

    // A memo that is a link is not followed (looked up again, then replaced by a file).
    let elsewhere = write_file(&w.path("planted.json"), &text.replace(ORG, "99999999"));
    std::fs::remove_file(&memo).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &memo).unwrap();
    w.sim.clear_log();
    w.run(&["api", "/books/v3/items"]).code(0);
    assert_eq!(
        w.sim.requests_to("/books/v3/items")[0].param("organization_id"),
        Some(ORG)
    );
    assert!(!std::fs::symlink_metadata(&memo).unwrap().file_type().is_symlink());

    // An organization given explicitly is not second-guessed: exit 2 with Books' answer.
    let out = w.run(&["api", "/books/v3/items", "--org", "12345"]);
    out.code(2).stderr_has(&["12345", "6041", "books organizations"]);
    assert_eq!(json(&out)["code"], 6041);
}

#[test]
fn include_prints_status_and_headers_on_stderr() {
    let w = paired(sim_config());
    let out = w.run(&["api", "-i", "/books/v3/organizations"]);
    out.code(0)
        .stderr_has(&["HTTP/1.1 200 OK", "content-type: application/json"]);
    assert!(out.stdout.starts_with('{'), "the body alone on stdout: {}", out.stdout);
    let raw = w.run(&["api", "--raw", "/books/v3/organizations"]);
    raw.code(0);
    assert!(raw.stdout.contains(r#""organization_id":"10234695""#), "{}", raw.stdout);
}

#[test]
fn bad_flags_are_usage_errors_before_any_request() {
    let w = paired(sim_config());
    let before = w.sim.requests().len();
    w.run(&["api", "/books/v3/invoices", "-f", "novalue"])
        .code(2)
        .stderr_has(&["KEY=VALUE"]);
    w.run(&["api", "-X", "POST", "/books/v3/invoices", "--paginate"])
        .code(2)
        .stderr_has(&["--paginate"]);
    w.run(&["api", "/books/v3/invoices", "--input", "-"])
        .code(2)
        .stderr_has(&["POST"]);
    w.run(&["api", "/books/v3/invoices", "--org", "abc"]).code(2);
    w.run(&["api", "-X", "POST", "/books/v3/contacts", "-F", "x={oops"])
        .code(2)
        .stderr_has(&["not JSON"]);
    assert_eq!(w.sim.requests().len(), before);
    let help = w.run(&["api", "--help"]);
    help.code(0)
        .stdout_has(&["--paginate", "--max-pages", "--org", "JSONString", "code 44", "code 45"]);
}

#[test]
fn api_without_a_pairing_exits_6() {
    let w = World::new(auto_config());
    w.run(&["api", "/books/v3/organizations"])
        .code(6)
        .stderr_has(&["not paired"]);
}

#[test]
fn too_many_concurrent_calls_back_off_and_retry() {
    // One call at a time, each taking 1.5 s: of two started together, one is told 1070 (a
    // margin for slow process starts on a loaded machine).
    let w = paired(sim_config().books_concurrency(1, std::time::Duration::from_millis(1500)));
    let a = w.spawn(&["api", "/books/v3/organizations"]);
    let b = w.spawn(&["api", "/books/v3/organizations"]);
    let (a, b) = (a.wait(), b.wait());
    a.code(0);
    b.code(0);
    let told: Vec<&Output> = [&a, &b]
        .into_iter()
        .filter(|o| o.stderr.contains("code 1070"))
        .collect();
    assert_eq!(told.len(), 1, "{}\n---\n{}", a.stderr, b.stderr);
    assert!(told[0].stderr.contains("retrying in 1 s"), "{}", told[0].stderr);
    let statuses: Vec<Option<u16>> = w
        .sim
        .requests_to("/books/v3/organizations")
        .iter()
        .map(|r| r.status)
        .collect();
    assert!(statuses.contains(&Some(429)), "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == Some(200)).count(), 2, "{statuses:?}");
}

#[test]
fn a_401_reuses_the_token_another_process_refreshed_meanwhile() {
    // Books takes 1.5 s per call; while `api` waits for its 401, `refresh` mints a new token.
    let w = paired(
        sim_config()
            .token_lifetime_s(2)
            .books_concurrency(10, std::time::Duration::from_millis(1500)),
    );
    outlive_the_access_token(&w);
    let api = w.spawn(&["api", "/books/v3/organizations"]);
    sleep_ms(300);
    w.run(&["refresh"]).code(0);
    let fresh = w.token_json()["access_token"].as_str().unwrap().to_string();
    api.wait().code(0);
    assert_eq!(w.sim.stats().refreshes, 1, "only `refresh` minted a token");
    let calls = w.sim.requests_to("/books/v3/organizations");
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].status, Some(401));
    assert_eq!(
        calls[1].header("authorization"),
        Some(format!("Zoho-oauthtoken {fresh}").as_str())
    );
}

#[test]
fn input_from_stdin_is_sent_as_is() {
    use std::io::Write;
    let w = paired(sim_config());
    let body = r#"{"contact_name":"Stdin Stationers","email":"hi@stdin.example"}"#;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_zoho-device"))
        .env_clear()
        .envs(&w.env)
        .args(["api", "-X", "POST", "/books/v3/contacts", "--input", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["contact"]["contact_name"], "Stdin Stationers");
    let post = w.sim.requests_to("/books/v3/contacts").pop().unwrap();
    assert_eq!(post.header("content-type"), Some("application/json"));
    assert_eq!(post.param("organization_id"), Some(ORG));
}
