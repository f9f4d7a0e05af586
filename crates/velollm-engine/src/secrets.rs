//! Secrets: the API key, wrapped so it never prints, and every secret of the process (keys, URL credentials)
//! removed from what velollm prints or writes.

/// An API key. Its `Debug` output is redacted so it cannot leak through logs.
#[derive(Clone)]
pub struct Secret(pub(crate) String);

impl Secret {
    /// Wrap a key.
    pub fn new(key: String) -> Secret {
        register_secret(&key);
        Secret(key)
    }

    /// `text` with every occurrence of the key replaced by `[REDACTED]` (a server may echo the key, e.g.
    /// the request's headers in an error body).
    pub fn redact<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        if self.0.is_empty() || !text.contains(self.0.as_str()) {
            return std::borrow::Cow::Borrowed(text);
        }
        std::borrow::Cow::Owned(text.replace(self.0.as_str(), "[REDACTED]"))
    }
}

/// The secrets of this process (every [`Secret`], URL credentials), which [`redact_secrets`] removes.
static SECRETS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Remember `secret` (an API key, a password in a URL) so that [`redact_secrets`] removes it; empty ones are
/// ignored.
pub fn register_secret(secret: &str) {
    let mut all = SECRETS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if !secret.is_empty() && !all.iter().any(|s| s == secret) {
        all.push(secret.to_string());
    }
}

/// `text` with every registered secret replaced by `[REDACTED]`: for what velollm prints or writes that may
/// repeat one (a --launch command that passes the key to the server, a server's error message).
pub fn redact_secrets(text: &str) -> std::borrow::Cow<'_, str> {
    let all = SECRETS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut out = std::borrow::Cow::Borrowed(text);
    for s in all.iter() {
        if out.contains(s.as_str()) {
            out = std::borrow::Cow::Owned(out.replace(s.as_str(), "[REDACTED]"));
        }
    }
    out
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(REDACTED)")
    }
}
