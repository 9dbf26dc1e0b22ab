//! A borrowed view of one streamed chunk: the bus's hot path.
//!
//! Parsing a `data:` payload into the public [`CompletionChunk`] allocates
//! for every string it owns (id, object, model, content) and for the
//! choices, on every chunk. The bus needs none of those strings to outlive
//! the parse except the answer text, which its `chunk` event owns anyway.
//! [`ChunkRef`] mirrors [`CompletionChunk`] field by field, with the same
//! types and defaults, but borrows its strings from the SSE decoder's
//! buffer, so a typical chunk costs one allocation (the choices) besides
//! the text that becomes the event. A payload parses into one exactly when
//! it parses into the other.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize;

use crate::error::Error;
use crate::wire::chat::content_parts;
use crate::wire::{CompletionChunk, Content, ContentPart, FinishReason, ToolCall, Usage};

/// [`CompletionChunk`], borrowed.
///
/// Kept small (the parse result is moved a few times per chunk): fields the
/// bus never reads are checked for their type and dropped, the usage of the
/// last chunk is boxed.
#[derive(Debug, Deserialize)]
pub(crate) struct ChunkRef<'a> {
    /// Checked to be a string or null, as for [`CompletionChunk::id`]; not
    /// kept.
    #[serde(rename = "id", default)]
    _id: Option<AnyStr>,
    /// A string or null, as for [`CompletionChunk::object`].
    #[serde(default)]
    object: Option<Object>,
    /// Checked to be a number or null; not kept.
    #[serde(rename = "created", default)]
    _created: Option<u64>,
    /// Null or absent reads as empty.
    #[serde(default, borrow, deserialize_with = "borrowed_or_empty")]
    pub(crate) model: Cow<'a, str>,
    /// Null or absent reads as empty.
    #[serde(default, borrow)]
    pub(crate) choices: Option<Choices<'a>>,
    #[serde(default)]
    pub(crate) usage: Option<Box<Usage>>,
    /// Any value but null marks an error object, as for
    /// [`CompletionChunk::error`].
    #[serde(default)]
    error: Option<IgnoredAny>,
}

/// The choices of a chunk. Nearly always exactly one, so the first is kept
/// inline and only further ones go to the heap: a `Vec` cost an allocation
/// per chunk.
#[derive(Debug, Default)]
pub(crate) struct Choices<'a> {
    first: Option<ChoiceRef<'a>>,
    rest: Vec<ChoiceRef<'a>>,
}

impl<'a> IntoIterator for Choices<'a> {
    type Item = ChoiceRef<'a>;
    type IntoIter =
        std::iter::Chain<std::option::IntoIter<ChoiceRef<'a>>, std::vec::IntoIter<ChoiceRef<'a>>>;

    fn into_iter(self) -> Self::IntoIter {
        self.first.into_iter().chain(self.rest)
    }
}

impl<'a> FromIterator<ChoiceRef<'a>> for Choices<'a> {
    fn from_iter<I: IntoIterator<Item = ChoiceRef<'a>>>(choices: I) -> Self {
        let mut choices = choices.into_iter();
        Self {
            first: choices.next(),
            rest: choices.collect(),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Choices<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ChoicesVisitor<'a>(std::marker::PhantomData<ChoiceRef<'a>>);
        impl<'de: 'a, 'a> Visitor<'de> for ChoicesVisitor<'a> {
            type Value = Choices<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sequence")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Choices<'a>, A::Error> {
                let first = seq.next_element()?;
                let mut rest = Vec::new();
                if first.is_some() {
                    while let Some(choice) = seq.next_element()? {
                        rest.push(choice);
                    }
                }
                Ok(Choices { first, rest })
            }
        }
        deserializer.deserialize_seq(ChoicesVisitor(std::marker::PhantomData))
    }
}

/// [`ChunkChoice`](crate::wire::ChunkChoice), borrowed.
#[derive(Debug, Deserialize)]
pub(crate) struct ChoiceRef<'a> {
    #[serde(default, deserialize_with = "null_as_default")]
    pub(crate) index: u32,
    #[serde(default, borrow, deserialize_with = "null_as_default")]
    pub(crate) delta: DeltaRef<'a>,
    #[serde(default)]
    pub(crate) finish_reason: Option<FinishReason>,
}

/// [`Delta`](crate::wire::Delta), borrowed.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct DeltaRef<'a> {
    /// Checked to be a string or null; not kept.
    #[serde(rename = "role", default)]
    _role: Option<AnyStr>,
    #[serde(default, borrow)]
    pub(crate) content: Option<ContentRef<'a>>,
    #[serde(default)]
    pub(crate) tool_calls: Option<Vec<ToolCall>>,
}

/// [`Content`], with the text borrowed when it has no escapes.
#[derive(Debug)]
pub(crate) enum ContentRef<'a> {
    Text(Cow<'a, str>),
    Parts(Vec<ContentPart>),
}

/// A string whose value is not needed: accepted where the owned type
/// takes a `String`, rejected where it would be rejected, never stored.
#[derive(Debug)]
struct AnyStr;

/// The `object` field: all the bus needs is whether it says `error`.
#[derive(Debug)]
struct Object {
    error: bool,
}

impl<'a> ChunkRef<'a> {
    /// Parses one `data:` payload. An error object sent in place of a chunk
    /// becomes an [`Error::Api`], as for [`CompletionChunk`].
    pub(crate) fn parse(data: &'a str) -> Result<Self, Error> {
        let chunk: Self = serde_json::from_str(data).map_err(|source| Error::Decode {
            source,
            partial: String::new(),
        })?;
        if chunk.object.as_ref().is_some_and(|object| object.error) || chunk.error.is_some() {
            return Err(Error::from_stream_body(data.as_bytes()));
        }
        Ok(chunk)
    }
}

impl From<CompletionChunk> for ChunkRef<'static> {
    fn from(chunk: CompletionChunk) -> Self {
        let choices = chunk
            .choices
            .into_iter()
            .map(|choice| ChoiceRef {
                index: choice.index,
                delta: DeltaRef {
                    _role: None,
                    content: choice.delta.content.map(|content| match content {
                        Content::Text(text) => ContentRef::Text(Cow::Owned(text)),
                        Content::Parts(parts) => ContentRef::Parts(parts),
                    }),
                    tool_calls: choice.delta.tool_calls,
                },
                finish_reason: choice.finish_reason,
            })
            .collect();
        Self {
            _id: None,
            object: None,
            _created: None,
            model: Cow::Owned(chunk.model),
            choices: Some(choices),
            usage: chunk.usage.map(Box::new),
            error: None,
        }
    }
}

/// A string that borrows when it can. (`Option<Cow<str>>` alone would not:
/// serde deserializes a `Cow` inside an `Option` as owned.)
#[derive(Deserialize)]
struct Str<'a>(#[serde(borrow)] Cow<'a, str>);

/// A string, borrowed when it has no escapes; null reads as empty.
fn borrowed_or_empty<'de: 'a, 'a, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Cow<'a, str>, D::Error> {
    Ok(Option::<Str<'a>>::deserialize(deserializer)?.map_or(Cow::Borrowed(""), |text| text.0))
}

/// Null reads as the default, as in the wire types.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

impl<'de> Deserialize<'de> for AnyStr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AnyStrVisitor;
        impl Visitor<'_> for AnyStrVisitor {
            type Value = AnyStr;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<AnyStr, E> {
                Ok(AnyStr)
            }
        }
        deserializer.deserialize_str(AnyStrVisitor)
    }
}

impl<'de> Deserialize<'de> for Object {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl Visitor<'_> for ObjectVisitor {
            type Value = Object;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, object: &str) -> Result<Object, E> {
                Ok(Object {
                    error: object == "error",
                })
            }
        }
        deserializer.deserialize_str(ObjectVisitor)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for ContentRef<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ContentVisitor;
        impl<'de> Visitor<'de> for ContentVisitor {
            type Value = ContentRef<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of content parts")
            }
            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                text: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(ContentRef::Text(Cow::Borrowed(text)))
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
                Ok(ContentRef::Text(Cow::Owned(text.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, text: String) -> Result<Self::Value, E> {
                Ok(ContentRef::Text(Cow::Owned(text)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                content_parts(seq).map(ContentRef::Parts)
            }
        }
        deserializer.deserialize_any(ContentVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each payload parses (or fails) into both types alike.
    #[test]
    fn accepts_what_the_owned_chunk_accepts() {
        let payloads = [
            r#"{"id":"a","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"},"finish_reason":null}],"p":"abc"}"#,
            r#"{"id":"a","object":null,"model":"m","choices":null}"#,
            r#"{"choices":[{"delta":{"content":"a\nb"}}]}"#,
            r#"{"choices":[{"delta":{"content":[{"type":"text","text":"x"}]}}]}"#,
            r#"{"choices":[{"delta":{"content":null,"tool_calls":[{"id":"x","function":{"name":"f","arguments":"{}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#,
            r#"{"id":5}"#,
            r#"{"created":"soon"}"#,
            r#"{"choices":[{"delta":{"role":7}}]}"#,
            r#"{"choices":[{"delta":{"content":7}}]}"#,
            r#"{"choices":[{"index":-1}]}"#,
            r#"{"choices":{}}"#,
            r#"{"id":null}"#,
            r#"{"object":5}"#,
            r#"{"choices":[{"delta":{"role":null,"content":""}}]}"#,
            r#"{"usage":{"prompt_tokens":"x"}}"#,
            r#"{"id":null,"created":null,"model":null,"choices":[{"index":null,"delta":null}]}"#,
            r#"{"model":5}"#,
            r#"{"error":null}"#,
            r#"{"error":{"message":"x"}}"#,
            r#"[]"#,
        ];
        for payload in payloads {
            // What the stream makes of an owned chunk: an error object is
            // an error too.
            let owned = serde_json::from_str::<CompletionChunk>(payload)
                .is_ok_and(|chunk| chunk.object != "error" && chunk.error.is_none());
            let borrowed = ChunkRef::parse(payload).is_ok();
            assert_eq!(owned, borrowed, "{payload}");
        }
    }

    #[test]
    fn plain_text_is_borrowed() {
        let chunk = ChunkRef::parse(r#"{"choices":[{"delta":{"content":"Hel"}}]}"#).unwrap();
        let choice = chunk.choices.unwrap().into_iter().next().unwrap();
        assert!(matches!(
            choice.delta.content,
            Some(ContentRef::Text(Cow::Borrowed("Hel")))
        ));
    }

    #[test]
    fn an_error_object_is_an_api_error() {
        let error = ChunkRef::parse(r#"{"object":"error","message":"boom","type":"x","code":"1"}"#)
            .unwrap_err();
        assert_eq!(error.kind(), crate::ErrorKind::Api);
    }
}
