//! Conventions of the command line that need no server: shell completions, man pages,
//! `--version` with the commit.

use std::process::Command;

use crate::support::{caas, show, stdout};

#[test]
fn completions_for_bash_zsh_and_fish_know_every_command() {
    let dir = tempfile::tempdir().unwrap();
    for (shell, marker) in [
        ("bash", "_caas()"),
        ("zsh", "#compdef caas"),
        ("fish", "complete -c caas"),
    ] {
        let out = caas(dir.path(), &["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", show(&out));
        let script = stdout(&out);
        assert!(script.contains(marker), "{shell}: no `{marker}`");
        for sub in [
            "schema",
            "migrate",
            "seed",
            "tenant",
            "roles",
            "docs",
            "completions",
        ] {
            assert!(script.contains(sub), "{shell}: `{sub}` missing");
        }
        assert!(
            script.contains("--allow-destructive"),
            "{shell}: flags missing"
        );
    }
    // The bash script parses (bash is on every machine the suite runs on).
    let file = dir.path().join("caas.bash");
    std::fs::write(&file, stdout(&caas(dir.path(), &["completions", "bash"]))).unwrap();
    let check = Command::new("bash").arg("-n").arg(&file).output().unwrap();
    assert!(check.status.success(), "{}", show(&check));
    let bad = caas(dir.path(), &["completions", "tcsh"]);
    assert_eq!(bad.status.code(), Some(2), "{}", show(&bad));
}

#[test]
fn man_pages_cover_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let top = caas(dir.path(), &["man"]);
    assert!(top.status.success(), "{}", show(&top));
    assert!(stdout(&top).contains(".TH caas 1"), "{}", show(&top));
    let out = dir.path().join("man");
    let written = caas(dir.path(), &["man", "--out", out.to_str().unwrap()]);
    assert!(written.status.success(), "{}", show(&written));
    for page in [
        "caas.1",
        "caas-migrate.1",
        "caas-migrate-up.1",
        "caas-schema-apply.1",
    ] {
        let text = std::fs::read_to_string(out.join(page)).unwrap_or_default();
        assert!(text.contains(".TH"), "{page} missing or empty");
    }
}

#[test]
fn version_names_the_commit() {
    let dir = tempfile::tempdir().unwrap();
    let out = caas(dir.path(), &["--version"]);
    assert!(out.status.success(), "{}", show(&out));
    let text = stdout(&out);
    let commit = text
        .trim()
        .rsplit_once('(')
        .and_then(|(_, c)| c.strip_suffix(')'))
        .unwrap_or("");
    assert!(
        commit == "unknown"
            || (commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "{text}"
    );
    assert!(
        text.starts_with(&format!("caas {}", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
}
