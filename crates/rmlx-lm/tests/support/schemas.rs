//! A JSON schema for structured-output tests and a check of text against a schema (shared by
//! the rmlx-lm and rmlx-server tests; the path works from either crate).

#![allow(dead_code)]

use serde_json::{json, Value as Json};

/// A person, every field bounded, so the grammar ends whatever the model prefers.
pub fn person_schema() -> Json {
    json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 40},
            "age": {"type": "integer", "minimum": 0, "maximum": 150},
            "hobbies": {
                "type": "array",
                "items": {"type": "string", "maxLength": 30},
                "maxItems": 3
            }
        },
        "required": ["name", "age", "hobbies"],
        "additionalProperties": false
    })
}

/// Parses `text` and validates it against `schema` (jsonschema, written elsewhere); panics
/// naming the errors.
pub fn validate(schema: &Json, text: &str) -> Json {
    let v: Json = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text:?}"));
    let validator = jsonschema::validator_for(schema).expect("a valid schema");
    let errors: Vec<String> = validator.iter_errors(&v).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{text}: {errors:?}");
    v
}
