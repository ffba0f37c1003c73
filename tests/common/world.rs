//! One test's world: a simulator (or another server), a temporary HOME, the environment of
//! the binary, and every run's output.

use std::collections::BTreeMap;
use std::ops::Deref;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;

use serde_json::Value;
use zoho_device_sim::{SimConfig, Simulator};

use super::env::{BIN, command_in, scrubbed_env};
use super::run::{Output, Running};

/// The test client (registered in `us` unless a test says otherwise).
pub const CLIENT_ID: &str = "1004.TESTCLIENT";
/// Its secret. Long and distinctive so a leak anywhere is found by a substring search.
pub const SECRET: &str = "sEcReT-4f9a2b7c-never-print-me";
/// The default user.
pub const USER: &str = "dev.user@example.com";

/// The simulator configuration tests start from: US and EU, the test client known in `us`, a
/// user in `us`, 200 ms poll interval (the program polls at least every second), a minute-long
/// code; codes wait for an approval.
pub fn sim_config() -> SimConfig {
    SimConfig::new()
        .locations(&["us", "eu"])
        .client(CLIENT_ID, SECRET, &["us"])
        .user(USER, "us")
        .interval_ms(200)
        .code_lifetime_ms(60_000)
}

/// As [`sim_config`], approving every code on its first poll.
pub fn auto_config() -> SimConfig {
    sim_config().auto_approve_after_polls(1)
}

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A world's simulator: `w.sim.approve(…)`. Worlds around another server
/// ([`World::bare`]) have none, and using it fails the test.
pub struct Sim(Option<Simulator>);

impl Deref for Sim {
    type Target = Simulator;
    #[track_caller]
    fn deref(&self) -> &Simulator {
        self.0.as_ref().expect("this world has a simulator")
    }
}

impl From<Simulator> for Sim {
    fn from(sim: Simulator) -> Sim {
        Sim(Some(sim))
    }
}

/// One test's world: a server, a temporary HOME, the binary's environment.
pub struct World {
    /// The simulator (absent for worlds around another server).
    pub sim: Sim,
    /// The temporary HOME (also holds XDG dirs and TMPDIR).
    pub home: tempfile::TempDir,
    /// The environment given to the binary (nothing else is inherited).
    pub env: BTreeMap<String, String>,
    /// Every run's output, for the secret checks.
    pub outputs: Mutex<Vec<Output>>,
}

impl World {
    /// A world with a simulator built from `config`, configured for the test client in `us`.
    pub fn new(config: SimConfig) -> World {
        let sim = Simulator::spawn(config).expect("the simulator starts");
        let mut w = World::bare(&sim.accounts_url("us"));
        w.sim = sim.into();
        w
    }

    /// A world whose accounts server is `accounts_url` (a scripted server, a proxy, …), with
    /// the test client, and what the suite adds (`crate::suite_env`, at each suite's root).
    pub fn bare(accounts_url: &str) -> World {
        let home = tempfile::tempdir().expect("a temporary directory");
        let mut env = scrubbed_env(home.path());
        env.insert("ZOHO_ACCOUNTS_URL".into(), accounts_url.into());
        env.insert("ZOHO_CLIENT_ID".into(), CLIENT_ID.into());
        env.insert("ZOHO_CLIENT_SECRET".into(), SECRET.into());
        env.extend(crate::suite_env().into_iter().map(|(k, v)| (k.to_string(), v)));
        World {
            sim: Sim(None),
            home,
            env,
            outputs: Mutex::new(Vec::new()),
        }
    }

    /// Sets (or with `None` removes) an environment variable of the binary.
    pub fn set(&mut self, key: &str, value: Option<&str>) -> &mut Self {
        match value {
            Some(v) => self.env.insert(key.into(), v.into()),
            None => self.env.remove(key),
        };
        self
    }

    /// A path in the temporary HOME.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.home.path().join(rel)
    }

    /// The default token file (under `$XDG_STATE_HOME`).
    pub fn token_path(&self) -> PathBuf {
        self.path("state/zoho-device/token.json")
    }

    /// The token file's bytes (fails the test when missing).
    #[track_caller]
    pub fn token_bytes(&self) -> Vec<u8> {
        std::fs::read(self.token_path()).expect("the token file exists")
    }

    /// The token file as JSON.
    #[track_caller]
    pub fn token_json(&self) -> Value {
        serde_json::from_slice(&self.token_bytes()).expect("the token file is JSON")
    }

    /// Rewrites fields of the token file (keeping its mode).
    pub fn edit_token(&self, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) {
        let mut v = self.token_json();
        edit(v.as_object_mut().unwrap());
        std::fs::write(self.token_path(), serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    }

    /// `program` with this world's environment, in its HOME, stdin closed.
    pub fn program(&self, program: &str) -> Command {
        command_in(program, self.home.path(), &self.env)
    }

    /// `zoho-device ARGS` in this world, stdout and stderr piped.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = self.program(BIN);
        c.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        c
    }

    /// Starts `zoho-device ARGS`; read its events while it runs.
    pub fn spawn(&self, args: &[&str]) -> Running<'_> {
        self.spawn_command(self.command(args), args)
    }

    /// Starts `command` (the binary under another program, a script around it); `args` name
    /// it in failure messages.
    pub fn spawn_command(&self, command: Command, args: &[&str]) -> Running<'_> {
        Running::start(self, command, args)
    }

    /// Runs `zoho-device ARGS` to completion.
    #[track_caller]
    pub fn run(&self, args: &[&str]) -> Output {
        self.spawn(args).wait()
    }

    /// Pairs with auto-approval expected (the simulator must approve on its own); returns the
    /// output of `login --events json --display none`.
    #[track_caller]
    pub fn login(&self) -> Output {
        let out = self.run(&["login", "--events", "json", "--display", "none"]);
        out.code(0);
        assert!(self.token_path().exists());
        out
    }

    /// The secrets this world has seen: the client secret, every device code the program
    /// polled with, every refresh and access token in the simulator's view and in the file.
    pub fn secrets(&self) -> Vec<String> {
        let mut s = vec![SECRET.to_string()];
        if let Some(sim) = &self.sim.0 {
            for r in sim.requests() {
                for name in ["code", "refresh_token", "token", "client_secret"] {
                    if let Some(v) = r.param(name) {
                        s.push(v.to_string());
                    }
                }
                if let Some(t) = r
                    .header("authorization")
                    .and_then(|a| a.strip_prefix("Zoho-oauthtoken "))
                {
                    s.push(t.trim().to_string());
                }
            }
            s.extend(sim.refresh_tokens(USER));
        }
        if let Ok(bytes) = std::fs::read(self.token_path())
            && let Ok(v) = serde_json::from_slice::<Value>(&bytes)
        {
            for k in ["access_token", "refresh_token"] {
                if let Some(t) = v[k].as_str() {
                    s.push(t.to_string());
                }
            }
        }
        s.retain(|x| x.len() >= 8);
        s.sort();
        s.dedup();
        s
    }
}
