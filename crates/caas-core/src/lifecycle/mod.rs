//! Tenant lifecycle: moving a tenant between tiers online, suspending it, exporting,
//! removing and importing it. The flow: route (pure: which collections, which ledger) ->
//! wfence (the server-enforced write fence) -> state (the move's record) -> sync (copy,
//! change stream, digests) -> mover and cutover (the phases).

pub mod route;
pub mod wfence;
pub mod state;
pub mod sync;
pub mod mover;
mod cutover;
pub mod suspend;

pub use mover::{Command, MoveOptions, Mover, Report};
pub use state::Phase;
