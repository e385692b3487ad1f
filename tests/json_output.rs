//! Every command's `--json` output, produced for real on the catalogue, validated against
//! its documented shape (docs/json-output.schema.json): `version`, `command`, and the
//! command's fields, whether or not anything changed.

use crate::support::{copy_dir, root, show, stdout, TestProject};

fn validator() -> jsonschema::Validator {
    let text = std::fs::read_to_string(root().join("docs/json-output.schema.json")).unwrap();
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    jsonschema::draft7::new(&schema).expect("the output schema compiles")
}

#[test]
fn every_command_prints_its_documented_json_shape() {
    let p = TestProject::new("json_out", &root().join("schemas"))
        .with_migrations(&root().join("migrations"));
    copy_dir(&root().join("seeds"), &p.path().join("seeds"));
    let v = validator();
    let docs_out = p.path().join("out-docs");
    let docs_out = docs_out.to_str().unwrap();
    let export_out = p.path().join("out-export");
    let export_out = export_out.to_str().unwrap();
    // Users live in `admin`: named with the project's prefix, so its clean-up drops it.
    let username = format!("{}_billing", p.prefix);
    let runs: Vec<(Vec<&str>, &str)> = vec![
        (vec!["schema", "lint", "--json"], "schema lint"),
        (vec!["migrate", "lint", "--json"], "migrate lint"),
        (
            vec![
                "schema",
                "compile",
                "--collection",
                "users",
                "--format",
                "json",
            ],
            "schema compile",
        ),
        (
            vec!["tenant", "add", "acme", "--tier", "pro", "--json"],
            "tenant add",
        ),
        (vec!["tenant", "list", "--json"], "tenant list"),
        (vec!["schema", "plan", "--json"], "schema plan"),
        (vec!["schema", "apply", "--json"], "schema apply"),
        (vec!["schema", "apply", "--json"], "schema apply"),
        (vec!["schema", "diff", "--json"], "schema diff"),
        (vec!["migrate", "status", "--json"], "migrate status"),
        (vec!["migrate", "up", "--json"], "migrate up"),
        (vec!["migrate", "verify", "--json"], "migrate verify"),
        (
            vec!["migrate", "down", "--dry-run", "--json"],
            "migrate down",
        ),
        (
            vec!["migrate", "repair", "--clear-failed", "--json"],
            "migrate repair",
        ),
        (vec!["migrate", "unlock", "--json"], "migrate unlock"),
        (
            vec![
                "migrate",
                "baseline",
                "--version",
                "1",
                "--dry-run",
                "--json",
            ],
            "migrate baseline",
        ),
        (vec!["schema", "audit", "--json"], "schema audit"),
        (vec!["schema", "pull", "--dry-run", "--json"], "schema pull"),
        (vec!["roles", "plan", "--json"], "roles plan"),
        (vec!["roles", "apply", "--json"], "roles apply"),
        (vec!["roles", "diff", "--json"], "roles diff"),
        (
            vec![
                "roles",
                "user",
                "billing-service",
                "--username",
                &username,
                "--password-env",
                "CAAS_TEST_PW",
                "--json",
            ],
            "roles user",
        ),
        (vec!["seed", "--dry-run", "--json"], "seed --dry-run"),
        (vec!["seed", "--json"], "seed"),
        (
            vec!["tenant", "move", "demo-pebble", "--to", "starter", "--json"],
            "tenant move",
        ),
        (
            vec![
                "tenant",
                "move",
                "demo-harbor",
                "--to",
                "pro",
                "--stop-after",
                "copy",
                "--json",
            ],
            "tenant move",
        ),
        (vec!["tenant", "moves", "--json"], "tenant moves"),
        (
            vec!["tenant", "move", "demo-harbor", "--abort", "--json"],
            "tenant move",
        ),
        (
            vec!["tenant", "suspend", "demo-quill", "--json"],
            "tenant suspend",
        ),
        (
            vec!["tenant", "resume", "demo-quill", "--json"],
            "tenant resume",
        ),
        (
            vec![
                "tenant",
                "export",
                "demo-atlas",
                "--out",
                export_out,
                "--json",
            ],
            "tenant export",
        ),
        (
            vec![
                "tenant",
                "import",
                export_out,
                "--as",
                "atlas-two",
                "--json",
            ],
            "tenant import",
        ),
        (
            vec![
                "tenant",
                "remove",
                "atlas-two",
                "--no-export",
                "--yes",
                "--json",
            ],
            "tenant remove",
        ),
        (vec!["seed", "--reset", "--yes", "--json"], "seed --reset"),
        (vec!["docs", "--out", docs_out, "--json"], "docs"),
        (
            vec!["docs", "--out", docs_out, "--check", "--json"],
            "docs --check",
        ),
    ];
    for (args, command) in runs {
        let out = crate::support::caas_env(
            p.path(),
            &args,
            &[("MONGODB_URI", &p.uri), ("CAAS_TEST_PW", "s3cret-pw-123")],
        );
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "{args:?}: {}",
            show(&out)
        );
        let value: serde_json::Value = serde_json::from_str(&stdout(&out))
            .unwrap_or_else(|e| panic!("{args:?}: not one JSON document ({e}): {}", show(&out)));
        assert_eq!(value["version"], 1, "{args:?}");
        assert_eq!(value["command"], command, "{args:?}");
        let errors: Vec<String> = v
            .iter_errors(&value)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{args:?} does not match its documented shape: {errors:?}\n{value:#}"
        );
        assert!(
            !stdout(&out).contains("s3cret-pw-123"),
            "a password reached the output"
        );
    }
    // The shape is not a rubber stamp: a report missing a documented field fails.
    let broken = serde_json::json!({ "version": 1, "command": "schema apply", "targets": [] });
    assert!(!v.is_valid(&broken));
}
