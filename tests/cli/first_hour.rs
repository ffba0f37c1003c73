//! A new user's first hour: the rough edges of messages, help and logs.

use std::process::{Command, Stdio};

use crate::util::*;

#[test]
fn logs_have_colour_only_on_a_terminal_without_no_color() {
    let mut w = World::new(sim_config());
    // A client ID with an unusual prefix logs a warning (then the simulator rejects it).
    w.set("ZOHO_CLIENT_ID", Some("1000.SELFCLIENT"));
    let out = w.run(&["login", "--display", "none"]);
    out.stderr_has(&["WARN", "1000.SELFCLIENT"]);
    assert!(
        !out.stderr.contains('\x1b'),
        "escape codes in a file:\n{:?}",
        out.stderr
    );

    // On a terminal (script(1) gives it a pseudo-terminal): colour, unless NO_COLOR is set.
    if which("script").is_none() {
        eprintln!("skipped the terminal half: script(1) not installed");
        return;
    }
    let on_tty = |no_color: Option<&str>| {
        let mut env = w.env.clone();
        if let Some(v) = no_color {
            env.insert("NO_COLOR".into(), v.into());
        }
        env.insert("TERM".into(), "xterm".into());
        let cmd = format!("{} login --display none", env!("CARGO_BIN_EXE_zoho-device"));
        let out = Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .env_clear()
            .envs(&env)
            .current_dir(w.home.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let coloured = on_tty(None);
    assert!(coloured.contains("WARN") && coloured.contains("\x1b["), "{coloured:?}");
    let plain = on_tty(Some("1"));
    assert!(plain.contains("WARN"), "{plain:?}");
    assert!(!plain.contains("\x1b[3"), "NO_COLOR still coloured: {plain:?}");
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

#[test]
fn impossible_client_ids_exit_2_before_the_network() {
    let w = World::new(sim_config());
    for id in [
        "hello",
        "1004 .ABC",
        "1004.ABC DEF",
        "1004.ab-cd",
        "1004.",
        ".ABC",
        "abc.DEF",
    ] {
        let out = w.run(&["login", "--display", "none", "--client-id", id]);
        out.code(2)
            .stderr_has(&["cannot be a Zoho client ID", "Non-browser Application", "hint:"]);
    }
    // The same from the environment, and for the agent.
    let mut w2 = World::new(sim_config());
    w2.set("ZOHO_CLIENT_ID", Some("hello"));
    w2.run(&["agent", "--display", "none"]).code(2);
    assert!(
        w.sim.requests().is_empty(),
        "nothing went to the network: {:?}",
        w.sim.requests().len()
    );
    assert!(w2.sim.requests().is_empty());
    // `doctor` reports it among its findings (a configuration failure), and status does not
    // need it.
    w2.run(&["doctor"])
        .code(2)
        .stdout_has(&["FAIL", "cannot be a Zoho client ID"]);
    w2.run(&["status"]).code(6);
}

#[test]
fn an_unusual_client_id_prefix_is_a_warning_naming_the_client_type() {
    let mut w = World::new(auto_config().client("1000.SERVERBASED", SECRET, &["us"]));
    w.set("ZOHO_CLIENT_ID", Some("1000.SERVERBASED"));
    let out = w.run(&["login", "--events", "json", "--display", "none"]);
    out.stderr_has(&[
        "1000.SERVERBASED does not start with 1004.",
        "\"Non-browser Applications\"",
    ]);
}

#[test]
fn network_warnings_name_the_host() {
    let (_held, url) = refusing_url();
    let mut w = World::new(sim_config());
    w.set("ZOHO_ACCOUNTS_URL", Some(&url));
    w.set("ZOHO_DEVICE_BACKOFF_MS", Some("20"));
    let out = w.run(&["login", "--display", "none"]);
    out.code(7);
    let host = url.trim_start_matches("http://");
    let warning = out
        .stderr
        .lines()
        .find(|l| l.contains("retrying"))
        .unwrap_or_else(|| panic!("no retry warning:\n{}", out.stderr));
    assert!(warning.contains(host), "the warning does not name {host}: {warning}");
}

#[test]
fn subcommand_help_groups_the_global_options_under_one_heading() {
    let w = World::new(sim_config());
    for sub in ["login", "completions", "man", "status"] {
        let out = w.run(&[sub, "--help"]);
        out.code(0);
        let help = &out.stdout;
        let heading = help
            .find("Global options:")
            .unwrap_or_else(|| panic!("{sub} --help has no global heading:\n{help}"));
        // Every global flag is under that heading, none among the subcommand's own.
        for global in ["--client-id", "--token-file", "--accounts-url", "--issuer", "--verbose"] {
            let at = help.find(global).unwrap_or_else(|| panic!("{sub}: no {global}"));
            assert!(at > heading, "{sub} --help lists {global} before the heading:\n{help}");
        }
    }
    let out = w.run(&["login", "--help"]);
    let own = out.stdout.find("--kiosk").unwrap();
    assert!(own < out.stdout.find("Global options:").unwrap());
}

#[test]
fn help_examples_survive_copy_and_paste() {
    let mut w = World::new(sim_config());
    w.set("COLUMNS", Some("80"));
    let out = w.run(&["--help"]);
    out.code(0);
    let lines: Vec<&str> = out.stdout.lines().collect();
    for l in &lines {
        assert!(l.chars().count() <= 80, "wider than 80 columns: {l:?}");
    }
    // The exit codes stay one per line at 80 columns (not re-wrapped mid-phrase).
    for line in [
        "  4 code expired or no longer accepted",
        "  5 client rejected (invalid_client, invalid_client_secret, wrong DC)",
        "  6 not paired / pair again",
    ] {
        assert!(lines.contains(&line), "no line {line:?} in\n{}", out.stdout);
    }
    let curl = lines.iter().position(|l| l.contains("curl -H")).unwrap();
    assert!(lines[curl].ends_with('\\'), "{}", lines[curl]);
    assert!(lines[curl + 1].contains("https://www.zohoapis.eu/books/v3/organizations"));
    // And it runs: the two lines, joined as a shell joins them, make one command.
    let joined = format!("{}\n{}", lines[curl], lines[curl + 1]);
    let words = Command::new("sh")
        .args([
            "-c",
            &format!("set -- {}; echo $#", joined.replace("$(zoho-device token)", "T")),
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&words.stdout).trim(), "4", "curl -H HEADER URL");
}

#[test]
fn status_says_not_paired_once() {
    let w = World::new(sim_config());
    let out = w.run(&["status"]);
    out.code(6).stdout_has(&["Not paired", "zoho-device login"]);
    assert!(out.stderr.trim().is_empty(), "said again on stderr:\n{}", out.stderr);
    let out = w.run(&["status", "--json"]);
    out.code(6);
    assert!(out.stderr.trim().is_empty(), "{}", out.stderr);
}

#[test]
fn doctor_counts_one_warning_in_the_singular() {
    let w = World::new(sim_config());
    let out = w.run(&["doctor"]);
    let tally = out.stdout.lines().last().unwrap_or_default().to_string();
    let warns = out.stdout.lines().filter(|l| l.starts_with("[warn]")).count();
    assert_eq!(warns, 1, "this setup has one warning (not paired):\n{}", out.stdout);
    assert!(tally.ends_with(", 1 warning"), "{tally}");
}

#[test]
fn the_wrong_dc_hint_names_the_setting_the_user_gave() {
    let w = World::new(sim_config().client(CLIENT_ID, SECRET, &["eu"]).user(USER, "eu"));
    let eu = w.sim.accounts_url("eu");
    // The accounts server was given as a URL (ZOHO_ACCOUNTS_URL): the fix is another URL.
    let out = w.run(&["login", "--display", "none"]);
    out.code(5)
        .stderr_has(&["data centre eu", &format!("--accounts-url (ZOHO_ACCOUNTS_URL) to {eu}")]);
    assert!(!out.stderr.contains("use --dc eu (or"), "{}", out.stderr);
    let out = w.run(&["doctor"]);
    out.code(5)
        .stdout_has(&[&format!("--accounts-url (ZOHO_ACCOUNTS_URL) to {eu}")]);
}

#[test]
fn the_agent_interrupted_after_pairing_does_not_claim_the_file_is_unchanged() {
    let w = World::new(auto_config());
    let mut run = w.spawn(&["agent", "--events", "json", "--display", "none"]);
    run.event("authorized", secs(20));
    // The file is saved before `authorized` is announced.
    assert!(w.token_path().exists());
    run.signal("INT");
    let out = run.wait();
    assert!(
        !out.stderr.contains("token file is unchanged"),
        "the agent saved a token, then said:\n{}",
        out.stderr
    );
}

#[test]
fn man_writes_a_page_for_every_command_a_page_refers_to() {
    let w = World::new(sim_config());
    let dir = w.path("man1");
    let out = w.run(&["man", "--out-dir", dir.to_str().unwrap()]);
    out.code(0);
    let mut pages: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    for command in [
        "zoho-device.1",
        "zoho-device-login.1",
        "zoho-device-token.1",
        "zoho-device-logout.1",
        "zoho-device-books.1",
        "zoho-device-books-organizations.1",
        "zoho-device-agent.1",
        "zoho-device-man.1",
    ] {
        assert!(pages.iter().any(|p| p == command), "no {command} in {pages:?}");
    }
    // Every `zoho-device-…(1)` a page names exists, and each page is titled by its name.
    for page in &pages {
        let text = std::fs::read_to_string(dir.join(page)).unwrap();
        let name = page.trim_end_matches(".1");
        assert!(text.contains(&format!(".TH {name} 1")), "{page}: wrong title");
        for (i, _) in text.match_indices("zoho\\-device\\-") {
            let rest = &text[i..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '\\' || c == '-'))
                .unwrap_or(rest.len());
            if !rest[end..].starts_with("(1)") {
                continue;
            }
            let referred = format!("{}.1", rest[..end].replace("\\-", "-"));
            assert!(pages.contains(&referred), "{page} refers to {referred}, not written");
        }
    }
    // `man` without --out-dir prints the main page, as before.
    w.run(&["man"]).code(0).stdout_has(&[".TH zoho-device 1"]);
}
