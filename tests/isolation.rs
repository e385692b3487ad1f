//! Tenant isolation and ownership: no command reads, writes or drops what is not its
//! tenant's. Joins in migrations, seed fixtures, `--prune`, the registry, `roles user`,
//! and `--tenant` on the shared target.

use bson::{doc, Document};

use crate::support::expect_ok as ok;
use crate::support::{client, fixture, root, show, stderr, stdout, TestProject};

use crate::support::find_all as all;

#[tokio::test(flavor = "multi_thread")]
async fn joins_in_a_migration_stay_inside_each_tenant_on_every_tier() {
    let p = TestProject::new("ijoin", &fixture("isolation/schemas"))
        .with_migrations(&fixture("isolation/migrations"));
    for (id, tier) in [
        ("f1", "free"),
        ("f2", "free"),
        ("pa", "pro"),
        ("ea", "enterprise"),
    ] {
        ok(&p, &["tenant", "add", id, "--tier", tier]);
    }
    ok(&p, &["schema", "apply"]);
    let c = client().await;
    let shared = c.database(&format!("{}_shared", p.prefix));
    let ea = c.database(&format!("{}_ea", p.prefix));
    let places = [
        (&shared, "", "f1"),
        (&shared, "", "f2"),
        (&shared, "pa_", "pa"),
        (&ea, "", "ea"),
    ];
    for (db, prefix, t) in places {
        db.collection::<Document>(&format!("{prefix}people"))
            .insert_many([
                doc! { "tenant_id": t, "username": "bob", "email": format!("bob@{t}-private.example") },
                doc! { "tenant_id": t, "username": "amy", "boss": "bob", "email": format!("amy@{t}-private.example") },
            ])
            .await
            .unwrap();
        db.collection::<Document>(&format!("{prefix}notes"))
            .insert_one(doc! { "tenant_id": t, "author": "bob" })
            .await
            .unwrap();
    }
    let dry = ok(&p, &["migrate", "up", "--dry-run"]);
    assert!(
        dry.contains("\"from\":\"pa_people\"") && dry.contains("once per tenant of the target: 2"),
        "the dry run shows physical names and per-tenant runs: {dry}"
    );
    ok(&p, &["migrate", "up"]);
    for (db, prefix, t) in places {
        let notes = all(db, &format!("{prefix}notes"), doc! { "tenant_id": t }).await;
        assert_eq!(notes.len(), 1, "{t}: {notes:?}");
        let n = &notes[0];
        let own = |who: &str| format!("{who}@{t}-private.example");
        assert_eq!(
            n.get_str("author_email"),
            Ok(own("bob").as_str()),
            "{t} ($lookup): {n}"
        );
        assert_eq!(
            n.get_str("author_email_by_pipeline"),
            Ok(own("bob").as_str()),
            "{t} ($lookup pipeline): {n}"
        );
        let reports: Vec<&str> = n
            .get_array("reports")
            .unwrap()
            .iter()
            .filter_map(|b| b.as_str())
            .collect();
        assert_eq!(reports, [own("amy")], "{t} ($graphLookup): {n}");
        let everyone: Vec<&str> = n
            .get_array("everyone")
            .unwrap()
            .iter()
            .filter_map(|b| b.as_str())
            .collect();
        assert!(
            !everyone.is_empty()
                && everyone
                    .iter()
                    .all(|e| e.ends_with(&format!("@{t}-private.example"))),
            "{t} ($facet, $unionWith): {n}"
        );
    }
    // The same migration naming a collection no spec declares is refused, located.
    let bad = TestProject::new("ijoinbad", &fixture("isolation/schemas"))
        .with_migrations(&fixture("isolation/bad"));
    let out = bad.caas(&["migrate", "up"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        stderr(&out).contains("V0001__unknown_from.yaml:8:28")
            && stderr(&out).contains("`$lookup` names `peeple`, which no spec declares")
            && stderr(&out).contains("did you mean `people`?"),
        "{}",
        show(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_seed_fixture_may_not_choose_its_tenant() {
    let p = TestProject::new("iseedfix", &root().join("schemas"));
    crate::support::copy_dir(&root().join("seeds"), &p.path().join("seeds"));
    ok(&p, &["tenant", "add", "acme", "--tier", "free"]);
    let file = p.path().join("seeds/demo.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let planted = text.replacen(
        "tenant: {}\n",
        "tenant:\n  users:\n    - { tenant_id: acme, username: planted.admin, display_name: P, email: p@x.example, role: admin, status: active, pass_change: false }\n",
        1,
    );
    assert_ne!(planted, text, "the seed file has a `tenant:` section");
    std::fs::write(&file, planted).unwrap();
    let out = p.caas(&["seed", "--tier", "free"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        stderr(&out).contains("seeds/demo.yaml:")
            && stderr(&out).contains("a fixture may not set `tenant_id`"),
        "{}",
        show(&out)
    );
    let shared = client().await.database(&format!("{}_shared", p.prefix));
    assert!(
        all(&shared, "users", doc! { "username": "planted.admin" })
            .await
            .is_empty(),
        "nothing was written"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn prune_keeps_the_registry_and_every_registered_tenants_data() {
    // A project with no spec for the registry.
    let p = TestProject::new("iprune", &fixture("migrate/schemas"));
    for (id, tier) in [
        ("f1", "free"),
        ("pa", "pro"),
        ("pgone", "pro"),
        ("pchurn", "pro"),
        ("pmoved", "pro"),
    ] {
        ok(&p, &["tenant", "add", id, "--tier", tier]);
    }
    ok(&p, &["schema", "apply"]);
    // tenant add -> apply -> diff --exit-code reaches 0 without a registry spec.
    ok(&p, &["schema", "diff", "--exit-code"]);
    let c = client().await;
    let platform = c.database(&format!("{}_platform", p.prefix));
    let shared = c.database(&format!("{}_shared", p.prefix));
    let registry = platform.collection::<Document>("saas_clients");
    registry
        .update_one(
            doc! { "tenant_id": "pgone" },
            doc! { "$set": { "deleted_at": bson::DateTime::now() } },
        )
        .await
        .unwrap();
    registry
        .update_one(
            doc! { "tenant_id": "pchurn" },
            doc! { "$set": { "status": "churned" } },
        )
        .await
        .unwrap();
    for coll in ["pa_legacy", "zz_items", "stray"] {
        shared.create_collection(coll).await.unwrap();
    }
    let plan = ok(&p, &["schema", "plan", "--json"]);
    for owner in [
        "\"owner\": \"pro:pa\"",
        "\"owner\": \"unregistered\"",
        "\"owner\": \"unknown\"",
    ] {
        assert!(plan.contains(owner), "the plan names {owner}: {plan}");
    }
    assert!(
        !plan.contains("pgone_items")
            && !plan.contains("pchurn_items\", \"safety\": \"destructive"),
        "{plan}"
    );
    // pa's own undeclared collection is held back (exit 1: still drift), the strays go.
    let out = p.caas(&["schema", "apply", "--yes", "--prune", "--allow-destructive"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let left = shared.list_collection_names().await.unwrap();
    for kept in [
        "pgone_items",
        "pchurn_items",
        "pa_legacy",
        "pa_items",
        "items",
    ] {
        assert!(left.contains(&kept.to_string()), "{kept} kept: {left:?}");
    }
    for dropped in ["zz_items", "stray"] {
        assert!(
            !left.contains(&dropped.to_string()),
            "{dropped} dropped: {left:?}"
        );
    }
    assert!(platform
        .list_collection_names()
        .await
        .unwrap()
        .contains(&"saas_clients".to_string()));
    let tenants: serde_json::Value =
        serde_json::from_str(&ok(&p, &["tenant", "list", "--json"])).unwrap();
    assert_eq!(tenants["tenants"].as_array().unwrap().len(), 4, "{tenants}");

    // A tier edited by hand is refused, not followed into a second home.
    registry
        .update_one(
            doc! { "tenant_id": "pmoved" },
            doc! { "$set": { "tier": "enterprise" } },
        )
        .await
        .unwrap();
    for args in [
        &["schema", "plan"][..],
        &["schema", "apply", "--yes", "--prune", "--allow-destructive"],
    ] {
        let out = p.caas(args);
        assert_eq!(out.status.code(), Some(2), "{}", show(&out));
        assert!(
            stderr(&out).contains("tenant `pmoved`: the registry says tier enterprise")
                && stderr(&out).contains("but its data lives in collections"),
            "{}",
            show(&out)
        );
    }
    assert!(shared
        .list_collection_names()
        .await
        .unwrap()
        .contains(&"pmoved_items".to_string()));
    assert!(!c
        .list_database_names()
        .await
        .unwrap()
        .contains(&format!("{}_pmoved", p.prefix)));
}

#[tokio::test(flavor = "multi_thread")]
async fn migrations_and_diff_agree_on_indexes() {
    let p = TestProject::new("iindex", &fixture("migrate/schemas"))
        .with_migrations(&fixture("migrate/migrations"));
    std::fs::write(
        p.path().join("migrations/V0003__unique_codes.yaml"),
        "description: Codes are unique.\nscope: tenant\nup:\n  - create_index: { collection: items, index: { keys: { code: 1 }, unique: true } }\n",
    )
    .unwrap();
    ok(&p, &["tenant", "add", "ea", "--tier", "enterprise"]);
    let out = p.caas(&["migrate", "up"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        stderr(&out).contains("V0003__unique_codes.yaml:4:")
            && stderr(&out).contains("no spec declares an index on {\"code\":1} for `items`"),
        "{}",
        show(&out)
    );
    // Applied before the spec declares it; then the spec gains the index and the migration
    // creates it early: `migrate up` then `diff --exit-code` is 0, no drift either way.
    ok(&p, &["schema", "apply"]);
    let spec = p.path().join("schemas/saas/items.yaml");
    let text = std::fs::read_to_string(&spec).unwrap();
    std::fs::write(
        &spec,
        format!("{text}indexes:\n  - {{ keys: {{ code: 1 }}, unique: true }}\n"),
    )
    .unwrap();
    ok(&p, &["migrate", "up"]);
    // (On the shared target the new index replaces the implied `tenant_id_1`, which is then
    // undeclared: that is the spec change, not the migration, so look at the tenant's own.)
    ok(&p, &["schema", "diff", "--tenant", "ea", "--exit-code"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn roles_user_never_takes_over_an_administrator() {
    let p = TestProject::new_on("iroot", &root().join("schemas"), crate::support::auth_uri());
    for name in ["root", "admin"] {
        let out = crate::support::caas_env(
            p.path(),
            &[
                "roles",
                "user",
                "messaging-service",
                "--username",
                name,
                "--password-env",
                "CAAS_TEST_PW",
            ],
            &[("MONGODB_URI", &p.uri), ("CAAS_TEST_PW", "s3cret-pw-1")],
        );
        assert_eq!(out.status.code(), Some(2), "{}", show(&out));
        assert!(
            stderr(&out).contains("looks like an administrator"),
            "{}",
            show(&out)
        );
    }
    // The administrator can still connect: nothing was changed.
    ok(&p, &["tenant", "list"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn tenant_on_the_shared_target_never_changes_another_tenants_documents() {
    let p = TestProject::new("ishared", &fixture("migrate/schemas"))
        .with_migrations(&fixture("migrate/migrations"));
    let places = crate::support::migrate_fleet(&p, 2).await;
    let out = p.caas(&["migrate", "up", "--tenant", "fr"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        stderr(&out).contains("names 1 of the 2 tenants of the shared target")
            && stderr(&out).contains("caas migrate up --tier free --tier starter"),
        "{}",
        show(&out)
    );
    let (counters, _) = crate::faults::totals(&places).await;
    assert_eq!(counters, vec![0; 6], "nothing ran anywhere");
    // Both shared tiers named: allowed.
    let all_shared = ok(
        &p,
        &["migrate", "up", "--tier", "free", "--tier", "starter"],
    );
    assert!(all_shared.contains("shared"), "{all_shared}");
    let (counters, _) = crate::faults::totals(&places).await;
    assert_eq!(counters, vec![1, 1, 0, 0, 0, 0]);
    let _ = stdout(&out);
}
