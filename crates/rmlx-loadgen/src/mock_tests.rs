//! `request::run` against a fake server on a loopback port that answers one request with canned
//! bytes: how each way a server can fail is judged.

use crate::request::{run, Outcome, Record, Target};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Serves one request with `head` (status line and headers) and `body` parts sent as HTTP
/// chunks; then ends the body properly (`end`) or not, and holds the connection `hold`.
async fn fake(head: &'static str, parts: Vec<String>, end: bool, hold: Duration) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/v1/chat/completions",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        // The request: headers, then as many body bytes as Content-Length says.
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = sock.read(&mut buf).await.unwrap();
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got).to_lowercase();
            if let Some(end) = text.find("\r\n\r\n") {
                let len = text
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse::<usize>().unwrap());
                if got.len() >= end + 4 + len {
                    break;
                }
            }
            assert!(n > 0, "the client closed before sending its request");
        }
        let mut out = format!("{head}\r\ntransfer-encoding: chunked\r\n\r\n");
        for p in parts {
            out += &format!("{:x}\r\n{p}\r\n", p.len());
        }
        if end {
            out += "0\r\n\r\n";
        }
        // The client may hang up early (a drop); that is what some tests ask for.
        let _ = sock.write_all(out.as_bytes()).await;
        tokio::time::sleep(hold).await;
    });
    url
}

const SSE: &str = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream";

fn data(json: &str) -> String {
    format!("data: {json}\n\n")
}

fn good_stream(usage: bool) -> Vec<String> {
    let mut v = vec![
        data(r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#),
        data(r#"{"choices":[{"index":0,"delta":{"content":"Hel"}}]}"#),
        data(r#"{"choices":[{"index":0,"delta":{"content":"lo"}}]}"#),
        data(r#"{"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}"#),
    ];
    if usage {
        v.push(data(
            r#"{"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":3}}}"#,
        ));
    }
    v.push("data: [DONE]\n\n".into());
    v
}

async fn request(url: String, drop_after: Option<usize>, timeout_ms: u64) -> Record {
    let target = Target {
        client: reqwest::Client::builder().no_proxy().build().unwrap(),
        url,
        api_key: None,
        timeout: Duration::from_millis(timeout_ms),
        want_usage: true,
        max_tokens: 2,
    };
    run(&target, "{}".into(), drop_after, 0, 0, Instant::now()).await
}

/// Asserts that the request failed as lost (`lost`) or as an error, saying `needle`.
fn assert_failed(o: &Outcome, lost: bool, needle: &str) {
    let m = match (o, lost) {
        (Outcome::Lost(m), true) | (Outcome::Error(m), false) => m,
        _ => panic!(
            "expected {} saying {needle:?}, found {o:?}",
            ["an error", "lost"][lost as usize]
        ),
    };
    assert!(m.contains(needle), "expected {needle:?} in {m:?}");
}

#[tokio::test]
async fn a_whole_stream_is_ok_and_measured() {
    let url = fake(SSE, good_stream(true), true, Duration::ZERO).await;
    let r = request(url, None, 5000).await;
    assert_eq!(r.outcome, Outcome::Ok);
    assert_eq!((r.text_chunks, r.itl_s.len(), r.tokens()), (2, 1, 2));
    assert!(r.ttft_s.is_some_and(|t| t <= r.e2e_s));
    assert_eq!((r.prompt_tokens, r.cached_tokens), (Some(7), Some(3)));
    assert_eq!(r.finish_reason.as_deref(), Some("length"));
}

#[tokio::test]
async fn a_stream_without_done_is_lost() {
    let mut parts = good_stream(true);
    parts.pop();
    let url = fake(SSE, parts, true, Duration::ZERO).await;
    let r = request(url, None, 5000).await;
    assert_failed(&r.outcome, true, "without [DONE]");
}

#[tokio::test]
async fn a_connection_cut_mid_stream_is_lost() {
    let parts = good_stream(true)[..2].to_vec();
    // No terminating chunk, then the connection closes.
    let url = fake(SSE, parts, false, Duration::ZERO).await;
    let r = request(url, None, 5000).await;
    assert_failed(&r.outcome, true, "stream broken");
}

#[tokio::test]
async fn a_stream_that_stalls_is_lost_at_the_timeout() {
    let parts = good_stream(true)[..2].to_vec();
    let url = fake(SSE, parts, false, Duration::from_secs(30)).await;
    let r = request(url, None, 300).await;
    assert_failed(&r.outcome, true, "no end after");
    assert_eq!(r.text_chunks, 1);
}

#[tokio::test]
async fn a_non_200_is_an_error_with_the_body() {
    let body = vec![r#"{"error":{"message":"queue full"}}"#.to_string()];
    let url = fake("HTTP/1.1 429 Too Many Requests", body, true, Duration::ZERO).await;
    let r = request(url, None, 5000).await;
    assert_failed(
        &r.outcome,
        false,
        "429 Too Many Requests: {\"error\":{\"message\":\"queue full\"}}",
    );
}

#[tokio::test]
async fn an_error_in_the_stream_is_an_error() {
    let mut parts = good_stream(true)[..2].to_vec();
    parts.push(data(r#"{"error":{"message":"the engine failed"}}"#));
    let url = fake(SSE, parts, true, Duration::ZERO).await;
    let r = request(url, None, 5000).await;
    assert_failed(&r.outcome, false, "the engine failed");
}

#[tokio::test]
async fn a_missing_usage_or_finish_reason_is_an_error() {
    let url = fake(SSE, good_stream(false), true, Duration::ZERO).await;
    let r = request(url, None, 5000).await;
    assert_failed(&r.outcome, false, "no usage");

    let mut parts = good_stream(true);
    parts.remove(3);
    let url = fake(SSE, parts, true, Duration::ZERO).await;
    let r = request(url, None, 5000).await;
    assert_failed(&r.outcome, false, "finish_reason");
}

#[tokio::test]
async fn a_planned_drop_hangs_up_after_that_many_chunks() {
    let url = fake(SSE, good_stream(true), true, Duration::from_secs(5)).await;
    let r = request(url, Some(1), 5000).await;
    assert_eq!((r.outcome, r.text_chunks), (Outcome::Dropped, 1));
    let url = fake(SSE, good_stream(true), true, Duration::from_secs(5)).await;
    let r = request(url, Some(0), 5000).await;
    assert_eq!((r.outcome, r.text_chunks), (Outcome::Dropped, 0));
}

#[tokio::test]
async fn no_server_is_an_error() {
    // Bind then free a port: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let r = request(format!("http://127.0.0.1:{port}/v1/x"), None, 5000).await;
    assert_failed(&r.outcome, false, "send:");
}
