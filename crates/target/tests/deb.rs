//! The `.deb` and `.tar.gz` built from a fake binary: `dpkg-deb --info`/`--contents` read
//! them, `dpkg -x` unpacks them into a scratch root with every file where the unit expects it.

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use zoho_device_target::board::{self, Libc};
use zoho_device_target::package::{self, BINARY_PATH, CONFIG_PATH, DebBuilder, PackageSpec, UNIT, UNIT_PATH};

use crate::util::{fake_binary, have, scratch, stdout_of};

fn spec<'a>(board: &str, libc: Libc, binary: &'a Path) -> PackageSpec<'a> {
    PackageSpec {
        board: board::find(board).unwrap(),
        libc,
        binary,
        version: "0.1.0",
        readme: "# zoho-device\n",
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
    ] {
        let spec = spec(board, libc, &bin);
        let out = package::package(&spec, &dir, DebBuilder::DpkgDeb).unwrap();
        assert_eq!(out.deb, dir.join(spec.deb_file_name()));
        let info = stdout_of(Command::new("dpkg-deb").arg("--info").arg(&out.deb));
        assert_eq!(info_field(&info, "Package").as_deref(), Some("zoho-device"));
        assert_eq!(info_field(&info, "Version").as_deref(), Some("0.1.0"));
        assert_eq!(info_field(&info, "Architecture").as_deref(), Some(arch), "{board}");
        assert_eq!(info_field(&info, "Depends").as_deref(), Some(depends), "{board}");
        for script in ["postinst", "prerm", "postrm", "conffiles", "control"] {
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
    for member in ["control", "conffiles", "postinst", "prerm", "postrm"] {
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
        "zoho-device_0.1.0_pi-zero_armhf.deb"
    );
    assert_eq!(
        spec("pi2", Libc::Musl, bin).deb_file_name(),
        "zoho-device_0.1.0_pi2_armhf.deb"
    );
    assert_eq!(
        spec("pi4", Libc::Gnu, bin).deb_file_name(),
        "zoho-device_0.1.0_pi4-gnu_arm64.deb"
    );
}
