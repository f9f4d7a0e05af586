//! Sampling the resource use of a server velollm launched, while the benchmark runs (DESIGN §8).
//!
//! [`ResourceSampler::start`] spawns one Tokio task that, every interval, reads the server's process tree —
//! the root process and all its descendants — and records a [`ResourceSample`]: resident memory summed over
//! the tree, CPU use over the interval just ended, and the latest NVIDIA GPU readings. The figures of the
//! result document are computed from these samples by [`velollm_core::server::resources::summarise`].
//!
//! * **Process tree.** On Linux the tree is walked through `/proc/<pid>/task/<tid>/children` (a few small
//!   reads per process, independent of how many processes the machine runs); elsewhere, or on a kernel
//!   without that file, through one `sysinfo` scan of every process's parent. Memory and CPU time are then
//!   refreshed with `sysinfo` for the tree's processes only. A process that exits between two samples
//!   simply contributes nothing; when the root itself is gone, sampling stops (with a note).
//! * **RSS** is summed over the tree's processes, so pages shared between them (a forked worker's
//!   copy-on-write pages, one model file mapped by two processes) count once per process.
//! * **CPU** is the change of the tree's accumulated CPU time (user + system) between two samples divided by
//!   the wall time between them: 100 = one core busy. It does not rely on `sysinfo`'s `cpu_usage()`. The
//!   sampler takes one unrecorded baseline reading when it starts, so every recorded sample has a CPU
//!   figure; a process born during an interval counts with all its CPU time. Linux accounts CPU time in
//!   10 ms ticks, so at a 100 ms interval one sample's figure is only good to ±10 %.
//! * **GPU.** When `nvidia-smi` is on `PATH`, one long-lived
//!   `nvidia-smi --query-gpu=index,utilization.gpu,memory.used,memory.total --format=csv,noheader,nounits
//!   -lms <interval>` child is read as it prints (it is killed with the sampler); each sample carries the
//!   latest reading of every GPU, if that reading is recent. No `nvidia-smi`, or one that fails, means no GPU
//!   readings and one note — not an error.
//!
//! Reading `/proc` is blocking I/O, so each sample runs on Tokio's blocking pool, never on the workers that
//! time requests.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System, ThreadKind};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use velollm_core::server::resources::{GpuSample, ResourceSample};

/// Bytes in the MiB that `nvidia-smi` reports memory in.
const MIB: f64 = 1024.0 * 1024.0;

/// Samples a launched server's process tree in the background until stopped (or dropped).
#[derive(Debug)]
pub struct ResourceSampler {
    shared: Arc<Mutex<Shared>>,
    root: Arc<AtomicU32>,
    task: tokio::task::JoinHandle<()>,
    interval: Duration,
}

/// What the sampling task has recorded so far.
#[derive(Debug, Default)]
struct Shared {
    samples: Vec<ResourceSample>,
    notes: Vec<String>,
}

impl Shared {
    fn note(&mut self, note: String) {
        if !self.notes.contains(&note) {
            self.notes.push(note);
        }
    }
}

/// The GPU query program and its arguments (before `-lms <interval>`).
type GpuCommand = (String, Vec<String>);

impl ResourceSampler {
    /// Start sampling the process tree rooted at `root_pid` every `interval` (at least 10 ms; 1 s or less
    /// is advised). Sample times are seconds since `clock_origin`, the run's start. The first sample is
    /// taken one interval after the call.
    ///
    /// # Panics
    ///
    /// When called outside a Tokio runtime.
    pub fn start(root_pid: u32, interval: Duration, clock_origin: Instant) -> ResourceSampler {
        let args = ["--query-gpu=index,utilization.gpu,memory.used,memory.total", "--format=csv,noheader,nounits"];
        let gpu = ("nvidia-smi".to_string(), args.iter().map(|a| a.to_string()).collect());
        Self::start_with(root_pid, interval, clock_origin, Some(gpu))
    }

    /// [`ResourceSampler::start`] with the GPU query command chosen (`None`: no GPU readings).
    fn start_with(root_pid: u32, interval: Duration, origin: Instant, gpu: Option<GpuCommand>) -> ResourceSampler {
        let interval = interval.max(Duration::from_millis(10));
        let shared = Arc::new(Mutex::new(Shared::default()));
        let root = Arc::new(AtomicU32::new(root_pid));
        let task = tokio::spawn(sample_loop(Arc::clone(&root), interval, origin, gpu, Arc::clone(&shared)));
        ResourceSampler { shared, root, task, interval }
    }

    /// Where to set a new root process id, for a server that was restarted: sampling follows it from the
    /// next tick on (a sampler whose root process is gone idles until then).
    pub fn root(&self) -> Arc<AtomicU32> {
        Arc::clone(&self.root)
    }

    /// The sampling interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The samples recorded so far (for partial results); sampling goes on.
    pub fn samples(&self) -> Vec<ResourceSample> {
        self.lock().samples.clone()
    }

    /// What the sampler could not do (no `nvidia-smi`, the server exited, …), for the report's notes.
    pub fn notes(&self) -> Vec<String> {
        self.lock().notes.clone()
    }

    /// Stop sampling (and `nvidia-smi`) and return every sample recorded.
    pub fn stop(self) -> Vec<ResourceSample> {
        self.task.abort();
        std::mem::take(&mut self.lock().samples)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for ResourceSampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The sampling task: a baseline reading, then one sample per tick, GPU lines read as they come.
async fn sample_loop(
    root_pid: Arc<AtomicU32>,
    interval: Duration,
    origin: Instant,
    gpu: Option<GpuCommand>,
    shared: Arc<Mutex<Shared>>,
) {
    let note = |text: String| shared.lock().unwrap_or_else(PoisonError::into_inner).note(text);
    let mut gpu = match gpu.map(|cmd| GpuMonitor::spawn(&cmd, interval)) {
        Some(Ok(monitor)) => Some(monitor),
        Some(Err(why)) => {
            note(why);
            None
        }
        None => None,
    };
    let mut root = root_pid.load(Ordering::Relaxed);
    let mut tree = ProcessTreeSampler::new(root);
    let mut gone = false;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate: it takes the baseline reading, which has no CPU figure and is not recorded.
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                let now_root = root_pid.load(Ordering::Relaxed);
                if now_root != root {
                    // A restarted server: a new tree, whose first reading is a baseline again.
                    (root, gone) = (now_root, false);
                    tree = ProcessTreeSampler::new(root);
                }
                if gone {
                    continue;
                }
                let joined = tokio::task::spawn_blocking(move || {
                    let reading = tree.sample();
                    (tree, reading)
                })
                .await;
                let reading;
                (tree, reading) = match joined {
                    Ok(pair) => pair,
                    Err(e) => return note(format!("resource sampling stopped: the sampling thread failed: {e}")),
                };
                let Some(reading) = reading else {
                    let at = origin.elapsed().as_secs_f64();
                    note(format!("the server process (pid {root}) was gone at {at:.1} s: no samples until it is replaced"));
                    gone = true;
                    continue;
                };
                let Some(cpu_percent) = reading.cpu_percent else { continue };
                let fresh_for = interval * 2 + Duration::from_secs(1);
                let sample = ResourceSample {
                    t_s: reading.at.saturating_duration_since(origin).as_secs_f64(),
                    rss_bytes: reading.usage.rss_bytes,
                    cpu_percent,
                    processes: reading.usage.processes,
                    gpu: gpu.as_ref().map(|g| g.latest(reading.at, fresh_for)).unwrap_or_default(),
                };
                shared.lock().unwrap_or_else(PoisonError::into_inner).samples.push(sample);
            }
            line = next_line(&mut gpu) => match line {
                Ok(Some(line)) => {
                    if let Some(monitor) = gpu.as_mut()
                        && let Err(why) = monitor.accept(&line)
                    {
                        note(why);
                    }
                }
                end => {
                    if let Some(monitor) = gpu.take() {
                        note(monitor.ended(end.err()).await);
                    }
                }
            },
        }
    }
}

/// The next line `nvidia-smi` printed; pending forever without a GPU monitor.
async fn next_line(gpu: &mut Option<GpuMonitor>) -> std::io::Result<Option<String>> {
    match gpu {
        Some(monitor) => monitor.lines.next_line().await,
        None => std::future::pending().await,
    }
}

/// The long-lived `nvidia-smi` child and the latest reading of each GPU.
struct GpuMonitor {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    latest: BTreeMap<u32, (Instant, GpuSample)>,
    readings: u64,
    /// Whether an unexpected line was already noted (one note is enough).
    complained: bool,
}

impl GpuMonitor {
    /// Start `program args… -lms <interval>`; the error is the note to record.
    fn spawn((program, args): &GpuCommand, interval: Duration) -> Result<GpuMonitor, String> {
        let mut child = Command::new(program)
            .args(args)
            .arg("-lms")
            .arg(interval.as_millis().max(1).to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => {
                    format!("no GPU readings: `{program}` is not on PATH (no NVIDIA GPU, or its driver tools are not installed)")
                }
                _ => format!("no GPU readings: cannot run `{program}`: {e}"),
            })?;
        let stdout = child.stdout.take().ok_or_else(|| format!("no GPU readings: `{program}` gave no output pipe"))?;
        Ok(GpuMonitor {
            child,
            lines: BufReader::new(stdout).lines(),
            latest: BTreeMap::new(),
            readings: 0,
            complained: false,
        })
    }

    /// Record one output line; the error is a note for the first line that is not a reading.
    fn accept(&mut self, line: &str) -> Result<(), String> {
        if line.trim().is_empty() {
            return Ok(());
        }
        match parse_gpu_line(line) {
            Some(sample) => {
                self.readings += 1;
                self.latest.insert(sample.index, (Instant::now(), sample));
                Ok(())
            }
            None if std::mem::replace(&mut self.complained, true) => Ok(()),
            None => Err(format!("nvidia-smi printed an unexpected line: {}", line.trim())),
        }
    }

    /// The latest reading of each GPU, when not older than `fresh_for` at `at`.
    fn latest(&self, at: Instant, fresh_for: Duration) -> Vec<GpuSample> {
        self.latest
            .values()
            .filter(|(when, _)| at.saturating_duration_since(*when) <= fresh_for)
            .map(|(_, s)| s.clone())
            .collect()
    }

    /// The note for an `nvidia-smi` that stopped printing.
    async fn ended(mut self, error: Option<std::io::Error>) -> String {
        let status = match tokio::time::timeout(Duration::from_secs(1), self.child.wait()).await {
            Ok(Ok(status)) => status.to_string(),
            _ => "still running".to_string(),
        };
        let why = error.map(|e| format!(" (read error: {e})")).unwrap_or_default();
        if self.readings == 0 {
            format!("no GPU readings: nvidia-smi exited without a reading ({status}){why}")
        } else {
            format!("GPU readings stopped after {} reading(s): nvidia-smi ended ({status}){why}", self.readings)
        }
    }
}

/// Parse one line of `nvidia-smi --query-gpu=index,utilization.gpu,memory.used,memory.total
/// --format=csv,noheader,nounits` (memory in MiB), e.g. `0, 35, 1234, 81559`. A value the driver does not
/// report (`[N/A]`, `[Not Supported]`) is `None`; a line without a GPU index (an error message) is `None`.
pub fn parse_gpu_line(line: &str) -> Option<GpuSample> {
    let fields: Vec<&str> = line.split(',').map(str::trim).collect();
    let [index, utilization, used, total] = fields.as_slice() else {
        return None;
    };
    let number = |s: &str| s.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0);
    let mib = |s: &str| number(s).map(|v| (v * MIB).round() as u64);
    Some(GpuSample {
        index: index.parse().ok()?,
        utilization_percent: number(utilization),
        memory_used_bytes: mib(used),
        memory_total_bytes: mib(total),
    })
}

/// Memory and CPU time of a process tree at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeUsage {
    /// Resident memory summed over the tree's processes, in bytes.
    pub rss_bytes: u64,
    /// CPU time (user + system) the tree's processes have used since they started, in milliseconds.
    pub cpu_time_ms: u64,
    /// Processes in the tree.
    pub processes: u32,
}

/// One reading of [`ProcessTreeSampler`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TreeReading {
    /// When the tree's memory and CPU time were read.
    pub at: Instant,
    /// The tree's usage then.
    pub usage: TreeUsage,
    /// CPU use since the previous reading (100 = one core); `None` for the first reading.
    pub cpu_percent: Option<f64>,
}

/// Accumulated CPU time in milliseconds by (pid, start time): the start time tells a reused pid apart.
type CpuTimes = HashMap<(u32, u64), u64>;

/// Reads one process tree again and again, keeping what CPU percentages need (blocking; cheap).
#[derive(Debug)]
pub struct ProcessTreeSampler {
    root: u32,
    system: System,
    /// Whether `/proc/<pid>/task/<tid>/children` can be read (Linux with `CONFIG_PROC_CHILDREN`).
    proc_children: bool,
    /// CPU time by (pid, start time) at the previous reading, and when that was.
    previous: Option<(Instant, CpuTimes)>,
}

impl ProcessTreeSampler {
    /// A sampler of the tree rooted at `root_pid`.
    pub fn new(root_pid: u32) -> ProcessTreeSampler {
        let own_children = format!("/proc/{0}/task/{0}/children", std::process::id());
        ProcessTreeSampler {
            root: root_pid,
            system: System::new(),
            proc_children: cfg!(target_os = "linux") && std::path::Path::new(&own_children).exists(),
            previous: None,
        }
    }

    /// Read the tree now; `None` when the root process no longer exists.
    pub fn sample(&mut self) -> Option<TreeReading> {
        let pids = self.tree_pids();
        if pids.is_empty() {
            return None;
        }
        let kind = ProcessRefreshKind::nothing().without_tasks().with_memory().with_cpu();
        self.system.refresh_processes_specifics(ProcessesToUpdate::Some(&pids), true, kind);
        let at = Instant::now();
        let mut usage = TreeUsage { rss_bytes: 0, cpu_time_ms: 0, processes: 0 };
        let mut cpu_by_process = HashMap::with_capacity(pids.len());
        for pid in &pids {
            let Some(process) = self.system.process(*pid) else { continue };
            usage.rss_bytes += process.memory();
            usage.cpu_time_ms += process.accumulated_cpu_time();
            usage.processes += 1;
            cpu_by_process
                .insert((pid.as_u32(), process.start_time()), (process.accumulated_cpu_time(), process.run_time()));
        }
        if usage.processes == 0 {
            return None;
        }
        let cpu_percent = self.previous.as_ref().and_then(|(then, before)| {
            let wall = at.saturating_duration_since(*then);
            let used_ms: u64 = cpu_by_process
                .iter()
                .map(|(key, (cpu_ms, run_time_s))| match before.get(key) {
                    Some(previous_ms) => cpu_ms.saturating_sub(*previous_ms),
                    // Born during the interval: all its CPU time was used in it. An older process that
                    // joined the tree only now (missed by an earlier walk) is a baseline, not a burst.
                    None if *run_time_s <= wall.as_secs() + 1 => *cpu_ms,
                    None => 0,
                })
                .sum();
            (!wall.is_zero()).then(|| used_ms as f64 / (wall.as_secs_f64() * 1000.0) * 100.0)
        });
        self.previous = Some((at, cpu_by_process.into_iter().map(|(key, (cpu_ms, _))| (key, cpu_ms)).collect()));
        Some(TreeReading { at, usage, cpu_percent })
    }

    /// The root and all its live descendants (empty when the root is gone).
    fn tree_pids(&mut self) -> Vec<Pid> {
        if self.proc_children {
            return proc_children_tree(self.root);
        }
        self.system.refresh_processes_specifics(
            ProcessesToUpdate::All,
            true,
            ProcessRefreshKind::nothing().without_tasks(),
        );
        let mut children: HashMap<Pid, Vec<Pid>> = HashMap::new();
        for (pid, process) in self.system.processes() {
            if process.thread_kind() == Some(ThreadKind::Userland) {
                continue;
            }
            if let Some(parent) = process.parent() {
                children.entry(parent).or_default().push(*pid);
            }
        }
        let root = Pid::from_u32(self.root);
        if self.system.process(root).is_none() {
            return Vec::new();
        }
        let mut tree = vec![root];
        let mut next = 0;
        while let Some(pid) = tree.get(next).copied() {
            next += 1;
            for child in children.get(&pid).into_iter().flatten() {
                if !tree.contains(child) {
                    tree.push(*child);
                }
            }
        }
        tree
    }
}

/// Walk a tree through `/proc/<pid>/task/<tid>/children` (every thread's children: a child belongs to
/// the thread that forked it). Empty when the root is gone.
fn proc_children_tree(root: u32) -> Vec<Pid> {
    let mut seen = HashSet::from([root]);
    let mut queue = VecDeque::from([root]);
    let mut tree = Vec::new();
    while let Some(pid) = queue.pop_front() {
        let Ok(threads) = std::fs::read_dir(format!("/proc/{pid}/task")) else { continue };
        tree.push(Pid::from_u32(pid));
        for thread in threads.flatten() {
            let Ok(children) = std::fs::read_to_string(thread.path().join("children")) else { continue };
            for child in children.split_ascii_whitespace().filter_map(|c| c.parse::<u32>().ok()) {
                if seen.insert(child) {
                    queue.push_back(child);
                }
            }
        }
    }
    tree
}

/// The usage of the tree rooted at `root_pid` right now; `None` when that process does not exist.
pub fn sample_once(root_pid: u32) -> Option<TreeUsage> {
    ProcessTreeSampler::new(root_pid).sample().map(|r| r.usage)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    const MB: u64 = 1_000_000;

    #[test]
    fn parses_nvidia_smi_lines() {
        assert_eq!(
            parse_gpu_line("0, 35, 1234, 81559"),
            Some(GpuSample {
                index: 0,
                utilization_percent: Some(35.0),
                memory_used_bytes: Some(1234 * 1024 * 1024),
                memory_total_bytes: Some(81559 * 1024 * 1024),
            })
        );
        assert_eq!(
            parse_gpu_line("1, [N/A], [Not Supported], 24576"),
            Some(GpuSample {
                index: 1,
                utilization_percent: None,
                memory_used_bytes: None,
                memory_total_bytes: Some(24576 * 1024 * 1024),
            })
        );
        assert_eq!(parse_gpu_line("  2,0,0,0  ").map(|g| (g.index, g.utilization_percent)), Some((2, Some(0.0))));
        assert_eq!(parse_gpu_line("No devices were found"), None);
        assert_eq!(parse_gpu_line("NVIDIA-SMI has failed because it couldn't communicate with the driver"), None);
        assert_eq!(parse_gpu_line("[N/A], 1, 2, 3"), None);
        assert_eq!(parse_gpu_line("0, 1, 2"), None);
        assert_eq!(parse_gpu_line(""), None);
    }

    #[test]
    fn a_missing_process_has_no_reading() {
        // Pids are below 2^22 on Linux and 99999 on macOS.
        assert_eq!(sample_once(u32::MAX - 7), None);
        let me = sample_once(std::process::id()).expect("this process exists");
        assert!(me.rss_bytes > MB && me.processes >= 1, "{me:?}");
    }

    /// A child that spins one core and a grandchild that allocates 200 MB on request.
    const SPINNER: &str = r#"
import subprocess, sys, time
grandchild = '''
import sys, time
print("ready", flush=True)
sys.stdin.readline()
block = b"x" * (200 * 1024 * 1024)
print("allocated", flush=True)
sys.stdin.readline()
'''
subprocess.Popen([sys.executable, "-c", grandchild])
end = time.time() + 120
while time.time() < end:
    pass
"#;

    async fn sample_after(sampler: &ResourceSampler, origin: Instant, after: Instant) -> ResourceSample {
        let after_s = after.duration_since(origin).as_secs_f64();
        for _ in 0..300 {
            if let Some(s) = sampler.samples().into_iter().find(|s| s.t_s > after_s && s.processes >= 2) {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no sample after {after_s:.2} s: {:?} {:?}", sampler.samples(), sampler.notes());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn samples_a_spinning_and_allocating_process_tree() {
        let mut child = Command::new("python3")
            .args(["-c", SPINNER])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 runs");
        let mut stdin = child.stdin.take().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let origin = Instant::now();
        let pid = child.id().unwrap();
        let sampler = ResourceSampler::start_with(pid, Duration::from_millis(100), origin, None);

        assert_eq!(lines.next_line().await.unwrap().as_deref(), Some("ready"));
        let before = sample_after(&sampler, origin, Instant::now()).await;
        // Let the spinner run for a second of samples.
        tokio::time::sleep(Duration::from_secs(1)).await;
        stdin.write_all(b"go\n").await.unwrap();
        stdin.flush().await.unwrap();
        assert_eq!(lines.next_line().await.unwrap().as_deref(), Some("allocated"));
        let after = sample_after(&sampler, origin, Instant::now()).await;

        let samples = sampler.stop();
        drop(stdin); // the grandchild exits at end of input
        let _ = child.kill().await;

        let grown = after.rss_bytes as i64 - before.rss_bytes as i64;
        assert!((150 * MB as i64..=320 * MB as i64).contains(&grown), "grandchild's 200 MiB seen: +{grown} B");
        assert!(before.processes >= 2 && after.processes >= 2, "{before:?} {after:?}");
        let spinning: Vec<f64> =
            samples.iter().filter(|s| s.t_s >= before.t_s && s.t_s <= after.t_s).map(|s| s.cpu_percent).collect();
        let mean = spinning.iter().sum::<f64>() / spinning.len() as f64;
        assert!(spinning.len() >= 5 && mean > 50.0, "CPU while spinning: {spinning:?}");
        assert!(samples.windows(2).all(|w| w[0].t_s < w[1].t_s), "samples in time order");
        assert!(samples.iter().all(|s| s.gpu.is_empty()));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn gpu_readings_come_from_the_query_command() {
        let origin = Instant::now();
        let script = "while true; do echo '0, 50, 1024, 81559'; echo '1, [N/A], 10, 81559'; sleep 0.05; done";
        let fake = ("sh".to_string(), vec!["-c".to_string(), script.to_string(), "fake-nvidia-smi".to_string()]);
        let sampler = ResourceSampler::start_with(std::process::id(), Duration::from_millis(100), origin, Some(fake));
        tokio::time::sleep(Duration::from_millis(600)).await;
        let samples = sampler.samples();
        assert!(sampler.notes().is_empty(), "{:?}", sampler.notes());
        let last = samples.last().expect("samples within 600 ms");
        assert_eq!(last.gpu.len(), 2, "{last:?}");
        assert_eq!(last.gpu[0].utilization_percent, Some(50.0));
        assert_eq!(last.gpu[0].memory_used_bytes, Some(1024 * 1024 * 1024));
        assert_eq!(last.gpu[1].utilization_percent, None);
        let all = sampler.stop();
        assert!(all.len() >= samples.len());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_missing_or_failing_gpu_tool_is_a_note() {
        let origin = Instant::now();
        let missing = ("velollm-no-such-nvidia-smi".to_string(), vec![]);
        let sampler = ResourceSampler::start_with(std::process::id(), Duration::from_millis(50), origin, Some(missing));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!sampler.samples().is_empty(), "CPU and memory are still sampled");
        assert!(sampler.notes().iter().any(|n| n.contains("not on PATH")), "{:?}", sampler.notes());

        let failing = ("sh".to_string(), vec!["-c".to_string(), "echo 'No devices were found'; exit 6".to_string()]);
        let sampler = ResourceSampler::start_with(std::process::id(), Duration::from_millis(50), origin, Some(failing));
        tokio::time::sleep(Duration::from_millis(500)).await;
        let notes = sampler.notes();
        assert!(notes.iter().any(|n| n.contains("No devices were found")), "{notes:?}");
        assert!(notes.iter().any(|n| n.contains("without a reading")), "{notes:?}");
        assert!(sampler.stop().iter().all(|s| s.gpu.is_empty()));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sampling_stops_with_a_note_when_the_root_exits() {
        let mut child = Command::new("sleep").arg("0.3").kill_on_drop(true).spawn().expect("sleep runs");
        let sampler = ResourceSampler::start_with(child.id().unwrap(), Duration::from_millis(50), Instant::now(), None);
        child.wait().await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(sampler.notes().iter().any(|n| n.contains("was gone")), "{:?}", sampler.notes());
        let n = sampler.samples().len();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(sampler.stop().len(), n, "no samples after the root is gone");
    }

    /// Cost of one sample; run with
    /// `cargo test -p velollm-engine --release resources::tests::sample_cost -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement, not a check"]
    fn sample_cost() {
        let mut children: Vec<std::process::Child> =
            (0..4).map(|_| std::process::Command::new("sleep").arg("30").spawn().unwrap()).collect();
        let mut tree = ProcessTreeSampler::new(std::process::id());
        tree.sample();
        let n = 1_000;
        let started = Instant::now();
        let mut processes = 0;
        for _ in 0..n {
            processes = tree.sample().unwrap().usage.processes;
        }
        let per_sample = started.elapsed() / n;
        println!(
            "{processes} processes ({}): {per_sample:?} per sample",
            if tree.proc_children { "/proc children walk" } else { "sysinfo scan" }
        );
        tree.proc_children = false;
        let started = Instant::now();
        for _ in 0..100 {
            tree.sample();
        }
        println!("with a sysinfo scan of every process: {:?} per sample", started.elapsed() / 100);
        for c in &mut children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
