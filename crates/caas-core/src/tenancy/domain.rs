//! Domains: which family of databases a logical collection belongs to.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where a collection lives: platform, billing, analytics and security collections live in
/// their domain's database; saas collections follow the tenant's tier.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Domain {
    // CAAS platform operations (`caas_platform`).
    Platform,
    // Per-tenant data; placement follows the tenant's tier.
    Saas,
    // Subscriptions, invoices, usage (`caas_billing`).
    Billing,
    // Events, metrics, audit (`caas_analytics`).
    Analytics,
    // IP lists and policies (`caas_platform` unless configured).
    Security,
}

impl Domain {
    pub const ALL: [Domain; 5] = [
        Domain::Platform,
        Domain::Saas,
        Domain::Billing,
        Domain::Analytics,
        Domain::Security,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Domain::Platform => "platform",
            Domain::Saas => "saas",
            Domain::Billing => "billing",
            Domain::Analytics => "analytics",
            Domain::Security => "security",
        }
    }
}
