//! The board catalogue is complete and self-consistent, and the workspace's
//! `.cargo/config.toml` agrees with it.

use std::collections::BTreeSet;
use std::process::Command;

use zoho_device_board::board::{self, BOARDS, Isa, Libc};

use crate::util::have;

#[test]
fn every_board_of_the_issue_is_there() {
    let names: Vec<&str> = BOARDS.iter().map(|b| b.name).collect();
    assert_eq!(
        names,
        [
            "pi-zero", "pi1", "pi2", "pi3-32", "pi3", "pi4", "pi5", "zero2w", "x86_64"
        ]
    );
    let unique: BTreeSet<&str> = names.iter().copied().collect();
    assert_eq!(unique.len(), names.len(), "duplicate board names");
    assert_eq!(board::find("pi4").unwrap().musl_target, "aarch64-unknown-linux-musl");
    assert!(board::find("pi6").is_none());
}

#[test]
fn targets_cpus_and_debian_architectures_match_the_isa() {
    for b in BOARDS {
        let (prefix, deb, cpus): (&str, &str, &[&str]) = match b.isa {
            Isa::Armv6 => ("arm-", "armhf", &["arm1176"]),
            Isa::Armv7 => ("armv7-", "armhf", &["cortex-a7"]),
            Isa::Aarch64 => ("aarch64-", "arm64", &["cortex-a53", "cortex-a72", "cortex-a76"]),
            Isa::X86_64 => ("x86_64-", "amd64", &["qemu64"]),
        };
        assert!(b.musl_target.starts_with(prefix), "{}", b.name);
        assert!(b.gnu_target.starts_with(prefix), "{}", b.name);
        assert!(
            b.musl_target.contains("-linux-musl"),
            "{}: static musl by default",
            b.name
        );
        assert!(b.gnu_target.contains("-linux-gnu"), "{}", b.name);
        assert_eq!(b.deb_arch, deb, "{}", b.name);
        assert!(cpus.contains(&b.qemu_cpu), "{}: {}", b.name, b.qemu_cpu);
        assert!(!b.models.is_empty() && !b.notes.is_empty(), "{}", b.name);
    }
    assert_eq!(board::find("pi-zero").unwrap().qemu_cpu, "arm1176");
    assert_eq!(board::find("pi5").unwrap().qemu_cpu, "cortex-a76");
    let pc = board::find("x86_64").unwrap();
    assert_eq!(
        (pc.musl_target, pc.deb_arch, pc.qemu_cpu),
        ("x86_64-unknown-linux-musl", "amd64", "qemu64")
    );
}

#[test]
fn qemu_is_always_given_a_cpu_and_glibc_builds_a_sysroot() {
    for b in BOARDS {
        let musl = b.qemu_command(Libc::Musl);
        assert_eq!(musl[1..], ["-cpu".to_owned(), b.qemu_cpu.to_owned()], "{}", b.name);
        let gnu = b.qemu_command(Libc::Gnu);
        assert_eq!(gnu[3], "-L");
    }
    let zero = board::find("pi-zero").unwrap();
    assert_eq!(zero.qemu_command(Libc::Musl), ["qemu-arm-static", "-cpu", "arm1176"]);
    assert_eq!(zero.zig_target(Libc::Musl), "arm-unknown-linux-musleabihf");
    assert_eq!(zero.zig_target(Libc::Gnu), "arm-unknown-linux-gnueabihf.2.28");
}

#[test]
fn installed_qemu_knows_every_cpu_model() {
    for isa in [Isa::Armv6, Isa::Aarch64, Isa::X86_64] {
        if !have(isa.qemu_binary()) {
            return;
        }
    }
    for qemu in ["qemu-arm-static", "qemu-aarch64-static", "qemu-x86_64-static"] {
        let out = Command::new(qemu).args(["-cpu", "help"]).output().unwrap();
        let models = String::from_utf8_lossy(&out.stdout).into_owned();
        let models: BTreeSet<&str> = models.split_whitespace().collect();
        for b in BOARDS.iter().filter(|b| b.isa.qemu_binary() == qemu) {
            assert!(models.contains(b.qemu_cpu), "{qemu} has no -cpu {}", b.qemu_cpu);
        }
    }
}

#[test]
fn cargo_config_has_a_cpu_pinned_runner_for_every_target() {
    let config = include_str!("../../../.cargo/config.toml");
    let config: toml::Table = config.parse().unwrap();
    assert_eq!(
        config["alias"]["board"].as_str(),
        Some("run -q -p zoho-device-board --")
    );
    let targets = config["target"].as_table().unwrap();
    // Nothing but per-target sections and the alias: host builds stay untouched.
    let top: BTreeSet<&str> = config.keys().map(String::as_str).collect();
    assert_eq!(top, BTreeSet::from(["alias", "target"]));
    for b in BOARDS {
        for libc in [Libc::Musl, Libc::Gnu] {
            let t = b.target(libc);
            if t == "x86_64-unknown-linux-gnu" {
                // The build machine's own target: a runner here would put every host
                // `cargo test` under qemu.
                assert!(!targets.contains_key(t), "no runner for the host target");
                continue;
            }
            let runner = targets[t]["runner"].as_str().unwrap();
            assert!(runner.starts_with(b.isa.qemu_binary()), "{t}: {runner}");
            assert!(runner.contains(" -cpu "), "{t}: {runner}");
        }
    }
    // The ARMv6 runner must emulate the Pi Zero's CPU, not something newer.
    assert!(
        targets["arm-unknown-linux-musleabihf"]["runner"]
            .as_str()
            .unwrap()
            .ends_with("-cpu arm1176")
    );
    for t in ["arm-unknown-linux-musleabihf", "armv7-unknown-linux-musleabihf"] {
        let flags: Vec<&str> = targets[t]["rustflags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(flags, ["-C", "link-self-contained=no"], "{t}");
    }
}
