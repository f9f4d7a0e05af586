//! Reading result documents: every failure names the file and the fix (`report`, `compare`, `bench
//! --compare-to`, `tune` and `optimize --verify` read theirs here).

use crate::exit::InputError;
use anyhow::anyhow;
use std::path::Path;
use velollm_core::document::result::RunResult;

/// How a result file is named in reports and comparisons: its file name.
pub fn file_name(p: &Path) -> String {
    p.file_name().map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// Read a result document, with errors that name the file and the fix (`compare` and `bench --compare-to`
/// read theirs here too).
pub fn read_result(path: &Path) -> Result<RunResult, InputError> {
    let p = path.display();
    let fix = "pass a result file written by `velollm bench -o FILE`";
    let text = std::fs::read_to_string(path).map_err(|e| {
        InputError(match e.kind() {
            std::io::ErrorKind::NotFound => anyhow!("cannot read {p}: {p} does not exist: {fix}"),
            _ => anyhow!("cannot read {p}: {e} ({fix})"),
        })
    })?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| InputError(anyhow!("{p} is not JSON ({e}): {fix}")))?;
    let tool = value.pointer("/meta/tool").and_then(|v| v.as_str());
    let version = value.get("schema_version").and_then(|v| v.as_str()).map(str::to_string);
    let Some(version) = version.filter(|_| tool == Some("velollm")) else {
        return Err(InputError(anyhow!("{p} is not a velollm result document (no velollm schema_version): {fix}")));
    };
    if version.split('.').next() != Some("1") {
        return Err(InputError(anyhow!(
            "{p} has result schema {version}, which this velollm ({}) cannot read: upgrade velollm",
            env!("CARGO_PKG_VERSION")
        )));
    }
    serde_json::from_value(value)
        .map_err(|e| InputError(anyhow!("{p} does not match the velollm result format (schema {version}): {e}; {fix}")))
}
