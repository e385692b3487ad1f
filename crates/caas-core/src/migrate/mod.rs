//! Versioned migrations over every target of every tier:
//! source (files, checksums) -> check (lint against the specs) -> lock (a fenced lease per
//! target) -> ledger (per target, beside the data, every write fenced) -> steps (one
//! function per step kind) -> runner (the fleet, checkpoints) -> down, repair, status.

pub mod baseline;
pub mod check;
pub mod down;
pub mod fence;
pub mod ledger;
pub mod lock;
pub mod pipeline;
pub mod project;
pub mod repair;
pub mod runner;
pub mod source;
pub mod status;
pub mod steps;

pub use check::load;
pub use source::{Migration, MigrationFile, Scope, Step};
