//! Building the board binaries: `cargo zigbuild -p zoho-device --no-default-features --release`
//! for each distinct target of the chosen boards.
//!
//! Board builds go to their own target directories under `target/boards/`, never the
//! workspace's `target/release`: other people's host builds are not blocked behind a cross
//! build's lock, and `RUSTC_BOOTSTRAP=1` (needed for `-Zbuild-std`) never flips the
//! fingerprints of their proc-macro crates. build-std targets get a directory of their own for
//! the same reason: toggling `RUSTC_BOOTSTRAP` in one directory rebuilds every proc-macro
//! (30–40 s each time on two cores).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::{env, fs};

use crate::board::{Board, Libc};
use crate::toolchain::{self, StdSource};

/// The package and binary the boards run.
pub const PACKAGE: &str = "zoho-device";

/// Where the workspace is and where board artefacts go.
#[derive(Clone, Debug)]
pub struct Workspace {
    /// The workspace root (the directory holding the root `Cargo.toml` and `.cargo/`).
    pub root: PathBuf,
}

impl Workspace {
    /// The workspace this tool was compiled in (`crates/board/../..`).
    pub fn locate() -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let root = root.canonicalize().unwrap_or(root);
        Workspace { root }
    }

    /// The cargo target directory for builds whose std comes from `source`: under
    /// `$ZOHO_DEVICE_BOARDS_DIR` (for a cold build in CI timing), else `target/boards/`.
    pub fn board_target_dir(&self, source: StdSource) -> PathBuf {
        let boards =
            env::var_os("ZOHO_DEVICE_BOARDS_DIR").map_or_else(|| self.root.join("target/boards"), PathBuf::from);
        match source {
            StdSource::BuildStd => boards.join("build-std"),
            StdSource::Prebuilt | StdSource::Missing => boards.join("prebuilt-std"),
        }
    }

    /// Where `package` writes its files unless told otherwise.
    pub fn dist_dir(&self) -> PathBuf {
        self.root.join("dist")
    }

    /// The built binary for `target` that `cargo board build` makes by default (std from
    /// source); only when there is none, a `--prebuilt-std` one. Not the newer of the two: a
    /// comparison build made afterwards must not become the one smoke-tested or listed.
    pub fn artifact(&self, target: &str) -> Option<PathBuf> {
        [StdSource::BuildStd, StdSource::Prebuilt]
            .into_iter()
            .map(|s| artifact_path(&self.board_target_dir(s), target))
            .find(|p| p.is_file())
    }
}

/// `DIR/TARGET/release/zoho-device`.
pub fn artifact_path(target_dir: &Path, target: &str) -> PathBuf {
    target_dir.join(target).join("release").join(PACKAGE)
}

/// How to build.
#[derive(Clone, Debug, Default)]
pub struct BuildOptions {
    /// musl (static, default) or glibc.
    pub libc: Libc,
    /// Overrides the release profile's `opt-level` (`"z"`, `"s"`, `"3"`) for size comparisons.
    pub opt_level: Option<String>,
    /// Links rustup's prebuilt std where rustup has one (the others still build it from
    /// source). By default std is built from source for every target (`-Zbuild-std`, with
    /// `optimize_for_size`), optimised with the size profile and LTO'd with the program: the
    /// aarch64 binary is 277 KB smaller (docs/benchmarks.md), which is what keeps the boards
    /// within their budgets.
    pub prebuilt_std: bool,
    /// Extra arguments for cargo (e.g. `-Zbuild-std-features=optimize_for_size`).
    pub cargo_args: Vec<String>,
}

/// A built binary.
#[derive(Clone, Debug)]
pub struct Artifact {
    /// The Rust target triple.
    pub target: String,
    /// The binary.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
}

/// The distinct targets of `boards`, in catalogue order.
pub fn distinct_targets(boards: &[&Board], libc: Libc) -> Vec<String> {
    let mut targets: Vec<String> = Vec::new();
    for board in boards {
        let t = board.target(libc).to_owned();
        if !targets.contains(&t) {
            targets.push(t);
        }
    }
    targets
}

/// Installs what is missing and builds the binary for every distinct target of `boards`:
/// one cargo invocation for the targets with a prebuilt std and one for the build-std
/// targets (several `--target`s per invocation beat one invocation per target).
pub fn build(ws: &Workspace, boards: &[&Board], opts: &BuildOptions) -> Result<Vec<Artifact>, String> {
    let targets = distinct_targets(boards, opts.libc);
    let plan = if opts.prebuilt_std {
        toolchain::ensure_std(&targets)?
    } else {
        toolchain::ensure_rust_src()?;
        targets.into_iter().map(|t| (t, StdSource::BuildStd)).collect()
    };
    let zig = toolchain::ensure_zig()?;

    for source in [StdSource::Prebuilt, StdSource::BuildStd] {
        let group: Vec<&str> = plan
            .iter()
            .filter(|(_, s)| *s == source)
            .map(|(t, _)| t.as_str())
            .collect();
        if group.is_empty() {
            continue;
        }
        let mut cmd = Command::new(&zig.cargo_zigbuild);
        cmd.current_dir(&ws.root)
            .env("PATH", zig.path_env())
            .args(["zigbuild", "-p", PACKAGE, "--bin", PACKAGE])
            // The simulator is a default feature of the root package; it never ships to a device.
            .args(["--no-default-features", "--release"])
            .arg("--target-dir")
            .arg(ws.board_target_dir(source));
        for target in &group {
            let board = boards
                .iter()
                .find(|b| b.target(opts.libc) == *target)
                .ok_or_else(|| format!("no board for {target}"))?;
            cmd.arg("--target").arg(board.zig_target(opts.libc));
        }
        if let Some(level) = &opts.opt_level {
            cmd.arg("--config")
                .arg(format!("profile.release.opt-level={}", toml_opt_level(level)));
        }
        cmd.args(&opts.cargo_args);
        if source == StdSource::BuildStd {
            // -Zbuild-std is unstable; RUSTC_BOOTSTRAP lets the stable toolchain accept it.
            cmd.env("RUSTC_BOOTSTRAP", "1").arg("-Zbuild-std=std,panic_abort");
            // std's smaller algorithms (sorting, formatting): unless the caller chose others.
            if !opts.cargo_args.iter().any(|a| a.starts_with("-Zbuild-std-features")) {
                cmd.arg("-Zbuild-std-features=optimize_for_size");
            }
            // A std built from source has no self-contained crt objects (those come with
            // rustup's rust-std, which may not be installed): zig supplies musl's. The 32-bit
            // targets say so in .cargo/config.toml too; config arrays add up.
            for target in group.iter().filter(|t| t.contains("-musl")) {
                cmd.arg("--config").arg(format!(
                    "target.{target}.rustflags=[\"-C\", \"link-self-contained=no\"]"
                ));
            }
        } else {
            cmd.env_remove("RUSTC_BOOTSTRAP");
        }
        eprintln!("==> {}", describe(&cmd));
        let status = cmd
            .status()
            .map_err(|e| format!("cannot run {}: {e}", zig.cargo_zigbuild.display()))?;
        if !status.success() {
            return Err(format!("cargo zigbuild failed for {}", group.join(", ")));
        }
    }

    plan.iter()
        .map(|(target, source)| {
            let path = artifact_path(&ws.board_target_dir(*source), target);
            let size = fs::metadata(&path)
                .map_err(|e| format!("{}: {e}", path.display()))?
                .len();
            Ok(Artifact {
                target: target.clone(),
                path,
                size,
            })
        })
        .collect()
}

/// `s` → `"s"` (a TOML string), `3` → `3` (a TOML integer).
fn toml_opt_level(level: &str) -> String {
    if level.chars().all(|c| c.is_ascii_digit()) {
        level.to_owned()
    } else {
        format!("\"{level}\"")
    }
}

/// A command line for the log, with the environment that matters.
pub fn describe(cmd: &Command) -> String {
    let mut parts: Vec<String> = cmd
        .get_envs()
        .filter(|(k, _)| *k == "RUSTC_BOOTSTRAP")
        .filter_map(|(k, v)| Some(format!("{}={}", k.to_string_lossy(), v?.to_string_lossy())))
        .collect();
    parts.push(cmd.get_program().to_string_lossy().into_owned());
    parts.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}

/// `1.84 MiB (1929048 bytes)`.
pub fn human_size(bytes: u64) -> String {
    // Precision loss is irrelevant for a display with two decimals.
    #[allow(clippy::cast_precision_loss)]
    let mib = bytes as f64 / (1024.0 * 1024.0);
    format!("{mib:.2} MiB ({bytes} bytes)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_build_is_the_artifact_even_when_a_comparison_build_is_newer() {
        if env::var_os("ZOHO_DEVICE_BOARDS_DIR").is_some() {
            return; // the directories come from the environment, not from this test's root
        }
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace {
            root: dir.path().to_path_buf(),
        };
        let target = "aarch64-unknown-linux-musl";
        let write = |source| {
            let p = artifact_path(&ws.board_target_dir(source), target);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, b"elf").unwrap();
            p
        };
        assert_eq!(ws.artifact(target), None);
        let prebuilt = write(StdSource::Prebuilt);
        assert_eq!(ws.artifact(target), Some(prebuilt), "only a comparison build: that one");
        let default = write(StdSource::BuildStd);
        std::thread::sleep(std::time::Duration::from_millis(20));
        write(StdSource::Prebuilt); // newer
        assert_eq!(ws.artifact(target), Some(default));
    }
}
