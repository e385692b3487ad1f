//! Physical targets: the units that `apply` and `migrate` work on, and where each logical
//! collection lands inside one.

use std::fmt;

use serde::Serialize;

use super::{Databases, Domain, Layout, Tier};

/// What placing needs to know of a logical collection (a spec implements it).
pub trait Logical {
    /// The logical name, e.g. `users`.
    fn collection(&self) -> &str;
    fn domain(&self) -> Domain;
    /// Documents carry `tenant_id`.
    fn is_tenant_scoped(&self) -> bool;
}

impl<T: Logical + ?Sized> Logical for &T {
    fn collection(&self) -> &str {
        (**self).collection()
    }
    fn domain(&self) -> Domain {
        (**self).domain()
    }
    fn is_tenant_scoped(&self) -> bool {
        (**self).is_tenant_scoped()
    }
}

/// One unit of work: the platform databases, the shared tenant database, one Pro
/// collection set, or one Enterprise database.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target {
    pub kind: TargetKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TargetKind {
    /// Collections of the platform, billing, analytics and security domains.
    Platform,
    /// `saas` collections shared by every tenant of a shared-layout tier.
    Shared,
    /// `saas` collections of one tenant, as `{tenant_id}_{collection}`.
    CollectionSet { tenant: String, tier: Tier },
    /// `saas` collections of one tenant, in its own database.
    Database { tenant: String, tier: Tier },
}

/// Where one logical collection lives inside a target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Placement {
    pub database: String,
    pub collection: String,
    /// Several tenants' documents share the collection: indexes get the `tenant_id` prefix.
    pub shared_by_tenants: bool,
    /// The only tenant whose documents belong here (Pro and Enterprise targets).
    pub tenant: Option<String>,
}

impl Target {
    pub fn platform() -> Target {
        Target {
            kind: TargetKind::Platform,
        }
    }

    pub fn shared() -> Target {
        Target {
            kind: TargetKind::Shared,
        }
    }

    /// The target of one tenant of a tier with the given layout.
    pub fn for_tenant(tenant: &str, tier: Tier, layout: Layout) -> Target {
        let tenant = tenant.to_owned();
        let kind = match layout {
            Layout::Shared => TargetKind::Shared,
            Layout::CollectionSet => TargetKind::CollectionSet { tenant, tier },
            Layout::Database => TargetKind::Database { tenant, tier },
        };
        Target { kind }
    }

    pub fn tenant(&self) -> Option<&str> {
        match &self.kind {
            TargetKind::CollectionSet { tenant, .. } | TargetKind::Database { tenant, .. } => {
                Some(tenant)
            }
            TargetKind::Platform | TargetKind::Shared => None,
        }
    }

    /// Whether the target holds this collection at all.
    pub fn holds(&self, spec: &(impl Logical + ?Sized)) -> bool {
        match self.kind {
            TargetKind::Platform => spec.domain() != Domain::Saas,
            _ => spec.domain() == Domain::Saas,
        }
    }

    /// Where the collection lives in this target. Call only when `holds` is true.
    pub fn place(&self, spec: &(impl Logical + ?Sized), dbs: &Databases) -> Placement {
        let name = spec.collection().to_owned();
        let scoped = spec.is_tenant_scoped();
        match &self.kind {
            TargetKind::Platform => Placement {
                database: dbs.for_domain(spec.domain()).to_owned(),
                collection: name,
                shared_by_tenants: scoped,
                tenant: None,
            },
            TargetKind::Shared => Placement {
                database: dbs.shared.clone(),
                collection: name,
                shared_by_tenants: scoped,
                tenant: None,
            },
            TargetKind::CollectionSet { tenant, .. } => Placement {
                database: dbs.shared.clone(),
                collection: dbs.set_collection(tenant, &name),
                shared_by_tenants: false,
                tenant: Some(tenant.clone()),
            },
            TargetKind::Database { tenant, .. } => Placement {
                database: dbs.tenant_database(tenant),
                collection: name,
                shared_by_tenants: false,
                tenant: Some(tenant.clone()),
            },
        }
    }
}

/// In JSON a target is its label: `platform`, `shared`, `pro:acme`, `enterprise:globex`.
impl Serialize for Target {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            TargetKind::Platform => f.write_str("platform"),
            TargetKind::Shared => f.write_str("shared"),
            TargetKind::CollectionSet { tenant, tier } | TargetKind::Database { tenant, tier } => {
                write!(f, "{tier}:{tenant}")
            }
        }
    }
}
