//! The planner without a database: live states written as the server reports them.

use std::collections::BTreeMap;

use bson::{doc, Document};

use super::*;
use crate::compile::compile_collection;
use crate::config::Config;
use crate::inspect::LiveCollection;
use crate::spec::CollectionSpec;
use crate::tenancy::{Layout, Tier};

const SPEC: &str = r#"
collection: things
domain: saas
fields:
  email: { type: string }
  seen_at: { type: date }
indexes:
  - keys: { email: 1 }
    unique: true
    collation: { locale: en, strength: 2 }
  - keys: { seen_at: 1 }
    ttl_seconds: 60
"#;

fn spec() -> CollectionSpec {
    serde_json::from_value(crate::base::yaml::parse(SPEC).unwrap().value).unwrap()
}

fn desired(target: &Target) -> Vec<CompiledCollection> {
    let config = Config::parse("", std::path::Path::new("caas.toml")).unwrap();
    let s = spec();
    vec![compile_collection(&s, target.place(&s, &config.databases))]
}

fn pro() -> Target {
    Target::for_tenant("acme", Tier::Pro, Layout::CollectionSet)
}

/// The live state the server would report after creating exactly what `want` says.
fn live_of(want: &[CompiledCollection]) -> LiveState {
    let mut state: LiveState = BTreeMap::new();
    for c in want {
        let mut options = c.options.to_document();
        options.insert("validationLevel", "strict");
        let indexes = c
            .indexes
            .iter()
            .map(|i| {
                let mut d = doc! { "v": 2 };
                d.extend(i.to_create_spec());
                d
            })
            .collect::<Vec<Document>>();
        state
            .entry(c.placement.database.clone())
            .or_default()
            .insert(
                c.placement.collection.clone(),
                LiveCollection::new(
                    c.placement.collection.clone(),
                    "collection",
                    &options,
                    Some(&indexes),
                ),
            );
    }
    state
}

fn plan(live: &LiveState) -> TargetPlan {
    let want = desired(&pro());
    plan_target(&pro(), &want, live, &|_, _| true)
}

fn coll(live: &mut LiveState) -> &mut LiveCollection {
    live.get_mut("caas_shared")
        .unwrap()
        .get_mut("acme_things")
        .unwrap()
}

/// Change the live index called `name`.
fn edit_index(live: &mut LiveState, name: &str, edit: impl FnOnce(&mut Document)) {
    coll(live).edit_indexes(|list| {
        edit(
            list.iter_mut()
                .find(|i| i.get_str("name") == Ok(name))
                .unwrap(),
        )
    })
}

#[test]
fn empty_server_creates_collection_then_indexes() {
    let p = plan(&LiveState::new());
    let kinds: Vec<&str> = p
        .changes
        .iter()
        .map(|c| match c.action {
            Action::CreateCollection { .. } => "create",
            Action::CreateIndex { .. } => "index",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["create", "index", "index"]);
    assert!(
        p.changes.iter().all(|c| c.safety == Safety::Safe),
        "creating into an empty collection is safe"
    );
}

#[test]
fn matching_live_state_plans_nothing() {
    let live = live_of(&desired(&pro()));
    assert_eq!(plan(&live).changes, vec![]);
}

#[test]
fn changed_validator_is_data_dependent() {
    let mut live = live_of(&desired(&pro()));
    coll(&mut live).edit_options(|o| {
        o.insert(
            "validator",
            doc! { "$jsonSchema": { "bsonType": "object" } },
        );
    });
    let p = plan(&live);
    assert_eq!(p.changes.len(), 1);
    assert_eq!(p.changes[0].safety, Safety::DataDependent);
    assert!(
        p.changes[0].summary().contains("validator differs"),
        "{}",
        p.changes[0].summary()
    );
}

#[test]
fn level_and_action_changes_are_classed_by_direction() {
    let mut live = live_of(&desired(&pro()));
    coll(&mut live).edit_options(|o| drop(o.insert("validationLevel", "moderate")));
    let p = plan(&live);
    assert_eq!(
        (p.changes.len(), p.changes[0].safety),
        (1, Safety::DataDependent),
        "moderate -> strict tightens"
    );
    let mut live = live_of(&desired(&pro()));
    coll(&mut live).edit_options(|o| drop(o.insert("validationAction", "warn")));
    assert!(plan(&live).changes[0]
        .summary()
        .contains("validationAction warn -> error"));
    let mut live = live_of(&desired(&pro()));
    coll(&mut live).edit_options(|o| {
        o.remove("validationLevel");
        o.remove("validationAction");
    });
    assert_eq!(
        plan(&live).changes,
        vec![],
        "absent level/action mean strict/error"
    );
}

#[test]
fn missing_and_extra_indexes() {
    let mut live = live_of(&desired(&pro()));
    coll(&mut live).edit_indexes(|list| {
        list.retain(|i| i.get_str("name") != Ok("email_1"));
        list.push(doc! { "v": 2, "key": { "x": 1 }, "name": "x_1" });
    });
    let p = plan(&live);
    assert_eq!(p.changes.len(), 2, "{:#?}", p.changes);
    assert!(
        matches!(&p.changes[0].action, Action::CreateIndex { index } if index.name == "email_1")
    );
    assert_eq!(
        p.changes[0].safety,
        Safety::DataDependent,
        "a unique index on an existing collection"
    );
    assert!(matches!(&p.changes[1].action, Action::DropIndex { name, .. } if name == "x_1"));
    assert!(p.changes[1].undeclared);
}

#[test]
fn identity_changes_rebuild() {
    type Case = (&'static str, fn(&mut Document));
    let cases: Vec<Case> = vec![
        ("key order", |i| {
            drop(i.insert("key", doc! { "x": 1, "email": 1 }))
        }),
        ("direction", |i| drop(i.insert("key", doc! { "email": -1 }))),
        ("unique", |i| drop(i.remove("unique"))),
        ("sparse", |i| drop(i.insert("sparse", true))),
        ("partial filter", |i| {
            drop(i.insert(
                "partialFilterExpression",
                doc! { "email": { "$exists": true } },
            ))
        }),
        ("collation", |i| {
            drop(i.insert("collation", doc! { "locale": "en", "strength": 3 }))
        }),
    ];
    for (label, change) in cases {
        let mut live = live_of(&desired(&pro()));
        edit_index(&mut live, "email_1", change);
        let p = plan(&live);
        assert_eq!(p.changes.len(), 1, "{label}: {:#?}", p.changes);
        assert!(
            matches!(p.changes[0].action, Action::RebuildIndex { .. }),
            "{label}"
        );
        assert_eq!(p.changes[0].safety, Safety::Destructive, "{label}");
    }
}

#[test]
fn ttl_and_hidden_change_in_place() {
    let mut live = live_of(&desired(&pro()));
    edit_index(&mut live, "seen_at_1", |i| {
        drop(i.insert("expireAfterSeconds", 30))
    });
    edit_index(&mut live, "email_1", |i| drop(i.insert("hidden", true)));
    let p = plan(&live);
    assert_eq!(p.changes.len(), 2, "{:#?}", p.changes);
    for c in &p.changes {
        assert!(matches!(c.action, Action::ModifyIndex { .. }), "{c:?}");
        assert_eq!(c.safety, Safety::Safe);
    }
    assert!(p
        .changes
        .iter()
        .any(|c| c.summary().contains("expireAfterSeconds 30 -> 60")));
    assert!(p
        .changes
        .iter()
        .any(|c| c.summary().contains("hidden true -> false")));
}

#[test]
fn numbers_from_the_server_are_not_drift() {
    let mut live = live_of(&desired(&pro()));
    edit_index(&mut live, "seen_at_1", |i| {
        drop(i.insert("expireAfterSeconds", 60.0))
    });
    edit_index(&mut live, "email_1", |i| {
        drop(i.insert("key", doc! { "email": 1_i64 }))
    });
    assert_eq!(plan(&live).changes, vec![]);
}

#[test]
fn undeclared_collections_go_to_their_owner_once() {
    let mut live = live_of(&desired(&pro()));
    live.get_mut("caas_shared").unwrap().insert(
        "acme_extra".into(),
        LiveCollection::new("acme_extra", "collection", &doc! {}, None),
    );
    live.get_mut("caas_shared").unwrap().insert(
        "caas_migrations".into(),
        LiveCollection::new("caas_migrations", "collection", &doc! {}, None),
    );
    let want = desired(&pro());
    let mine = plan_target(&pro(), &want, &live, &|_, c| c.starts_with("acme_"));
    assert_eq!(
        mine.changes.len(),
        1,
        "internal caas_ collections are never reported"
    );
    assert!(matches!(
        mine.changes[0].action,
        Action::DropCollection { .. }
    ));
    let theirs = plan_target(&pro(), &want, &live, &|_, _| false);
    assert_eq!(theirs.changes, vec![]);
}

#[test]
fn regular_versus_time_series_is_a_conflict() {
    let mut live = live_of(&desired(&pro()));
    coll(&mut live).edit_options(|o| *o = doc! { "timeseries": { "timeField": "seen_at" } });
    let p = plan(&live);
    assert!(matches!(p.changes[0].action, Action::Conflict { .. }));
}

#[test]
fn rebuild_keeps_an_index_serving_queries() {
    let want = desired(&pro());
    let email = want[0]
        .indexes
        .iter()
        .find(|i| i.name == "email_1")
        .unwrap();
    // Same key pattern, different options: a temporary index with an extra key bridges.
    let steps = rebuild_steps(&doc! { "key": { "email": 1 }, "name": "email_1" }, email);
    assert_eq!(steps.len(), 4);
    match &steps[0] {
        IndexStep::Create(t) => {
            assert_eq!(t.get_str("name").unwrap(), "email_1_caas_rebuild");
            assert_eq!(
                t.get_document("key").unwrap(),
                &doc! { "email": 1, "_caas_rebuild": 1 }
            );
            assert_eq!(
                t.get_bool("unique"),
                Ok(true),
                "the bridge enforces the new uniqueness"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(steps[1], IndexStep::Drop("email_1".into()));
    assert!(matches!(&steps[2], IndexStep::Create(d) if d.get_str("name") == Ok("email_1")));
    assert_eq!(steps[3], IndexStep::Drop("email_1_caas_rebuild".into()));
    // A different key pattern under another name can coexist: build, then drop.
    let steps = rebuild_steps(&doc! { "key": { "old": 1 }, "name": "old_1" }, email);
    assert!(matches!(&steps[0], IndexStep::Create(d) if d.get_str("name") == Ok("email_1")));
    assert_eq!(steps[1], IndexStep::Drop("old_1".into()));
}

#[test]
fn mongosh_script_lists_every_change() {
    let mut live = live_of(&desired(&pro()));
    coll(&mut live)
        .edit_indexes(|list| list.push(doc! { "v": 2, "key": { "x": 1 }, "name": "x_1" }));
    edit_index(&mut live, "email_1", |i| drop(i.remove("unique")));
    let p = plan(&live);
    let script = to_mongosh(std::slice::from_ref(&p), false);
    assert!(script.contains("// db.getSiblingDB(\"caas_shared\").getCollection(\"acme_things\").dropIndex(\"x_1\");"), "{script}");
    assert!(script.contains("\"email_1_caas_rebuild\""), "{script}");
    let pruned = to_mongosh(&[p], true);
    assert!(
        pruned.contains(
            "\ndb.getSiblingDB(\"caas_shared\").getCollection(\"acme_things\").dropIndex(\"x_1\");"
        ),
        "{pruned}"
    );
}
