//! Reliability and security: faults survived, nothing lost, nothing leaked.
//!
//! One integration-test binary against the built `zoho-device`, the Zoho simulator, scripted
//! hostile servers on loopback, and the core driven with simulated clocks.

mod boundary;
mod clock;
mod concurrency;
mod docs;
#[allow(dead_code)] // helpers shared by the modules; not every module uses every one
mod harness;
mod hostile;
mod local_user;
mod matrix;
mod parsers;
mod power;
mod proxy;
mod secrets;
mod storage;
