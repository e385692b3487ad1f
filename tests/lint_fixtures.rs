//! Every bad-spec fixture gives exactly one finding, with its code, place, message and fix.

use std::path::Path;

use caas_core::base::diagnostic::{Finding, Severity};
use caas_core::project::lint_specs as lint;
use caas_core::spec::load_file;

use crate::support::{caas, fixture, show, stdout};

/// Load and lint one fixture as if its folder were a project's spec directory.
fn findings_for(rel: &str) -> Vec<Finding> {
    let dir = fixture("specs/broken");
    let file = dir.join(rel);
    match load_file(&file, Some(&dir)) {
        Ok(spec) => lint(&[spec], &[]),
        Err(findings) => findings,
    }
}

struct Expect {
    file: &'static str,
    code: &'static str,
    line: usize,
    column: usize,
    path: &'static str,
    message: &'static str,
    fix: &'static str,
}

const fn e(
    file: &'static str,
    code: &'static str,
    (line, column): (usize, usize),
    path: &'static str,
    message: &'static str,
    fix: &'static str,
) -> Expect {
    Expect {
        file,
        code,
        line,
        column,
        path,
        message,
        fix,
    }
}

const CASES: &[Expect] = &[
    e(
        "saas/access_mode.yaml",
        "invalid-value",
        (4, 39),
        "access[0].mode",
        "`admin` is not a valid access mode",
        "use one of: read, write",
    ),
    e(
        "saas/collation_strength.yaml",
        "index",
        (7, 40),
        "indexes[0].collation.strength",
        "collation strength 9 is out of range",
        "use 1 (base letters) to 5 (identical); 2 is case-i",
    ),
    e(
        "saas/dotted_field.yaml",
        "invalid-name",
        (4, 3),
        "fields.a.b",
        "invalid field name `a.b`: a `.` in a field name cannot be queried with",
        "rename the field (letters, digits and `_`)",
    ),
    e(
        "saas/empty_keys.yaml",
        "index",
        (6, 11),
        "indexes[0].keys",
        "index has no keys",
        "list at least one key, e.g. `keys: {email: 1}`",
    ),
    e(
        "saas/enum_empty.yaml",
        "empty-enum",
        (4, 32),
        "fields.color.enum",
        "`enum` is empty: no value can pass",
        "list the allowed values, or remove `enum`",
    ),
    e(
        "saas/enum_repeat.yaml",
        "duplicate-enum",
        (4, 44),
        "fields.color.enum[2]",
        "enum value \"red\" is listed twice",
        "remove the repeat",
    ),
    e(
        "saas/expr_unknown_op.yaml",
        "rule",
        (7, 13),
        "rules[0].expr.$gtee",
        "`$gtee` is not an aggregation expression operator; MongoDB refuses the",
        "did you mean `$gte`?",
    ),
    e(
        "saas/fields_typo.yaml",
        "unknown-key",
        (3, 1),
        "feilds",
        "unknown key `feilds`",
        "did you mean `fields`? allowed keys here: collecti",
    ),
    e(
        "saas/items_untyped.yaml",
        "missing-key",
        (4, 31),
        "fields.tags.items",
        "missing required key `type`",
        "add `type:`",
    ),
    e(
        "saas/level_typo.yaml",
        "invalid-value",
        (3, 22),
        "validation.level",
        "`strictest` is not a valid validation level",
        "use one of: strict, moderate, off",
    ),
    e(
        "saas/max_below_min.yaml",
        "empty-range",
        (4, 37),
        "fields.name.min_length",
        "`min_length` (10) is greater than `max_length` (2): no value can pass",
        "swap or correct `min_length` and `max_length`",
    ),
    e(
        "saas/min_length_int.yaml",
        "restriction-type",
        (4, 21),
        "fields.age.min_length",
        "`min_length` does not apply to a field of type `int`",
        "remove `min_length`, or change the type to one it ",
    ),
    e(
        "saas/misspelt_domain.yaml",
        "invalid-value",
        (2, 9),
        "domain",
        "`sass` is not a valid domain",
        "did you mean `saas`? use one of: platform, saas, b",
    ),
    e(
        "saas/nested_undeclared.yaml",
        "undeclared-field",
        (6, 13),
        "indexes[0].keys.profile.phon",
        "field `profile.phon` is not declared",
        "declare `profile.phon` under fields",
    ),
    e(
        "saas/required_string.yaml",
        "invalid-value",
        (4, 35),
        "fields.name.required",
        "\"yes\" is not of type \"boolean\"",
        "see schemas/caas-spec.schema.json for this key's f",
    ),
    e(
        "saas/rule_require_unknown.yaml",
        "undeclared-field",
        (7, 15),
        "rules[0].require[0]",
        "field `last4` is not declared",
        "declare `last4` under fields",
    ),
    e(
        "saas/sh_retention.yaml",
        "unknown-key",
        (8, 3),
        "soft_delete.retention_days",
        "`retention_days` is not a key of a `state_history` soft delete",
        "its keys are style, states, deleted_states, state_",
    ),
    e(
        "saas/ttl_negative.yaml",
        "invalid-value",
        (7, 18),
        "indexes[0].ttl_seconds",
        "-5 is less than the minimum of 0",
        "see schemas/caas-spec.schema.json for this key's f",
    ),
    e(
        "saas/unique_string.yaml",
        "invalid-value",
        (7, 13),
        "indexes[0].unique",
        "\"true\" is not of type \"boolean\"",
        "see schemas/caas-spec.schema.json for this key's f",
    ),
    e(
        "saas/owner_empty.yaml",
        "service-name",
        (3, 8),
        "owner",
        "service `` is empty",
        "lowercase letters, digits and `-`",
    ),
    e(
        "saas/access_bad.yaml",
        "service-name",
        (4, 16),
        "access[0].service",
        "service `Billing Service` is not a service name",
        "lowercase letters, digits and `-`",
    ),
    e(
        "saas/partial_regex.yaml",
        "partial-filter",
        (8, 25),
        "indexes[0].partial.email.$regex",
        "`$regex` (on `email`) is not allowed in a partial filter",
        "`$exists: true`",
    ),
    e(
        "saas/partial_exists_false.yaml",
        "partial-filter",
        (7, 25),
        "indexes[0].partial.email.$exists",
        "a partial filter takes `$exists: true` only",
        "`$exists: true`",
    ),
    e(
        "saas/enum_pattern.yaml",
        "enum-restricted",
        (4, 36),
        "fields.pet.enum[1]",
        "enum value \"Cat\" does not match the field's pattern `^[a-z]+$`",
        "correct the value, or the field's restriction",
    ),
    e(
        "saas/enum_range.yaml",
        "enum-restricted",
        (4, 36),
        "fields.level.enum[2]",
        "enum value 12 is above max 10",
        "correct the value, or the field's restriction",
    ),
    e(
        "saas/ref_bool.yaml",
        "ref-type",
        (4, 25),
        "fields.active.ref",
        "`ref` on a `bool` field",
        "object_id, string or uuid field",
    ),
    e(
        "saas/yaml_syntax.yaml",
        "yaml-syntax",
        (5, 8),
        "",
        "did not find expected ',' or '}'",
        "fix the YAML syntax",
    ),
    e(
        "saas/duplicate_key.yaml",
        "yaml-syntax",
        (5, 1),
        "",
        "duplicate key `fields` (first defined at line 3)",
        "fix the YAML",
    ),
    e(
        "saas/empty.yaml",
        "yaml-syntax",
        (1, 1),
        "",
        "the file is empty",
        "",
    ),
    e(
        "saas/two_documents.yaml",
        "yaml-syntax",
        (4, 1),
        "",
        "one YAML document",
        "",
    ),
    e(
        "saas/unknown_key.yaml",
        "unknown-key",
        (7, 5),
        "indexes[0].uniqe",
        "unknown key `uniqe`",
        "did you mean `unique`?",
    ),
    e(
        "saas/misspelt_type.yaml",
        "invalid-value",
        (4, 17),
        "fields.name.type",
        "`strng` is not a valid field type",
        "did you mean `string`?",
    ),
    e(
        "saas/missing_domain.yaml",
        "missing-key",
        (1, 1),
        "",
        "missing required key `domain`",
        "add `domain:`",
    ),
    e(
        "saas/rule_typo.yaml",
        "unknown-key",
        (7, 5),
        "rules[0].any_of_requird",
        "unknown key `any_of_requird`",
        "did you mean `any_of_required`?",
    ),
    e(
        "saas/soft_delete_style.yaml",
        "invalid-value",
        (3, 14),
        "soft_delete",
        "`soft_delete` needs a valid `style`",
        "style: deleted_at",
    ),
    e(
        "saas/index_direction.yaml",
        "invalid-value",
        (6, 16),
        "indexes[0].keys.a",
        "`2` is not an index key kind for `a`",
        "1, -1, text, 2dsphere or hashed",
    ),
    e(
        "saas/index_undeclared.yaml",
        "undeclared-field",
        (6, 13),
        "indexes[0].keys.emial",
        "field `emial` is not declared",
        "did you mean `email`?",
    ),
    e(
        "saas/ttl_non_date.yaml",
        "ttl",
        (7, 5),
        "indexes[0].ttl_seconds",
        "TTL on `code`, a `string` field",
        "index a date field",
    ),
    e(
        "saas/ttl_compound.yaml",
        "ttl",
        (8, 5),
        "indexes[0].ttl_seconds",
        "TTL on a compound index (2 keys)",
        "separate index",
    ),
    e(
        "saas/global_unique.yaml",
        "global-unique",
        (8, 5),
        "indexes[0].per_tenant",
        "unique index across every tenant",
        "remove `per_tenant: false`",
    ),
    e(
        "saas/sparse_shared.yaml",
        "sparse-shared",
        (8, 5),
        "indexes[0].sparse",
        "`sparse` has no effect on a shared tenant collection",
        "partial",
    ),
    e(
        "saas/enum_type.yaml",
        "enum-type",
        (4, 33),
        "fields.level.enum[1]",
        "enum value \"two\" is not of the field's type `int`",
        "value of type `int`",
    ),
    e(
        "saas/bad_pattern.yaml",
        "invalid-pattern",
        (4, 34),
        "fields.code.pattern",
        "`([a-z` is not a valid regular expression",
        "single-quote",
    ),
    e(
        "saas/duplicate_index_name.yaml",
        "duplicate-index",
        (9, 11),
        "indexes[1].keys",
        "index name `lookup` is also the name of indexes[0]",
        "different `name`",
    ),
    e(
        "saas/two_text.yaml",
        "text-index",
        (8, 5),
        "indexes[1]",
        "2 text indexes; MongoDB allows one per collection",
        "combine",
    ),
    e(
        "billing/wrong_folder.yaml",
        "domain-folder",
        (2, 9),
        "domain",
        "domain `saas` contradicts the folder `billing/`",
        "move the file to `saas/`",
    ),
    e(
        "saas/system.users.yaml",
        "invalid-name",
        (1, 13),
        "collection",
        "`system.` are reserved",
        "no `system.` prefix",
    ),
    e(
        "saas/dollar_field.yaml",
        "invalid-name",
        (4, 3),
        "fields.$where",
        "names starting with `$` are reserved",
        "rename the field",
    ),
    e(
        "saas/reserved_field.yaml",
        "reserved-field",
        (4, 3),
        "fields.tenant_id",
        "caas adds `tenant_id`",
        "remove the declaration",
    ),
    e(
        "saas/restriction_type.yaml",
        "restriction-type",
        (4, 21),
        "fields.age.pattern",
        "`pattern` does not apply to a field of type `int`",
        "remove `pattern`",
    ),
    e(
        "saas/empty_range.yaml",
        "empty-range",
        (4, 26),
        "fields.age.min",
        "`min` (10) is greater than `max` (5)",
        "swap",
    ),
    e(
        "saas/untyped_array.yaml",
        "untyped-array",
        (4, 3),
        "fields.tags",
        "array `tags` does not say what its items are",
        "items: {type: ...}",
    ),
    e(
        "saas/rule_undeclared.yaml",
        "undeclared-field",
        (7, 30),
        "rules[0].any_of_required[1]",
        "field `phnoe` is not declared",
        "did you mean `phone`?",
    ),
    e(
        "saas/conditional_never.yaml",
        "rule",
        (7, 19),
        "rules[0].when.kind",
        "`kind` can never equal \"regualr\"",
        "from its enum: \"regular\", \"guest\"",
    ),
    e(
        "saas/expr_bad.yaml",
        "undeclared-field",
        (7, 11),
        "rules[0].expr",
        "field `start_at` is not declared",
        "did you mean `starts_at`?",
    ),
    e(
        "saas/expr_not_operator.yaml",
        "rule",
        (6, 11),
        "rules[0].expr",
        "`expr` must be one aggregation operator",
        "single `$` operator",
    ),
    e(
        "analytics/ts_unique.yaml",
        "time-series",
        (11, 5),
        "indexes[0].unique",
        "time-series collections do not support unique indexes",
        "remove `unique`",
    ),
    e(
        "analytics/ts_unacknowledged.yaml",
        "time-series-validation",
        (4, 1),
        "time_series",
        "field rules are not enforced on a time-series collection",
        "validation: {level: off}",
    ),
    e(
        "saas/unknown_ref.yaml",
        "unknown-ref",
        (4, 37),
        "fields.owner_id.ref",
        "`ref: usres` names no collection",
        "",
    ),
    e(
        "saas/file_name.yaml",
        "file-name",
        (1, 13),
        "collection",
        "collection `another_name` is defined in a file named `file_name`",
        "rename the file to `another_name.yaml`",
    ),
    e(
        "saas/not_tenant_scoped.yaml",
        "placement",
        (3, 16),
        "tenant_scoped",
        "must be tenant-scoped",
        "remove `tenant_scoped: false`",
    ),
    e(
        "saas/hashed_unique.yaml",
        "index",
        (7, 5),
        "indexes[0].unique",
        "cannot make a hashed index unique",
        "ascending index",
    ),
    e(
        "saas/state_not_listed.yaml",
        "soft-delete",
        (3, 14),
        "soft_delete.deleted_states[0]",
        "deleted state `deleted` is not one of the states",
        "active, removed",
    ),
    e(
        "saas/geo_not_point.yaml",
        "index",
        (6, 13),
        "indexes[0].keys.where",
        "2dsphere index on `where`",
        "`type: geo_point`",
    ),
    e(
        "saas/shard_undeclared.yaml",
        "undeclared-field",
        (6, 10),
        "shard.key.numbr",
        "field `numbr` is not declared",
        "did you mean `number`?",
    ),
    e(
        "saas/shard_array.yaml",
        "shard-key",
        (6, 10),
        "shard.key.tags",
        "shard key field `tags` is an array",
        "scalar field",
    ),
    e(
        "saas/shard_optional.yaml",
        "shard-key",
        (6, 10),
        "shard.key.region",
        "shard key field `region` is optional",
        "`missing_as_null: true`",
    ),
    e(
        "saas/shard_two_hashed.yaml",
        "shard-key",
        (6, 8),
        "shard.key",
        "2 hashed fields: MongoDB (Hashed Sharding)",
        "keep `hashed` on one field",
    ),
    e(
        "saas/shard_unique_hashed.yaml",
        "shard-key",
        (7, 11),
        "shard.unique",
        "a unique shard key cannot be hashed",
        "make the key ranged",
    ),
    e(
        "saas/shard_unique_prefix.yaml",
        "shard-unique-index",
        (7, 5),
        "indexes[0].unique",
        "unique index {tenant_id, number} is not prefixed by the shard key {tenant_id, _id}",
        "`shard: { key: { number: 1 } }`",
    ),
    e(
        "saas/shard_tenant_in_database.yaml",
        "shard-key",
        (6, 8),
        "shard.key",
        "every document has the same `tenant_id`",
        "without `tenant_id`",
    ),
    e(
        "analytics/shard_timeseries.yaml",
        "shard-key",
        (12, 8),
        "shard.key",
        "`value` cannot be in a time-series shard key",
        "the meta field",
    ),
];

#[test]
fn each_bad_fixture_gives_its_finding() {
    for want in CASES {
        let got = findings_for(want.file);
        assert_eq!(
            got.len(),
            1,
            "{}: expected one finding, got {got:#?}",
            want.file
        );
        let f = &got[0];
        let place = format!("{}: {f}", want.file);
        assert_eq!(f.code, want.code, "{place}");
        assert_eq!((f.line, f.column), (want.line, want.column), "{place}");
        assert_eq!(f.path, want.path, "{place}");
        assert!(
            f.message.contains(want.message),
            "{place}\nwanted message: {}",
            want.message
        );
        assert!(
            f.fix.contains(want.fix),
            "{place}\nwanted fix: {}",
            want.fix
        );
        assert!(f.file.ends_with(want.file), "{place}");
        let expect_severity = if want.code == "time-series-validation" {
            Severity::Warning
        } else {
            Severity::Error
        };
        assert_eq!(f.severity, expect_severity, "{place}");
    }
}

#[test]
fn every_broken_fixture_is_covered() {
    let dir = fixture("specs/broken");
    let files = caas_core::base::files::discover(&dir).unwrap();
    for file in &files {
        let rel = file
            .strip_prefix(&dir)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(
            CASES.iter().any(|c| c.file == rel),
            "{rel} has no expectation in CASES"
        );
    }
    assert!(files.len() >= 20, "at least 20 bad-spec fixtures");
}

#[test]
fn valid_fixtures_and_catalogue_lint_clean() {
    for dir in [
        fixture("specs/valid"),
        crate::support::root().join("schemas"),
    ] {
        let report = caas_core::spec::load_project(&dir, &[]).unwrap();
        assert!(report.findings.is_empty(), "{:#?}", report.findings);
        let findings = lint(&report.specs, &[]);
        assert!(findings.is_empty(), "{}: {findings:#?}", dir.display());
    }
}

#[test]
fn cli_exit_codes_and_json() {
    let root = crate::support::root();
    let clean = caas(&root, &["schema", "lint"]);
    assert_eq!(clean.status.code(), Some(0), "{}", show(&clean));
    assert!(
        stdout(&clean).contains("31 spec files: 0 errors, 0 warnings"),
        "{}",
        show(&clean)
    );

    let broken = fixture("specs/broken/saas/unknown_key.yaml");
    let out = caas(
        &root,
        &["schema", "lint", "--json", broken.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["errors"], 1);
    assert_eq!(v["findings"][0]["code"], "unknown-key");
    assert_eq!(v["findings"][0]["line"], 7);
    assert_eq!(v["findings"][0]["column"], 5);

    let warn = fixture("specs/broken/analytics/ts_unacknowledged.yaml");
    let out = caas(&root, &["schema", "lint", warn.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "a warning alone passes: {}",
        show(&out)
    );
    let out = caas(
        &root,
        &["schema", "lint", "--deny-warnings", warn.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));

    let missing = caas(&root, &["schema", "lint", "no/such/file.yaml"]);
    assert_eq!(
        missing.status.code(),
        Some(1),
        "an unreadable file is a finding: {}",
        show(&missing)
    );
    assert!(
        stdout(&missing).contains("cannot read the file"),
        "{}",
        show(&missing)
    );

    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("caas.toml"), "[databses]\n").unwrap();
    let bad_config = caas(tmp.path(), &["schema", "lint"]);
    assert_eq!(bad_config.status.code(), Some(2), "{}", show(&bad_config));
    assert!(
        crate::support::stderr(&bad_config).contains("caas.toml:1:2: unknown field `databses`"),
        "{}",
        show(&bad_config)
    );
    let _ = Path::new("");
}
