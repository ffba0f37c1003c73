//! The isolated environment every end-to-end test gives the binary: nothing inherited but
//! `PATH`; `HOME`, the XDG directories and `TMPDIR` inside the test's temporary directory; the
//! client each suite registers. Shared by tests/cli and tests/reliability (`#[path]` module).

use std::collections::BTreeMap;
use std::path::Path;

/// The environment for a binary whose home is `home`, whose accounts server is `accounts_url`
/// and whose client is `client_id` with `secret`.
pub fn isolated_env(home: &Path, accounts_url: &str, client_id: &str, secret: &str) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    env.insert(
        "PATH".into(),
        std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()),
    );
    env.insert("HOME".into(), home.display().to_string());
    for (k, d) in [
        ("XDG_CONFIG_HOME", "config"),
        ("XDG_STATE_HOME", "state"),
        ("XDG_CACHE_HOME", "cache"),
        ("XDG_DATA_HOME", "data"),
        ("XDG_RUNTIME_DIR", "run"),
        ("TMPDIR", "tmp"),
    ] {
        let p = home.join(d);
        std::fs::create_dir_all(&p).unwrap();
        env.insert(k.into(), p.display().to_string());
    }
    env.insert("ZOHO_ACCOUNTS_URL".into(), accounts_url.into());
    env.insert("ZOHO_CLIENT_ID".into(), client_id.into());
    env.insert("ZOHO_CLIENT_SECRET".into(), secret.into());
    env
}

/// A loopback URL where nothing listens: connections to it are refused. The port stays bound
/// (never listening) while the returned socket lives, so no test running in parallel can be
/// given it — a released port can be, and then it answers instead of refusing.
pub fn refusing_url() -> (socket2::Socket, String) {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    s.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into()).unwrap();
    let port = s.local_addr().unwrap().as_socket().unwrap().port();
    (s, format!("http://127.0.0.1:{port}"))
}
