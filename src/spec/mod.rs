//! Collection specs: the format (`model`), the JSON Schema derived from it (`meta`),
//! loading files into typed specs with positions (`load`), and the offline linter (`lint`).

mod effective;
mod lint;
mod load;
mod meta;
mod model;

pub use effective::Origin;
pub use lint::lint;
pub use load::{
    discover, discover_checked, load_file, load_project, read_text, LoadReport, LoadedSpec,
    MAX_FILE_BYTES,
};
pub use meta::{closest as closest_name, meta_schema, meta_schema_json, META_SCHEMA_FILE};
pub use model::*;
