//! `rusage OUT -- PROGRAM ARGS...`: runs PROGRAM (stdio inherited), waits for it with wait4, and
//! writes `maxrss_kb user_us sys_us` to OUT. Exits with PROGRAM's status.
//!
//! Why not measure from Python: Linux keeps a process's peak RSS across exec, and exec records
//! the peak of the address space it replaces — for a child spawned by Python (fork or vfork),
//! Python's own ~20 MB. GNU time avoids this by being small; so does this launcher (about 1 MB),
//! and unlike `time -f %U` it reports CPU in microseconds, not hundredths of a second.
//!
//! Built by bench/run.sh with plain `rustc` (std only), so the workspace needs no extra member.

use std::process::{Command, exit};

#[repr(C)]
struct Timeval {
    sec: i64,
    usec: i64,
}

#[repr(C)]
struct Rusage {
    utime: Timeval,
    stime: Timeval,
    maxrss: i64,
    rest: [i64; 13],
}

unsafe extern "C" {
    fn wait4(pid: i32, status: *mut i32, options: i32, rusage: *mut Rusage) -> i32;
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 || args[2] != "--" {
        eprintln!("usage: rusage OUT -- PROGRAM ARGS...");
        exit(2);
    }
    let child = match Command::new(&args[3]).args(&args[4..]).spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rusage: cannot run {}: {e}", args[3]);
            exit(127);
        }
    };
    let pid = child.id() as i32;
    let mut status = 0;
    let mut ru = Rusage {
        utime: Timeval { sec: 0, usec: 0 },
        stime: Timeval { sec: 0, usec: 0 },
        maxrss: 0,
        rest: [0; 13],
    };
    // SAFETY: a plain wait4 on our own child with valid pointers; `child` is never waited on again.
    let r = unsafe { wait4(pid, &mut status, 0, &mut ru) };
    if r != pid {
        eprintln!("rusage: wait4 failed");
        exit(1);
    }
    let us = |t: &Timeval| t.sec * 1_000_000 + t.usec;
    let line = format!("{} {} {}\n", ru.maxrss, us(&ru.utime), us(&ru.stime));
    if let Err(e) = std::fs::write(&args[1], line) {
        eprintln!("rusage: cannot write {}: {e}", args[1]);
        exit(1);
    }
    // Exit as the child did (a signal becomes 128 + signal, as in the shell).
    let code = if status & 0x7f == 0 { (status >> 8) & 0xff } else { 128 + (status & 0x7f) };
    exit(code);
}
