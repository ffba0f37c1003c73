//! Packaging a built binary for a board: a `.tar.gz` to copy by hand and a `.deb` for
//! `apt install ./file.deb`.
//!
//! Both are made from one list of [`Entry`]s, so the tarball and the `.deb` cannot disagree
//! on what ships. The packaging code takes a binary path and never builds anything, so tests
//! can package a small fake binary without a cross build. The `.deb` is built by Debian's
//! `dpkg-deb` when it is installed (the reference implementation), else written here
//! (`ar` of `debian-binary`, `control.tar.gz`, `data.tar.gz`), which is all a `.deb` is.

use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::UNIX_EPOCH;

use flate2::Compression;
use flate2::write::GzEncoder;

use crate::board::{Board, GLIBC_FLOOR, Isa, Libc};
use crate::build::human_size;

/// The systemd unit (`packaging/zoho-device.service`).
pub const UNIT: &str = include_str!("../../../packaging/zoho-device.service");
/// The configuration skeleton (`packaging/config.toml`).
pub const CONFIG: &str = include_str!("../../../packaging/config.toml");
/// Maintainer script: creates the system user, reloads systemd, does not start the agent.
pub const POSTINST: &str = include_str!("../../../packaging/deb/postinst");
/// Maintainer script: stops and disables the agent on removal.
pub const PRERM: &str = include_str!("../../../packaging/deb/prerm");
/// Maintainer script: reloads systemd; on purge deletes the state and the client secret.
pub const POSTRM: &str = include_str!("../../../packaging/deb/postrm");
/// The MIT licence text.
pub const LICENSE_MIT: &str = include_str!("../../../LICENSE-MIT");
/// The Apache 2.0 licence text.
pub const LICENSE_APACHE: &str = include_str!("../../../LICENSE-APACHE");
/// This crate's README, shipped when the workspace has no root README.
pub const FALLBACK_README: &str = include_str!("../README.md");

/// Where the `.deb` installs the binary; the unit's `ExecStart` runs it.
pub const BINARY_PATH: &str = "/usr/bin/zoho-device";
/// Where the `.deb` installs the unit.
pub const UNIT_PATH: &str = "/lib/systemd/system/zoho-device.service";
/// Where the `.deb` installs the configuration skeleton (a conffile).
pub const CONFIG_PATH: &str = "/etc/zoho-device/config.toml";
/// The Debian documentation directory.
pub const DOC_DIR: &str = "/usr/share/doc/zoho-device";
/// Where the `.deb` installs the man pages (gzipped, one per command).
pub const MAN_DIR: &str = "/usr/share/man/man1";
/// Where bash-completion looks for the completion of `zoho-device`.
pub const BASH_COMPLETION: &str = "/usr/share/bash-completion/completions/zoho-device";
/// Where zsh looks for packaged completions.
pub const ZSH_COMPLETION: &str = "/usr/share/zsh/vendor-completions/_zoho-device";
/// Where fish looks for packaged completions.
pub const FISH_COMPLETION: &str = "/usr/share/fish/vendor_completions.d/zoho-device.fish";
/// Lintian's overrides of this package, each with its reason.
pub const LINTIAN_OVERRIDES: &str = "/usr/share/lintian/overrides/zoho-device";
/// The Debian package name.
pub const DEB_PACKAGE: &str = "zoho-device";
/// The Debian revision of the package of an upstream version (`0.1.0-1`): this packaging is
/// kept apart from the program's releases, as for any package Debian builds from upstream
/// sources, so its changelog is `changelog.Debian.gz`.
pub const DEB_REVISION: &str = "1";
/// The `Maintainer:` field unless `$DEB_MAINTAINER` says otherwise.
pub const DEFAULT_MAINTAINER: &str = "zoho-device developers <maintainers@zoho-device.invalid>";
/// The project's home page.
pub const HOMEPAGE: &str = "https://github.com/zoho-device/zoho-device";

/// What to package.
#[derive(Clone, Debug)]
pub struct PackageSpec<'a> {
    /// The board the binary is for.
    pub board: &'a Board,
    /// The C library it was built against.
    pub libc: Libc,
    /// The built `zoho-device` binary.
    pub binary: &'a Path,
    /// The version (Debian `Version:`, file names).
    pub version: &'a str,
    /// The README shipped in the tarball and in `/usr/share/doc`.
    pub readme: &'a str,
    /// The man pages and shell completions, generated from the program's command line
    /// ([`GeneratedDocs::from_program`]).
    pub docs: &'a GeneratedDocs,
}

/// What the program generates about itself: its man pages and shell completions.
#[derive(Clone, Debug, Default)]
pub struct GeneratedDocs {
    /// `(file name, roff)`: `zoho-device.1`, `zoho-device-login.1`, ...
    pub man_pages: Vec<(String, Vec<u8>)>,
    /// The bash completion script.
    pub bash: Vec<u8>,
    /// The zsh completion function (`_zoho-device`).
    pub zsh: Vec<u8>,
    /// The fish completions.
    pub fish: Vec<u8>,
}

impl GeneratedDocs {
    /// Runs `program` (a `zoho-device` that runs on this machine, e.g. `cargo run -q -p
    /// zoho-device --`: the cross-built board binary cannot run here) to write its man pages
    /// into a scratch directory and print its completions.
    pub fn from_program(program: &[String], scratch: &Path) -> Result<GeneratedDocs, String> {
        let (exe, pre) = program.split_first().ok_or("no program to generate the docs with")?;
        let run = |args: &[&str]| -> Result<Vec<u8>, String> {
            let out = Command::new(exe)
                .args(pre)
                .args(args)
                .output()
                .map_err(|e| format!("cannot run {exe}: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "{} {} failed: {}",
                    program.join(" "),
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            Ok(out.stdout)
        };
        let dir = scratch.join(".man");
        let _ = fs::remove_dir_all(&dir);
        let dir_str = dir.to_str().ok_or("a scratch path that is not UTF-8")?;
        run(&["man", "--out-dir", dir_str])?;
        let mut man_pages = Vec::new();
        for entry in fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))? {
            let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".1") {
                man_pages.push((
                    name,
                    fs::read(entry.path()).map_err(|e| format!("{}: {e}", entry.path().display()))?,
                ));
            }
        }
        let _ = fs::remove_dir_all(&dir);
        man_pages.sort();
        if !man_pages.iter().any(|(n, _)| n == "zoho-device.1") {
            return Err(format!("{} man wrote no zoho-device.1", program.join(" ")));
        }
        Ok(GeneratedDocs {
            man_pages,
            bash: run(&["completions", "bash"])?,
            zsh: run(&["completions", "zsh"])?,
            fish: run(&["completions", "fish"])?,
        })
    }
}

/// What goes into a file of the package.
#[derive(Clone, Debug)]
pub enum Contents {
    /// Copied from a file on disk.
    File(PathBuf),
    /// These bytes.
    Bytes(Vec<u8>),
}

/// One file of a package.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The path relative to the package root (`usr/bin/zoho-device`).
    pub path: String,
    /// Unix permission bits.
    pub mode: u32,
    /// The contents.
    pub contents: Contents,
}

impl Entry {
    fn bytes(path: &str, mode: u32, contents: impl Into<Vec<u8>>) -> Self {
        Entry {
            path: path.to_owned(),
            mode,
            contents: Contents::Bytes(contents.into()),
        }
    }

    fn read(&self) -> io::Result<Vec<u8>> {
        match &self.contents {
            Contents::File(p) => fs::read(p),
            Contents::Bytes(b) => Ok(b.clone()),
        }
    }
}

/// Which program writes the `.deb`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DebBuilder {
    /// Debian's `dpkg-deb --build` (used when installed).
    DpkgDeb,
    /// The `ar` + `tar` writer in this module.
    Builtin,
}

impl DebBuilder {
    /// `dpkg-deb` when it is on `PATH`, else the built-in writer.
    pub fn detect() -> Self {
        if crate::toolchain::which("dpkg-deb").is_some() {
            DebBuilder::DpkgDeb
        } else {
            DebBuilder::Builtin
        }
    }
}

/// The files written by [`package`].
#[derive(Clone, Debug)]
pub struct Packaged {
    /// The `.tar.gz`.
    pub tarball: PathBuf,
    /// The `.deb`.
    pub deb: PathBuf,
}

impl PackageSpec<'_> {
    /// `pi4`, or `pi4-gnu` for a glibc build: the part of file names naming the flavour.
    pub fn flavour(&self) -> String {
        match self.libc {
            Libc::Musl => self.board.name.to_owned(),
            Libc::Gnu => format!("{}-gnu", self.board.name),
        }
    }

    /// `zoho-device-0.1.0-pi4`: the tarball's name without `.tar.gz`, and its top directory.
    pub fn tarball_stem(&self) -> String {
        format!("{DEB_PACKAGE}-{}-{}", self.version, self.flavour())
    }

    /// The Debian version: the program's version and the packaging's revision (`0.1.0-1`).
    pub fn deb_version(&self) -> String {
        format!("{}-{DEB_REVISION}", self.version)
    }

    /// `zoho-device_0.1.0-1_pi4_arm64.deb`: Debian's `name_version_arch` with the board in
    /// between, because two different armhf builds exist (ARMv6 for the Pi Zero, ARMv7).
    pub fn deb_file_name(&self) -> String {
        format!(
            "{DEB_PACKAGE}_{}_{}_{}.deb",
            self.deb_version(),
            self.flavour(),
            self.board.deb_arch
        )
    }

    /// The files of the installed system, relative to `/`.
    pub fn data_entries(&self) -> Vec<Entry> {
        let rel = |p: &str| p.trim_start_matches('/').to_owned();
        let mut entries = vec![
            Entry {
                path: rel(BINARY_PATH),
                mode: 0o755,
                contents: Contents::File(self.binary.to_owned()),
            },
            Entry::bytes(&rel(UNIT_PATH), 0o644, UNIT),
            Entry::bytes(&rel(CONFIG_PATH), 0o644, CONFIG),
            Entry::bytes(&format!("{}/README.md", rel(DOC_DIR)), 0o644, self.readme),
            Entry::bytes(&format!("{}/copyright", rel(DOC_DIR)), 0o644, copyright()),
        ];
        entries.push(Entry::bytes(
            &format!("{}/changelog.Debian.gz", rel(DOC_DIR)),
            0o644,
            gzip(self.changelog().as_bytes()),
        ));
        for (name, page) in &self.docs.man_pages {
            entries.push(Entry::bytes(&format!("{}/{name}.gz", rel(MAN_DIR)), 0o644, gzip(page)));
        }
        entries.push(Entry::bytes(&rel(BASH_COMPLETION), 0o644, self.docs.bash.clone()));
        entries.push(Entry::bytes(&rel(ZSH_COMPLETION), 0o644, self.docs.zsh.clone()));
        entries.push(Entry::bytes(&rel(FISH_COMPLETION), 0o644, self.docs.fish.clone()));
        let mut overrides = LINTIAN_OVERRIDE_NOT_IN_DEBIAN.to_owned();
        if self.libc == Libc::Musl {
            overrides.push_str(LINTIAN_STATIC_OVERRIDE);
        }
        entries.push(Entry::bytes(&rel(LINTIAN_OVERRIDES), 0o644, overrides));
        entries
    }

    /// `/usr/share/doc/zoho-device/changelog.Debian.gz`, uncompressed: one entry for this
    /// build, dated like the archive's files.
    pub fn changelog(&self) -> String {
        let maintainer = std::env::var("DEB_MAINTAINER").unwrap_or_else(|_| DEFAULT_MAINTAINER.to_owned());
        format!(
            "{DEB_PACKAGE} ({deb_version}) unstable; urgency=medium\n\n  \
             * zoho-device {version} for {board} ({target}),\n    \
             packaged by `cargo board package`.\n\n \
             -- {maintainer}  {date}\n",
            deb_version = self.deb_version(),
            version = self.version,
            board = self.board.name,
            target = self.board.target(self.libc),
            date = rfc2822(mtime_for(self.binary)),
        )
    }

    /// The files of the tarball, relative to its top directory.
    pub fn tarball_entries(&self) -> Vec<Entry> {
        vec![
            Entry {
                path: "zoho-device".to_owned(),
                mode: 0o755,
                contents: Contents::File(self.binary.to_owned()),
            },
            Entry::bytes("zoho-device.service", 0o644, UNIT),
            Entry::bytes("config.toml.example", 0o644, CONFIG),
            Entry::bytes("README.md", 0o644, self.readme),
            Entry::bytes("LICENSE-MIT", 0o644, LICENSE_MIT),
            Entry::bytes("LICENSE-APACHE", 0o644, LICENSE_APACHE),
        ]
    }

    /// The `.deb`'s `DEBIAN/` files (control, md5sums, conffiles, maintainer scripts).
    pub fn control_entries(&self, installed_size_kib: u64, md5sums: String) -> Vec<Entry> {
        let mut entries = vec![
            Entry::bytes("control", 0o644, self.control(installed_size_kib)),
            Entry::bytes("md5sums", 0o644, md5sums),
            Entry::bytes("conffiles", 0o644, format!("{CONFIG_PATH}\n")),
            Entry::bytes("postinst", 0o755, POSTINST),
            Entry::bytes("prerm", 0o755, PRERM),
            Entry::bytes("postrm", 0o755, POSTRM),
        ];
        if self.board.isa == Isa::Armv7 {
            entries.push(Entry::bytes("preinst", 0o755, ARMV7_PREINST));
        }
        entries
    }

    /// The `DEBIAN/control` file.
    pub fn control(&self, installed_size_kib: u64) -> String {
        let mut depends = vec!["adduser".to_owned()];
        if self.libc == Libc::Gnu {
            depends.push(format!("libc6 (>= {GLIBC_FLOOR})"));
        }
        let maintainer = std::env::var("DEB_MAINTAINER").unwrap_or_else(|_| DEFAULT_MAINTAINER.to_owned());
        let linkage = match self.libc {
            Libc::Musl => "static musl",
            Libc::Gnu => "glibc",
        };
        let mut control = String::new();
        // Writing to a String cannot fail.
        let _ = write!(
            control,
            "Package: {DEB_PACKAGE}\n\
             Version: {deb_version}\n\
             Architecture: {arch}\n\
             Maintainer: {maintainer}\n\
             Installed-Size: {installed_size_kib}\n\
             Depends: {depends}\n\
             Section: net\n\
             Priority: optional\n\
             Homepage: {HOMEPAGE}\n\
             Description: pair this board with Zoho through the OAuth device flow\n \
             zoho-device pairs a Raspberry Pi-class board, kiosk or TV box with Zoho:\n \
             it shows a code (and a QR) that a person approves on a phone, keeps the\n \
             token fresh as a systemd service, and hands it to local programs.\n \
             .\n \
             Built for {models}\n \
             ({target}, {linkage}).\n",
            deb_version = self.deb_version(),
            arch = self.board.deb_arch,
            depends = depends.join(", "),
            models = self.board.models,
            target = self.board.target(self.libc),
        );
        control
    }
}

/// Refuses an ARMv7 build on an ARMv6 board, where it would die with SIGILL.
const ARMV7_PREINST: &str = "#!/bin/sh\n\
# zoho-device preinst (ARMv7 build): refuse ARMv6 boards, where it would die with SIGILL.\n\
set -e\n\
case \"$(uname -m)\" in\n\
    armv6*)\n\
        echo \"zoho-device: this package is built for ARMv7 (Pi 2, Pi 3 32-bit);\" >&2\n\
        echo \"this board is ARMv6 (Pi Zero, Pi 1): install the pi-zero package instead.\" >&2\n\
        exit 1\n\
        ;;\n\
esac\n\
exit 0\n";

/// `/usr/share/doc/zoho-device/copyright` in Debian's machine-readable format (DEP-5): the MIT
/// text in full, Apache-2.0 by reference to the copy every Debian system has.
pub fn copyright() -> String {
    let mit = LICENSE_MIT
        .lines()
        .skip_while(|l| !l.starts_with("Permission is hereby granted"))
        .map(|l| {
            if l.trim().is_empty() {
                " .".to_owned()
            } else {
                format!(" {l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let holder = LICENSE_MIT
        .lines()
        .find_map(|l| l.trim().strip_prefix("Copyright (c) "))
        .unwrap_or("The zoho-device developers");
    format!(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
         Upstream-Name: {DEB_PACKAGE}\n\
         Source: {HOMEPAGE}\n\
         \n\
         Files: *\n\
         Copyright: {holder}\n\
         License: MIT or Apache-2.0\n\
         \n\
         License: MIT\n\
         {mit}\n\
         \n\
         License: Apache-2.0\n \
         Licensed under the Apache License, Version 2.0 (the \"License\"); you may not\n \
         use this file except in compliance with the License. Unless required by\n \
         applicable law or agreed to in writing, software distributed under the\n \
         License is distributed on an \"AS IS\" BASIS, WITHOUT WARRANTIES OR CONDITIONS\n \
         OF ANY KIND, either express or implied.\n \
         .\n \
         On Debian systems, the full text of the Apache License, Version 2.0 is in\n \
         /usr/share/common-licenses/Apache-2.0.\n"
    )
}

/// The override of lintian's check for an ITP bug closed by a first Debian upload, with its
/// reason.
pub const LINTIAN_OVERRIDE_NOT_IN_DEBIAN: &str = "\
# Not uploaded to Debian: the project builds and publishes this package itself, so its first
# changelog entry has no Intent To Package bug to close.
zoho-device: initial-upload-closes-no-bugs [usr/share/doc/zoho-device/changelog.Debian.gz:1]
";

/// The override of lintian's `statically-linked-binary`, with its reason.
pub const LINTIAN_STATIC_OVERRIDE: &str = "\
# Static musl by design: the one binary runs on every Raspberry Pi OS release and on other
# distributions, with no C library version to match (built with `cargo board build`).
zoho-device: statically-linked-binary [usr/bin/zoho-device]
";

/// `bytes` gzipped as `gzip -9n` does: best compression, no file name, no timestamp (the
/// package is reproducible, and lintian asks for exactly that).
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::GzBuilder::new().mtime(0).write(Vec::new(), Compression::best());
    // Writing into a Vec cannot fail.
    let _ = gz.write_all(bytes);
    gz.finish().unwrap_or_default()
}

/// `DEBIAN/md5sums`: `md5  path` for every file but the conffiles (as dh_md5sums writes it).
pub fn md5sums(data: &[Entry]) -> io::Result<String> {
    let mut out = String::new();
    for entry in data {
        if format!("/{}", entry.path) == CONFIG_PATH {
            continue;
        }
        let digest = md5::compute(entry.read()?);
        let _ = writeln!(out, "{digest:x}  {}", entry.path);
    }
    Ok(out)
}

/// Unix seconds as an RFC 2822 date (`Sun, 06 Dec 2026 00:13:17 +0000`), as changelogs want.
pub fn rfc2822(unix: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix / 86_400;
    let secs = unix % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    #[allow(clippy::cast_possible_truncation)]
    let (weekday, month_name) = (DAYS[(days % 7) as usize], MONTHS[(month - 1) as usize]);
    format!(
        "{weekday}, {day:02} {month_name} {year} {:02}:{:02}:{:02} +0000",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// A copy of the ELF `binary` in `dir` without the sections a shipped binary does not need
/// (`.comment`: compiler and linker versions), made with the toolchain's `rust-objcopy`
/// (LLVM's, which knows every target). Anything that is not ELF is returned as it is.
pub fn without_unneeded_sections(binary: &Path, dir: &Path) -> Result<PathBuf, String> {
    let head = fs::read(binary).map_err(|e| format!("{}: {e}", binary.display()))?;
    if !head.starts_with(b"\x7fELF") {
        return Ok(binary.to_owned());
    }
    let mut objcopy = crate::toolchain::rust_objcopy()
        .ok_or("rust-objcopy not found in the Rust toolchain (rustup ships it in lib/rustlib/HOST/bin)")?;
    let name = objcopy.get_program().to_string_lossy().into_owned();
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let out = dir.join("zoho-device");
    let result = objcopy
        .args(["--remove-section=.comment", "--remove-section=.note.gnu.gold-version"])
        .arg(binary)
        .arg(&out)
        .output()
        .map_err(|e| format!("cannot run {name}: {e}"))?;
    if !result.status.success() {
        return Err(format!(
            "{name} failed on {}: {}",
            binary.display(),
            String::from_utf8_lossy(&result.stderr).trim()
        ));
    }
    // Same modification time: archive dates follow the build, not the packaging.
    if let Ok(modified) = fs::metadata(binary).and_then(|m| m.modified()) {
        let _ = fs::File::options()
            .write(true)
            .open(&out)
            .and_then(|f| f.set_modified(modified));
    }
    Ok(out)
}

/// Writes the `.tar.gz` and the `.deb` for `spec` into `out_dir`.
pub fn package(spec: &PackageSpec<'_>, out_dir: &Path, builder: DebBuilder) -> Result<Packaged, String> {
    fs::create_dir_all(out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let tarball = write_tarball(spec, out_dir).map_err(|e| format!("tarball: {e}"))?;
    let deb = write_deb(spec, out_dir, builder)?;
    Ok(Packaged { tarball, deb })
}

/// Writes `zoho-device-VERSION-BOARD.tar.gz`, everything under one top directory.
pub fn write_tarball(spec: &PackageSpec<'_>, out_dir: &Path) -> io::Result<PathBuf> {
    let stem = spec.tarball_stem();
    let path = out_dir.join(format!("{stem}.tar.gz"));
    let mtime = mtime_for(spec.binary);
    let entries: Vec<Entry> = spec
        .tarball_entries()
        .into_iter()
        .map(|mut e| {
            e.path = format!("{stem}/{}", e.path);
            e
        })
        .collect();
    let gz = tar_gz(&entries, mtime, false)?;
    fs::write(&path, gz)?;
    Ok(path)
}

/// Writes the `.deb` with `builder`.
pub fn write_deb(spec: &PackageSpec<'_>, out_dir: &Path, builder: DebBuilder) -> Result<PathBuf, String> {
    let path = out_dir.join(spec.deb_file_name());
    let data = spec.data_entries();
    let mut installed = 0u64;
    for entry in &data {
        let len = match &entry.contents {
            Contents::File(p) => fs::metadata(p).map_err(|e| format!("{}: {e}", p.display()))?.len(),
            Contents::Bytes(b) => b.len() as u64,
        };
        installed += len.div_ceil(1024);
    }
    let md5sums = md5sums(&data).map_err(|e| format!("md5sums: {e}"))?;
    let control = spec.control_entries(installed, md5sums);
    match builder {
        DebBuilder::DpkgDeb => dpkg_deb_build(&data, &control, out_dir, &path)?,
        DebBuilder::Builtin => {
            let mtime = mtime_for(spec.binary);
            let deb = builtin_deb(&data, &control, mtime).map_err(|e| format!("deb: {e}"))?;
            fs::write(&path, deb).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    Ok(path)
}

/// Stages the tree and runs `dpkg-deb --root-owner-group --build`.
fn dpkg_deb_build(data: &[Entry], control: &[Entry], out_dir: &Path, deb: &Path) -> Result<(), String> {
    let stage = out_dir.join(format!(
        ".stage-{}",
        deb.file_stem()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned())
    ));
    let io_err = |e: io::Error| format!("staging {}: {e}", stage.display());
    if stage.exists() {
        fs::remove_dir_all(&stage).map_err(io_err)?;
    }
    for entry in data {
        write_staged(&stage, entry).map_err(io_err)?;
    }
    for entry in control {
        let mut e = entry.clone();
        e.path = format!("DEBIAN/{}", e.path);
        write_staged(&stage, &e).map_err(io_err)?;
    }
    // dpkg-deb wants 0755 directories whatever the umask was.
    set_dir_modes(&stage).map_err(io_err)?;
    let out = Command::new("dpkg-deb")
        .args(["--root-owner-group", "--build"])
        .arg(&stage)
        .arg(deb)
        .output()
        .map_err(|e| format!("cannot run dpkg-deb: {e}"))?;
    let _ = fs::remove_dir_all(&stage);
    if !out.status.success() {
        return Err(format!(
            "dpkg-deb --build failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

fn write_staged(root: &Path, entry: &Entry) -> io::Result<()> {
    let path = root.join(&entry.path);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    match &entry.contents {
        Contents::File(src) => {
            fs::copy(src, &path)?;
        }
        Contents::Bytes(b) => fs::write(&path, b)?,
    }
    fs::set_permissions(&path, fs::Permissions::from_mode(entry.mode))
}

fn set_dir_modes(dir: &Path) -> io::Result<()> {
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))?;
    for child in fs::read_dir(dir)? {
        let child = child?;
        if child.file_type()?.is_dir() {
            set_dir_modes(&child.path())?;
        }
    }
    Ok(())
}

/// A `.deb` without dpkg: `!<arch>` with `debian-binary`, `control.tar.gz`, `data.tar.gz`.
pub fn builtin_deb(data: &[Entry], control: &[Entry], mtime: u64) -> io::Result<Vec<u8>> {
    let control_tar = tar_gz(control, mtime, true)?;
    let data_tar = tar_gz(data, mtime, true)?;
    let mut ar = b"!<arch>\n".to_vec();
    for (name, body) in [
        ("debian-binary", &b"2.0\n"[..]),
        ("control.tar.gz", &control_tar[..]),
        ("data.tar.gz", &data_tar[..]),
    ] {
        // name/16 mtime/12 uid/6 gid/6 mode/8 size/10 magic/2 — space padded, as GNU ar.
        writeln!(
            ar,
            "{name:<16}{mtime:<12}{:<6}{:<6}{:<8}{:<10}`",
            0,
            0,
            "100644",
            body.len()
        )?;
        ar.extend_from_slice(body);
        if body.len() % 2 == 1 {
            ar.push(b'\n');
        }
    }
    Ok(ar)
}

/// A gzip'd tar of `entries` owned by root; with `dot_prefix`, paths are `./usr/...` and
/// every parent directory gets its own entry, as dpkg writes them.
fn tar_gz(entries: &[Entry], mtime: u64, dot_prefix: bool) -> io::Result<Vec<u8>> {
    let gz = GzEncoder::new(Vec::new(), Compression::best());
    let mut tar = tar::Builder::new(gz);
    let mut dirs_done: Vec<String> = Vec::new();
    let prefix = if dot_prefix { "./" } else { "" };
    if dot_prefix {
        append_dir(&mut tar, "./", mtime)?;
    }
    for entry in entries {
        let mut parent = String::new();
        let components: Vec<&str> = entry.path.split('/').collect();
        for dir in &components[..components.len() - 1] {
            parent.push_str(dir);
            parent.push('/');
            if !dirs_done.contains(&parent) {
                append_dir(&mut tar, &format!("{prefix}{parent}"), mtime)?;
                dirs_done.push(parent.clone());
            }
        }
        let body = entry.read()?;
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(body.len() as u64);
        header.set_mode(entry.mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_username("root")?;
        header.set_groupname("root")?;
        header.set_mtime(mtime);
        set_raw_path(&mut header, &format!("{prefix}{}", entry.path))?;
        tar.append(&header, &body[..])?;
    }
    tar.into_inner()?.finish()
}

fn append_dir<W: Write>(tar: &mut tar::Builder<W>, path: &str, mtime: u64) -> io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_size(0);
    header.set_mode(0o755);
    header.set_uid(0);
    header.set_gid(0);
    header.set_username("root")?;
    header.set_groupname("root")?;
    header.set_mtime(mtime);
    set_raw_path(&mut header, path)?;
    tar.append(&header, io::empty())
}

/// Sets the name field byte for byte and the checksum. `Header::set_path` would normalise
/// `./usr/bin` to `usr/bin`, but dpkg writes (and `dpkg-deb --contents` shows) `./` paths.
fn set_raw_path(header: &mut tar::Header, path: &str) -> io::Result<()> {
    let name = &mut header.as_old_mut().name;
    if path.len() >= name.len() {
        return Err(io::Error::other(format!("path too long for a tar header: {path}")));
    }
    name.fill(0);
    name[..path.len()].copy_from_slice(path.as_bytes());
    header.set_cksum();
    Ok(())
}

/// `$SOURCE_DATE_EPOCH` for reproducible archives, else the binary's modification time.
fn mtime_for(binary: &Path) -> u64 {
    if let Some(epoch) = std::env::var("SOURCE_DATE_EPOCH").ok().and_then(|s| s.parse().ok()) {
        return epoch;
    }
    fs::metadata(binary)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

/// One line per artefact for the terminal.
pub fn describe(packaged: &Packaged) -> String {
    let size = |p: &Path| fs::metadata(p).map_or_else(|_| "?".to_owned(), |m| human_size(m.len()));
    format!(
        "{}  {}\n{}  {}",
        packaged.tarball.display(),
        size(&packaged.tarball),
        packaged.deb.display(),
        size(&packaged.deb)
    )
}
