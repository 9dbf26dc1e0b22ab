//! The simulator's deterministic answers.
//!
//! An answer is a function of the request alone. A 64-bit seed is hashed
//! (FNV-1a) from the model, the conversation and `random_seed`; a small
//! SplitMix64 generator seeded with it draws the answer's natural length and
//! then its tokens, words from a fixed vocabulary with a sentence end now and
//! then. `stream`, `max_tokens` and `metadata` are not part of the seed, so a
//! plain and a streamed request get the same text, and a `max_tokens` limit
//! cuts the same text short.
//!
//! A trailing assistant message with `prefix: true` is not part of the seed
//! either: the answer is the one the conversation without it would get, with
//! the prefix's text taken off the front. That way `prefix + continuation`
//! is the uncut answer, byte for byte, which is what resuming a cut stream
//! needs.
//!
//! A prefix may also start with text of the caller's own (`"Once"`) and go
//! on with part of the answer, as when a stream that began from a prefix is
//! resumed. The answer then continues after the longest start of the answer
//! that the prefix ends with; a prefix that ends with none of it gets the
//! whole answer.

use crate::wire::{ChatRequest, Message, Tool, ToolChoice};

/// The natural length of an answer is drawn from this range, in tokens.
const MIN_TOKENS: u64 = 12;
const MAX_TOKENS: u64 = 40;

/// The `metadata` key that sets the natural length exactly, for benchmarks.
pub(crate) const SIM_TOKENS_KEY: &str = "sim_tokens";

/// Plain words the answers are made of.
const VOCABULARY: [&str; 48] = [
    "the", "river", "keeps", "a", "quiet", "garden", "under", "every", "morning", "light", "small",
    "boats", "drift", "past", "old", "stone", "bridges", "while", "children", "count", "clouds",
    "and", "birds", "sing", "near", "open", "windows", "of", "warm", "kitchens", "where", "bread",
    "is", "baked", "slowly", "with", "care", "before", "market", "day", "begins", "in", "town",
    "so", "people", "walk", "together", "home",
];

/// One chance in this many that a token is a sentence end.
const SENTENCE_END_ODDS: u64 = 7;

/// Salts that give each derived value its own generator.
const ID_SALT: u64 = 0x6964_5f73_616c_7421;
const TOOL_ID_SALT: u64 = 0x746f_6f6c_5f69_6421;
const PADDING_SALT: u64 = 0x7061_6464_696e_6721;

/// FNV-1a, 64 bits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fnv(u64);

impl Fnv {
    pub(crate) fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    pub(crate) fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    pub(crate) fn finish(self) -> u64 {
        self.0
    }
}

/// SplitMix64: tiny, fast, and good enough to pick words.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix(u64);

impl SplitMix {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `bound` (which must not be zero).
    pub(crate) fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }
}

/// The conversation that seeds the answer, and the prefix to continue, if
/// the last message is an assistant message with `prefix: true`.
pub(crate) fn split_prefix(messages: &[Message]) -> (&[Message], Option<String>) {
    match messages.split_last() {
        Some((last @ Message::Assistant { prefix: true, .. }, rest)) => (rest, Some(last.text())),
        _ => (messages, None),
    }
}

/// The seed of a request's answer.
pub(crate) fn request_seed(request: &ChatRequest) -> u64 {
    let (conversation, _) = split_prefix(&request.messages);
    let mut hash = Fnv::new();
    hash.write(request.model.as_bytes());
    hash.write(&[0xff]);
    for message in conversation {
        // The message's JSON covers role, content parts and tool calls.
        hash.write(&serde_json::to_vec(message).unwrap_or_default());
        hash.write(&[0xfe]);
    }
    if let Some(seed) = request.random_seed {
        hash.write(b"random_seed");
        hash.write(&seed.to_le_bytes());
    }
    hash.finish()
}

/// The seed of choice `index`; choice 0 uses the request's seed itself.
pub(crate) fn choice_seed(seed: u64, index: u32) -> u64 {
    if index == 0 {
        return seed;
    }
    let mut hash = Fnv::new();
    hash.write(&seed.to_le_bytes());
    hash.write(&index.to_le_bytes());
    hash.finish()
}

/// The endless token sequence of one seed.
#[derive(Debug, Clone)]
struct WordGen {
    rng: SplitMix,
    index: u64,
    after_sentence_end: bool,
}

impl WordGen {
    /// Writes the next token into `out`, replacing what was there.
    fn next_into(&mut self, out: &mut String) {
        out.clear();
        let sentence_end =
            self.index > 0 && !self.after_sentence_end && self.rng.below(SENTENCE_END_ODDS) == 0;
        if sentence_end {
            out.push('.');
        } else {
            let word = VOCABULARY[self.rng.below(VOCABULARY.len() as u64) as usize];
            if self.index > 0 {
                out.push(' ');
            }
            if self.index == 0 || self.after_sentence_end {
                push_capitalised(out, word);
            } else {
                out.push_str(word);
            }
        }
        self.after_sentence_end = sentence_end;
        self.index += 1;
    }
}

fn push_capitalised(out: &mut String, word: &str) {
    let mut chars = word.chars();
    if let Some(first) = chars.next() {
        out.extend(first.to_uppercase());
        out.push_str(chars.as_str());
    }
}

/// Why an answer stopped, as sent in `finish_reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Finish {
    Stop,
    Length,
}

impl Finish {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Length => "length",
        }
    }
}

/// The tokens one choice sends, generated lazily: an answer of 100,000
/// tokens costs no more memory than one of ten.
#[derive(Debug, Clone)]
pub(crate) struct TokenSource {
    words: WordGen,
    /// The rest of a token the prefix ended inside of, sent first.
    first_piece: Option<String>,
    /// Tokens left to draw from `words`.
    remaining: u64,
    finish: Finish,
}

impl TokenSource {
    /// The tokens of choice `index` of `request`, after any assistant prefix.
    pub(crate) fn new(request: &ChatRequest, index: u32) -> Self {
        let seed = choice_seed(request_seed(request), index);
        let (_, prefix) = split_prefix(&request.messages);
        let full = Self::uncut(request, seed);
        match prefix {
            Some(prefix) if !prefix.is_empty() => {
                let head = full.clone().text_up_to(prefix.len());
                let covered = covered_by(&prefix, &head);
                full.clone()
                    .continue_after(&head[..covered])
                    .unwrap_or(full)
            }
            _ => full,
        }
    }

    /// The answer's first tokens, until they hold `bytes` bytes or the
    /// answer ends.
    fn text_up_to(mut self, bytes: usize) -> String {
        let (mut text, mut token) = (String::new(), String::new());
        while text.len() < bytes && self.next_into(&mut token) {
            text.push_str(&token);
        }
        text
    }

    /// The whole answer for `seed`, limited by `max_tokens`.
    fn uncut(request: &ChatRequest, seed: u64) -> Self {
        let mut rng = SplitMix::new(seed);
        // Always draw the natural length, so `sim_tokens` changes the length
        // but not the words.
        let drawn = MIN_TOKENS + rng.below(MAX_TOKENS - MIN_TOKENS + 1);
        let natural = sim_tokens(request).unwrap_or(drawn);
        let (remaining, finish) = match request.max_tokens.map(u64::from) {
            Some(limit) if limit < natural => (limit, Finish::Length),
            _ => (natural, Finish::Stop),
        };
        Self {
            words: WordGen {
                rng,
                index: 0,
                after_sentence_end: false,
            },
            first_piece: None,
            remaining,
            finish,
        }
    }

    /// Skips the tokens `prefix` covers. `None` when `prefix` is not the
    /// start of this answer.
    fn continue_after(mut self, prefix: &str) -> Option<Self> {
        let mut rest = prefix;
        let mut token = String::new();
        while !rest.is_empty() {
            if !self.next_into(&mut token) {
                return None;
            }
            if let Some(after) = rest.strip_prefix(token.as_str()) {
                rest = after;
            } else if let Some(tail) = token.strip_prefix(rest) {
                // The prefix ends inside this token: send the rest of it.
                self.first_piece = Some(tail.to_owned());
                rest = "";
            } else {
                return None;
            }
        }
        Some(self)
    }

    /// Writes the next token into `out`; false when the answer is over.
    pub(crate) fn next_into(&mut self, out: &mut String) -> bool {
        if let Some(piece) = self.first_piece.take() {
            *out = piece;
            return true;
        }
        if self.remaining == 0 {
            return false;
        }
        self.remaining -= 1;
        self.words.next_into(out);
        true
    }

    /// How many tokens are left to send.
    pub(crate) fn len(&self) -> u64 {
        self.remaining + u64::from(self.first_piece.is_some())
    }

    pub(crate) fn finish(&self) -> Finish {
        self.finish
    }
}

impl Iterator for TokenSource {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        let mut token = String::new();
        self.next_into(&mut token).then_some(token)
    }
}

/// The length of the longest start of `answer` that `prefix` ends with.
///
/// A Knuth-Morris-Pratt pass: the matcher for `answer` is run over
/// `prefix`, and the state it ends in is the overlap. Linear in both
/// lengths, so a long prefix costs no more than reading it.
fn covered_by(prefix: &str, answer: &str) -> usize {
    let pattern = answer.as_bytes();
    if pattern.is_empty() {
        return 0;
    }
    // failure[i]: the longest proper border of pattern[..=i].
    let mut failure = vec![0usize; pattern.len()];
    let mut border = 0;
    for i in 1..pattern.len() {
        while border > 0 && pattern[i] != pattern[border] {
            border = failure[border - 1];
        }
        if pattern[i] == pattern[border] {
            border += 1;
        }
        failure[i] = border;
    }
    let mut matched = 0;
    for &byte in prefix.as_bytes() {
        if matched == pattern.len() {
            matched = failure[matched - 1];
        }
        while matched > 0 && byte != pattern[matched] {
            matched = failure[matched - 1];
        }
        if byte == pattern[matched] {
            matched += 1;
        }
    }
    // Only an overlap that splits no character can be cut out of the text.
    while matched > 0 && !answer.is_char_boundary(matched) {
        matched = failure[matched - 1];
    }
    matched
}

/// `metadata.sim_tokens`, when it is a whole number.
fn sim_tokens(request: &ChatRequest) -> Option<u64> {
    request.metadata.as_ref()?.get(SIM_TOKENS_KEY)?.as_u64()
}

/// The function the answer calls instead of answering with text: when the
/// request has a function tool and `tool_choice` is `any`, `required` or
/// names a function.
pub(crate) fn forced_tool(request: &ChatRequest) -> Option<String> {
    let first_function = request.tools.as_ref()?.iter().find_map(|tool| match tool {
        Tool::Function(function) => Some(function.function.name.clone()),
        _ => None,
    })?;
    match request.tool_choice.as_ref()? {
        ToolChoice::Any | ToolChoice::Required => Some(first_function),
        ToolChoice::Function(name) => Some(name.clone()),
        _ => None,
    }
}

/// The tokens the simulator answers `request` with (its first choice), as
/// the streamed content chunks carry them: after any assistant prefix, and
/// cut short by `max_tokens`. Empty when the simulator answers with a tool
/// call.
///
/// ```
/// use mistral_events::sim::{answer_text, answer_tokens};
/// use mistral_events::wire::{ChatRequest, Message};
///
/// let request = ChatRequest::new("mistral-small-latest", vec![Message::user("Hi")]).max_tokens(5);
/// let tokens = answer_tokens(&request);
/// assert_eq!(tokens.len(), 5);
/// assert_eq!(tokens.concat(), answer_text(&request));
/// ```
pub fn answer_tokens(request: &ChatRequest) -> Vec<String> {
    if forced_tool(request).is_some() {
        return Vec::new();
    }
    TokenSource::new(request, 0).collect()
}

/// The text the simulator answers `request` with (its first choice), both
/// plain and streamed: the tokens of [`answer_tokens`] joined.
pub fn answer_text(request: &ChatRequest) -> String {
    answer_tokens(request).concat()
}

/// The completion id: 32 lowercase hex digits derived from the seed.
pub(crate) fn completion_id(seed: u64) -> String {
    let mut rng = SplitMix::new(seed ^ ID_SALT);
    format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64())
}

/// A tool call id: nine alphanumerics derived from the seed, as Mistral's
/// own models make them.
pub(crate) fn tool_call_id(seed: u64) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = SplitMix::new(seed ^ TOOL_ID_SALT);
    (0..9)
        .map(|_| char::from(ALPHABET[rng.below(ALPHABET.len() as u64) as usize]))
        .collect()
}

/// The generator of a response's `p` padding lengths.
pub(crate) fn padding_rng(seed: u64) -> SplitMix {
    SplitMix::new(seed ^ PADDING_SALT)
}

/// A deterministic prompt token count: the words of every message, plus a
/// few for the chat template.
pub(crate) fn prompt_tokens(request: &ChatRequest) -> u64 {
    let words: usize = request
        .messages
        .iter()
        .map(|message| message.text().split_whitespace().count())
        .sum();
    words as u64 + 5
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(text: &str) -> ChatRequest {
        ChatRequest::new("mistral-small-latest", vec![Message::user(text)])
    }

    #[test]
    fn fnv_matches_the_reference_values() {
        let mut hash = Fnv::new();
        hash.write(b"a");
        assert_eq!(hash.finish(), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn natural_length_is_in_range_and_stops() {
        for text in ["a", "b", "c", "d", "e", "f"] {
            let source = TokenSource::new(&request(text), 0);
            assert!((MIN_TOKENS..=MAX_TOKENS).contains(&source.len()));
            assert_eq!(source.finish(), Finish::Stop);
        }
    }

    #[test]
    fn max_tokens_cuts_the_same_text() {
        let full = answer_tokens(&request("Tell me"));
        let cut = answer_tokens(&request("Tell me").max_tokens(4));
        assert_eq!(cut[..], full[..4]);
        assert_eq!(
            TokenSource::new(&request("Tell me").max_tokens(4), 0).finish(),
            Finish::Length
        );
    }

    #[test]
    fn prefix_that_does_not_match_gives_the_whole_answer() {
        let full = answer_text(&request("Hello"));
        let mut with_prefix = request("Hello");
        with_prefix
            .messages
            .push(Message::assistant_prefix("Zebra"));
        assert_eq!(answer_text(&with_prefix), full);
    }

    #[test]
    fn a_prefix_of_own_text_then_answer_text_continues_after_the_answer_part() {
        let mut first = request("Hello");
        first.messages.push(Message::assistant_prefix("Once"));
        let answer = answer_text(&first);
        assert_eq!(answer, answer_text(&request("Hello")));
        let cut = answer
            .char_indices()
            .nth(answer.len() / 2)
            .map_or(0, |(i, _)| i);
        let mut resumed = request("Hello");
        resumed
            .messages
            .push(Message::assistant_prefix(format!("Once{}", &answer[..cut])));
        assert_eq!(answer_text(&resumed), answer[cut..]);
    }

    #[test]
    fn overlap_is_the_longest_answer_start_the_prefix_ends_with() {
        assert_eq!(covered_by("Once upon", "upon a time"), 4);
        assert_eq!(covered_by("xyz", "upon"), 0);
        assert_eq!(covered_by("aaa", "aab"), 2);
        assert_eq!(covered_by("", "abc"), 0);
        assert_eq!(covered_by("abcabc", "abc"), 3);
    }

    #[test]
    fn ids_have_the_documented_shapes() {
        let id = completion_id(7);
        assert_eq!(id.len(), 32);
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        let call = tool_call_id(7);
        assert_eq!(call.len(), 9);
        assert!(call.bytes().all(|b| b.is_ascii_alphanumeric()));
    }
}
