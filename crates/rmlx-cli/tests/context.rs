//! The context from the command line: an over-long request is one clear error within a second
//! naming its numbers, `--ctx` is validated on every command that runs a model and sizes the
//! KV cache, and `rmlx chat` keeps going past the context, saying once that it dropped turns.

#[path = "../../rmlx-lm/tests/support/tiny_chat.rs"]
mod tiny_chat;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
    took: Duration,
}

fn rmlx(args: &[&str], stdin: &str) -> Run {
    let t = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rmlx"))
        .args(args)
        .args(["--device", "cpu", "-t", "1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run rmlx");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("rmlx output");
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took: t.elapsed(),
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A request refused before any work: one error line naming `expected`, within a second.
fn refused(args: &[&str], expected: &str) {
    let r = rmlx(args, "");
    assert!(!r.ok, "{args:?} succeeded");
    assert!(
        r.took < Duration::from_secs(1),
        "{args:?} took {:?}",
        r.took
    );
    assert!(r.stderr.contains(expected), "{args:?}: {}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{args:?}: {}", r.stderr);
}

/// `rmlx generate --model MODEL --no-chat-template --prompt PROMPT EXTRA…`
fn generate<'a>(model: &'a Path, prompt: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["generate", "--model", path(model), "--no-chat-template"];
    args.extend(["--prompt", prompt]);
    args.extend(extra);
    args
}

#[test]
fn overlong_prompt_fails_within_a_second_naming_both_numbers() {
    let chat = tiny_chat::llama_chat(64);
    let long = "x".repeat(5000);
    refused(
        &generate(chat.path(), &long, &["--max-tokens", "8"]),
        "generate: 5000 prompt tokens + 8 new tokens exceed the context of 64 tokens",
    );
    // The same through --ctx on a model whose own context is 2048, default --max-tokens 256.
    let harmony = tiny_chat::fixtures().join("harmony");
    let prompt = "y".repeat(100);
    refused(
        &generate(&harmony, &prompt, &["--ctx", "32"]),
        "100 prompt tokens + 256 new tokens exceed the context of 32 tokens",
    );
    refused(
        &generate(&harmony, "hi", &["--max-tokens", "0"]),
        "expected a positive number of tokens or `ctx`, found `0`",
    );
    // `--max-tokens ctx`: as many tokens as the context leaves (4 here), then `Length`.
    let extra = ["--ctx", "104", "--max-tokens", "ctx", "--temperature", "0"];
    let r = rmlx(&generate(&harmony, &prompt, &extra), "");
    assert!(r.ok, "{}", r.stderr);
    assert!(
        r.stderr.contains("generated 4 tok") && r.stderr.contains("Length")
            || r.stderr.contains("Eos"),
        "{}",
        r.stderr
    );
}

#[test]
fn ctx_is_validated_on_every_command() {
    // Its own context is 512.
    let chat = tiny_chat::llama_chat(512);
    let m = path(chat.path());
    let text = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(text.path(), "some text to score ".repeat(20)).unwrap();
    let npy = tempfile::NamedTempFile::new().unwrap();
    for (ctx, expected) in [
        ("0", "found 0"),
        (
            "513",
            "expected 1 to 512 tokens (the model's maximum), found 513",
        ),
    ] {
        let commands: Vec<Vec<&str>> = vec![
            vec!["generate", "--model", m, "--prompt", "hi"],
            vec!["chat", "--model", m],
            vec!["bench", "--model", m, "-p", "4", "-n", "2"],
            vec![
                "logits",
                "--model",
                m,
                "--tokens",
                "1,2",
                "--out",
                path(npy.path()),
            ],
            vec!["perplexity", "--model", m, "--file", path(text.path())],
        ];
        for mut args in commands {
            args.extend(["--ctx", ctx]);
            refused(&args, expected);
        }
    }
    // A valid --ctx runs (perplexity: chunks of 16 tokens).
    let r = rmlx(
        &[
            "perplexity",
            "--model",
            m,
            "--file",
            path(text.path()),
            "--ctx",
            "16",
            "--json",
        ],
        "",
    );
    assert!(r.ok, "{}", r.stderr);
    let j: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(j["ctx"], 16);
}

#[test]
fn ctx_sizes_the_kv_cache_and_bounds_requests() {
    let llama = tiny_chat::fixtures().join("hf/llama");
    let m = path(&llama);
    let bench = |extra: &[&str]| {
        let mut args = vec!["bench", "--model", m, "-p", "8", "-n", "4", "--json"];
        args.extend(extra);
        let r = rmlx(&args, "");
        assert!(r.ok, "{}", r.stderr);
        serde_json::from_str::<serde_json::Value>(r.stdout.trim()).unwrap()
    };
    // 2 layers × keys and values × 2 kv heads × 16 dims × 4 bytes = 512 bytes a position; the
    // cache grows in steps of 256 positions, but never past the context.
    let full = bench(&[]);
    assert_eq!(full["context"], 512);
    assert_eq!(full["kv_cache_bytes"], 256 * 512);
    let small = bench(&["--ctx", "16"]);
    assert_eq!(small["context"], 16);
    assert_eq!(small["kv_cache_bytes"], 16 * 512);

    refused(
        &["bench", "--model", m, "-p", "12", "-n", "8", "--ctx", "16"],
        "bench: 12 prompt tokens + 8 new tokens exceed the context of 16 tokens",
    );
    let npy = tempfile::NamedTempFile::new().unwrap();
    refused(
        &[
            "logits",
            "--model",
            m,
            "--tokens",
            "1,2,3,4,5",
            "--ctx",
            "4",
            "--out",
            path(npy.path()),
        ],
        "logits: 5 prompt tokens exceed the context of 4 tokens",
    );
}

#[test]
fn chat_keeps_going_past_the_context_and_says_so_once() {
    let chat = tiny_chat::llama_chat(512);
    let mut input = String::new();
    for i in 0..14 {
        input.push_str(&format!("Question {i}: what comes after {}?\n", i * 7));
        if i == 6 {
            // Too long for any history: this turn's error, and the chat goes on.
            input.push_str(&"z".repeat(400));
            input.push('\n');
        }
    }
    let r = rmlx(
        &[
            "chat",
            "--model",
            path(chat.path()),
            "--ctx",
            "160",
            "--max-tokens",
            "12",
            "--temperature",
            "0",
        ],
        &input,
    );
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(
        r.stderr.matches("older turns were dropped").count(),
        1,
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("context of 160 tokens"), "{}", r.stderr);
    let errors: Vec<&str> = r.stderr.lines().filter(|l| l.contains("error:")).collect();
    assert_eq!(errors.len(), 1, "{}", r.stderr);
    assert!(
        errors[0].contains("12 tokens kept for the reply exceed the context of 160 tokens"),
        "{}",
        errors[0]
    );
    // Every other message was answered: one timing line each.
    assert_eq!(
        r.stderr.matches("generated 12 tok").count(),
        14,
        "{}",
        r.stderr
    );
}
