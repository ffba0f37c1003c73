//! The simulator's behaviours, each tested over real HTTP on 127.0.0.1.
//!
//! One test binary (one link step) made of modules, one per area.

mod books;
mod cli;
mod device_code;
mod faults;
mod lifecycle;
mod log;
mod page;
mod polling;
mod refresh;
mod util;
mod variants;
