//! A flashable SD-card image for a Raspberry Pi 3/4 with zoho-device inside, and the test that
//! boots it under `qemu-system-aarch64`.
//!
//! The image is Debian bookworm arm64 from Debian's packages only, built the way Debian's own
//! Raspberry Pi images are: `linux-image-arm64` and `raspi-firmware` (non-free-firmware) fill a
//! FAT boot partition (firmware, device trees, `config.txt`, `cmdline.txt`, kernel, initrd);
//! an ext4 root holds the system, our `.deb` and the agent, enabled. Files a person puts on the
//! FAT partition (settings, client secret, hostname, Wi-Fi) are moved into place at boot by
//! `packaging/image/zoho-device-firstboot`, which also grows the root to the card.
//!
//! Steps and where the time goes (two cores, arm64 under qemu-user binfmt):
//! - the root file system (`mmdebstrap`) is cached as a tarball keyed by everything that goes
//!   into it (suite, packages, initramfs settings), so it is built once (about five minutes:
//!   the initramfs is limited to a module list, see `packaging/image/initramfs-hook`);
//! - the `.deb` is installed into a copy with `dpkg -i` in a chroot (mmdebstrap's `--include`
//!   cannot take a local `.deb`), then the image's own files are added;
//! - the partitions are made as files (`mkfs.vfat -C` + `mcopy`, `mkfs.ext4 -d`) and copied
//!   behind an MBR written by `sfdisk`: no loop device, no mount;
//! - `zstd -10` compresses it (Raspberry Pi Imager takes it, as `zstdcat | dd` does): 17 s for
//!   149 MiB here, where `xz -3` took 242 s for 132 MiB (`--xz` when the smaller file matters).
//!
//! The boot test ([`boot_test`]) puts a configuration for the simulator on a copy's boot
//! partition, plus a test-only socket-activated `systemd-socket-proxyd` that forwards the
//! guest's 127.0.0.1:PORT to the host's loopback (10.0.2.2 in qemu's user-mode network), boots
//! it, reads the QR code off the emulated screen (`screendump`), approves it at the simulator,
//! waits for the paired screen, reboots and checks that the device is still paired without a
//! new code.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::board::Board;
use crate::build::{Workspace, human_size};

/// The Debian release the image is built from.
pub const SUITE: &str = "bookworm";
/// Archive components: `raspi-firmware` and the Wi-Fi firmware are in non-free-firmware.
pub const COMPONENTS: &str = "main non-free-firmware";
/// The packages of the root file system (besides mmdebstrap's minbase).
pub const PACKAGES: &[&str] = &[
    "systemd",
    "systemd-sysv",
    "systemd-resolved",
    "systemd-timesyncd",
    "udev",
    "dbus",
    "kmod",
    "initramfs-tools",
    "linux-image-arm64",
    "raspi-firmware",
    "firmware-brcm80211",
    "wpasupplicant",
    "adduser",
    "ca-certificates",
    "fdisk",
    "e2fsprogs",
    "netbase",
];

/// Files dpkg leaves out of the root file system (`--dpkgopt`): documentation other than the
/// copyright files, and translations (about 50 MB).
pub const PATH_EXCLUDES: &[&str] = &[
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
    "path-include=/usr/share/locale/locale.alias",
];

/// Kernel module directories (under `lib/modules/VERSION/kernel/`) dpkg leaves out: hardware
/// no Raspberry Pi has (PCIe GPUs, InfiniBand, data-centre network cards, TV tuners).
pub const MODULE_EXCLUDES: &[&str] = &[
    "drivers/media",
    "drivers/infiniband",
    "drivers/gpu/drm/amd",
    "drivers/gpu/drm/nouveau",
    "drivers/gpu/drm/radeon",
    "sound/pci",
    "drivers/net/ethernet/mellanox",
    "drivers/net/ethernet/intel",
    "drivers/net/ethernet/chelsio",
    "drivers/net/ethernet/qlogic",
    "drivers/net/ethernet/cavium",
    "drivers/net/ethernet/marvell",
    "drivers/net/ethernet/huawei",
    "drivers/net/ethernet/netronome",
    "drivers/net/ethernet/sfc",
];

/// `--dpkgopt` values: [`PATH_EXCLUDES`] and [`MODULE_EXCLUDES`] (the kernel package installs
/// to `/lib/modules`, which merged-/usr makes `/usr/lib/modules`: both spellings).
pub fn dpkg_options() -> Vec<String> {
    let mut opts: Vec<String> = PATH_EXCLUDES.iter().map(|s| (*s).to_owned()).collect();
    for dir in MODULE_EXCLUDES {
        for prefix in ["/lib", "/usr/lib"] {
            opts.push(format!("path-exclude={prefix}/modules/*/kernel/{dir}/*"));
        }
    }
    opts
}

/// The FAT boot partition's label (the one Debian's Raspberry Pi images use).
pub const BOOT_LABEL: &str = "RASPIFIRM";
/// The root partition's label; `cmdline.txt` and `fstab` find it by this.
pub const ROOT_LABEL: &str = "root";
/// Size of the FAT boot partition, MiB: firmware, device trees, one kernel and initrd (about
/// 60 MiB) with room for a kernel update's copy.
pub const BOOT_MIB: u64 = 128;
/// The partitions start at 1 MiB (SD-card erase-block alignment).
const FIRST_LBA: u64 = 2048;

const INITRAMFS_HOOK: &str = include_str!("../../../packaging/image/initramfs-hook");
const INITRAMFS_CONF: &str = include_str!("../../../packaging/image/initramfs.conf");
const FIRSTBOOT: &str = include_str!("../../../packaging/image/zoho-device-firstboot");
const FIRSTBOOT_UNIT: &str = include_str!("../../../packaging/image/zoho-device-firstboot.service");
const AGENT_DROPIN: &str = include_str!("../../../packaging/image/agent-image.conf");
const FSTAB: &str = include_str!("../../../packaging/image/fstab");
const WIRED: &str = include_str!("../../../packaging/image/wired.network");
const WIRELESS: &str = include_str!("../../../packaging/image/wireless.network");
const BOOT_README: &str = include_str!("../../../packaging/image/boot-README.txt");
const TOML_EXAMPLE: &str = include_str!("../../../packaging/image/zoho-device.toml.example");
const NETWORK_EXAMPLE: &str = include_str!("../../../packaging/image/zoho-device-network.txt.example");
const PROXY_SOCKET: &str = include_str!("../../../packaging/image/test/zoho-device-test-proxy.socket");
const PROXY_SERVICE: &str = include_str!("../../../packaging/image/test/zoho-device-test-proxy.service");
const TEST_LOGIND: &str = include_str!("../../../packaging/image/test/logind-power-key-reboots.conf");

/// The host tools, each with the Debian package that has it.
pub const HOST_TOOLS: &[(&str, &str)] = &[
    ("mmdebstrap", "mmdebstrap"),
    ("mkfs.vfat", "dosfstools"),
    ("mcopy", "mtools"),
    ("sfdisk", "fdisk"),
    ("mkfs.ext4", "e2fsprogs"),
    ("debugfs", "e2fsprogs"),
    ("xz", "xz-utils"),
    ("zstd", "zstd"),
    ("qemu-aarch64-static", "qemu-user-static"),
    ("update-binfmts", "binfmt-support"),
];

/// What the initramfs prints at the start of every boot (the kernel's banner is below the
/// console's log level).
const BOOT_MARK: &str = "Loading, please wait";
/// What the kernel prints once systemd has unmounted everything and asks for a reboot.
const RESTART_MARK: &str = "reboot: Restarting system";

/// One timed step, printed as it ends.
#[derive(Clone, Debug)]
pub struct Timed {
    /// What was done.
    pub name: String,
    /// How long it took.
    pub elapsed: Duration,
    /// What came out.
    pub detail: String,
}

impl Timed {
    /// The printed line.
    pub fn line(&self) -> String {
        format!(
            "  ok    {:<34} {:>7.1} s  {}",
            self.name,
            self.elapsed.as_secs_f64(),
            self.detail
        )
    }
}

/// Runs `f`, prints its line and keeps it.
fn step<T>(log: &mut Vec<Timed>, name: &str, f: impl FnOnce() -> Result<(T, String), String>) -> Result<T, String> {
    let started = Instant::now();
    match f() {
        Ok((value, detail)) => {
            let t = Timed {
                name: name.to_owned(),
                elapsed: started.elapsed(),
                detail,
            };
            println!("{}", t.line());
            log.push(t);
            Ok(value)
        }
        Err(e) => {
            println!("  FAIL  {:<34} {:>7.1} s  {e}", name, started.elapsed().as_secs_f64());
            Err(format!("{name}: {e}"))
        }
    }
}

/// Prints the total of the steps.
pub fn print_total(log: &[Timed]) {
    let total: Duration = log.iter().map(|t| t.elapsed).sum();
    println!("  total {:>43.1} s", total.as_secs_f64());
}

/// Runs a command; its output is shown only when it fails.
fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let tail: Vec<&str> = stdout.lines().chain(stderr.lines()).collect();
        let tail = tail[tail.len().saturating_sub(25)..].join("\n");
        return Err(format!("{cmd:?} failed ({}):\n{tail}", out.status));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The host tools that are missing, as the packages to install.
pub fn missing_tools() -> Vec<&'static str> {
    let mut pkgs: Vec<&str> = HOST_TOOLS
        .iter()
        .filter(|(tool, _)| crate::toolchain::which(tool).is_none() && !Path::new("/usr/sbin").join(tool).exists())
        .map(|(_, pkg)| *pkg)
        .collect();
    pkgs.dedup();
    pkgs
}

/// Fails unless this runs as root with the host tools installed, and makes sure arm64 programs
/// run through binfmt_misc (mounting it and enabling qemu-aarch64 when needed).
fn check_host(extra: &[(&str, &str)]) -> Result<String, String> {
    if !is_root() {
        return Err(
            "building and booting an image needs root (mmdebstrap --mode=root, chroot, dpkg): run it with sudo".into(),
        );
    }
    let mut missing = missing_tools();
    for (tool, pkg) in extra {
        if crate::toolchain::which(tool).is_none() {
            missing.push(pkg);
        }
    }
    if !missing.is_empty() {
        missing.dedup();
        return Err(format!("missing host tools: apt-get install {}", missing.join(" ")));
    }
    let binfmt = Path::new("/proc/sys/fs/binfmt_misc");
    if !binfmt.join("status").exists() {
        run(Command::new("mount")
            .args(["-t", "binfmt_misc", "binfmt_misc"])
            .arg(binfmt))?;
    }
    if !binfmt.join("qemu-aarch64").exists() {
        run(Command::new("update-binfmts").args(["--enable", "qemu-aarch64"]))?;
    }
    let status = fs::read_to_string(binfmt.join("qemu-aarch64")).unwrap_or_default();
    if !status.starts_with("enabled") {
        return Err("binfmt_misc has no enabled qemu-aarch64 entry: update-binfmts --enable qemu-aarch64".into());
    }
    Ok("root, tools, binfmt qemu-aarch64".to_owned())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The cache key of the root file system: everything that decides its contents.
pub fn rootfs_key() -> String {
    let text = format!(
        "{SUITE}\n{COMPONENTS}\n{}\n{}\n{INITRAMFS_HOOK}\n{INITRAMFS_CONF}",
        PACKAGES.join(","),
        dpkg_options().join("\n")
    );
    format!("{:x}", md5::compute(text))[..16].to_owned()
}

/// How to build an image.
#[derive(Clone, Debug)]
pub struct ImageOptions<'a> {
    /// The board (its name goes into the file name).
    pub board: &'a Board,
    /// The arm64 `.deb` to install.
    pub deb: PathBuf,
    /// The version in the file name.
    pub version: String,
    /// Where the image goes.
    pub out_dir: PathBuf,
    /// Where the cached root file system and the scratch files go.
    pub work_dir: PathBuf,
    /// Build the root file system again even when cached.
    pub rebuild_rootfs: bool,
    /// Use this root file system tarball (an earlier build's) instead of the cache.
    pub rootfs: Option<PathBuf>,
    /// `.img.xz` (xz -3: 12 % smaller, fifteen times slower here) instead of `.img.zst`.
    pub xz: bool,
}

/// What was built.
#[derive(Clone, Debug)]
pub struct BuiltImage {
    /// The compressed image.
    pub path: PathBuf,
    /// Its uncompressed size in bytes.
    pub raw_size: u64,
    /// Its compressed size in bytes.
    pub compressed_size: u64,
}

/// Builds `dist/zoho-device_VERSION_BOARD.img.zst` (or `.img.xz`).
pub fn build_image(opts: &ImageOptions<'_>, log: &mut Vec<Timed>) -> Result<BuiltImage, String> {
    step(log, "host tools", || check_host(&[]).map(|d| ((), d)))?;
    fs::create_dir_all(&opts.work_dir).map_err(|e| format!("{}: {e}", opts.work_dir.display()))?;
    let key = rootfs_key();
    let tarball = opts
        .rootfs
        .clone()
        .unwrap_or_else(|| opts.work_dir.join(format!("rootfs-{SUITE}-arm64-{key}.tar")));
    step(log, "root file system (mmdebstrap)", || {
        if opts.rootfs.is_some() {
            return Ok(((), format!("given {}", tarball.display())));
        }
        if tarball.exists() && !opts.rebuild_rootfs {
            return Ok(((), format!("cached {}", tarball.display())));
        }
        build_rootfs(&opts.work_dir, &tarball)?;
        let size = fs::metadata(&tarball).map(|m| m.len()).unwrap_or(0);
        Ok(((), format!("built {} ({})", tarball.display(), human_size(size))))
    })?;
    let scratch = opts.work_dir.join(format!("build-{}", opts.board.name));
    let root = scratch.join("root");
    let firmware = scratch.join("firmware");
    step(log, "unpack root file system", || {
        remove_tree(&scratch)?;
        fs::create_dir_all(&root).map_err(|e| e.to_string())?;
        run(Command::new("tar")
            .args(["--numeric-owner", "--xattrs", "--xattrs-include=*", "-xpf"])
            .arg(&tarball)
            .arg("-C")
            .arg(&root))?;
        Ok(((), root.display().to_string()))
    })?;
    step(log, "install the .deb, enable the agent", || {
        customise(&root, &opts.deb).map(|d| ((), d))
    })?;
    let raw = scratch.join(format!("zoho-device_{}_{}.img", opts.version, opts.board.name));
    let raw_size = step(log, "assemble partitions (no loop mounts)", || {
        // The firmware directory becomes the FAT partition; the root keeps an empty mount point.
        fs::rename(root.join("boot/firmware"), &firmware).map_err(|e| e.to_string())?;
        fs::create_dir(root.join("boot/firmware")).map_err(|e| e.to_string())?;
        for (name, text) in [
            ("zoho-device-README.txt", BOOT_README),
            ("zoho-device.toml.example", TOML_EXAMPLE),
            ("zoho-device-network.txt.example", NETWORK_EXAMPLE),
        ] {
            fs::write(firmware.join(name), crlf(text)).map_err(|e| e.to_string())?;
        }
        let size = assemble(&scratch, &firmware, &root, &raw)?;
        Ok((size, human_size(size)))
    })?;
    if raw_size >= 1_000_000_000 {
        return Err(format!("the image is {raw_size} bytes, over the 1 GB budget"));
    }
    fs::create_dir_all(&opts.out_dir).map_err(|e| format!("{}: {e}", opts.out_dir.display()))?;
    let (ext, program, args): (&str, &str, &[&str]) = if opts.xz {
        ("xz", "xz", &["-3", "-T0", "-c"])
    } else {
        ("zst", "zstd", &["-q", "-10", "-T0", "-c"])
    };
    let out = opts
        .out_dir
        .join(format!("zoho-device_{}_{}.img.{ext}", opts.version, opts.board.name));
    let compressed_size = step(
        log,
        &format!("compress ({program} {})", args[..args.len() - 1].join(" ")),
        || {
            let tmp = out.with_extension(format!("{ext}.part"));
            let file = fs::File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
            let status = Command::new(program)
                .args(args)
                .arg(&raw)
                .stdout(file)
                .status()
                .map_err(|e| format!("cannot run {program}: {e}"))?;
            if !status.success() {
                return Err(format!("{program} failed ({status})"));
            }
            fs::rename(&tmp, &out).map_err(|e| e.to_string())?;
            let size = fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
            Ok((size, format!("{} ({})", out.display(), human_size(size))))
        },
    )?;
    remove_tree(&scratch)?;
    Ok(BuiltImage {
        path: out,
        raw_size,
        compressed_size,
    })
}

/// Windows line ends for the files a person opens on a PC (Notepad shows both, but older ones
/// only these).
fn crlf(text: &str) -> String {
    text.replace('\n', "\r\n")
}

fn remove_tree(dir: &Path) -> Result<(), String> {
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("cannot remove {}: {e}", dir.display())),
    }
}

/// `mmdebstrap` of the package list into a tarball.
fn build_rootfs(work: &Path, tarball: &Path) -> Result<(), String> {
    let hooks = work.join("hooks");
    fs::create_dir_all(&hooks).map_err(|e| e.to_string())?;
    let hook = hooks.join("zoho-device-image");
    fs::write(&hook, INITRAMFS_HOOK).map_err(|e| e.to_string())?;
    fs::set_permissions(&hook, fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
    let conf = hooks.join("zoho-device-image.conf");
    fs::write(&conf, INITRAMFS_CONF).map_err(|e| e.to_string())?;
    let partial = tarball.with_extension("tar.part");
    let mut cmd = Command::new("mmdebstrap");
    for opt in dpkg_options() {
        cmd.arg(format!("--dpkgopt={opt}"));
    }
    // The initramfs settings go in before the kernel is installed: with Debian's defaults
    // mkinitramfs takes twenty minutes under emulation.
    run(cmd
        .args(["--mode=root", "--arch=arm64", "--variant=minbase", "--format=tar"])
        .arg(format!("--components={COMPONENTS}"))
        .arg(format!("--include={}", PACKAGES.join(",")))
        .arg("--essential-hook=mkdir -p \"$1/etc/initramfs-tools/conf.d\" \"$1/etc/initramfs-tools/hooks\"")
        .arg(format!(
            "--essential-hook=copy-in {} /etc/initramfs-tools/hooks/",
            hook.display()
        ))
        .arg(format!(
            "--essential-hook=copy-in {} /etc/initramfs-tools/conf.d/",
            conf.display()
        ))
        .arg(SUITE)
        .arg(&partial))?;
    fs::rename(&partial, tarball).map_err(|e| e.to_string())
}

fn write_file(root: &Path, path: &str, mode: u32, text: &str) -> Result<(), String> {
    let p = root.join(path.trim_start_matches('/'));
    if let Some(dir) = p.parent() {
        fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))?;
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).map_err(|e| format!("{}: {e}", p.display()))
}

fn chroot(root: &Path, args: &[&str]) -> Result<String, String> {
    run(Command::new("chroot")
        .arg(root)
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .env("LC_ALL", "C.UTF-8"))
}

/// The `.deb`, the image's own files, the units enabled, `cmdline.txt` by label.
fn customise(root: &Path, deb: &Path) -> Result<String, String> {
    let inside = "tmp/zoho-device.deb";
    fs::copy(deb, root.join(inside)).map_err(|e| format!("{}: {e}", deb.display()))?;
    chroot(root, &["dpkg", "-i", "/tmp/zoho-device.deb"])?;
    fs::remove_file(root.join(inside)).map_err(|e| e.to_string())?;
    let version = chroot(root, &["dpkg-query", "-W", "-f=${Version}", "zoho-device"])?;

    write_file(
        root,
        "/usr/lib/zoho-device-image/zoho-device-firstboot",
        0o755,
        FIRSTBOOT,
    )?;
    write_file(
        root,
        "/etc/systemd/system/zoho-device-firstboot.service",
        0o644,
        FIRSTBOOT_UNIT,
    )?;
    write_file(
        root,
        "/etc/systemd/system/zoho-device.service.d/image.conf",
        0o644,
        AGENT_DROPIN,
    )?;
    write_file(root, "/etc/fstab", 0o644, FSTAB)?;
    write_file(root, "/etc/systemd/network/20-wired.network", 0o644, WIRED)?;
    write_file(root, "/etc/systemd/network/25-wireless.network", 0o644, WIRELESS)?;
    write_file(root, "/etc/hostname", 0o644, "zoho-device\n")?;
    write_file(
        root,
        "/etc/hosts",
        0o644,
        "127.0.0.1\tlocalhost\n127.0.1.1\tzoho-device\n::1\tlocalhost ip6-localhost ip6-loopback\n",
    )?;
    chroot(
        root,
        &[
            "systemctl",
            "enable",
            "zoho-device.service",
            "zoho-device-firstboot.service",
            "systemd-networkd.service",
            "systemd-resolved.service",
            "systemd-timesyncd.service",
        ],
    )?;
    // No login prompt on the HDMI screen: it shows the pairing code. A serial console keeps
    // its getty.
    chroot(root, &["systemctl", "mask", "getty@tty1.service"])?;

    // raspi-firmware writes cmdline.txt from /etc/default/raspi-firmware at each kernel
    // install: the root by label (its default is /dev/mmcblk0p2), a quiet HDMI console.
    let defaults = root.join("etc/default/raspi-firmware");
    let text = fs::read_to_string(&defaults).map_err(|e| format!("{}: {e}", defaults.display()))?;
    let mut text: String = text
        .lines()
        .filter(|l| !l.starts_with("ROOTPART=") && !l.starts_with("CONSOLES="))
        .map(|l| format!("{l}\n"))
        .collect();
    text.push_str(&format!(
        "# zoho-device image: the root by its label; the serial port (GPIO 14/15) and the HDMI\n# screen as consoles, the screen last (boot messages and the agent's lines go there).\nROOTPART=LABEL={ROOT_LABEL}\nCONSOLES=\"ttyS1,115200 tty0\"\n"
    ));
    // Extra arguments (one line, no comments): a quiet screen that never blanks, no cursor
    // blinking over the pairing code.
    write_file(
        root,
        "/etc/default/raspi-extra-cmdline",
        0o644,
        "quiet loglevel=3 vt.global_cursor_default=0 consoleblank=0\n",
    )?;
    fs::write(&defaults, text).map_err(|e| e.to_string())?;
    let kernel = kernel_version(root)?;
    // The line raspi-firmware's kernel hook will write from those settings on the next kernel
    // update (the hook refuses to run in a plain chroot): its own words with the root by
    // label, our consoles and the extra arguments.
    let path = root.join("boot/firmware/cmdline.txt");
    let generated = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut words: Vec<String> = vec!["console=ttyS1,115200".into(), "console=tty0".into()];
    words.extend(
        generated
            .split_whitespace()
            .filter(|w| !w.starts_with("console="))
            .map(|w| {
                if w.starts_with("root=") {
                    format!("root=LABEL={ROOT_LABEL}")
                } else {
                    w.to_owned()
                }
            }),
    );
    words.extend(["quiet", "loglevel=3", "vt.global_cursor_default=0", "consoleblank=0"].map(String::from));
    fs::write(&path, format!("{}\n", words.join(" "))).map_err(|e| e.to_string())?;
    let cmdline = fs::read_to_string(&path).map_err(|e| e.to_string())?;
    if !cmdline.contains(&format!("root=LABEL={ROOT_LABEL}")) {
        return Err(format!("cmdline.txt does not find the root by label: {cmdline}"));
    }

    // A published image has no machine identity and no package lists.
    fs::write(root.join("etc/machine-id"), "").map_err(|e| e.to_string())?;
    let _ = fs::remove_file(root.join("var/lib/dbus/machine-id"));
    for dir in ["var/lib/apt/lists", "var/cache/apt/archives", "var/log"] {
        clear_dir(&root.join(dir))?;
    }
    for f in ["var/cache/apt/pkgcache.bin", "var/cache/apt/srcpkgcache.bin"] {
        let _ = fs::remove_file(root.join(f));
    }
    Ok(format!("zoho-device {version}, kernel {kernel}"))
}

fn clear_dir(dir: &Path) -> Result<(), String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(());
    };
    for e in entries.flatten() {
        let p = e.path();
        let ft = e.file_type().map_err(|e| e.to_string())?;
        if ft.is_dir() {
            // Keep the directories apt and the logs expect, empty.
            clear_dir(&p)?;
        } else {
            fs::remove_file(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        }
    }
    Ok(())
}

/// The installed kernel's version (`6.1.0-28-arm64`).
fn kernel_version(root: &Path) -> Result<String, String> {
    let mut found: Vec<String> = fs::read_dir(root.join("lib/modules"))
        .map_err(|e| format!("no kernel modules in the root file system: {e}"))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    found
        .pop()
        .ok_or_else(|| "no kernel in the root file system".to_owned())
}

fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if let Ok(m) = fs::symlink_metadata(e.path()) {
                if m.is_dir() {
                    total += 4096 + dir_size(&e.path());
                } else {
                    // Whole blocks: small files take one each.
                    total += m.len().div_ceil(4096) * 4096;
                }
            }
        }
    }
    total
}

/// The two partitions as files, an MBR, the partitions copied in. Returns the image size.
fn assemble(scratch: &Path, firmware: &Path, root: &Path, image: &Path) -> Result<u64, String> {
    const MIB: u64 = 1024 * 1024;
    let boot_part = scratch.join("boot.vfat");
    let root_part = scratch.join("root.ext4");
    run(Command::new("mkfs.vfat")
        .args(["-F", "32", "-n", BOOT_LABEL, "-C"])
        .arg(&boot_part)
        .arg((BOOT_MIB * 1024).to_string()))?;
    let mut mcopy = Command::new("mcopy");
    mcopy.args(["-s", "-p", "-m", "-i"]).arg(&boot_part);
    for e in fs::read_dir(firmware).map_err(|e| e.to_string())?.flatten() {
        mcopy.arg(e.path());
    }
    mcopy.arg("::");
    run(mcopy.env("MTOOLS_SKIP_CHECK", "1"))?;
    // The root with a tenth and 64 MiB free; it grows to the card at first boot.
    let used = dir_size(root);
    let root_mib = (used + used / 10 + 64 * MIB).div_ceil(MIB);
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", ROOT_LABEL, "-m", "1", "-d"])
        .arg(root)
        .arg(&root_part)
        .arg(format!("{root_mib}M")))?;
    let total = FIRST_LBA * 512 + (BOOT_MIB + root_mib) * MIB;
    let file = fs::File::create(image).map_err(|e| format!("{}: {e}", image.display()))?;
    file.set_len(total).map_err(|e| e.to_string())?;
    drop(file);
    let boot_sectors = BOOT_MIB * MIB / 512;
    let table = format!(
        "label: dos\nunit: sectors\n\n{FIRST_LBA},{boot_sectors},c,*\n{},,83\n",
        FIRST_LBA + boot_sectors
    );
    let mut sfdisk = Command::new("sfdisk")
        .args(["--no-reread", "--no-tell-kernel", "-q"])
        .arg(image)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run sfdisk: {e}"))?;
    sfdisk
        .stdin
        .take()
        .ok_or("sfdisk has no stdin")?
        .write_all(table.as_bytes())
        .map_err(|e| e.to_string())?;
    let out = sfdisk.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("sfdisk failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    copy_into(&boot_part, image, FIRST_LBA * 512)?;
    copy_into(&root_part, image, FIRST_LBA * 512 + BOOT_MIB * MIB)?;
    fs::remove_file(&boot_part).map_err(|e| e.to_string())?;
    fs::remove_file(&root_part).map_err(|e| e.to_string())?;
    Ok(total)
}

/// Copies `part` into `image` at `offset`, leaving holes where `part` has zeros.
fn copy_into(part: &Path, image: &Path, offset: u64) -> Result<(), String> {
    run(Command::new("dd")
        .arg(format!("if={}", part.display()))
        .arg(format!("of={}", image.display()))
        .args(["bs=4M", "conv=notrunc,sparse", "oflag=seek_bytes", "status=none"])
        .arg(format!("seek={offset}")))
    .map(|_| ())
}

/// A partition of an MBR disk image: its start and length in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partition {
    /// Offset of its first byte.
    pub start: u64,
    /// Length in bytes.
    pub len: u64,
    /// The MBR type byte.
    pub kind: u8,
}

/// The four primary partitions of an MBR (empty slots left out).
pub fn mbr_partitions(sector0: &[u8]) -> Result<Vec<Partition>, String> {
    if sector0.len() < 512 || sector0[510] != 0x55 || sector0[511] != 0xaa {
        return Err("no MBR (the 0x55AA signature is missing)".into());
    }
    Ok((0..4)
        .filter_map(|i| {
            let e = &sector0[446 + 16 * i..446 + 16 * (i + 1)];
            let start = u64::from(u32::from_le_bytes([e[8], e[9], e[10], e[11]]));
            let len = u64::from(u32::from_le_bytes([e[12], e[13], e[14], e[15]]));
            (e[4] != 0 && len != 0).then_some(Partition {
                start: start * 512,
                len: len * 512,
                kind: e[4],
            })
        })
        .collect())
}

fn partitions_of(image: &Path) -> Result<(Partition, Partition), String> {
    let mut sector = [0u8; 512];
    fs::File::open(image)
        .and_then(|mut f| f.read_exact(&mut sector))
        .map_err(|e| format!("{}: {e}", image.display()))?;
    match mbr_partitions(&sector)?.as_slice() {
        [boot, root] if boot.kind == 0x0c && root.kind == 0x83 => Ok((*boot, *root)),
        other => Err(format!("expected a FAT32 and a Linux partition, found {other:?}")),
    }
}

// ---------------------------------------------------------------------------------------------
// The boot test.

/// How to run the boot test.
#[derive(Clone, Debug)]
pub struct BootTestOptions {
    /// The compressed (`.img.xz`) or raw image.
    pub image: PathBuf,
    /// The simulator binary.
    pub sim: PathBuf,
    /// Scratch directory.
    pub work_dir: PathBuf,
    /// Where to save the screenshot of the pairing screen (PNG).
    pub screenshot: Option<PathBuf>,
    /// How long to wait for each boot to reach the pairing screen.
    pub boot_timeout: Duration,
}

/// What a screen capture showed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capture {
    /// Width, height.
    pub size: (usize, usize),
    /// The QR codes found.
    pub qr: Vec<String>,
    /// Luma of each pixel, row by row.
    pub luma: Vec<u8>,
}

/// A picture read from a PPM file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ppm {
    /// Width, height.
    pub size: (usize, usize),
    /// Grey level of each pixel, row by row.
    pub luma: Vec<u8>,
    /// Red, green, blue of each pixel, row by row.
    pub rgb: Vec<u8>,
}

/// Reads a binary PPM (`P6`, what qemu's `screendump` writes).
pub fn read_ppm(bytes: &[u8]) -> Result<Ppm, String> {
    // Header: P6, width, height, maxval, each separated by whitespace, then one byte.
    let mut fields = Vec::new();
    let mut i = 0;
    while fields.len() < 4 {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if i < bytes.len() && bytes[i] == b'#' {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        let start = i;
        while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if start == i {
            return Err("a PPM header cut short".into());
        }
        fields.push(String::from_utf8_lossy(&bytes[start..i]).into_owned());
    }
    if fields[0] != "P6" || fields[3] != "255" {
        return Err(format!("not an 8-bit binary PPM: {} ... {}", fields[0], fields[3]));
    }
    let w: usize = fields[1].parse().map_err(|_| "a PPM width that is not a number")?;
    let h: usize = fields[2].parse().map_err(|_| "a PPM height that is not a number")?;
    let rgb = bytes.get(i + 1..).ok_or("no PPM pixels")?;
    if rgb.len() < w * h * 3 {
        return Err(format!("a {w}x{h} PPM with {} bytes of pixels", rgb.len()));
    }
    let rgb = rgb[..w * h * 3].to_vec();
    let luma = rgb
        .chunks_exact(3)
        .map(|p| ((u32::from(p[0]) * 299 + u32::from(p[1]) * 587 + u32::from(p[2]) * 114) / 1000) as u8)
        .collect();
    Ok(Ppm {
        size: (w, h),
        luma,
        rgb,
    })
}

/// Every QR code in a grey image.
pub fn decode_qr(w: usize, h: usize, luma: &[u8]) -> Vec<String> {
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| luma[y * w + x]);
    img.detect_grids()
        .into_iter()
        .filter_map(|g| g.decode().ok().map(|(_, s)| s))
        .collect()
}

/// The code a verification URL carries: Zoho's `setCode?devcode=` or RFC 8628's `user_code=`.
pub fn user_code_of(url: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("devcode=").or_else(|| kv.strip_prefix("user_code=")))
        .map(str::to_owned)
        .filter(|c| !c.is_empty() && c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-'))
}

/// The serial console, collected by a thread.
struct Serial {
    text: Arc<Mutex<String>>,
}

impl Serial {
    fn snapshot(&self) -> String {
        self.text.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
    fn count(&self, needle: &str) -> usize {
        self.snapshot().matches(needle).count()
    }
}

/// qemu-system-aarch64 running the image.
struct Vm {
    child: Child,
    monitor: PathBuf,
    serial: Serial,
}

impl Vm {
    fn monitor(&self, command: &str) -> Result<String, String> {
        let mut s = std::os::unix::net::UnixStream::connect(&self.monitor)
            .map_err(|e| format!("qemu monitor {}: {e}", self.monitor.display()))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        s.write_all(format!("{command}\n").as_bytes())
            .map_err(|e| e.to_string())?;
        // The monitor echoes the command and prints a prompt after it has run.
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut prompts = 0;
        while Instant::now() < deadline && prompts < 2 {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    out.extend_from_slice(&buf[..n]);
                    prompts = String::from_utf8_lossy(&out).matches("(qemu)").count();
                }
                Err(_) => break,
            }
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    fn screendump(&self, path: &Path) -> Result<Capture, String> {
        let _ = fs::remove_file(path);
        self.monitor(&format!("screendump {}", path.display()))?;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Ok(bytes) = fs::read(path)
                && let Ok(Ppm { size, luma, .. }) = read_ppm(&bytes)
            {
                let qr = decode_qr(size.0, size.1, &luma);
                return Ok(Capture { size, qr, luma });
            }
            if Instant::now() > deadline {
                return Err("screendump wrote no picture".into());
            }
            thread::sleep(Duration::from_millis(200));
        }
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn boot(disk: &Path, kernel: &Path, initrd: &Path, work: &Path, console_log: &Path) -> Result<Vm, String> {
    let monitor = work.join("monitor.sock");
    let _ = fs::remove_file(&monitor);
    let mut child = Command::new("qemu-system-aarch64")
        .args(["-M", "virt", "-cpu", "cortex-a72", "-m", "1024", "-smp", "2"])
        .arg("-kernel")
        .arg(kernel)
        .arg("-initrd")
        .arg(initrd)
        // The root by label as on the card; the serial console for the log.
        .args([
            "-append",
            &format!("root=LABEL={ROOT_LABEL} rootwait rw console=tty1 console=ttyAMA0 net.ifnames=0 loglevel=4 vt.global_cursor_default=0"),
        ])
        .arg("-drive")
        .arg(format!("file={},if=virtio,format=raw", disk.display()))
        .args(["-device", "virtio-gpu-pci"])
        .args(["-netdev", "user,id=n", "-device", "virtio-net-pci,netdev=n,romfile="])
        .arg("-monitor")
        .arg(format!("unix:{},server,nowait", monitor.display()))
        .args(["-display", "none", "-serial", "stdio"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot run qemu-system-aarch64: {e}"))?;
    let text = Arc::new(Mutex::new(String::new()));
    let stdout = child.stdout.take().ok_or("qemu has no stdout")?;
    let sink = Arc::clone(&text);
    let mut log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(console_log)
        .map_err(|e| format!("{}: {e}", console_log.display()))?;
    thread::spawn(move || {
        // Chunks, not lines: a login prompt has no line end.
        let mut stdout = stdout;
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = stdout.read(&mut buf) {
            let _ = log.write_all(&buf[..n]);
            sink.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    // The monitor socket appears once qemu has started.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !monitor.exists() {
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err("qemu did not open its monitor socket".into());
        }
        thread::sleep(Duration::from_millis(100));
    }
    Ok(Vm {
        child,
        monitor,
        serial: Serial { text },
    })
}

/// Polls `f` every `every` until it returns `Some` or `timeout` passes.
fn wait_for<T>(
    timeout: Duration,
    every: Duration,
    mut f: impl FnMut() -> Result<Option<T>, String>,
) -> Result<T, String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f()? {
            return Ok(v);
        }
        if Instant::now() > deadline {
            return Err(format!("nothing after {} s", timeout.as_secs()));
        }
        thread::sleep(every);
    }
}

/// The simulator on the host's loopback, with its request log.
struct Sim {
    child: Child,
    log: Arc<Mutex<String>>,
    port: u16,
}

impl Sim {
    fn start(path: &Path, port: u16) -> Result<Sim, String> {
        let mut child = Command::new(path)
            .args(["--dc", "us", "--interval-ms", "2000", "--log-requests"])
            .arg("--port-base")
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", path.display()))?;
        let log = Arc::new(Mutex::new(String::new()));
        for pipe in [
            child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>),
            child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let sink = Arc::clone(&log);
            thread::spawn(move || {
                let mut reader = BufReader::new(pipe);
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                    sink.lock().unwrap_or_else(|e| e.into_inner()).push_str(&line);
                    line.clear();
                }
            });
        }
        let sim = Sim { child, log, port };
        wait_for(Duration::from_secs(20), Duration::from_millis(100), || {
            Ok(TcpStream::connect(("127.0.0.1", port)).is_ok().then_some(()))
        })
        .map_err(|_| format!("the simulator did not listen on 127.0.0.1:{port}"))?;
        Ok(sim)
    }

    /// Device codes issued so far.
    fn codes_issued(&self) -> usize {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .lines()
            .filter(|l| l.contains("/oauth/v3/device/code"))
            .count()
    }

    /// Approves `code` as the simulator's default user, as a person would on the page.
    fn approve(&self, code: &str) -> Result<String, String> {
        let body = format!("user_code={code}&action=accept");
        let mut last = String::from("no reply");
        // A reply lost on a busy machine is asked again; approving is idempotent.
        for _ in 0..3 {
            let mut s = TcpStream::connect(("127.0.0.1", self.port)).map_err(|e| e.to_string())?;
            s.set_read_timeout(Some(Duration::from_secs(10)))
                .map_err(|e| e.to_string())?;
            write!(
                s,
                "POST /oauth/v3/device HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                self.port,
                body.len()
            )
            .map_err(|e| e.to_string())?;
            let mut bytes = Vec::new();
            let read = s.read_to_end(&mut bytes);
            let reply = String::from_utf8_lossy(&bytes);
            if reply.starts_with("HTTP/1.1 200") && reply.contains("approved") {
                return Ok(reply.lines().next().unwrap_or_default().to_owned());
            }
            last = match (reply.lines().next(), read) {
                (Some(line), _) => line.to_owned(),
                (None, Err(e)) => format!("no reply ({e})"),
                (None, Ok(_)) => "no reply".to_owned(),
            };
            thread::sleep(Duration::from_millis(500));
        }
        Err(format!("the simulator did not approve {code}: {last}"))
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Builds the workspace's simulator for the host (`cargo build -p zoho-device-sim`).
pub fn build_sim(ws: &Workspace) -> Result<PathBuf, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(&cargo)
        .current_dir(&ws.root)
        .args([
            "build",
            "-q",
            "-p",
            crate::smoke::SIM_BINARY,
            "--bin",
            crate::smoke::SIM_BINARY,
        ])
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err("cargo build -p zoho-device-sim failed".into());
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| ws.root.join("target"), PathBuf::from);
    Ok(target.join("debug").join(crate::smoke::SIM_BINARY))
}

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind(("127.0.0.1", 0)).map_err(|e| e.to_string())?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

fn mtools(cmd: &str, image: &Path, boot: Partition, args: &[&str]) -> Result<String, String> {
    run(Command::new(cmd)
        .arg("-i")
        .arg(format!("{}@@{}", image.display(), boot.start))
        .args(args)
        .env("MTOOLS_SKIP_CHECK", "1"))
}

/// Runs debugfs requests against the root partition of `image` (a copy taken out and put back).
fn debugfs(image: &Path, root: Partition, work: &Path, requests: &str, write: bool) -> Result<String, String> {
    let part = work.join("root.ext4");
    extract(image, root, &part)?;
    let cmds = work.join("debugfs.cmds");
    fs::write(&cmds, requests).map_err(|e| e.to_string())?;
    let mut cmd = Command::new("debugfs");
    if write {
        cmd.arg("-w");
    }
    let out = run(cmd.arg("-f").arg(&cmds).arg(&part))?;
    if write {
        copy_into(&part, image, root.start)?;
    }
    fs::remove_file(&part).map_err(|e| e.to_string())?;
    Ok(out)
}

fn extract(image: &Path, p: Partition, to: &Path) -> Result<(), String> {
    run(Command::new("dd")
        .arg(format!("if={}", image.display()))
        .arg(format!("of={}", to.display()))
        .args(["bs=4M", "iflag=skip_bytes,count_bytes", "conv=sparse", "status=none"])
        .arg(format!("skip={}", p.start))
        .arg(format!("count={}", p.len)))
    .map(|_| ())
}

/// Boots the image twice under qemu and checks pairing end to end (see the module docs).
pub fn boot_test(opts: &BootTestOptions, log: &mut Vec<Timed>) -> Result<(), String> {
    step(log, "host tools", || {
        check_host(&[("qemu-system-aarch64", "qemu-system-arm")]).map(|d| ((), d))
    })?;
    let work = &opts.work_dir;
    remove_tree(work)?;
    fs::create_dir_all(work).map_err(|e| format!("{}: {e}", work.display()))?;
    let disk = work.join("disk.img");
    step(log, "decompress a copy, card grown by 512 MiB", || {
        let name = opts.image.to_string_lossy();
        let unpack = if name.ends_with(".xz") {
            Some("xz")
        } else if name.ends_with(".zst") {
            Some("zstd")
        } else {
            None
        };
        if let Some(program) = unpack {
            let out = fs::File::create(&disk).map_err(|e| e.to_string())?;
            let status = Command::new(program)
                .args(["-dc"])
                .arg(&opts.image)
                .stdout(out)
                .status()
                .map_err(|e| format!("cannot run {program}: {e}"))?;
            if !status.success() {
                return Err(format!("{program} -d {} failed", opts.image.display()));
            }
        } else {
            fs::copy(&opts.image, &disk).map_err(|e| format!("{}: {e}", opts.image.display()))?;
        }
        let size = fs::metadata(&disk).map_err(|e| e.to_string())?.len();
        // A card larger than the image: first boot must grow the root into the rest.
        fs::OpenOptions::new()
            .write(true)
            .open(&disk)
            .and_then(|f| f.set_len(size + 512 * 1024 * 1024))
            .map_err(|e| e.to_string())?;
        Ok(((), format!("image {}", human_size(size))))
    })?;
    let (boot_part, root_part) = partitions_of(&disk)?;
    let port = free_port()?;
    let (kernel, initrd) = step(log, "configure the boot partition", || {
        let listing = mtools("mdir", &disk, boot_part, &["-b", "::"])?;
        let find = |prefix: &str| {
            listing
                .lines()
                .map(|l| l.trim_start_matches("::/").trim().to_owned())
                .filter(|n| n.starts_with(prefix))
                .max()
                .ok_or_else(|| format!("no {prefix}* on the boot partition"))
        };
        for example in [
            "zoho-device-README.txt",
            "zoho-device.toml.example",
            "zoho-device-network.txt.example",
        ] {
            if !listing.lines().any(|l| l.ends_with(example)) {
                return Err(format!("the boot partition has no {example}"));
            }
        }
        let kernel = work.join("vmlinuz");
        let initrd = work.join("initrd.img");
        mtools(
            "mcopy",
            &disk,
            boot_part,
            &[&format!("::{}", find("vmlinuz")?), path_str(&kernel)?],
        )?;
        mtools(
            "mcopy",
            &disk,
            boot_part,
            &[&format!("::{}", find("initrd.img")?), path_str(&initrd)?],
        )?;
        // What a person writes on a PC, here for the simulator on the host's loopback.
        let files = [
            (
                "zoho-device.toml",
                format!(
                    "# written by the boot test\r\nclient_id = \"{}\"\r\ndc = \"us\"\r\naccounts_url = \"http://127.0.0.1:{port}\"\r\ndisplay = [\"fb\"]\r\n",
                    crate::smoke::SIM_CLIENT_ID
                ),
            ),
            (
                "zoho-device-client-secret.txt",
                format!("{}\r\n", crate::smoke::SIM_CLIENT_SECRET),
            ),
            ("zoho-device-network.txt", "hostname=zoho-boot-test\r\n".to_owned()),
        ];
        for (name, text) in &files {
            let p = work.join(name);
            fs::write(&p, text).map_err(|e| e.to_string())?;
            mtools("mcopy", &disk, boot_part, &[path_str(&p)?, &format!("::{name}")])?;
            fs::remove_file(&p).map_err(|e| e.to_string())?;
        }
        Ok((
            (kernel, initrd),
            "zoho-device.toml, client secret, hostname; kernel and initrd taken from it".to_owned(),
        ))
    })?;
    step(log, "test-only units into the root", || {
        let socket = work.join("proxy.socket");
        let service = work.join("proxy.service");
        let logind = work.join("logind.conf");
        fs::write(&socket, PROXY_SOCKET.replace("@PORT@", &port.to_string())).map_err(|e| e.to_string())?;
        fs::write(&service, PROXY_SERVICE.replace("@PORT@", &port.to_string())).map_err(|e| e.to_string())?;
        fs::write(&logind, TEST_LOGIND).map_err(|e| e.to_string())?;
        let d = "/etc/systemd/system";
        let requests = format!(
            "cd {d}\nwrite {} zoho-device-test-proxy.socket\nwrite {} zoho-device-test-proxy.service\n\
             cd {d}/sockets.target.wants\nsymlink zoho-device-test-proxy.socket {d}/zoho-device-test-proxy.socket\n\
             mkdir /etc/systemd/logind.conf.d\ncd /etc/systemd/logind.conf.d\nwrite {} zoho-device-test.conf\n",
            socket.display(),
            service.display(),
            logind.display()
        );
        debugfs(&disk, root_part, work, &requests, true)?;
        // debugfs writes as root with the mode of the source file; units must be 0644.
        let fix = format!(
            "sif {d}/zoho-device-test-proxy.socket mode 0100644\nsif {d}/zoho-device-test-proxy.service mode 0100644\nsif /etc/systemd/logind.conf.d/zoho-device-test.conf mode 0100644\n"
        );
        debugfs(&disk, root_part, work, &fix, true)?;
        Ok((
            (),
            format!("systemd-socket-proxyd 127.0.0.1:{port} -> 10.0.2.2:{port}; power key reboots"),
        ))
    })?;

    let sim = step(log, "simulator on the host", || {
        let sim = Sim::start(&opts.sim, port)?;
        Ok((sim, format!("http://127.0.0.1:{port}")))
    })?;
    let console = work.join("console.log");
    let shot = work.join("screen.ppm");
    let mut vm = step(log, "start qemu-system-aarch64 (virt, TCG)", || {
        boot(&disk, &kernel, &initrd, work, &console)
            .map(|vm| (vm, "virtio-gpu framebuffer, user-mode network".to_owned()))
    })?;
    let result = (|| -> Result<(), String> {
        step(log, "first boot applies the boot partition", || {
            let need = [
                "moved zoho-device.toml to /etc/zoho-device/config.toml",
                "moved zoho-device-client-secret.txt to /etc/zoho-device/client-secret (mode 0600)",
                "hostname set to zoho-boot-test",
                "root file system:",
            ];
            wait_for(opts.boot_timeout, Duration::from_secs(1), || {
                if !vm.running() {
                    return Err("qemu exited".into());
                }
                let text = vm.serial.snapshot();
                Ok(need.iter().all(|n| text.contains(n)).then_some(()))
            })
            .map_err(|e| format!("{e}; the console said:\n{}", tail(&vm.serial.snapshot(), 40)))?;
            let text = vm.serial.snapshot();
            let grown = text
                .lines()
                .find_map(|l| l.split_once("root file system: ").map(|(_, r)| r.trim().to_owned()))
                .unwrap_or_default();
            Ok(((), format!("config, secret and hostname moved; root grown: {grown}")))
        })?;
        let code = step(log, "pairing code on the screen (QR)", || {
            let cap = wait_for(opts.boot_timeout, Duration::from_secs(2), || {
                let cap = vm.screendump(&shot)?;
                Ok((!cap.qr.is_empty()).then_some(cap))
            })
            .map_err(|e| {
                format!(
                    "no QR code on the screen: {e}; the console said:\n{}",
                    tail(&vm.serial.snapshot(), 40)
                )
            })?;
            let url = cap.qr[0].clone();
            if !url.starts_with(&format!("http://127.0.0.1:{port}/")) {
                return Err(format!("the QR code is not the simulator's verification URL: {url}"));
            }
            let code = user_code_of(&url).ok_or_else(|| format!("no user_code in {url}"))?;
            if let Some(png) = &opts.screenshot {
                let bytes = fs::read(&shot).map_err(|e| e.to_string())?;
                write_png(png, cap.size, &read_ppm(&bytes)?.rgb)?;
            }
            Ok((
                code,
                format!("{}x{} screen, QR decodes to {url}", cap.size.0, cap.size.1),
            ))
        })?;
        step(log, "approve at the simulator", || {
            sim.approve(&code).map(|r| ((), format!("{code}: {r}")))
        })?;
        step(log, "screen says paired", || {
            let detail = wait_for(Duration::from_secs(120), Duration::from_secs(2), || {
                let cap = vm.screendump(&shot)?;
                Ok(paired_screen(&cap))
            })
            .map_err(|e| {
                format!(
                    "{e}: the screen never matched the paired screen; the console said:\n{}",
                    tail(&vm.serial.snapshot(), 30)
                )
            })?;
            Ok((
                (),
                format!("the screen is the agent's \"{detail}\" screen, pixel for pixel"),
            ))
        })?;
        let codes_before = sim.codes_issued();
        let boots_before = vm.serial.count(BOOT_MARK);
        step(log, "reboot (power key)", || {
            vm.monitor("system_powerdown")?;
            wait_for(Duration::from_secs(180), Duration::from_secs(1), || {
                Ok((vm.serial.count(BOOT_MARK) > boots_before).then_some(()))
            })
            .map_err(|e| {
                format!(
                    "no second boot: {e}; the console said:\n{}",
                    tail(&vm.serial.snapshot(), 30)
                )
            })?;
            Ok(((), "a clean reboot, the kernel started again".to_owned()))
        })?;
        step(log, "still paired after the reboot", || {
            let login = wait_for(opts.boot_timeout, Duration::from_secs(2), || {
                let text = vm.serial.snapshot();
                let after: &str = text.rsplit(BOOT_MARK).next().unwrap_or("");
                Ok(after.contains("zoho-boot-test login:").then_some(()))
            });
            login.map_err(|e| {
                format!(
                    "no login prompt after the reboot: {e}; the console said:\n{}",
                    tail(&vm.serial.snapshot(), 30)
                )
            })?;
            // Give the agent time to ask for a code if it were going to.
            thread::sleep(Duration::from_secs(15));
            let cap = vm.screendump(&shot)?;
            if !cap.qr.is_empty() {
                return Err(format!("the screen shows a QR code again: {:?}", cap.qr));
            }
            let Some(detail) = paired_screen(&cap) else {
                return Err("the screen is not the paired screen after the reboot".into());
            };
            let codes = sim.codes_issued();
            if codes != codes_before {
                return Err(format!(
                    "{} new device code(s) requested after the reboot",
                    codes - codes_before
                ));
            }
            Ok((
                (),
                format!("\"{detail}\" on the screen, no new code ({codes} issued in all)"),
            ))
        })?;
        step(log, "clean shutdown", || {
            // The power key reboots this test image: once the kernel says it restarts, every
            // file system is unmounted and qemu can be stopped.
            let restarts = vm.serial.count(RESTART_MARK);
            vm.monitor("system_powerdown")?;
            wait_for(Duration::from_secs(120), Duration::from_secs(1), || {
                Ok((vm.serial.count(RESTART_MARK) > restarts).then_some(()))
            })?;
            Ok(((), "file systems unmounted, qemu stopped".to_owned()))
        })?;
        Ok(())
    })();
    drop(vm);
    drop(sim);
    result?;
    step(log, "secrets off the boot partition, modes", || {
        let listing = mtools("mdir", &disk, boot_part, &["-b", "::"])?;
        for gone in [
            "zoho-device.toml",
            "zoho-device-client-secret.txt",
            "zoho-device-network.txt",
        ] {
            if listing.lines().any(|l| l.ends_with(&format!("/{gone}"))) {
                return Err(format!("{gone} is still on the boot partition"));
            }
        }
        let stat = debugfs(
            &disk,
            partitions_of(&disk)?.1,
            work,
            "stat /etc/zoho-device/client-secret\nstat /etc/zoho-device/config.toml\n",
            false,
        )?;
        // One block per file, each starting with its "Inode:" line.
        let blocks: Vec<&str> = stat.split("Inode:").skip(1).collect();
        let owned = |b: &str, mode: &str| {
            let words: Vec<&str> = b.split_whitespace().collect();
            b.contains(&format!("Mode:  {mode}")) && words.windows(4).any(|w| w == ["User:", "0", "Group:", "0"])
        };
        if !(blocks.len() == 2 && owned(blocks[0], "0600") && owned(blocks[1], "0644")) {
            return Err(format!("unexpected owners or modes:\n{stat}"));
        }
        Ok((
            (),
            "FAT has none of the three files; client-secret root 0600, config.toml 0644".to_owned(),
        ))
    })?;
    remove_tree(work)?;
    Ok(())
}

/// The paired screen's detail line when `cap` is, pixel for pixel, the screen the agent draws
/// after pairing (rendered here by the display crate at the same size).
fn paired_screen(cap: &Capture) -> Option<String> {
    if !cap.qr.is_empty() {
        return None;
    }
    // The detail line: where the agent paired it just now, or what it read from the token file
    // at start.
    [
        "Zoho data centre: us",
        "this device is authorised",
        "paired (us)",
        "paired",
    ]
    .into_iter()
    .find_map(|detail| {
        let expected = render_luma(
            &zoho_device_display::Screen::Paired {
                detail: detail.to_owned(),
            },
            cap.size,
        )?;
        let differ = expected
            .iter()
            .zip(&cap.luma)
            .filter(|(a, b)| a.abs_diff(**b) > 8)
            .count();
        // A cursor or a console line may cover a few pixels; the screens differ in thousands.
        (differ * 1000 < expected.len()).then(|| detail.to_owned())
    })
}

/// `screen` as the framebuffer display draws it, in grey levels.
fn render_luma(screen: &zoho_device_display::Screen, (w, h): (usize, usize)) -> Option<Vec<u8>> {
    use embedded_graphics::pixelcolor::RgbColor;
    use zoho_device_display::{MemoryFramebuffer, PixelFormat};
    let format = PixelFormat::XRGB8888;
    let mut buf = vec![0u8; w * h * 4];
    let mut canvas =
        MemoryFramebuffer::new(&mut buf, u32::try_from(w).ok()?, u32::try_from(h).ok()?, w * 4, format).ok()?;
    let Ok(()) = zoho_device_display::draw_screen(screen, &mut canvas);
    Some(
        buf.chunks_exact(4)
            .map(|p| {
                let c = format.decode(u32::from_le_bytes([p[0], p[1], p[2], p[3]]));
                let (r, g, b) = (u32::from(c.r()), u32::from(c.g()), u32::from(c.b()));
                u8::try_from((r * 299 + g * 587 + b * 114) / 1000).unwrap_or(u8::MAX)
            })
            .collect(),
    )
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn path_str(p: &Path) -> Result<&str, String> {
    p.to_str().ok_or_else(|| format!("{} is not UTF-8", p.display()))
}

/// Writes an RGB picture as a PNG (palette-free, compressed).
fn write_png(path: &Path, (w, h): (usize, usize), rgb: &[u8]) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    let file = fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut enc = png::Encoder::new(
        std::io::BufWriter::new(file),
        u32::try_from(w).map_err(|e| e.to_string())?,
        u32::try_from(h).map_err(|e| e.to_string())?,
    );
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::High);
    let mut writer = enc.write_header().map_err(|e| e.to_string())?;
    writer.write_image_data(rgb).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_mbr_gives_its_partitions_in_bytes() {
        let mut s = vec![0u8; 512];
        s[510] = 0x55;
        s[511] = 0xaa;
        let entry = |s: &mut [u8], i: usize, kind: u8, start: u32, len: u32| {
            let e = &mut s[446 + 16 * i..446 + 16 * (i + 1)];
            e[4] = kind;
            e[8..12].copy_from_slice(&start.to_le_bytes());
            e[12..16].copy_from_slice(&len.to_le_bytes());
        };
        entry(&mut s, 0, 0x0c, 2048, 409_600);
        entry(&mut s, 1, 0x83, 411_648, 1_000_000);
        let p = mbr_partitions(&s).unwrap();
        assert_eq!(
            p,
            [
                Partition {
                    start: 2048 * 512,
                    len: 409_600 * 512,
                    kind: 0x0c
                },
                Partition {
                    start: 411_648 * 512,
                    len: 1_000_000 * 512,
                    kind: 0x83
                }
            ]
        );
        s[511] = 0;
        assert!(mbr_partitions(&s).unwrap_err().contains("0x55AA"));
    }

    #[test]
    fn a_ppm_header_with_a_comment_is_read_and_a_short_one_refused() {
        let mut ppm = b"P6\n# qemu\n2 1\n255\n".to_vec();
        ppm.extend_from_slice(&[255, 255, 255, 0, 0, 0]);
        let p = read_ppm(&ppm).unwrap();
        assert_eq!(p.size, (2, 1));
        assert_eq!(p.luma, [255, 0]);
        assert_eq!(p.rgb.len(), 6);
        assert!(read_ppm(&ppm[..ppm.len() - 1]).unwrap_err().contains("bytes of pixels"));
        assert!(read_ppm(b"P5\n2 1\n255\n\0\0").is_err());
    }

    #[test]
    fn the_user_code_comes_from_the_verification_url() {
        assert_eq!(
            user_code_of("http://127.0.0.1:4000/oauth/v3/device?user_code=KQWX-7RTM").as_deref(),
            Some("KQWX-7RTM")
        );
        assert_eq!(
            user_code_of("http://127.0.0.1:4000/oauth/v3/device/setCode?devcode=BLEV-7809").as_deref(),
            Some("BLEV-7809")
        );
        assert_eq!(user_code_of("http://127.0.0.1:4000/oauth/v3/device"), None);
        // Nothing that could smuggle another form field into the approval.
        assert_eq!(user_code_of("http://x/?user_code=AB%26action%3Ddeny"), None);
    }

    #[test]
    fn the_rootfs_key_follows_the_package_list() {
        assert_eq!(rootfs_key(), rootfs_key());
        assert_eq!(rootfs_key().len(), 16);
    }

    #[test]
    fn the_first_boot_script_is_valid_sh_and_handles_every_boot_file() {
        for name in [
            "zoho-device.toml",
            "zoho-device-client-secret.txt",
            "zoho-device-network.txt",
        ] {
            assert!(FIRSTBOOT.contains(name), "{name}");
            assert!(BOOT_README.contains(name), "{name}");
        }
        let out = Command::new("sh").arg("-n").arg("-c").arg(FIRSTBOOT).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}
