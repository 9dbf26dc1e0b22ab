//! Mistral's wire types, following the public OpenAPI schema.
//!
//! This module holds data only: what goes over HTTP and what comes back. It
//! knows nothing of events, retries or the bus. See [`chat`] for the rules on
//! unknown fields and enum values.

pub mod chat;
mod enums;
pub mod models;

pub use chat::{
    AssistantMessage, ChatChoice, ChatRequest, ChatResponse, ChunkChoice, CompletionChunk, Content,
    ContentPart, Delta, FinishReason, Function, FunctionCall, FunctionTool, FunctionType,
    JsonSchema, Message, Prediction, ReasoningEffort, ResponseFormat, ResponseFormatKind, Stop,
    Tool, ToolCall, ToolChoice, Usage,
};
pub use models::{ModelCard, ModelList};
