//! `velollm tune` end to end: a grid of launched servers, the trade-off table, the best configuration, resuming.

use crate::common;

use common::{fake_server_bin as fake_server, json, llama_server, text, velollm};

#[test]
fn a_grid_of_fake_servers_names_the_faster_one_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tune");
    let launch = format!("{} --port {{port}} --ttft-ms {{ttft}} --tokens 6", fake_server().display());
    let args = [
        "tune",
        "--launch",
        &launch,
        "--grid",
        "ttft=60,15",
        "--prompt",
        "hi",
        "-n",
        "25",
        "-c",
        "2",
        "--no-progress",
        "--objective",
        "ttft.p50",
        "-o",
        out.to_str().unwrap(),
    ];
    let o = velollm(&args);
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    assert!(stdout.contains("best") && stdout.contains("ttft=15"), "{stdout}");
    let s = json(&out.join("tune.json"));
    let rows = s["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(s["best"], 1, "the 15 ms server wins: {s}");
    let m = &s["margin"];
    assert!(m["significant"].as_bool().unwrap(), "{m}");
    let diff = m["difference"].as_f64().unwrap();
    assert!((35.0..55.0).contains(&diff), "about 45 ms apart: {m}");
    assert!(m["ci_low"].as_f64().unwrap() > 0.0);
    // Every configuration's full result and log are kept.
    for slug in ["ttft-60", "ttft-15"] {
        let r = json(&out.join(format!("{slug}.json")));
        assert_eq!(r["status"], "complete");
        assert!(r["server"]["launch"]["command"].as_str().unwrap().contains("--ttft-ms"));
        assert!(out.join(format!("{slug}.server.log")).exists());
    }
    assert!(std::fs::read_to_string(out.join("tune.md")).unwrap().contains("| best |"));
    assert!(out.join("tune.html").exists());

    // Run again: nothing is measured twice, the verdict is the same.
    let o = velollm(&args);
    let (_, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    assert_eq!(stderr.matches("already measured").count(), 2, "{stderr}");
    assert_eq!(json(&out.join("tune.json"))["best"], 1);
}

#[test]
fn tune_input_errors_exit_2_before_launching() {
    let d = tempfile::tempdir().unwrap();
    let o = d.path().join("t");
    let o = o.to_str().unwrap();
    let cases: [(&[&str], &str); 5] = [
        (&["tune", "--grid", "a=1", "--prompt", "x", "-n", "1", "-o", o], "--launch"),
        (
            &["tune", "--launch", "srv {port} {a}", "--grid", "a=1", "--prompt", "x", "-n", "1", "-o", o, "--resume"],
            "--rerun",
        ),
        (&["tune", "--launch", "srv {port} {a}", "--grid", "a", "--prompt", "x", "-n", "1", "-o", o], "KEY=V1,V2"),
        (&["tune", "--launch", "srv {port} {b}", "--grid", "a=1,2", "--prompt", "x", "-n", "1", "-o", o], "{b}"),
        (&["tune", "--launch", "srv {port} {a}", "--grid", "a=1", "--objective", "requests", "-o", o], "--objective"),
    ];
    for (args, needle) in cases {
        let out = velollm(args);
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

/// Two configurations of the real llama-server end to end: both launched, measured and stopped, one table.
#[test]
fn a_two_config_tune_on_the_real_llama_server() {
    let Some((bin, model, _real)) = llama_server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tune");
    let (bin, model) = (bin.display(), model.display());
    let launch = format!("{bin} -m {model} --port {{port}} -t 1 -np 1 -c {{n_ctx}} -b {{n_batch}} --metrics");
    let o = velollm(&[
        "tune",
        "--launch",
        &launch,
        "--grid",
        "n_ctx=1024",
        "--grid",
        "n_batch=64,256",
        "--prompt-tokens",
        "64",
        "--max-tokens",
        "8",
        "-n",
        "6",
        "--no-progress",
        "--objective",
        "ttft.p50",
        "-o",
        out.to_str().unwrap(),
    ]);
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    assert!(stdout.contains("n_ctx=1024 n_batch=64") && stdout.contains("n_ctx=1024 n_batch=256"), "{stdout}");
    let s = json(&out.join("tune.json"));
    assert!(s["best"].is_u64(), "{s}");
    for row in s["rows"].as_array().unwrap() {
        assert_eq!(row["status"], "complete", "{row}");
        assert_eq!(row["failed"], 0);
        assert!(row["ttft_p50_ms"].as_f64().unwrap() > 0.0);
        assert!(row["ready_ms"].as_f64().unwrap() > 0.0);
        let r = json(std::path::Path::new(row["result"].as_str().unwrap()));
        let server = &r["server"];
        assert!(server["launch"]["stop"].as_str().unwrap().contains("SIGTERM"), "{server}");
        assert!(server["cold_start"]["first_ttft_ms"].as_f64().is_some(), "{server}");
        assert!(server["resources"]["rss_peak_bytes"].as_u64().unwrap() > 50_000_000, "the model is resident");
        assert_eq!(r["steps"][0]["server_metrics"]["engine"], "llamacpp");
        // The server is gone: nothing listens on its port any more.
        let port = server["launch"]["port"].as_u64().unwrap();
        assert!(std::net::TcpStream::connect(("127.0.0.1", port as u16)).is_err(), "port {port} still open");
    }
}

/// `optimize --verify`: the server launched as given, then with the advice applied, both benchmarked the
/// same way, then compared.
#[test]
fn optimize_verify_benchmarks_before_and_after_the_advice() {
    let dir = tempfile::tempdir().unwrap();
    let launch = format!("{} --port {{port}}", fake_server().display());
    let v = dir.path().join("verify");
    let o = velollm(&[
        "optimize",
        "--for",
        "llama.cpp",
        "--model-size",
        "1b",
        "--verify",
        "--launch",
        &launch,
        "-n",
        "5",
        "--verify-dir",
        v.to_str().unwrap(),
    ]);
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    let before = json(&v.join("before.json"));
    let after = json(&v.join("after.json"));
    let (b, a) = (&before["server"]["launch"]["command"], &after["server"]["launch"]["command"]);
    assert!(a.as_str().unwrap().len() > b.as_str().unwrap().len(), "the advice's flags are appended: {b} → {a}");
    assert!(a.as_str().unwrap().contains(" -t "), "{a}");
    assert!(stdout.contains("baseline") && stdout.contains("candidate"), "a comparison is printed: {stdout}");
}
