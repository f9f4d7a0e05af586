//! Chunks are stamped at their kernel arrival: a client thread that is busy while a chunk waits in the socket
//! does not add its delay to TTFT or ITL (see `velollm_engine::rxstamp`).
//!
//! The loopback server runs on its own thread and writes, into each response, the instant it received the
//! request and the instant just before each `write()`, on the client's clock. The client runs on a
//! single-threaded runtime beside a task that blocks that thread for 8 ms at a time, so many chunks arrive
//! while nothing can read them. Chunks come 20 ms apart, so no two wait in the socket together: one read
//! that delivers several chunks stamps them all with the newest one's arrival (the kernel keeps one stamp
//! per read), which this test does not measure.

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use velollm_core::document::scenario::Workload;
use velollm_core::measure::record::RequestRecord;
use velollm_core::workload::load::{Bounds, LoadProfile};
use velollm_engine::dialect::DialectKind;
use velollm_engine::loopback::{Loopback, LoopbackConfig, read_stamps};
use velollm_engine::plan::StepPlan;
use velollm_engine::runner::{Observer, Runner};
use velollm_engine::target::Target;
use velollm_engine::transport::{Clock, Endpoint};

#[derive(Clone, Default)]
struct Records(Arc<Mutex<Vec<RequestRecord>>>);

impl Observer for Records {
    fn record(&mut self, r: &RequestRecord) {
        self.0.lock().unwrap().push(r.clone());
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_busy_client_thread_does_not_delay_the_stamps() {
    if std::env::var("VELOLLM_USER_STAMPS").is_ok_and(|v| v.trim() == "1") {
        eprintln!("VELOLLM_USER_STAMPS=1: chunks are stamped when read; nothing to check");
        return;
    }
    let clock = Clock::start();
    let config = LoopbackConfig {
        ttft: Duration::from_millis(20),
        itl: Duration::from_millis(20),
        tokens: 12,
        stamps: Some(clock),
        events_per_write: 1,
    };
    let server = Loopback::start(config).unwrap();
    let mut target =
        Target::new(Endpoint::parse(&format!("http://{}", server.addr())).unwrap(), DialectKind::OpenAiChat, clock);
    target.keep_text = true;

    // Block the client's only thread for 8 ms, then yield, until the requests are done.
    let (stop_tx, mut stop) = watch::channel(false);
    let blocker = tokio::spawn(async move {
        while !*stop.borrow_and_update() {
            std::thread::sleep(Duration::from_millis(8));
            tokio::task::yield_now().await;
        }
    });

    let records = Records::default();
    let mut observer = records.clone();
    let (_tx, cancel) = watch::channel(false);
    let bounds = Bounds { requests: Some(4), ..Bounds::default() };
    let plan = StepPlan::simple("stamps", Workload::Prompts(vec!["hello".into()]), 12, LoadProfile::Sequential, bounds);
    let mut runner = Runner::new(Arc::new(target), "loopback".into(), 1, None);
    let (result, _) = runner.run_step(0, &plan, &mut observer, &cancel).await.expect("the step runs");
    stop_tx.send(true).unwrap();
    blocker.await.unwrap();
    assert_eq!((result.succeeded, result.failed), (4, 0), "{:?}", result.errors);

    let mut worst_chunk = 0i64;
    let mut worst_ttft = 0i64;
    for r in records.0.lock().unwrap().iter() {
        let (receipt, writes) = read_stamps(r.text.as_deref().unwrap()).expect("a stamped response");
        let chunks: Vec<_> = r.output_chunks().collect();
        assert_eq!(chunks.len(), writes.len(), "one chunk per event");
        for (c, w) in chunks.iter().zip(&writes) {
            let lag = c.t as i64 - *w as i64;
            assert!(lag >= 0, "a chunk stamped before it was written: {lag} ns");
            worst_chunk = worst_chunk.max(lag);
        }
        let ttft_error = (chunks[0].t as i64 - r.sent.unwrap() as i64) - (writes[0] as i64 - receipt as i64);
        assert!(ttft_error >= 0, "TTFT shorter than the server's: {ttft_error} ns");
        worst_ttft = worst_ttft.max(ttft_error);
    }
    // Read when the thread is free, a chunk would be up to 8 ms late; stamped at arrival, it is not.
    assert!(worst_chunk < 3_000_000, "a chunk stamped {} ms after its write", worst_chunk as f64 / 1e6);
    assert!(worst_ttft < 3_000_000, "TTFT {} ms longer than the server's", worst_ttft as f64 / 1e6);
}
