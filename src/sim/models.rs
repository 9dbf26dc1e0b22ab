//! The model cards of `GET /v1/models`.

use serde::Serialize;

/// The answer of `GET /v1/models`.
#[derive(Debug, Serialize)]
pub(crate) struct ModelListBody {
    object: &'static str,
    data: Vec<ModelCardBody>,
}

/// One base model's card, with every field the real cards carry.
#[derive(Debug, Serialize)]
struct ModelCardBody {
    id: &'static str,
    object: &'static str,
    created: u64,
    owned_by: &'static str,
    /// The Python SDK refuses a card without `type`.
    #[serde(rename = "type")]
    kind: &'static str,
    capabilities: Capabilities,
    name: &'static str,
    description: &'static str,
    max_context_length: u64,
    aliases: Vec<String>,
    deprecation: Option<String>,
    deprecation_replacement_model: Option<String>,
    default_model_temperature: f64,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
struct Capabilities {
    completion_chat: bool,
    function_calling: bool,
    reasoning: bool,
    completion_fim: bool,
    fine_tuning: bool,
    vision: bool,
    ocr: bool,
    classification: bool,
    moderation: bool,
    audio: bool,
}

/// What varies between the listed models.
struct Spec {
    id: &'static str,
    name: &'static str,
    description: &'static str,
    context: u64,
    temperature: f64,
    capabilities: Capabilities,
}

const CHAT: Capabilities = Capabilities {
    completion_chat: true,
    function_calling: true,
    reasoning: false,
    completion_fim: false,
    fine_tuning: false,
    vision: false,
    ocr: false,
    classification: false,
    moderation: false,
    audio: false,
};

const SPECS: [Spec; 5] = [
    Spec {
        id: "mistral-small-latest",
        name: "mistral-small",
        description: "A small, fast model for everyday chat (simulated).",
        context: 131_072,
        temperature: 0.3,
        capabilities: Capabilities {
            vision: true,
            fine_tuning: true,
            ..CHAT
        },
    },
    Spec {
        id: "mistral-medium-latest",
        name: "mistral-medium",
        description: "A balanced general-purpose model (simulated).",
        context: 131_072,
        temperature: 0.3,
        capabilities: Capabilities {
            vision: true,
            ..CHAT
        },
    },
    Spec {
        id: "mistral-large-latest",
        name: "mistral-large",
        description: "The largest general-purpose model (simulated).",
        context: 262_144,
        temperature: 0.3,
        capabilities: Capabilities {
            vision: true,
            fine_tuning: true,
            ..CHAT
        },
    },
    Spec {
        id: "magistral-medium-latest",
        name: "magistral-medium",
        description: "A reasoning model that thinks before answering (simulated).",
        context: 131_072,
        temperature: 0.7,
        capabilities: Capabilities {
            reasoning: true,
            vision: true,
            ..CHAT
        },
    },
    Spec {
        id: "codestral-latest",
        name: "codestral",
        description: "A code model with fill-in-the-middle completion (simulated).",
        context: 256_000,
        temperature: 0.3,
        capabilities: Capabilities {
            completion_fim: true,
            fine_tuning: true,
            ..CHAT
        },
    },
];

/// The list, with `created` set to `now` (Unix seconds), as the real API
/// does for its base models.
pub(crate) fn model_list(now: u64) -> ModelListBody {
    let data = SPECS
        .iter()
        .map(|spec| ModelCardBody {
            id: spec.id,
            object: "model",
            created: now,
            owned_by: "mistralai",
            kind: "base",
            capabilities: spec.capabilities,
            name: spec.name,
            description: spec.description,
            max_context_length: spec.context,
            aliases: Vec::new(),
            deprecation: None,
            deprecation_replacement_model: None,
            default_model_temperature: spec.temperature,
        })
        .collect();
    ModelListBody {
        object: "list",
        data,
    }
}
