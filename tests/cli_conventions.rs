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

/// The files caas ships (catalogue and examples) name their editor schema in a first-line
/// modeline; the named file exists, and the file is valid against it. A typo'd key is not.
#[test]
fn shipped_files_validate_against_the_editor_schemas_they_name() {
    let root = crate::support::root();
    let mut files = Vec::new();
    for base in std::iter::once(root.clone()).chain(
        std::fs::read_dir(root.join("examples"))
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir()),
    ) {
        files.push(base.join("caas.toml"));
        for dir in ["migrations", "seeds"] {
            if let Ok(entries) = std::fs::read_dir(base.join(dir)) {
                files.extend(
                    entries
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| p.extension().is_some_and(|x| x == "yaml")),
                );
            }
        }
    }
    assert!(files.len() >= 15, "{files:?}");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let first = text.lines().next().unwrap_or("");
        let rel = first
            .strip_prefix("# yaml-language-server: $schema=")
            .or_else(|| first.strip_prefix("#:schema "))
            .unwrap_or_else(|| panic!("{}: no schema modeline", file.display()));
        let schema_path = file.parent().unwrap().join(rel);
        let schema: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(&schema_path)
                .unwrap_or_else(|_| panic!("{}: {} does not exist", file.display(), rel)),
        )
        .unwrap();
        let value: serde_json::Value = if file.extension().is_some_and(|x| x == "toml") {
            serde_json::to_value(toml::from_str::<toml::Value>(&text).unwrap()).unwrap()
        } else {
            caas_core::base::yaml::parse(&text).unwrap().value
        };
        let v = jsonschema::draft7::new(&schema).unwrap();
        let errors: Vec<String> = v.iter_errors(&value).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{}: {errors:?}", file.display());
        // One misspelt top-level key is refused, so the schema is not a rubber stamp.
        let mut typo = value.clone();
        typo.as_object_mut()
            .unwrap()
            .insert("descriptoin".into(), 1.into());
        assert!(
            !v.is_valid(&typo),
            "{}: a typo'd key passes",
            file.display()
        );
    }
}

/// `-v` adds what caas does per target on stderr (plain text off a terminal), `-q` leaves
/// only results, and the two together are refused.
#[test]
fn verbose_and_quiet_change_stderr_only() {
    let p = crate::support::TestProject::new(
        "conv_verbose",
        &crate::support::fixture("migrate/schemas"),
    )
    .with_migrations(&crate::support::fixture("migrate/migrations"));
    crate::support::expect_ok(&p, &["tenant", "add", "pa", "--tier", "pro"]);
    crate::support::expect_ok(&p, &["schema", "apply"]);
    let loud = p.caas(&["-v", "migrate", "up"]);
    assert!(loud.status.success(), "{}", show(&loud));
    let err = crate::support::stderr(&loud);
    assert!(
        err.contains("lease taken") && err.contains("migrate: target done"),
        "{err}"
    );
    assert!(
        !err.contains('\u{1b}'),
        "no colour codes off a terminal: {err}"
    );
    let quiet = p.caas(&["-q", "migrate", "down", "--yes", "--tenant", "pa"]);
    assert!(quiet.status.success(), "{}", show(&quiet));
    assert!(
        crate::support::stderr(&quiet).is_empty(),
        "{}",
        show(&quiet)
    );
    assert!(stdout(&quiet).contains("reverted"), "{}", show(&quiet));
    let both = p.caas(&["-q", "-v", "migrate", "status"]);
    assert_eq!(both.status.code(), Some(2), "{}", show(&both));
}

/// `schema lint --format github` prints one workflow command per finding, with the file,
/// line and column GitHub needs to annotate the pull request, and the fix in the message.
#[test]
fn lint_findings_as_github_annotations() {
    let root = crate::support::root();
    let file = crate::support::fixture("specs/broken/saas/geo_not_point.yaml");
    let out = caas(
        &root,
        &[
            "schema",
            "lint",
            "--format",
            "github",
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let text = stdout(&out);
    let line = text
        .lines()
        .find(|l| l.starts_with("::error "))
        .unwrap_or_else(|| panic!("no annotation: {text}"));
    assert!(
        line.contains("geo_not_point.yaml,line=6,col=13,title=caas index::"),
        "{line}"
    );
    assert!(
        line.contains("indexes[0].keys.where: 2dsphere index") && line.contains("(fix: "),
        "{line}"
    );
}

/// `--progress json`: stderr is JSON lines, one event per target and step, with outcome
/// and duration; stdout keeps the one result document.
#[test]
fn progress_as_json_lines() {
    let p = crate::support::TestProject::new(
        "conv_progress",
        &crate::support::fixture("migrate/schemas"),
    )
    .with_migrations(&crate::support::fixture("migrate/migrations"));
    crate::support::expect_ok(&p, &["tenant", "add", "pa", "--tier", "pro"]);
    crate::support::expect_ok(&p, &["schema", "apply"]);
    let out = p.caas(&["migrate", "up", "--json", "--progress", "json"]);
    assert!(out.status.success(), "{}", show(&out));
    let result: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(result["command"], "migrate up");
    let events: Vec<serde_json::Value> = crate::support::stderr(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let named = |m: &str| events.iter().filter(|e| e["message"] == m).count();
    assert!(named("migrate: target start") >= 1, "{events:?}");
    assert_eq!(
        named("migrate: step"),
        named("migrate: step done"),
        "{events:?}"
    );
    assert!(named("migrate: step done") >= 2, "{events:?}");
    for e in events
        .iter()
        .filter(|e| e["message"] == "migrate: step done")
    {
        assert_eq!(e["outcome"], "ok", "{e}");
        assert!(
            e["ms"].is_u64() && e["target"].is_string() && e["kind"].is_string(),
            "{e}"
        );
    }
}

/// Colour only when asked for or on a terminal: `--color always` colours outcomes,
/// `--color never` and the default off a terminal print plain text.
#[test]
fn colour_only_when_wanted() {
    let p = crate::support::TestProject::new(
        "conv_colour",
        &crate::support::fixture("migrate/schemas"),
    )
    .with_migrations(&crate::support::fixture("migrate/migrations"));
    crate::support::expect_ok(&p, &["tenant", "add", "pa", "--tier", "pro"]);
    crate::support::expect_ok(&p, &["schema", "apply"]);
    let coloured = p.caas(&["migrate", "up", "--color", "always"]);
    assert!(coloured.status.success(), "{}", show(&coloured));
    assert!(stdout(&coloured).contains("\u{1b}["), "{}", show(&coloured));
    crate::support::expect_ok(&p, &["migrate", "down", "--yes", "--tenant", "pa"]);
    for args in [
        &["migrate", "up", "--color", "never"][..],
        &["migrate", "status"][..],
    ] {
        let out = p.caas(args);
        assert!(out.status.success(), "{}", show(&out));
        assert!(!stdout(&out).contains('\u{1b}'), "{args:?}: {}", show(&out));
    }
}

/// `schema lint --format sarif`: a SARIF 2.1.0 log with one rule per finding code and a
/// result per finding carrying its file, line and column.
#[test]
fn lint_findings_as_sarif() {
    let root = crate::support::root();
    let dir = crate::support::fixture("specs/broken/saas");
    let out = caas(
        &root,
        &["schema", "lint", "--format", "sarif", dir.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let log: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(log["version"], "2.1.0");
    let run = &log["runs"][0];
    let rules: Vec<&str> = run["tool"]["driver"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    let results = run["results"].as_array().unwrap();
    assert!(results.len() > 20, "{}", results.len());
    for r in results {
        assert!(rules.contains(&r["ruleId"].as_str().unwrap()), "{r}");
        let loc = &r["locations"][0]["physicalLocation"];
        assert!(
            loc["artifactLocation"]["uri"]
                .as_str()
                .unwrap()
                .ends_with(".yaml"),
            "{r}"
        );
        assert!(loc["region"]["startLine"].as_u64().unwrap() >= 1, "{r}");
    }
    let geo = results
        .iter()
        .find(|r| {
            r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                .as_str()
                .unwrap()
                .ends_with("geo_not_point.yaml")
        })
        .unwrap();
    assert_eq!(
        geo["locations"][0]["physicalLocation"]["region"]["startLine"],
        6
    );
    assert_eq!(
        geo["locations"][0]["physicalLocation"]["region"]["startColumn"],
        13
    );
}

/// `caas migrate lint` finds, offline, what `migrate up` would refuse, and prints it in
/// each format: text, JSON (the documented shape), GitHub annotations and SARIF, each with
/// the same files, lines and columns.
#[test]
fn migrate_lint_reports_bad_migration_files_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    crate::support::copy_dir(
        &crate::support::fixture("migrate/schemas"),
        &dir.path().join("schemas"),
    );
    crate::support::copy_dir(
        &crate::support::fixture("migrate/bad"),
        &dir.path().join("migrations"),
    );
    std::fs::write(dir.path().join("caas.toml"), "").unwrap();
    // No server anywhere: lint never connects.
    let env = [(
        "MONGODB_URI",
        "mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=200",
    )];
    let run = |args: &[&str]| crate::support::caas_env(dir.path(), args, &env);
    let text = run(&["migrate", "lint"]);
    assert_eq!(text.status.code(), Some(1), "{}", show(&text));
    let text = stdout(&text);
    assert!(text.contains("V0001__unknown_step.yaml:4:5"), "{text}");
    assert!(text.contains("V0009__wrong_scope.yaml:4:32"), "{text}");
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&run(&["migrate", "lint", "--json"]))).unwrap();
    assert_eq!(json["command"], "migrate lint");
    let errors = json["errors"].as_u64().unwrap();
    assert!(errors >= 9, "{json:#}");
    let github = stdout(&run(&["migrate", "lint", "--format", "github"]));
    let annotations: Vec<&str> = github
        .lines()
        .filter(|l| l.starts_with("::error file="))
        .collect();
    assert_eq!(annotations.len() as u64, errors, "{github}");
    assert!(
        annotations
            .iter()
            .any(|l| l.contains("V0001__unknown_step.yaml,line=4,col=5,")),
        "{github}"
    );
    let sarif: serde_json::Value =
        serde_json::from_str(&stdout(&run(&["migrate", "lint", "--format", "sarif"]))).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len() as u64, errors);
    assert!(results.iter().any(|r| {
        let loc = &r["locations"][0]["physicalLocation"];
        loc["artifactLocation"]["uri"]
            .as_str()
            .unwrap()
            .ends_with("V0009__wrong_scope.yaml")
            && loc["region"]["startLine"] == 4
            && loc["region"]["startColumn"] == 32
    }));
    // And `up` refuses the same files before it connects.
    let up = run(&["migrate", "up"]);
    assert_eq!(up.status.code(), Some(2), "{}", show(&up));
    assert!(
        crate::support::stderr(&up).contains("nothing ran"),
        "{}",
        show(&up)
    );
}

/// `caas init` starts a project that lints clean; caas finds it from any folder inside it;
/// outside one, the message names the folder and both ways out; a second init refuses and
/// leaves every file as it was.
#[test]
fn init_then_lint_from_a_subfolder_and_no_project_outside() {
    let dir = tempfile::tempdir().unwrap();
    let out = caas(dir.path(), &["init", "acme"]);
    assert!(out.status.success(), "{}", show(&out));
    let project = dir.path().join("acme");
    for file in [
        "caas.toml",
        "schemas/saas/notes.yaml",
        "schemas/platform/saas_clients.yaml",
        "schemas/caas-spec.schema.json",
        "seeds/demo.yaml",
        "ci/caas.yml",
    ] {
        assert!(project.join(file).is_file(), "{file} missing");
    }
    assert!(project.join("migrations").is_dir());
    let toml = std::fs::read_to_string(project.join("caas.toml")).unwrap();
    assert!(
        toml.lines()
            .filter(|l| l.contains(" = "))
            .all(|l| l.trim_start().starts_with('#')),
        "every key is commented:\n{toml}"
    );
    let spec = std::fs::read_to_string(project.join("schemas/saas/notes.yaml")).unwrap();
    assert!(spec.starts_with("# yaml-language-server: $schema=../caas-spec.schema.json"));

    let inside = project.join("schemas/saas");
    let lint = caas(&inside, &["schema", "lint"]);
    assert_eq!(lint.status.code(), Some(0), "{}", show(&lint));
    assert!(
        stdout(&lint).contains("6 spec files: 0 errors, 0 warnings"),
        "{}",
        show(&lint)
    );
    let migrations = caas(&inside, &["migrate", "lint"]);
    assert_eq!(migrations.status.code(), Some(0), "{}", show(&migrations));

    let outside = caas(dir.path(), &["schema", "lint"]);
    assert_eq!(outside.status.code(), Some(2), "{}", show(&outside));
    let err = crate::support::stderr(&outside);
    let shown = dir.path().canonicalize().unwrap();
    assert!(
        err.contains(&format!("no caas.toml in {}", shown.display()))
            || err.contains(&format!("no caas.toml in {}", dir.path().display())),
        "{err}"
    );
    assert!(err.contains("caas init") && err.contains("-C"), "{err}");
    let elsewhere = caas(
        dir.path(),
        &["-C", project.to_str().unwrap(), "schema", "lint"],
    );
    assert_eq!(elsewhere.status.code(), Some(0), "{}", show(&elsewhere));

    std::fs::write(project.join("schemas/saas/notes.yaml"), "mine").unwrap();
    let again = caas(dir.path(), &["init", "acme"]);
    assert_eq!(again.status.code(), Some(2), "{}", show(&again));
    assert!(crate::support::stderr(&again).contains("already holds a caas project"));
    assert_eq!(
        std::fs::read_to_string(project.join("schemas/saas/notes.yaml")).unwrap(),
        "mine",
        "nothing overwritten"
    );
}
