//! Versioned migrations over every target of every tier:
//! source (files, lint, checksums) -> ledger (per target, beside the data) -> lock (a
//! lease per target) -> runner (steps, checkpoints, the fleet).

pub mod down;
pub mod ledger;
mod lint;
pub mod lock;
pub mod pipeline;
pub mod repair;
pub mod runner;
pub mod source;
pub mod steps;

pub use source::{load, Migration, MigrationFile, Scope, Step};
