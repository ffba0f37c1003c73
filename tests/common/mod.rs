//! The one harness for the built `zoho-device`, shared by the test binaries that run it against
//! the Zoho simulator (tests/cli and tests/reliability include it with
//! `#[path = "../common/mod.rs"] mod common;`, tests/agent.rs with `#[path = "common/mod.rs"]`):
//!
//! - `env.rs`: the isolated environment and the command in it (tests/interop uses it alone);
//! - `world.rs`: a simulator, a temporary HOME, the token file, the secrets a world has seen;
//! - `run.rs`: a run of the binary with a hard time limit, its events while it runs, its output.
//!
//! Each suite's root defines `fn suite_env() -> Vec<(&'static str, String)>`: what its worlds
//! add to the environment. What only one suite needs stays in its folder (tests/cli/util.rs,
//! tests/reliability/harness.rs).

pub mod env;
pub mod run;
pub mod world;

pub use env::*;
pub use run::*;
pub use world::*;
pub use zoho_device_sim::{Fault, FaultKind, SimConfig};
