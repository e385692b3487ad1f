//! The base every other module stands on: YAML with positions, findings and their
//! rendering-free form, bounded file reading, credential redaction, driver errors in one
//! line, the engine's typed errors, the bounded worker pool, and the Ctrl-C flag. Nothing here knows about specs, tenants or targets.

pub mod diagnostic;
pub mod driver;
pub mod error;
pub mod files;
pub mod interrupt;
pub mod pool;
pub mod redact;
pub mod yaml;
