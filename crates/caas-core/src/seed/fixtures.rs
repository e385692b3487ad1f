//! `seeds/demo.yaml`: the hand-written part of the demo data. Demo tenants, fixture
//! documents for platform collections and for every demo tenant, and the word lists the
//! generator draws from.

use std::path::Path;

use bson::DateTime;
use indexmap::IndexMap;
use serde::Deserialize;

use crate::base::diagnostic::{dotted, Finding};
use crate::tenancy::Tier;

pub const SEED_FILE: &str = "seeds/demo.yaml";

/// Written in a fixture, replaced by the argon2id hash of the demo password.
pub const PASSWORD_PLACEHOLDER: &str = "{{password}}";

/// Fields caas derives for every seeded document; fixtures may not set them.
pub const PLACEMENT_FIELDS: &[&str] = &["tenant_id", "_id"];

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SeedFile {
    /// `caas-chat` generates the CAAS catalogue's data; omit for fixtures only.
    #[serde(default)]
    pub generator: Option<String>,
    /// The demo accounts' password (seed 004: demo123). Stored only as argon2id hashes.
    #[serde(default = "default_password")]
    pub password: String,
    /// Generated timestamps spread over the weeks after this date (RFC 3339).
    #[serde(default = "default_anchor")]
    pub anchor: String,
    pub tenants: Vec<DemoTenant>,
    /// Fixture documents for platform-side collections, by logical name.
    #[serde(default)]
    pub platform: IndexMap<String, Vec<serde_json::Map<String, serde_json::Value>>>,
    /// Fixture documents inserted for every demo tenant (its `tenant_id` is added).
    #[serde(default)]
    pub tenant: IndexMap<String, Vec<serde_json::Map<String, serde_json::Value>>>,
    #[serde(default)]
    pub names: Names,
    #[serde(default)]
    pub phrases: Vec<String>,
}

fn default_password() -> String {
    "demo123".into()
}
fn default_anchor() -> String {
    "2026-10-01T00:00:00Z".into()
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DemoTenant {
    pub id: String,
    pub tier: String,
    pub name: String,
    #[serde(default)]
    pub email: Option<String>,
}

impl DemoTenant {
    /// Mail domain on the reserved `example.com`.
    pub fn domain(&self) -> String {
        format!("{}.example.com", self.id)
    }

    pub fn tier(&self) -> Tier {
        self.tier.parse().expect("checked when loading")
    }
}

#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Names {
    #[serde(default)]
    pub first: Vec<String>,
    #[serde(default)]
    pub last: Vec<String>,
}

impl SeedFile {
    pub fn anchor(&self) -> DateTime {
        DateTime::parse_rfc3339_str(&self.anchor)
            .unwrap_or(DateTime::from_millis(1_790_812_800_000))
    }

    /// Load and check `seeds/demo.yaml`; every problem names file, line and column.
    pub fn load(root: &Path) -> Result<SeedFile, Vec<Finding>> {
        let file = root.join(SEED_FILE);
        if !file.exists() {
            return Err(vec![Finding::error(
                "unreadable",
                &file,
                Default::default(),
                "",
            )
            .says(
                "the seed file does not exist".to_string(),
                format!("create {SEED_FILE} (see the README's seed section)"),
            )]);
        }
        let doc = crate::base::files::read_yaml(&file)?;
        let seed: SeedFile = crate::base::files::decode(&doc).map_err(|e| {
            vec![Finding::error(
                "invalid-seed",
                &file,
                doc.value_pos(&e.pointer),
                dotted(&e.pointer),
            )
            .says(e.message, "see the seed file format in the README")]
        })?;
        let findings = seed.check(&doc, &file);
        if findings.is_empty() {
            Ok(seed)
        } else {
            Err(findings)
        }
    }

    /// What the file's types cannot say: valid tenant ids and tiers, fixtures that leave
    /// placement to caas, a known generator with its word lists.
    fn check(&self, doc: &crate::base::yaml::Document, file: &Path) -> Vec<Finding> {
        let mut findings = Vec::new();
        for (i, t) in self.tenants.iter().enumerate() {
            if let Err(why) = crate::tenancy::check_tenant_id(&t.id) {
                let p = format!("/tenants/{i}/id");
                findings.push(
                    Finding::error("invalid-seed", file, doc.value_pos(&p), dotted(&p))
                        .says(why, "use a valid tenant id"),
                );
            }
            if t.tier.parse::<Tier>().is_err() {
                let p = format!("/tenants/{i}/tier");
                findings.push(
                    Finding::error("invalid-seed", file, doc.value_pos(&p), dotted(&p)).says(
                        format!("unknown tier `{}`", t.tier),
                        "use free, starter, pro or enterprise",
                    ),
                );
            }
        }
        // caas places every fixture: `tenant_id` (and `_id`, which caas derives so reruns
        // and `--reset` find the document) are its own, never the fixture's.
        for (section, fixtures) in [("tenant", &self.tenant), ("platform", &self.platform)] {
            for (coll, list) in fixtures {
                for (i, d) in list.iter().enumerate() {
                    for key in PLACEMENT_FIELDS.iter().filter(|k| d.contains_key(**k)) {
                        let p = format!(
                            "/{section}/{}/{i}/{key}",
                            crate::base::yaml::pointer_segment(coll)
                        );
                        findings.push(
                            Finding::error("invalid-seed", file, doc.key_pos(&p), dotted(&p)).says(
                                format!("a fixture may not set `{key}`: caas sets it for each demo tenant it seeds (a fixture's own value could put the document into another, real tenant)"),
                                format!("remove `{key}` from the fixture"),
                            ),
                        );
                    }
                }
            }
        }
        if self.generator.as_deref().is_some_and(|g| g != "caas-chat") {
            findings.push(
                Finding::error(
                    "invalid-seed",
                    file,
                    doc.value_pos("/generator"),
                    "generator",
                )
                .says(
                    "unknown generator".to_string(),
                    "use `caas-chat`, or omit it for fixtures only",
                ),
            );
        }
        if self.generator.is_some()
            && (self.names.first.is_empty()
                || self.names.last.is_empty()
                || self.phrases.is_empty())
        {
            findings.push(
                Finding::error("invalid-seed", file, doc.value_pos("/names"), "names").says(
                    "the generator needs `names.first`, `names.last` and `phrases`".to_string(),
                    "add the word lists",
                ),
            );
        }
        findings
    }
}
