//! Tenancy: tiers and their layouts, tenant ids, and the physical targets that specs
//! compile to. Names are checked here, before they can reach a namespace.

mod names;
pub mod registry;
mod target;
mod tier;

pub use names::{check_collection_name, check_database_name, check_tenant_id, TENANT_ID_PATTERN};
pub use target::{Placement, Target, TargetKind};
pub use tier::{Layout, Tier};
