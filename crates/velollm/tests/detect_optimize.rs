//! `velollm detect` and `velollm optimize` end to end: the real binary on this machine.

use crate::common;

use common::{text, velollm};
use velollm_core::server::gguf::build::{Kv, gguf};

#[test]
fn detect_json_describes_this_machine() {
    let out = velollm(&["detect", "--json"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("detect --json prints JSON");
    let threads = v["cpu"]["threads"].as_u64().expect("cpu.threads");
    let parallelism = std::thread::available_parallelism().unwrap().get() as u64;
    assert!(threads >= parallelism, "cpu.threads {threads} < available_parallelism {parallelism}");
    assert!(v["memory"]["total_bytes"].as_u64().unwrap() > 0);
    assert_eq!(v["os"], std::env::consts::OS);
    assert_eq!(v["arch"], std::env::consts::ARCH);
    assert!(v["gpus"].is_array());
}

#[test]
fn json_means_the_same_in_every_command() {
    // `--json` alone (or `--json -`): JSON instead of the text on standard output; `--json FILE`: the text as
    // usual, and the JSON in FILE.
    for args in [&["detect", "--json"][..], &["detect", "--json", "-"]] {
        let out = velollm(args);
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hw.json");
    let out = velollm(&["detect", "--json", file.to_str().unwrap()]);
    assert!(text(&out).0.contains("CPU "), "{}", text(&out).0);
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert!(v["cpu"].is_object());
    let db = dir.path().join("empty.db");
    let out = velollm(&["history", "--db", db.to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("history --json prints JSON");
    assert_eq!(v["runs"], serde_json::json!([]));
}

#[test]
fn detect_text_names_cpu_and_ram() {
    let out = velollm(&["detect"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("CPU ") && stdout.contains("RAM ") && stdout.contains("GPU "), "{stdout}");
}

#[test]
fn optimize_prints_by_default_and_with_dry_run() {
    for args in [&["optimize", "--for", "llama.cpp"][..], &["optimize", "--for", "ollama", "--dry-run"]] {
        let out = velollm(args);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{stderr}");
        assert!(stdout.contains("velollm changed nothing"), "{stdout}");
    }
    let out = velollm(&["optimize", "--for", "llama.cpp", "--model-size", "3b"]);
    let (stdout, _) = text(&out);
    assert!(stdout.contains("-t "), "{stdout}");
    assert!(stdout.contains("Q4_K_M"), "{stdout}");
}

#[test]
fn optimize_writes_a_script_sh_can_source() {
    let dir = tempfile::tempdir().unwrap();
    for (engine, var) in
        [("ollama", "OLLAMA_KEEP_ALIVE"), ("llama.cpp", "VELOLLM_LLAMA_SERVER_FLAGS"), ("vllm", "VELOLLM_VLLM_FLAGS")]
    {
        let path = dir.path().join(format!("{engine}.sh"));
        let out = velollm(&["optimize", "--for", engine, "-o", path.to_str().unwrap()]);
        let (_, stderr) = text(&out);
        assert!(out.status.success(), "{stderr}");
        let script = std::fs::read_to_string(&path).unwrap();
        assert!(script.starts_with("#!/bin/sh\n"), "{script}");
        // vLLM on a machine without a GPU has no flags, but the variable is still exported.
        let sourced = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(". '{}' && echo \"[${var}]\"", path.display()))
            .output()
            .unwrap();
        assert!(sourced.status.success(), "{}", String::from_utf8_lossy(&sourced.stderr));
        let echoed = String::from_utf8_lossy(&sourced.stdout);
        if engine != "vllm" {
            assert_ne!(echoed.trim(), "[]", "{var} is set by {script}");
        }
    }
    // --dry-run writes nothing.
    let path = dir.path().join("dry.sh");
    let out = velollm(&["optimize", "--for", "ollama", "--dry-run", "-o", path.to_str().unwrap()]);
    assert!(out.status.success());
    assert!(!path.exists());
}

#[test]
fn optimize_reads_a_gguf_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    let bytes = gguf(
        &[
            ("general.architecture", Kv::Str("llama")),
            ("general.name", Kv::Str("Tiny\nInjected")),
            ("general.file_type", Kv::U32(7)),
            ("general.parameter_count", Kv::U64(1_000_000)),
            ("llama.context_length", Kv::U32(4096)),
            ("llama.block_count", Kv::U32(4)),
            ("llama.embedding_length", Kv::U32(256)),
            ("llama.attention.head_count", Kv::U32(4)),
        ],
        &[("w", &[16, 16], 0)],
    );
    std::fs::write(&path, bytes).unwrap();
    let out = velollm(&["optimize", "--for", "llama.cpp", "--model", path.to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("Tiny Injected (1M parameters, Q8_0"), "{stdout}");
    assert!(stdout.contains("-c 4096"), "{stdout}");
}

#[test]
fn bad_input_exits_2_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let not_gguf = dir.path().join("model.bin");
    std::fs::write(&not_gguf, b"PK\x03\x04 not a model").unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["--for".into(), "tgi".into()], "use ollama, llama.cpp or vllm"),
        (vec!["--for".into(), "ollama".into(), "--model-size".into(), "big".into()], "like 135m, 3b"),
        (
            vec!["--for".into(), "ollama".into(), "--model-size".into(), "3b".into(), "--quant".into(), "Q9".into()],
            "unknown quantisation",
        ),
        (vec!["--for".into(), "ollama".into(), "--model".into(), not_gguf.display().to_string()], "not a GGUF file"),
        (vec!["--for".into(), "ollama".into(), "--model".into(), "/nonexistent/m.gguf".into()], "cannot open"),
    ];
    for (args, expected) in cases {
        let mut all = vec!["optimize".to_string()];
        all.extend(args.clone());
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        let out = velollm(&refs);
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

/// The real SmolLM2-135M model of the integration tests: its parameter count is about 135 M.
#[test]
fn reads_the_real_smollm2_gguf() {
    let path = match std::env::var("SMOLLM2_MODEL") {
        Ok(p) if !p.is_empty() => p,
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!(
                "CI=true but SMOLLM2_MODEL is unset: run the tests with scripts/test.sh (or eval \"$(scripts/llama-server.sh env)\")"
            )
        }
        _ => {
            eprintln!("skipped: SMOLLM2_MODEL is unset (eval \"$(scripts/llama-server.sh env)\" to set it)");
            return;
        }
    };
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("SMOLLM2_MODEL={path}: {e}"));
    let len = file.metadata().unwrap().len();
    let info = velollm_core::server::gguf::read(std::io::BufReader::new(file), len).expect("a GGUF header");
    let params = info.parameter_count().expect("a parameter count");
    assert!((125_000_000..145_000_000).contains(&params), "{params} parameters");
    assert_eq!(info.architecture(), Some("llama"));
    assert!(info.context_length().is_some_and(|c| c >= 2048));
    assert!(info.block_count().is_some() && info.head_count_kv().is_some() && info.head_dims().is_some());
    let out = velollm(&["optimize", "--for", "llama.cpp", "--dry-run", "--model", &path]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("-c "), "{stdout}");
}
