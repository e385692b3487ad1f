//! The sharding planner over simulated clusters: the state is built from documents shaped
//! as MongoDB stores them in its config database (MongoDB manual, "Config Database":
//! `config.shards` `{_id, host, state, tags}`, `config.collections` `{_id, uuid, key,
//! unique}`, `config.tags` `{ns, min, max, tag}`, `config.databases` `{_id, primary}`,
//! `config.chunks` `{uuid, min, max, shard}`), so a parse of real documents is tested too.

use bson::{doc, Bson, Document};

use super::shard::*;
use super::Safety;
use crate::compile::shard::CompiledShard;
use crate::inspect::cluster::{inconsistencies, ClusterState, ConfigDocs};

fn cluster(collections: Vec<Document>, tags: Vec<Document>, major: u32) -> ClusterState {
    let docs = ConfigDocs {
        shards: vec![
            doc! { "_id": "shard-eu", "host": "eu/eu1:27018", "state": 1, "tags": ["EU"] },
            doc! { "_id": "shard-us", "host": "us/us1:27018", "state": 1, "tags": ["US"] },
        ],
        collections,
        tags,
        databases: vec![
            doc! { "_id": "caas_shared", "primary": "shard-us", "partitioned": true },
            doc! { "_id": "caas_bank", "primary": "shard-us", "partitioned": false },
        ],
        chunks: Vec::new(),
    };
    ClusterState::from_config(&docs, major).expect("config documents parse")
}

fn users_key() -> Document {
    doc! { "tenant_id": 1, "_id": 1 }
}

fn shared_users(has_data: bool, tenants: &[(&str, &str)]) -> DesiredShard {
    DesiredShard {
        database: "caas_shared".into(),
        collection: "users".into(),
        shard: Some(CompiledShard {
            key: users_key(),
            unique: false,
            per_tenant_ranges: true,
        }),
        has_data,
        zone: None,
        tenant_zones: tenants
            .iter()
            .map(|(t, z)| (t.to_string(), z.to_string()))
            .collect(),
    }
}

fn sharded_users(key: Document) -> Document {
    doc! { "_id": "caas_shared.users", "uuid": bson::Binary::from_uuid(bson::Uuid::new()), "key": key, "unique": false, "noBalance": false }
}

fn range(tenant: &str, zone: &str) -> Document {
    doc! { "_id": bson::oid::ObjectId::new(), "ns": "caas_shared.users", "min": { "tenant_id": tenant, "_id": Bson::MinKey }, "max": { "tenant_id": tenant, "_id": Bson::MaxKey }, "tag": zone }
}

fn steps(changes: &[ShardChange]) -> Vec<String> {
    changes
        .iter()
        .map(|c| format!("{} {} {}", c.namespace, c.safety.as_str(), c.summary()))
        .collect()
}

#[test]
fn a_new_collection_is_sharded_safely_with_a_zone_per_tenant() {
    let plan = plan_sharding(
        &[shared_users(false, &[("acme", "EU")])],
        &cluster(vec![], vec![], 8),
    );
    assert_eq!(
        steps(&plan),
        [
            r#"caas_shared.users safe shard on {"tenant_id":1,"_id":1}"#,
            r#"caas_shared.users safe zone range {"tenant_id":"acme","_id":{"$minKey":1}} in EU"#,
        ]
    );
    let cmd = plan[1].commands().pop().unwrap();
    assert_eq!(cmd.get_str("updateZoneKeyRange"), Ok("caas_shared.users"));
    assert_eq!(
        cmd.get_document("max").unwrap(),
        &doc! { "tenant_id": "acme", "_id": Bson::MaxKey }
    );
}

#[test]
fn an_existing_unsharded_collection_with_data_is_data_dependent_and_costed() {
    let plan = plan_sharding(&[shared_users(true, &[])], &cluster(vec![], vec![], 8));
    assert_eq!(plan.len(), 1);
    assert_eq!(plan[0].safety, Safety::DataDependent);
    assert!(
        plan[0].cost.unwrap().contains("balancer"),
        "{:?}",
        plan[0].cost
    );
}

#[test]
fn an_in_sync_cluster_plans_nothing() {
    let c = cluster(
        vec![sharded_users(users_key())],
        vec![range("acme", "EU")],
        8,
    );
    assert_eq!(
        steps(&plan_sharding(&[shared_users(true, &[("acme", "EU")])], &c)),
        Vec::<String>::new()
    );
}

#[test]
fn a_key_that_extends_the_live_one_is_refined_another_is_resharded() {
    let refine = cluster(vec![sharded_users(doc! { "tenant_id": 1 })], vec![], 8);
    let plan = plan_sharding(&[shared_users(true, &[])], &refine);
    assert!(
        matches!(plan[0].step, ShardStep::RefineShardKey { .. }),
        "{:?}",
        steps(&plan)
    );
    assert_eq!(plan[0].safety, Safety::DataDependent);
    let reshard = cluster(vec![sharded_users(doc! { "email": 1 })], vec![], 8);
    let plan = plan_sharding(&[shared_users(true, &[])], &reshard);
    assert!(
        matches!(plan[0].step, ShardStep::ReshardCollection { .. }),
        "{:?}",
        steps(&plan)
    );
    assert_eq!(plan[0].safety, Safety::Destructive);
    assert!(plan[0].cost.unwrap().contains("2 s"));
    assert_eq!(
        plan[0]
            .commands()
            .pop()
            .unwrap()
            .get_str("reshardCollection"),
        Ok("caas_shared.users")
    );
}

#[test]
fn a_new_tenant_adds_its_range_and_a_region_change_moves_it() {
    let c = cluster(
        vec![sharded_users(users_key())],
        vec![range("acme", "EU")],
        8,
    );
    let plan = plan_sharding(&[shared_users(true, &[("acme", "US"), ("zeta", "EU")])], &c);
    assert_eq!(
        steps(&plan),
        [
            r#"caas_shared.users data-dependent zone range {"tenant_id":"acme","_id":{"$minKey":1}} moves EU -> US"#,
            r#"caas_shared.users data-dependent zone range {"tenant_id":"zeta","_id":{"$minKey":1}} in EU"#,
        ]
    );
    // MongoDB refuses a range overlapping a live one of another zone, its own bounds
    // included (`RangeOverlapConflict`, balancer_policy.cpp `addRangeToZone`): out of EU
    // first, then into US.
    let zones: Vec<Bson> = plan[0]
        .commands()
        .iter()
        .map(|c| c.get("zone").cloned().unwrap())
        .collect();
    assert_eq!(zones, [Bson::Null, Bson::String("US".into())]);
    let script = super::mongosh::mongosh_sharding(&plan, false);
    let acme: Vec<&str> = script
        .lines()
        .filter(|l| l.starts_with("sh.") && l.contains("\"acme\""))
        .collect();
    assert!(
        acme.len() == 2 && acme[0].ends_with("null);") && acme[1].ends_with("\"US\");"),
        "{script}"
    );
}

#[test]
fn a_range_overlapping_a_hand_made_one_is_left_to_a_person() {
    // `a` to `b` in EU, made by hand: it holds acme's keys (MongoDB would refuse acme's
    // own range with RangeOverlapConflict) but not beta's (its max is exclusive).
    let hand = doc! { "_id": bson::oid::ObjectId::new(), "ns": "caas_shared.users", "min": { "tenant_id": "a", "_id": Bson::MinKey }, "max": { "tenant_id": "b", "_id": Bson::MinKey }, "tag": "EU" };
    let c = cluster(vec![sharded_users(users_key())], vec![hand], 8);
    let plan = plan_sharding(&[shared_users(true, &[("acme", "US"), ("beta", "US")])], &c);
    let got = steps(&plan);
    assert!(
        got[0].contains("needs an operator") && got[0].contains("RangeOverlapConflict"),
        "{got:?}"
    );
    assert!(plan[0].commands().is_empty());
    assert_eq!(
        got[1],
        r#"caas_shared.users data-dependent zone range {"tenant_id":"beta","_id":{"$minKey":1}} in US"#
    );
}

#[test]
fn a_hand_made_range_wider_than_a_tenants_is_left_to_a_person() {
    // Starts at acme's bounds but ends in zeta's keys: re-zoning it would move every tenant
    // in between.
    let wide = doc! { "_id": bson::oid::ObjectId::new(), "ns": "caas_shared.users", "min": { "tenant_id": "acme", "_id": Bson::MinKey }, "max": { "tenant_id": "zeta", "_id": Bson::MaxKey }, "tag": "EU" };
    let c = cluster(vec![sharded_users(users_key())], vec![wide], 8);
    let plan = plan_sharding(&[shared_users(true, &[("acme", "US")])], &c);
    assert_eq!(plan.len(), 1, "{plan:#?}");
    assert!(plan[0].commands().is_empty(), "nothing run: {plan:#?}");
    assert!(
        steps(&plan)[0].contains("ends at {\"tenant_id\":\"zeta\"")
            && steps(&plan)[0].contains("sh.removeRangeFromZone"),
        "{:?}",
        steps(&plan)
    );
}

#[test]
fn a_range_no_tenant_needs_is_undeclared_and_a_zone_without_shards_needs_an_operator() {
    let c = cluster(
        vec![sharded_users(users_key())],
        vec![range("gone", "EU")],
        8,
    );
    let plan = plan_sharding(&[shared_users(true, &[("acme", "APAC")])], &c);
    assert!(
        steps(&plan)[0].contains("no shard is in zone `APAC`"),
        "{:?}",
        steps(&plan)
    );
    assert!(plan[0].commands().is_empty());
    assert!(plan[1].undeclared && matches!(plan[1].step, ShardStep::RemoveZoneRange { .. }));
    assert_eq!(
        plan[1].commands().pop().unwrap().get("zone"),
        Some(&Bson::Null)
    );
}

#[test]
fn an_enterprise_database_is_placed_in_its_zone_by_move_collection_on_8_and_by_a_person_before() {
    let bank = DesiredShard {
        database: "caas_bank".into(),
        collection: "users".into(),
        shard: None,
        has_data: true,
        zone: Some("EU".into()),
        tenant_zones: vec![],
    };
    let plan = plan_sharding(std::slice::from_ref(&bank), &cluster(vec![], vec![], 8));
    assert_eq!(
        steps(&plan),
        ["caas_bank.users data-dependent move to shard shard-eu (zone EU)"]
    );
    assert_eq!(
        plan[0].commands().pop().unwrap(),
        doc! { "moveCollection": "caas_bank.users", "toShard": "shard-eu" }
    );
    let old = plan_sharding(&[bank], &cluster(vec![], vec![], 7));
    assert!(steps(&old)[0].contains("movePrimary"), "{:?}", steps(&old));
}

#[test]
fn a_sharded_collection_the_spec_does_not_shard_is_not_unsharded_silently() {
    let c = cluster(vec![sharded_users(users_key())], vec![], 8);
    let mut d = shared_users(true, &[]);
    d.shard = None;
    let plan = plan_sharding(&[d], &c);
    assert_eq!(plan[0].safety, Safety::Destructive);
    assert!(plan[0].commands().is_empty(), "needs a person");
}

#[test]
fn inconsistent_indexes_are_reported_per_shard() {
    // checkMetadataConsistency's reply shape (MongoDB manual, checkMetadataConsistency).
    let got = inconsistencies(&[doc! {
        "type": "InconsistentIndex",
        "description": "Found an index of a sharded collection that is inconsistent between different shards",
        "details": { "namespace": "caas_shared.users", "info": { "missingFromShards": ["shard-eu"], "inconsistentProperties": [], "indexName": "tenant_id_1_email_1" } }
    }]);
    assert_eq!(
        (got[0].kind.as_str(), got[0].shards.clone()),
        ("InconsistentIndex", vec!["shard-eu".to_string()])
    );
}

#[test]
fn the_index_build_budget_is_one_primarys() {
    assert_eq!(index_build_budget(32), 3);
    assert_eq!(index_build_budget(2), 2);
    assert_eq!(index_build_budget(0), 1);
}

#[test]
fn the_mongosh_script_calls_sh_in_order() {
    let plan = plan_sharding(
        &[shared_users(false, &[("acme", "EU")])],
        &cluster(vec![], vec![range("gone", "US")], 8),
    );
    let script = super::mongosh_sharding(&plan, false);
    let shard = script
        .find("sh.shardCollection(\"caas_shared.users\"")
        .expect(&script);
    let zone = script
        .find("sh.updateZoneKeyRange(\"caas_shared.users\"")
        .expect(&script);
    assert!(shard < zone, "{script}");
    assert!(script.contains(r#"{ "tenant_id": "acme", "_id": MinKey() }, { "tenant_id": "acme", "_id": MaxKey() }, "EU");"#), "{script}");
    assert!(
        script.contains("// (--prune) sh.updateZoneKeyRange"),
        "{script}"
    );
}
