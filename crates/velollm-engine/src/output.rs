//! Writing results while they are measured.
//!
//! The result document is rewritten atomically (temporary file + rename) at the start, about once a second
//! while a step runs, and after every step, with `status: "partial"` until the run ends — so a process that
//! is killed at any moment leaves a file that parses and says it is partial. Per-request records go to a
//! JSONL file, one line per finished request, flushed as they come.
//!
//! A failed write (a full disk, a folder that went away) stops the run when [`ResultWriter::stop_on_error`]
//! is set: the error names the file and the OS error, and the last document that was written stays whole.

use crate::plan::StepPlan;
use crate::runner::Observer;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use velollm_core::aggregate::step::StepResult;
use velollm_core::document::result::legacy;
use velollm_core::document::result::{RunResult, RunStatus};
use velollm_core::measure::record::RequestRecord;

/// Keeps the result document and the records file up to date.
pub struct ResultWriter {
    doc: RunResult,
    path: Option<PathBuf>,
    /// The records file and its path (for error messages).
    records: Option<(BufWriter<File>, PathBuf)>,
    last_write: Instant,
    error: Option<io::Error>,
    stop: Option<watch::Sender<bool>>,
}

/// Write `bytes` to `path` atomically: a temporary file beside it, then a rename. A path that exists and is
/// not a regular file (a device such as `/dev/stdout`, a pipe) is written in place instead: it must not be
/// replaced.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(path, |w| w.write_all(bytes))
}

/// [`write_atomic`] with the content written by `write` (through a buffer), so that a large document is
/// streamed to the file instead of being built in memory first.
pub fn write_atomic_with(path: &Path, write: impl Fn(&mut dyn Write) -> io::Result<()>) -> io::Result<()> {
    if std::fs::metadata(path).is_ok_and(|m| !m.is_file()) {
        let mut f = BufWriter::new(std::fs::OpenOptions::new().write(true).open(path)?);
        return write(&mut f).and_then(|_| f.flush());
    }
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("result.json");
    let tmp = dir.join(format!(".{name}.{}.partial.json", std::process::id()));
    let written = File::create(&tmp).and_then(|f| {
        let mut w = BufWriter::new(f);
        write(&mut w)?;
        w.into_inner().map_err(|e| e.into_error())?.sync_data()
    });
    match written.and_then(|_| std::fs::rename(&tmp, path)) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Read a records file (JSONL, one [`RequestRecord`] per line). A last line that does not parse — cut short
/// by a crash or a full disk — is dropped and counted in the second value; a bad line elsewhere is an
/// error naming it.
pub fn read_records(path: &Path) -> io::Result<(Vec<RequestRecord>, usize)> {
    let text = std::fs::read(path).map_err(|e| io::Error::new(e.kind(), format!("'{}': {e}", path.display())))?;
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    let mut records = Vec::with_capacity(lines.len());
    let mut dropped = 0;
    for (n, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<RequestRecord>(line) {
            Ok(r) => records.push(r),
            Err(_) if n + 1 == lines.len() => dropped += 1,
            Err(e) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("'{}' line {}: not a request record: {e}", path.display(), n + 1),
                ));
            }
        }
    }
    Ok((records, dropped))
}

fn context(e: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("cannot write {what} '{}': {e}", path.display()))
}

impl ResultWriter {
    /// Start writing: the document (if `path` is given) is written at once with status `partial`; the
    /// records file (if given) is created empty.
    pub fn create(mut doc: RunResult, path: Option<PathBuf>, records: Option<PathBuf>) -> io::Result<ResultWriter> {
        doc.status = RunStatus::Partial;
        let records = match records {
            Some(p) => Some((BufWriter::new(File::create(&p).map_err(|e| context(e, "records file", &p))?), p)),
            None => None,
        };
        let mut w = ResultWriter { doc, path, records, last_write: Instant::now(), error: None, stop: None };
        w.flush_doc()?;
        Ok(w)
    }

    /// Continue an interrupted run: the records file is rewritten (atomically) with the records kept from
    /// it, new records are appended, and the document (which already holds the finished steps) is written.
    pub fn resume(
        mut doc: RunResult,
        path: Option<PathBuf>,
        records: PathBuf,
        kept: &[RequestRecord],
    ) -> io::Result<ResultWriter> {
        doc.status = RunStatus::Partial;
        let mut bytes = Vec::new();
        for r in kept {
            serde_json::to_writer(&mut bytes, r).map_err(io::Error::other)?;
            bytes.push(b'\n');
        }
        write_atomic(&records, &bytes).map_err(|e| context(e, "records file", &records))?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(&records)
            .map_err(|e| context(e, "records file", &records))?;
        let mut w = ResultWriter {
            doc,
            path,
            records: Some((BufWriter::new(file), records)),
            last_write: Instant::now(),
            error: None,
            stop: None,
        };
        w.flush_doc()?;
        Ok(w)
    }

    /// Stop the run through `stop` when a write fails, instead of measuring what cannot be kept.
    pub fn stop_on_error(mut self, stop: watch::Sender<bool>) -> ResultWriter {
        self.stop = Some(stop);
        self
    }

    /// The first write that failed, if any.
    pub fn error(&self) -> Option<&io::Error> {
        self.error.as_ref()
    }

    /// The document as it stands.
    pub fn doc(&self) -> &RunResult {
        &self.doc
    }

    fn flush_doc(&mut self) -> io::Result<()> {
        self.last_write = Instant::now();
        self.doc.trust =
            self.doc.selfcheck.as_ref().map(|c| velollm_core::judge::selfcheck::assess(c, &self.doc.steps));
        let Some(path) = &self.path else { return Ok(()) };
        let doc = &self.doc;
        write_atomic_with(path, |w| serde_json::to_writer_pretty(w, doc).map_err(io::Error::from))
            .map_err(|e| context(e, "result file", path))
    }

    fn keep(&mut self, r: io::Result<()>) {
        if let Err(e) = r {
            if self.error.is_none()
                && let Some(stop) = &self.stop
            {
                let _ = stop.send(true);
            }
            self.error.get_or_insert(e);
        }
    }

    fn set_step(&mut self, index: usize, result: &StepResult) {
        if let Some(step) = self.doc.steps.get_mut(index) {
            // Free the previous snapshot's per-request columns before copying the new ones, so that the two
            // never coexist and the allocator reuses their blocks (an assignment would clone first).
            step.samples = Default::default();
            *step = result.clone();
        } else {
            self.doc.steps.push(result.clone());
        }
    }

    /// Record what was observed of the server (launch, cold start, resources, events) and write it out.
    pub fn set_server(&mut self, server: velollm_core::server::launch::ServerReport) {
        self.doc.server = (!server.is_empty()).then_some(server);
        let res = self.flush_doc();
        self.keep(res);
    }

    /// End the run with `status`, write the final document, and return it. Fails if any write failed; the
    /// document then says `interrupted` with the failure as its reason (when it can still be written).
    pub fn finish(mut self, status: RunStatus, reason: Option<String>) -> io::Result<RunResult> {
        self.doc.status = status;
        self.doc.status_reason = reason;
        self.doc.meta.finished_at = Some(jiff::Timestamp::now().to_string());
        if let Some((r, path)) = self.records.as_mut() {
            let res = r.flush().map_err(|e| context(e, "records file", path));
            self.keep(res);
        }
        if let Some(e) = &self.error {
            self.doc.status = RunStatus::Interrupted;
            self.doc.status_reason = Some(format!("stopped: {e}"));
        }
        let res = self.flush_doc();
        self.keep(res);
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.doc),
        }
    }
}

impl Observer for ResultWriter {
    fn step_started(&mut self, _index: usize, _step: &StepPlan) {}

    fn record(&mut self, record: &RequestRecord) {
        if let Some((w, path)) = self.records.as_mut() {
            let res = serde_json::to_writer(&mut *w, record)
                .map_err(io::Error::other)
                .and_then(|_| w.write_all(b"\n"))
                .and_then(|_| w.flush())
                .map_err(|e| context(e, "records file", path));
            self.keep(res);
        }
    }

    fn server_metrics(&mut self, index: usize, metrics: &velollm_core::measure::prom::ServerMetrics) {
        if let Some(step) = self.doc.steps.get_mut(index) {
            step.server_metrics = Some(metrics.clone());
            let res = self.flush_doc();
            self.keep(res);
        }
    }

    fn step_progress(&mut self, index: usize, partial: &StepResult) {
        self.set_step(index, partial);
        if self.last_write.elapsed() >= Duration::from_secs(1) {
            let res = self.flush_doc();
            self.keep(res);
        }
    }

    fn finished(
        &mut self,
        analyses: &[velollm_core::analysis::AnalysisResult],
        verdicts: &[velollm_core::judge::threshold::Verdict],
    ) {
        self.doc.analyses = analyses.to_vec();
        self.doc.verdicts = verdicts.to_vec();
        let res = self.flush_doc();
        self.keep(res);
    }

    fn step_finished(&mut self, index: usize, result: &StepResult) {
        self.set_step(index, result);
        let entry = legacy(result, &self.doc.meta.target.model, &jiff::Timestamp::now().to_string());
        if index < self.doc.benchmarks.len() {
            self.doc.benchmarks[index] = entry;
        } else {
            self.doc.benchmarks.push(entry);
        }
        let res = self.flush_doc();
        self.keep(res);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh folder under the temporary directory.
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("velollm-output-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_records_line_cut_short_at_the_end_is_dropped_and_counted() {
        let dir = scratch("records");
        let path = dir.join("r.jsonl");
        let line = serde_json::to_string(&RequestRecord { id: 3, index: Some(3), ..Default::default() }).unwrap();
        std::fs::write(&path, format!("{line}\n{line}\n{}", &line[..line.len() / 2])).unwrap();
        let (records, dropped) = read_records(&path).unwrap();
        assert_eq!((records.len(), dropped, records[0].index), (2, 1, Some(3)));
        // A bad line before the last one is damage, not a crash: an error that names it.
        std::fs::write(&path, format!("{line}\nnot json\n{line}\n")).unwrap();
        let e = read_records(&path).unwrap_err().to_string();
        assert!(e.contains("line 2"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn what_is_not_a_regular_file_is_never_replaced() {
        let dir = scratch("atomic");
        let path = dir.join("run.json");
        write_atomic(&path, b"{\"a\": 1}").unwrap();
        write_atomic(&path, b"{\"a\": 2}").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"a\": 2}");
        // A folder where the file should be: the write fails, the folder stays, no temporary file is left.
        let blocked = dir.join("blocked");
        std::fs::create_dir_all(blocked.join("inner")).unwrap();
        assert!(write_atomic(&blocked, b"{}").is_err());
        assert!(blocked.join("inner").is_dir());
        let names: Vec<String> =
            std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
        assert!(names.iter().all(|n| !n.ends_with(".partial.json")), "{names:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
