//! The seeds' other systems as worked examples: each lints clean, applies, migrates and
//! seeds on the live server, and the server rejects a document breaking each of its
//! characteristic rules.

use bson::{doc, oid::ObjectId, Bson, DateTime, Document};
use mongodb::Database;

use crate::support::{client, copy_dir, root, show, stdout, TestProject};

async fn example(name: &str) -> (TestProject, Database) {
    let dir = root().join("examples").join(name);
    let p = TestProject::new(&format!("ex{name}"), &dir.join("schemas"));
    copy_dir(&dir.join("migrations"), &p.path().join("migrations"));
    copy_dir(&dir.join("seeds"), &p.path().join("seeds"));
    for args in [
        &["schema", "lint"][..],
        &["schema", "apply"],
        &["migrate", "up"],
        &["seed"],
        &["seed"],
        &["schema", "diff", "--exit-code"],
        &["migrate", "verify"],
    ] {
        let out = p.caas(args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{name}: caas {}\n{}",
            args.join(" "),
            show(&out)
        );
        if args == ["seed"] && stdout(&out).contains(" 0 inserted") {
            assert!(stdout(&out).contains("0 rejected"), "{}", show(&out));
        }
    }
    let db = client().await.database(&format!("{}_platform", p.prefix));
    (p, db)
}

/// Insert `d` and return the server's error code (None when accepted).
async fn code(db: &Database, coll: &str, d: Document) -> Option<i32> {
    match db.collection::<Document>(coll).insert_one(d).await {
        Ok(_) => None,
        Err(e) => match *e.kind {
            mongodb::error::ErrorKind::Write(mongodb::error::WriteFailure::WriteError(w)) => {
                Some(w.code)
            }
            other => panic!("{other:?}"),
        },
    }
}

fn with(base: &Document, change: impl FnOnce(&mut Document)) -> Document {
    let mut d = base.clone();
    change(&mut d);
    d
}

fn now() -> DateTime {
    DateTime::now()
}

fn argon() -> String {
    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".into()
}

async fn count(db: &Database, coll: &str) -> u64 {
    db.collection::<Document>(coll)
        .count_documents(doc! {})
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn classroom_keeps_identity_apart_from_profiles() {
    let (_p, db) = example("classroom").await;
    for coll in ["users", "teachers", "students", "classes"] {
        assert!(count(&db, coll).await > 0, "{coll} seeded");
    }
    let user = doc! { "email": "new.teacher@school.example.com", "password": argon(), "role": "teacher", "profileRef": ObjectId::new(), "profileType": "Teacher", "passChange": true, "isActive": true, "createdAt": now(), "updatedAt": now() };
    let cases: Vec<(&str, Document, Option<i32>)> = vec![
        ("valid", user.clone(), None),
        (
            "role enum",
            with(&user, |d| drop(d.insert("role", "principal"))),
            Some(121),
        ),
        (
            "teacher needs a profile",
            with(&user, |d| drop(d.remove("profileRef"))),
            Some(121),
        ),
        (
            "password is a hash",
            with(&user, |d| drop(d.insert("password", "demo123"))),
            Some(121),
        ),
        (
            "passChange required",
            with(&user, |d| drop(d.remove("passChange"))),
            Some(121),
        ),
        (
            "no undeclared fields",
            with(&user, |d| drop(d.insert("ssn", "123"))),
            Some(121),
        ),
        (
            "unique email, any case",
            with(&user, |d| {
                drop(d.insert("email", "ADMIN@school.example.com"))
            }),
            Some(11000),
        ),
    ];
    for (label, d, want) in cases {
        assert_eq!(code(&db, "users", d).await, want, "users: {label}");
    }
    let class = doc! { "code": "MA-201", "title": "Algebra", "teacherRef": ObjectId::new(), "studentRefs": [], "startsOn": DateTime::from_millis(1_790_000_000_000), "endsOn": DateTime::from_millis(1_800_000_000_000), "isActive": true, "createdAt": now(), "updatedAt": now() };
    assert_eq!(code(&db, "classes", class.clone()).await, None);
    assert_eq!(
        code(
            &db,
            "classes",
            with(&class, |d| {
                d.insert("code", "MA-202");
                d.insert("endsOn", DateTime::from_millis(1_780_000_000_000));
            })
        )
        .await,
        Some(121),
        "ends after it starts"
    );
    assert_eq!(
        code(
            &db,
            "classes",
            with(&class, |d| drop(d.insert("code", "algebra")))
        )
        .await,
        Some(121),
        "code pattern"
    );
    let users = db
        .collection::<Document>("users")
        .find_one(doc! { "role": "student" })
        .await
        .unwrap()
        .unwrap();
    assert!(
        users.get_str("password").unwrap().starts_with("$argon2id$")
            && users.get_bool("passChange") == Ok(true)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn customer_rules_from_seed_002() {
    let (_p, db) = example("customer").await;
    let history = vec![Bson::Document(
        doc! { "state": "active", "at": now(), "by": Bson::Null, "reason": "created" },
    )];
    let c = doc! { "firstName": "Lin", "email": "lin@customers.example.com", "phone": "15550109999", "customerType": "regular", "note": Bson::Null, "state": "active", "stateHistory": history, "createdAt": now(), "updatedAt": now() };
    let cases: Vec<(&str, Document, Option<i32>)> = vec![
        ("valid", c.clone(), None),
        (
            "at least one of name, email, phone",
            with(&c, |d| {
                for k in ["firstName", "email", "phone"] {
                    d.remove(k);
                }
                d.insert("customerType", "anonymous");
            }),
            Some(121),
        ),
        (
            "regular needs email and phone",
            with(&c, |d| {
                d.remove("phone");
                d.insert("email", "lin2@customers.example.com");
            }),
            Some(121),
        ),
        (
            "phone digits only",
            with(&c, |d| {
                d.insert("phone", "+1 555-010-8888");
                d.insert("email", "lin3@customers.example.com");
            }),
            Some(121),
        ),
        (
            "customerType enum",
            with(&c, |d| {
                d.insert("customerType", "vip");
                d.insert("email", "lin4@customers.example.com");
                d.insert("phone", "15550107777");
            }),
            Some(121),
        ),
        (
            "state enum",
            with(&c, |d| {
                d.insert("state", "gone");
                d.insert("email", "lin5@customers.example.com");
                d.insert("phone", "15550106666");
            }),
            Some(121),
        ),
        (
            "email unique where present",
            with(&c, |d| drop(d.insert("phone", "15550105555"))),
            Some(11000),
        ),
        (
            "phone unique where present",
            with(&c, |d| {
                drop(d.insert("email", "lin6@customers.example.com"))
            }),
            Some(11000),
        ),
        (
            "no email at all is fine twice",
            with(&c, |d| {
                d.remove("email");
                d.remove("phone");
                d.insert("customerType", "new");
            }),
            None,
        ),
        (
            "no email at all is fine twice",
            with(&c, |d| {
                d.remove("email");
                d.remove("phone");
                d.insert("customerType", "new");
            }),
            None,
        ),
    ];
    for (label, d, want) in cases {
        assert_eq!(code(&db, "customer", d).await, want, "customer: {label}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn memberships_logins_and_unique_if_not_null() {
    let (_p, db) = example("memberships").await;
    let user = doc! { "name": "New Person", "email": "new@people.example.com", "avatar_url": Bson::Null, "twitter_handle": Bson::Null, "username": Bson::Null, "created_at": now(), "updated_at": now() };
    assert_eq!(
        code(&db, "users", user.clone()).await,
        None,
        "a second user without a username (unique if not null)"
    );
    assert_eq!(
        code(
            &db,
            "users",
            with(&user, |d| {
                d.insert("email", "new2@people.example.com");
                d.insert("username", "kawai");
            })
        )
        .await,
        Some(11000),
        "usernames that are set are unique"
    );
    let kawai = db
        .collection::<Document>("users")
        .find_one(doc! { "username": "kawai" })
        .await
        .unwrap()
        .unwrap();
    let login = doc! { "user_id": kawai.get_object_id("_id").unwrap(), "username": "kawai2", "password_hash": argon(), "created_at": now(), "updated_at": now() };
    assert_eq!(
        code(&db, "logins", login.clone()).await,
        Some(11000),
        "one login per user"
    );
    assert_eq!(
        code(&db, "logins", with(&login, |d| drop(d.remove("user_id")))).await,
        Some(121),
        "a login needs its user"
    );
    assert_eq!(
        code(
            &db,
            "logins",
            with(&login, |d| {
                d.insert("user_id", ObjectId::new());
                d.insert("password_hash", "plain");
            })
        )
        .await,
        Some(121),
        "hashed passwords only"
    );
    let m = db
        .collection::<Document>("memberships")
        .find_one(doc! {})
        .await
        .unwrap()
        .unwrap();
    let member = doc! { "user_id": ObjectId::new(), "account_id": m.get_object_id("account_id").unwrap(), "company_id": m.get_object_id("company_id").unwrap(), "role": "member", "email": "x@acme.example.com", "office_phone": Bson::Null, "fax": Bson::Null, "created_at": now(), "updated_at": now() };
    assert_eq!(code(&db, "memberships", member.clone()).await, None);
    assert_eq!(
        code(
            &db,
            "memberships",
            with(&member, |d| {
                d.insert("user_id", ObjectId::new());
                d.insert("role", "admin");
            })
        )
        .await,
        Some(121),
        "role enum (V0001 renamed admin)"
    );
    assert_eq!(
        code(&db, "memberships", member).await,
        Some(11000),
        "a user has one membership per account"
    );
    assert_eq!(count(&db, "memberships").await, 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn guard_booking_from_seed_004() {
    let (_p, db) = example("guard-booking").await;
    let customer = db
        .collection::<Document>("users")
        .find_one(doc! { "role": "customer" })
        .await
        .unwrap()
        .unwrap();
    let start = DateTime::from_millis(1_800_000_000_000);
    let job = doc! {
        "customer_id": customer.get_object_id("_id").unwrap(), "guard_id": Bson::Null, "status": "requested", "security_type": "basic",
        "start_time": start, "end_time": DateTime::from_millis(1_800_010_000_000), "address": "2 Main St",
        "location": { "type": "Point", "coordinates": [-122.41, 37.77] }, "hourly_rate_cents": 4000, "total_amount_cents": 12000, "platform_fee_cents": 1800,
        "created_at": now(), "updated_at": now(),
    };
    let cases: Vec<(&str, Document, Option<i32>)> = vec![
        ("valid", job.clone(), None),
        (
            "ends after it starts",
            with(&job, |d| {
                drop(d.insert("end_time", DateTime::from_millis(1_799_000_000_000)))
            }),
            Some(121),
        ),
        (
            "status enum",
            with(&job, |d| drop(d.insert("status", "done"))),
            Some(121),
        ),
        (
            "matched jobs have a guard",
            with(&job, |d| drop(d.insert("status", "matched"))),
            Some(121),
        ),
        (
            "money in integer cents",
            with(&job, |d| drop(d.insert("total_amount_cents", 120.5))),
            Some(121),
        ),
        (
            "GeoJSON point",
            with(&job, |d| {
                drop(d.insert(
                    "location",
                    doc! { "type": "Point", "coordinates": [-200.0, 37.0] },
                ))
            }),
            Some(121),
        ),
    ];
    for (label, d, want) in cases {
        assert_eq!(code(&db, "jobs", d).await, want, "jobs: {label}");
    }
    let job_id = db
        .collection::<Document>("jobs")
        .find_one(doc! {})
        .await
        .unwrap()
        .unwrap()
        .get_object_id("_id")
        .unwrap();
    let pay = doc! { "job_id": job_id, "kind": "charge", "amount_cents": 100, "currency": "USD", "status": "pending", "stripe_payment_intent_id": "pi_New1", "created_at": now(), "updated_at": now() };
    assert_eq!(code(&db, "payments", pay.clone()).await, None);
    assert_eq!(
        code(
            &db,
            "payments",
            with(&pay, |d| {
                d.insert("amount_cents", 0);
                d.insert("stripe_payment_intent_id", "pi_New2");
            })
        )
        .await,
        Some(121),
        "positive amounts"
    );
    assert_eq!(
        code(&db, "payments", pay).await,
        Some(11000),
        "one payment per intent"
    );
    let guard = db
        .collection::<Document>("guard_profiles")
        .find_one(doc! {})
        .await
        .unwrap()
        .unwrap();
    let mut dup = guard.clone();
    dup.remove("_id");
    dup.insert("license_number", "CA-PSB-9999");
    assert_eq!(
        code(&db, "guard_profiles", dup).await,
        Some(11000),
        "guard profiles are one-to-one with users"
    );
    let users = db.collection::<Document>("users");
    assert_eq!(
        code(
            &db,
            "users",
            with(&customer, |d| {
                d.remove("_id");
                d.insert("email", "x@aegis.example.com");
                d.insert("role", "dispatcher");
            })
        )
        .await,
        Some(121),
        "role enum"
    );
    assert_eq!(
        users
            .count_documents(doc! { "password_hash": { "$regex": "^\\$argon2id\\$" } })
            .await
            .unwrap(),
        5,
        "demo users with hashed demo123"
    );
    // Location history keeps 30 days; available guards have their own partial geo index.
    let names = db
        .collection::<Document>("location_history")
        .list_index_names()
        .await
        .unwrap();
    assert!(names.contains(&"recorded_at_1".to_string()), "{names:?}");
    let ix = db
        .run_command(doc! { "listIndexes": "location_history" })
        .await
        .unwrap();
    let ttl = ix
        .get_document("cursor")
        .unwrap()
        .get_array("firstBatch")
        .unwrap()
        .iter()
        .filter_map(Bson::as_document)
        .find(|i| i.get_str("name") == Ok("recorded_at_1"))
        .unwrap()
        .get("expireAfterSeconds")
        .cloned();
    assert_eq!(
        ttl.and_then(|b| caas_core::inspect::normalize::canonical_number(&b)),
        Some(Bson::Int64(2_592_000))
    );
    assert!(db
        .collection::<Document>("guard_profiles")
        .list_index_names()
        .await
        .unwrap()
        .contains(&"available_guards_by_location".to_string()));
}

#[test]
fn examples_have_the_files_a_project_needs() {
    for name in ["classroom", "customer", "memberships", "guard-booking"] {
        let dir = root().join("examples").join(name);
        for f in ["caas.toml", "schemas", "migrations", "seeds/demo.yaml"] {
            assert!(dir.join(f).exists(), "{name}/{f}");
        }
    }
    let customer_migrations: Vec<String> =
        std::fs::read_dir(root().join("examples/customer/migrations"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
    for m in [
        "add_customer_notes",
        "customer_type_migration",
        "phone_number_normalisation",
    ] {
        assert!(
            customer_migrations.iter().any(|f| f.contains(m)),
            "seed 002's migration {m}"
        );
    }
}
