//! The compiler's output, pinned: golden files for the fixture specs in each tier form
//! (`UPDATE_GOLDEN=1 cargo test` rewrites them; review the diff), and properties that
//! must hold for every validator the catalogue compiles to.

use bson::{Bson, Document};
use caas_core::compile::{compile_collection, to_json};
use caas_core::config::Config;
use caas_core::spec::{load_project, CollectionSpec};
use caas_core::tenancy::{Layout, Target, Tier};

use crate::support::{caas, fixture, root, show, stdout};

fn specs(dir: &std::path::Path) -> Vec<CollectionSpec> {
    let report = load_project(dir, &[]).unwrap();
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    report.specs.into_iter().map(|s| s.spec).collect()
}

fn forms() -> Vec<(&'static str, Target)> {
    vec![
        ("platform", Target::platform()),
        ("shared", Target::shared()),
        (
            "pro",
            Target::for_tenant("acme", Tier::Pro, Layout::CollectionSet),
        ),
        (
            "enterprise",
            Target::for_tenant("acme", Tier::Enterprise, Layout::Database),
        ),
    ]
}

fn check_golden(name: &str, actual: &serde_json::Value) {
    let path = root().join("tests/golden").join(format!("{name}.json"));
    let text = serde_json::to_string_pretty(actual).unwrap() + "\n";
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} is missing; run with UPDATE_GOLDEN=1", path.display()));
    pretty_assertions::assert_eq!(expected, text, "{} differs", path.display());
}

#[test]
fn fixture_specs_match_golden_files() {
    let config = Config::parse("", std::path::Path::new("caas.toml")).unwrap();
    for spec in specs(&fixture("specs/valid")) {
        for (form, target) in forms() {
            if !target.holds(&spec) {
                continue;
            }
            let c = compile_collection(&spec, target.place(&spec, &config.databases));
            let mut out = serde_json::json!({
                "namespace": format!("{}.{}", c.placement.database, c.placement.collection),
                "options": to_json(&c.options.to_document()),
                "indexes": c.indexes.iter().map(|i| to_json(&i.to_create_spec())).collect::<Vec<_>>(),
            });
            if spec.shard.is_some() {
                out["shard"] = shard_golden(&spec, &c.placement, &target);
            }
            check_golden(&format!("{}.{form}", spec.collection), &out);
        }
    }
}

/// A sharded spec's compiled key in one form and, where tenants share the collection, the
/// zone range of tenant `acme` (what `updateZoneKeyRange` gets).
fn shard_golden(
    spec: &CollectionSpec,
    placement: &caas_core::tenancy::Placement,
    target: &Target,
) -> serde_json::Value {
    use caas_core::compile::shard::{compile_shard, layout_of, tenant_range};
    match compile_shard(spec, placement, layout_of(&target.kind)) {
        None => serde_json::json!("unsharded"),
        Some(s) => {
            let mut v = serde_json::json!({ "key": to_json(&s.key), "unique": s.unique });
            if s.per_tenant_ranges {
                let (min, max) = tenant_range(&s.key, "acme");
                v["zone_range_of_acme"] = serde_json::json!({
                    "min": Bson::Document(min).into_canonical_extjson(),
                    "max": Bson::Document(max).into_canonical_extjson(),
                });
            }
            v
        }
    }
}

/// Walk every schema node of a `$jsonSchema` document.
fn walk<'a>(schema: &'a Document, path: String, out: &mut Vec<(String, &'a Document)>) {
    out.push((path.clone(), schema));
    for key in ["properties"] {
        if let Ok(props) = schema.get_document(key) {
            for (k, v) in props {
                if let Bson::Document(d) = v {
                    walk(d, format!("{path}.{k}"), out);
                }
            }
        }
    }
    match schema.get("items") {
        Some(Bson::Document(d)) => walk(d, format!("{path}[]"), out),
        Some(Bson::Array(a)) => {
            for (i, item) in a.iter().enumerate() {
                if let Bson::Document(d) = item {
                    walk(d, format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

#[test]
fn every_catalogue_validator_uses_only_supported_keywords() {
    let config = Config::parse("", std::path::Path::new("caas.toml")).unwrap();
    let supported = [
        "bsonType",
        "required",
        "properties",
        "additionalProperties",
        "description",
        "title",
        "enum",
        "pattern",
        "minLength",
        "maxLength",
        "minimum",
        "maximum",
        "minItems",
        "maxItems",
        "uniqueItems",
        "items",
        "additionalItems",
        "allOf",
        "anyOf",
        "not",
    ];
    let restrictions = [
        "enum",
        "pattern",
        "minLength",
        "maxLength",
        "minimum",
        "maximum",
        "minItems",
        "maxItems",
        "uniqueItems",
        "items",
        "properties",
    ];
    let mut checked = 0;
    for spec in specs(&root().join("schemas"))
        .iter()
        .chain(specs(&fixture("specs/valid")).iter())
    {
        for (form, target) in forms() {
            if !target.holds(spec) {
                continue;
            }
            let c = compile_collection(spec, target.place(spec, &config.databases));
            let Some(validator) = &c.options.validator else {
                assert!(
                    spec.time_series.is_some(),
                    "{}: only time series have no validator",
                    spec.collection
                );
                continue;
            };
            let schema = validator.get_document("$jsonSchema").unwrap();
            assert_eq!(schema.get_str("bsonType").unwrap(), "object");
            if schema.get_bool("additionalProperties") == Ok(false) {
                assert!(
                    schema
                        .get_document("properties")
                        .unwrap()
                        .contains_key("_id"),
                    "{}: _id must stay allowed",
                    spec.collection
                );
            }
            let mut nodes = Vec::new();
            walk(schema, spec.collection.clone(), &mut nodes);
            for (path, node) in nodes {
                for key in node.keys() {
                    assert!(
                        supported.contains(&key.as_str()),
                        "{form} {path}: unsupported keyword `{key}`"
                    );
                }
                if restrictions.iter().any(|r| node.contains_key(r)) {
                    assert!(
                        node.contains_key("bsonType"),
                        "{form} {path}: restrictions without a bsonType"
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 500, "walked {checked} schema nodes");
}

#[test]
fn shared_form_prefixes_and_dedicated_form_does_not() {
    let config = Config::parse("", std::path::Path::new("caas.toml")).unwrap();
    let all = specs(&root().join("schemas"));
    let users = all.iter().find(|s| s.collection == "users").unwrap();
    let shared = compile_collection(users, Target::shared().place(users, &config.databases));
    let pro = compile_collection(
        users,
        Target::for_tenant("acme", Tier::Pro, Layout::CollectionSet)
            .place(users, &config.databases),
    );
    for ix in &shared.indexes {
        let first = ix.keys.keys().next().unwrap();
        let is_ttl = ix.options.contains_key("expireAfterSeconds");
        assert!(
            first == "tenant_id" || is_ttl,
            "shared index {} is tenant-prefixed unless TTL",
            ix.name
        );
    }
    for ix in &pro.indexes {
        assert!(
            !ix.keys.contains_key("tenant_id"),
            "pro index {} needs no prefix",
            ix.name
        );
    }
    assert_eq!(pro.placement.collection, "acme_users");
    let unique_shared: Vec<_> = shared
        .indexes
        .iter()
        .filter(|i| i.options.get_bool("unique") == Ok(true))
        .map(|i| i.name.clone())
        .collect();
    assert!(
        unique_shared.contains(&"tenant_id_1_username_1".to_string()),
        "{unique_shared:?}"
    );
}

#[test]
fn compile_output_is_deterministic_and_filtered() {
    let dir = root();
    let a = caas(&dir, &["schema", "compile"]);
    let b = caas(&dir, &["schema", "compile"]);
    assert_eq!(a.status.code(), Some(0), "{}", show(&a));
    assert_eq!(a.stdout, b.stdout);
    let v: serde_json::Value = serde_json::from_slice(&a.stdout).unwrap();
    let labels: Vec<&str> = v["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["target"].as_str().unwrap())
        .collect();
    assert_eq!(
        labels,
        [
            "platform",
            "shared (free, starter)",
            "pro collection set ({tenant_id})",
            "enterprise database ({tenant_id})"
        ]
    );

    let out = caas(
        &dir,
        &[
            "schema",
            "compile",
            "--tier",
            "enterprise",
            "--tenant",
            "globex",
            "--collection",
            "messages",
            "--format",
            "yaml",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let text = stdout(&out);
    assert!(text.contains("database: caas_globex"), "{text}");
    let parsed = caas_core::base::yaml::parse(&text).unwrap();
    assert_eq!(
        parsed.value["targets"][0]["collections"][0]["collection"],
        "messages"
    );

    let table = caas(
        &dir,
        &[
            "schema",
            "compile",
            "--collection",
            "users",
            "--format",
            "table",
        ],
    );
    let text = stdout(&table);
    assert!(
        text.contains("tenant_id_1_username_1")
            && !text.contains("acme")
            && text.contains("caas_shared.{tenant_id}_users"),
        "{text}"
    );

    let bad = caas(&dir, &["schema", "compile", "--tenant", "Bad$Tenant"]);
    assert_eq!(bad.status.code(), Some(2), "{}", show(&bad));
    assert!(
        crate::support::stderr(&bad).contains("contains the uppercase letter `B`"),
        "{}",
        show(&bad)
    );
    let unknown = caas(&dir, &["schema", "compile", "--collection", "userz"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        crate::support::stderr(&unknown).contains("no spec defines collection `userz`"),
        "{}",
        show(&unknown)
    );
}

#[test]
fn committed_meta_schema_is_current() {
    let out = caas(&root(), &["schema", "json-schema", "--check"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    for file in caas_core::base::files::discover(&root().join("schemas")).unwrap() {
        let text = std::fs::read_to_string(&file).unwrap();
        let depth = file
            .strip_prefix(root().join("schemas"))
            .unwrap()
            .components()
            .count()
            - 1;
        let want = format!(
            "# yaml-language-server: $schema={}caas-spec.schema.json",
            "../".repeat(depth)
        );
        assert!(
            text.starts_with(&want),
            "{} must start with `{want}`",
            file.display()
        );
    }
}
