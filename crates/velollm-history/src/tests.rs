//! The database end to end on temporary files.

use crate::testdata::run;
use crate::*;
use tempfile::TempDir;
use velollm_core::document::result::RunStatus;

fn db() -> (TempDir, History) {
    let dir = tempfile::tempdir().unwrap();
    let h = History::open(&dir.path().join("sub/history.db")).unwrap();
    (dir, h)
}

#[test]
fn creates_the_schema_and_reopens() {
    let (dir, mut h) = db();
    assert!(h.is_empty().unwrap());
    h.index(&run("a", "2026-01-01T00:00:00Z", &[("s", 100.0)]), None).unwrap();
    drop(h);
    let h = History::open(&dir.path().join("sub/history.db")).unwrap();
    assert_eq!(h.len().unwrap(), 1);
    let v: i64 = h.connection().query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(v, SCHEMA_VERSION);
}

#[test]
fn reindexing_replaces_and_keeps_cost_and_path() {
    let (dir, mut h) = db();
    let json = dir.path().join("a.json");
    std::fs::write(&json, "{}").unwrap();
    let mut r = run("a", "2026-01-01T00:00:00Z", &[("s", 100.0), ("t", 200.0)]);
    h.index(&r, Some(&json)).unwrap();
    assert!(h.set_cost("a", Some(1.5)).unwrap());
    assert!(!h.set_cost("nope", Some(1.0)).unwrap());
    r.status = RunStatus::Interrupted;
    r.steps.truncate(1);
    h.index(&r, None).unwrap();
    assert_eq!(h.len().unwrap(), 1);
    let row = h.get("a").unwrap().unwrap();
    assert_eq!(row.status, RunStatus::Interrupted);
    assert_eq!(row.steps, 1);
    assert_eq!(row.cost_usd, Some(1.5));
    assert_eq!(row.json_path.as_deref(), Some(json.canonicalize().unwrap().to_str().unwrap()));
    let steps: i64 =
        h.connection().query_row("SELECT count(DISTINCT step) FROM step_metrics", [], |r| r.get(0)).unwrap();
    assert_eq!(steps, 1, "the old step's metrics are gone");
    assert!(h.remove("a").unwrap());
    let rows: i64 = h.connection().query_row("SELECT count(*) FROM step_metrics", [], |r| r.get(0)).unwrap();
    assert_eq!(rows, 0, "metrics go with their run");
}

#[test]
fn lists_newest_first_and_filters() {
    let (_dir, mut h) = db();
    let mut a = run("a", "2026-01-01T00:00:00Z", &[("s", 100.0)]);
    a.meta.target.url = "http://gpu-box:8000".into();
    a.meta.target.model = "llama".into();
    let mut b = run("b", "2026-02-01T00:00:00.5+01:00", &[("s", 90.0)]);
    b.status = RunStatus::Partial;
    let c = run("c", "2026-03-01T00:00:00Z", &[("s", 80.0)]);
    for r in [&b, &c, &a] {
        h.index(r, None).unwrap();
    }
    let ids = |f: &Filter| h.list(f).unwrap().into_iter().map(|r| r.run_id).collect::<Vec<_>>();
    assert_eq!(ids(&Filter::default()), ["c", "b", "a"]);
    assert_eq!(ids(&Filter { target: Some("GPU-BOX".into()), ..Default::default() }), ["a"]);
    assert_eq!(ids(&Filter { model: Some("m".into()), ..Default::default() }), ["c", "b"]);
    assert_eq!(ids(&Filter { status: Some(RunStatus::Partial), ..Default::default() }), ["b"]);
    assert_eq!(ids(&Filter { scenario: Some("nope".into()), ..Default::default() }), Vec::<String>::new());
    let since = parse_since("2026-02-01", jiff::Timestamp::now()).unwrap();
    assert_eq!(ids(&Filter { since: Some(since), ..Default::default() }), ["c"], "b started 2026-01-31T23:00Z");
    assert_eq!(ids(&Filter { limit: Some(2), ..Default::default() }), ["c", "b"]);
    let row = h.get("a").unwrap().unwrap();
    assert_eq!(row.success_rate(), Some(1.0));
    assert_eq!((row.requests, row.succeeded), (4, 4));
    assert!(row.ttft_p95_ms.unwrap() > 100.0);
}

#[test]
fn trends_any_metric_per_step_oldest_first() {
    let (_dir, mut h) = db();
    h.index(&run("b", "2026-02-01T00:00:00Z", &[("short", 90.0), ("long", 300.0)]), None).unwrap();
    h.index(&run("a", "2026-01-01T00:00:00Z", &[("short", 100.0), ("long", 310.0)]), None).unwrap();
    let ttft = MetricSpec::parse("ttft.p95").unwrap();
    let t = h.trend(&ttft, None, &Filter::default()).unwrap();
    let got: Vec<(&str, &str)> = t.points.iter().map(|p| (p.run_id.as_str(), p.step.as_str())).collect();
    assert_eq!(got, [("a", "short"), ("a", "long"), ("b", "short"), ("b", "long")]);
    let short = h.trend(&ttft, Some("short"), &Filter::default()).unwrap();
    assert_eq!(short.points.len(), 2);
    let series = short.series();
    assert_eq!(series.len(), 1);
    assert!(series[0].change_pct().unwrap() < 0.0);
    let roi = series[0].roi(&ttft, None).unwrap();
    assert!(roi.latency_saved_ms > 9.0);
    assert!(matches!(roi.outcome, RoiOutcome::NoCostData { .. }));
    // Token totals are stored, so prices give an ROI today.
    let priced = series[0].roi(&ttft, Some(&Prices::new(1.0, 2.0).unwrap())).unwrap();
    assert_eq!(priced.outcome, RoiOutcome::SavesTimeAtSameCost, "same tokens, same cost, faster");
    let latest = h.trend(&ttft, None, &Filter { limit: Some(1), ..Default::default() }).unwrap();
    assert!(latest.points.iter().all(|p| p.run_id == "b") && latest.points.len() == 2);
    let sr = h.trend(&MetricSpec::parse("success_rate").unwrap(), Some("long"), &Filter::default()).unwrap();
    assert_eq!(sr.points.iter().map(|p| p.value).collect::<Vec<_>>(), [1.0, 1.0]);
}

#[test]
fn rebuilds_from_a_folder_and_skips_other_files() {
    let (dir, mut h) = db();
    let results = dir.path().join("results");
    std::fs::create_dir_all(results.join("nested/deeper")).unwrap();
    let a = run("a", "2026-01-01T00:00:00Z", &[("s", 100.0)]);
    let b = run("b", "2026-01-02T00:00:00Z", &[("s", 90.0)]);
    std::fs::write(results.join("a.json"), serde_json::to_string(&a).unwrap()).unwrap();
    std::fs::write(results.join("nested/deeper/b.JSON"), serde_json::to_string(&b).unwrap()).unwrap();
    std::fs::write(results.join("nested/package.json"), r#"{"name": "x"}"#).unwrap();
    std::fs::write(results.join("broken.json"), "{").unwrap();
    std::fs::write(results.join("notes.txt"), "hi").unwrap();
    let report = h.rebuild(&results).unwrap();
    assert_eq!((report.found, report.indexed, report.skipped.len()), (4, 2, 2), "{report:?}");
    assert!(report.skipped.iter().any(|s| s.reason == "not a velollm result"));
    assert!(report.skipped.iter().any(|s| s.reason.starts_with("not JSON")));
    assert_eq!(h.len().unwrap(), 2);
    assert!(h.get("b").unwrap().unwrap().json_path.unwrap().ends_with("b.JSON"));
    // Idempotent.
    assert_eq!(h.rebuild(&results).unwrap().indexed, 2);
    assert_eq!(h.len().unwrap(), 2);
    let e = h.rebuild(&dir.path().join("missing")).unwrap_err();
    assert!(e.is_input() && e.to_string().contains("missing"), "{e}");
}

#[test]
fn refuses_corrupt_foreign_and_newer_databases() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, vec![b'x'; 4096]).unwrap();
    let e = History::open(&junk).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, HistoryError::Open { .. }) && msg.contains("junk.db") && msg.contains("--db"), "{msg}");
    assert!(msg.contains("--rebuild"), "{msg}");

    let foreign = dir.path().join("foreign.db");
    rusqlite::Connection::open(&foreign).unwrap().execute_batch("CREATE TABLE t (x)").unwrap();
    assert!(matches!(History::open(&foreign), Err(HistoryError::Foreign { .. })));

    let newer = dir.path().join("newer.db");
    drop(History::open(&newer).unwrap());
    rusqlite::Connection::open(&newer).unwrap().execute_batch("PRAGMA user_version = 99").unwrap();
    let e = History::open(&newer).unwrap_err();
    assert!(matches!(e, HistoryError::NewerSchema { found: 99, .. }), "{e}");
    assert!(e.to_string().contains("upgrade velollm"), "{e}");
}
