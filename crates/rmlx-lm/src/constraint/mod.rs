//! Structured output: generation constrained by a grammar (a JSON schema, any JSON object, a
//! Lark grammar or a regular expression), compiled by llguidance (what vLLM, SGLang and
//! mistral.rs use).
//!
//! Each step, the sequence's [`Constraint`] gives the set of tokens the grammar allows next
//! (llguidance walks a trie of the vocabulary's bytes: tens of microseconds a step); the
//! sampler draws only among them, as if every other logit were -inf, and the token drawn
//! advances the grammar. Once the grammar is complete nothing but EOS is allowed, and the
//! sequence ends there (also when the model's vocabulary cannot write an EOS). The mask
//! belongs to one sequence: in a batch, other sequences sample freely.
//!
//! [`Scope::HarmonyFinal`] (gpt-oss chat) leaves the analysis and commentary channels free and
//! constrains the content of the `final` channel (`gate`).
//!
//! A forced `tool_choice` is a grammar too (`tools`): the reply must be a call, in the
//! model's tool-call format, with arguments that match the tool's schema.
//!
//! The tokenizer's trie and llguidance's factory are built once per engine, on first use
//! ([`Grammars`]); each request compiles its own grammar ([`crate::Engine::constraint`]).

mod gate;
mod tok_env;
mod tools;

use crate::engine::Engine;
use crate::generate::GenerateOptions;
use crate::sample::Sampler;
use crate::tokenizer::Tokenizer;
use gate::HarmonyGate;
use llguidance::api::TopLevelGrammar;
use llguidance::{Matcher, ParserFactory};
use rmlx_core::{Array, Error, Result};
use serde_json::{json, Value as Json};
use std::sync::OnceLock;
use toktrie::{SimpleVob, TokEnv};

pub use tools::{forced_tool_calls, ForcedTools};

/// What the output (or its part in scope) must match.
#[derive(Clone, Debug, PartialEq)]
pub enum Grammar {
    /// A JSON schema (OpenAI's `response_format: {"type": "json_schema"}`).
    JsonSchema(Json),
    /// Any JSON object (`{"type": "json_object"}`).
    JsonObject,
    /// A grammar in llguidance's Lark dialect.
    Lark(String),
    /// A regular expression the whole output must match.
    Regex(String),
}

/// Which part of the output the grammar covers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Scope {
    /// Every generated token.
    #[default]
    Whole,
    /// Harmony (gpt-oss): the content of the `final` channel only; reasoning is free.
    HarmonyFinal,
}

/// A grammar and its scope: what `GenerateOptions::constraint` asks for.
#[derive(Clone, Debug, PartialEq)]
pub struct ConstraintSpec {
    pub grammar: Grammar,
    pub scope: Scope,
}

impl ConstraintSpec {
    /// `grammar` over the whole output.
    pub fn whole(grammar: Grammar) -> Self {
        ConstraintSpec {
            grammar,
            scope: Scope::Whole,
        }
    }

    /// `grammar` over a chat reply of `engine`: its final channel for gpt-oss, else the whole.
    pub fn for_chat(engine: &Engine, grammar: Grammar) -> Self {
        let scope = if engine.uses_harmony() {
            Scope::HarmonyFinal
        } else {
            Scope::Whole
        };
        ConstraintSpec { grammar, scope }
    }
}

fn err(m: impl std::fmt::Display) -> Error {
    Error::msg(format!("constraint: {m}"))
}

/// Whitespace the JSON grammar allows between tokens: one run of at most this many
/// characters. llguidance's default is unbounded, and a small model under greedy decoding can
/// then write newlines forever instead of closing the object; 16 leaves room for indented
/// (pretty-printed) JSON a few levels deep.
const JSON_WHITESPACE: &str = r"[\x20\x0A\x0D\x09]{1,16}";

/// The llguidance grammar for `g`. A schema's own `x-guidance` options (llguidance's) win
/// over ours.
fn top_level(g: &Grammar) -> Result<TopLevelGrammar> {
    let options = json!({"whitespace_pattern": JSON_WHITESPACE});
    let schema = |mut s: Json| {
        if let Some(o) = s.as_object_mut() {
            o.entry("x-guidance").or_insert(options.clone());
        }
        TopLevelGrammar::from_json_schema(s)
    };
    Ok(match g {
        Grammar::JsonSchema(Json::Bool(true)) => schema(json!({})),
        Grammar::JsonSchema(s @ Json::Object(_)) => schema(s.clone()),
        Grammar::JsonSchema(other) => {
            return Err(err(format!(
                "expected a JSON schema (an object), found {}",
                truncate(&other.to_string(), 80)
            )))
        }
        Grammar::JsonObject => schema(json!({"type": "object"})),
        Grammar::Lark(text) => TopLevelGrammar::from_lark(text.clone()),
        Grammar::Regex(rx) => TopLevelGrammar::from_regex(rx),
    })
}

fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// The tokenizer's trie and llguidance's factory, built on first use (the trie walks the whole
/// vocabulary once: milliseconds for SmolLM2, more for gpt-oss's 200k tokens) and shared by
/// every request of the engine.
#[derive(Default)]
pub struct Grammars {
    factory: OnceLock<std::result::Result<ParserFactory, String>>,
}

impl Grammars {
    fn factory(&self, tok: &Tokenizer) -> Result<&ParserFactory> {
        let built = self.factory.get_or_init(|| {
            let env = tok_env::tok_env(tok).map_err(|e| e.to_string())?;
            let mut f = ParserFactory::new_simple(&env).map_err(|e| err(e).to_string())?;
            // Errors come back as values; llguidance's own stderr logging is noise in a server.
            f.quiet();
            Ok(f)
        });
        built.as_ref().map_err(|e| Error::msg(e.clone()))
    }
}

impl Engine {
    /// Compiles `spec` for this engine's tokenizer: an invalid schema, grammar or regular
    /// expression is an error here, before anything runs.
    pub fn constraint(&self, spec: &ConstraintSpec) -> Result<Constraint> {
        Constraint::compile(
            self.grammars.factory(&self.tokenizer)?,
            spec,
            &self.tokenizer,
        )
    }

    /// The compiled constraint `opts` asks for, if any.
    pub fn constraint_for(&self, opts: &GenerateOptions) -> Result<Option<Constraint>> {
        opts.constraint
            .as_ref()
            .map(|spec| self.constraint(spec))
            .transpose()
    }
}

/// One sequence's grammar state: where it is in the grammar, and (harmony) whether the text
/// in scope has begun.
pub struct Constraint {
    matcher: Matcher,
    env: TokEnv,
    /// `Scope::HarmonyFinal`: the grammar applies once this opens.
    gate: Option<HarmonyGate>,
    /// The allowed ids of the next step, ascending (reused from step to step).
    allowed: Vec<u32>,
    /// The first step's mask, computed when compiling (to report a grammar's errors then).
    first: Option<SimpleVob>,
}

impl std::fmt::Debug for Constraint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Constraint")
            .field("open", &self.is_open())
            .field("stopped", &self.matcher.is_stopped())
            .finish()
    }
}

impl Constraint {
    fn compile(factory: &ParserFactory, spec: &ConstraintSpec, tok: &Tokenizer) -> Result<Self> {
        let grammar = top_level(&spec.grammar)?;
        // llguidance reports bad grammars as errors and guards its own matcher with
        // catch_unwind; the compiler is guarded here too, so that no schema a client sends
        // can take the server down.
        let parser = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            factory.create_parser(grammar)
        }))
        .map_err(|_| err("llguidance panicked while compiling the grammar"))?
        .map_err(err)?;
        let mut matcher = Matcher::new(Ok(parser));
        // Some errors (the lexer's) show only when the first mask is computed: find them now.
        let first = matcher.compute_mask().map_err(err)?;
        Ok(Constraint {
            matcher,
            env: factory.tok_env().clone(),
            gate: (spec.scope == Scope::HarmonyFinal).then(|| HarmonyGate::new(tok)),
            allowed: Vec::new(),
            first: Some(first),
        })
    }

    /// Reads the prompt: in harmony, a prompt that ends inside a final message's content
    /// (a prefilled answer) opens the grammar at once.
    pub(crate) fn start(&mut self, prompt: &[u32]) {
        for &t in prompt {
            self.follow(t);
        }
    }

    /// The grammar applies to the next token.
    pub fn is_open(&self) -> bool {
        self.gate.as_ref().is_none_or(HarmonyGate::is_open)
    }

    /// The grammar is complete and allows nothing more (but EOS): the sequence ends.
    pub fn is_finished(&self) -> bool {
        self.is_open() && self.matcher.is_stopped()
    }

    /// Samples the next token among those the grammar allows (`logits`: one row, of which
    /// the first `vocab` entries are the model's tokens). None when no allowed token is one
    /// the model can write and the grammar may end here (e.g. only EOS is allowed and the
    /// model's vocabulary has none): the sequence ends.
    pub(crate) fn sample(
        &mut self,
        sampler: &mut Sampler,
        logits: &Array,
        vocab: usize,
        history: &[u32],
    ) -> Result<Option<u32>> {
        let mask = match self.first.take() {
            Some(m) => m,
            None => self.matcher.compute_mask_or_eos().map_err(err)?,
        };
        self.allowed.clear();
        let allowed = &mut self.allowed;
        mask.iter_set_entries(|i| allowed.push(i as u32));
        let token = sampler.sample_allowed(logits, vocab, history, &self.allowed)?;
        if token.is_none() && !self.matcher.is_accepting().map_err(err)? {
            return Err(err(
                "the grammar allows no token this model can write (its vocabulary is smaller \
                 than its tokenizer's)",
            ));
        }
        Ok(token)
    }

    /// Takes the token the sequence just got: it advances the grammar (an error if the
    /// grammar does not allow it), or in harmony the gate.
    pub(crate) fn commit(&mut self, token: u32) -> Result<()> {
        if self.is_open() {
            self.first = None;
            return self.matcher.consume_token(token).map_err(err);
        }
        self.follow(token);
        Ok(())
    }

    fn follow(&mut self, token: u32) {
        let trie = self.env.tok_trie();
        if let Some(gate) = &mut self.gate {
            // Prompt ids may lie past the tokenizer's vocabulary (in the model's padding).
            let bytes = if (token as usize) < trie.vocab_size() {
                trie.token(token)
            } else {
                &[]
            };
            gate.push(token, bytes);
        }
    }
}

#[cfg(test)]
mod tests;
