//! Hostile and careless input: bounded, located, never a panic.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::support::expect_ok as ok;
use crate::support::{root, show, stderr, TestProject};

/// Every read command, its stdout closed after one byte (`caas ... | head -c1`): it ends
/// quietly (its own exit code, or 141 as for SIGPIPE), never with a panic or a backtrace.
#[tokio::test(flavor = "multi_thread")]
async fn a_closed_stdout_ends_every_read_command_quietly() {
    let p = TestProject::new("hpipe", &root().join("schemas"));
    for (id, tier) in [("f1", "free"), ("pa", "pro"), ("ea", "enterprise")] {
        ok(&p, &["tenant", "add", id, "--tier", tier]);
    }
    let commands: &[&[&str]] = &[
        &["schema", "lint"],
        &["schema", "lint", "--json"],
        &["schema", "compile"],
        &["schema", "compile", "--format", "table"],
        &["schema", "compile", "--format", "yaml"],
        &["schema", "json-schema"],
        &["schema", "plan"],
        &["schema", "plan", "--json"],
        &["schema", "plan", "--format", "mongosh"],
        &["schema", "diff"],
        &["tenant", "list"],
        &["tenant", "list", "--json"],
        &["migrate", "status"],
        &["migrate", "status", "--json"],
        &["migrate", "verify"],
        &["roles", "plan"],
        &["roles", "diff"],
    ];
    for args in commands {
        let mut child = Command::new(env!("CARGO_BIN_EXE_caas"))
            .current_dir(p.path())
            .args(*args)
            .env("MONGODB_URI", &p.uri)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut one = [0u8; 1];
        let _ = stdout.read(&mut one);
        drop(stdout);
        let out = child.wait_with_output().unwrap();
        let err = stderr(&out);
        assert!(
            matches!(out.status.code(), Some(0 | 1 | 141)),
            "caas {}: {}",
            args.join(" "),
            show(&out)
        );
        assert!(
            !err.contains("panicked") && !err.contains("backtrace") && !err.contains("Broken pipe"),
            "caas {}: {err}",
            args.join(" ")
        );
    }
}

/// Alias bombs in a spec file: refused with a located message, quickly and in little
/// memory. The figures are printed, not asserted (timing belongs in benchmarks).
#[tokio::test(flavor = "multi_thread")]
async fn alias_bombs_are_refused_cheaply() {
    for (name, width, levels) in [("bomb_10e8", 10, 8), ("bomb_9e8", 9, 8)] {
        let p = TestProject::new("hbomb", &root().join("schemas"));
        let mut text = String::from("collection: bomb\ndomain: saas\nfields: {}\n");
        text.push_str(&format!("x0: &x0 [{}]\n", vec!["lol"; width].join(",")));
        for i in 1..=levels {
            text.push_str(&format!(
                "x{i}: &x{i} [{}]\n",
                vec![format!("*x{}", i - 1); width].join(",")
            ));
        }
        let file = p.path().join("schemas/saas/bomb.yaml");
        std::fs::write(&file, &text).unwrap();
        let time = std::path::Path::new("/usr/bin/time");
        let mut cmd = if time.exists() {
            let mut c = Command::new(time);
            c.args(["-f", "peak-rss-kib=%M"])
                .arg(env!("CARGO_BIN_EXE_caas"));
            c
        } else {
            Command::new(env!("CARGO_BIN_EXE_caas"))
        };
        let started = Instant::now();
        let out = cmd
            .current_dir(p.path())
            .args(["schema", "lint"])
            .output()
            .unwrap();
        let wall = started.elapsed();
        let err = stderr(&out);
        let said = crate::support::stdout(&out) + &err;
        assert!(
            said.contains("schemas/saas/bomb.yaml:") && said.contains("alias bomb"),
            "{} ({} bytes): {}",
            name,
            text.len(),
            show(&out)
        );
        let peak = err
            .lines()
            .find_map(|l| l.strip_prefix("peak-rss-kib="))
            .map(|k| format!("{} MiB peak", k.trim().parse::<u64>().unwrap_or(0) / 1024))
            .unwrap_or_else(|| "peak not measured (no /usr/bin/time)".into());
        println!(
            "{name}: {} bytes, {}^{} leaves: refused in {:.0} ms, {peak}",
            text.len(),
            width,
            levels,
            wall.as_secs_f64() * 1000.0
        );
    }
}

/// A FIFO named like a spec, a symlink loop and an oversized file: lint finishes, names
/// each path once, reads none of them.
#[tokio::test(flavor = "multi_thread")]
async fn special_files_in_schemas_are_skipped_or_refused_with_their_path() {
    let p = TestProject::new("hfifo", &root().join("schemas"));
    let saas = p.path().join("schemas/saas");
    let made = Command::new("mkfifo")
        .arg(saas.join("x.yaml"))
        .status()
        .unwrap();
    assert!(made.success());
    std::os::unix::fs::symlink("..", saas.join("loop")).unwrap();
    std::fs::write(saas.join("huge.yaml"), "a".repeat(2_000_000)).unwrap();
    let started = Instant::now();
    let out = crate::support::caas(p.path(), &["schema", "lint"]);
    assert!(
        started.elapsed().as_secs() < 30,
        "lint does not hang on a FIFO"
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let text = crate::support::stdout(&out) + &stderr(&out);
    assert!(
        text.contains("schemas/saas/x.yaml:1:1: warning[skipped-file]: not a regular file"),
        "{text}"
    );
    assert!(
        text.contains("schemas/saas/huge.yaml:1:1: error[file-too-large]"),
        "{text}"
    );
    assert_eq!(text.matches("a symlink loop").count(), 1, "{text}");
    assert!(!text.contains("duplicate-collection"), "{text}");
    // A FIFO among the migration files: skipped with a warning, the command goes on.
    std::fs::remove_file(saas.join("huge.yaml")).unwrap();
    std::fs::remove_file(saas.join("x.yaml")).unwrap();
    std::fs::create_dir_all(p.path().join("migrations")).unwrap();
    let fifo = p.path().join("migrations/V0001__fifo.yaml");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let out =
        crate::support::caas_env(p.path(), &["migrate", "status"], &[("MONGODB_URI", &p.uri)]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        stderr(&out).contains("V0001__fifo.yaml:1:1: warning[skipped-file]"),
        "{}",
        show(&out)
    );
}

/// Credentials in every form the driver accepts never reach caas's output, on the error
/// paths that print a URI (unreachable server, invalid string, `--json` reports).
#[tokio::test(flavor = "multi_thread")]
async fn no_credential_form_reaches_the_output() {
    let p = TestProject::new("hsecret", &root().join("schemas"));
    let cases: &[(&str, &str)] = &[
        ("mongodb://u:with space-pw1@127.0.0.1:1/?directConnection=true", "space-pw1"),
        ("mongodb://u:RAW@AT-TAIL-pw2@127.0.0.1:1/?directConnection=true", "AT-TAIL-pw2"),
        ("mongodb://127.0.0.1:1/?directConnection=true&authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:tok-pw3", "tok-pw3"),
        ("mongodb://127.0.0.1:1/?directConnection=true&tls=true&tlsCertificateKeyFile=/nope.pem&tlsCertificateKeyFilePassword=key-pw4", "key-pw4"),
        ("mongodb://127.0.0.1:1/?directConnection=true&proxyHost=127.0.0.1&proxyPort=1&proxyPassword=proxy-pw5&proxyUsername=x", "proxy-pw5"),
        ("mongodb://u:bad-port-pw6@127.0.0.1:notaport/", "bad-port-pw6"),
        ("mongodbx://u:scheme-pw7@127.0.0.1:1/", "scheme-pw7"),
        ("mongodb://u:simple-pw9@127.0.0.1:1/", "simple-pw9"),
        ("mongodb://u:col:on:pw10@127.0.0.1:1/", "on:pw10"),
        ("mongodb://u:pct%40pw11@127.0.0.1:1/", "pw11"),
        ("mongodb://u:multi-pw12@127.0.0.1:1,127.0.0.1:2/?replicaSet=rs", "multi-pw12"),
        ("mongodb://u:pw13x@127.0.0.1:1/db?authSource=admin", "pw13x"),
        ("mongodb://127.0.0.1:1/?authMechanismProperties=SERVICE_NAME:svc,AWS_SESSION_TOKEN:tok-pw14", "tok-pw14"),
        ("mongodb://u:pw15-tail@127.0.0.1:1/?proxyHost=127.0.0.1&proxyPassword=proxy-pw15b", "pw15-tail"),
        ("http://u:http-pw16@127.0.0.1:1/", "http-pw16"),
        ("mongodb://u:pw17!$&'()*+,;=@127.0.0.1:1/", "pw17!$&'()*+,;="),
        ("mongodb://u:ünï-pw18@127.0.0.1:1/", "ünï-pw18"),
        ("mongodb://u:pw19%2Fslash@127.0.0.1:1/", "pw19"),
        ("mongodb://u:pw20@127.0.0.1:1/?password=opt-pw20", "opt-pw20"),
        ("mongodb://user%40corp:pw21x@127.0.0.1:1/", "pw21x"),
        ("mongodb://u:pw22x@[::1]:1/", "pw22x"),
        ("mongodb://u:%ü-pw23@127.0.0.1:1/", "pw23"),
    ];
    for (uri, secret) in cases {
        for args in [
            &["--connect-timeout", "1", "schema", "diff"][..],
            &["--connect-timeout", "1", "schema", "apply", "--json"],
            &["--connect-timeout", "1", "tenant", "list", "--json"],
        ] {
            let out = crate::support::caas_env(p.path(), args, &[("MONGODB_URI", uri)]);
            let all = crate::support::stdout(&out) + &stderr(&out);
            assert_eq!(out.status.code(), Some(2), "{uri}: {}", show(&out));
            assert!(
                !all.contains(secret),
                "{uri}: `{secret}` shown by caas {}: {all}",
                args.join(" ")
            );
        }
    }
    // A caas.toml whose `uri` line is broken: the error names the place, not the line.
    std::fs::write(
        p.path().join("caas.toml"),
        "[connection]\nuri = \"mongodb://u:toml-pw8@127.0.0.1:1/\nproduction = false\n",
    )
    .unwrap();
    let out = crate::support::caas(p.path(), &["tenant", "list"]);
    let all = crate::support::stdout(&out) + &stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        all.contains("caas.toml:2:") && !all.contains("toml-pw8"),
        "{all}"
    );
}

/// Ctrl-C during `migrate up` mid-backfill: it stops after the batch in flight, releases
/// its lease, exits 130, and a rerun resumes from the checkpoint: every item once.
#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_stops_migrate_up_at_a_safe_point_and_the_rerun_resumes() {
    use bson::{doc, Document};
    let p = TestProject::new("hsigint", &crate::support::fixture("migrate/schemas"))
        .with_migrations(&crate::support::fixture("migrate/migrations"));
    let places = crate::support::migrate_fleet(&p, 40).await;
    let ea = places[4].0.clone();
    let child = Command::new(env!("CARGO_BIN_EXE_caas"))
        .current_dir(p.path())
        .args([
            "migrate",
            "up",
            "--tenant",
            "ea",
            "--batch-pause-ms",
            "150",
            "--lease-seconds",
            "30",
        ])
        .env("MONGODB_URI", &p.uri)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    crate::exactly_once::wait_progress(&ea, 2, 10, 1).await;
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let started = Instant::now();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(
        started.elapsed().as_secs() < 10,
        "stops at the next safe point, not at the end"
    );
    assert_eq!(out.status.code(), Some(130), "{}", show(&out));
    assert!(stderr(&out).contains("interrupted"), "{}", show(&out));
    // The lease is released (a 30 s lease would otherwise block the rerun), the checkpoint kept.
    let held = ea
        .collection::<Document>("caas_locks")
        .count_documents(doc! { "owner": { "$type": "string" } })
        .await
        .unwrap();
    assert_eq!(held, 0, "the lease is released");
    let entry = ea
        .collection::<Document>("caas_migrations")
        .find_one(doc! { "version": 2 })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(entry.get_str("status"), Ok("running"), "{entry}");
    let rerun = ok(
        &p,
        &["migrate", "up", "--tenant", "ea", "--lock-timeout", "2"],
    );
    assert!(rerun.contains("resumed from checkpoint"), "{rerun}");
    let (_, visits) = crate::faults::totals(&places[4..5]).await;
    assert!(visits.iter().all(|v| *v == 1), "{visits:?}");
}

/// Ctrl-C during `schema apply`: targets in flight finish, the rest are not started, exit
/// 130; a rerun converges.
#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_stops_schema_apply_between_targets() {
    let p = TestProject::new("hsigapply", &root().join("schemas"));
    for i in 0..12 {
        ok(
            &p,
            &["tenant", "add", &format!("ent{i}"), "--tier", "enterprise"],
        );
    }
    let child = Command::new(env!("CARGO_BIN_EXE_caas"))
        .current_dir(p.path())
        .args(["schema", "apply", "--concurrency", "1"])
        .env("MONGODB_URI", &p.uri)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let c = crate::support::client().await;
    let deadline = Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let dbs = c.list_database_names().await.unwrap();
        if dbs
            .iter()
            .filter(|d| d.starts_with(&p.prefix) && d.contains("_ent"))
            .count()
            >= 2
        {
            break;
        }
        assert!(Instant::now() < deadline, "apply made no progress");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", show(&out));
    assert!(
        crate::support::stdout(&out).contains("not started (interrupted)"),
        "{}",
        show(&out)
    );
    ok(&p, &["schema", "apply"]);
    ok(&p, &["schema", "diff", "--exit-code"]);
}

/// A duplicate key in one spec is one finding, not the first of twenty: the broken file's
/// collection is still known, so other specs' references to it are not reported too.
#[tokio::test(flavor = "multi_thread")]
async fn a_broken_spec_does_not_bury_its_error_under_follow_on_findings() {
    let p = TestProject::new("hcascade", &root().join("schemas"));
    let file = p.path().join("schemas/saas/users/users.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text.replacen("domain: saas\n", "domain: saas\ndomain: saas\n", 1),
    )
    .unwrap();
    let out = crate::support::caas(p.path(), &["schema", "lint"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let said = crate::support::stdout(&out);
    assert!(
        said.contains("users.yaml:") && said.contains("duplicate"),
        "{said}"
    );
    assert!(
        said.contains(" spec files: 1 errors, 0 warnings"),
        "one finding, no cascade: {said}"
    );
}

/// A refused connection is an answer: caas says so at once instead of waiting out its
/// connect timeout.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_connection_fails_at_once() {
    let p = TestProject::new("hrefused", &root().join("schemas"));
    let started = Instant::now();
    let out = crate::support::caas_env(
        p.path(),
        &["--connect-timeout", "30", "tenant", "list"],
        &[("MONGODB_URI", "mongodb://u:refused-pw@127.0.0.1:1/")],
    );
    assert!(
        started.elapsed().as_secs() < 10,
        "did not wait for the timeout"
    );
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = stderr(&out);
    assert!(
        err.contains("Connection refused by 127.0.0.1:1") && !err.contains("refused-pw"),
        "{err}"
    );
}

/// A file name that is not UTF-8 is shown recognisably (lossily), not as an empty name.
#[tokio::test(flavor = "multi_thread")]
async fn a_non_utf8_file_name_is_shown_recognisably() {
    use std::os::unix::ffi::OsStrExt;
    let p = TestProject::new("hutf8", &root().join("schemas"));
    let name = std::ffi::OsStr::from_bytes(b"pl\xffans.yaml");
    std::fs::write(
        p.path().join("schemas/billing").join(name),
        "collection: planz\ndomain: billing\nfields:\n  code: { type: string }\n",
    )
    .unwrap();
    let out = crate::support::caas(p.path(), &["schema", "lint"]);
    let said = crate::support::stdout(&out);
    assert!(said.contains("file named `pl\u{FFFD}ans`"), "{said}");
}
