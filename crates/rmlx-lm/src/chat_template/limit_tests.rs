//! Hostile templates end quickly with an error naming the limit they hit: fuel (endless work,
//! huge values), recursion, output size, and `tojson`'s own bounds.

use super::*;
use serde_json::json;
use std::time::{Duration, Instant};

/// Renders `src` with a short conversation; returns the error text and how long it took.
fn render_err(src: &str) -> (String, Duration) {
    let t = ChatTemplate::new(src, Some("<s>"), Some("</s>")).unwrap();
    let msgs = [json!({"role": "user", "content": "hi"})];
    let start = Instant::now();
    let r = t.render(&msgs, true);
    let took = start.elapsed();
    match r {
        Ok(out) => panic!("expected an error, rendered {} bytes", out.len()),
        Err(e) => (e.to_string(), took),
    }
}

/// Each limit stops the render in a fraction of a second; ten seconds leaves room for a busy
/// machine while still failing on a template that runs unbounded.
fn assert_quick_error(src: &str, expected: &str) {
    let (err, took) = render_err(src);
    assert!(err.contains(expected), "expected '{expected}' in: {err}");
    assert!(took < Duration::from_secs(10), "took {took:?}: {err}");
}

#[test]
fn endless_loops_run_out_of_fuel() {
    // 10^15 iterations: Jinja has no `while`, nested loops are its infinite loop.
    let src = "{% for a in range(100000) %}{% for b in range(100000) %}\
               {% for c in range(100000) %}{{ a }}{% endfor %}{% endfor %}{% endfor %}";
    assert_quick_error(src, "ran out of fuel");
    // Loop-recursion over a list that contains itself is endless as well.
    let src = "{% set ns = namespace(l=[1]) %}{% for x in ns.l * 100000 recursive %}\
               {{ loop(ns.l * 100000) }}{% endfor %}";
    let (err, took) = render_err(src);
    assert!(
        err.contains("ran out of fuel") || err.contains("recursion"),
        "{err}"
    );
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

#[test]
fn unbounded_recursion_hits_the_recursion_limit() {
    assert_quick_error(
        "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
        "recursion",
    );
    // Also on a thread with a small stack (apps render on their own threads).
    let h = std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(|| render_err("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}").0)
        .unwrap();
    let err = h.join().expect("no stack overflow on a 1 MiB stack");
    assert!(err.contains("recursion"), "{err}");
}

#[test]
fn gigabyte_values_are_refused_before_they_are_built() {
    assert_quick_error("{{ 'x' * 1000000000 }}", "ran out of fuel");
    // 100 GB of output: stopped by the output cap before fuel runs out.
    assert_quick_error(
        "{% set s = 'x' * 1000000 %}{% for i in range(100000) %}{{ s }}{% endfor %}",
        "output exceeds",
    );
    // The same in a captured block (`set` blocks, macros) that is never written out.
    assert_quick_error(
        "{% set s = 'x' * 1000000 %}{% set big %}{% for i in range(100000) %}{{ s }}{% endfor %}\
         {% endset %}{{ big | length }}",
        "ran out of fuel",
    );
    assert_quick_error(
        "{{ range(100000) | join(',') * 100000 }}",
        "ran out of fuel",
    );
}

#[test]
fn output_is_capped() {
    // 20 MB of output for ~0.7 M fuel: the output limit, not the fuel, stops it.
    let src = "{% set s = 'y' * 200000 %}{% for i in range(100) %}{{ s }}{% endfor %}";
    assert_quick_error(src, &format!("output exceeds {MAX_OUTPUT_BYTES} bytes"));
}

#[test]
fn tojson_refuses_huge_indents_and_deep_values() {
    assert_quick_error(
        "{{ messages | tojson(indent=1000000000) }}",
        "tojson: output exceeds",
    );
    // A value nested 10,000 deep, built with a namespace (plain `set` in a loop is scoped).
    let deep = "{% set ns = namespace(x=[]) %}{% for i in range(10000) %}{% set ns.x = [ns.x] %}\
                {% endfor %}";
    assert_quick_error(
        &format!("{deep}{{{{ ns.x | tojson }}}}"),
        "nested deeper than 128",
    );
}

/// A template nesting `ns.x` fifty levels per loop step (~1.6 fuel per level, the cheapest
/// way to nest), `steps` times, then running `op`.
fn nest_then(steps: usize, op: &str) -> String {
    let (open, close) = ("[".repeat(50), "]".repeat(50));
    format!(
        "{{% set ns = namespace(x=[]) %}}{{% for i in range({steps}) %}}\
         {{% set ns.x = {open}ns.x{close} %}}{{% endfor %}}{op}"
    )
}

#[test]
fn the_deepest_value_fuel_can_build_is_dropped_safely() {
    // minijinja drops nested values recursively; the render thread's stack holds the deepest
    // value the fuel can build (the loop runs until the fuel is gone: ~600,000 levels).
    let (err, took) = render_err(&nest_then(100_000, ""));
    assert!(err.contains("ran out of fuel"), "{err}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

#[test]
fn nested_values_near_the_fuel_limit_are_printed_compared_and_hashed() {
    // 400,000 levels (~65% of the fuel; the rest pays for the ops): far deeper than an
    // ordinary 8 MiB stack takes.
    let steps = 8_000;
    let levels = steps * 50;
    for (op, expected) in [
        ("{{ ns.x == ns.x }}", "True".to_string()),
        ("{{ (ns.x ~ '') | length }}", (2 * levels + 2).to_string()),
        ("{{ ns.x | string | length }}", (2 * levels + 2).to_string()),
        (
            "{{ [ns.x, ns.x] | unique | list | length }}",
            "1".to_string(),
        ),
        ("{{ [ns.x, ns.x] | sort | length }}", "2".to_string()),
    ] {
        let t = ChatTemplate::new(&nest_then(steps, op), None, None).unwrap();
        let out = t.render(&[], false).unwrap_or_else(|e| panic!("{op}: {e}"));
        assert_eq!(out, expected, "{op}");
    }
    // The bounded filters refuse it with a clear error instead.
    for (op, expected) in [
        (
            "{{ ns.x | pprint }}",
            "pprint: value nested deeper than 128",
        ),
        (
            "{{ ns.x | tojson }}",
            "tojson: value nested deeper than 128",
        ),
    ] {
        assert_quick_error(&nest_then(steps, op), expected);
    }
}

#[test]
fn ordinary_templates_are_unaffected() {
    let t = ChatTemplate::new(
        "{% for m in messages %}<{{ m.role }}>{{ m.content | tojson(indent=2) }}{% endfor %}",
        None,
        None,
    )
    .unwrap();
    let msgs: Vec<Json> = (0..2000)
        .map(|i| json!({"role": "user", "content": format!("message {i}")}))
        .collect();
    let out = t.render(&msgs, false).unwrap();
    assert!(
        out.starts_with("<user>\"message 0\"<user>\"message 1\""),
        "{out:.40}"
    );
    assert!(out.ends_with("<user>\"message 1999\""));
}

/// Templates whose operator chains overflowed the stack while minijinja compiled them.
fn chains(n: usize) -> Vec<(&'static str, String)> {
    vec![
        ("filters", format!("{{{{ 1{} }}}}", "|abs".repeat(n))),
        (
            "attributes",
            format!("{{{{ messages{} }}}}", ".a".repeat(n)),
        ),
        (
            "subscripts",
            format!("{{{{ messages{} }}}}", "[0]".repeat(n)),
        ),
        ("calls", format!("{{{{ range{} }}}}", "()".repeat(n))),
        ("tests", format!("{{{{ 1{} }}}}", " is number".repeat(n))),
        ("not", format!("{{{{ {}true }}}}", "not ".repeat(n))),
        ("minus", format!("{{{{ {}1 }}}}", "- ".repeat(n))),
        ("concat", format!("{{{{ {}'b' }}}}", "'a' ~ ".repeat(n))),
        ("plus", format!("{{{{ {}1 }}}}", "1 + ".repeat(n))),
        (
            "and",
            format!("{{% if {}true %}}x{{% endif %}}", "true and ".repeat(n)),
        ),
        (
            "ternary",
            format!("{{{{ {}1 }}}}", "1 if true else ".repeat(n)),
        ),
    ]
}

#[test]
fn long_operator_chains_are_refused_before_compiling() {
    for (name, src) in chains(50_000) {
        let start = Instant::now();
        let e = ChatTemplate::new(&src, None, None).unwrap_err().to_string();
        assert!(
            e.contains(&format!(
                "expected at most {MAX_BLOCK_OPERATORS} operators in a block"
            )),
            "{name}: {e}"
        );
        assert!(start.elapsed() < Duration::from_secs(10), "{name}");
    }
    let big = format!("{{{{ 1 }}}}{}", "x".repeat(MAX_TEMPLATE_BYTES));
    let e = ChatTemplate::new(&big, None, None).unwrap_err().to_string();
    assert!(e.contains("bytes of source"), "{e}");
}

#[test]
fn chains_at_the_limit_compile_and_render_on_a_small_stack() {
    // Chains near the most a block may hold (a link counts one or two operators), on a 1 MiB
    // thread: the limit leaves room on any stack.
    let h = std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(|| {
            for (name, src) in chains(MAX_BLOCK_OPERATORS / 2) {
                let t =
                    ChatTemplate::new(&src, None, None).unwrap_or_else(|e| panic!("{name}: {e}"));
                let _ = t.render(&[json!({"role": "user", "content": "x"})], false);
            }
        })
        .unwrap();
    h.join().expect("no stack overflow");
    // Operators inside strings, comments and raw blocks are text.
    let src = format!(
        "{{{{ '{0}' }}}}{{# {0} #}}{{% raw %}}{{{{ {0} }}}}{{% endraw %}}",
        "|.+".repeat(1000)
    );
    assert!(ChatTemplate::new(&src, None, None).is_ok());
}
