//! Where the history database lives by default.

use crate::HistoryError;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The default database file: `$XDG_DATA_HOME/velollm/history.db`, else `~/.local/share/velollm/history.db`;
/// on macOS `~/Library/Application Support/velollm/history.db`; on Windows `%APPDATA%\velollm\history.db`.
pub fn default_path() -> Result<PathBuf, HistoryError> {
    default_path_for(std::env::consts::OS, |k| std::env::var_os(k))
}

/// The database to use: `db` when it is given and not empty, else [`default_path`].
pub fn path_or_default(db: Option<&Path>) -> Result<PathBuf, HistoryError> {
    match db.filter(|p| !p.as_os_str().is_empty()) {
        Some(p) => Ok(p.to_path_buf()),
        None => default_path(),
    }
}

/// [`default_path`] for an operating system (`std::env::consts::OS`) and an environment.
pub fn default_path_for(os: &str, env: impl Fn(&str) -> Option<OsString>) -> Result<PathBuf, HistoryError> {
    // Empty variables count as unset, as the XDG specification says.
    let var = |k: &str| env(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    let data = match os {
        "windows" => var("APPDATA").ok_or(HistoryError::NoDataDir("APPDATA"))?,
        "macos" => var("HOME").ok_or(HistoryError::NoDataDir("HOME"))?.join("Library/Application Support"),
        // XDG_DATA_HOME must be absolute; a relative one is ignored.
        _ => match var("XDG_DATA_HOME").filter(|p| p.is_absolute()) {
            Some(p) => p,
            None => var("HOME").ok_or(HistoryError::NoDataDir("HOME"))?.join(".local/share"),
        },
    };
    Ok(data.join("velollm").join("history.db"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<OsString> {
        move |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| OsString::from(v))
    }

    #[test]
    fn a_given_path_wins_unless_empty() {
        assert_eq!(path_or_default(Some(Path::new("/x/h.db"))).unwrap(), PathBuf::from("/x/h.db"));
        if let Ok(default) = default_path() {
            assert_eq!(path_or_default(Some(Path::new(""))).unwrap(), default);
            assert_eq!(path_or_default(None).unwrap(), default);
        }
    }

    #[test]
    fn follows_xdg_then_home_then_the_platform() {
        let p = default_path_for("linux", env(&[("XDG_DATA_HOME", "/data"), ("HOME", "/home/u")])).unwrap();
        assert_eq!(p, PathBuf::from("/data/velollm/history.db"));
        let p = default_path_for("linux", env(&[("XDG_DATA_HOME", "rel"), ("HOME", "/home/u")])).unwrap();
        assert_eq!(p, PathBuf::from("/home/u/.local/share/velollm/history.db"));
        let p = default_path_for("linux", env(&[("XDG_DATA_HOME", ""), ("HOME", "/home/u")])).unwrap();
        assert_eq!(p, PathBuf::from("/home/u/.local/share/velollm/history.db"));
        let p = default_path_for("macos", env(&[("HOME", "/Users/u")])).unwrap();
        assert_eq!(p, PathBuf::from("/Users/u/Library/Application Support/velollm/history.db"));
        let e = default_path_for("linux", env(&[])).unwrap_err().to_string();
        assert!(e.contains("--db") && e.contains("VELOLLM_DB"), "{e}");
    }
}
