//! Roles follow the tenant: a move, an arrival or a departure changes which namespaces
//! each service's role names.

use anyhow::Result;

use crate::config::Config;
use crate::connect::Connection;
use crate::spec::CollectionSpec;

/// Where roles are managed (some `caas_svc_*` role exists), bring the existing ones in line
/// with the registry as it is now: a tenant that moved, arrived or left changes which
/// namespaces each service's role names. Creates and drops nothing (`caas roles apply`
/// does); returns how many roles were updated.
pub async fn follow_roles(
    conn: &Connection,
    config: &Config,
    specs: &[&CollectionSpec],
) -> Result<usize> {
    let fleet = crate::roles::plan_fleet(&conn.client, config, specs).await?;
    if fleet.live.is_empty() {
        return Ok(0);
    }
    let updates: Vec<crate::roles::RoleChange> = fleet
        .changes
        .into_iter()
        .filter(|c| matches!(c, crate::roles::RoleChange::Update { .. }))
        .collect();
    crate::roles::apply(&conn.client, &fleet.desired, &updates, false).await
}
