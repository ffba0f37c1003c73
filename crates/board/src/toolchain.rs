//! Finding, and installing when missing, what a cross build needs: the Rust standard library
//! for each target, and zig with cargo-zigbuild as linker and C compiler.
//!
//! Policy, from `shared/docs/cross.md`: `rustup target add` first; when rustup cannot serve a
//! target (some mirrors answer 404 for the 32-bit musl ones), build std from source with
//! `rust-src` and `-Zbuild-std`. zig comes from PyPI into a private virtualenv, pinned, so no
//! Debian cross toolchain is involved (Debian's armhf gcc links ARMv7 start files into ARMv6
//! binaries).

use std::collections::BTreeSet;
use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The zig release installed from PyPI (`ziglang`).
pub const ZIGLANG_VERSION: &str = "0.17.1";
/// The cargo-zigbuild release installed from PyPI.
pub const CARGO_ZIGBUILD_VERSION: &str = "0.24.1";

/// How a target's standard library is obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StdSource {
    /// rustup's prebuilt `rust-std` is installed.
    Prebuilt,
    /// Built from `rust-src` with `-Zbuild-std` (needs `RUSTC_BOOTSTRAP=1` on stable).
    BuildStd,
    /// Neither is installed yet.
    Missing,
}

/// Targets whose prebuilt std rustup reports as installed.
pub fn installed_targets() -> BTreeSet<String> {
    let out = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .stderr(Stdio::null())
        .output();
    match out {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect(),
        _ => BTreeSet::new(),
    }
}

/// Whether the toolchain's `rust-src` component (std's sources, for `-Zbuild-std`) is present.
pub fn has_rust_src() -> bool {
    let Ok(out) = Command::new("rustc").args(["--print", "sysroot"]).output() else {
        return false;
    };
    let sysroot = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    sysroot.join("lib/rustlib/src/rust/library/std/Cargo.toml").is_file()
}

/// What is installed for `target` right now, without touching the network.
pub fn std_source(target: &str, installed: &BTreeSet<String>, rust_src: bool) -> StdSource {
    if installed.contains(target) {
        StdSource::Prebuilt
    } else if rust_src {
        StdSource::BuildStd
    } else {
        StdSource::Missing
    }
}

/// Makes std available for each target: `rustup target add`, falling back to `rust-src` and
/// build-std for targets rustup cannot install. Returns each target with its source.
pub fn ensure_std(targets: &[String]) -> Result<Vec<(String, StdSource)>, String> {
    let installed = installed_targets();
    let mut rust_src = has_rust_src();
    let mut plan = Vec::new();
    for target in targets {
        if installed.contains(target) {
            plan.push((target.clone(), StdSource::Prebuilt));
            continue;
        }
        eprintln!("==> rustup target add {target}");
        let added = Command::new("rustup").args(["target", "add", target]).output();
        match added {
            Ok(out) if out.status.success() => {
                plan.push((target.clone(), StdSource::Prebuilt));
                continue;
            }
            Ok(out) => {
                // rustup's error is a page with a backtrace; its first line says enough.
                let err = String::from_utf8_lossy(&out.stderr);
                let first = err.lines().find(|l| !l.trim().is_empty()).unwrap_or("failed");
                eprintln!("    {}", first.trim());
            }
            Err(e) => eprintln!("    cannot run rustup: {e}"),
        }
        eprintln!("    building std for {target} from source instead (-Zbuild-std)");
        if !rust_src {
            ensure_rust_src().map_err(|e| format!("rustup cannot install {target}, and {e}"))?;
            rust_src = true;
        }
        plan.push((target.clone(), StdSource::BuildStd));
    }
    Ok(plan)
}

/// Installs the `rust-src` component (std's sources, for `-Zbuild-std`) when absent.
pub fn ensure_rust_src() -> Result<(), String> {
    if has_rust_src() {
        return Ok(());
    }
    eprintln!("==> rustup component add rust-src");
    let ok = Command::new("rustup")
        .args(["component", "add", "rust-src"])
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Ok(())
    } else {
        Err("`rustup component add rust-src` failed".to_owned())
    }
}

/// A usable cargo-zigbuild with a zig it can find.
#[derive(Clone, Debug)]
pub struct Zig {
    /// The `cargo-zigbuild` executable.
    pub cargo_zigbuild: PathBuf,
    /// Directories to put first on `PATH` so cargo-zigbuild finds zig (or the virtualenv's
    /// `python3`, whose `ziglang` module is zig).
    pub path_prefix: Vec<PathBuf>,
}

impl Zig {
    /// The `PATH` to run cargo-zigbuild with.
    pub fn path_env(&self) -> OsString {
        let mut dirs = self.path_prefix.clone();
        if let Some(path) = env::var_os("PATH") {
            dirs.extend(env::split_paths(&path));
        }
        // Joining only fails on a directory containing ':'; fall back to the bare PATH.
        env::join_paths(dirs).unwrap_or_else(|_| env::var_os("PATH").unwrap_or_default())
    }
}

/// The virtualenv holding `ziglang` and `cargo-zigbuild`: `$ZOHO_DEVICE_ZIGENV`, else
/// `~/.cache/zigenv`.
pub fn zigenv_dir() -> PathBuf {
    if let Some(dir) = env::var_os("ZOHO_DEVICE_ZIGENV") {
        return PathBuf::from(dir);
    }
    let home = env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache/zigenv")
}

/// Finds zig + cargo-zigbuild without installing anything: the virtualenv first (pinned
/// versions), then whatever is on `PATH`.
pub fn find_zig() -> Option<Zig> {
    let venv_bin = zigenv_dir().join("bin");
    let venv_zigbuild = venv_bin.join("cargo-zigbuild");
    if venv_zigbuild.is_file() && runs(&venv_bin.join("python3"), &["-m", "ziglang", "version"]) {
        return Some(Zig {
            cargo_zigbuild: venv_zigbuild,
            path_prefix: vec![venv_bin],
        });
    }
    let on_path = which("cargo-zigbuild")?;
    if which("zig").is_some() || runs(Path::new("python3"), &["-m", "ziglang", "version"]) {
        return Some(Zig {
            cargo_zigbuild: on_path,
            path_prefix: Vec::new(),
        });
    }
    None
}

/// Finds zig + cargo-zigbuild, installing the pinned versions into the virtualenv when absent.
pub fn ensure_zig() -> Result<Zig, String> {
    if let Some(zig) = find_zig() {
        return Ok(zig);
    }
    let venv = zigenv_dir();
    let python = venv.join("bin/python3");
    if !python.is_file() {
        eprintln!("==> python3 -m venv {}", venv.display());
        let ok = Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Err(format!(
                "`python3 -m venv {}` failed (on Debian: apt-get install python3-venv)",
                venv.display()
            ));
        }
    }
    let pins = [
        format!("ziglang=={ZIGLANG_VERSION}"),
        format!("cargo-zigbuild=={CARGO_ZIGBUILD_VERSION}"),
    ];
    eprintln!("==> pip install {}", pins.join(" "));
    let ok = Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check"])
        .args(&pins)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return Err(format!("pip install {} failed", pins.join(" ")));
    }
    find_zig().ok_or_else(|| "zig or cargo-zigbuild still not usable after pip install".to_owned())
}

/// The first executable called `name` on `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The toolchain's `rust-objcopy` (LLVM's objcopy, every target), ready to run: from
/// `$(rustc --print sysroot)/lib/rustlib/HOST/bin` with the toolchain's `lib` (its libLLVM) on
/// the library path, as rustup's proxies would set it, else `rust-objcopy` or `llvm-objcopy` on
/// `PATH`.
pub fn rust_objcopy() -> Option<Command> {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(&rustc).args(["--print", "sysroot"]).output().ok()?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let host = Command::new(&rustc).args(["--version", "--verbose"]).output().ok()?;
    let host = String::from_utf8_lossy(&host.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))?;
    let bundled = sysroot.join("lib/rustlib").join(host).join("bin/rust-objcopy");
    if bundled.is_file() {
        let mut libs = vec![sysroot.join("lib")];
        if let Some(existing) = env::var_os("LD_LIBRARY_PATH") {
            libs.extend(env::split_paths(&existing));
        }
        let mut cmd = Command::new(bundled);
        if let Ok(joined) = env::join_paths(libs) {
            cmd.env("LD_LIBRARY_PATH", joined);
        }
        Some(cmd)
    } else {
        which("rust-objcopy")
            .or_else(|| which("llvm-objcopy"))
            .map(Command::new)
    }
}

fn runs(program: &Path, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
