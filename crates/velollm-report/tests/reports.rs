//! Every exporter on a deterministic result document built here (no clock, no server): Markdown, HTML, both
//! CSVs and SVG charts as snapshots, plus layout checks (no overlapping text, nothing outside the canvas) on
//! every chart.

use std::collections::BTreeMap;
use velollm_core::aggregate::step::{
    ConnectionStats, CriterionStats, ErrorSummary, QualityStats, StepConfig, StepMetrics, StepResult, StepSamples,
};
use velollm_core::analysis::{AnalysisResult, Figure, Table, TableRow};
use velollm_core::document::result::{HostInfo, RunMeta, RunResult, RunStatus, TargetInfo};
use velollm_core::judge::threshold::{Unit, Verdict};
use velollm_core::measure::metrics::StepRates;
use velollm_core::measure::names::Better;
use velollm_core::measure::record::ErrorClass;
use velollm_core::stats::Summary;
use velollm_core::workload::load::{Bounds, LoadProfile};
use velollm_report::charts::{BeforeAfter, CandidateValue, MetricBars, before_after_bars, run_charts};
use velollm_report::csv::{records_csv, steps_csv};
use velollm_report::{Target, render_html, render_markdown};

/// A deterministic pseudo-random sequence in [0, 1).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Round to the microsecond, as the result document does.
fn us(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

struct StepSpec {
    name: &'static str,
    load: LoadProfile,
    max_tokens: u32,
    n: usize,
    turns: Option<u32>,
    errors: Vec<(ErrorClass, u64, &'static str)>,
}

/// A step whose samples follow TTFT = base + slope × prompt tokens, decode at a fixed speed, with noise; every
/// summary computed from the samples.
fn step(spec: StepSpec, rng: &mut Lcg, speed: f64) -> StepResult {
    let mut s = StepSamples::default();
    let mut end = 0.0;
    let workers = spec.load.workers().unwrap_or(1).max(1);
    for i in 0..spec.n {
        let prompt = 100 + (rng.next() * 1900.0) as u64;
        let output = u64::from(spec.max_tokens) - (rng.next() * 5.0) as u64;
        let turn = spec.turns.map(|t| (i as u32) % t);
        let network = if i < workers as usize { 0.4 + rng.next() * 0.3 } else { 0.0 };
        let queue = f64::from(workers - 1) * (0.5 + rng.next());
        let ttft = 20.0 * speed + 0.05 * prompt as f64 + f64::from(turn.unwrap_or(0)) * 4.0 + rng.next() * 15.0;
        let tpot = 8.0 / speed + rng.next();
        let e2e = ttft + tpot * (output - 1) as f64;
        end += e2e / 1000.0 / f64::from(workers);
        s.end_s.push(us(end));
        s.ttft_ms.push(Some(us(ttft)));
        s.e2e_ms.push(Some(us(e2e)));
        s.tpot_ms.push(Some(us(tpot)));
        s.queue_delay_ms.push(Some(us(queue)));
        s.network_overhead_ms.push(Some(us(network)));
        s.decode_tokens_per_s.push(Some(us(1000.0 / tpot)));
        s.tokens_per_s.push(Some(us(output as f64 / e2e * 1000.0)));
        s.prompt_tokens.push(Some(prompt));
        s.output_tokens.push(output);
        s.cached_tokens.push(None);
        s.turn.push(turn);
        s.server_prefill_ms.push(None);
        s.server_decode_ms.push(None);
    }
    let sum = |v: &[Option<f64>]| Summary::of(v.iter().flatten().copied());
    let metrics = StepMetrics {
        ttft_ms: sum(&s.ttft_ms),
        e2e_ms: sum(&s.e2e_ms),
        tpot_ms: sum(&s.tpot_ms),
        queue_delay_ms: sum(&s.queue_delay_ms),
        network_overhead_ms: sum(&s.network_overhead_ms),
        decode_tokens_per_s: sum(&s.decode_tokens_per_s),
        tokens_per_s: sum(&s.tokens_per_s),
        output_tokens: Summary::of(s.output_tokens.iter().map(|&x| x as f64)),
        prompt_tokens: Summary::of(s.prompt_tokens.iter().flatten().map(|&x| x as f64)),
        ..StepMetrics::default()
    };
    let failed: u64 = spec.errors.iter().map(|e| e.1).sum();
    let succeeded = spec.n as u64;
    let requests = succeeded + failed;
    let duration = end.max(0.001);
    let out_tokens: u64 = s.output_tokens.iter().sum();
    StepResult {
        name: spec.name.into(),
        config: StepConfig {
            prompt: "Write a hello world program in Python".into(),
            prompt_tokens: None,
            max_tokens: spec.max_tokens,
            exact_output: false,
            load: spec.load,
            bounds: Bounds { requests: Some(requests), ..Bounds::default() },
            turns: spec.turns,
            tags: BTreeMap::new(),
        },
        requests,
        succeeded,
        failed,
        success_rate: succeeded as f64 / requests as f64,
        warmup_requests: 0,
        partial: false,
        metrics,
        rates: StepRates {
            duration_s: us(duration),
            request_throughput: us(succeeded as f64 / duration),
            output_token_throughput: us(out_tokens as f64 / duration),
            total_token_throughput: us(out_tokens as f64 * 3.0 / duration),
            goodput: None,
            good_fraction: None,
        },
        errors: spec.errors.iter().map(|(c, n, m)| (*c, ErrorSummary { count: *n, example: (*m).into() })).collect(),
        token_sources: BTreeMap::from([("server_usage".to_string(), succeeded)]),
        connections: ConnectionStats { opened: u64::from(workers), reused: succeeded - u64::from(workers) },
        quality: None,
        samples: s,
        server_metrics: None,
        drafts: None,
        proxy_cache: None,
        proxy_hedge: None,
        sessions: None,
        cost: None,
    }
}

/// A complete run of four steps (sequential, conversation, two concurrency levels), with analyses and
/// thresholds.
fn run(model: &str, url: &str, speed: f64, seed: u64) -> RunResult {
    let mut rng = Lcg(seed);
    let steps = vec![
        step(
            StepSpec {
                name: "short_completion",
                load: LoadProfile::Sequential,
                max_tokens: 50,
                n: 30,
                turns: None,
                errors: vec![],
            },
            &mut rng,
            speed,
        ),
        step(
            StepSpec {
                name: "conversation",
                load: LoadProfile::Sequential,
                max_tokens: 100,
                n: 24,
                turns: Some(6),
                errors: vec![],
            },
            &mut rng,
            speed,
        ),
        step(
            StepSpec {
                name: "concurrency_4",
                load: LoadProfile::Concurrency { concurrency: 4 },
                max_tokens: 150,
                n: 40,
                turns: None,
                errors: vec![(ErrorClass::Timeout, 1, "no first token within 30 s")],
            },
            &mut rng,
            speed,
        ),
        step(
            StepSpec {
                name: "concurrency_16_with_a_long_name",
                load: LoadProfile::Concurrency { concurrency: 16 },
                max_tokens: 200,
                n: 60,
                turns: None,
                errors: vec![
                    (ErrorClass::Http5xx, 3, "HTTP 503: {\"error\": \"server busy, retry later\"}"),
                    (ErrorClass::StreamBroken, 1, "stream ended before [DONE] | <eof>"),
                ],
            },
            &mut rng,
            speed,
        ),
    ];
    let fig = |name: &str, value: f64, unit: Unit, label: &str| Figure {
        name: name.into(),
        value,
        unit,
        label: label.into(),
    };
    RunResult {
        schema_version: "1.1".into(),
        status: RunStatus::Complete,
        status_reason: None,
        meta: RunMeta {
            tool: "velollm".into(),
            tool_version: "0.1.0".into(),
            run_id: format!("20260102T030405Z-{seed:08x}"),
            command: vec!["velollm".into(), "bench".into()],
            started_at: "2026-01-02T03:04:05.123456Z".into(),
            finished_at: Some("2026-01-02T03:06:07.654321Z".into()),
            target: TargetInfo {
                url: url.into(),
                dialect: "openai-chat".into(),
                dialect_reason: "auto".into(),
                model: model.into(),
                server: Some("llama.cpp".into()),
                server_version: Some("b6000".into()),
            },
            host: HostInfo {
                hostname: "bench-host".into(),
                os: "Linux (Debian GNU/Linux 12)".into(),
                kernel: "6.1.0".into(),
                cpu: "AMD EPYC 7B13".into(),
                cpu_cores: 16,
                memory_bytes: 64 << 30,
            },
            scenario: "report-demo".into(),
            seed: 42,
            slo: None,
            token_policy: "server usage".into(),
            tokenizer: None,
            hardware: None,
            chunk_stamps: None,
        },
        benchmarks: vec![],
        analyses: vec![
            AnalysisResult {
                kind: "fit".into(),
                title: "ttft against prompt_tokens".into(),
                figures: vec![
                    fig("slope", 0.05, Unit::Plain, "ms of ttft per prompt_tokens token"),
                    fig("intercept_ms", 27.5, Unit::Ms, "ttft at 0 tokens (fixed overhead)"),
                    fig("r2", 0.981, Unit::Plain, "R² of the fit"),
                ],
                table: None,
                notes: vec!["ttft ≈ 27.5 ms + 0.050 ms × prompt_tokens (R² 0.981, 154 requests)".into()],
            },
            AnalysisResult {
                kind: "turns".into(),
                title: "conversation: TTFT per turn (6 turns, 4 conversations)".into(),
                figures: vec![fig("degradation", 31.2, Unit::Percent, "TTFT of the last third vs the first third")],
                table: Some(Table {
                    columns: vec!["turn".into(), "TTFT ms (mean)".into(), "tok/s".into()],
                    rows: vec![
                        TableRow { label: "turn 1".into(), values: vec![Some(70.5), Some(101.2)] },
                        TableRow { label: "turn 2".into(), values: vec![Some(74.1), None] },
                        TableRow {
                            label: "conversation 1 thirds".into(),
                            values: vec![Some(70.0), Some(80.0), Some(91.0)],
                        },
                    ],
                }),
                notes: vec![],
            },
        ],
        verdicts: vec![
            Verdict {
                scope: "short_completion".into(),
                threshold: "ttft.p95 < 2s".into(),
                value: Some(130.25),
                unit: Unit::Ms,
                passed: true,
                detail: String::new(),
            },
            Verdict {
                scope: "concurrency_16_with_a_long_name".into(),
                threshold: "success_rate > 0.95".into(),
                value: Some(60.0 / 64.0),
                unit: Unit::Fraction,
                passed: false,
                detail: String::new(),
            },
            Verdict {
                scope: "run".into(),
                threshold: "cache_hit_rate > 50%".into(),
                value: None,
                unit: Unit::Plain,
                passed: false,
                detail: "'cache_hit_rate' was not measured here".into(),
            },
        ],
        server: None,
        selfcheck: None,
        trust: None,
        steps,
    }
}

fn baseline() -> RunResult {
    run("llama-3.1-8b-instruct-q4_k_m", "http://gpu-box:8080", 1.0, 7)
}

fn candidate() -> RunResult {
    let mut r = run("llama-3.1-8b-instruct-q4_k_m", "http://gpu-box:8081", 0.7, 11);
    r.status = RunStatus::Interrupted;
    r.status_reason = Some("interrupted by Ctrl-C".into());
    r.steps[3].partial = true;
    r.verdicts.clear();
    r
}

/// A text element's box, from the SVG source: (x0, y0, x1, y1, text).
fn text_boxes(svg: &str) -> Vec<(f64, f64, f64, f64, String)> {
    let attr = |tag: &str, name: &str| -> Option<String> {
        let key = format!(" {name}=\"");
        let i = tag.find(&key)? + key.len();
        Some(tag[i..].split('"').next()?.to_string())
    };
    let mut boxes = Vec::new();
    let mut rest = svg;
    while let Some(i) = rest.find("<text ") {
        let tail = &rest[i..];
        let close = tail.find('>').unwrap();
        let tag = &tail[..close];
        let end = tail.find("</text>").unwrap();
        let content = tail[close + 1..end]
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
            .replace("&quot;", "\"")
            .replace("&#39;", "'");
        rest = &tail[end..];
        if tag.contains("transform=") {
            continue; // rotated axis labels sit alone in the left margin
        }
        let x: f64 = attr(tag, "x").unwrap().parse().unwrap();
        let y: f64 = attr(tag, "y").unwrap().parse().unwrap();
        let size: f64 = attr(tag, "font-size").unwrap().parse().unwrap();
        let w = content.chars().count() as f64 * 0.6 * size;
        let x0 = match attr(tag, "text-anchor").as_deref() {
            Some("middle") => x - w / 2.0,
            Some("end") => x - w,
            _ => x,
        };
        boxes.push((x0, y - 0.8 * size, x0 + w, y + 0.2 * size, content));
    }
    boxes
}

/// No two texts overlap and every text lies inside the canvas.
fn assert_readable(name: &str, svg: &str) {
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""), "{name}");
    assert!(svg.contains("role=\"img\"") && svg.contains("<title>"), "{name}");
    let view: Vec<f64> = svg
        .split("viewBox=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .split(' ')
        .map(|v| v.parse().unwrap())
        .collect();
    let boxes = text_boxes(svg);
    assert!(!boxes.is_empty(), "{name}: no text");
    for (i, a) in boxes.iter().enumerate() {
        assert!(
            a.0 >= -0.5 && a.2 <= view[2] + 0.5 && a.1 >= -0.5 && a.3 <= view[3] + 0.5,
            "{name}: {a:?} is outside the canvas"
        );
        for b in &boxes[i + 1..] {
            let overlap = a.0 < b.2 - 0.5 && b.0 < a.2 - 0.5 && a.1 < b.3 - 0.5 && b.1 < a.3 - 0.5;
            assert!(!overlap, "{name}: texts overlap: {a:?} and {b:?}");
        }
    }
}

fn before_after() -> BeforeAfter {
    BeforeAfter {
        title: "short_completion: before and after".into(),
        notes: vec!["error bars: 95 % bootstrap confidence interval of the candidate".into()],
        baseline: "baseline.json".into(),
        candidates: vec!["prefix-cache.json".into(), "speculative-decoding-with-a-long-label.json".into()],
        metrics: vec![
            MetricBars {
                label: "TTFT p95".into(),
                unit: "ms".into(),
                better: Better::Lower,
                baseline: 412.3,
                baseline_ci: Some((398.0, 430.1)),
                candidates: vec![
                    Some(CandidateValue { value: 250.7, ci: Some((240.2, 262.0)) }),
                    Some(CandidateValue { value: 405.0, ci: Some((380.0, 441.5)) }),
                ],
            },
            MetricBars {
                label: "E2E mean".into(),
                unit: "ms".into(),
                better: Better::Lower,
                baseline: 2310.0,
                baseline_ci: None,
                candidates: vec![Some(CandidateValue { value: 2105.5, ci: Some((2050.0, 2160.0)) }), None],
            },
            MetricBars {
                label: "decode speed".into(),
                unit: "tok/s".into(),
                better: Better::Higher,
                baseline: 61.2,
                baseline_ci: None,
                candidates: vec![
                    Some(CandidateValue { value: 60.8, ci: None }),
                    Some(CandidateValue { value: 95.1, ci: Some((90.3, 99.9)) }),
                ],
            },
            MetricBars {
                label: "success rate".into(),
                unit: "%".into(),
                better: Better::Higher,
                baseline: 100.0,
                baseline_ci: None,
                candidates: vec![Some(CandidateValue { value: 98.5, ci: None })],
            },
        ],
    }
}

#[test]
fn markdown_report() {
    let r = baseline();
    let md = render_markdown(&[Target { label: "baseline", run: &r }], "report");
    let files: Vec<&str> = md.charts.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        files,
        [
            "report-ttft-histogram.svg",
            "report-ttft-cdf.svg",
            "report-e2e-histogram.svg",
            "report-e2e-cdf.svg",
            "report-time-split.svg",
            "report-ttft-per-turn.svg",
            "report-e2e-per-turn.svg",
            "report-decode-speed-per-turn.svg",
            "report-e2e-by-context.svg",
            "report-decode-speed-by-context.svg",
            "report-ttft-vs-prompt-tokens.svg",
            "report-e2e-vs-max-tokens.svg",
            "report-throughput-tokens.svg",
            "report-throughput-requests.svg",
        ]
    );
    for f in &files {
        assert!(md.text.contains(&format!("]({f})")), "{f} is not referenced");
    }
    insta::assert_snapshot!("markdown", md.text);
}

#[test]
fn html_report() {
    let r = baseline();
    let html = render_html(&[Target { label: "baseline", run: &r }]);
    assert_eq!(html.matches("<svg xmlns").count(), 14);
    for banned in ["src=", "href=", "@import", "url(", "<link", "<img", "<iframe", "fetch(", "XMLHttpRequest"] {
        assert!(!html.contains(banned), "the HTML must not load anything: found {banned}");
    }
    assert!(html.contains("prefers-color-scheme: dark"));
    assert!(html.contains("document.body.dataset.charts") && html.contains("window.onerror"));
    insta::assert_snapshot!("html", html);
}

#[test]
fn csv_exports() {
    let r = baseline();
    let t = [Target { label: "baseline", run: &r }];
    let steps = steps_csv(&t);
    let records = records_csv(&t);
    assert!(steps.ends_with("\r\n") && !steps.replace("\r\n", "").contains('\n'), "CRLF line ends");
    assert_eq!(steps.lines().count(), 5);
    assert_eq!(records.lines().count(), 1 + 30 + 24 + 40 + 60);
    let width = |l: &str| l.split(',').count();
    let head = records.lines().next().unwrap();
    assert!(records.lines().all(|l| width(l) == width(head)), "every row has every column");
    insta::assert_snapshot!("steps_csv", steps);
    insta::assert_snapshot!("records_csv", records);
}

#[test]
fn several_targets_overlay_and_are_labelled() {
    let (a, b) = (baseline(), candidate());
    let t = [Target { label: "before", run: &a }, Target { label: "after", run: &b }];
    let charts = run_charts(&t);
    let cdf = charts.iter().find(|c| c.id == "ttft-cdf").unwrap();
    assert!(cdf.svg.contains(">before</text>") && cdf.svg.contains(">after</text>"));
    insta::assert_snapshot!("ttft_cdf_two_targets", cdf.svg);
    let split = charts.iter().find(|c| c.id == "time-split").unwrap();
    assert_eq!(split.svg.matches("\">before · ").count(), 4, "one row per target and step");
    assert_eq!(split.svg.matches("\">after · ").count(), 4, "one row per target and step");
    let md = render_markdown(&t, "r").text;
    assert!(md.contains("⚠️ Interrupted run: interrupted by Ctrl-C"), "{md}");
    assert!(
        md.contains("concurrency\\_16\\_with\\_a\\_long\\_name (partial)")
            || md.contains("concurrency_16_with_a_long_name (partial)")
    );
    let steps = steps_csv(&t);
    assert!(steps.starts_with("target,step,"));
    assert_eq!(steps.lines().count(), 9);
    for c in &charts {
        assert_readable(&c.id, &c.svg);
    }
}

#[test]
fn charts_are_readable() {
    let r = baseline();
    let charts = run_charts(&[Target { label: "baseline", run: &r }]);
    assert_eq!(charts.len(), 14);
    for c in &charts {
        assert_readable(&c.id, &c.svg);
        assert!(!c.svg.contains("NaN") && !c.svg.contains("inf"), "{}", c.id);
    }
    let svg = |id: &str| charts.iter().find(|c| c.id == id).unwrap().svg.clone();
    for (id, labels) in [
        ("ttft-histogram", ["TTFT (ms)", "requests"]),
        ("ttft-cdf", ["TTFT (ms)", "cumulative share"]),
        ("time-split", ["mean time per request (ms)", "decode (E2E − TTFT)"]),
        ("ttft-vs-prompt-tokens", ["prompt length (tokens)", "TTFT (ms)"]),
        ("throughput-tokens", ["concurrency (requests in flight)", "output throughput (tok/s)"]),
        ("e2e-per-turn", ["turn", "E2E latency (ms)"]),
        ("decode-speed-by-context", ["prompt tokens (up to)", "decode speed (tok/s)"]),
    ] {
        for l in labels {
            assert!(svg(id).contains(&format!(">{l}</text>")), "{id} lacks the label {l}");
        }
    }
    insta::assert_snapshot!("time_split_svg", svg("time-split"));
    insta::assert_snapshot!("ttft_vs_prompt_svg", svg("ttft-vs-prompt-tokens"));
    insta::assert_snapshot!("e2e_by_context_svg", svg("e2e-by-context"));
}

#[test]
fn before_after_bars_have_error_bars_and_changes() {
    let svg = before_after_bars(&before_after());
    assert_readable("before-after", &svg);
    assert!(svg.contains("250.7 (-39.2%)"), "value and change above the bar");
    assert!(svg.contains("lower is better") && svg.contains("higher is better"));
    assert_eq!(svg.matches("<path d=\"M").count(), 5, "one error bar per interval given");
    insta::assert_snapshot!("before_after_svg", svg);
}

#[test]
fn hostile_text_is_escaped_everywhere() {
    let mut r = baseline();
    r.steps[0].name = "<script>alert(1)</script> & \"quotes\" | pipes".into();
    r.meta.target.model = "m<odel>".into();
    let t = [Target { label: "a<b>", run: &r }];
    let html = render_html(&t);
    assert!(!html.contains("<script>alert"), "step names are escaped in HTML");
    let md = render_markdown(&t, "r");
    assert!(!md.text.contains("<script>") && md.text.contains("\\| pipes"));
    for (name, svg) in &md.charts {
        assert!(!svg.contains("<script>") && !svg.contains("m<odel>"), "{name}");
    }
    let csv = steps_csv(&t);
    assert!(csv.contains("\"<script>alert(1)</script> & \"\"quotes\"\" | pipes\""));
}

#[test]
fn schema_1_0_results_without_samples_still_render() {
    let mut r = baseline();
    r.schema_version = "1.0".into();
    for s in &mut r.steps {
        s.samples = StepSamples::default();
    }
    let t = [Target { label: "old", run: &r }];
    let ids: Vec<String> = run_charts(&t).into_iter().map(|c| c.id).collect();
    assert_eq!(ids, ["time-split", "e2e-vs-max-tokens", "throughput-tokens", "throughput-requests"]);
    assert_eq!(records_csv(&t).lines().count(), 1, "header only");
    assert!(render_html(&t).contains("short_completion"));
}

#[test]
fn an_empty_partial_run_renders_without_charts() {
    let mut r = baseline();
    r.steps.clear();
    r.analyses.clear();
    r.verdicts.clear();
    r.status = RunStatus::Partial;
    let t = [Target { label: "empty", run: &r }];
    assert!(run_charts(&t).is_empty());
    let md = render_markdown(&t, "r").text;
    assert!(md.contains("Partial run: the run was still in progress or was killed"), "{md}");
    assert!(render_html(&t).contains("Partial run"));
    assert_eq!(steps_csv(&t).lines().count(), 1);
}

#[test]
fn quality_and_goodput_appear_in_step_details() {
    let mut r = baseline();
    r.steps[0].quality = Some(QualityStats {
        score: 0.75,
        first_try_rate: 0.5,
        corrections: 2,
        criteria: vec![
            CriterionStats { name: "compiles".into(), passed: 4, total: 4, example: String::new() },
            CriterionStats { name: "tests pass".into(), passed: 2, total: 4, example: "1 test failed".into() },
        ],
    });
    r.steps[0].rates.goodput = Some(12.5);
    r.steps[0].rates.good_fraction = Some(0.9);
    let t = [Target { label: "q", run: &r }];
    let md = render_markdown(&t, "r").text;
    assert!(md.contains("quality: score 75.0%, first try 50.0%, 2 corrections"), "{md}");
    assert!(md.contains("❌ tests pass: 2/4 (1 test failed)"));
    assert!(md.contains("goodput: 12.50 req/s (90.0% of requests within the SLO)"));
    assert!(steps_csv(&t).lines().next().unwrap().contains(",goodput,good_fraction,"));
}

#[test]
fn grouped_bars_label_their_groups() {
    use velollm_report::svg::{Bar, BarGroup, BarPanel, BarPanels, bar_panels};
    let bar = |v: f64| Some(Bar { value: v, ci: Some((v * 0.9, v * 1.1)), labels: vec![format!("{v:.0}")] });
    let groups = ["short_completion", "medium_completion_with_a_long_name", "code_generation"]
        .iter()
        .enumerate()
        .map(|(i, g)| BarGroup { label: g.to_string(), bars: vec![bar(100.0 + i as f64 * 50.0), bar(80.0), None] })
        .collect();
    let svg = bar_panels(&BarPanels {
        title: "TTFT p95 per step".into(),
        notes: vec![],
        series: vec!["a.json".into(), "b.json".into(), "c.json".into()],
        panels: vec![BarPanel {
            title: "TTFT p95".into(),
            subtitle: String::new(),
            y_label: "TTFT (ms)".into(),
            groups,
        }],
    });
    assert_readable("grouped", &svg);
    assert!(svg.contains(">short_completion</text>") && svg.contains("medium_comp"));
    assert_eq!(svg.matches("<rect x=").count(), 1 + 6 + 3, "background, six bars, three legend swatches");
}

/// The comparison of the two fixture runs, with a gate and a criteria preset: deterministic (seeded bootstrap).
fn comparison() -> (
    Vec<velollm_core::document::compare::Comparison>,
    Vec<velollm_core::judge::gate::GateOutcome>,
    Vec<velollm_core::document::criteria::CriterionOutcome>,
) {
    let (a, b) = (baseline(), candidate());
    let c = velollm_core::document::compare::compare(&a, &b, ("baseline.json", "candidate.json"), &Default::default());
    let gate: velollm_core::judge::gate::Gate = "ttft.p95 > +10%".parse().unwrap();
    let gates = velollm_core::document::compare::match_steps(&a, &b)
        .0
        .iter()
        .map(|(x, y)| gate.evaluate(&y.name, x, y))
        .collect();
    let criteria = velollm_core::document::criteria::evaluate("prompt-caching", &a, &b, 0.05).unwrap();
    (vec![c], gates, criteria)
}

#[test]
fn comparison_exports() {
    use velollm_report::compare_report::{ComparisonReport, render_comparison_html, render_comparison_markdown};
    use velollm_report::comparison::{render_comparison, render_criteria, render_gates};
    let (c, gates, criteria) = comparison();
    let terminal = format!("{}\n{}\n{}", render_comparison(&c[0]), render_gates(&gates), render_criteria(&criteria));
    insta::assert_snapshot!("comparison_terminal", terminal);
    let report = ComparisonReport { comparisons: &c, gates: &gates, criteria: &criteria };
    let md = render_comparison_markdown(&report, "cmp");
    assert!(
        !md.charts.is_empty()
            && md.charts.iter().all(|(f, svg)| f.starts_with("cmp-before-after-") && svg.starts_with("<svg"))
    );
    for (name, svg) in &md.charts {
        assert_readable(name, svg);
    }
    insta::assert_snapshot!("comparison_markdown", md.text);
    let html = render_comparison_html(&report);
    for banned in ["src=", "href=", "@import", "url(", "<link", "<img", "<iframe", "fetch("] {
        assert!(!html.contains(banned), "the HTML must not load anything: found {banned}");
    }
    insta::assert_snapshot!("comparison_html", html);
}

// ---------------------------------------------------------------------------------------------------------
// The second fixture: a run whose server velollm launched, sampled and scraped (schema 1.2).
// ---------------------------------------------------------------------------------------------------------

/// A llama.cpp `/metrics` page with the given counters and gauges (names as in the real capture,
/// `velollm-core/testdata/prometheus/llamacpp.txt`, plus the older builds' KV-cache ratio).
#[allow(clippy::too_many_arguments)]
fn llamacpp_scrape(
    prompt: u64,
    cached: u64,
    predicted: u64,
    drafts: u64,
    draft_tokens: u64,
    accepted: u64,
    kv: f64,
    deferred: u64,
    processing: u64,
) -> velollm_core::measure::prom::Scrape {
    let counters = [
        ("llamacpp:prompt_tokens_total", prompt as f64),
        ("llamacpp:prompt_tokens_cached_total", cached as f64),
        ("llamacpp:tokens_predicted_total", predicted as f64),
        ("llamacpp:prompt_seconds_total", prompt as f64 / 2000.0),
        ("llamacpp:tokens_predicted_seconds_total", predicted as f64 / 120.0),
        ("llamacpp:spec_decode_num_drafts_total", drafts as f64),
        ("llamacpp:spec_decode_num_draft_tokens_total", draft_tokens as f64),
        ("llamacpp:spec_decode_num_accepted_tokens_total", accepted as f64),
    ];
    let gauges = [
        ("llamacpp:kv_cache_usage_ratio", kv),
        ("llamacpp:requests_deferred", deferred as f64),
        ("llamacpp:requests_processing", processing as f64),
    ];
    let mut text = String::new();
    for (name, v) in counters {
        text.push_str(&format!("# TYPE {name} counter\n{name} {v}\n"));
    }
    for (name, v) in gauges {
        text.push_str(&format!("# TYPE {name} gauge\n{name} {v}\n"));
    }
    velollm_core::measure::prom::parse(&text).unwrap()
}

/// Resource samples every ⅓ s from the spawn: the model loads (RSS and GPU memory climb), the cold first
/// request (sent at 1.9 s, done at 2.2 s) adds 12 MB, each completed request a little more; the sampler
/// stops when the server dies at 20.2 s. Summarised by `velollm_core::server::resources::summarise`.
fn server_resources(completions: &[f64]) -> velollm_core::server::resources::ResourceReport {
    use velollm_core::server::resources::{GpuSample, ResourceSample, summarise};
    const MB: f64 = 1e6;
    let mut rng = Lcg(99);
    let samples: Vec<ResourceSample> = (1..=60)
        .map(|k| {
            let t = us(f64::from(k) / 3.0);
            let loading = t < 1.84;
            let done = completions.iter().filter(|c| **c <= t).count() as f64;
            let rss = if loading {
                40.0 * MB + 340.0 * MB * (t / 1.84)
            } else {
                380.0 * MB + if t >= 2.2 { 12.0 * MB } else { 0.0 } + 0.15 * MB * done + rng.next() * 0.3 * MB
            };
            let cpu = if loading { 120.0 + rng.next() * 70.0 } else { 85.0 + rng.next() * 15.0 };
            let used = if loading { 0.5e9 + 19.9e9 * (t / 1.84) } else { 20.4e9 + done * 2.0e6 };
            let util = if loading {
                Some(0.0)
            } else if k == 40 {
                None // the driver said [N/A]
            } else {
                Some((60.0 + rng.next() * 35.0).round())
            };
            ResourceSample {
                t_s: t,
                rss_bytes: rss as u64,
                cpu_percent: us(cpu),
                processes: 1,
                gpu: vec![GpuSample {
                    index: 0,
                    utilization_percent: util,
                    memory_used_bytes: Some(used as u64),
                    memory_total_bytes: Some(81_920 * 1024 * 1024),
                }],
            }
        })
        .collect();
    let mut r = summarise(&samples, us(1.0 / 3.0), Some((1.9, 2.2)), completions);
    r.notes.push("the server process (pid 41017) was gone at 20.3 s: resource sampling stopped".into());
    r
}

/// The fixture run with a full server section: launch, cold start, resources with a GPU, metrics on two steps
/// (the second with a counter reset), whole-run metrics, and events (an outage, a death and a relaunch).
fn server_run() -> RunResult {
    use velollm_core::measure::prom::step_metrics;
    use velollm_core::server::hardware::{CpuInfo, GpuInfo, GpuVendor, Hardware, MemoryInfo};
    use velollm_core::server::launch::{ColdStart, LaunchReport, ServerEvent, ServerEventKind, ServerReport};
    let mut r = run("qwen2.5-7b-instruct-q4_k_m", "http://127.0.0.1:18080", 1.0, 23);
    r.schema_version = "1.2".into();
    r.steps = vec![r.steps[0].clone(), r.steps[2].clone()];
    for s in &mut r.steps {
        s.samples = StepSamples::default();
    }
    r.analyses.clear();
    r.verdicts.clear();
    r.meta.hardware = Some(Hardware {
        os: "linux".into(),
        os_version: Some("Linux 12 Debian GNU/Linux".into()),
        kernel: Some("6.1.0".into()),
        arch: "x86_64".into(),
        cpu: CpuInfo {
            model: Some("AMD EPYC 7B13".into()),
            cores: Some(16),
            threads: 32,
            frequency_mhz: None,
            max_frequency_mhz: None,
        },
        memory: MemoryInfo { total_bytes: 64 << 30, available_bytes: Some(50 << 30) },
        gpus: vec![GpuInfo {
            vendor: GpuVendor::Nvidia,
            name: "NVIDIA H100 80GB HBM3".into(),
            memory_bytes: Some(81_920 << 20),
            driver: Some("550.54.15".into()),
            unified_memory: false,
            source: "nvidia-smi".into(),
        }],
    });

    // Server metrics: step 1 plain; step 2 sees the server die and come back (counters back down).
    let s0_before = llamacpp_scrape(31, 0, 50, 0, 0, 0, 0.01, 0, 0);
    let s0_during = llamacpp_scrape(500, 400, 800, 150, 600, 430, 0.12, 0, 1);
    let s0_after = llamacpp_scrape(961, 820, 1550, 300, 1200, 860, 0.02, 0, 0);
    let s1_during = llamacpp_scrape(2000, 1900, 3500, 700, 2800, 2000, 0.35, 3, 4);
    let s1_restarted = llamacpp_scrape(120, 90, 200, 40, 160, 110, 0.05, 0, 4);
    let s1_after = llamacpp_scrape(900, 700, 1500, 300, 1200, 850, 0.08, 1, 2);
    r.steps[0].server_metrics = Some(step_metrics(&s0_before, &s0_after, &[s0_during]));
    r.steps[1].server_metrics = Some(step_metrics(&s0_after, &s1_after, &[s1_during, s1_restarted]));
    assert!(r.steps[1].server_metrics.as_ref().unwrap().counter_reset);

    // Completions on the run clock: step 1 from 2.6 s, step 2 from 8.6 s until the death at 20.2 s.
    let completions: Vec<f64> =
        (0..30).map(|i| us(2.6 + 0.18 * f64::from(i))).chain((0..40).map(|i| us(8.6 + 0.285 * f64::from(i)))).collect();
    let template = "llama-server -m /models/qwen2.5-7b-instruct-q4_k_m.gguf --port {port} -ngl 99 --metrics";
    r.server = Some(ServerReport {
        launch: Some(LaunchReport {
            template: template.into(),
            command: template.replace("{port}", "18080"),
            port: 18080,
            log: "/tmp/velollm-server-18080.log".into(),
            ready_route: "/health".into(),
            spawned_at: "2026-01-02T03:04:03.100000Z".into(),
            restarts: 1,
            stop: Some("exit status: 0 after 0.4 s".into()),
        }),
        cold_start: Some(ColdStart {
            spawn_to_listen_ms: Some(520.4),
            spawn_to_ready_ms: 1840.2,
            spawn_to_first_token_ms: Some(2162.0),
            first_ttft_ms: Some(262.0),
            first_e2e_ms: Some(310.5),
            first_output_tokens: Some(50),
            first_error: None,
        }),
        resources: Some(server_resources(&completions)),
        metrics_url: Some("http://127.0.0.1:18080/metrics".into()),
        metrics: Some(step_metrics(&s0_before, &s1_after, &[])),
        events: vec![
            ServerEvent {
                t_s: 12.03,
                kind: ServerEventKind::Down,
                step: Some("concurrency_4".into()),
                detail: "/health answered 503 {\"error\":{\"code\":503,\"message\":\"Loading model\"}}".into(),
                gap_s: None,
            },
            ServerEvent {
                t_s: 12.61,
                kind: ServerEventKind::Up,
                step: Some("concurrency_4".into()),
                detail: String::new(),
                gap_s: Some(0.58),
            },
            ServerEvent {
                t_s: 20.21,
                kind: ServerEventKind::Exited,
                step: Some("concurrency_4".into()),
                detail: "exit status: 134; last lines of /tmp/velollm-server-18080.log:\n\
                         llama_decode: failed to decode, ret = -3\nAborted (core dumped)"
                    .into(),
                gap_s: None,
            },
            ServerEvent {
                t_s: 23.43,
                kind: ServerEventKind::Relaunched,
                step: Some("concurrency_4".into()),
                detail: "ready via /health".into(),
                gap_s: Some(3.22),
            },
        ],
    });
    r
}

#[test]
fn server_section_in_the_terminal() {
    let r = server_run();
    let text = velollm_report::render_run(&r);
    assert!(text.contains("hardware: 16-core/32-thread AMD EPYC 7B13"), "{text}");
    assert!(text.contains("the server restarted during the step; deltas counted from 0"));
    assert!(text.contains("first request TTFT 262.0 ms vs warm p50"));
    assert!(!text.contains("Aborted (core dumped)"), "only the first line of an event's details");
    insta::assert_snapshot!("server_terminal", text);
    // Without the server section, the run renders as before: no server line at all.
    let mut plain = r.clone();
    plain.server = None;
    plain.meta.hardware = None;
    for s in &mut plain.steps {
        s.server_metrics = None;
    }
    let text = velollm_report::render_run(&plain);
    assert!(!text.contains("server /metrics") && !text.contains("\nserver\n") && !text.contains("hardware"));
}

#[test]
fn server_section_in_markdown() {
    let r = server_run();
    let md = render_markdown(&[Target { label: "launched", run: &r }], "report");
    let files: Vec<&str> = md.charts.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        files,
        [
            "report-time-split.svg",
            "report-e2e-vs-max-tokens.svg",
            "report-throughput-tokens.svg",
            "report-throughput-requests.svg",
            "report-server-resources.svg",
            "report-server-gpu.svg",
        ]
    );
    for f in &files {
        assert!(md.text.contains(&format!("]({f})")), "{f} is not referenced");
    }
    // The server charts sit in the server section, after the general charts.
    let server_at = md.text.find("## Server").unwrap();
    assert!(md.text.find("(report-server-resources.svg)").unwrap() > server_at);
    assert!(md.text.find("(report-throughput-requests.svg)").unwrap() < server_at);
    insta::assert_snapshot!("server_markdown", md.text);
}

#[test]
fn server_section_in_html() {
    let r = server_run();
    let html = render_html(&[Target { label: "launched", run: &r }]);
    assert_eq!(html.matches("<svg xmlns").count(), 6);
    for banned in ["src=", "href=", "@import", "url(", "<link", "<img", "<iframe", "fetch(", "XMLHttpRequest"] {
        assert!(!html.contains(banned), "the HTML must not load anything: found {banned}");
    }
    assert!(html.contains("<h2>Server</h2>") && html.contains("<h3>Server metrics per step</h3>"));
    insta::assert_snapshot!("server_html", html);
}

#[test]
fn server_charts_are_readable() {
    let r = server_run();
    let charts = run_charts(&[Target { label: "launched", run: &r }]);
    let svg = |id: &str| charts.iter().find(|c| c.id == id).unwrap().svg.clone();
    for id in ["server-resources", "server-gpu"] {
        let s = svg(id);
        assert_readable(id, &s);
        assert!(!s.contains("NaN") && !s.contains("inf"), "{id}");
        assert_eq!(s.matches("stroke-dasharray=\"4 3\"><title>").count(), 4, "{id}: one marker per event");
    }
    for l in ["RSS (MB)", "CPU (%)", "time since the server was spawned (s)", "exited", "relaunched"] {
        assert!(svg("server-resources").contains(&format!(">{l}</text>")), "server-resources lacks {l}");
    }
    for l in ["GPU memory used (GB)", "GPU utilisation (%)", "GPU 0"] {
        assert!(svg("server-gpu").contains(&format!(">{l}</text>")), "server-gpu lacks {l}");
    }
    insta::assert_snapshot!("server_resources_svg", svg("server-resources"));
    insta::assert_snapshot!("server_gpu_svg", svg("server-gpu"));
    // Several targets: each run keeps its own server charts, numbered by position.
    let plain = baseline();
    let t = [Target { label: "plain", run: &plain }, Target { label: "launched", run: &r }];
    let ids: Vec<String> = run_charts(&t).into_iter().map(|c| c.id).filter(|i| i.starts_with("server-")).collect();
    assert_eq!(ids, ["server-resources-2", "server-gpu-2"]);
    let md = render_markdown(&t, "r").text;
    let launched = md.find("## launched").unwrap();
    assert!(md.find("(r-server-resources-2.svg)").unwrap() > launched);
}

#[test]
fn step_server_metrics_alone_make_a_server_section() {
    // A server velollm did not launch but whose /metrics it scraped.
    let mut r = server_run();
    r.server = None;
    let md = render_markdown(&[Target { label: "x", run: &r }], "r").text;
    assert!(md.contains("## Server") && md.contains("- **metrics:** llama.cpp"), "{md}");
    assert!(!md.contains("Cold start") && !md.contains("whole run"));
}

#[test]
fn hostile_server_text_is_escaped() {
    let mut r = server_run();
    let s = r.server.as_mut().unwrap();
    s.launch.as_mut().unwrap().command = "<script>alert(1)</script> | x".into();
    s.events[2].detail = "exit <b>1</b>\nmore".into();
    let t = [Target { label: "x", run: &r }];
    let html = render_html(&t);
    assert!(!html.contains("<script>alert") && !html.contains("<b>1</b>"));
    let md = render_markdown(&t, "r");
    assert!(!md.text.contains("<script>") && md.text.contains("\\| x"));
    assert!(md.charts.iter().all(|(_, svg)| !svg.contains("<b>1</b>")));
}

#[test]
fn an_agent_replay_charts_its_prefix_reuse_per_turn() {
    let mut r = baseline();
    let s = &mut r.steps[0].samples;
    let n = s.len();
    // Turn k of every session: 1000 prompt tokens, of which 0, 600, 800, 900 were read from the cache.
    s.turn = (0..n).map(|i| Some((i % 4) as u32)).collect();
    s.prompt_tokens = vec![Some(1000); n];
    s.cached_tokens = (0..n).map(|i| Some([0, 600, 800, 900][i % 4])).collect();
    let charts = run_charts(&[Target { label: "agent", run: &r }]);
    let chart = charts.iter().find(|c| c.id == "prefix-reuse-per-turn").expect("the chart is drawn");
    assert_eq!(chart.title, "Prefix reuse per turn");
    assert!(chart.svg.contains("cached ÷ prompt tokens"), "{}", chart.svg);
    // No cached token anywhere: nothing to show.
    r.steps[0].samples.cached_tokens = vec![Some(0); n];
    assert!(run_charts(&[Target { label: "agent", run: &r }]).iter().all(|c| c.id != "prefix-reuse-per-turn"));
}
