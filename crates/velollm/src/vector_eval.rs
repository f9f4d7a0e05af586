//! `velollm bench --scenario vector-stores`: the semantic cache's vector stores compared on the same vectors.
//! For each size (`--vectors`, default 10,000 and 100,000), every store is loaded with the same clustered unit
//! vectors of 384 dimensions, then asked the same queries: stored vectors moved to a cosine of about 0.93 from
//! their original, as a paraphrase is. Reported per store and size: insert rate, query latency p50/p99, recall@1
//! against an exact search, and the memory the store took (the process's resident set before and after; for the
//! shared stores, Redis Stack's `used_memory` with `--redis-stack URL`, or the size of the Postgres table and its
//! indexes with `--pgvector URL`; Milvus, `--milvus URL`, does not say).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use serde::Serialize;
use velollm_core::stats::Summary;
use velollm_proxy::normalize::CacheKey;
use velollm_proxy::semantic::index::{EF_SEARCH, GRAPH_FROM, Index, ef_for};
use velollm_proxy::semantic::milvus_vectors::MilvusVectors;
use velollm_proxy::semantic::pg_vectors::PgVectors;
use velollm_proxy::semantic::redis_vectors::{RedisVectors, ef_runtime_for};
use velollm_proxy::semantic::store::VectorStore;
use velollm_report::document::Table;

use crate::args::BenchArgs;
use crate::exit::{self, input};

/// The scenario name that runs this benchmark.
pub const SCENARIO: &str = "vector-stores";

/// The embedding dimension of the default embedder (all-MiniLM-L6-v2).
const DIM: usize = 384;

/// One store at one size.
#[derive(Debug, Clone, Serialize)]
pub struct StoreRun {
    /// The store.
    pub store: String,
    /// Vectors loaded.
    pub vectors: usize,
    /// Vectors inserted per second.
    pub inserts_per_s: f64,
    /// Query latency, ms.
    pub query_ms: Summary,
    /// Queries whose answer was the exact search's nearest.
    pub recall_at_1: f64,
    /// Resident memory the loaded store added, bytes (`None` where the system does not say).
    pub memory_bytes: Option<u64>,
}

/// The whole comparison.
#[derive(Debug, Clone, Serialize)]
pub struct VectorReport {
    /// Dimensions of every vector.
    pub dimensions: usize,
    /// Queries per store and size.
    pub queries: usize,
    /// The runs.
    pub runs: Vec<StoreRun>,
    /// Stores that were not measured, and why.
    pub not_measured: Vec<String>,
}

/// Runs the comparison.
pub async fn run(args: &BenchArgs) -> Result<u8> {
    let e = &args.semantic_eval;
    let sizes: Vec<usize> = match &e.vectors {
        Some(list) => list
            .split(',')
            .map(|s| s.trim().replace('_', "").parse::<usize>().ok().filter(|&n| n > 0))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| input(format!("--vectors {list:?}: give sizes like 10000,100000")))?,
        None => vec![10_000, 100_000],
    };
    let efs: Option<Vec<usize>> = match &e.ef_search {
        Some(list) => Some(
            list.split(',')
                .map(|s| s.trim().parse::<usize>().ok().filter(|&n| n > 0))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| input(format!("--ef-search {list:?}: give candidate counts like 32,64")))?,
        ),
        None => None,
    };
    if e.skip_embedded && e.redis_stack.is_none() && e.pgvector.is_none() && e.milvus.is_none() {
        return Err(
            input("--skip-embedded leaves nothing to measure: give --redis-stack, --pgvector or --milvus").into()
        );
    }
    let writers = e.writers.unwrap_or(1);
    if writers == 0 {
        return Err(input("--writers must be at least 1").into());
    }
    let queries = e.queries.unwrap_or(200);
    if queries == 0 {
        return Err(input("--queries must be at least 1").into());
    }
    // Ctrl-C or SIGTERM: the store being loaded drops what it was given, the rows measured are reported.
    let (_cancel_tx, cancel) = crate::signal::cancel_on_signal();
    let mut runs = Vec::new();
    let mut failed = Vec::new();
    for &n in &sizes {
        if *cancel.borrow() {
            break;
        }
        eprintln!("vector-stores: {n} vectors of {DIM} dimensions, {queries} queries");
        let data = Data::new(n, queries, n as u64);
        if !e.skip_embedded {
            runs.extend(measure("embedded, exact scan", usize::MAX, &[EF_SEARCH], &data));
            // The proxy's default width for a graph of this size, unless the user asked for others.
            let graph_efs = efs.clone().unwrap_or_else(|| vec![ef_for(n)]);
            runs.extend(measure("embedded, HNSW graph", GRAPH_FROM, &graph_efs, &data));
        }
        // Each shared store is loaded by `writers` handles at once, each its own connection, under one name.
        let handles = |open: fn(&str, &str) -> Result<Shared>, url: &str| {
            let name = Shared::fresh(n);
            Ok::<_, anyhow::Error>(Handles {
                main: open(url, &name)?,
                cleanup: open(url, &name)?,
                writers: (0..writers).map(|_| open(url, &name)).collect::<Result<Vec<_>>>()?,
            })
        };
        // A store that fails at one size is reported as not measured there; the rows measured are kept.
        let mut shared = |result: Result<Vec<StoreRun>>| match result {
            Ok(rows) => runs.extend(rows),
            Err(e) => {
                eprintln!("vector-stores: {e:#}");
                failed.push(format!("{e:#} (at {n} vectors)"));
            }
        };
        if let Some(url) = e.redis_stack.as_ref().filter(|_| !*cancel.borrow()) {
            // The proxy's EF_RUNTIME for this size, unless the user asked for others (one load, a row each).
            let redis_efs = efs.clone().unwrap_or_else(|| vec![ef_runtime_for(n)]);
            shared(measure_shared(&handles(Shared::redis, url)?, &data, &redis_efs, &cancel).await);
        }
        if let Some(url) = e.pgvector.as_ref().filter(|_| !*cancel.borrow()) {
            shared(measure_shared(&handles(Shared::postgres, url)?, &data, &[], &cancel).await);
        }
        if let Some(url) = e.milvus.as_ref().filter(|_| !*cancel.borrow()) {
            shared(measure_shared(&handles(Shared::milvus, url)?, &data, &[], &cancel).await);
        }
    }
    // A store that failed is an error once the report of the others is out; an interrupted run says so.
    let code = if *cancel.borrow() {
        exit::INTERRUPTED
    } else if failed.is_empty() {
        exit::OK
    } else {
        exit::ERROR
    };
    let mut not_measured = failed;
    if *cancel.borrow() {
        not_measured.push(format!("{}: what is not listed above was not measured", crate::signal::interruption()));
    }
    if e.redis_stack.is_none() {
        not_measured.push("Redis Stack: give --redis-stack redis://HOST:PORT (scripts/redis-stack.sh start)".into());
    }
    if e.pgvector.is_none() {
        not_measured.push(
            "Postgres with pgvector: give --pgvector postgres://USER@HOST:PORT/DB (scripts/pgvector.sh start)".into(),
        );
    }
    if e.milvus.is_none() {
        not_measured.push("Milvus: give --milvus milvus://HOST:PORT (scripts/milvus-lite.sh start)".into());
    }
    let report = VectorReport { dimensions: DIM, queries, runs, not_measured };
    print!("{}", render(&report));
    if let Some(path) = &args.output.output {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json + "\n").with_context(|| format!("cannot write {}", path.display()))?;
        let chart_path = path.with_extension("svg");
        std::fs::write(&chart_path, chart(&report))
            .with_context(|| format!("cannot write {}", chart_path.display()))?;
        eprintln!("report written to {} and {}", path.display(), chart_path.display());
    }
    Ok(code)
}

/// The vectors, the queries and the exact answers.
struct Data {
    vectors: Vec<Vec<f32>>,
    queries: Vec<Vec<f32>>,
    exact: Vec<usize>,
}

impl Data {
    fn new(n: usize, queries: usize, seed: u64) -> Data {
        let mut rng = StdRng::seed_from_u64(seed);
        // Clusters of about 50 related vectors; a member is at cosine about 0.7 from its centre.
        let centres: Vec<Vec<f32>> = (0..n.div_ceil(50)).map(|_| unit(gaussian(&mut rng, DIM))).collect();
        let vectors: Vec<Vec<f32>> = (0..n)
            .map(|_| {
                let c = &centres[rng.random_range(0..centres.len())];
                let g = gaussian(&mut rng, DIM);
                unit(c.iter().zip(g).map(|(c, g)| c + g / (DIM as f32).sqrt()).collect())
            })
            .collect();
        let queries: Vec<Vec<f32>> = (0..queries)
            .map(|_| {
                let v = &vectors[rng.random_range(0..n)];
                let g = gaussian(&mut rng, DIM);
                unit(v.iter().zip(g).map(|(v, g)| v + 0.4 * g / (DIM as f32).sqrt()).collect())
            })
            .collect();
        let exact = queries
            .iter()
            .map(|q| {
                let score = |v: &Vec<f32>| velollm_embed::bert::dot(q, v);
                (0..n).max_by(|&a, &b| score(&vectors[a]).total_cmp(&score(&vectors[b]))).unwrap_or(0)
            })
            .collect();
        Data { vectors, queries, exact }
    }
}

/// Loads one store and asks it every query, once per candidate count `efs` (a graph's; one row each).
fn measure(store: &str, graph_from: usize, efs: &[usize], data: &Data) -> Vec<StoreRun> {
    let n = data.vectors.len();
    let context = CacheKey([0; 32]);
    let before = resident_bytes();
    let index = Index::with_graph_from(n, Duration::from_secs(86_400), graph_from);
    let start = Instant::now();
    for (i, v) in data.vectors.iter().enumerate() {
        index.insert(context, v.clone(), String::new(), key_of(i));
    }
    let load = start.elapsed();
    let memory_bytes = before.zip(resident_bytes()).map(|(b, a)| a.saturating_sub(b));
    let graph = graph_from <= n;
    efs.iter()
        .map(|&ef| {
            let mut latencies = Vec::with_capacity(data.queries.len());
            let mut right = 0;
            for (q, &exact) in data.queries.iter().zip(&data.exact) {
                let t = Instant::now();
                let found = index.nearest_ef(&context, q, Some(ef));
                latencies.push(t.elapsed().as_secs_f64() * 1e3);
                right += usize::from(found.is_some_and(|f| f.answer == key_of(exact)));
            }
            StoreRun {
                store: if graph { format!("{store} (ef {ef})") } else { store.to_owned() },
                vectors: n,
                inserts_per_s: n as f64 / load.as_secs_f64().max(1e-9),
                query_ms: Summary::of(latencies).unwrap_or_else(|| Summary::of([0.0]).expect("one value")),
                recall_at_1: right as f64 / data.queries.len() as f64,
                memory_bytes,
            }
        })
        .collect()
}

/// A shared store under a fresh name, dropped after its measurement: the proxy's own [`VectorStore`].
struct Shared(VectorStore);

impl Shared {
    /// A name no earlier run used.
    fn fresh(n: usize) -> String {
        let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        format!("velollm-bench-{n}-{stamp}")
    }

    fn redis(url: &str, name: &str) -> Result<Shared> {
        let store = RedisVectors::new(url, name, Duration::from_secs(3600), Duration::from_secs(10))
            .map_err(|e| input(format!("--redis-stack: {e}")))?;
        Ok(Shared(VectorStore::Redis(store)))
    }

    fn postgres(url: &str, name: &str) -> Result<Shared> {
        let store = PgVectors::new(url, name, Duration::from_secs(3600), Duration::from_secs(30))
            .map_err(|e| input(format!("--pgvector: {e}")))?;
        Ok(Shared(VectorStore::Postgres(store)))
    }

    fn milvus(url: &str, name: &str) -> Result<Shared> {
        let store = MilvusVectors::new(url, name, Duration::from_secs(3600), Duration::from_secs(60))
            .map_err(|e| input(format!("--milvus: {e}")))?;
        Ok(Shared(VectorStore::Milvus(store)))
    }

    /// The store's row label; Milvus's names the version the server reports (Milvus Lite and a Milvus
    /// server speak the same API).
    async fn label(&self) -> String {
        match &self.0 {
            VectorStore::Redis(_) => "Redis Stack 7.4, HNSW (over loopback)".into(),
            VectorStore::Postgres(_) => "Postgres 18 + pgvector 0.8, HNSW (over loopback)".into(),
            VectorStore::Milvus(m) => match m.server_version().await {
                // Milvus Lite says `milvus_lite-3.2.2`, a Milvus server `v2.3.5-…`.
                Ok(v) => match v.strip_prefix("milvus_lite-") {
                    Some(lite) => format!("Milvus Lite {lite}, HNSW (over loopback)"),
                    None => format!("Milvus {v}, HNSW (over loopback)"),
                },
                Err(_) => "Milvus, HNSW (over loopback)".into(),
            },
            VectorStore::Embedded(_) => "embedded".into(),
        }
    }

    /// What the store holds: Redis's `used_memory`, or the Postgres table's size with its indexes (Milvus
    /// does not say).
    async fn memory(&self) -> Option<u64> {
        match &self.0 {
            VectorStore::Redis(s) => s.used_memory().await,
            VectorStore::Postgres(s) => s.table_bytes().await,
            VectorStore::Milvus(_) | VectorStore::Embedded(_) => None,
        }
    }

    async fn drop_all(&self) {
        let _ = match &self.0 {
            VectorStore::Redis(s) => s.drop_index().await,
            VectorStore::Postgres(s) => s.drop_table().await,
            VectorStore::Milvus(s) => s.drop_collection().await,
            VectorStore::Embedded(_) => Ok(()),
        };
    }
}

/// One shared store under one name: the handle that makes, measures and queries it, one kept idle to drop it
/// (a handle whose request was cut off has a reply left on its connection), and the writers that load it.
struct Handles {
    main: Shared,
    cleanup: Shared,
    writers: Vec<Shared>,
}

/// Loads a shared store (a fresh index, dropped afterwards, or when the run is interrupted) and asks it every
/// query.
async fn measure_shared(
    handles: &Handles,
    data: &Data,
    efs: &[usize],
    cancel: &tokio::sync::watch::Receiver<bool>,
) -> Result<Vec<StoreRun>> {
    let mut label = handles.main.label().await;
    if handles.writers.len() > 1 {
        label = format!("{label}, {} writers", handles.writers.len());
    }
    let mut cancel = cancel.clone();
    let measured = tokio::select! {
        measured = load_and_query(handles, data, efs, &label) => measured,
        _ = cancel.wait_for(|c| *c) => Err(anyhow::anyhow!("{label}: {}, its index dropped", crate::signal::interruption())),
    };
    handles.cleanup.drop_all().await;
    measured
}

/// Loads a shared store and asks it every query, a row per search width in `efs` (one row when empty).
async fn load_and_query(handles: &Handles, data: &Data, efs: &[usize], label: &str) -> Result<Vec<StoreRun>> {
    let n = data.vectors.len();
    let (store, stores) = (&handles.main, &handles.writers);
    store.0.ensure(DIM).await.map_err(|e| anyhow::anyhow!("{label}: {e}"))?;
    let context = CacheKey([0; 32]);
    let before = match &store.0 {
        VectorStore::Postgres(_) => Some(0),
        _ => store.memory().await,
    };
    let start = Instant::now();
    // Writer w inserts vectors w, w + writers, …, one at a time, as a proxy does.
    let loads = stores.iter().enumerate().map(|(w, handle)| async move {
        for i in (w..n).step_by(stores.len()) {
            handle.0.write(&context, &data.vectors[i], "", &key_of(i)).await?;
        }
        Ok::<(), String>(())
    });
    if let Err(e) = futures_util::future::try_join_all(loads).await {
        anyhow::bail!("{label}, insert: {e}");
    }
    let load = start.elapsed();
    // Queries start once every writer's last vector is found: a Milvus server's searches (bounded
    // consistency) see a write a moment after it, and recall is the index's, not that moment's. At most 30 s
    // in all: a graph search can miss a vector that is there.
    let deadline = Instant::now() + Duration::from_secs(30);
    for last in (n.saturating_sub(stores.len())..n).rev() {
        while !store
            .0
            .nearest(&context, &data.vectors[last])
            .await
            .is_ok_and(|f| f.is_some_and(|f| f.answer == key_of(last)))
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let memory_bytes = before.zip(store.memory().await).map(|(b, a)| a.saturating_sub(b));
    // A store whose search width can be chosen per query gives a row per width; the others one row.
    let widths: Vec<Option<usize>> = if efs.is_empty() { vec![None] } else { efs.iter().copied().map(Some).collect() };
    let mut runs = Vec::new();
    for ef in widths {
        let mut latencies = Vec::with_capacity(data.queries.len());
        let mut right = 0;
        for (q, &exact) in data.queries.iter().zip(&data.exact) {
            let t = Instant::now();
            let found = match (&store.0, ef) {
                (VectorStore::Redis(r), Some(ef)) => r.nearest_ef(&context, q, ef).await,
                _ => store.0.nearest(&context, q).await,
            };
            let found = found.map_err(|e| anyhow::anyhow!("{label}, search: {e}"))?;
            latencies.push(t.elapsed().as_secs_f64() * 1e3);
            right += usize::from(found.is_some_and(|f| f.answer == key_of(exact)));
        }
        runs.push(StoreRun {
            store: match ef {
                Some(ef) => format!("{label} (EF_RUNTIME {ef})"),
                None => label.to_owned(),
            },
            vectors: n,
            inserts_per_s: n as f64 / load.as_secs_f64().max(1e-9),
            query_ms: Summary::of(latencies).unwrap_or_else(|| Summary::of([0.0]).expect("one value")),
            recall_at_1: right as f64 / data.queries.len() as f64,
            memory_bytes,
        });
    }
    Ok(runs)
}

/// The resident set of this process, from `/proc/self/statm` (Linux).
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn unit(v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.into_iter().map(|x| x / n).collect()
}

/// The answer key of the `i`th vector.
fn key_of(i: usize) -> CacheKey {
    let mut k = [0u8; 32];
    k[..8].copy_from_slice(&(i as u64).to_le_bytes());
    CacheKey(k)
}

/// `n` standard normal values.
fn gaussian(rng: &mut StdRng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.sample(StandardNormal)).collect()
}

/// The report for the terminal.
pub fn render(r: &VectorReport) -> String {
    let mut t = Table::new(&["store", "vectors", "inserts/s", "query p50", "query p99", "recall@1", "memory"], 1);
    for run in &r.runs {
        t.rows.push(vec![
            run.store.clone(),
            run.vectors.to_string(),
            format!("{:.0}", run.inserts_per_s),
            format!("{:.3} ms", run.query_ms.p50),
            format!("{:.3} ms", run.query_ms.p99),
            format!("{:.3}", run.recall_at_1),
            run.memory_bytes.map_or("n/a".into(), |b| format!("{:.1} MiB", b as f64 / 1048576.0)),
        ]);
    }
    let mut out = format!("\nVector stores, {} dimensions, {} queries near stored vectors:\n", r.dimensions, r.queries);
    out.push_str(&t.terminal("  "));
    for n in &r.not_measured {
        out.push_str(&format!("not measured: {n}\n"));
    }
    out
}

/// Query p99 against the number of vectors, one line per store.
fn chart(r: &VectorReport) -> String {
    use velollm_report::svg::{Axis, Style, XyChart, XySeries, xy_chart};
    let mut stores: Vec<&str> = Vec::new();
    for run in &r.runs {
        if !stores.contains(&run.store.as_str()) {
            stores.push(&run.store);
        }
    }
    let series = stores
        .iter()
        .enumerate()
        .map(|(i, s)| XySeries {
            name: format!("{s}, query p99"),
            colour: i,
            style: Style::LineMarkers,
            points: r.runs.iter().filter(|x| x.store == *s).map(|x| (x.vectors as f64, x.query_ms.p99)).collect(),
            legend: true,
        })
        .collect();
    xy_chart(&XyChart {
        title: "Vector stores: query latency against size".into(),
        notes: vec![format!("{} dimensions, {} queries near stored vectors", r.dimensions, r.queries)],
        x: Axis::new("vectors loaded").from_zero(),
        y: Axis::new("query p99 (ms)").from_zero(),
        series,
    })
}
