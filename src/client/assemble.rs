//! [`ChatAssembler`]: turns stream chunks into answer pieces and a whole
//! answer.

use std::borrow::Cow;
use std::collections::BTreeMap;

use super::chunk::{ChunkRef, ContentRef};
use crate::error::Error;
use crate::wire::{CompletionChunk, ContentPart, FinishReason, ToolCall, Usage};

/// One thing a chunk added to the answer.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Piece {
    /// Answer text.
    Text {
        /// The choice it belongs to.
        choice: u32,
        /// Its position among the choice's text pieces, from 0.
        index: u64,
        /// The text; never empty.
        text: String,
    },
    /// Reasoning text.
    Thinking {
        /// The choice it belongs to.
        choice: u32,
        /// The text; never empty.
        text: String,
    },
    /// A complete tool call.
    ToolCall {
        /// The choice it belongs to.
        choice: u32,
        /// The call, with its arguments joined.
        call: ToolCall,
    },
    /// The choice finished.
    Finished {
        /// The choice.
        choice: u32,
        /// Why.
        reason: FinishReason,
    },
}

/// What one choice has received so far.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct ChoiceState {
    /// The answer text so far.
    pub content: String,
    /// The reasoning text so far.
    pub thinking: String,
    /// How many text pieces have been yielded.
    pub chunks: u64,
    /// The tool calls completed so far, in order.
    pub tool_calls: Vec<ToolCall>,
    /// The finish reason, once reported.
    pub finish_reason: Option<FinishReason>,
    /// Calls whose arguments may still grow, by index.
    pending: BTreeMap<u32, ToolCall>,
}

/// Turns stream chunks into answer pieces and a whole answer.
///
/// Chunks from Mistral come in several shapes that mean the same thing:
/// content as a string, as null, or as an array of thinking and text parts;
/// tool calls whole in one chunk, or in fragments to be joined by `index`.
/// The assembler hides the differences. For each chunk it yields
/// [`Piece`]s:
///
/// - [`Piece::Text`] for each non-empty piece of answer text, numbered per
///   choice from 0 with no gaps;
/// - [`Piece::Thinking`] for reasoning text, which never joins the answer;
/// - [`Piece::ToolCall`] once per call, when its arguments are complete:
///   when a call with a higher index starts, when the choice finishes, or
///   at [`ChatAssembler::finish`];
/// - [`Piece::Finished`] when a choice reports its finish reason.
///
/// ```
/// use mistral_events::client::{ChatAssembler, Piece};
/// use mistral_events::wire::CompletionChunk;
///
/// let mut assembler = ChatAssembler::new();
/// let mut pieces = Vec::new();
/// for data in [
///     r#"{"id":"a","model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
///     r#"{"id":"a","model":"m","choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}],"p":"abc"}"#,
///     r#"{"id":"a","model":"m","choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#,
/// ] {
///     let chunk: CompletionChunk = serde_json::from_str(data).unwrap();
///     assembler.push(chunk, &mut pieces);
/// }
/// assembler.finish(&mut pieces);
/// assert_eq!(assembler.content(), "Hello");
/// assert_eq!(assembler.usage().unwrap().total_tokens, 5);
/// assert!(matches!(&pieces[0], Piece::Text { index: 0, text, .. } if text == "Hel"));
/// ```
#[derive(Debug, Clone)]
pub struct ChatAssembler {
    choices: Vec<ChoiceState>,
    usage: Option<Usage>,
    model: Option<String>,
    max_choices: u32,
}

/// The most choices [`ChatAssembler::new`] keeps.
pub const MAX_CHOICES: u32 = 128;

impl Default for ChatAssembler {
    fn default() -> Self {
        Self::with_choices(MAX_CHOICES)
    }
}

impl ChatAssembler {
    /// An empty assembler that keeps up to [`MAX_CHOICES`] choices.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty assembler for a request with `n` choices. Deltas for a
    /// choice index at or above `n` are dropped (and logged at debug): a
    /// server has no business sending them, and a wild index must not make
    /// the assembler allocate for it.
    pub fn with_choices(n: u32) -> Self {
        Self {
            choices: Vec::new(),
            usage: None,
            model: None,
            max_choices: n.clamp(1, MAX_CHOICES),
        }
    }

    /// Adds one chunk, appending what it contributed to `out`.
    pub fn push(&mut self, chunk: CompletionChunk, out: &mut Vec<Piece>) {
        self.push_ref(ChunkRef::from(chunk), out);
    }

    /// Parses one `data:` payload and adds it, as [`push`](Self::push)
    /// does, with the chunk read borrowed from `data`: the bus's path,
    /// which allocates only the answer text each piece carries.
    pub(crate) fn push_data(&mut self, data: &str, out: &mut Vec<Piece>) -> Result<(), Error> {
        let chunk = ChunkRef::parse(data)?;
        self.push_ref(chunk, out);
        Ok(())
    }

    fn push_ref(&mut self, chunk: ChunkRef<'_>, out: &mut Vec<Piece>) {
        let ChunkRef {
            model,
            usage,
            choices,
            ..
        } = chunk;
        if self.model.is_none() && !model.is_empty() {
            self.model = Some(model.into_owned());
        }
        // Usage comes on the last chunk; a later one replaces an earlier one.
        if let Some(usage) = usage {
            self.usage = Some(*usage);
        }
        for choice in choices.into_iter().flatten() {
            let index = choice.index;
            if index >= self.max_choices {
                tracing::debug!(
                    target: "mistral_events::client",
                    choice = index,
                    "dropped a delta for a choice the request did not ask for"
                );
                continue;
            }
            let state = self.choice_mut(index);
            if let Some(content) = choice.delta.content {
                state.take_content(index, content, out);
            }
            if let Some(calls) = choice.delta.tool_calls {
                state.take_tool_calls(index, calls, out);
            }
            if let Some(reason) = choice.finish_reason {
                state.flush_calls(index, out);
                state.finish_reason = Some(reason.clone());
                out.push(Piece::Finished {
                    choice: index,
                    reason,
                });
            }
        }
    }

    /// Ends the stream: completes every tool call still open.
    pub fn finish(&mut self, out: &mut Vec<Piece>) {
        for (index, state) in self.choices.iter_mut().enumerate() {
            state.flush_calls(index as u32, out);
        }
    }

    /// The first choice's answer text so far.
    pub fn content(&self) -> &str {
        self.choices.first().map_or("", |state| &state.content)
    }

    /// Every choice's state, by index.
    pub fn choices(&self) -> &[ChoiceState] {
        &self.choices
    }

    /// The usage the server reported, if any.
    pub fn usage(&self) -> Option<&Usage> {
        self.usage.as_ref()
    }

    /// Takes the usage reported so far, leaving none: for a caller that
    /// feeds one assembler from several requests.
    pub fn take_usage(&mut self) -> Option<Usage> {
        self.usage.take()
    }

    /// The model named by the chunks.
    pub fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    /// Whether a tool call has started but not yet completed.
    pub fn has_open_tool_calls(&self) -> bool {
        self.choices.iter().any(|state| !state.pending.is_empty())
    }

    fn choice_mut(&mut self, index: u32) -> &mut ChoiceState {
        let index = index as usize;
        if self.choices.len() <= index {
            self.choices.resize_with(index + 1, ChoiceState::default);
        }
        &mut self.choices[index]
    }
}

impl ChoiceState {
    fn take_content(&mut self, choice: u32, content: ContentRef<'_>, out: &mut Vec<Piece>) {
        match content {
            ContentRef::Text(text) => self.push_text(choice, text, out),
            ContentRef::Parts(parts) => {
                // Adjacent parts of the same kind are merged into one piece.
                let mut text = String::new();
                for part in parts {
                    match part {
                        ContentPart::Text { text: piece } => text.push_str(&piece),
                        thinking @ ContentPart::Thinking { .. } => {
                            self.push_text(choice, Cow::Owned(std::mem::take(&mut text)), out);
                            let reasoning = thinking.thinking_text().unwrap_or_default();
                            self.push_thinking(choice, reasoning, out);
                        }
                        _ => {}
                    }
                }
                self.push_text(choice, Cow::Owned(text), out);
            }
        }
    }

    /// Borrowed text is copied only here, once it is known to be non-empty:
    /// the role and final chunks carry empty content.
    fn push_text(&mut self, choice: u32, text: Cow<'_, str>, out: &mut Vec<Piece>) {
        if text.is_empty() {
            return;
        }
        self.content.push_str(&text);
        out.push(Piece::Text {
            choice,
            index: self.chunks,
            text: text.into_owned(),
        });
        self.chunks += 1;
    }

    fn push_thinking(&mut self, choice: u32, text: String, out: &mut Vec<Piece>) {
        if text.is_empty() {
            return;
        }
        self.thinking.push_str(&text);
        out.push(Piece::Thinking { choice, text });
    }

    fn take_tool_calls(&mut self, choice: u32, calls: Vec<ToolCall>, out: &mut Vec<Piece>) {
        // A call is complete only when its choice finishes: fragments of
        // different calls may interleave.
        if self.finish_reason.is_some() {
            tracing::debug!(
                target: "mistral_events::client",
                choice,
                "dropped a tool-call fragment after the choice finished"
            );
            return;
        }
        for (position, mut fragment) in calls.into_iter().enumerate() {
            if fragment.id == "null" {
                fragment.id.clear();
            }
            // Whole calls often come without `index`: their position stands in.
            let index = fragment.index.unwrap_or(position as u32);
            fragment.index = Some(index);
            match self.pending.remove(&index) {
                // A different id at the same index starts a new call: two
                // whole calls in separate chunks, both without `index`.
                Some(open) if starts_new_call(&open, &fragment) => {
                    self.complete_call(choice, open, out);
                    self.pending.insert(index, fragment);
                }
                Some(mut open) => {
                    merge_fragment(&mut open, fragment);
                    self.pending.insert(index, open);
                }
                None => {
                    self.pending.insert(index, fragment);
                }
            }
        }
    }

    fn flush_calls(&mut self, choice: u32, out: &mut Vec<Piece>) {
        for (_, call) in std::mem::take(&mut self.pending) {
            self.complete_call(choice, call, out);
        }
    }

    fn complete_call(&mut self, choice: u32, call: ToolCall, out: &mut Vec<Piece>) {
        self.tool_calls.push(call.clone());
        out.push(Piece::ToolCall { choice, call });
    }
}

/// Whether `fragment` names a call other than `open`. Continuations carry
/// no id (or the literal `"null"`, cleared on arrival).
fn starts_new_call(open: &ToolCall, fragment: &ToolCall) -> bool {
    !open.id.is_empty() && !fragment.id.is_empty() && open.id != fragment.id
}

/// Joins a continuation fragment onto an open call: arguments append, and
/// an id or name fills in only where the first fragment had none.
fn merge_fragment(open: &mut ToolCall, fragment: ToolCall) {
    // A literal `"null"` id was cleared on arrival.
    if open.id.is_empty() && !fragment.id.is_empty() {
        open.id = fragment.id;
    }
    if open.function.name.is_empty() {
        open.function.name = fragment.function.name;
    }
    open.function
        .arguments
        .push_str(&fragment.function.arguments);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(lines: &[&str]) -> (ChatAssembler, Vec<Piece>) {
        let mut assembler = ChatAssembler::new();
        let mut pieces = Vec::new();
        for line in lines {
            let chunk: CompletionChunk = serde_json::from_str(line).unwrap();
            assembler.push(chunk, &mut pieces);
        }
        assembler.finish(&mut pieces);
        (assembler, pieces)
    }

    fn calls(pieces: &[Piece]) -> Vec<&ToolCall> {
        pieces
            .iter()
            .filter_map(|piece| match piece {
                Piece::ToolCall { call, .. } => Some(call),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn fragments_join_by_index_into_one_call() {
        let (assembler, pieces) = run(&[
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"id":"abcDEF123","index":0,"function":{"name":"lookup","arguments":""}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"id":"null","index":0,"function":{"name":"","arguments":"{\"q\":"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"name":"","arguments":"\"x\"}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":""},"finish_reason":"tool_calls"}]}"#,
        ]);
        let calls = calls(&pieces);
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].id, "abcDEF123");
        assert_eq!(calls[0].function.name, "lookup");
        assert_eq!(calls[0].function.arguments, r#"{"q":"x"}"#);
        assert_eq!(assembler.choices()[0].tool_calls.len(), 1);
    }

    #[test]
    fn whole_calls_without_index_stay_apart() {
        let (_, pieces) = run(&[
            r#"{"choices":[{"index":0,"delta":{"content":null,"tool_calls":[{"id":"aaaaaaaaa","function":{"name":"one","arguments":"{}"}},{"id":"bbbbbbbbb","function":{"name":"two","arguments":"{}"}}]},"finish_reason":"tool_calls"}]}"#,
        ]);
        let names: Vec<&str> = calls(&pieces)
            .iter()
            .map(|call| call.function.name.as_str())
            .collect();
        assert_eq!(names, ["one", "two"]);
    }

    /// The `(name, arguments)` of every completed call.
    fn names_and_arguments(pieces: &[Piece]) -> Vec<(&str, &str)> {
        calls(pieces)
            .into_iter()
            .map(|call| {
                (
                    call.function.name.as_str(),
                    call.function.arguments.as_str(),
                )
            })
            .collect()
    }

    #[test]
    fn whole_calls_in_separate_chunks_without_index_stay_apart() {
        let (_, pieces) = run(&[
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"id":"aaaaaaaaa","function":{"name":"one","arguments":"{}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"id":"bbbbbbbbb","index":0,"function":{"name":"two","arguments":"{}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":""},"finish_reason":"tool_calls"}]}"#,
        ]);
        let found = names_and_arguments(&pieces);
        assert_eq!(found, [("one", "{}"), ("two", "{}")]);
    }

    #[test]
    fn interleaved_fragments_join_per_index() {
        let (_, pieces) = run(&[
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"id":"aaaaaaaaa","index":0,"function":{"name":"one","arguments":"{\"a\":"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"id":"bbbbbbbbb","index":1,"function":{"name":"two","arguments":"{\"b\":"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"name":"","arguments":"1}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"name":"","arguments":"2}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":2,"function":{"name":"late","arguments":"{}"}}]}}]}"#,
        ]);
        let found = names_and_arguments(&pieces);
        assert_eq!(found, [("one", r#"{"a":1}"#), ("two", r#"{"b":2}"#)]);
    }

    #[test]
    fn choices_beyond_the_request_are_dropped() {
        let mut assembler = ChatAssembler::with_choices(1);
        let mut pieces = Vec::new();
        let chunk: CompletionChunk = serde_json::from_str(
            r#"{"choices":[{"index":4294967295,"delta":{"content":"x"}},{"index":1,"delta":{"content":"y"}},{"index":0,"delta":{"content":"z"}}]}"#,
        )
        .unwrap();
        assembler.push(chunk, &mut pieces);
        assert_eq!(assembler.choices().len(), 1);
        assert_eq!(assembler.content(), "z");
        assert_eq!(pieces.len(), 1);
    }

    #[test]
    fn thinking_parts_stay_out_of_content() {
        let (assembler, pieces) = run(&[
            r#"{"choices":[{"index":0,"delta":{"content":[{"type":"thinking","thinking":[{"type":"text","text":"hmm"}]}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":[{"type":"thinking","thinking":[{"type":"text","text":" ok"}]},{"type":"text","text":"4"}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"!"},"finish_reason":"stop"}]}"#,
        ]);
        assert_eq!(assembler.content(), "4!");
        assert_eq!(assembler.choices()[0].thinking, "hmm ok");
        let texts: Vec<u64> = pieces
            .iter()
            .filter_map(|piece| match piece {
                Piece::Text { index, .. } => Some(*index),
                _ => None,
            })
            .collect();
        assert_eq!(texts, [0, 1]);
    }

    #[test]
    fn choices_count_their_own_indices() {
        let (assembler, pieces) = run(&[
            r#"{"choices":[{"index":0,"delta":{"content":"a"}},{"index":1,"delta":{"content":"b"}}]}"#,
            r#"{"choices":[{"index":1,"delta":{"content":"c"}}]}"#,
        ]);
        assert_eq!(assembler.choices()[1].content, "bc");
        assert!(pieces.contains(&Piece::Text {
            choice: 1,
            index: 1,
            text: "c".into()
        }));
    }
}
