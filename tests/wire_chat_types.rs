//! The chat wire types against the JSON Mistral sends and accepts.

use mistral_events::wire::{
    ChatRequest, ChatResponse, CompletionChunk, Content, ContentPart, FinishReason, JsonSchema,
    Message, ModelList, ResponseFormat, Stop, Tool, ToolCall, ToolChoice,
};
use serde_json::{json, Value};

#[test]
fn request_sends_only_set_fields_and_never_stream_options() {
    let request = ChatRequest::new("mistral-small-latest", vec![Message::user("Say hi")]);
    let json = serde_json::to_value(&request).unwrap();
    assert_eq!(
        json,
        json!({"model":"mistral-small-latest","messages":[{"role":"user","content":"Say hi"}]})
    );
    assert!(json.get("stream_options").is_none());
}

#[test]
fn all_four_roles_and_the_assistant_prefix() {
    let messages = vec![
        Message::system("Be brief."),
        Message::user("Weather?"),
        Message::Assistant {
            content: Some(Content::Text(String::new())),
            tool_calls: Some(vec![ToolCall::new(
                "Ab3dE9xYz",
                "get_weather",
                r#"{"city":"Paris"}"#,
            )]),
            prefix: false,
        },
        Message::tool("Ab3dE9xYz", "22C"),
        Message::assistant_prefix("It is"),
    ];
    let json = serde_json::to_value(ChatRequest::new("m", messages)).unwrap();
    let roles: Vec<&str> = json["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["system", "user", "assistant", "tool", "assistant"]);
    assert_eq!(
        json["messages"][2]["tool_calls"][0]["function"]["name"],
        "get_weather"
    );
    assert!(
        json["messages"][2].get("prefix").is_none(),
        "prefix false is left out"
    );
    assert_eq!(json["messages"][3]["tool_call_id"], "Ab3dE9xYz");
    assert_eq!(
        json["messages"][4],
        json!({"role":"assistant","content":"It is","prefix":true})
    );
}

#[test]
fn options_serialise_with_mistral_names() {
    let request = ChatRequest::new("m", vec![Message::user("x")])
        .max_tokens(64)
        .random_seed(7)
        .stop(Stop::Many(vec!["\n\n".into(), "END".into()]))
        .n(2)
        .temperature(0.3)
        .response_format(ResponseFormat::json_schema(JsonSchema::new(
            "book",
            json!({"type":"object","properties":{"name":{"type":"string"}}}),
        )));
    let json = serde_json::to_value(&request).unwrap();
    assert_eq!(json["max_tokens"], 64);
    assert_eq!(json["random_seed"], 7);
    assert_eq!(json["stop"], json!(["\n\n", "END"]));
    assert_eq!(json["n"], 2);
    assert_eq!(json["response_format"]["type"], "json_schema");
    assert_eq!(json["response_format"]["json_schema"]["name"], "book");
    assert!(json.get("seed").is_none() && json.get("max_completion_tokens").is_none());

    let plain = serde_json::to_value(ResponseFormat::json_object()).unwrap();
    assert_eq!(plain, json!({"type":"json_object"}));
}

#[test]
fn tool_choice_in_every_form() {
    let cases = [
        (ToolChoice::Any, json!("any")),
        (ToolChoice::Auto, json!("auto")),
        (ToolChoice::None, json!("none")),
        (ToolChoice::Required, json!("required")),
        (
            ToolChoice::Function("lookup".into()),
            json!({"type":"function","function":{"name":"lookup"}}),
        ),
    ];
    for (choice, expected) in cases {
        assert_eq!(serde_json::to_value(&choice).unwrap(), expected);
        let back: ToolChoice = serde_json::from_value(expected).unwrap();
        assert_eq!(back, choice);
    }
}

#[test]
fn function_and_built_in_tools() {
    let tools = vec![
        Tool::function(
            "lookup",
            "Finds a thing",
            json!({"type":"object","properties":{"q":{"type":"string"}},"required":["q"]}),
        ),
        Tool::Other(json!({"type":"web_search"})),
    ];
    let json = serde_json::to_value(&tools).unwrap();
    assert_eq!(json[0]["type"], "function");
    assert_eq!(json[0]["function"]["name"], "lookup");
    assert_eq!(json[1], json!({"type":"web_search"}));

    let back: Vec<Tool> = serde_json::from_value(json).unwrap();
    assert!(matches!(back[0], Tool::Function(_)));
    assert!(matches!(back[1], Tool::Other(_)));
}

#[test]
fn content_as_string_null_and_parts() {
    let string: Message = serde_json::from_value(json!({"role":"user","content":"hi"})).unwrap();
    assert_eq!(string.text(), "hi");

    let null: Message = serde_json::from_value(json!({"role":"user","content":null})).unwrap();
    assert_eq!(null, Message::User { content: None });

    let parts: Message = serde_json::from_value(json!({"role":"user","content":[
        {"type":"text","text":"What is in "},
        {"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA","detail":"low"}},
        {"type":"text","text":"this?"},
        {"type":"input_audio","input_audio":"…"}
    ]}))
    .unwrap();
    assert_eq!(parts.text(), "What is in this?");
    let Message::User {
        content: Some(Content::Parts(parts)),
    } = parts
    else {
        panic!("expected parts");
    };
    assert!(matches!(parts[1], ContentPart::ImageUrl { .. }));
    assert!(
        matches!(parts[3], ContentPart::Other(_)),
        "unknown part type is kept"
    );
    let round_trip = serde_json::to_value(&parts[3]).unwrap();
    assert_eq!(round_trip, json!({"type":"input_audio","input_audio":"…"}));
}

#[test]
fn plain_response_with_a_tool_call_and_extra_fields() {
    let body = json!({
        "id": "5d1e0c9a4b7f4c2e9a3b8c7d6e5f4a3b",
        "object": "chat.completion",
        "created": 1769000000,
        "model": "mistral-small-latest",
        "usage": {"prompt_tokens": 88, "completion_tokens": 16, "total_tokens": 104, "num_cached_tokens": 0},
        "choices": [{
            "index": 0,
            "finish_reason": "tool_calls",
            "logprobs": null,
            "message": {"role": "assistant", "content": "", "prefix": false, "tool_calls": [
                {"id": "Ab3dE9xYz", "index": 0, "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}
            ]}
        }]
    });
    let response: ChatResponse = serde_json::from_value(body).unwrap();
    let choice = &response.choices[0];
    assert_eq!(choice.finish_reason, Some(FinishReason::ToolCalls));
    let call = &choice.message.tool_calls.as_ref().unwrap()[0];
    assert_eq!(call.kind, "function", "a missing type defaults to function");
    assert_eq!(call.function.arguments, r#"{"city": "Paris"}"#);
    assert_eq!(response.usage.unwrap().extra["num_cached_tokens"], 0);
}

#[test]
fn reasoning_response_splits_thinking_from_text() {
    let body = json!({
        "id": "a", "object": "chat.completion", "created": 1, "model": "magistral-medium-latest",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": [
            {"type": "thinking", "thinking": [{"type": "text", "text": "2+2 is 4."}], "closed": true},
            {"type": "text", "text": "4"}
        ]}}]
    });
    let response: ChatResponse = serde_json::from_value(body).unwrap();
    assert_eq!(response.text(), "4");
    let Some(Content::Parts(parts)) = &response.choices[0].message.content else {
        panic!("parts expected");
    };
    assert_eq!(parts[0].thinking_text().as_deref(), Some("2+2 is 4."));
}

#[test]
fn arguments_sent_as_an_object_become_json_text() {
    let call: ToolCall =
        serde_json::from_value(json!({"id":"x","function":{"name":"f","arguments":{"a":1}}}))
            .unwrap();
    let parsed: Value = serde_json::from_str(&call.function.arguments).unwrap();
    assert_eq!(parsed, json!({"a":1}));
}

#[test]
fn chunk_with_null_object_and_usage_and_no_finish_reason() {
    let chunk: CompletionChunk = serde_json::from_value(json!({
        "id": "x", "object": null, "model": "m", "usage": null,
        "choices": [{"index": 0, "delta": {"content": "a"}}]
    }))
    .unwrap();
    assert!(chunk.usage.is_none());
    assert_eq!(chunk.choices[0].finish_reason, None);

    let usage_only: CompletionChunk = serde_json::from_value(json!({
        "id": "x", "model": "m", "choices": [],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    }))
    .unwrap();
    assert!(usage_only.choices.is_empty());
}

#[test]
fn model_list_with_base_and_fine_tuned_cards() {
    let list: ModelList = serde_json::from_value(json!({"object":"list","data":[
        {"id":"mistral-small-latest","object":"model","created":1769000000,"owned_by":"mistralai",
         "type":"base","capabilities":{"completion_chat":true,"function_calling":true},"aliases":[],
         "deprecation":null},
        {"id":"ft:open-mistral-7b:abc","object":"model","created":1,"owned_by":"me","type":"fine-tuned",
         "capabilities":{"completion_chat":true},"job":"0123","root":"open-mistral-7b","archived":false}
    ]}))
    .unwrap();
    assert_eq!(list.data[0].kind, "base");
    assert_eq!(list.data[1].extra["root"], "open-mistral-7b");
}
