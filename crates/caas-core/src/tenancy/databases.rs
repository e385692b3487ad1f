//! Database and collection names: where each domain lives, and the templates that name an
//! Enterprise tenant's database and a Pro tenant's collections. Every `{tenant_id}` is
//! expanded here and nowhere else.

use serde::Deserialize;

use super::Domain;

/// Database names. `tenant` is a template with `{tenant_id}`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Databases {
    #[serde(default = "db_platform")]
    pub platform: String,
    #[serde(default = "db_billing")]
    pub billing: String,
    #[serde(default = "db_analytics")]
    pub analytics: String,
    /// Security collections (IP lists, policies) sit with the platform by default:
    /// seed 001 names no database of their own, and they are platform-wide.
    #[serde(default = "db_platform")]
    pub security: String,
    /// Shared collections of free and starter tenants, and Pro collection sets.
    #[serde(default = "db_shared")]
    pub shared: String,
    /// Database of an enterprise tenant.
    #[serde(default = "db_tenant")]
    pub tenant: String,
    /// Physical collection name of a Pro collection set member.
    #[serde(default = "coll_set")]
    pub collection_set: String,
}

impl Default for Databases {
    fn default() -> Self {
        toml::from_str("").expect("defaults parse")
    }
}

fn db_platform() -> String {
    "caas_platform".into()
}
fn db_billing() -> String {
    "caas_billing".into()
}
fn db_analytics() -> String {
    "caas_analytics".into()
}
fn db_shared() -> String {
    "caas_shared".into()
}
fn db_tenant() -> String {
    "caas_{tenant_id}".into()
}
fn coll_set() -> String {
    "{tenant_id}_{collection}".into()
}

impl Databases {
    /// The database of a non-`saas` domain.
    pub fn for_domain(&self, domain: Domain) -> &str {
        match domain {
            Domain::Platform => &self.platform,
            Domain::Billing => &self.billing,
            Domain::Analytics => &self.analytics,
            Domain::Security => &self.security,
            Domain::Saas => &self.shared,
        }
    }

    /// The database of an Enterprise (database-layout) tenant.
    pub fn tenant_database(&self, tenant: &str) -> String {
        self.tenant.replace("{tenant_id}", tenant)
    }

    /// The physical name of a Pro (collection-set) tenant's collection.
    pub fn set_collection(&self, tenant: &str, collection: &str) -> String {
        self.collection_set
            .replace("{tenant_id}", tenant)
            .replace("{collection}", collection)
    }

    /// What every collection of a Pro tenant's set starts with (`acme_`).
    pub fn set_prefix(&self, tenant: &str) -> String {
        let template = self.collection_set.replace("{tenant_id}", tenant);
        template
            .split("{collection}")
            .next()
            .unwrap_or("")
            .to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_expand_in_one_place() {
        let dbs = Databases::default();
        assert_eq!(dbs.tenant_database("acme"), "caas_acme");
        assert_eq!(dbs.set_collection("acme", "users"), "acme_users");
        assert_eq!(dbs.set_prefix("acme"), "acme_");
        assert_eq!(dbs.for_domain(Domain::Billing), "caas_billing");
    }
}
