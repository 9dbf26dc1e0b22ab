//! Request validation, with the errors the real API gives.
//!
//! Mistral validates in two layers, and the simulator copies both:
//!
//! 1. The schema layer (FastAPI/Pydantic) answers 422 with
//!    `{"detail":[{"type","loc","msg","input"}]}`: invalid JSON, a body that
//!    is not an object, missing required fields, unknown fields
//!    (`extra_forbidden`: chat requests forbid extra fields) and values of
//!    the wrong type.
//! 2. The semantic layer answers 400 with Mistral's own
//!    `{"object":"error","message","type","param","code"}` shape, here for
//!    the message order rules.

use serde_json::{json, Map, Value};

use crate::wire::{ChatRequest, Message};

/// The top-level fields of a chat request; anything else is a 422.
const CHAT_FIELDS: [&str; 23] = [
    "model",
    "messages",
    "temperature",
    "top_p",
    "max_tokens",
    "stream",
    "stop",
    "random_seed",
    "metadata",
    "response_format",
    "tools",
    "tool_choice",
    "presence_penalty",
    "frequency_penalty",
    "n",
    "prediction",
    "parallel_tool_calls",
    "reasoning_effort",
    "prompt_mode",
    "guardrails",
    "prompt_cache_key",
    "service_tier",
    "safe_prompt",
];

const REQUIRED_FIELDS: [&str; 2] = ["model", "messages"];

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Rejection {
    /// 422 with these `detail` items.
    Schema(Vec<Value>),
    /// 400 in Mistral's error shape.
    Semantic {
        message: String,
        kind: &'static str,
        code: Option<&'static str>,
    },
}

impl Rejection {
    pub(crate) fn status(&self) -> u16 {
        match self {
            Self::Schema(_) => 422,
            Self::Semantic { .. } => 400,
        }
    }

    pub(crate) fn body(&self) -> Value {
        match self {
            Self::Schema(detail) => json!({ "detail": detail }),
            Self::Semantic {
                message,
                kind,
                code,
            } => mistral_error(message, kind, *code),
        }
    }
}

/// Mistral's own error body (the `"object":"error"` shape).
pub(crate) fn mistral_error(message: &str, kind: &str, code: Option<&str>) -> Value {
    json!({
        "object": "error",
        "message": message,
        "type": kind,
        "param": null,
        "code": code,
    })
}

/// Checks a chat request body the way the real API does, and parses it.
pub(crate) fn chat_request(raw: &[u8], parsed: Option<&Value>) -> Result<ChatRequest, Rejection> {
    let value = match parsed {
        Some(value) => value,
        None => return Err(invalid_json(raw)),
    };
    let Value::Object(fields) = value else {
        return Err(Rejection::Schema(vec![json!({
            "type": "model_attributes_type",
            "loc": ["body"],
            "msg": "Input should be a valid dictionary or object to extract fields from",
            "input": value,
        })]));
    };
    check_fields(fields)?;
    let request = parse_fields(fields)?;
    check_message_order(&request.messages)?;
    check_choices(request.n)?;
    Ok(request)
}

/// The most choices the simulator generates for one request.
pub(crate) const MAX_CHOICES: u32 = 16;

/// `n` between 1 and [`MAX_CHOICES`], so that one request cannot make the
/// simulator generate without end.
fn check_choices(n: Option<u32>) -> Result<(), Rejection> {
    match n {
        Some(count) if count == 0 || count > MAX_CHOICES => Err(Rejection::Schema(vec![json!({
            "type": "less_than_equal",
            "loc": ["body", "n"],
            "msg": format!("Input should be between 1 and {MAX_CHOICES}"),
            "input": count,
        })])),
        _ => Ok(()),
    }
}

/// A body that is not JSON at all.
fn invalid_json(raw: &[u8]) -> Rejection {
    let error = match serde_json::from_slice::<Value>(raw) {
        Err(error) => error.to_string(),
        Ok(_) => "invalid JSON".to_owned(),
    };
    Rejection::Schema(vec![json!({
        "type": "json_invalid",
        "loc": ["body", 0],
        "msg": "JSON decode error",
        "input": {},
        "ctx": { "error": error },
    })])
}

/// Missing required fields first, then every unknown field, as Pydantic
/// reports them.
fn check_fields(fields: &Map<String, Value>) -> Result<(), Rejection> {
    let body = Value::Object(fields.clone());
    let mut detail: Vec<Value> = REQUIRED_FIELDS
        .iter()
        .filter(|name| !fields.contains_key(**name))
        .map(|name| {
            json!({
                "type": "missing",
                "loc": ["body", name],
                "msg": "Field required",
                "input": body,
            })
        })
        .collect();
    detail.extend(
        fields
            .iter()
            .filter(|(name, _)| !CHAT_FIELDS.contains(&name.as_str()))
            .map(|(name, input)| {
                json!({
                    "type": "extra_forbidden",
                    "loc": ["body", name],
                    "msg": "Extra inputs are not permitted",
                    "input": input,
                })
            }),
    );
    if detail.is_empty() {
        Ok(())
    } else {
        Err(Rejection::Schema(detail))
    }
}

/// Parses the fields into a [`ChatRequest`]; on failure, names the field
/// (and for messages, the index) whose value does not fit.
fn parse_fields(fields: &Map<String, Value>) -> Result<ChatRequest, Rejection> {
    let error = match serde_json::from_value::<ChatRequest>(Value::Object(fields.clone())) {
        Ok(request) => return Ok(request),
        Err(error) => error,
    };
    let (loc, input) = locate_bad_value(fields);
    Err(Rejection::Schema(vec![json!({
        "type": "value_error",
        "loc": loc,
        "msg": format!("Value error, {error}"),
        "input": input,
    })]))
}

/// Finds the first field that fails on its own, by parsing a minimal valid
/// request with just that field taken from the body.
fn locate_bad_value(fields: &Map<String, Value>) -> (Vec<Value>, Value) {
    if let Some(Value::Array(messages)) = fields.get("messages") {
        for (index, message) in messages.iter().enumerate() {
            if serde_json::from_value::<Message>(message.clone()).is_err() {
                return (
                    json_loc(&["body", "messages"], Some(index)),
                    message.clone(),
                );
            }
        }
    }
    for (name, value) in fields {
        let mut probe = Map::new();
        probe.insert("model".to_owned(), Value::from("probe"));
        probe.insert("messages".to_owned(), Value::Array(Vec::new()));
        probe.insert(name.clone(), value.clone());
        if serde_json::from_value::<ChatRequest>(Value::Object(probe)).is_err() {
            return (json_loc(&["body", name], None), value.clone());
        }
    }
    (json_loc(&["body"], None), Value::Object(fields.clone()))
}

fn json_loc(parts: &[&str], index: Option<usize>) -> Vec<Value> {
    let mut loc: Vec<Value> = parts.iter().map(|part| Value::from(*part)).collect();
    loc.extend(index.map(Value::from));
    loc
}

/// The role rules: no `user` right after `tool`, and the last message must
/// be `user` or `tool`, or `assistant` with `prefix: true`.
fn check_message_order(messages: &[Message]) -> Result<(), Rejection> {
    let order_error = |message: String| Rejection::Semantic {
        message,
        kind: "invalid_request_message_order",
        code: Some("3230"),
    };
    for pair in messages.windows(2) {
        if let [Message::Tool { .. }, Message::User { .. }] = pair {
            return Err(order_error(
                "Unexpected role 'user' after role 'tool'".to_owned(),
            ));
        }
    }
    match messages.last() {
        Some(Message::User { .. } | Message::Tool { .. }) => Ok(()),
        Some(Message::Assistant { prefix: true, .. }) => Ok(()),
        Some(other) => Err(order_error(format!(
            "Expected the last message to have role 'user' or 'tool', or role 'assistant' with prefix true; got role '{}'",
            other.role()
        ))),
        None => Err(order_error(
            "Expected at least one message; the list of messages is empty".to_owned(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(body: &str) -> Result<ChatRequest, Rejection> {
        let parsed = serde_json::from_str::<Value>(body).ok();
        chat_request(body.as_bytes(), parsed.as_ref())
    }

    #[test]
    fn a_minimal_request_passes() {
        let request = check(r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#);
        assert_eq!(request.map(|r| r.model), Ok("m".to_owned()));
    }

    #[test]
    fn missing_fields_are_listed() {
        let rejection = check(r#"{"messages":[]}"#).expect_err("model is required");
        assert_eq!(rejection.status(), 422);
        assert_eq!(rejection.body()["detail"][0]["type"], "missing");
        assert_eq!(
            rejection.body()["detail"][0]["loc"],
            json!(["body", "model"])
        );
    }

    #[test]
    fn a_bad_message_is_located() {
        let rejection =
            check(r#"{"model":"m","messages":[{"role":"user","content":"a"},{"role":"robot"}]}"#)
                .expect_err("unknown role");
        assert_eq!(
            rejection.body()["detail"][0]["loc"],
            json!(["body", "messages", 1])
        );
    }

    #[test]
    fn a_bad_field_type_is_located() {
        let rejection = check(
            r#"{"model":"m","messages":[{"role":"user","content":"a"}],"max_tokens":"many"}"#,
        )
        .expect_err("max_tokens is a number");
        assert_eq!(
            rejection.body()["detail"][0]["loc"],
            json!(["body", "max_tokens"])
        );
    }

    #[test]
    fn too_many_choices_are_refused() {
        let body = r#"{"model":"m","messages":[{"role":"user","content":"x"}],"n":3000000}"#;
        let rejection = check(body).unwrap_err();
        assert_eq!(rejection.status(), 422);
        assert!(check(r#"{"model":"m","messages":[{"role":"user","content":"x"}],"n":3}"#).is_ok());
    }

    #[test]
    fn role_order_is_enforced() {
        let last_assistant = check(
            r#"{"model":"m","messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"}]}"#,
        )
        .expect_err("assistant last");
        assert_eq!(last_assistant.status(), 400);
        assert_eq!(last_assistant.body()["code"], "3230");

        let user_after_tool = check(
            r#"{"model":"m","messages":[{"role":"tool","content":"r","tool_call_id":"abcdefghi"},{"role":"user","content":"a"}]}"#,
        )
        .expect_err("user after tool");
        assert_eq!(
            user_after_tool.body()["type"],
            "invalid_request_message_order"
        );

        assert!(check(
            r#"{"model":"m","messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b","prefix":true}]}"#
        )
        .is_ok());
    }
}
