//! Scraping a server's Prometheus `/metrics` endpoint (parsed and mapped by `velollm_core::measure::prom`).

use crate::exec::get;
use crate::target::Target;
use crate::transport::Endpoint;
use std::sync::Arc;
use velollm_core::measure::prom::{Scrape, parse};

/// One metrics endpoint.
#[derive(Clone)]
pub struct Scraper {
    target: Arc<Target>,
    path: String,
    url: String,
}

impl Scraper {
    /// A scraper of `url` (e.g. `http://127.0.0.1:8080/metrics`).
    pub fn new(url: &str) -> Result<Scraper, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("--metrics-url {url}: {e}"))?;
        let path = match parsed.path() {
            "" | "/" => "/metrics".to_string(),
            p => p.to_string(),
        };
        let origin = parsed.origin().ascii_serialization();
        let endpoint = Endpoint::parse(&origin).map_err(|e| format!("--metrics-url: {e}"))?;
        Ok(Scraper { target: Arc::new(Target::control(endpoint)), path, url: crate::transport::redact_url(url) })
    }

    /// The endpoint, credentials removed.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Fetch and parse the metrics once.
    pub async fn scrape(&self) -> Result<Scrape, String> {
        match get(&self.target, &self.path).await {
            Ok((200, body)) => parse(&String::from_utf8_lossy(&body)).map_err(|e| format!("{}: {e}", self.url)),
            Ok((404, _)) => Err(format!(
                "{} answered 404: the server exposes no Prometheus metrics there (llama-server needs --metrics; \
                 point --metrics-url at the right endpoint)",
                self.url
            )),
            Ok((status, _)) => Err(format!("{} answered {status}", self.url)),
            Err(e) => Err(format!("{}: {}", self.url, e.message)),
        }
    }
}
