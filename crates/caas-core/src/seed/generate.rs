//! The built-in generator for the CAAS catalogue (`generator: caas-chat`): a chat platform
//! that reads as real, with references kept consistent inside each tenant (a message's
//! sender is a participant of its conversation, receipts point at real messages, members
//! at real groups). Pure: it returns documents by logical collection; placing and inserting
//! them is the caller's job.

use std::collections::BTreeMap;

use bson::oid::ObjectId;
use bson::{doc, Bson, DateTime, Document};

use super::fixtures::SeedFile;
use super::rng::{oid, Rng};

/// The plan codes the generator subscribes tenants to.
pub const PLAN_CODES: [&str; 4] = [
    "free_monthly",
    "starter_monthly",
    "pro_monthly",
    "enterprise_yearly",
];

/// Generated documents, by logical collection, in insertion order.
pub type Docs = BTreeMap<String, Vec<Document>>;

/// What to generate.
pub struct Gen<'a> {
    pub seed: u64,
    pub scale: u32,
    pub file: &'a SeedFile,
    /// The argon2id PHC string of the demo password, per tenant.
    pub password_hash: &'a dyn Fn(&str) -> String,
    /// Live plan `_id`s by code (plans may come from a migration, with other ids).
    pub plan_ids: &'a BTreeMap<String, ObjectId>,
}

const DAY: i64 = 86_400_000;
pub(super) const PRICES: [i64; 4] = [0, 4_900, 29_900, 1_200_000];
const MAX_USERS: [i32; 4] = [50, 500, 5_000, 1_000_000];
const MAX_STORAGE_MB: [i64; 4] = [1_024, 10_240, 102_400, 10_485_760];
const MAX_MESSAGES: [i64; 4] = [100_000, 1_000_000, 20_000_000, 2_000_000_000];
pub(super) const GROUP_NAMES: [&str; 2] = ["Product launch", "Coffee corner"];

pub(super) struct Out<'a> {
    pub(super) seed: u64,
    pub(super) tenant: String,
    pub(super) anchor: DateTime,
    pub(super) docs: &'a mut Docs,
    pub(super) counters: BTreeMap<&'static str, u64>,
}

impl Out<'_> {
    /// Add a document with a stable `_id` whose timestamp is its `created_at`.
    pub(super) fn push(&mut self, coll: &'static str, at: DateTime, mut d: Document) -> ObjectId {
        let n = self.counters.entry(coll).or_insert(0);
        let id = oid(self.seed, &self.tenant, coll, *n, at);
        *n += 1;
        let mut full = doc! { "_id": id };
        if !self.tenant.is_empty() && !d.contains_key("tenant_id") && !d.contains_key("_no_tenant")
        {
            full.insert("tenant_id", self.tenant.as_str());
        }
        d.remove("_no_tenant");
        full.extend(d);
        self.docs.entry(coll.to_owned()).or_default().push(full);
        id
    }

    pub(super) fn at(&self, day: i64, minute: i64) -> DateTime {
        DateTime::from_millis(self.anchor.timestamp_millis() + day * DAY + minute * 60_000)
    }
}

pub(super) fn stamps(d: &mut Document, created: DateTime, updated: DateTime) {
    d.insert("created_at", created);
    d.insert("updated_at", updated);
    d.insert("__v", 0);
}

impl Gen<'_> {
    /// Platform-wide documents: plans, blocked IPs, platform metrics.
    pub fn platform(&self) -> Docs {
        let mut docs = Docs::new();
        let mut out = Out {
            seed: self.seed,
            tenant: String::new(),
            anchor: self.file.anchor(),
            docs: &mut docs,
            counters: BTreeMap::new(),
        };
        let mut rng = Rng::new(self.seed, "platform");
        for (i, code) in [
            "free_monthly",
            "starter_monthly",
            "pro_monthly",
            "enterprise_yearly",
        ]
        .iter()
        .enumerate()
        {
            let tier = ["free", "starter", "pro", "enterprise"][i];
            let price = PRICES[i];
            let mut d = doc! {
                "code": *code, "name": tier[..1].to_uppercase() + &tier[1..], "tier": tier, "price_minor": price, "currency": "USD",
                "interval": if i == 3 { "year" } else { "month" }, "is_public": i < 3, "status": "active",
                "features": ["messaging", "groups"],
                "limits": { "max_users": MAX_USERS[i], "max_storage_mb": MAX_STORAGE_MB[i], "max_messages_per_month": MAX_MESSAGES[i] },
            };
            stamps(&mut d, out.at(0, i as i64), out.at(0, i as i64));
            out.push("plans", out.at(0, i as i64), d);
        }
        for i in 0..3 {
            let created = out.at(i, 30);
            // `blocked_until` carries a TTL index (expire at the date itself): a date near
            // the fixed anchor is soon in the past, and the server deletes the block right
            // after every seed (from December 2026 on, each rerun re-inserted it). Ten
            // years out keeps seeded blocks alive and the data deterministic.
            let mut d = doc! {
                "cidr": format!("203.0.113.{}/32", 10 + rng.below(200)),
                "reason": *rng.pick(&["abuse", "brute_force", "spam", "scraping"]),
                "source": "automatic", "hit_count": (rng.below(5_000) + 10) as i64, "blocked_by": Bson::Null,
                "blocked_until": if i == 0 { Bson::Null } else { Bson::DateTime(out.at(3_650 + i, 0)) },
            };
            stamps(&mut d, created, created);
            out.push("blocked_ips", created, d);
        }
        for day in 0..14 {
            for (name, unit, base) in [
                ("platform.messages_per_minute", "count", 900.0),
                ("platform.api_latency_p95", "ms", 42.0),
            ] {
                let ts = out.at(day, (rng.below(1_440)) as i64);
                let value = base * (0.7 + (rng.below(60) as f64) / 100.0);
                out.push("metrics", ts, doc! { "ts": ts, "meta": { "name": name, "tenant_id": Bson::Null }, "value": value, "unit": unit });
            }
        }
        docs
    }
}
