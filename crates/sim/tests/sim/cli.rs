use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use crate::util::*;

/// Kills the child on drop, so a failing test leaves no simulator running.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_binary_runs_with_flags_and_prints_its_urls() {
    let child = Command::new(env!("CARGO_BIN_EXE_zoho-device-sim"))
        .args([
            "--dc",
            "us,eu,in",
            "--client",
            "1004.CLI:cli-secret:us,in",
            "--user",
            "ravi@example.in:in",
            "--interval-ms",
            "250",
            "--code-lifetime-ms",
            "20000",
            "--token-lifetime-s",
            "60",
            "--auto-approve-after-polls",
            "1",
            "--errors-as-400",
            "--fault",
            "/oauth/serverinfo:html503:1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = Running(child);
    let stdout = child.0.stdout.take().unwrap();
    let mut urls = std::collections::HashMap::new();
    for line in BufReader::new(stdout).lines().take(6) {
        let line = line.unwrap();
        if let Some((dc, rest)) = line.trim().split_once(": accounts + api_domain ") {
            urls.insert(dc.to_owned(), rest.split_whitespace().next().unwrap().to_owned());
        }
    }
    assert_eq!(urls.len(), 3, "{urls:?}");
    let (us, inn) = (&urls["us"], &urls["in"]);

    assert_eq!(get(&format!("{us}/oauth/serverinfo"), None).await.status, 503);
    assert_eq!(get(&format!("{us}/oauth/serverinfo"), None).await.status, 200);
    let r = device_code(&urls["eu"], "1004.CLI").await;
    assert_eq!((r.status, r.error().as_deref()), (400, Some("invalid_client")));
    let v = device_code(us, "1004.CLI").await.json();
    assert_eq!(v["interval"], 250);
    assert_eq!(v["expires_in"], 20_000);
    let code = s(&v["device_code"]);
    let v = poll_as(us, "1004.CLI", "cli-secret", &code).await.json();
    assert_eq!(
        (v["error"].as_str(), v["user_location"].as_str()),
        (Some("other_dc"), Some("in"))
    );
    tokio::time::sleep(std::time::Duration::from_millis(260)).await;
    let v = poll_as(inn, "1004.CLI", "cli-secret", &code).await.json();
    assert_eq!(v["expires_in"], 60);
    assert_eq!(s(&v["api_domain"]), *inn);
}

#[test]
fn the_binary_refuses_bad_flags() {
    let bin = env!("CARGO_BIN_EXE_zoho-device-sim");
    for args in [
        &["--fault", "/x:explode:1"][..],
        &["--client", "no-secret"],
        &["--user", "x@example.com:jp"],
    ] {
        let out = Command::new(bin).args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?} accepted");
    }
}
