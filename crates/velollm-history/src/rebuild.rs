//! Rebuilding the index from a folder of result documents, the canonical artifacts.

use crate::{History, HistoryError};
use serde::Serialize;
use std::path::{Path, PathBuf};
use velollm_core::document::result::RunResult;

/// A file that was not indexed, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Skipped {
    /// The file (or folder, when it could not be read).
    pub path: PathBuf,
    /// Why it was skipped.
    pub reason: String,
}

/// What a rebuild did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RebuildReport {
    /// `*.json` files found.
    pub found: usize,
    /// Results indexed (added or replaced).
    pub indexed: usize,
    /// Files and folders skipped: not JSON, not a velollm result, unreadable.
    pub skipped: Vec<Skipped>,
}

/// Every `*.json` file under `dir`, recursively, sorted; unreadable folders are reported in `skipped`.
/// Links to folders are not followed (no cycles); links to files are.
fn json_files(dir: &Path, skipped: &mut Vec<Skipped>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) => {
                skipped.push(Skipped { path: d, reason: format!("cannot read the folder: {e}") });
                continue;
            }
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(path),
                Ok(_) if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")) && path.is_file() => {
                    out.push(path)
                }
                _ => {}
            }
        }
    }
    out.sort();
    out
}

/// Why `path` is not a result document, or the document.
fn read_result(path: &Path) -> Result<RunResult, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read it: {e}"))?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}"))?;
    if value.pointer("/meta/tool").and_then(|t| t.as_str()) != Some("velollm") {
        return Err("not a velollm result".into());
    }
    serde_json::from_value(value).map_err(|e| format!("a velollm result this version cannot read: {e}"))
}

impl History {
    /// Index every velollm result under `dir` (recursively, `*.json`), adding or replacing runs by id; other
    /// files are skipped and counted, never an error. Runs already indexed from elsewhere are kept: to start
    /// over, delete the database file first.
    pub fn rebuild(&mut self, dir: &Path) -> Result<RebuildReport, HistoryError> {
        let meta = std::fs::metadata(dir).map_err(|source| HistoryError::Io { path: dir.to_path_buf(), source })?;
        if !meta.is_dir() {
            let source = std::io::Error::other("not a folder: pass the folder that holds the result files");
            return Err(HistoryError::Io { path: dir.to_path_buf(), source });
        }
        let mut report = RebuildReport::default();
        let files = json_files(dir, &mut report.skipped);
        report.found = files.len();
        let db_failure = self.batch(|h| {
            for path in files {
                let doc = match read_result(&path) {
                    Ok(doc) => doc,
                    Err(reason) => {
                        report.skipped.push(Skipped { path, reason });
                        continue;
                    }
                };
                match h.index(&doc, Some(&path)) {
                    Ok(()) => report.indexed += 1,
                    Err(e @ HistoryError::Db { .. }) => return Some(e),
                    Err(e) => report.skipped.push(Skipped { path, reason: e.to_string() }),
                }
            }
            None
        })?;
        match db_failure {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }
}
