//! The `.deb` and `.tar.gz` built from a fake binary: `dpkg-deb --info`/`--contents` read
//! them, `dpkg -x` unpacks them into a scratch root with every file where the unit expects it.

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use zoho_device_board::board::{self, Libc};
use zoho_device_board::package::{
    self, BASH_COMPLETION, BINARY_PATH, CONFIG_PATH, DebBuilder, FISH_COMPLETION, GeneratedDocs, LINTIAN_OVERRIDES,
    MAN_DIR, PackageSpec, UNIT, UNIT_PATH, ZSH_COMPLETION,
};

use crate::util::{fake_binary, have, scratch, stdout_of};

/// Stand-ins for what `zoho-device man --out-dir` and `completions` generate.
fn docs() -> &'static GeneratedDocs {
    static DOCS: std::sync::OnceLock<GeneratedDocs> = std::sync::OnceLock::new();
    DOCS.get_or_init(|| GeneratedDocs {
        man_pages: vec![
            ("zoho-device.1".into(), b".TH zoho-device 1\n".to_vec()),
            ("zoho-device-login.1".into(), b".TH zoho-device-login 1\n".to_vec()),
        ],
        bash: b"complete -F _zoho__device zoho-device\n".to_vec(),
        zsh: b"#compdef zoho-device\n".to_vec(),
        fish: b"complete -c zoho-device\n".to_vec(),
    })
}

fn spec<'a>(board: &str, libc: Libc, binary: &'a Path) -> PackageSpec<'a> {
    PackageSpec {
        board: board::find(board).unwrap(),
        libc,
        binary,
        version: "0.1.0",
        readme: "# zoho-device\n",
        docs: docs(),
    }
}

/// The value of `Key=` in the unit's `[Service]` section (the last one when repeated).
fn unit_value(key: &str) -> String {
    UNIT.lines()
        .filter_map(|l| l.strip_prefix(&format!("{key}=")))
        .next_back()
        .unwrap_or_else(|| panic!("no {key}= in the unit"))
        .to_owned()
}

fn info_field(info: &str, field: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.trim_start().strip_prefix(&format!("{field}: ")))
        .map(str::to_owned)
}

#[test]
fn deb_info_names_the_architecture_and_dependencies() {
    if !have("dpkg-deb") {
        return;
    }
    let dir = scratch("deb-info");
    let bin = fake_binary(&dir);
    for (board, libc, arch, depends) in [
        ("pi4", Libc::Musl, "arm64", "adduser"),
        ("pi-zero", Libc::Musl, "armhf", "adduser"),
        ("pi2", Libc::Musl, "armhf", "adduser"),
        ("pi3", Libc::Gnu, "arm64", "adduser, libc6 (>= 2.28)"),
        ("x86_64", Libc::Musl, "amd64", "adduser"),
    ] {
        let spec = spec(board, libc, &bin);
        let out = package::package(&spec, &dir, DebBuilder::DpkgDeb).unwrap();
        assert_eq!(out.deb, dir.join(spec.deb_file_name()));
        let info = stdout_of(Command::new("dpkg-deb").arg("--info").arg(&out.deb));
        assert_eq!(info_field(&info, "Package").as_deref(), Some("zoho-device"));
        assert_eq!(info_field(&info, "Version").as_deref(), Some("0.1.0-1"));
        assert_eq!(info_field(&info, "Architecture").as_deref(), Some(arch), "{board}");
        assert_eq!(info_field(&info, "Depends").as_deref(), Some(depends), "{board}");
        for script in ["postinst", "prerm", "postrm", "conffiles", "control", "md5sums"] {
            assert!(info.contains(&format!(" {script}")), "{board}: no {script} in\n{info}");
        }
        // Only the ARMv7 build refuses ARMv6 boards in preinst.
        assert_eq!(info.contains(" preinst"), board == "pi2", "{board}");
        let conffiles = stdout_of(Command::new("dpkg-deb").arg("--info").arg(&out.deb).arg("conffiles"));
        assert_eq!(conffiles.trim(), CONFIG_PATH);
    }
}

/// `dpkg-deb --contents` lines as (mode, owner, path).
fn contents(deb: &Path) -> BTreeSet<(String, String, String)> {
    stdout_of(Command::new("dpkg-deb").arg("--contents").arg(deb))
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let path = f[5].trim_start_matches('.').to_owned();
            (f[0].to_owned(), f[1].to_owned(), path)
        })
        .collect()
}

#[test]
fn deb_contents_are_owned_by_root_with_the_right_modes() {
    if !have("dpkg-deb") {
        return;
    }
    let dir = scratch("deb-contents");
    let bin = fake_binary(&dir);
    let spec = spec("pi4", Libc::Musl, &bin);
    let out = package::package(&spec, &dir, DebBuilder::DpkgDeb).unwrap();
    let listed = contents(&out.deb);
    for (mode, path) in [
        ("-rwxr-xr-x", BINARY_PATH),
        ("-rw-r--r--", UNIT_PATH),
        ("-rw-r--r--", CONFIG_PATH),
        ("-rw-r--r--", "/usr/share/doc/zoho-device/copyright"),
        ("-rw-r--r--", "/usr/share/doc/zoho-device/README.md"),
        ("-rw-r--r--", "/usr/share/doc/zoho-device/changelog.Debian.gz"),
        ("-rw-r--r--", "/usr/share/man/man1/zoho-device.1.gz"),
        ("-rw-r--r--", "/usr/share/man/man1/zoho-device-login.1.gz"),
        ("-rw-r--r--", BASH_COMPLETION),
        ("-rw-r--r--", ZSH_COMPLETION),
        ("-rw-r--r--", FISH_COMPLETION),
        ("-rw-r--r--", LINTIAN_OVERRIDES),
    ] {
        assert!(
            listed.contains(&(mode.to_owned(), "root/root".to_owned(), path.to_owned())),
            "{mode} root/root {path} not in {listed:#?}"
        );
    }
    assert!(listed.iter().all(|(_, owner, _)| owner == "root/root"));
}

#[test]
fn builtin_writer_makes_the_same_package_as_dpkg_deb() {
    if !have("dpkg-deb") {
        return;
    }
    let dir = scratch("deb-builtin");
    let bin = fake_binary(&dir);
    let spec = spec("pi-zero", Libc::Musl, &bin);
    let by_dpkg = dir.join("dpkg");
    let by_us = dir.join("builtin");
    let a = package::package(&spec, &by_dpkg, DebBuilder::DpkgDeb).unwrap();
    let b = package::package(&spec, &by_us, DebBuilder::Builtin).unwrap();
    assert_eq!(contents(&a.deb), contents(&b.deb));
    let info = |deb: &Path, member: &str| stdout_of(Command::new("dpkg-deb").arg("--info").arg(deb).arg(member));
    for member in ["control", "md5sums", "conffiles", "postinst", "prerm", "postrm"] {
        assert_eq!(info(&a.deb, member), info(&b.deb, member), "{member}");
    }
    // Both unpack to identical files.
    let (ra, rb) = (dir.join("root-a"), dir.join("root-b"));
    stdout_of(Command::new("dpkg").arg("-x").arg(&a.deb).arg(&ra));
    stdout_of(Command::new("dpkg").arg("-x").arg(&b.deb).arg(&rb));
    for path in [BINARY_PATH, UNIT_PATH, CONFIG_PATH] {
        let rel = path.trim_start_matches('/');
        assert_eq!(fs::read(ra.join(rel)).unwrap(), fs::read(rb.join(rel)).unwrap());
    }
}

#[test]
fn unpacked_files_are_where_the_unit_expects_them() {
    if !have("dpkg-deb") || !have("dpkg") {
        return;
    }
    let dir = scratch("deb-install");
    let bin = fake_binary(&dir);
    let spec = spec("pi4", Libc::Musl, &bin);
    let out = package::package(&spec, &dir.join("out"), DebBuilder::detect()).unwrap();
    let root = dir.join("root");
    stdout_of(Command::new("dpkg").arg("-x").arg(&out.deb).arg(&root));
    let at = |p: &str| root.join(p.trim_start_matches('/'));

    // ExecStart runs the installed binary, executable, with the agent subcommand.
    let exec = unit_value("ExecStart");
    let mut words = exec.split_whitespace();
    let program = words.next().unwrap();
    assert_eq!(program, BINARY_PATH);
    assert_eq!(words.collect::<Vec<_>>(), ["agent"]);
    let mode = fs::metadata(at(program)).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o755);
    assert_eq!(fs::read(at(program)).unwrap(), fs::read(&bin).unwrap());

    // The unit itself, byte for byte, where systemd looks for packaged units.
    assert_eq!(fs::read_to_string(at(UNIT_PATH)).unwrap(), UNIT);
    assert!(UNIT_PATH.starts_with("/lib/systemd/system/"));

    // The credential's source lives in the directory the package creates for the config.
    let cred = unit_value("LoadCredential");
    let (name, source) = cred.split_once(':').unwrap();
    assert_eq!(name, "zoho-client-secret");
    let source_dir = Path::new(source).parent().unwrap();
    assert_eq!(Some(source_dir), Path::new(CONFIG_PATH).parent());
    assert!(at(source_dir.to_str().unwrap()).is_dir());
    assert!(at(CONFIG_PATH).is_file());
    // The package never ships a secret.
    assert!(!at(source).exists());

    // The token file the service is told about is inside its state directory.
    let state = unit_value("StateDirectory");
    assert_eq!(state, "zoho-device");
    assert_eq!(
        unit_value("Environment"),
        format!("ZOHO_TOKEN_FILE=%S/{state}/token.json")
    );
    let config = fs::read_to_string(at(CONFIG_PATH)).unwrap();
    assert!(config.contains("/var/lib/zoho-device/token.json"));
}

#[test]
fn unit_is_hardened_notify_service() {
    for (key, value) in [
        ("Type", "notify"),
        ("NotifyAccess", "main"),
        ("ExecStart", "/usr/bin/zoho-device agent"),
        ("StateDirectory", "zoho-device"),
        ("LoadCredential", "zoho-client-secret:/etc/zoho-device/client-secret"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("User", "zoho-device"),
        ("RuntimeDirectory", "zoho-device"),
        ("DevicePolicy", "closed"),
        ("WantedBy", "multi-user.target"),
    ] {
        assert_eq!(unit_value(key), value, "{key}");
    }
    assert!(unit_value("WatchdogSec").ends_with('s'));
    // A secret never travels in the environment of the unit.
    assert!(!UNIT.contains("ZOHO_CLIENT_SECRET"));
}

#[test]
fn maintainer_scripts_are_valid_sh_and_never_start_the_agent() {
    for (name, script) in [
        ("postinst", package::POSTINST),
        ("prerm", package::PRERM),
        ("postrm", package::POSTRM),
    ] {
        assert!(script.starts_with("#!/bin/sh\n"), "{name}");
        let out = Command::new("sh").arg("-n").arg("-c").arg(script).output().unwrap();
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        // Commands, not the message telling the admin what to run.
        for line in script.lines().map(str::trim).filter(|l| l.starts_with("systemctl ")) {
            let words: Vec<&str> = line.split_whitespace().collect();
            assert!(
                !words.contains(&"start") && !words.contains(&"enable"),
                "{name} must not start or enable the agent: {line}"
            );
        }
    }
    assert!(package::POSTINST.contains("adduser --system"));
}

#[test]
fn tarball_holds_binary_unit_config_readme_and_licences() {
    let dir = scratch("tarball");
    let bin = fake_binary(&dir);
    let spec = spec("pi-zero", Libc::Musl, &bin);
    let path = package::write_tarball(&spec, &dir).unwrap();
    assert_eq!(path.file_name().unwrap(), "zoho-device-0.1.0-pi-zero.tar.gz");
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(fs::File::open(&path).unwrap()));
    let mut found = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mode = entry.header().mode().unwrap();
        let mut body = Vec::new();
        entry.read_to_end(&mut body).unwrap();
        if name.ends_with("/zoho-device") {
            assert_eq!(mode, 0o755);
            assert_eq!(body, fs::read(&bin).unwrap());
        }
        found.push(name);
    }
    let stem = "zoho-device-0.1.0-pi-zero";
    for file in [
        "zoho-device",
        "zoho-device.service",
        "config.toml.example",
        "README.md",
        "LICENSE-MIT",
        "LICENSE-APACHE",
    ] {
        assert!(found.contains(&format!("{stem}/{file}")), "{file} not in {found:?}");
    }
}

#[test]
fn deb_file_names_tell_the_two_armhf_builds_apart() {
    let bin = Path::new("/nonexistent");
    assert_eq!(
        spec("pi-zero", Libc::Musl, bin).deb_file_name(),
        "zoho-device_0.1.0-1_pi-zero_armhf.deb"
    );
    assert_eq!(
        spec("pi2", Libc::Musl, bin).deb_file_name(),
        "zoho-device_0.1.0-1_pi2_armhf.deb"
    );
    assert_eq!(
        spec("pi4", Libc::Gnu, bin).deb_file_name(),
        "zoho-device_0.1.0-1_pi4-gnu_arm64.deb"
    );
}

#[test]
fn man_pages_completions_changelog_and_md5sums_unpack_as_debian_expects() {
    if !have("dpkg-deb") || !have("dpkg") {
        return;
    }
    let dir = scratch("deb-docs");
    let bin = fake_binary(&dir);
    let spec = spec("pi4", Libc::Musl, &bin);
    let out = package::package(&spec, &dir.join("out"), DebBuilder::detect()).unwrap();
    let root = dir.join("root");
    stdout_of(Command::new("dpkg").arg("-x").arg(&out.deb).arg(&root));
    let at = |p: &str| root.join(p.trim_start_matches('/'));
    let gunzip = |p: &Path| {
        let mut s = String::new();
        flate2::read::GzDecoder::new(fs::File::open(p).unwrap())
            .read_to_string(&mut s)
            .unwrap();
        s
    };
    // A page per command, gzipped (gzip -9n: no name, no timestamp), byte for byte the roff.
    for (name, page) in &docs().man_pages {
        let gz = at(&format!("{MAN_DIR}/{name}.gz"));
        let raw = fs::read(&gz).unwrap();
        assert_eq!(&raw[4..8], &[0, 0, 0, 0], "{name}: gzip timestamp must be 0");
        assert_eq!(raw[3] & 0x08, 0, "{name}: no file name in the gzip header");
        assert_eq!(gunzip(&gz).as_bytes(), &page[..]);
    }
    assert_eq!(fs::read(at(BASH_COMPLETION)).unwrap(), docs().bash);
    assert_eq!(fs::read(at(ZSH_COMPLETION)).unwrap(), docs().zsh);
    assert_eq!(fs::read(at(FISH_COMPLETION)).unwrap(), docs().fish);

    // The changelog names this version and has a signature line dpkg-parsechangelog accepts.
    let changelog = gunzip(&at("/usr/share/doc/zoho-device/changelog.Debian.gz"));
    assert!(
        changelog.starts_with("zoho-device (0.1.0-1) unstable; urgency=medium\n"),
        "{changelog}"
    );
    assert!(
        changelog
            .lines()
            .filter(|l| !l.starts_with(" -- "))
            .all(|l| l.len() <= 80),
        "{changelog}"
    );
    let sig = changelog.lines().find(|l| l.starts_with(" -- ")).unwrap();
    assert!(sig.ends_with(" +0000") && sig.contains(">  "), "{sig}");

    // DEP-5 copyright: Apache-2.0 by reference to common-licenses, not its full text.
    let copyright = fs::read_to_string(at("/usr/share/doc/zoho-device/copyright")).unwrap();
    assert!(copyright.starts_with("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"));
    assert!(copyright.contains("License: MIT or Apache-2.0\n"));
    assert!(copyright.contains("/usr/share/common-licenses/Apache-2.0"));
    assert!(
        !copyright.contains("TERMS AND CONDITIONS FOR USE, REPRODUCTION"),
        "no full Apache text"
    );

    // md5sums: every file but the conffile, each sum right (md5sum -c agrees).
    let md5 = stdout_of(Command::new("dpkg-deb").arg("--info").arg(&out.deb).arg("md5sums"));
    let listed: Vec<&str> = md5.lines().map(|l| l.split_once("  ").unwrap().1).collect();
    assert!(listed.contains(&"usr/bin/zoho-device"), "{md5}");
    assert!(listed.contains(&"usr/share/man/man1/zoho-device-login.1.gz"), "{md5}");
    assert!(
        !listed.iter().any(|p| format!("/{p}") == CONFIG_PATH),
        "conffiles are not listed"
    );
    if have("md5sum") {
        fs::write(root.join("md5sums"), &md5).unwrap();
        stdout_of(
            Command::new("md5sum")
                .arg("-c")
                .arg("--quiet")
                .arg("md5sums")
                .current_dir(&root),
        );
    }

    // The static-binary override is there for musl builds only, with its reason.
    let overrides = fs::read_to_string(at(LINTIAN_OVERRIDES)).unwrap();
    assert!(overrides.contains("zoho-device: statically-linked-binary"));
    assert!(overrides.lines().any(|l| l.starts_with('#') && l.contains("musl")));
    let gnu = spec_gnu(&bin);
    let gnu_overrides = gnu
        .data_entries()
        .into_iter()
        .find(|e| format!("/{}", e.path) == LINTIAN_OVERRIDES)
        .map(|e| match e.contents {
            package::Contents::Bytes(b) => String::from_utf8(b).unwrap(),
            package::Contents::File(_) => unreachable!(),
        })
        .unwrap();
    assert!(!gnu_overrides.contains("statically-linked-binary"), "{gnu_overrides}");
    // Every override says why, on the comment lines just above it.
    for text in [&overrides, &gnu_overrides] {
        let lines: Vec<&str> = text.lines().collect();
        for (i, l) in lines.iter().enumerate().filter(|(_, l)| l.starts_with("zoho-device: ")) {
            assert!(i > 0 && lines[i - 1].starts_with("# "), "no reason above {l}");
        }
    }
}

fn spec_gnu(bin: &Path) -> PackageSpec<'_> {
    spec("pi4", Libc::Gnu, bin)
}

#[test]
fn maintainer_scripts_use_the_debian_systemd_helpers() {
    for (name, script) in [
        ("postinst", package::POSTINST),
        ("prerm", package::PRERM),
        ("postrm", package::POSTRM),
    ] {
        // systemctl only for daemon-reload; everything else through deb-systemd-*.
        for line in script.lines().map(str::trim).filter(|l| l.starts_with("systemctl")) {
            assert!(line.contains("daemon-reload"), "{name}: {line}");
        }
        assert!(script.contains("deb-systemd-"), "{name}");
    }
    assert!(package::POSTINST.contains("deb-systemd-invoke try-restart"));
    assert!(
        !package::POSTINST.contains("deb-systemd-helper enable"),
        "never enabled by the package"
    );
    assert!(package::PRERM.contains("deb-systemd-invoke stop"));
    assert!(package::POSTRM.contains("deb-systemd-helper purge"));
}

#[test]
fn changelog_dates_are_rfc_2822() {
    assert_eq!(package::rfc2822(0), "Thu, 01 Jan 1970 00:00:00 +0000");
    assert_eq!(package::rfc2822(1_796_516_397), "Sun, 06 Dec 2026 00:19:57 +0000");
    assert_eq!(package::rfc2822(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
}

#[test]
fn control_description_lines_fit_80_columns() {
    let bin = Path::new("/nonexistent");
    for b in board::BOARDS {
        let control = spec(b.name, Libc::Musl, bin).control(1000);
        for line in control.lines().skip_while(|l| !l.starts_with("Description:")).skip(1) {
            assert!(line.len() <= 80, "{}: {} columns: {line}", b.name, line.len());
        }
    }
}

#[test]
fn the_packaged_binary_loses_its_comment_section_and_still_runs() {
    // This test binary is an ELF with a `.comment` naming the compiler, as a board build has.
    let me = std::env::current_exe().unwrap();
    let before = elf64_section_names(&fs::read(&me).unwrap());
    if !before.iter().any(|n| n == ".comment") {
        eprintln!("skipped: this test binary has no .comment to remove ({before:?})");
        return;
    }
    let dir = scratch("objcopy");
    let out = package::without_unneeded_sections(&me, &dir).unwrap();
    assert_ne!(out, me);
    let after = elf64_section_names(&fs::read(&out).unwrap());
    assert!(
        !after.iter().any(|n| n == ".comment"),
        ".comment is still there: {after:?}"
    );
    assert!(after.iter().any(|n| n == ".text"), "{after:?}");
    // Everything else is intact: the copy runs and lists this very test.
    let list = stdout_of(Command::new(&out).args(["--list", "the_packaged_binary_loses"]));
    assert!(
        list.contains("the_packaged_binary_loses_its_comment_section_and_still_runs"),
        "{list}"
    );
    // Anything that is not ELF (a script) is packaged as it is.
    let script = fake_binary(&dir);
    assert_eq!(package::without_unneeded_sections(&script, &dir).unwrap(), script);
}

/// The section names of a little-endian 64-bit ELF file (what `readelf -S` lists).
fn elf64_section_names(elf: &[u8]) -> Vec<String> {
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(elf[o..o + 4].try_into().unwrap()) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap()) as usize;
    assert!(
        elf.starts_with(b"\x7fELF") && elf[4] == 2 && elf[5] == 1,
        "not a 64-bit LE ELF"
    );
    let (shoff, shentsize, shnum, shstrndx) = (u64_at(0x28), u16_at(0x3a), u16_at(0x3c), u16_at(0x3e));
    let header = |i: usize| shoff + i * shentsize;
    let strtab = u64_at(header(shstrndx) + 0x18);
    (0..shnum)
        .map(|i| {
            let start = strtab + u32_at(header(i));
            let end = start + elf[start..].iter().position(|&b| b == 0).unwrap();
            String::from_utf8_lossy(&elf[start..end]).into_owned()
        })
        .collect()
}
