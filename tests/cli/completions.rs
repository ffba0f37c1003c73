//! Shell completions, proven by the shells themselves: bash (driven the way bash-completion
//! drives it, through COMP_WORDS/COMP_CWORD), zsh (an interactive shell in a pseudo-terminal,
//! TAB pressed) and fish (`complete -C`) each complete a subcommand's flag, `login --d`.
//!
//! A shell that is not installed skips its test, unless ZOHO_DEVICE_REQUIRE_SHELLS=1 (CI).

use std::path::Path;
use std::process::Command;

use crate::util::*;

/// Whether `path` exists (a shell, bash-completion's driver); fails instead under CI.
fn have(path: &str) -> bool {
    let found = Path::new(path).exists();
    if !found {
        assert!(
            std::env::var("ZOHO_DEVICE_REQUIRE_SHELLS").as_deref() != Ok("1"),
            "{path} is required (ZOHO_DEVICE_REQUIRE_SHELLS=1): apt-get install bash-completion zsh fish"
        );
        eprintln!("skipped: {path} not installed");
    }
    found
}

/// `zoho-device completions SHELL` written to `dir/name`.
fn script(w: &World, shell: &str, name: &str) -> std::path::PathBuf {
    let (code, stdout, stderr) = run_raw(w, &["completions", shell]);
    assert_eq!(code, Some(0), "{stderr}");
    let dir = w.path(&format!("completions-{shell}"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, stdout).unwrap();
    path
}

fn words(out: &std::process::Output) -> Vec<String> {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut w: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    w.sort();
    w.dedup();
    w
}

#[track_caller]
fn assert_completes_login_flags(shell: &str, got: &[String]) {
    for want in ["--dc", "--display"] {
        assert!(
            got.iter().any(|g| g == want),
            "{shell}: `login --d` lacks {want}: {got:?}"
        );
    }
    assert!(
        got.iter().all(|g| g.starts_with("--d")),
        "{shell}: `login --d` offers other words: {got:?}"
    );
}

#[test]
fn bash_completes_a_subcommand_flag() {
    if !have("/bin/bash") || !have("/usr/share/bash-completion/bash_completion") {
        return;
    }
    let w = World::new(sim_config());
    let file = script(&w, "bash", "zoho-device");
    // The function is whatever the script registers for zoho-device (`complete -p`), called
    // as bash-completion calls it: COMP_WORDS, COMP_CWORD, then (command, word, previous word).
    let driver = r#"
        source /usr/share/bash-completion/bash_completion
        source "$1"
        fn=$(complete -p zoho-device | sed -E 's/.*-F ([^ ]+).*/\1/')
        complete_line() {
            COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
            read -ra COMP_WORDS <<< "$COMP_LINE"
            [[ $COMP_LINE == *" " ]] && COMP_WORDS+=("")
            COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
            COMPREPLY=()
            "$fn" zoho-device "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
            printf '%s\n' "${COMPREPLY[@]}"
        }
        case "$2" in
            sub) complete_line zoho-device lo ;;
            flag) complete_line zoho-device login --d ;;
            nested) complete_line zoho-device books "" ;;
        esac
    "#;
    let run = |what: &str| {
        Command::new("/bin/bash")
            .args(["--norc", "--noprofile", "-c", driver, "driver"])
            .arg(&file)
            .arg(what)
            .output()
            .unwrap()
    };
    assert_eq!(words(&run("sub")), ["login", "logout"]);
    assert_completes_login_flags("bash", &words(&run("flag")));
    assert!(words(&run("nested")).contains(&"organizations".to_owned()));
}

#[test]
fn zsh_completes_a_subcommand_flag() {
    if !have("/usr/bin/zsh") && !have("/bin/zsh") {
        return;
    }
    let w = World::new(sim_config());
    let file = script(&w, "zsh", "_zoho-device");
    // An interactive zsh in a pseudo-terminal (zsh/zpty) with compinit and the function on
    // fpath; compadd is wrapped to print each candidate; TAB completes `zoho-device login --d`.
    let capture = r#"
        zmodload zsh/zpty
        zpty z zsh -f -i
        zpty -w z "PS1='' fpath=($1 \$fpath); autoload -Uz compinit; compinit -u -D"
        zpty -w z 'compadd () { builtin compadd -O __hits "$@"; local h; for h in $__hits; do print -r -- "<<$h>>"; done; builtin compadd "$@"; }'
        zpty -w z 'bindkey "^I" complete-word; print -r -- READY'
        zpty -r z line '*READY*'
        zpty -w -n z "$2"$'\t'
        # Read until candidates arrive (then half a second more), at most 20 s.
        out=""; seen=0
        for i in {1..200}; do
            while zpty -r -t z chunk; do out+=$chunk; done
            if [[ $out == *'<<'* ]]; then (( seen++ )); (( seen > 5 )) && break; fi
            sleep 0.1
        done
        zpty -w -n z $'\C-c'
        zpty -d z
        print -r -- "$out" | grep -ao '<<[^>]*>>' | tr -d '<>'
    "#;
    let out = Command::new("zsh")
        .args(["-f", "-c", capture, "capture"])
        .arg(file.parent().unwrap())
        .arg("zoho-device login --d")
        .output()
        .unwrap();
    assert_completes_login_flags("zsh", &words(&out));
}

#[test]
fn fish_completes_a_subcommand_flag() {
    if !have("/usr/bin/fish") {
        return;
    }
    let w = World::new(sim_config());
    let file = script(&w, "fish", "zoho-device.fish");
    let out = Command::new("fish")
        .args([
            "--no-config",
            "-c",
            "source $argv[1]; complete -C 'zoho-device login --d'",
        ])
        .arg(&file)
        .env("HOME", w.home.path())
        .env("XDG_CONFIG_HOME", w.path("config"))
        .env("XDG_DATA_HOME", w.path("data"))
        .output()
        .unwrap();
    // `complete -C` prints `word<TAB>description`: keep the words.
    let got: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split('\t').next())
        .map(str::to_owned)
        .collect();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_completes_login_flags("fish", &got);
}
