//! The isolated environment every end-to-end test gives the binary: nothing inherited but
//! `PATH`; `HOME`, the XDG directories and `TMPDIR` inside the test's temporary directory.
//! Shared by every suite that runs the binary (tests/cli, tests/reliability through
//! [`super::world`], tests/interop on its own).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

/// The built binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_zoho-device");

/// The environment of a program whose home is `home`: `PATH`, `HOME`, and the XDG directories
/// and `TMPDIR` made inside it.
pub fn scrubbed_env(home: &Path) -> BTreeMap<String, String> {
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
    env
}

/// `program` with nothing but `env`, in `home`, its stdin closed.
pub fn command_in(program: &str, home: &Path, env: &BTreeMap<String, String>) -> Command {
    let mut c = Command::new(program);
    c.env_clear().envs(env).current_dir(home).stdin(Stdio::null());
    c
}

/// A loopback URL where nothing listens: connections to it are refused. The port stays bound
/// (never listening) while the returned socket lives, so no test running in parallel can be
/// given it — a released port can be, and then it answers instead of refusing.
#[allow(dead_code)] // tests/reliability has no use for it (its proxy holds its own port)
pub fn refusing_url() -> (socket2::Socket, String) {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    s.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into()).unwrap();
    let port = s.local_addr().unwrap().as_socket().unwrap().port();
    (s, format!("http://127.0.0.1:{port}"))
}
