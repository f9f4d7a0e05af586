//! Ctrl-C and SIGTERM: the first stops runs cleanly (what was measured is kept), the second exits at once.

use crate::exit;
use tokio::sync::watch;

/// The signal that interrupted the run, once one did.
static SIGNALLED: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();

/// Why the run was interrupted, for the result's `status_reason`: the signal's name.
pub fn interruption() -> String {
    format!("interrupted by {}", SIGNALLED.get().copied().unwrap_or("the user"))
}

/// The next Ctrl-C (SIGINT) or SIGTERM, by name.
pub async fn next_signal(#[cfg(unix)] term: &mut Option<tokio::signal::unix::Signal>) -> &'static str {
    #[cfg(unix)]
    {
        let term = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => "SIGINT (Ctrl-C)",
            _ = term => "SIGTERM",
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}

/// Ctrl-C (and SIGTERM), once per process: the first stops runs cleanly, the second exits at once (after
/// killing any launched server). The result file then keeps its last update, which is whole (every update is
/// an atomic rename) and says `partial`; every finished request is already in the records file.
fn interrupted() -> watch::Receiver<bool> {
    static SIGNAL: std::sync::OnceLock<watch::Receiver<bool>> = std::sync::OnceLock::new();
    SIGNAL
        .get_or_init(|| {
            let (tx, rx) = watch::channel(false);
            tokio::spawn(async move {
                #[cfg(unix)]
                let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
                #[cfg(unix)]
                let first = next_signal(&mut term).await;
                #[cfg(not(unix))]
                let first = next_signal().await;
                let _ = SIGNALLED.set(first);
                eprintln!(
                    "\ninterrupted: stopping ({first}), keeping what was measured (Ctrl-C again to quit at once)"
                );
                let _ = tx.send(true);
                #[cfg(unix)]
                let second = next_signal(&mut term).await;
                #[cfg(not(unix))]
                let second = next_signal().await;
                eprintln!("velollm: {second} again: quitting now (the result file keeps its last update)");
                velollm_engine::launch::kill_all();
                std::process::exit(i32::from(exit::INTERRUPTED));
            });
            rx
        })
        .clone()
}

/// A cancellation for one run: set by Ctrl-C, or through the returned sender (a server that died).
pub fn cancel_on_signal() -> (watch::Sender<bool>, watch::Receiver<bool>) {
    let (tx, rx) = watch::channel(*interrupted().borrow());
    let (forward, mut signal) = (tx.clone(), interrupted());
    tokio::spawn(async move {
        if signal.wait_for(|s| *s).await.is_ok() {
            let _ = forward.send(true);
        }
    });
    (tx, rx)
}
