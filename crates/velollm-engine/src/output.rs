//! Writing results while they are measured.
//!
//! The result document is rewritten atomically (temporary file + rename) at the start, about once a second
//! while a step runs, and after every step, with `status: "partial"` until the run ends — so a process that
//! is killed at any moment leaves a file that parses and says it is partial. Per-request records go to a
//! JSONL file, one line per finished request, flushed as they come.

use crate::runner::{Observer, StepPlan};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use velollm_core::aggregate::legacy;
use velollm_core::record::RequestRecord;
use velollm_core::result::{RunResult, RunStatus, StepResult};

/// Keeps the result document and the records file up to date.
pub struct ResultWriter {
    doc: RunResult,
    path: Option<PathBuf>,
    records: Option<BufWriter<File>>,
    last_write: Instant,
    error: Option<io::Error>,
}

/// Write `bytes` to `path` atomically: a temporary file beside it, then a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("result.json");
    let tmp = dir.join(format!(".{name}.{}.partial.json", std::process::id()));
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_data()?;
    }
    std::fs::rename(&tmp, path)
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
            Some(p) => Some(BufWriter::new(File::create(&p).map_err(|e| context(e, "records file", &p))?)),
            None => None,
        };
        let mut w = ResultWriter { doc, path, records, last_write: Instant::now(), error: None };
        w.flush_doc()?;
        Ok(w)
    }

    /// The document as it stands.
    pub fn doc(&self) -> &RunResult {
        &self.doc
    }

    fn flush_doc(&mut self) -> io::Result<()> {
        self.last_write = Instant::now();
        let Some(path) = &self.path else { return Ok(()) };
        let bytes = serde_json::to_vec_pretty(&self.doc).map_err(io::Error::other)?;
        write_atomic(path, &bytes).map_err(|e| context(e, "result file", path))
    }

    fn keep(&mut self, r: io::Result<()>) {
        if let Err(e) = r {
            self.error.get_or_insert(e);
        }
    }

    fn set_step(&mut self, index: usize, result: &StepResult) {
        if index < self.doc.steps.len() {
            self.doc.steps[index] = result.clone();
        } else {
            self.doc.steps.push(result.clone());
        }
    }

    /// Record what was observed of the server (launch, cold start, resources, events) and write it out.
    pub fn set_server(&mut self, server: velollm_core::server::ServerReport) {
        self.doc.server = (!server.is_empty()).then_some(server);
        let res = self.flush_doc();
        self.keep(res);
    }

    /// End the run with `status`, write the final document, and return it. Fails if any write failed.
    pub fn finish(mut self, status: RunStatus, reason: Option<String>) -> io::Result<RunResult> {
        self.doc.status = status;
        self.doc.status_reason = reason;
        self.doc.meta.finished_at = Some(jiff::Timestamp::now().to_string());
        if let Some(r) = self.records.as_mut() {
            let res = r.flush();
            self.keep(res);
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
        if let Some(w) = self.records.as_mut() {
            let res = serde_json::to_writer(&mut *w, record)
                .map_err(io::Error::other)
                .and_then(|_| w.write_all(b"\n"))
                .and_then(|_| w.flush());
            self.keep(res);
        }
    }

    fn server_metrics(&mut self, index: usize, metrics: &velollm_core::prom::ServerMetrics) {
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
        verdicts: &[velollm_core::threshold::Verdict],
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
