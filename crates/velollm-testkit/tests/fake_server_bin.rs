//! The `velollm-fake-server` program runs as documented. Being an integration test of this package, it also
//! makes `cargo test --workspace` build the program, which velollm's launcher tests start.

use std::process::Command;

fn fake_server() -> Command {
    Command::new(env!("CARGO_BIN_EXE_velollm-fake-server"))
}

#[test]
fn exit_mode_prints_to_both_streams_and_exits_with_the_code_asked() {
    let o = fake_server().args(["--port", "0", "--mode", "exit"]).output().expect("the fake server runs");
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "fake server: loading\n");
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot load the model (simulated)"), "{o:?}");

    let o = fake_server().args(["--mode", "exit", "--exit-code", "7", "--tag", "t"]).output().unwrap();
    assert_eq!(o.status.code(), Some(7), "{o:?}");
}

#[test]
fn bad_options_exit_2_with_a_message() {
    let o = fake_server().args(["--mode", "sleep"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("--mode sleep: use serve, exit or hang"), "{o:?}");
    let o = fake_server().args(["--loading-ms", "soon"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("--loading-ms soon: not a number"), "{o:?}");
}
