use std::time::Duration;

use crate::util::*;
use zoho_device_sim::Simulator;

#[tokio::test]
async fn the_log_has_method_path_params_query_dc_status_and_timing() {
    let sim = Simulator::spawn(fast().interval_ms(100)).unwrap();
    let us = sim.accounts_url("us");
    let (_, code) = new_code(&us).await;
    poll(&us, &code).await;
    tokio::time::sleep(Duration::from_millis(120)).await;
    poll(&us, &code).await;
    get(&format!("{}/oauth/serverinfo?x=1", sim.accounts_url("eu")), None).await;

    let log = sim.requests();
    assert_eq!(log.len(), 4);
    assert_eq!(
        (log[0].method.as_str(), log[0].path.as_str()),
        ("POST", "/oauth/v3/device/code")
    );
    assert_eq!(log[0].param("grant_type"), Some("device_request"));
    assert_eq!(log[0].query, None);
    assert_eq!(log[0].status, Some(200));
    assert_eq!(log[0].header("content-type"), Some("application/x-www-form-urlencoded"));
    let polls = sim.requests_to("/oauth/v3/device/token");
    assert_eq!(polls.len(), 2);
    assert_eq!(polls[0].param("code"), Some(code.as_str()));
    assert_eq!(polls[0].param("client_secret"), Some(SECRET));
    // Spacing of polls is measurable.
    assert!(polls[1].at - polls[0].at >= Duration::from_millis(100));
    assert!(polls[1].elapsed_ms() >= polls[0].elapsed_ms() + 100);
    // No secret in any URL.
    assert!(log.iter().all(|r| !r.query.as_deref().unwrap_or("").contains(SECRET)));
    assert_eq!(log[3].location, "eu");
    assert_eq!(log[3].query.as_deref(), Some("x=1"));
    assert_eq!(log[3].param("x"), Some("1"));
    assert!(log.windows(2).all(|w| w[0].seq < w[1].seq));

    sim.clear_log();
    assert!(sim.requests().is_empty());
    get(&format!("{us}/oauth/serverinfo"), None).await;
    assert_eq!(sim.requests().len(), 1);
}

#[tokio::test]
async fn a_secret_in_the_query_string_shows_in_the_log() {
    let sim = Simulator::spawn(fast()).unwrap();
    let us = sim.accounts_url("us");
    let (_, code) = new_code(&us).await;
    let url = format!(
        "{us}/oauth/v3/device/token?client_id={CLIENT}&client_secret={SECRET}&grant_type=device_token&code={code}"
    );
    post(&url, &[]).await;
    let polls = sim.requests_to("/oauth/v3/device/token");
    assert!(polls[0].query.as_deref().unwrap().contains(SECRET));
    assert_eq!(polls[0].param("client_secret"), Some(SECRET));
}
