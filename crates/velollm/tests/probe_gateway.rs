//! Auto-detection behind a gateway that answers `/api/version` like Ollama yet serves only the OpenAI routes
//! (as PyPI's `oai2ollama` does in front of llama-server): the probe confirms the Ollama route, falls back to
//! the OpenAI dialect and says so.

use crate::common;

use common::{text, velollm_async};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use velollm_testkit::{FakeServer, Flavor, Script};

/// The gateway: `GET /api/version` → Ollama's answer; `/v1/…` → forwarded to `upstream`; anything else → 404
/// `{"detail": "Not Found"}` (FastAPI's shape).
async fn gateway(upstream: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let upstream = upstream.trim_start_matches("http://").to_string();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let _ = serve(client, &upstream).await;
            });
        }
    });
    url
}

async fn serve(mut client: TcpStream, upstream: &str) -> std::io::Result<()> {
    let Some((head, buf)) = common::read_request(&mut client).await? else { return Ok(()) };
    let mut chunk = [0u8; 4096];
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    let reply = |status: &str, body: &str| {
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    if path == "/api/version" {
        return client.write_all(reply("200 OK", r#"{"version":"0.5.0"}"#).as_bytes()).await;
    }
    if !path.starts_with("/v1/") {
        return client.write_all(reply("404 Not Found", r#"{"detail":"Not Found"}"#).as_bytes()).await;
    }
    let line_end = head.find("\r\n").unwrap();
    let mut request = buf[..line_end + 2].to_vec();
    request.extend_from_slice(b"connection: close\r\n");
    request.extend_from_slice(&buf[line_end + 2..]);
    let mut up = TcpStream::connect(upstream).await?;
    up.write_all(&request).await?;
    loop {
        let n = up.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        client.write_all(&chunk[..n]).await?;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_that_only_looks_like_ollama_falls_back_to_openai_and_says_so() {
    let fake = FakeServer::start(Flavor::OpenAi, Script::default()).await;
    let url = gateway(fake.url()).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run.json");
    let o = velollm_async(
        ["bench", "--url", &url, "--prompt", "hi", "--iterations", "2", "--no-selfcheck", "-o", out.to_str().unwrap()]
            .map(String::from)
            .to_vec(),
    )
    .await;
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(0), "stderr: {stderr}\nstdout: {stdout}");
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let target = &doc["meta"]["target"];
    assert_eq!(target["dialect"], "openai-chat", "{target}");
    let reason = target["dialect_reason"].as_str().unwrap();
    assert!(reason.contains("POST /api/chat does not exist there (HTTP 404)"), "{reason}");
    assert!(stderr.contains("POST /api/chat does not exist there") || stdout.contains("does not exist"), "{stderr}");
    assert_eq!(fake.request_count(), 2);
}
