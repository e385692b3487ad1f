//! Tenancy: tiers and their layouts, tenant ids, and the physical targets that specs
//! compile to. Names are checked here, before they can reach a namespace.

mod databases;
mod domain;
mod names;
mod target;
mod tier;

pub use databases::Databases;
pub use domain::Domain;
pub use names::{
    check_collection_name, check_database_name, check_region, check_tenant_id, InvalidName,
    TENANT_ID_PATTERN,
};
pub use target::{Logical, Placement, Target, TargetKind};
pub use tier::{Layout, Tier};
