//! `zoho-device-target`: build, package and smoke-test zoho-device for Raspberry Pi boards.
//! Run as `cargo board <command>` (alias in `.cargo/config.toml`).

#![forbid(unsafe_code)]

use std::fs;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use zoho_device_target::board::{self, Board, Libc};
use zoho_device_target::build::{self, BuildOptions, Workspace, human_size};
use zoho_device_target::package::{self, DebBuilder, PackageSpec};
use zoho_device_target::smoke::{self, SmokeOptions};
use zoho_device_target::toolchain::{self, StdSource};

#[derive(Parser)]
#[command(version, about = "Build, package and smoke-test zoho-device for Raspberry Pi boards")]
struct Cli {
    /// The workspace to build (default: the one this tool was compiled in).
    #[arg(long, global = true, value_name = "DIR")]
    workspace: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The boards, their targets and what is installed for them.
    List {
        /// C library to report on.
        #[arg(long, default_value = "musl")]
        libc: Libc,
    },
    /// Install what is missing and build the release binary (size profile, no simulator).
    Build {
        #[command(flatten)]
        boards: BoardSel,
        /// Override the release profile's opt-level ("s", "z", "3") to compare sizes.
        #[arg(long, value_name = "LEVEL")]
        opt_level: Option<String>,
        /// Build std from source with the size profile even where rustup has a rust-std.
        #[arg(long)]
        build_std: bool,
        /// Extra argument for cargo (repeatable), e.g.
        /// --cargo-arg=-Zbuild-std-features=optimize_for_size
        #[arg(long = "cargo-arg", value_name = "ARG", allow_hyphen_values = true)]
        cargo_args: Vec<String>,
        /// Fail when a binary is larger than this many megabytes (10^6 bytes); CI holds the
        /// boards to the 3.0 MB budget of the performance targets (docs/benchmarks.md).
        #[arg(long, value_name = "MB")]
        max_size_mb: Option<f64>,
    },
    /// Write a .tar.gz and a .deb for a board (building first if there is no binary yet).
    Package {
        #[command(flatten)]
        boards: BoardSel,
        /// Package this binary instead of the built one.
        #[arg(long, value_name = "PATH")]
        binary: Option<PathBuf>,
        /// Where to write the files (default: <workspace>/dist).
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
        /// Write the .deb without dpkg-deb even when it is installed.
        #[arg(long)]
        builtin_deb: bool,
    },
    /// Run the built binary under qemu-user against the simulator and report each step.
    Smoke {
        #[command(flatten)]
        boards: BoardSel,
        /// Run this binary instead of the built one.
        #[arg(long, value_name = "PATH")]
        binary: Option<PathBuf>,
        /// Use this simulator binary instead of building the workspace's.
        #[arg(long, value_name = "PATH")]
        sim: Option<PathBuf>,
        /// Only run `--version`.
        #[arg(long)]
        version_only: bool,
    },
}

#[derive(Args)]
struct BoardSel {
    /// Board name (repeatable); see `list`.
    #[arg(long = "board", value_name = "NAME", required_unless_present = "all")]
    names: Vec<String>,
    /// Every board in the catalogue.
    #[arg(long, conflicts_with = "names")]
    all: bool,
    /// musl (static, default) or gnu (glibc >= 2.28).
    #[arg(long, default_value = "musl")]
    libc: Libc,
}

impl BoardSel {
    fn boards(&self) -> Result<Vec<&'static Board>, String> {
        if self.all {
            return Ok(board::BOARDS.iter().collect());
        }
        self.names
            .iter()
            .map(|n| board::find(n).ok_or_else(|| format!("unknown board `{n}`; known: {}", board::names().join(", "))))
            .collect()
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let ws = cli.workspace.map_or_else(Workspace::locate, |root| Workspace {
        root: root.canonicalize().unwrap_or(root),
    });
    match run(&ws, cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Every artifact within `max_mb` megabytes, or an error naming those over it.
fn check_sizes(artifacts: &[build::Artifact], max_mb: f64) -> Result<(), String> {
    // Whole bytes of a budget given in megabytes; precision beyond a byte is irrelevant.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let limit = (max_mb * 1_000_000.0) as u64;
    let over: Vec<String> = artifacts
        .iter()
        .filter(|a| a.size > limit)
        .map(|a| format!("{} is {} bytes", a.target, a.size))
        .collect();
    if over.is_empty() {
        println!("every binary is within {max_mb} MB ({limit} bytes)");
        Ok(())
    } else {
        Err(format!(
            "over the {max_mb} MB size budget: {}; see docs/benchmarks.md for what the bytes are and how they were cut",
            over.join(", ")
        ))
    }
}

fn run(ws: &Workspace, command: Cmd) -> Result<(), String> {
    match command {
        Cmd::List { libc } => {
            list(ws, libc);
            Ok(())
        }
        Cmd::Build {
            boards,
            opt_level,
            build_std,
            cargo_args,
            max_size_mb,
        } => {
            let selected = boards.boards()?;
            let opts = BuildOptions {
                libc: boards.libc,
                opt_level,
                force_build_std: build_std,
                cargo_args,
            };
            let artifacts = build::build(ws, &selected, &opts)?;
            println!("{:<10} {:<32} {:<22} path", "board", "target", "size");
            for b in &selected {
                if let Some(a) = artifacts.iter().find(|a| a.target == b.target(boards.libc)) {
                    println!(
                        "{:<10} {:<32} {:<22} {}",
                        b.name,
                        a.target,
                        human_size(a.size),
                        a.path.display()
                    );
                }
            }
            match max_size_mb {
                Some(mb) => check_sizes(&artifacts, mb),
                None => Ok(()),
            }
        }
        Cmd::Package {
            boards,
            binary,
            out_dir,
            builtin_deb,
        } => {
            let selected = boards.boards()?;
            if binary.is_some() && selected.len() > 1 {
                return Err("--binary packages one board at a time".to_owned());
            }
            let missing: Vec<&Board> = selected
                .iter()
                .copied()
                .filter(|b| binary.is_none() && ws.artifact(b.target(boards.libc)).is_none())
                .collect();
            if !missing.is_empty() {
                let opts = BuildOptions {
                    libc: boards.libc,
                    ..BuildOptions::default()
                };
                build::build(ws, &missing, &opts)?;
            }
            let out_dir = out_dir.unwrap_or_else(|| ws.dist_dir());
            let readme =
                fs::read_to_string(ws.root.join("README.md")).unwrap_or_else(|_| package::FALLBACK_README.to_owned());
            let builder = if builtin_deb {
                DebBuilder::Builtin
            } else {
                DebBuilder::detect()
            };
            for b in selected {
                let bin = binary
                    .clone()
                    .or_else(|| ws.artifact(b.target(boards.libc)))
                    .ok_or_else(|| format!("no binary for {}", b.name))?;
                let spec = PackageSpec {
                    board: b,
                    libc: boards.libc,
                    binary: &bin,
                    version: env!("CARGO_PKG_VERSION"),
                    readme: &readme,
                };
                let packaged = package::package(&spec, &out_dir, builder)?;
                println!("{}", package::describe(&packaged));
            }
            Ok(())
        }
        Cmd::Smoke {
            boards,
            binary,
            sim,
            version_only,
        } => {
            let selected = boards.boards()?;
            let opts = SmokeOptions {
                libc: boards.libc,
                binary,
                sim,
                version_only,
            };
            let mut ok = true;
            for b in selected {
                println!(
                    "smoke {} ({}, {} -cpu {})",
                    b.name,
                    b.target(boards.libc),
                    b.isa.qemu_binary(),
                    b.qemu_cpu
                );
                let steps = smoke::smoke(ws, b, &opts);
                for step in &steps {
                    println!("{}", step.line());
                }
                ok &= smoke::all_passed(&steps);
            }
            if ok {
                Ok(())
            } else {
                Err("smoke test failed".to_owned())
            }
        }
    }
}

fn list(ws: &Workspace, libc: Libc) {
    let installed = toolchain::installed_targets();
    let rust_src = toolchain::has_rust_src();
    println!(
        "{:<8} {:<32} {:<11} {:<7} {:<22} {:<30} notes",
        "board", "target", "qemu -cpu", "deb", "std", "built"
    );
    for b in board::BOARDS {
        let target = b.target(libc);
        let std = match toolchain::std_source(target, &installed, rust_src) {
            StdSource::Prebuilt => "rustup rust-std",
            StdSource::BuildStd => "build-std (rust-src)",
            StdSource::Missing => "missing (build installs)",
        };
        let built = ws
            .artifact(target)
            .and_then(|p| fs::metadata(p).ok())
            .map_or_else(|| "-".to_owned(), |m| human_size(m.len()));
        println!(
            "{:<8} {:<32} {:<11} {:<7} {:<22} {:<30} {}: {}",
            b.name, target, b.qemu_cpu, b.deb_arch, std, built, b.models, b.notes
        );
    }
    let tool = |found: bool, what: &str, fix: &str| {
        println!(
            "{:<16} {}",
            what,
            if found {
                "found".to_owned()
            } else {
                format!("missing ({fix})")
            }
        );
    };
    println!();
    tool(
        toolchain::find_zig().is_some(),
        "zig+zigbuild",
        "build installs it into ~/.cache/zigenv",
    );
    tool(
        toolchain::which("qemu-aarch64-static").is_some() && toolchain::which("qemu-arm-static").is_some(),
        "qemu-user",
        "apt-get install qemu-user-static",
    );
    tool(
        toolchain::which("dpkg-deb").is_some(),
        "dpkg-deb",
        "package writes the .deb itself",
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn artifact(target: &str, size: u64) -> build::Artifact {
        build::Artifact {
            target: target.into(),
            path: PathBuf::from("/x"),
            size,
        }
    }

    #[test]
    fn the_size_budget_names_the_binaries_over_it() {
        let ok = [artifact("aarch64-unknown-linux-musl", 2_900_000)];
        assert!(check_sizes(&ok, 3.0).is_ok());
        let over = [
            artifact("aarch64-unknown-linux-musl", 3_000_001),
            artifact("arm-unknown-linux-musleabihf", 2_000_000),
        ];
        let e = check_sizes(&over, 3.0).unwrap_err();
        assert!(e.contains("aarch64-unknown-linux-musl is 3000001 bytes"), "{e}");
        assert!(!e.contains("musleabihf"), "{e}");
    }
}
