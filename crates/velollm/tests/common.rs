//! Helpers shared by the integration tests: run the real `velollm` binary and read what it wrote.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The path of the built `velollm` binary.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_velollm"))
}

/// A `velollm` command with the test defaults: no inherited VELOLLM_URL, nothing written to the user's history
/// database (tests that check the history opt in with VELOLLM_DB), no self-check before a bench (tests of the
/// self-check remove VELOLLM_NO_SELFCHECK).
pub fn command() -> Command {
    let mut c = Command::new(bin());
    c.env_remove("VELOLLM_URL")
        .env_remove("VELOLLM_DB")
        .env("VELOLLM_NO_HISTORY", "1")
        .env("VELOLLM_NO_SELFCHECK", "1");
    c
}

/// Run `velollm` with `args` (no progress bar, see [`command`] for the environment).
pub fn velollm(args: &[&str]) -> Output {
    command().args(args).output().expect("velollm runs")
}

/// Run `velollm` off the async runtime (the fake servers live on it).
pub async fn velollm_async(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        velollm(&args)
    })
    .await
    .expect("join")
}

/// Standard output and error as text.
pub fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// Read a JSON file.
pub fn json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Read a JSONL file.
pub fn jsonl(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

/// One `velollm bench` run, its result and records written to a folder of its own:
/// `Bench::new(&url).args(&["--prompt", "hi", "-n", "3"]).run().await.ok()`.
pub struct Bench {
    args: Vec<String>,
    dir: tempfile::TempDir,
}

/// What a [`Bench`] run left behind.
pub struct Ran {
    /// The process output.
    pub out: Output,
    /// Its exit code.
    pub code: Option<i32>,
    /// Standard output, as text.
    pub stdout: String,
    /// Standard error, as text.
    pub stderr: String,
    /// The result document (`Null` when none was written).
    pub doc: serde_json::Value,
    /// The per-request records (none when no file was written).
    pub records: Vec<serde_json::Value>,
    /// The run's folder, kept until the `Ran` is dropped.
    pub dir: tempfile::TempDir,
}

impl Bench {
    /// `velollm bench --url URL --no-progress -o DIR/run.json --records DIR/run.jsonl`.
    pub fn new(url: &str) -> Bench {
        Bench::bare().args(&["--url", url])
    }

    /// `velollm bench --no-progress -o DIR/run.json --records DIR/run.jsonl`: the target comes from the
    /// arguments.
    pub fn bare() -> Bench {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let (out, records) = (dir.path().join("run.json"), dir.path().join("run.jsonl"));
        let args = ["bench", "--no-progress", "-o", out.to_str().unwrap(), "--records", records.to_str().unwrap()];
        Bench { args: args.iter().map(|a| a.to_string()).collect(), dir }
    }

    /// More arguments.
    pub fn args(mut self, args: &[&str]) -> Bench {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// The run's folder (for input files: a trace, a certificate).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Run it off the async runtime (the fake servers live on it).
    pub async fn run(self) -> Ran {
        let Bench { args, dir } = self;
        let out = velollm_async(args).await;
        Ran::read(out, dir)
    }

    /// Run it, blocking.
    pub fn run_blocking(self) -> Ran {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let out = velollm(&args);
        Ran::read(out, self.dir)
    }
}

impl Ran {
    fn read(out: Output, dir: tempfile::TempDir) -> Ran {
        let (stdout, stderr) = text(&out);
        let (doc, records) = (dir.path().join("run.json"), dir.path().join("run.jsonl"));
        let doc = if doc.exists() { json(&doc) } else { serde_json::Value::Null };
        let records = if records.exists() { jsonl(&records) } else { Vec::new() };
        Ran { code: out.status.code(), out, stdout, stderr, doc, records, dir }
    }

    /// Assert exit 0 and a complete, schema-valid result.
    pub fn ok(self) -> Ran {
        assert_eq!(self.code, Some(0), "stderr: {}\nstdout: {}", self.stderr, self.stdout);
        assert_valid(&self.doc);
        assert_eq!(self.doc["status"], "complete", "{}", self.doc);
        self
    }

    /// The step named `name`.
    pub fn step(&self, name: &str) -> &serde_json::Value {
        self.doc["steps"]
            .as_array()
            .and_then(|steps| steps.iter().find(|s| s["name"] == name))
            .unwrap_or_else(|| panic!("no step '{name}' in {}", self.doc["steps"]))
    }

    /// The names of the steps, in order.
    pub fn step_names(&self) -> Vec<&str> {
        self.doc["steps"].as_array().map_or(Vec::new(), |s| s.iter().filter_map(|s| s["name"].as_str()).collect())
    }

    /// The measured records (warm-up left out) of the step named `name`.
    pub fn records_of(&self, name: &str) -> Vec<&serde_json::Value> {
        let index = self.step_names().iter().position(|n| *n == name).expect("a step of the run") as u64;
        self.records.iter().filter(|r| r["step"] == index && r["warmup"] != true).collect()
    }

    /// The analyses of this kind, in order.
    pub fn analyses(&self, kind: &str) -> Vec<&serde_json::Value> {
        self.doc["analyses"].as_array().map_or(vec![], |a| a.iter().filter(|a| a["kind"] == kind).collect())
    }

    /// The only analysis of this kind.
    pub fn analysis(&self, kind: &str) -> &serde_json::Value {
        let found = self.analyses(kind);
        assert_eq!(found.len(), 1, "expected one '{kind}' analysis in {}", self.doc["analyses"]);
        found[0]
    }

    /// `(threshold, scope, passed)` of every verdict.
    pub fn verdicts(&self) -> Vec<(String, String, bool)> {
        let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
        self.doc["verdicts"].as_array().map_or(vec![], |v| {
            v.iter().map(|v| (text(&v["threshold"]), text(&v["scope"]), v["passed"] == true)).collect()
        })
    }
}

/// The committed JSON Schema of the result document.
pub fn schema_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/result-schema.json")
}

/// Validate a result document against the committed schema.
pub fn assert_valid(doc: &serde_json::Value) {
    let schema = json(&schema_path());
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    let errors: Vec<String> = validator.iter_errors(doc).map(|e| format!("{} at {}", e, e.instance_path)).collect();
    assert!(errors.is_empty(), "result does not match docs/result-schema.json: {errors:#?}");
}

/// Held while a test uses a real server: one such test at a time (see [`server_url`]). A blocking lock, taken
/// once at the start of a test and held to its end, so holding it across the test's awaits is what it is for.
pub struct RealParts(#[allow(dead_code)] MutexGuard<'static, ()>);

/// Wait for the other real-server tests; a test that failed does not stop the others.
fn real_parts() -> RealParts {
    static LOCK: Mutex<()> = Mutex::new(());
    RealParts(LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
}

/// The real llama-server the end-to-end tests use (`VELOLLM_TEST_SERVER_URL`, default
/// `http://127.0.0.1:8080`), if it answers `/health`. Without one the caller skips — except in CI
/// (`CI=true`), where a missing server is a failure.
///
/// The guard that comes with the URL keeps the other real-server tests waiting until this one ends: the
/// machine has two cores, llama-server one thread, and some tests read the server's counters before and after.
pub fn server_url() -> Option<(String, RealParts)> {
    let url = std::env::var("VELOLLM_TEST_SERVER_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let addr = url.trim_start_matches("http://").trim_end_matches('/').to_string();
    let healthy = (|| {
        let mut s = TcpStream::connect(&addr).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        s.write_all(format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes()).ok()?;
        let mut buf = String::new();
        s.read_to_string(&mut buf).ok()?;
        buf.starts_with("HTTP/1.1 200").then_some(())
    })();
    match healthy {
        Some(()) => Some((url, real_parts())),
        None if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true but no llama-server answers at {url}: run the tests with scripts/test.sh, which starts it")
        }
        None => {
            eprintln!("skipped: no llama-server at {url} (start one with scripts/llama-server.sh start)");
            None
        }
    }
}

/// Headless Chromium, when installed (in CI it must be).
pub fn chromium() -> Option<PathBuf> {
    let found = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .into_iter()
        .chain(["/usr/bin/chromium", "/usr/bin/chromium-browser"].map(PathBuf::from))
        .find(|p| p.exists());
    match found {
        Some(p) => Some(p),
        None if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true but chromium is not installed: run scripts/setup.sh (Debian package `chromium`)")
        }
        None => {
            eprintln!("skipped: chromium is not installed (run scripts/setup.sh to install it)");
            None
        }
    }
}

/// Run Chromium headless on `url` with `args` (profile and output in `dir`); its standard output.
pub fn run_chromium(bin: &Path, dir: &Path, args: &[&str], url: &str) -> String {
    // Output goes to a file: a DOM dump outgrows a pipe's buffer, and nobody reads the pipe while we wait.
    let stdout = dir.join("chromium-stdout.txt");
    let mut child = Command::new(bin)
        .args(["--headless=new", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=2000"])
        .arg(format!("--user-data-dir={}", dir.join("chromium-profile").display()))
        .args(args)
        .arg(url)
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts");
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("chromium did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "chromium failed: {status:?}");
    std::fs::read_to_string(&stdout).unwrap()
}

/// Open a velollm HTML report headless: the number of charts its page script saw rendered with a size. Fails
/// when the script did not run or recorded an error.
pub fn rendered_charts(bin: &Path, dir: &Path, url: &str) -> usize {
    let dom = run_chromium(bin, dir, &["--dump-dom"], url);
    let body = dom.split("<body").nth(1).and_then(|b| b.split('>').next()).expect("a <body> in the DOM");
    assert!(!body.contains("data-errors"), "script errors: <body{body}>");
    body.split("data-charts=\"")
        .nth(1)
        .and_then(|v| v.split('"').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("the page script did not run: <body{body}>"))
}

/// Take a screenshot of `url` into `target/test-artifacts/NAME` and check it is not blank.
pub fn screenshot(bin: &Path, dir: &Path, url: &str, name: &str) {
    let artifacts = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"))
        .join("test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let png = artifacts.join(name);
    let _ = std::fs::remove_file(&png);
    run_chromium(bin, dir, &[&format!("--screenshot={}", png.display()), "--window-size=1280,2400"], url);
    let size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
    assert!(size > 20_000, "the screenshot {} is missing or blank ({size} bytes)", png.display());
}

/// The `velollm-fake-server` program (a bin of `velollm-testkit`) beside the test's own target directory
/// (`target/debug/deps/launch-…` → `target/debug/velollm-fake-server`); built once with cargo when missing
/// (`cargo test -p velollm` alone does not build another package's binaries).
pub fn fake_server_bin() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test executable's path");
        // target/PROFILE/deps/TEST → target/PROFILE
        let profile_dir = exe.parent().and_then(Path::parent).expect("the test executable is in target/PROFILE/deps");
        let bin = profile_dir.join(format!("velollm-fake-server{}", std::env::consts::EXE_SUFFIX));
        if bin.exists() {
            return bin;
        }
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
        let target_dir = profile_dir.parent().expect("target/PROFILE has a parent");
        let mut build = Command::new(cargo);
        build.args(["build", "-p", "velollm-testkit", "--bin", "velollm-fake-server", "--manifest-path"]);
        build.arg(&manifest).arg("--target-dir").arg(target_dir);
        match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => {}
            Some("release") => {
                build.arg("--release");
            }
            Some(other) => {
                build.args(["--profile", other]);
            }
        }
        let status = build.status().expect("cargo runs (to build velollm-fake-server)");
        assert!(status.success(), "cargo build -p velollm-testkit --bin velollm-fake-server failed: {status}");
        assert!(bin.exists(), "cargo built velollm-fake-server but it is not at {}", bin.display());
        bin
    })
    .clone()
}

/// A marker unique to this call, to find the processes a test started (`--tag MARKER` on the fake server).
pub fn unique_marker(what: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos());
    format!("velollm-test-{what}-{}-{n}-{}", std::process::id(), nanos.unwrap_or(0))
}

/// Live processes (zombies excluded) whose command line contains every one of `needles` (arguments joined
/// by spaces): `(pid, command line)`. Reads `/proc` on Linux; elsewhere asks `ps`.
pub fn processes_with(needles: &[&str]) -> Vec<(u32, String)> {
    let me = std::process::id();
    let mut found = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
            if pid == me {
                continue;
            }
            let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else { continue };
            let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
            // A zombie has an empty command line; its state is Z.
            let zombie = std::fs::read_to_string(entry.path().join("stat"))
                .ok()
                .and_then(|s| s.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with('Z')))
                .unwrap_or(true);
            if !zombie && needles.iter().all(|n| cmdline.contains(n)) {
                found.push((pid, cmdline.trim_end().to_string()));
            }
        }
        return found;
    }
    let out = Command::new("ps").args(["-A", "-o", "pid=,stat=,args="]).output().expect("ps runs");
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut parts = line.split_whitespace();
        let (Some(pid), Some(stat)) = (parts.next().and_then(|p| p.parse::<u32>().ok()), parts.next()) else {
            continue;
        };
        let args: Vec<&str> = parts.collect();
        let cmdline = args.join(" ");
        if pid != me && !stat.starts_with('Z') && needles.iter().all(|n| cmdline.contains(n)) {
            found.push((pid, cmdline));
        }
    }
    found
}

/// Wait up to `within` for no live process to match `needles` (see [`processes_with`]); panics naming
/// the survivors.
pub fn assert_no_process(needles: &[&str], within: Duration) {
    let start = Instant::now();
    loop {
        let left = processes_with(needles);
        if left.is_empty() {
            return;
        }
        assert!(start.elapsed() < within, "processes left running after {within:?}: {left:#?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether something accepts connections on `127.0.0.1:port`.
pub fn listening(port: u16) -> bool {
    TcpStream::connect_timeout(&std::net::SocketAddr::from(([127, 0, 0, 1], port)), Duration::from_millis(500)).is_ok()
}

/// llama.cpp's `llama-server` and the SmolLM2 model (`LLAMA_SERVER_BIN`, `SMOLLM2_MODEL`, exported by
/// `scripts/test.sh` from `scripts/llama-server.sh env`), when both files exist. Without them the caller
/// skips — except in CI (`CI=true`), where they are required.
///
/// Like [`server_url`], with a guard: a launched llama-server never shares the two cores with another.
pub fn llama_server() -> Option<(PathBuf, PathBuf, RealParts)> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    let (bin, model) = (var("LLAMA_SERVER_BIN"), var("SMOLLM2_MODEL"));
    let problem = match (&bin, &model) {
        (None, _) | (_, None) => "LLAMA_SERVER_BIN and SMOLLM2_MODEL are not both set".to_string(),
        (Some(b), _) if !b.is_file() => format!("LLAMA_SERVER_BIN={} does not exist", b.display()),
        (_, Some(m)) if !m.is_file() => format!("SMOLLM2_MODEL={} does not exist", m.display()),
        (Some(b), Some(m)) => return Some((b.clone(), m.clone(), real_parts())),
    };
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "CI=true but {problem}: run the tests with scripts/test.sh, or \
             eval \"$(scripts/llama-server.sh env)\" after scripts/llama-server.sh install"
        );
    }
    eprintln!("skipped: {problem} (run scripts/llama-server.sh install, then eval \"$(scripts/llama-server.sh env)\")");
    None
}

/// One HTTP/1.1 request read from a raw socket: its head as text and every byte read (head, then its
/// `Content-Length` body); `None` when the peer closed first.
pub async fn read_request(client: &mut tokio::net::TcpStream) -> std::io::Result<Option<(String, Vec<u8>)>> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(Some((head, buf)))
}

/// `velollm proxy ARGS…` started on a free port: the process and the address its first line names (its stderr
/// is read on, so that it never blocks on a full pipe).
pub fn spawn_velollm_proxy(args: &[&str]) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = command()
        .args(["proxy", "--listen", "127.0.0.1:0"])
        .args(args)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(line.contains("listening on"), "{line}");
    let addr = line.trim().rsplit("http://").next().unwrap().to_owned();
    std::thread::spawn(move || for _ in stderr.lines() {});
    (child, addr)
}

/// llm-d's Benchmark Report package, installed by `scripts/llmd-report.sh` (`VELOLLM_LLMD_REPORT`, the folder
/// to put on PYTHONPATH). Without it the caller skips — except in CI (`CI=true`), where it is a failure.
pub fn llmd_report_package() -> Option<PathBuf> {
    let dir =
        std::env::var_os("VELOLLM_LLMD_REPORT").map(PathBuf::from).filter(|d| d.join("llmd_benchmark_report").is_dir());
    match dir {
        Some(d) => Some(d),
        None if std::env::var("CI").as_deref() == Ok("true") => {
            panic!(
                "CI=true but VELOLLM_LLMD_REPORT names no llm-d report package: eval \"$(scripts/llmd-report.sh env)\""
            )
        }
        None => {
            eprintln!("skipped: no llm-d report package (eval \"$(scripts/llmd-report.sh env)\")");
            None
        }
    }
}

/// `report` is a valid llm-d Benchmark Report: against the package's JSON Schema, and loaded by the package's
/// own model (which refuses fields the schema does not know).
pub fn assert_llmd_valid(package: &Path, report: &Path) {
    let schema = json(&package.join("llmd_benchmark_report/br_v0_2_json_schema.json"));
    let doc = json(report);
    let validator = jsonschema::validator_for(&schema).expect("the llm-d schema compiles");
    let errors: Vec<String> = validator.iter_errors(&doc).map(|e| format!("{} at {}", e, e.instance_path)).collect();
    assert!(errors.is_empty(), "{} does not match llm-d's schema: {errors:#?}", report.display());
    let out = Command::new("python3")
        .env("PYTHONPATH", package)
        .args(["-c", "import sys\nfrom llmd_benchmark_report import import_benchmark_report\nprint(import_benchmark_report(sys.argv[1]).version)"])
        .arg(report)
        .output()
        .expect("python3 runs");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "llm-d's model refuses {}:\n{stderr}", report.display());
    assert_eq!(stdout.trim(), "0.2.1");
}
