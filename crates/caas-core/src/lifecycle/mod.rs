//! Tenant lifecycle: moving a tenant between tiers and regions online, suspending it,
//! exporting, removing and importing it. The flow: route (pure: which collections, which
//! ledger) -> wfence (the server-enforced write fence) -> state (the move's record) -> sync
//! (copy, change stream, digests) -> mover (refusals), catchup (copy, changes), cutover
//! (the phases), grace (the kept source) and residency (zones on a cluster, region
//! changes); suspend; export -> offboard (remove), and provision (the new home) ->
//! restore (import).

mod catchup;
mod cutover;
pub mod export;
pub mod follow;
mod grace;
pub mod mover;
pub mod offboard;
mod provision;
mod residency;
pub mod restore;
pub mod route;
pub mod state;
pub mod suspend;
pub mod sync;
pub mod wfence;

pub use mover::{Command, MoveOptions, Mover, Report};
pub use state::Phase;
