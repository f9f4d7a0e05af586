//! Every command's `--help`, as a snapshot: a flag that appears, disappears or changes its wording shows in
//! review, and the shared flags read the same in every command that takes them.

use crate::common;

/// The help of `velollm ARGS… --help`, at a fixed width and without the environment's values.
fn help(args: &[&str]) -> String {
    help_with(args, "--help")
}

/// `help`, with `-h` (one line per flag) or `--help` (every flag explained in full).
fn help_with(args: &[&str], flag: &str) -> String {
    let o = common::command()
        .args(args)
        .arg(flag)
        .env("COLUMNS", "110")
        .env_remove("VELOLLM_NO_SELFCHECK")
        .env_remove("VELOLLM_NO_HISTORY")
        .output()
        .expect("velollm runs");
    assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).expect("help is UTF-8")
}

const COMMANDS: &[&str] = &[
    "bench",
    "benchmark",
    "scenario",
    "compare",
    "ab",
    "report",
    "history",
    "tune",
    "detect",
    "optimize",
    "selfcheck",
    "proxy",
];

#[test]
fn every_command_help() {
    insta::assert_snapshot!("velollm", help(&[]));
    for command in COMMANDS {
        insta::assert_snapshot!(*command, help(&[command]));
    }
    insta::assert_snapshot!("scenario_list", help(&["scenario", "list"]));
    insta::assert_snapshot!("scenario_show", help(&["scenario", "show"]));
}

#[test]
fn the_top_level_help_lists_every_command() {
    let top = help(&[]);
    for command in COMMANDS {
        assert!(top.contains(&format!("\n  {command} ")), "{command} missing from:\n{top}");
    }
}

#[test]
fn ab_offers_every_target_and_workload_flag_of_bench() {
    let flags = |text: &str, heading: &str| -> Vec<String> {
        let section = text.split(&format!("{heading}:\n")).nth(1).unwrap_or_default();
        let section = section.split("\n\n").next().unwrap_or_default();
        section
            .lines()
            .filter(|l| l.trim_start().starts_with('-'))
            .filter_map(|l| l.split([' ', ',']).find(|w| w.starts_with("--")).map(str::to_string))
            .collect()
    };
    let (bench, ab) = (help_with(&["bench"], "-h"), help_with(&["ab"], "-h"));
    for heading in ["Workload", "Timeouts"] {
        let b = flags(&bench, heading);
        assert!(!b.is_empty(), "no {heading} section in bench --help");
        assert_eq!(flags(&ab, heading), b, "{heading}");
    }
    // The target flags, but the URL: ab has two targets, --a and --b.
    let but = |all: Vec<String>, own: &[&str]| -> Vec<String> {
        all.into_iter().filter(|f| !own.contains(&f.as_str())).collect()
    };
    assert_eq!(but(flags(&ab, "Target"), &["--a", "--b", "--b-proxies-a"]), but(flags(&bench, "Target"), &["--url"]));
}
