//! The board catalogue: which Rust target, qemu CPU model and Debian architecture each
//! Raspberry Pi-class board (and the x86_64 thin clients and mini PCs that run kiosks too)
//! needs.
//!
//! One row per board a person might name, even when several boards share a binary (the Pi 3, 4,
//! 5 and Zero 2 W all run the same AArch64 build); the tool deduplicates targets before building.

use std::fmt;
use std::str::FromStr;

/// The instruction-set family of a board's CPU; decides which binaries run on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// ARMv6 with VFP, hard-float ABI (ARM1176JZF-S: Pi Zero, Zero W, Pi 1).
    Armv6,
    /// ARMv7-A, hard-float ABI (Pi 2, or a Pi 3 running a 32-bit OS).
    Armv7,
    /// ARMv8-A in 64-bit mode (Pi 3/4/5 and Zero 2 W on a 64-bit OS).
    Aarch64,
    /// x86-64 (thin clients, mini PCs, any amd64 PC).
    X86_64,
}

impl Isa {
    /// The qemu-user emulator that runs binaries of this family.
    pub fn qemu_binary(self) -> &'static str {
        match self {
            Isa::Armv6 | Isa::Armv7 => "qemu-arm-static",
            Isa::Aarch64 => "qemu-aarch64-static",
            // Even on an x86_64 build machine: qemu's baseline CPU model proves the binary
            // needs nothing newer than the first x86-64 processors.
            Isa::X86_64 => "qemu-x86_64-static",
        }
    }

    /// Where Debian's cross libc lives (`libc6-armhf-cross` / `libc6-arm64-cross`), for running
    /// glibc builds under qemu with `-L`. Debian's armhf libc is ARMv7: an ARMv6 glibc binary
    /// may die with SIGILL on `-cpu arm1176` because of it, not because of our code.
    pub fn gnu_sysroot(self) -> &'static str {
        match self {
            Isa::Armv6 | Isa::Armv7 => "/usr/arm-linux-gnueabihf",
            Isa::Aarch64 => "/usr/aarch64-linux-gnu",
            // An x86_64 build machine's own glibc.
            Isa::X86_64 => "/",
        }
    }
}

/// The C library a build links against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Libc {
    /// Static musl: one self-contained file, no libc version to match. The default.
    #[default]
    Musl,
    /// Dynamic glibc, pinned to [`GLIBC_FLOOR`] through zig's target suffix.
    Gnu,
}

/// The oldest glibc a `--libc gnu` build asks for: Raspberry Pi OS Buster's 2.28, so the
/// binary also runs on Bullseye (2.31) and Bookworm (2.36).
pub const GLIBC_FLOOR: &str = "2.28";

impl fmt::Display for Libc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Libc::Musl => "musl",
            Libc::Gnu => "gnu",
        })
    }
}

impl FromStr for Libc {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "musl" => Ok(Libc::Musl),
            "gnu" | "glibc" => Ok(Libc::Gnu),
            other => Err(format!("unknown libc `{other}` (expected musl or gnu)")),
        }
    }
}

/// One board of the catalogue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Board {
    /// The name used on the command line (`--board pi4`).
    pub name: &'static str,
    /// The models this row covers, for people.
    pub models: &'static str,
    /// The CPU family.
    pub isa: Isa,
    /// The static musl Rust target (the default build).
    pub musl_target: &'static str,
    /// The glibc Rust target (`--libc gnu`).
    pub gnu_target: &'static str,
    /// The qemu `-cpu` model closest to the board's CPU. Always passed: qemu's default `max`
    /// CPU accepts ARMv7 instructions inside an "ARMv6" binary and hides exactly the bug
    /// that kills a Pi Zero.
    pub qemu_cpu: &'static str,
    /// The Debian architecture of the `.deb` (`dpkg --print-architecture` on the board).
    pub deb_arch: &'static str,
    /// Anything a person flashing the board should know.
    pub notes: &'static str,
}

const ARMV6_MUSL: &str = "arm-unknown-linux-musleabihf";
const ARMV6_GNU: &str = "arm-unknown-linux-gnueabihf";
const ARMV7_MUSL: &str = "armv7-unknown-linux-musleabihf";
const ARMV7_GNU: &str = "armv7-unknown-linux-gnueabihf";
const AARCH64_MUSL: &str = "aarch64-unknown-linux-musl";
const AARCH64_GNU: &str = "aarch64-unknown-linux-gnu";
const X86_64_MUSL: &str = "x86_64-unknown-linux-musl";
const X86_64_GNU: &str = "x86_64-unknown-linux-gnu";

/// Every board the tool knows, in the order `list` prints them.
pub const BOARDS: &[Board] = &[
    Board {
        name: "pi-zero",
        models: "Pi Zero, Zero W, Zero WH",
        isa: Isa::Armv6,
        musl_target: ARMV6_MUSL,
        gnu_target: ARMV6_GNU,
        qemu_cpu: "arm1176",
        deb_arch: "armhf",
        notes: "ARMv6: only this build runs here; it also runs on every 32-bit Pi",
    },
    Board {
        name: "pi1",
        models: "Pi 1 A, B, A+, B+, Compute Module 1",
        isa: Isa::Armv6,
        musl_target: ARMV6_MUSL,
        gnu_target: ARMV6_GNU,
        qemu_cpu: "arm1176",
        deb_arch: "armhf",
        notes: "same binary as pi-zero",
    },
    Board {
        name: "pi2",
        models: "Pi 2 B",
        isa: Isa::Armv7,
        musl_target: ARMV7_MUSL,
        gnu_target: ARMV7_GNU,
        qemu_cpu: "cortex-a7",
        deb_arch: "armhf",
        notes: "ARMv7 build; the pi-zero build also works, a little slower",
    },
    Board {
        name: "pi3-32",
        models: "Pi 3 A+, B, B+ on a 32-bit OS",
        isa: Isa::Armv7,
        musl_target: ARMV7_MUSL,
        gnu_target: ARMV7_GNU,
        qemu_cpu: "cortex-a7",
        deb_arch: "armhf",
        notes: "32-bit Raspberry Pi OS on a Cortex-A53 (qemu-arm has no 32-bit A53 model)",
    },
    Board {
        name: "pi3",
        models: "Pi 3 A+, B, B+ on a 64-bit OS",
        isa: Isa::Aarch64,
        musl_target: AARCH64_MUSL,
        gnu_target: AARCH64_GNU,
        qemu_cpu: "cortex-a53",
        deb_arch: "arm64",
        notes: "same binary as pi4, pi5, zero2w",
    },
    Board {
        name: "pi4",
        models: "Pi 4 B, Pi 400, Compute Module 4",
        isa: Isa::Aarch64,
        musl_target: AARCH64_MUSL,
        gnu_target: AARCH64_GNU,
        qemu_cpu: "cortex-a72",
        deb_arch: "arm64",
        notes: "64-bit Raspberry Pi OS; on a 32-bit OS use pi3-32",
    },
    Board {
        name: "pi5",
        models: "Pi 5, Pi 500, Compute Module 5",
        isa: Isa::Aarch64,
        musl_target: AARCH64_MUSL,
        gnu_target: AARCH64_GNU,
        qemu_cpu: "cortex-a76",
        deb_arch: "arm64",
        notes: "64-bit only in practice",
    },
    Board {
        name: "zero2w",
        models: "Pi Zero 2 W",
        isa: Isa::Aarch64,
        musl_target: AARCH64_MUSL,
        gnu_target: AARCH64_GNU,
        qemu_cpu: "cortex-a53",
        deb_arch: "arm64",
        notes: "512 MB RAM: the static musl build keeps the footprint small",
    },
    Board {
        name: "x86_64",
        models: "x86_64 thin clients, mini PCs and PCs (amd64 Debian, Ubuntu, ...)",
        isa: Isa::X86_64,
        musl_target: X86_64_MUSL,
        gnu_target: X86_64_GNU,
        qemu_cpu: "qemu64",
        deb_arch: "amd64",
        notes: "baseline x86-64 (qemu64): runs on any 64-bit PC, old Atoms and Celerons included",
    },
];

/// Looks a board up by its command-line name.
pub fn find(name: &str) -> Option<&'static Board> {
    BOARDS.iter().find(|b| b.name == name)
}

impl Board {
    /// The Rust target triple for `libc`.
    pub fn target(&self, libc: Libc) -> &'static str {
        match libc {
            Libc::Musl => self.musl_target,
            Libc::Gnu => self.gnu_target,
        }
    }

    /// The `--target` argument for cargo-zigbuild: glibc builds carry zig's glibc-version
    /// suffix (`aarch64-unknown-linux-gnu.2.28`); zigbuild strips it for the output directory.
    pub fn zig_target(&self, libc: Libc) -> String {
        match libc {
            Libc::Musl => self.musl_target.to_owned(),
            Libc::Gnu => format!("{}.{GLIBC_FLOOR}", self.gnu_target),
        }
    }

    /// The command prefix that runs this board's binaries here: the emulator, the CPU model
    /// and, for glibc builds, Debian's cross libc.
    pub fn qemu_command(&self, libc: Libc) -> Vec<String> {
        let mut cmd = vec![
            self.isa.qemu_binary().to_owned(),
            "-cpu".to_owned(),
            self.qemu_cpu.to_owned(),
        ];
        if libc == Libc::Gnu {
            cmd.push("-L".to_owned());
            cmd.push(self.isa.gnu_sysroot().to_owned());
        }
        cmd
    }
}

/// All board names, for error messages.
pub fn names() -> Vec<&'static str> {
    BOARDS.iter().map(|b| b.name).collect()
}
