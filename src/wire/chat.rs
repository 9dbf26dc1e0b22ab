//! Chat completion types: the request, the plain response and the stream chunk.
//!
//! The types follow Mistral's public OpenAPI schema field by field, with two
//! rules on top:
//!
//! - **Requests send only what Mistral accepts.** The server rejects unknown
//!   request fields with a 422, so a request carries only the spec's fields,
//!   and optional ones are left out when unset. There is no `stream_options`
//!   (Mistral always sends usage in the last stream chunk) and no `user`.
//! - **Responses accept everything.** Real responses carry fields the spec
//!   does not list (`p` padding, `logprobs`, usage details), and enum values
//!   grow over time. Unknown fields are ignored and unknown enum values are
//!   kept in an `Other` variant.
//!
//! ```
//! use mistral_events::wire::{ChatRequest, Message, ToolChoice};
//!
//! let request = ChatRequest::new(
//!     "mistral-small-latest",
//!     vec![Message::system("Be brief."), Message::user("Say hi")],
//! )
//! .max_tokens(32)
//! .tool_choice(ToolChoice::Auto);
//! let json = serde_json::to_value(&request).unwrap();
//! assert_eq!(json["max_tokens"], 32);
//! assert!(json.get("temperature").is_none());
//! ```

use serde::de::Deserializer;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::enums::open_enum;

/// The body of `POST /v1/chat/completions`.
///
/// Build it with [`ChatRequest::new`] and the chained setters; every optional
/// field starts unset and is then left out of the JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ChatRequest {
    /// The model id, such as `mistral-small-latest`.
    pub model: String,
    /// The conversation so far.
    pub messages: Vec<Message>,
    /// Sampling temperature, 0 to 1.5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling mass, above 0 and at most 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// The most tokens to generate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Whether to answer with a server-sent event stream. The client sets
    /// this itself in [`Client::chat`](crate::Client::chat) and
    /// [`Client::chat_stream`](crate::Client::chat_stream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Where to stop generating.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stop>,
    /// Seed for deterministic sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub random_seed: Option<u64>,
    /// Free-form metadata stored with the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Map<String, Value>>,
    /// The format the answer must take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
    /// Tools the model may call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// Whether and which tool the model must call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// Penalty on tokens already present, -2 to 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    /// Penalty on frequent tokens, -2 to 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    /// How many answers to generate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    /// Expected output, to speed up generation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prediction: Option<Prediction>,
    /// Whether the model may call several tools at once (server default: true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    /// How hard a reasoning model thinks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<ReasoningEffort>,
    /// The prompt mode; `reasoning` selects the reasoning system prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_mode: Option<String>,
    /// Guardrail configurations, passed through as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guardrails: Option<Vec<Value>>,
    /// A key that groups requests sharing a prompt prefix for caching.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_cache_key: Option<String>,
    /// The requested service tier (`auto` or `standard_only`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_tier: Option<String>,
    /// Whether to prepend Mistral's safety prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safe_prompt: Option<bool>,
}

impl ChatRequest {
    /// A request for `model` with `messages` and every option unset.
    pub fn new(model: impl Into<String>, messages: Vec<Message>) -> Self {
        Self {
            model: model.into(),
            messages,
            temperature: None,
            top_p: None,
            max_tokens: None,
            stream: None,
            stop: None,
            random_seed: None,
            metadata: None,
            response_format: None,
            tools: None,
            tool_choice: None,
            presence_penalty: None,
            frequency_penalty: None,
            n: None,
            prediction: None,
            parallel_tool_calls: None,
            reasoning_effort: None,
            prompt_mode: None,
            guardrails: None,
            prompt_cache_key: None,
            service_tier: None,
            safe_prompt: None,
        }
    }

    /// Sets `temperature`.
    #[must_use]
    pub fn temperature(mut self, value: f64) -> Self {
        self.temperature = Some(value);
        self
    }

    /// Sets `top_p`.
    #[must_use]
    pub fn top_p(mut self, value: f64) -> Self {
        self.top_p = Some(value);
        self
    }

    /// Sets `max_tokens`.
    #[must_use]
    pub fn max_tokens(mut self, value: u32) -> Self {
        self.max_tokens = Some(value);
        self
    }

    /// Sets `stop`.
    #[must_use]
    pub fn stop(mut self, value: impl Into<Stop>) -> Self {
        self.stop = Some(value.into());
        self
    }

    /// Sets `random_seed`.
    #[must_use]
    pub fn random_seed(mut self, value: u64) -> Self {
        self.random_seed = Some(value);
        self
    }

    /// Sets `response_format`.
    #[must_use]
    pub fn response_format(mut self, value: ResponseFormat) -> Self {
        self.response_format = Some(value);
        self
    }

    /// Sets `tools`.
    #[must_use]
    pub fn tools(mut self, value: Vec<Tool>) -> Self {
        self.tools = Some(value);
        self
    }

    /// Sets `tool_choice`.
    #[must_use]
    pub fn tool_choice(mut self, value: ToolChoice) -> Self {
        self.tool_choice = Some(value);
        self
    }

    /// Sets `n`, the number of answers.
    #[must_use]
    pub fn n(mut self, value: u32) -> Self {
        self.n = Some(value);
        self
    }

    /// Sets `reasoning_effort`.
    #[must_use]
    pub fn reasoning_effort(mut self, value: ReasoningEffort) -> Self {
        self.reasoning_effort = Some(value);
        self
    }
}

/// One message of a conversation, discriminated by `role`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "lowercase")]
#[non_exhaustive]
pub enum Message {
    /// Instructions that frame the conversation.
    System {
        /// The text, or text and thinking parts.
        content: Content,
    },
    /// What the user said.
    User {
        /// The text, null, or parts (text, images, documents, …).
        content: Option<Content>,
    },
    /// What the model answered, or a prefix it must continue.
    Assistant {
        /// The answer text; may be null when the message holds tool calls.
        #[serde(default)]
        content: Option<Content>,
        /// Tool calls the model made.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tool_calls: Option<Vec<ToolCall>>,
        /// When true, the model continues this text instead of answering
        /// anew. Left out of the JSON when false.
        #[serde(default, skip_serializing_if = "is_false")]
        prefix: bool,
    },
    /// The result of a tool call.
    Tool {
        /// The tool's output.
        content: Option<Content>,
        /// The id of the call this answers.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tool_call_id: Option<String>,
        /// The tool's name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
}

fn is_false(value: &bool) -> bool {
    !*value
}

impl Message {
    /// A system message.
    pub fn system(text: impl Into<String>) -> Self {
        Self::System {
            content: Content::Text(text.into()),
        }
    }

    /// A user message.
    pub fn user(text: impl Into<String>) -> Self {
        Self::User {
            content: Some(Content::Text(text.into())),
        }
    }

    /// An assistant message holding earlier answer text.
    pub fn assistant(text: impl Into<String>) -> Self {
        Self::Assistant {
            content: Some(Content::Text(text.into())),
            tool_calls: None,
            prefix: false,
        }
    }

    /// An assistant message with `prefix: true`: the model must continue
    /// from exactly this text.
    pub fn assistant_prefix(text: impl Into<String>) -> Self {
        Self::Assistant {
            content: Some(Content::Text(text.into())),
            tool_calls: None,
            prefix: true,
        }
    }

    /// A tool result answering the call `tool_call_id`.
    pub fn tool(tool_call_id: impl Into<String>, text: impl Into<String>) -> Self {
        Self::Tool {
            content: Some(Content::Text(text.into())),
            tool_call_id: Some(tool_call_id.into()),
            name: None,
        }
    }

    /// The role name as sent on the wire.
    pub fn role(&self) -> &'static str {
        match self {
            Self::System { .. } => "system",
            Self::User { .. } => "user",
            Self::Assistant { .. } => "assistant",
            Self::Tool { .. } => "tool",
        }
    }

    /// The message's text: the string content, or its text parts joined.
    pub fn text(&self) -> String {
        let content = match self {
            Self::System { content } => Some(content),
            Self::User { content }
            | Self::Assistant { content, .. }
            | Self::Tool { content, .. } => content.as_ref(),
        };
        content.map(Content::text).unwrap_or_default()
    }
}

/// Message content: a plain string or an array of typed parts.
///
/// A JSON `null` is modelled as `Option<Content>::None` by the fields that
/// allow it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Typed parts, such as text and thinking.
    Parts(Vec<ContentPart>),
}

impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // By the JSON type, rather than `#[serde(untagged)]`: untagged
        // buffers the value and tries each variant, which made the string
        // of every streamed chunk cost a copy and a second parse.
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Content;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or an array of content parts")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Content, E> {
                Ok(Content::Text(text.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, text: String) -> Result<Content, E> {
                Ok(Content::Text(text))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Content, A::Error> {
                content_parts(seq).map(Content::Parts)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// Reads an array of content parts.
pub(crate) fn content_parts<'de, A: serde::de::SeqAccess<'de>>(
    mut seq: A,
) -> Result<Vec<ContentPart>, A::Error> {
    let mut parts = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(16));
    while let Some(part) = seq.next_element()? {
        parts.push(part);
    }
    Ok(parts)
}

impl Content {
    /// The answer text: the string, or the `text` parts joined. Thinking and
    /// other parts are left out.
    pub fn text(&self) -> String {
        match self {
            Self::Text(text) => text.clone(),
            Self::Parts(parts) => parts
                .iter()
                .filter_map(|part| match part {
                    ContentPart::Text { text } => Some(text.as_str()),
                    _ => None,
                })
                .collect(),
        }
    }
}

impl From<&str> for Content {
    fn from(value: &str) -> Self {
        Self::Text(value.to_owned())
    }
}

impl From<String> for Content {
    fn from(value: String) -> Self {
        Self::Text(value)
    }
}

/// One typed part of message content.
///
/// Part types this crate does not model (and future ones) parse into
/// [`ContentPart::Other`], which keeps the JSON as it came.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ContentPart {
    /// Text.
    Text {
        /// The text.
        text: String,
    },
    /// Reasoning, as produced by reasoning models. Never part of the answer.
    Thinking {
        /// The reasoning, as text and reference parts.
        thinking: Vec<ContentPart>,
        /// A signature that lets the reasoning be replayed across turns.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signature: Option<String>,
        /// Whether the thinking block is closed (server default: true).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        closed: Option<bool>,
    },
    /// An image, by URL or data URL.
    ImageUrl {
        /// A URL string, or an object with `url` and `detail`.
        image_url: Value,
    },
    /// A document, by URL.
    DocumentUrl {
        /// The document's URL.
        document_url: String,
        /// The document's name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        document_name: Option<String>,
    },
    /// Citation markers pointing at tool results.
    Reference {
        /// The ids of the cited sources.
        reference_ids: Vec<Value>,
    },
    /// An uploaded file, by id.
    File {
        /// The file's id.
        file_id: String,
    },
    /// A part type this crate does not model, kept verbatim.
    #[serde(untagged)]
    Other(Value),
}

impl ContentPart {
    /// A text part.
    pub fn text(text: impl Into<String>) -> Self {
        Self::Text { text: text.into() }
    }

    /// The text of a thinking part's text parts, joined.
    pub fn thinking_text(&self) -> Option<String> {
        match self {
            Self::Thinking { thinking, .. } => Some(
                thinking
                    .iter()
                    .filter_map(|part| match part {
                        Self::Text { text } => Some(text.as_str()),
                        _ => None,
                    })
                    .collect(),
            ),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for ContentPart {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Mirror of the known parts; anything that does not fit one of them,
        // including a known tag with an unexpected shape, is kept as JSON.
        #[derive(Deserialize)]
        #[serde(tag = "type", rename_all = "snake_case")]
        enum Known {
            Text {
                text: String,
            },
            Thinking {
                thinking: Vec<ContentPart>,
                #[serde(default)]
                signature: Option<String>,
                #[serde(default)]
                closed: Option<bool>,
            },
            ImageUrl {
                image_url: Value,
            },
            DocumentUrl {
                document_url: String,
                #[serde(default)]
                document_name: Option<String>,
            },
            Reference {
                reference_ids: Vec<Value>,
            },
            File {
                file_id: String,
            },
        }

        let value = Value::deserialize(deserializer)?;
        Ok(match Known::deserialize(&value) {
            Ok(Known::Text { text }) => Self::Text { text },
            Ok(Known::Thinking {
                thinking,
                signature,
                closed,
            }) => Self::Thinking {
                thinking,
                signature,
                closed,
            },
            Ok(Known::ImageUrl { image_url }) => Self::ImageUrl { image_url },
            Ok(Known::DocumentUrl {
                document_url,
                document_name,
            }) => Self::DocumentUrl {
                document_url,
                document_name,
            },
            Ok(Known::Reference { reference_ids }) => Self::Reference { reference_ids },
            Ok(Known::File { file_id }) => Self::File { file_id },
            Err(_) => Self::Other(value),
        })
    }
}

/// Where generation stops: one string or several.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    /// A single stop string.
    One(String),
    /// Several stop strings.
    Many(Vec<String>),
}

impl From<&str> for Stop {
    fn from(value: &str) -> Self {
        Self::One(value.to_owned())
    }
}

impl From<Vec<String>> for Stop {
    fn from(value: Vec<String>) -> Self {
        Self::Many(value)
    }
}

/// The format the answer must take.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ResponseFormat {
    /// `text`, `json_object` or `json_schema`.
    #[serde(rename = "type")]
    pub kind: ResponseFormatKind,
    /// The schema, for `json_schema`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_schema: Option<JsonSchema>,
}

impl ResponseFormat {
    /// Free text (the server's default).
    pub fn text() -> Self {
        Self {
            kind: ResponseFormatKind::Text,
            json_schema: None,
        }
    }

    /// Any JSON object.
    pub fn json_object() -> Self {
        Self {
            kind: ResponseFormatKind::JsonObject,
            json_schema: None,
        }
    }

    /// JSON that follows `schema`.
    pub fn json_schema(schema: JsonSchema) -> Self {
        Self {
            kind: ResponseFormatKind::JsonSchema,
            json_schema: Some(schema),
        }
    }
}

open_enum! {
    /// The kind of [`ResponseFormat`].
    pub enum ResponseFormatKind {
        /// Free text.
        Text => "text",
        /// Any JSON object.
        JsonObject => "json_object",
        /// JSON following a schema.
        JsonSchema => "json_schema",
    }
}

/// A named JSON schema for structured output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct JsonSchema {
    /// The schema's name.
    pub name: String,
    /// What the schema describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The JSON Schema document.
    pub schema: Value,
    /// Whether the model must follow the schema strictly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

impl JsonSchema {
    /// A schema named `name`.
    pub fn new(name: impl Into<String>, schema: Value) -> Self {
        Self {
            name: name.into(),
            description: None,
            schema,
            strict: None,
        }
    }
}

/// Expected output, used to speed up generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Prediction {
    /// Always `content`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The expected text.
    pub content: String,
}

impl Prediction {
    /// A prediction of `content`.
    pub fn content(content: impl Into<String>) -> Self {
        Self {
            kind: "content".to_owned(),
            content: content.into(),
        }
    }
}

open_enum! {
    /// How hard a reasoning model thinks.
    pub enum ReasoningEffort {
        /// No reasoning.
        None => "none",
        /// Minimal reasoning.
        Minimal => "minimal",
        /// Low effort.
        Low => "low",
        /// Medium effort.
        Medium => "medium",
        /// High effort.
        High => "high",
        /// The most effort.
        Xhigh => "xhigh",
    }
}

/// A tool the model may call.
///
/// Function tools are typed; the built-in tools (`web_search`,
/// `code_interpreter`, `document_library`, …) and any future type are kept
/// as JSON in [`Tool::Other`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum Tool {
    /// A function the caller implements.
    Function(FunctionTool),
    /// A built-in or unknown tool, as JSON (for example
    /// `{"type":"web_search"}`).
    Other(Value),
}

impl Tool {
    /// A function tool.
    pub fn function(
        name: impl Into<String>,
        description: impl Into<String>,
        parameters: Value,
    ) -> Self {
        Self::Function(FunctionTool {
            kind: FunctionType::Function,
            function: Function {
                name: name.into(),
                description: Some(description.into()),
                parameters,
                strict: None,
            },
        })
    }
}

/// A `{"type":"function","function":{…}}` tool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FunctionTool {
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: FunctionType,
    /// The function's definition.
    pub function: Function,
}

/// The `function` tag of a function tool; other tags do not match it, so
/// they fall through to [`Tool::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FunctionType {
    /// A function.
    Function,
}

/// A function definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Function {
    /// The function's name.
    pub name: String,
    /// What it does, for the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Its parameters, as a JSON Schema object.
    pub parameters: Value,
    /// Whether arguments must follow the schema strictly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// Whether and which tool the model must call.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ToolChoice {
    /// The model must call a tool.
    Any,
    /// The model decides.
    Auto,
    /// The model must not call a tool.
    None,
    /// The model must call a tool (synonym of `any`).
    Required,
    /// The model must call this function.
    Function(String),
    /// A value this crate does not know.
    Other(String),
}

impl Serialize for ToolChoice {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Any => serializer.serialize_str("any"),
            Self::Auto => serializer.serialize_str("auto"),
            Self::None => serializer.serialize_str("none"),
            Self::Required => serializer.serialize_str("required"),
            Self::Other(other) => serializer.serialize_str(other),
            Self::Function(name) => serde_json::json!({
                "type": "function",
                "function": { "name": name },
            })
            .serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for ToolChoice {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        match &value {
            Value::String(name) => Ok(match name.as_str() {
                "any" => Self::Any,
                "auto" => Self::Auto,
                "none" => Self::None,
                "required" => Self::Required,
                other => Self::Other(other.to_owned()),
            }),
            Value::Object(map) => map
                .get("function")
                .and_then(|function| function.get("name"))
                .and_then(Value::as_str)
                .map(|name| Self::Function(name.to_owned()))
                .ok_or_else(|| {
                    serde::de::Error::custom("tool_choice object without function.name")
                }),
            _ => Err(serde::de::Error::custom(
                "tool_choice must be a string or an object",
            )),
        }
    }
}

/// A call the model made to a tool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ToolCall {
    /// The call's id (nine alphanumerics from Mistral's own models).
    #[serde(default, deserialize_with = "null_as_default")]
    pub id: String,
    /// Always `function` today.
    #[serde(
        rename = "type",
        default = "default_tool_type",
        deserialize_with = "tool_type_or_default"
    )]
    pub kind: String,
    /// The function and its arguments.
    pub function: FunctionCall,
    /// The call's position; streamed fragments are joined by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
}

fn default_tool_type() -> String {
    "function".to_owned()
}

fn tool_type_or_default<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?.unwrap_or_else(default_tool_type))
}

impl ToolCall {
    /// A function call with `arguments` as a JSON string.
    pub fn new(
        id: impl Into<String>,
        name: impl Into<String>,
        arguments: impl Into<String>,
    ) -> Self {
        Self {
            id: id.into(),
            kind: default_tool_type(),
            function: FunctionCall {
                name: name.into(),
                arguments: arguments.into(),
            },
            index: None,
        }
    }
}

/// The function half of a [`ToolCall`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FunctionCall {
    /// The function's name.
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    /// The arguments, as a JSON string. An object sent by the server is
    /// turned into its JSON text.
    #[serde(default, deserialize_with = "arguments_as_string")]
    pub arguments: String,
}

fn arguments_as_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(deserializer)? {
        Value::String(text) => text,
        Value::Null => String::new(),
        other => other.to_string(),
    })
}

open_enum! {
    /// Why the model stopped.
    pub enum FinishReason {
        /// A natural end or a stop string.
        Stop => "stop",
        /// The `max_tokens` limit.
        Length => "length",
        /// The model's context length.
        ModelLength => "model_length",
        /// A server-side failure; the answer is incomplete.
        Error => "error",
        /// The model called tools.
        ToolCalls => "tool_calls",
    }
}

/// Token counts, as reported by the API.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Usage {
    /// Tokens in the prompt.
    #[serde(default, deserialize_with = "null_as_default")]
    pub prompt_tokens: u64,
    /// Tokens generated.
    #[serde(default, deserialize_with = "null_as_default")]
    pub completion_tokens: u64,
    /// Their sum.
    #[serde(default, deserialize_with = "null_as_default")]
    pub total_tokens: u64,
    /// Fields beyond the three counts (`prompt_tokens_details`,
    /// `service_tier`, …), kept as they came.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, Value>,
}

impl Usage {
    /// Usage with the three counts.
    pub fn new(prompt_tokens: u64, completion_tokens: u64) -> Self {
        Self {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
            extra: serde_json::Map::new(),
        }
    }
}

/// The answer of a non-streaming chat completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ChatResponse {
    /// The completion's id.
    #[serde(default)]
    pub id: String,
    /// `chat.completion`.
    #[serde(default)]
    pub object: String,
    /// Creation time, Unix seconds.
    #[serde(default)]
    pub created: u64,
    /// The model that answered.
    #[serde(default)]
    pub model: String,
    /// Token counts.
    #[serde(default)]
    pub usage: Option<Usage>,
    /// The answers.
    #[serde(default)]
    pub choices: Vec<ChatChoice>,
}

impl ChatResponse {
    /// The first choice's answer text, without thinking.
    pub fn text(&self) -> String {
        self.choices
            .first()
            .and_then(|choice| choice.message.content.as_ref())
            .map(Content::text)
            .unwrap_or_default()
    }
}

/// One answer of a [`ChatResponse`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ChatChoice {
    /// The choice's position.
    #[serde(default)]
    pub index: u32,
    /// The assistant message.
    #[serde(default)]
    pub message: AssistantMessage,
    /// Why the model stopped.
    #[serde(default)]
    pub finish_reason: Option<FinishReason>,
}

/// The assistant message of a [`ChatChoice`].
///
/// Kept apart from [`Message`] so that an answer parses whatever its `role`
/// says.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AssistantMessage {
    /// `assistant`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The answer: a string, null, or parts (thinking, then text).
    #[serde(default)]
    pub content: Option<Content>,
    /// Tool calls the model made; null, absent or a list on the wire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// Echo of the request's prefix flag, when the server sends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<bool>,
}

/// One chunk of a streamed chat completion (`chat.completion.chunk`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CompletionChunk {
    /// The completion's id, the same on every chunk.
    #[serde(default, deserialize_with = "null_as_default")]
    pub id: String,
    /// `chat.completion.chunk`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub object: String,
    /// Creation time, Unix seconds.
    #[serde(default, deserialize_with = "null_as_default")]
    pub created: u64,
    /// The model that answers.
    #[serde(default, deserialize_with = "null_as_default")]
    pub model: String,
    /// The deltas; empty on a usage-only chunk.
    #[serde(default, deserialize_with = "null_as_default")]
    pub choices: Vec<ChunkChoice>,
    /// Token counts, on the last chunk only.
    #[serde(default)]
    pub usage: Option<Usage>,
    /// An error object some gateways send in place of a chunk
    /// (`{"error":{…}}`); the stream treats it as an API error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
}

fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// One choice's delta within a [`CompletionChunk`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ChunkChoice {
    /// The choice this delta belongs to.
    #[serde(default, deserialize_with = "null_as_default")]
    pub index: u32,
    /// What this chunk adds.
    #[serde(default, deserialize_with = "null_as_default")]
    pub delta: Delta,
    /// Set on the choice's last chunk.
    #[serde(default)]
    pub finish_reason: Option<FinishReason>,
}

/// What one chunk adds to a choice.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Delta {
    /// `assistant`, on the first chunk only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// New text: a string, null, or parts (thinking, then text, for
    /// reasoning models).
    #[serde(default)]
    pub content: Option<Content>,
    /// Tool calls, whole or in fragments joined by `index`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
}
