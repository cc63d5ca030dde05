//! What one render may use. A chat template ships with a downloaded model, so it is untrusted
//! code: it must not hang, recurse without bound, eat memory or overflow the stack.
//!
//! - Fuel (minijinja's): about one per instruction plus one per 64 bytes of data created, so it
//!   bounds both time and memory. Real templates use ~30–60 per message.
//! - A recursion limit for macros, includes and nested blocks.
//! - An output cap, and caps on what `tojson` and `pprint` produce.
//! - A stack for the worst value fuel can build: minijinja prints, compares, hashes and drops
//!   nested lists recursively (a few hundred bytes of stack per level), and a template can nest
//!   one level per ~1.6 fuel (`{% set ns.x = [[[ns.x]]] %}` in a loop). Each render runs on
//!   its own thread with a stack sized for that; it stays reserved address space until used.

use minijinja::value::{Value, ValueKind};
use minijinja::{Environment, ErrorKind};
use rmlx_core::{Error, Result};
use std::fmt::Write as _;

/// Fuel for one render (about 30 ms of work at most; ~20,000 messages of a typical template).
pub const FUEL: u64 = 1_000_000;

/// Nesting of macro calls, includes, loops and conditions (minijinja counts a macro call as
/// several levels). Real templates stay under 50; minijinja allows at most 500.
pub const RECURSION_LIMIT: usize = 200;

/// Longest rendered prompt, in bytes (a million tokens is ~4 MB of text).
pub const MAX_OUTPUT_BYTES: usize = 16 << 20;

/// Deepest value `tojson` and `pprint` accept (serde_json's parser stops at 128 too).
pub const MAX_NESTING: usize = 128;

/// Longest `pprint` output: its cost grows with output × nesting (each level indents).
pub const MAX_PPRINT_BYTES: usize = 1 << 20;

/// Stack of the render thread: ~625,000 levels (FUEL / 1.6) at up to ~400 bytes each.
pub const RENDER_STACK_BYTES: usize = 512 << 20;

pub(super) fn invalid(m: String) -> minijinja::Error {
    minijinja::Error::new(ErrorKind::InvalidOperation, m)
}

/// Sets fuel and the recursion limit, and replaces `pprint` with a bounded one.
pub(super) fn apply(env: &mut Environment) {
    env.set_fuel(Some(FUEL));
    env.set_recursion_limit(RECURSION_LIMIT);
    env.add_filter("pprint", pprint);
}

/// Renders template `name` with `ctx` on a thread of its own (see the module comment),
/// collecting at most `MAX_OUTPUT_BYTES`. Everything the render builds is dropped there too.
pub(super) fn render(
    env: &Environment<'static>,
    name: &str,
    ctx: &serde_json::Map<String, serde_json::Value>,
    tmpl_err: fn(minijinja::Error) -> Error,
) -> Result<String> {
    let run = || -> Result<String> {
        let t = env.get_template(name).map_err(tmpl_err)?;
        let mut out = CappedWriter {
            bytes: Vec::new(),
            full: false,
        };
        match t.render_captured_to(Value::from(minijinja::value::Serde(ctx)), &mut out) {
            Ok(_) => {}
            Err(_) if out.full => {
                return Err(Error::format(format!(
                    "chat template: output exceeds {MAX_OUTPUT_BYTES} bytes"
                )))
            }
            Err(e) => return Err(tmpl_err(e)),
        }
        // minijinja writes whole `str` pieces, so the bytes are UTF-8.
        String::from_utf8(out.bytes)
            .map_err(|e| Error::format(format!("chat template: output is not UTF-8: {e}")))
    };
    std::thread::scope(|s| {
        let h = std::thread::Builder::new()
            .name("chat-template".into())
            .stack_size(RENDER_STACK_BYTES)
            .spawn_scoped(s, run)
            .map_err(|e| Error::io("chat template: starting the render thread", e))?;
        h.join().unwrap_or_else(|panic| {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(Error::format(format!(
                "chat template: the renderer panicked: {msg}"
            )))
        })
    })
}

/// True when `v` holds containers nested more than `limit` deep (recursion stops at `limit`).
pub(super) fn nesting_exceeds(v: &Value, limit: usize) -> bool {
    if !matches!(
        v.kind(),
        ValueKind::Seq | ValueKind::Map | ValueKind::Iterable
    ) {
        return false;
    }
    if limit == 0 {
        return true;
    }
    let Ok(items) = v.try_iter() else {
        return false;
    };
    let is_map = v.kind() == ValueKind::Map;
    for item in items {
        // A map iterates its keys: look at the values.
        let child = if is_map {
            v.get_item(&item).unwrap_or_default()
        } else {
            item
        };
        if nesting_exceeds(&child, limit - 1) {
            return true;
        }
    }
    false
}

/// minijinja's `pprint` (`{:#?}`), refused for values nested deeper than `MAX_NESTING` and cut
/// off with an error past `MAX_PPRINT_BYTES`.
fn pprint(value: &Value) -> std::result::Result<String, minijinja::Error> {
    if nesting_exceeds(value, MAX_NESTING) {
        return Err(invalid(format!(
            "pprint: value nested deeper than {MAX_NESTING} levels"
        )));
    }
    let mut out = CappedString(String::new());
    write!(out, "{value:#?}")
        .map_err(|_| invalid(format!("pprint: output exceeds {MAX_PPRINT_BYTES} bytes")))?;
    Ok(out.0)
}

/// A `String` that refuses to grow past `MAX_PPRINT_BYTES`.
struct CappedString(String);

impl std::fmt::Write for CappedString {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        if self.0.len() + s.len() > MAX_PPRINT_BYTES {
            return Err(std::fmt::Error);
        }
        self.0.push_str(s);
        Ok(())
    }
}

/// Collects the output and refuses to grow past `MAX_OUTPUT_BYTES`.
struct CappedWriter {
    bytes: Vec<u8>,
    full: bool,
}

impl std::io::Write for CappedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + buf.len() > MAX_OUTPUT_BYTES {
            self.full = true;
            return Err(std::io::Error::other("chat template output limit"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
