//! `rmlx serve` as a user starts it: it says where it listens, answers the chat API, requires
//! its API key, and a bad `--ctx` is an error before it listens. (The API itself is tested in
//! crates/rmlx-server/tests.)

#[path = "../../rmlx-lm/tests/support/tiny_chat.rs"]
mod tiny_chat;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

/// Kills the server when the test ends, passing or not.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rmlx_serve(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rmlx"));
    c.args(["--device", "cpu", "-t", "1", "serve", "--port", "0"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

/// One HTTP/1.1 request; returns the status line and the body.
fn http(addr: &str, method: &str, path: &str, body: &str, key: Option<&str>) -> (String, String) {
    let mut s = TcpStream::connect(addr).expect("connect to the server");
    let auth = key.map_or(String::new(), |k| format!("Authorization: Bearer {k}\r\n"));
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n{auth}\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send request");
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("read answer");
    let (head, body) = answer.split_once("\r\n\r\n").expect("HTTP head and body");
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

#[test]
fn serve_answers_chat_requests_with_its_key() {
    let model = tiny_chat::llama_chat(128);
    let dir_name = model
        .path()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let path = model.path().to_str().unwrap();
    let mut child = rmlx_serve(&["--model", path, "--api-key", "k", "--parallel", "2"])
        .spawn()
        .expect("run rmlx serve");
    let stderr = child.stderr.take().expect("stderr");
    let server = Server(child);
    // "rmlx: serving `ID` (context N, P at once) on http://ADDR (…)"
    let mut line = String::new();
    let mut lines = BufReader::new(stderr);
    while !line.contains("serving") {
        line.clear();
        assert!(
            lines.read_line(&mut line).expect("read stderr") > 0,
            "rmlx serve ended before listening"
        );
    }
    assert!(line.contains(&format!("`{dir_name}`")), "{line}");
    assert!(line.contains("context 128, 2 at once"), "{line}");
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("address in the serving line")
        .to_string();

    let body = format!(
        r#"{{"model": "{dir_name}", "messages": [{{"role": "user", "content": "Hi"}}], "max_tokens": 5, "temperature": 0}}"#
    );
    let (status, answer) = http(&addr, "POST", "/v1/chat/completions", &body, Some("k"));
    assert!(status.contains("200"), "{status}: {answer}");
    let v: serde_json::Value = serde_json::from_str(&answer).expect("JSON answer");
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["usage"]["completion_tokens"], 5);

    let (status, answer) = http(&addr, "POST", "/v1/chat/completions", &body, None);
    assert!(status.contains("401"), "{status}: {answer}");
    let (status, _) = http(&addr, "GET", "/health", "", None);
    assert!(status.contains("200"), "{status}");
    drop(server);
}

#[test]
fn serve_refuses_a_context_past_the_model_before_listening() {
    let model = tiny_chat::llama_chat(128);
    let out = rmlx_serve(&["--model", model.path().to_str().unwrap(), "--ctx", "999"])
        .output()
        .expect("run rmlx serve");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("999") && err.contains("128"), "{err}");
}

#[test]
fn serve_refuses_zero_parallel_requests_before_listening() {
    let model = tiny_chat::llama_chat(128);
    let path = model.path().to_str().unwrap();
    for flag in ["--parallel", "--step-tokens"] {
        let out = rmlx_serve(&["--model", path, flag, "0"])
            .output()
            .expect("run rmlx serve");
        assert!(!out.status.success(), "{flag} 0 accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("at least 1 parallel request"), "{err}");
        assert!(!err.contains("serving"), "{err}");
    }
}
