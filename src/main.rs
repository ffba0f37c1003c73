//! `zoho-device`: see `zoho-device --help`.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::filter::Targets;
use zoho_device::cli::Cli;
use zoho_device::exit::Exit;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(cli.global.verbose, cli.global.quiet);
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(Exit::Unexpected.code());
        }
    };
    let result = runtime.block_on(async {
        tokio::select! {
            r = zoho_device::commands::run(cli) => Some(r),
            _ = tokio::signal::ctrl_c() => None,
        }
    });
    match result {
        Some(Ok(())) => ExitCode::SUCCESS,
        Some(Err(e)) => {
            // An empty message: the command has already said it (e.g. `status`, not paired).
            if !e.message.is_empty() {
                eprintln!("error: {}", e.message);
            }
            if let Some(hint) = &e.hint {
                eprintln!("hint: {hint}");
            }
            ExitCode::from(e.exit.code())
        }
        None => {
            eprintln!("\n{}", zoho_device::login::interrupted_message());
            ExitCode::from(130)
        }
    }
}

/// Logs on stderr: warnings by default, `-v` info, `-vv` debug, `-q` errors only; `RUST_LOG`
/// overrides. Only this program's crates log above `warn`: HTTP libraries stay quiet.
fn init_logs(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, _) => "debug",
    };
    let default = format!("warn,zoho_device={level},zoho_device_core={level},zoho_device_display={level}");
    // `Targets` (`target=level` directives) rather than `EnvFilter`, which brings a regex engine
    // into the binary (docs/benchmarks.md).
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|s| s.parse::<Targets>().ok())
        .unwrap_or_else(|| default.parse().expect("the default filter parses"));
    // Colour (level names in yellow, red, ...) only for a person at a terminal: never in a file,
    // a pipe or journald, never with NO_COLOR (https://no-color.org) or TERM=dumb.
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::env::var_os("TERM").is_none_or(|t| t != "dumb");
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_target(false)
                .with_ansi(colour)
                .without_time(),
        )
        .with(filter)
        .init();
}
