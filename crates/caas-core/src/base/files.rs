//! Reading hand-written files (specs, migrations, seeds, config) within limits: only
//! regular files, at most [`MAX_FILE_BYTES`], every I/O error a finding naming its path;
//! and turning a positioned YAML document into a typed value.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use super::diagnostic::Finding;
use super::yaml::{self, pointer_segment, Document};

/// Where file-level findings point (the file as a whole).
const FILE_START: crate::base::yaml::Pos = crate::base::yaml::Pos { line: 1, col: 1 };

/// The largest spec, migration or seed file caas reads (they are hand-written; a larger
/// one is a mistake or an attack, and is refused before it is read).
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Every `.yaml`/`.yml` file under `dir`, sorted, so output never depends on the file system.
pub fn discover(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let (files, problems) = discover_checked(dir);
    match problems
        .into_iter()
        .find(|f| f.severity == crate::base::diagnostic::Severity::Error)
    {
        Some(f) => Err(std::io::Error::other(f.to_string())),
        None => Ok(files),
    }
}

/// [`discover`], with what it passed over: only regular files are read (a FIFO named
/// `x.yaml` would block a read forever; devices and sockets likewise), a symlink loop is
/// followed once and reported once, and every I/O error names its path.
pub fn discover_checked(dir: &Path) -> (Vec<PathBuf>, Vec<Finding>) {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        match std::fs::canonicalize(&d) {
            Ok(real) if !seen.insert(real.clone()) => {
                problems.push(skipped(
                    &d,
                    format!(
                        "a symlink loop: this folder is {} again; read once",
                        real.display()
                    ),
                    "remove the link",
                ));
                continue;
            }
            Ok(_) => {}
            Err(e) => {
                problems.push(unreadable(&d, "read the folder", &e));
                continue;
            }
        }
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) => {
                problems.push(unreadable(&d, "read the folder", &e));
                continue;
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    problems.push(unreadable(&d, "read the folder", &e));
                    continue;
                }
            };
            match classify(entry.path()) {
                Found::Folder(path) => stack.push(path),
                Found::Yaml(path) => out.push(path),
                Found::Problem(f) => problems.push(f),
                Found::Other => {}
            }
        }
    }
    out.sort();
    (out, problems)
}

/// What discovery does with one directory entry.
enum Found {
    Folder(PathBuf),
    Yaml(PathBuf),
    /// Not a YAML file: not ours to read or report.
    Other,
    Problem(Finding),
}

fn classify(path: PathBuf) -> Found {
    // Follows symlinks: a link to a spec is a spec.
    let meta = match std::fs::metadata(&path) {
        Ok(m) => m,
        Err(e) => {
            return Found::Problem(skipped(
                &path,
                format!("cannot be read ({e}); a dangling link?"),
                "remove it or fix its target",
            ))
        }
    };
    let yaml = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    );
    if meta.is_dir() {
        Found::Folder(path)
    } else if !yaml {
        Found::Other
    } else if !meta.is_file() {
        Found::Problem(skipped(
            &path,
            "not a regular file (a FIFO, socket or device); skipped".into(),
            "replace it with a regular file",
        ))
    } else if meta.len() > MAX_FILE_BYTES {
        Found::Problem(
            Finding::error("file-too-large", &path, FILE_START, "").says(
                format!(
                    "the file is {} bytes, over the {} byte limit; not read",
                    meta.len(),
                    MAX_FILE_BYTES
                ),
                "split it, or remove what does not belong in a spec",
            ),
        )
    } else {
        Found::Yaml(path)
    }
}

fn skipped(path: &Path, what: String, fix: &str) -> Finding {
    Finding::warning("skipped-file", path, FILE_START, "").says(what, fix.to_owned())
}

fn unreadable(path: &Path, doing: &str, e: &std::io::Error) -> Finding {
    Finding::error("unreadable", path, FILE_START, "").says(
        format!("cannot {doing}: {e}"),
        "check the path and its permissions",
    )
}

/// Read a hand-written file: regular files only, at most [`MAX_FILE_BYTES`].
#[allow(clippy::result_large_err)] // a Finding is the error every loader returns
pub fn read_text(file: &Path) -> Result<String, Finding> {
    let meta = std::fs::metadata(file).map_err(|e| unreadable(file, "read the file", &e))?;
    if !meta.is_file() {
        return Err(Finding::error("unreadable", file, FILE_START, "").says(
            "not a regular file (a FIFO, socket or device); not read".to_string(),
            "replace it with a regular file",
        ));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(Finding::error("file-too-large", file, FILE_START, "").says(
            format!(
                "the file is {} bytes, over the {} byte limit; not read",
                meta.len(),
                MAX_FILE_BYTES
            ),
            "split it, or remove what does not belong there",
        ));
    }
    std::fs::read_to_string(file).map_err(|e| unreadable(file, "read the file", &e))
}

/// Read and parse a hand-written YAML file, keeping positions.
pub fn read_yaml(file: &Path) -> Result<Document, Vec<Finding>> {
    let text = read_text(file).map_err(|f| vec![f])?;
    yaml::parse(&text).map_err(|e| {
        let fix = e.fix();
        vec![Finding::error("yaml-syntax", file, e.pos, "").says(e.message, fix)]
    })
}

/// Why a document did not fit its type: serde's message and the JSON pointer of the
/// offending key (variant names of externally tagged enums included, as they are keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub pointer: String,
    pub message: String,
}

/// A positioned document as a typed value. Callers turn a [`DecodeError`] into a finding
/// with their own rule and fix; [`Document::value_pos`] gives its place.
pub fn decode<T: DeserializeOwned>(doc: &Document) -> Result<T, DecodeError> {
    serde_path_to_error::deserialize(&doc.value).map_err(|e| {
        use serde_path_to_error::Segment;
        let mut pointer = String::new();
        for seg in e.path().iter() {
            match seg {
                Segment::Seq { index } => pointer.push_str(&format!("/{index}")),
                Segment::Map { key } => pointer.push_str(&format!("/{}", pointer_segment(key))),
                Segment::Enum { variant } => pointer.push_str(&format!("/{variant}")),
                Segment::Unknown => {}
            }
        }
        DecodeError {
            pointer,
            message: e.into_inner().to_string(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    enum Step {
        #[serde(rename = "set")]
        Set { field: String },
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct File {
        steps: Vec<Step>,
    }

    #[test]
    fn decode_points_at_the_key_inside_a_variant() {
        let doc = yaml::parse("steps:\n  - set: {field: 3}\n  - set: {feld: a}\n").unwrap();
        let err = decode::<File>(&doc).unwrap_err();
        assert_eq!(err.pointer, "/steps/0/set/field");
        assert!(err.message.contains("invalid type"), "{}", err.message);
        assert_eq!(doc.value_pos(&err.pointer).line, 2);
    }

    #[test]
    fn read_text_refuses_what_is_not_a_small_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.yaml");
        std::fs::write(&big, vec![b'#'; MAX_FILE_BYTES as usize + 1]).unwrap();
        assert_eq!(read_text(&big).unwrap_err().code, "file-too-large");
        assert_eq!(read_text(dir.path()).unwrap_err().code, "unreadable");
    }
}
