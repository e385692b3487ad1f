//! Collection specs: the format (`model`), the JSON Schema derived from it (`meta`),
//! loading files into typed specs with positions (`load`), and the offline linter (`lint`).

mod effective;
mod index;
mod lint;
mod load;
mod meta;
mod model;
mod shard;

pub use effective::Origin;
pub use index::*;
pub use lint::lint;
pub use load::{load_file, load_project, LoadReport, LoadedSpec};
pub use meta::{check as check_meta, meta_schema, meta_schema_json, META_SCHEMA_FILE};
pub use model::*;
pub use shard::Shard;
