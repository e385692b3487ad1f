//! One demo tenant's documents for the `caas-chat` generator: platform-side (applications,
//! keys, billing, analytics, security) and in its own target (users, messaging, media,
//! groups). References stay inside the tenant.

use std::collections::BTreeMap;

use bson::oid::ObjectId;
use bson::{doc, Binary, Bson, DateTime};

use super::fixtures::DemoTenant;
use super::generate::{stamps, Docs, Gen, Out, GROUP_NAMES, PRICES};
use super::rng::{oid, sha256_hex, Rng};

impl Gen<'_> {
    /// Everything one demo tenant owns, platform-side (applications, keys, billing,
    /// analytics, security) and in its own target (users, messaging, media, groups, ...).
    pub fn tenant(&self, t: &DemoTenant) -> Docs {
        let mut docs = Docs::new();
        let mut g = TenantGen {
            gen: self,
            t,
            out: Out {
                seed: self.seed,
                tenant: t.id.clone(),
                anchor: self.file.anchor(),
                docs: &mut docs,
                counters: BTreeMap::new(),
            },
            rng: Rng::new(self.seed, &t.id),
            scale: u64::from(self.scale.max(1)),
            domain: t.domain(),
        };
        let apps = g.apps();
        let users = g.users();
        let conversations = g.conversations(&users);
        g.messages(&conversations);
        g.media(&users);
        g.settings();
        g.billing();
        g.analytics(&apps, &users);
        g.security(&users);
        docs
    }
}

/// One demo tenant's documents, section by section; the sections run in a fixed order
/// because they share one random stream (the same seed gives the same documents).
struct TenantGen<'g, 'd> {
    gen: &'g Gen<'g>,
    t: &'g DemoTenant,
    out: Out<'d>,
    rng: Rng,
    scale: u64,
    domain: String,
}

impl TenantGen<'_, '_> {
    fn n_users(&self) -> u64 {
        8 * self.scale
    }

    /// Applications and API keys (platform database, tenant-scoped).
    fn apps(&mut self) -> Vec<ObjectId> {
        let TenantGen {
            t,
            out,
            rng,
            domain,
            ..
        } = self;
        let mut apps = Vec::new();
        for (i, (name, platform)) in [("Web app", "web"), ("iOS app", "ios")].iter().enumerate() {
            let created = out.at(0, 5 + i as i64);
            let mut d = doc! {
                "name": *name, "platform": *platform, "status": "active",
                "allowed_origins": if *platform == "web" { vec![Bson::String(format!("https://app.{domain}"))] } else { vec![] },
                "bundle_id": if *platform == "ios" { Bson::String(format!("com.{}.chat", t.id.replace('-', ""))) } else { Bson::Null },
                "push": { "apns_topic": Bson::Null, "fcm_sender_id": Bson::Null },
            };
            stamps(&mut d, created, created);
            apps.push(out.push("applications", created, d));
        }
        for (i, env) in ["live", "test"].iter().enumerate() {
            let created = out.at(1, i as i64);
            let secret = format!("caas_{env}_{}{}", rng.alnum(8), rng.alnum(32));
            let mut d = doc! {
                "application_id": apps[0], "name": format!("{} server key", env), "key_prefix": &secret[..18], "key_hash": sha256_hex(&secret),
                "environment": *env, "scopes": ["messages:read", "messages:write", "users:read"], "status": "active",
                "last_used_at": out.at(20, 0), "expires_at": Bson::Null, "revoked_at": Bson::Null,
            };
            stamps(&mut d, created, created);
            out.push("api_keys", created, d);
        }
        apps
    }

    /// Users, with devices, sessions and keys, and their relationships.
    fn users(&mut self) -> Vec<ObjectId> {
        let pw = (self.gen.password_hash)(&self.t.id);
        let mut users = Vec::new();
        for i in 0..self.n_users() {
            let (user, created) = self.user(i, &pw);
            users.push(user);
            self.devices(user, created);
        }
        let out = &mut self.out;
        for i in 0..(users.len().saturating_sub(1)) {
            let created = out.at(3, i as i64);
            let mut d = doc! { "user_id": users[i], "target_user_id": users[i + 1], "type": if i % 5 == 4 { "blocked" } else { "contact" }, "status": "accepted" };
            stamps(&mut d, created, created);
            out.push("user_relationships", created, d);
        }
        users
    }

    /// User `i`: names unique by construction, at any scale, so the unique indexes on
    /// username and phone hold.
    fn user(&mut self, i: u64, pw: &str) -> (ObjectId, DateTime) {
        let TenantGen {
            gen,
            out,
            rng,
            domain,
            ..
        } = self;
        let (firsts, lasts) = (&gen.file.names.first, &gen.file.names.last);
        let (nf, nl) = (firsts.len() as u64, lasts.len() as u64);
        let (first, last) = (
            firsts[(i % nf) as usize].clone(),
            lasts[((i / nf) % nl) as usize].clone(),
        );
        let suffix = if i < nf * nl {
            String::new()
        } else {
            (i / (nf * nl)).to_string()
        };
        let username = format!("{}.{}{suffix}", first.to_lowercase(), last.to_lowercase());
        let username: String = username
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
            .take(32)
            .collect();
        let created = out.at((i % 20) as i64, (i * 7 % 600) as i64);
        let mut d = doc! {
            "username": &username, "display_name": format!("{first} {last}"),
            "email": format!("{username}.{i}@{domain}"), "phone": format!("1555{:07}", (i * 7_919) % 10_000_000),
            "password_hash": pw, "pass_change": true,
            "role": if i == 0 { "admin" } else if i == 1 { "moderator" } else { "member" },
            "status": if i % 13 == 12 { "invited" } else { "active" },
            "avatar_file_id": Bson::Null, "locale": *rng.pick(&["en", "en-US", "de-DE", "fr", "es-ES"]),
            "timezone": *rng.pick(&["Europe/Berlin", "America/New_York", "Asia/Tokyo", "UTC"]),
            "last_seen_at": out.at(25 + (i % 10) as i64, 0), "demo": true,
        };
        stamps(&mut d, created, out.at(28, 0));
        (out.push("users", created, d), created)
    }

    /// A user's device, session, identity keys and prekeys.
    fn devices(&mut self, user: ObjectId, created: DateTime) {
        let TenantGen { out, rng, .. } = self;
        let device_id = format!("dev-{}", rng.hex(16));
        let platform = *rng.pick(&["ios", "android", "web"]);
        let mut dev = doc! {
            "user_id": user, "device_id": &device_id, "platform": platform,
            "push_provider": match platform { "ios" => "apns", "android" => "fcm", _ => "webpush" },
            "push_token": rng.hex(64), "app_version": "3.4.1", "os_version": "17.2",
            "last_active_at": out.at(27, 0), "status": "active",
        };
        stamps(&mut dev, created, created);
        out.push("user_devices", created, dev);
        let mut s = doc! {
            "user_id": user, "device_id": &device_id, "token_hash": sha256_hex(&rng.hex(40)), "ip": format!("198.51.100.{}", rng.below(250)),
            "user_agent": "CaasChat/3.4.1", "expires_at": out.at(90, 0), "last_seen_at": out.at(27, 0),
            "revoked_at": Bson::Null, "revoked_reason": Bson::Null,
        };
        stamps(&mut s, created, created);
        out.push("user_sessions", created, s);
        let mut k = doc! {
            "user_id": user, "device_id": &device_id, "algorithm": "x25519",
            "identity_key": Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: rng.bytes(32) },
            "signed_prekey": { "key_id": 1, "public_key": Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: rng.bytes(32) }, "signature": Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: rng.bytes(64) } },
            "status": "active", "rotated_at": Bson::Null,
        };
        stamps(&mut k, created, created);
        out.push("user_keys", created, k);
        let prekeys: Vec<Bson> = (0..5).map(|n| Bson::Document(doc! { "key_id": n, "public_key": Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: rng.bytes(32) } })).collect();
        let mut b = doc! { "user_id": user, "device_id": &device_id, "one_time_prekeys": prekeys, "consumed_count": 0_i64, "uploaded_at": created };
        stamps(&mut b, created, created);
        out.push("prekey_bundles", created, b);
    }

    /// Groups with their conversations, then direct conversations.
    fn conversations(&mut self, users: &[ObjectId]) -> Vec<(ObjectId, Vec<ObjectId>, bool)> {
        let TenantGen {
            gen, t, out, scale, ..
        } = self;
        let mut conversations: Vec<(ObjectId, Vec<ObjectId>, bool)> = Vec::new();
        for g in 0..2 {
            let created = out.at(2, 10 + g);
            let members: Vec<ObjectId> = users
                .iter()
                .copied()
                .skip(g as usize)
                .step_by(2)
                .take(6)
                .collect();
            let conv_created = created;
            let mut conv = doc! {
                "type": "group", "title": GROUP_NAMES[g as usize], "participant_ids": members.clone(),
                "created_by": members[0], "is_encrypted": false, "message_count": 0_i64, "last_message": Bson::Null, "deleted_at": Bson::Null, "deleted_by": Bson::Null,
            };
            // group_id is set below once the group id is known (ids are derived, not random).
            let group_id = oid(gen.seed, &t.id, "groups", g as u64, created);
            conv.insert("group_id", group_id);
            stamps(&mut conv, conv_created, conv_created);
            let conv_id = out.push("conversations", conv_created, conv);
            let mut grp = doc! {
                "name": GROUP_NAMES[g as usize], "description": "Demo group", "avatar_file_id": Bson::Null,
                "owner_id": members[0], "conversation_id": conv_id, "visibility": if g == 0 { "private" } else { "public" },
                "join_policy": if g == 0 { "invite" } else { "open" }, "member_count": members.len() as i32, "max_members": 500,
                "settings": { "only_admins_post": false, "history_visible_to_new_members": true },
                "state": "active", "state_history": [ { "state": "active", "at": created, "by": members[0], "reason": "created" } ],
            };
            stamps(&mut grp, created, created);
            let gid = out.push("groups", created, grp);
            debug_assert_eq!(gid, group_id);
            for (m, user) in members.iter().enumerate() {
                let mut d = doc! { "group_id": gid, "user_id": *user, "role": if m == 0 { "owner" } else { "member" }, "status": "active", "joined_at": created, "invited_by": members[0] };
                stamps(&mut d, created, created);
                out.push("group_members", created, d);
            }
            conversations.push((conv_id, members, true));
        }
        for c in 0..(3 * *scale) {
            let a = users[(c as usize * 2) % users.len()];
            let b = users[(c as usize * 2 + 1) % users.len()];
            if a == b {
                continue;
            }
            let created = out.at(4 + (c % 10) as i64, c as i64);
            let mut conv = doc! {
                "type": "direct", "title": Bson::Null, "group_id": Bson::Null, "participant_ids": [a, b], "created_by": a,
                "is_encrypted": c % 2 == 1, "message_count": 0_i64, "last_message": Bson::Null, "deleted_at": Bson::Null, "deleted_by": Bson::Null,
            };
            stamps(&mut conv, created, created);
            let id = out.push("conversations", created, conv);
            conversations.push((id, vec![a, b], false));
        }
        conversations
    }

    /// Messages and reactions, then the inbox fields and read receipts that follow them.
    fn messages(&mut self, conversations: &[(ObjectId, Vec<ObjectId>, bool)]) {
        let TenantGen {
            gen,
            out,
            rng,
            scale,
            ..
        } = self;
        let phrases = &gen.file.phrases;
        let n_messages = 40 * *scale;
        let mut last_by_conv: BTreeMap<ObjectId, (ObjectId, ObjectId, DateTime, String, i64)> =
            BTreeMap::new();
        for m in 0..n_messages {
            let (conv, members, _) = &conversations[(m % conversations.len() as u64) as usize];
            let sender = members[(m as usize) % members.len()];
            let at = out.at(6 + (m % 21) as i64, (m * 3 % 1_400) as i64);
            let body = rng.pick(phrases).clone();
            let mut d = doc! {
                "conversation_id": *conv, "sender_id": sender, "client_message_id": format!("cm-{}", rng.hex(16)),
                "type": "text", "body": &body, "reply_to_id": Bson::Null, "mentions": [], "edited_at": Bson::Null,
                "deleted_at": Bson::Null, "deleted_by": Bson::Null,
            };
            stamps(&mut d, at, at);
            let id = out.push("messages", at, d);
            let e = last_by_conv
                .entry(*conv)
                .or_insert((id, sender, at, body.clone(), 0));
            if at >= e.2 {
                *e = (id, sender, at, body.chars().take(140).collect(), e.4);
            }
            e.4 += 1;
            if m % 3 == 0 {
                let reactor = members[(m as usize + 1) % members.len()];
                let mut r = doc! { "message_id": id, "conversation_id": *conv, "user_id": reactor, "emoji": *rng.pick(&["👍", "❤️", "😂", "🎉"]) };
                stamps(&mut r, at, at);
                out.push("reactions", at, r);
            }
        }
        // Denormalised inbox fields and read receipts follow the messages.
        for (conv, members, _) in conversations {
            let Some((mid, sender, at, preview, count)) = last_by_conv.get(conv).cloned() else {
                continue;
            };
            if let Some(list) = out.docs.get_mut("conversations") {
                if let Some(c) = list
                    .iter_mut()
                    .find(|d| d.get_object_id("_id").ok() == Some(*conv))
                {
                    c.insert("message_count", count);
                    c.insert("last_message", doc! { "message_id": mid, "sender_id": sender, "preview": preview, "sent_at": at });
                }
            }
            for user in members {
                let mut r = doc! { "conversation_id": *conv, "user_id": *user, "last_read_message_id": mid, "last_read_at": at, "unread_count": if *user == sender { 0 } else { 1 } };
                stamps(&mut r, at, at);
                out.push("read_receipts", at, r);
            }
        }
    }

    /// Media: files, metadata, posts.
    fn media(&mut self, users: &[ObjectId]) {
        let TenantGen {
            gen, t, out, rng, ..
        } = self;
        let phrases = &gen.file.phrases;
        let mut images = Vec::new();
        for f in 0..6 {
            let created = out.at(8 + f, 30);
            let (name, mime, kind) = [
                ("launch.png", "image/png", "image"),
                ("team.jpg", "image/jpeg", "image"),
                ("notes.pdf", "application/pdf", "file"),
            ][f as usize % 3];
            let mut d = doc! {
                "owner_id": users[f as usize % users.len()], "conversation_id": Bson::Null, "file_name": name, "mime_type": mime,
                "size_bytes": (rng.below(4_000_000) + 20_000) as i64, "checksum_sha256": sha256_hex(&rng.hex(32)),
                "storage": { "provider": "s3", "bucket": "caas-demo-media", "key": format!("{}/{}", t.id, rng.hex(24)) },
                "status": "ready", "scanned_at": created, "deleted_at": Bson::Null, "deleted_by": Bson::Null,
            };
            stamps(&mut d, created, created);
            let id = out.push("files", created, d);
            if kind == "image" {
                images.push(id);
                let mut m = doc! { "file_id": id, "kind": "image", "width": 1_280, "height": 720, "blurhash": "LEHV6nWB2yk8pyo0adR*.7kCMdnj", "thumbnails": [], "transcodes": [], "exif": { "make": "DemoCam" } };
                stamps(&mut m, created, created);
                out.push("media_metadata", created, m);
            }
        }
        for p in 0..4 {
            let created = out.at(10 + p, 0);
            let story = p == 3;
            let mut d = doc! {
                "author_id": users[p as usize % users.len()], "kind": if story { "story" } else { "post" }, "caption": rng.pick(phrases).clone(),
                "media_file_ids": [images[p as usize % images.len()]], "visibility": if p % 2 == 0 { "public" } else { "contacts" },
                "like_count": (rng.below(300)) as i64, "comment_count": (rng.below(40)) as i64,
                "location": { "type": "Point", "coordinates": [13.4050 + (rng.below(100) as f64) / 1000.0, 52.5200] },
                "expires_at": if story { Bson::DateTime(out.at(400, 0)) } else { Bson::Null },
                "deleted_at": Bson::Null, "deleted_by": Bson::Null,
            };
            stamps(&mut d, created, created);
            out.push("posts", created, d);
        }
    }

    /// The tenant's settings.
    fn settings(&mut self) {
        let TenantGen {
            t,
            out,
            rng,
            domain,
            ..
        } = self;
        let created = out.at(0, 1);
        let mut s = doc! {
            "branding": { "app_name": &t.name, "primary_color": format!("#{}", rng.hex(6)), "logo_file_id": Bson::Null },
            "features": { "e2e_encryption": t.tier != "free", "media_uploads": true, "groups": true, "posts": t.tier != "free" },
            "limits": { "max_group_members": 500, "max_file_size_mb": 100, "message_retention_days": Bson::Null },
            "moderation": { "profanity_filter": true, "blocked_words": ["spam"] },
            "webhooks": [ { "url": format!("https://hooks.{domain}/caas"), "events": ["message.created", "user.created"], "secret_hash": sha256_hex(&rng.hex(32)), "active": true } ],
        };
        stamps(&mut s, created, created);
        out.push("tenant_settings", created, s);
    }

    /// Subscription, invoices, usage and a payment method.
    fn billing(&mut self) {
        let TenantGen {
            gen,
            t,
            out,
            rng,
            domain,
            ..
        } = self;
        let plan_code = match t.tier.as_str() {
            "free" => 0,
            "starter" => 1,
            "pro" => 2,
            _ => 3,
        };
        let code = [
            "free_monthly",
            "starter_monthly",
            "pro_monthly",
            "enterprise_yearly",
        ][plan_code as usize];
        let plan = gen.plan_ids.get(code).copied().unwrap_or_else(|| {
            oid(
                gen.seed,
                "",
                "plans",
                plan_code,
                out.at(0, plan_code as i64),
            )
        });
        let price = PRICES[plan_code as usize];
        let created = out.at(0, 2);
        let mut sub = doc! {
            "plan_id": plan, "status": "active", "quantity": 1, "amount_minor": price, "currency": "USD",
            "current_period_start": out.at(0, 0), "current_period_end": out.at(30, 0), "cancel_at_period_end": false,
            "trial_ends_at": Bson::Null, "canceled_at": Bson::Null,
            "provider": { "name": "stripe", "customer_id": format!("cus_{}", rng.alnum(14)), "subscription_id": format!("sub_{}", rng.alnum(14)) },
        };
        stamps(&mut sub, created, created);
        let sub_id = out.push("subscriptions", created, sub);
        for i in 0..2_i64 {
            let issued = out.at(i * 30, 0);
            let tax = price / 5;
            let mut inv = doc! {
                "subscription_id": sub_id, "number": format!("INV-2026-{:06}", rng.below(1_000_000)), "status": if i == 0 { "paid" } else { "open" },
                "currency": "USD", "subtotal_minor": price, "tax_minor": tax, "total_minor": price + tax, "amount_paid_minor": if i == 0 { price + tax } else { 0 },
                "lines": [ { "description": "Subscription", "quantity": 1_i64, "unit_amount_minor": price, "amount_minor": price } ],
                "issued_at": issued, "due_at": out.at(i * 30 + 14, 0), "paid_at": if i == 0 { Bson::DateTime(out.at(3, 0)) } else { Bson::Null },
            };
            stamps(&mut inv, issued, issued);
            out.push("invoices", issued, inv);
        }
        for (i, metric) in [
            "messages_sent",
            "active_users",
            "storage_bytes",
            "api_calls",
        ]
        .iter()
        .enumerate()
        {
            let created = out.at(29, i as i64);
            let mut u = doc! { "subscription_id": sub_id, "metric": *metric, "quantity": (rng.below(100_000) + 1) as i64, "period_start": out.at(0, 0), "period_end": out.at(30, 0), "idempotency_key": format!("usage-{}-{metric}", t.id) };
            stamps(&mut u, created, created);
            out.push("usage_records", created, u);
        }
        let mut pm = doc! {
            "type": "card", "provider": { "name": "stripe", "payment_method_id": format!("pm_{}", rng.alnum(20)) },
            "card": { "brand": "visa", "last4": format!("{:04}", rng.below(10_000)), "exp_month": 12, "exp_year": 2029 },
            "billing_email": format!("billing@{domain}"), "is_default": true, "status": "active", "deleted_at": Bson::Null, "deleted_by": Bson::Null,
        };
        stamps(&mut pm, created, created);
        out.push("payment_methods", created, pm);
    }

    /// Events, per-tenant metrics and audit logs.
    fn analytics(&mut self, apps: &[ObjectId], users: &[ObjectId]) {
        let TenantGen {
            t, out, rng, scale, ..
        } = self;
        let n_users = 8 * *scale;
        for e in 0..(30 * *scale) {
            let ts = out.at((e % 28) as i64, (e * 11 % 1_400) as i64);
            let kind = *rng.pick(&[
                "message.sent",
                "user.login",
                "group.joined",
                "file.uploaded",
            ]);
            out.push("events", ts, doc! { "ts": ts, "meta": { "event_type": kind, "application_id": apps[0] }, "user_id": users[(e % n_users) as usize], "properties": { "client": "ios" } });
        }
        for day in 0..7 {
            let ts = out.at(day, 0);
            out.push("metrics", ts, doc! { "_no_tenant": true, "ts": ts, "meta": { "name": "tenant.active_users", "tenant_id": &t.id }, "value": (rng.below(n_users) + 1) as f64, "unit": "count" });
        }
        for a in 0..5_i64 {
            let created = out.at(a * 4, 15);
            let mut d = doc! {
                "tenant_id": &t.id, "actor": { "type": "user", "id": users[0].to_hex(), "ip": "198.51.100.7" },
                "action": *rng.pick(&["user.invited", "settings.updated", "api_key.created", "group.archived"]),
                "target": { "collection": "users", "id": users[(a as usize + 1) % users.len()].to_hex() },
                "outcome": "success", "request_id": format!("req-{}", rng.hex(12)), "changes": { "role": { "from": "member", "to": "moderator" } },
            };
            stamps(&mut d, created, created);
            out.push("audit_logs", created, d);
        }
    }

    /// IP allow-list and security policies.
    fn security(&mut self, users: &[ObjectId]) {
        let TenantGen { t, out, .. } = self;
        let created = out.at(1, 3);
        let mut ip = doc! { "cidr": "192.0.2.0/24", "applies_to": "dashboard", "note": "Office network", "created_by": users[0], "expires_at": Bson::Null };
        stamps(&mut ip, created, created);
        out.push("ip_whitelist", created, ip);
        for (i, (kind, settings)) in [
            ("password", doc! { "min_password_length": 12 }),
            ("session", doc! { "session_ttl_minutes": 43_200 }),
            ("mfa", doc! { "require_mfa": t.tier == "enterprise" }),
        ]
        .into_iter()
        .enumerate()
        {
            let created = out.at(1, 10 + i as i64);
            let mut d = doc! { "kind": kind, "enabled": true, "version": 1, "settings": settings };
            stamps(&mut d, created, created);
            out.push("security_policies", created, d);
        }
    }
}
