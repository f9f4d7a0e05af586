//! Single flight: identical requests that miss at the same time share one upstream call. The first becomes
//! the leader and goes upstream; the others wait until the leader's answer is stored (or abandoned), then look
//! the cache up again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

use crate::normalize::CacheKey;

/// The flights in progress, by key.
#[derive(Debug, Default)]
pub struct Flights {
    inner: Mutex<HashMap<CacheKey, watch::Receiver<()>>>,
}

/// What a request that missed does.
#[derive(Debug)]
pub enum Joined {
    /// Go upstream; the flight ends when the guard is dropped (after the answer is stored, or abandoned).
    Leader(FlightGuard),
    /// Wait for the leader: [`watch::Receiver::changed`] returns when its flight ends.
    Follower(watch::Receiver<()>),
}

/// Held by a flight's leader; dropping it releases the followers.
#[derive(Debug)]
pub struct FlightGuard {
    flights: Arc<Flights>,
    key: CacheKey,
    _done: watch::Sender<()>,
}

impl Flights {
    /// Joins the flight for `key`, or starts it.
    pub fn join(self: &Arc<Self>, key: CacheKey) -> Joined {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(rx) = inner.get(&key) {
            return Joined::Follower(rx.clone());
        }
        let (tx, rx) = watch::channel(());
        inner.insert(key, rx);
        Joined::Leader(FlightGuard { flights: Arc::clone(self), key, _done: tx })
    }
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        self.flights.inner.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.key);
        // `_done` is dropped next, which wakes every follower.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn followers_wait_for_the_leader_and_a_new_flight_starts_after() {
        let flights = Arc::new(Flights::default());
        let key = CacheKey([1; 32]);
        let Joined::Leader(guard) = flights.join(key) else { panic!("first is the leader") };
        let Joined::Follower(mut rx) = flights.join(key) else { panic!("second follows") };
        assert!(matches!(flights.join(CacheKey([2; 32])), Joined::Leader(_)));
        let waiter = tokio::spawn(async move { rx.changed().await.is_err() });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(guard);
        assert!(waiter.await.unwrap(), "released when the leader's guard is dropped");
        assert!(matches!(flights.join(key), Joined::Leader(_)));
    }
}
