//! Faults the simulator injects on request, and their text syntax.
//!
//! A [`Fault`] is one thing to do wrong while answering a chat request. The
//! text form (`status=429,retry-after=1`, `cut-after=3`, …) is shared by the
//! command line, the `x-sim-fault` request header and [`Fault`]'s
//! `FromStr`/`Display` pair, so what a test prints can be pasted back in.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// One thing for the simulator to do wrong while answering a chat request.
///
/// Faults that act on the stream count *content chunks*: the chunks after the
/// first (role-only) chunk that carry answer text. When the answer has fewer
/// content chunks than the count, the fault acts once the content runs out,
/// in place of the final usage chunk. A tool-call answer has one content
/// chunk, the call.
///
/// On a plain (non-streamed) answer, cut-after, stall-after and
/// malformed-after act on the JSON body instead: half of it is sent, then the
/// connection is cut, goes quiet, or the body ends early. Chunk delays and
/// no-done do nothing there.
///
/// The text syntax, parsed by [`FromStr`] and written by
/// [`Display`](fmt::Display):
///
/// | fault | text |
/// |---|---|
/// | [`Fault::Status`] | `status=429`, `status=429,retry-after=1`, `status=503,retry-after=Wed, 21 Oct 2015 07:28:00 GMT`, `status=400,body={"detail":"no"}` |
/// | [`Fault::FirstByteDelay`] | `first-byte-delay=2s` |
/// | [`Fault::ChunkDelay`] | `chunk-delay=50ms` |
/// | [`Fault::CutAfter`] | `cut-after=3` |
/// | [`Fault::StallAfter`] | `stall-after=3` |
/// | [`Fault::MalformedAfter`] | `malformed-after=2` |
/// | [`Fault::NoDone`] | `no-done` |
///
/// Durations use [`humantime`] syntax (`250ms`, `2s`, `1m 30s`). In a status
/// fault, `body=` must come last: it takes the rest of the text verbatim,
/// commas included.
///
/// ```
/// use std::time::Duration;
/// use mistral_events::sim::Fault;
///
/// let fault: Fault = "chunk-delay=50ms".parse().unwrap();
/// assert_eq!(fault, Fault::ChunkDelay(Duration::from_millis(50)));
/// assert_eq!(fault.to_string(), "chunk-delay=50ms");
///
/// let status: Fault = "status=429,retry-after=1".parse().unwrap();
/// assert_eq!(status, Fault::status(429).with_retry_after("1"));
/// assert!("status=abc".parse::<Fault>().is_err());
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this HTTP status instead of a completion, before the
    /// request is validated.
    Status {
        /// The status code, such as 429 or 503.
        status: u16,
        /// A `Retry-After` header value, sent verbatim: seconds (`"1"`) or
        /// an HTTP date.
        retry_after: Option<String>,
        /// The body, sent verbatim. `None` sends the body Mistral would: its
        /// `{"object":"error",…}` shape with a `rate_limited` type and code
        /// `"1300"` for 429, an internal error for 5xx, and so on.
        body: Option<String>,
    },
    /// Wait this long before sending the response headers.
    FirstByteDelay(Duration),
    /// Wait this long before every streamed event after the first.
    ChunkDelay(Duration),
    /// Stream this many content chunks, then abort the connection mid-body,
    /// without the chunked encoding's terminating chunk.
    CutAfter(usize),
    /// Stream this many content chunks, then send nothing more until the
    /// client goes away.
    StallAfter(usize),
    /// Stream this many content chunks, then one event whose JSON is cut
    /// short, then `data: [DONE]`.
    MalformedAfter(usize),
    /// Stream the whole answer and its usage chunk, then end the body cleanly
    /// without `data: [DONE]`.
    NoDone,
}

impl Fault {
    /// A [`Fault::Status`] with Mistral's default body and no `Retry-After`.
    pub fn status(status: u16) -> Self {
        Self::Status {
            status,
            retry_after: None,
            body: None,
        }
    }

    /// Sets the `Retry-After` value of a [`Fault::Status`]; other faults are
    /// returned unchanged.
    #[must_use]
    pub fn with_retry_after(self, value: impl Into<String>) -> Self {
        match self {
            Self::Status { status, body, .. } => Self::Status {
                status,
                retry_after: Some(value.into()),
                body,
            },
            other => other,
        }
    }

    /// Sets the body of a [`Fault::Status`]; other faults are returned
    /// unchanged.
    #[must_use]
    pub fn with_body(self, value: impl Into<String>) -> Self {
        match self {
            Self::Status {
                status,
                retry_after,
                ..
            } => Self::Status {
                status,
                retry_after,
                body: Some(value.into()),
            },
            other => other,
        }
    }

    /// Parses a `;`-separated list of faults, as in the `x-sim-fault`
    /// header: `chunk-delay=10ms;cut-after=3`. Empty items are skipped, so an
    /// empty text gives an empty list.
    ///
    /// A status fault's `body=` cannot hold a `;` in this form.
    pub fn parse_list(text: &str) -> Result<Vec<Fault>, FaultParseError> {
        text.split(';')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::parse)
            .collect()
    }
}

/// Why a fault's text did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid fault {input:?}: {reason}")]
pub struct FaultParseError {
    input: String,
    reason: String,
}

impl FaultParseError {
    fn new(input: &str, reason: impl Into<String>) -> Self {
        Self {
            input: input.to_owned(),
            reason: reason.into(),
        }
    }
}

/// The names accepted by [`Fault::from_str`], for error messages.
const FAULT_NAMES: &str =
    "status, first-byte-delay, chunk-delay, cut-after, stall-after, malformed-after, no-done";

impl FromStr for Fault {
    type Err = FaultParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let input = text.trim();
        let (name, value) = match input.split_once('=') {
            Some((name, value)) => (name.trim(), Some(value.trim())),
            None => (input, None),
        };
        let fail = |reason: String| FaultParseError::new(input, reason);
        match (name, value) {
            ("", _) => Err(fail(format!("empty fault; expected one of: {FAULT_NAMES}"))),
            ("no-done", None) => Ok(Self::NoDone),
            ("no-done", Some(_)) => Err(fail("no-done takes no value".to_owned())),
            (_, None) if is_fault_name(name) => Err(fail(format!(
                "{name} needs a value, such as {}",
                example(name)
            ))),
            ("status", Some(value)) => parse_status(value).map_err(fail),
            ("first-byte-delay", Some(value)) => parse_duration(name, value)
                .map(Self::FirstByteDelay)
                .map_err(fail),
            ("chunk-delay", Some(value)) => parse_duration(name, value)
                .map(Self::ChunkDelay)
                .map_err(fail),
            ("cut-after", Some(value)) => {
                parse_count(name, value).map(Self::CutAfter).map_err(fail)
            }
            ("stall-after", Some(value)) => {
                parse_count(name, value).map(Self::StallAfter).map_err(fail)
            }
            ("malformed-after", Some(value)) => parse_count(name, value)
                .map(Self::MalformedAfter)
                .map_err(fail),
            _ => Err(fail(format!(
                "unknown fault {name:?}; expected one of: {FAULT_NAMES}"
            ))),
        }
    }
}

fn is_fault_name(name: &str) -> bool {
    FAULT_NAMES.split(", ").any(|known| known == name)
}

fn example(name: &str) -> &'static str {
    match name {
        "status" => "status=429",
        "first-byte-delay" => "first-byte-delay=2s",
        "chunk-delay" => "chunk-delay=50ms",
        "cut-after" => "cut-after=3",
        "stall-after" => "stall-after=3",
        _ => "malformed-after=2",
    }
}

fn parse_duration(name: &str, value: &str) -> Result<Duration, String> {
    humantime::parse_duration(value)
        .map_err(|error| format!("{name} needs a duration such as 50ms or 2s: {error}"))
}

fn parse_count(name: &str, value: &str) -> Result<usize, String> {
    value.parse().map_err(|_| {
        format!("{name} needs a whole number of content chunks, such as {name}=3; got {value:?}")
    })
}

/// Parses `429`, `429,retry-after=1`, `429,retry-after=<HTTP date>` and any of
/// those followed by `,body=<rest of the text>`.
fn parse_status(value: &str) -> Result<Fault, String> {
    // `body=` swallows everything after it, commas included.
    let (head, body) = match value.find(",body=") {
        Some(at) => (&value[..at], Some(value[at + ",body=".len()..].to_owned())),
        None => (value, None),
    };
    let (code, options) = match head.split_once(',') {
        Some((code, options)) => (code.trim(), Some(options.trim())),
        None => (head.trim(), None),
    };
    let status = code
        .parse::<u16>()
        .ok()
        .filter(|status| (100..=599).contains(status))
        .ok_or_else(|| format!("status needs an HTTP status code from 100 to 599; got {code:?}"))?;
    let retry_after = options.map(parse_retry_after).transpose()?;
    Ok(Fault::Status {
        status,
        retry_after,
        body,
    })
}

/// Parses `retry-after=<seconds or HTTP date>`. An HTTP date holds commas,
/// which is why this sees everything between the code and `,body=`.
fn parse_retry_after(option: &str) -> Result<String, String> {
    let Some(value) = option.strip_prefix("retry-after=") else {
        let key = option.split('=').next().unwrap_or(option);
        return Err(format!(
            "unknown status option {key:?}; expected retry-after=<seconds or HTTP date> or body=<text>"
        ));
    };
    let value = value.trim();
    let is_seconds = !value.is_empty() && value.bytes().all(|byte| byte.is_ascii_digit());
    if is_seconds || httpdate::parse_http_date(value).is_ok() {
        Ok(value.to_owned())
    } else {
        Err(format!(
            "retry-after needs whole seconds or an HTTP date (such as \"Wed, 21 Oct 2015 07:28:00 GMT\"); got {value:?}"
        ))
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status {
                status,
                retry_after,
                body,
            } => {
                write!(f, "status={status}")?;
                if let Some(retry_after) = retry_after {
                    write!(f, ",retry-after={retry_after}")?;
                }
                if let Some(body) = body {
                    write!(f, ",body={body}")?;
                }
                Ok(())
            }
            Self::FirstByteDelay(delay) => {
                write!(f, "first-byte-delay={}", humantime::format_duration(*delay))
            }
            Self::ChunkDelay(delay) => {
                write!(f, "chunk-delay={}", humantime::format_duration(*delay))
            }
            Self::CutAfter(count) => write!(f, "cut-after={count}"),
            Self::StallAfter(count) => write!(f, "stall-after={count}"),
            Self::MalformedAfter(count) => write!(f, "malformed-after={count}"),
            Self::NoDone => f.write_str("no-done"),
        }
    }
}

/// A status fault, taken apart for the handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StatusFault {
    pub(crate) status: u16,
    pub(crate) retry_after: Option<String>,
    pub(crate) body: Option<String>,
}

/// How a faulty stream ends, instead of its usage chunk and `[DONE]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// Abort the connection after this many content chunks.
    Cut(usize),
    /// Go quiet after this many content chunks.
    Stall(usize),
    /// Send a broken event after this many content chunks, then `[DONE]`.
    Malformed(usize),
    /// Leave out `[DONE]`.
    NoDone,
}

/// The faults that apply to one request, merged. Within one set, the last
/// fault of each kind wins; cut, stall, malformed and no-done are one kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FaultPlan {
    pub(crate) status: Option<StatusFault>,
    pub(crate) first_byte_delay: Option<Duration>,
    pub(crate) chunk_delay: Option<Duration>,
    pub(crate) ending: Option<Ending>,
}

impl FaultPlan {
    pub(crate) fn from_faults(faults: &[Fault]) -> Self {
        let mut plan = Self::default();
        for fault in faults {
            match fault {
                Fault::Status {
                    status,
                    retry_after,
                    body,
                } => {
                    plan.status = Some(StatusFault {
                        status: *status,
                        retry_after: retry_after.clone(),
                        body: body.clone(),
                    });
                }
                Fault::FirstByteDelay(delay) => plan.first_byte_delay = Some(*delay),
                Fault::ChunkDelay(delay) => plan.chunk_delay = Some(*delay),
                Fault::CutAfter(count) => plan.ending = Some(Ending::Cut(*count)),
                Fault::StallAfter(count) => plan.ending = Some(Ending::Stall(*count)),
                Fault::MalformedAfter(count) => plan.ending = Some(Ending::Malformed(*count)),
                Fault::NoDone => plan.ending = Some(Ending::NoDone),
            }
        }
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_round_trips_through_text() {
        let faults = [
            Fault::status(503),
            Fault::status(429).with_retry_after("1"),
            Fault::status(429).with_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Fault::status(400).with_body(r#"{"detail":"a, b"}"#),
            Fault::FirstByteDelay(Duration::from_secs(2)),
            Fault::ChunkDelay(Duration::from_millis(50)),
            Fault::ChunkDelay(Duration::from_millis(1500)),
            Fault::CutAfter(3),
            Fault::StallAfter(0),
            Fault::MalformedAfter(2),
            Fault::NoDone,
        ];
        for fault in faults {
            let text = fault.to_string();
            assert_eq!(text.parse::<Fault>(), Ok(fault), "{text}");
        }
    }

    #[test]
    fn junk_is_rejected_with_a_reason() {
        for junk in [
            "",
            "status",
            "status=42",
            "status=429,retry-after=soon",
            "status=429,colour=red",
            "cut-after=-1",
            "chunk-delay=fast",
            "no-done=1",
            "explode",
        ] {
            let error = junk.parse::<Fault>().expect_err(junk);
            assert!(error.to_string().contains("invalid fault"), "{error}");
        }
    }

    #[test]
    fn later_faults_of_a_kind_win() {
        let plan = FaultPlan::from_faults(&[
            Fault::CutAfter(1),
            Fault::ChunkDelay(Duration::from_millis(5)),
            Fault::NoDone,
        ]);
        assert_eq!(plan.ending, Some(Ending::NoDone));
        assert_eq!(plan.chunk_delay, Some(Duration::from_millis(5)));
        assert!(plan.status.is_none());
    }
}
