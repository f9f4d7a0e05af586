//! `velollm proxy`: a gateway between an application and its model servers that cuts latency where it can and
//! says, in every response, what it did and what it cost.
//!
//! One request's way, each stage a module that can be read alone (`docs/proxy.md` has the whole picture):
//!
//! | module | what it is for |
//! |---|---|
//! | [`config`] | the TOML configuration and the flags that override it, validated before listening |
//! | [`server`] | the listener: HTTP/1.1 and h2c, `TCP_NODELAY`, head deadline, graceful shutdown |
//! | [`deadline`] | a deadline on writes to a client that stopped reading |
//! | [`handler`] | the request path: route → body under limits → normalize → cache → tier → upstream → tee |
//! | [`dialect`] | the routes of each dialect, stream defaults, how answers end, error shapes |
//! | [`normalize`] | one request model: aliases, explicit defaults, canonical hash, tenant partition |
//! | [`cache`] | the exact cache: entries, stores (memory, Redis), single flight |
//! | [`resp`] | a small Redis client (RESP), shared by the exact cache's store and the semantic layer's |
//! | [`semantic`] | the semantic layer after an exact miss: embedder, vector index, lexical guard |
//! | [`routing`] | the routed model name to a tier: rules, then the nearest labelled examples' vote |
//! | [`hedge`] | hedged requests: a second branch after a delay, the first to start wins |
//! | [`upstream`] | the upstreams and their kept-alive connection pools |
//! | [`h1pool`] | plain-http HTTP/1.1 upstreams on velollm's own client: no channel per chunk |
//! | [`tls`] | hyper's connector for the other upstreams: plain TCP, or TLS for `https://` ones |
//! | [`tee`] | the response body: frames to the caller as they arrive, a copy to the cache writer |
//! | [`ws`] | WebSocket sessions: many requests on one connection, one message per stream event |
//! | [`metrics`] | the Prometheus exposition |
//!
//! The caches are policies over the normalized request; the transport never knows about them.

pub mod cache;
pub mod config;
pub mod deadline;
pub mod dialect;
pub mod h1pool;
pub mod handler;
pub mod hedge;
pub mod metrics;
pub mod normalize;
pub mod resp;
pub mod routing;
pub mod semantic;
pub mod server;
pub mod tee;
pub mod tls;
pub mod upstream;
pub mod ws;

pub use config::ProxyConfig;
pub use server::{Proxy, StartError};
