//! The model list of `GET /v1/models`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The answer of `GET /v1/models`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ModelList {
    /// `list`.
    #[serde(default)]
    pub object: String,
    /// The model cards.
    #[serde(default)]
    pub data: Vec<ModelCard>,
}

/// One model, as listed by `GET /v1/models`.
///
/// `type` is `base` for Mistral's models and `fine-tuned` for a fine-tuned
/// model, which also carries `job` and `root`. Fields this crate does not
/// model are kept in `extra`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ModelCard {
    /// The model id.
    pub id: String,
    /// `model`.
    #[serde(default)]
    pub object: String,
    /// Creation time, Unix seconds.
    #[serde(default)]
    pub created: u64,
    /// The owner, `mistralai` for base models.
    #[serde(default)]
    pub owned_by: String,
    /// `base` or `fine-tuned`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// What the model can do (`completion_chat`, `function_calling`, …).
    #[serde(default)]
    pub capabilities: serde_json::Map<String, Value>,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Context window in tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_context_length: Option<u64>,
    /// Other ids that name the same model.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Everything else the server sent.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, Value>,
}
