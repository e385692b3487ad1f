//! Destructive commands confirm first: they refuse in a script without `--yes`, ask on a
//! terminal (tested through a pseudo-terminal), and refuse in production without `--yes`
//! and `--environment production`. A refusal changes nothing.

use std::process::{Command, Output};

use crate::support::expect_ok as ok;
use crate::support::{fixture, show, stderr, stdout, TestProject};

fn project(test: &str) -> TestProject {
    let p = TestProject::new(test, &fixture("migrate/schemas"))
        .with_migrations(&fixture("migrate/migrations"));
    ok(&p, &["tenant", "add", "pa", "--tier", "pro"]);
    ok(&p, &["schema", "apply"]);
    ok(&p, &["migrate", "up"]);
    p
}

/// The versions applied on `pro:pa`, from `migrate status --json`.
fn applied(p: &TestProject) -> Vec<u64> {
    let out = ok(p, &["migrate", "status", "--tenant", "pa", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["states"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["target"] == "pro:pa")
        .expect("pro:pa in the status")["applied"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect()
}

/// Run caas inside a pseudo-terminal (Python's pty module), answer its prompt, and return
/// the exit status and everything it printed.
fn on_terminal(p: &TestProject, args: &[&str], answer: &str) -> (i32, String) {
    const SCRIPT: &str = r#"
import os, pty, sys
answer = sys.argv[1].encode() + b"\n"
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
seen = b""
answered = False
while True:
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        break
    if not chunk:
        break
    seen += chunk
    if not answered and b"[y/N]" in seen:
        os.write(fd, answer)
        answered = True
_, status = os.waitpid(pid, 0)
sys.stdout.write(seen.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(status))
"#;
    let out: Output = Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .arg(answer)
        .arg(env!("CARGO_BIN_EXE_caas"))
        .args(args)
        .current_dir(p.path())
        .env("MONGODB_URI", &p.uri)
        .env_remove("CAAS_ENVIRONMENT")
        .output()
        .expect("python3 runs");
    (out.status.code().unwrap_or(-1), stdout(&out))
}

#[test]
fn migrate_down_confirms_in_scripts_on_terminals_and_in_production() {
    let p = project("guard_down");
    assert_eq!(applied(&p), vec![1, 2]);

    // A script without --yes: refused, nothing reverted, the plan shown.
    let out = p.caas(&["migrate", "down", "--tenant", "pa"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(stderr(&out).contains("Pass --yes"), "{}", show(&out));
    assert!(
        stderr(&out).contains("pro:pa"),
        "shows what it would revert: {}",
        show(&out)
    );
    assert_eq!(applied(&p), vec![1, 2]);

    // Production: --yes alone is not enough.
    let prod = [
        ("MONGODB_URI", p.uri.as_str()),
        ("CAAS_ENVIRONMENT", "production"),
    ];
    let out = crate::support::caas_env(
        p.path(),
        &["migrate", "down", "--tenant", "pa", "--yes"],
        &prod,
    );
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(stderr(&out).contains("marked production"), "{}", show(&out));
    assert_eq!(applied(&p), vec![1, 2]);

    // A terminal: "n" cancels, "y" goes on.
    let (code, text) = on_terminal(&p, &["migrate", "down", "--tenant", "pa"], "n");
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("Proceed? [y/N]") && text.contains("cancelled"),
        "{text}"
    );
    assert_eq!(applied(&p), vec![1, 2]);
    let (code, text) = on_terminal(&p, &["migrate", "down", "--tenant", "pa"], "y");
    assert_eq!(code, 0, "{text}");
    assert_eq!(applied(&p), vec![1]);

    // Production with both acknowledgements.
    let out = crate::support::caas_env(
        p.path(),
        &[
            "migrate",
            "down",
            "--tenant",
            "pa",
            "--yes",
            "--environment",
            "production",
        ],
        &prod,
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(applied(&p), Vec::<u64>::new());

    // Nothing left to revert: no question asked, nothing refused.
    let out = p.caas(&["migrate", "down", "--tenant", "pa"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
}

#[test]
fn seed_reset_and_forced_unlock_refuse_in_a_script_without_yes() {
    let p = project("guard_misc");
    let out = p.caas(&["seed", "--reset"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(stderr(&out).contains("Pass --yes"), "{}", show(&out));
    let out = p.caas(&["migrate", "unlock", "--force", "--owner", "someone"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        stderr(&out).contains("evict the live lease of `someone`"),
        "{}",
        show(&out)
    );
}
