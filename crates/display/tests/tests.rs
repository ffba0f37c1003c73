//! One integration-test binary (ripgrep style): every output is decoded back with `rqrr`.

mod util;

mod files;
mod panels;
mod terminal;
