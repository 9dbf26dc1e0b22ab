//! Subject ids: the `request_id` of a model call, and the other ids events
//! carry.
//!
//! An id is 1 to 64 characters from `[A-Za-z0-9_-]`, so it is safe in a
//! NATS subject, a file name or a URL path without escaping. A caller may
//! choose one; otherwise [`RequestId::generate`] makes a random one.
//!
//! ```
//! use mistral_events::RequestId;
//!
//! let id: RequestId = "order-42".parse().unwrap();
//! assert_eq!(id.as_str(), "order-42");
//! assert!("has space".parse::<RequestId>().is_err());
//! ```

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest id accepted.
pub const MAX_ID_LEN: usize = 64;

/// The id of one model call, validated to `[A-Za-z0-9_-]{1,64}`.
///
/// Cloning is cheap: the text is shared.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(Arc<str>);

/// An id that is empty, too long, or holds a character outside
/// `[A-Za-z0-9_-]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid id {id:?}: ids are 1 to 64 characters from [A-Za-z0-9_-]")]
pub struct InvalidId {
    /// The rejected text, cut to 80 characters.
    pub id: String,
}

/// Checks `text` against the id rules.
pub fn validate_id(text: &str) -> Result<(), InvalidId> {
    let valid = !text.is_empty()
        && text.len() <= MAX_ID_LEN
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(InvalidId {
            id: text.chars().take(80).collect(),
        })
    }
}

impl RequestId {
    /// Validates and wraps `text`.
    ///
    /// # Errors
    ///
    /// [`InvalidId`] when `text` breaks the id rules.
    pub fn new(text: impl AsRef<str>) -> Result<Self, InvalidId> {
        let text = text.as_ref();
        validate_id(text)?;
        Ok(Self(Arc::from(text)))
    }

    /// A fresh random id: `req_` followed by 20 alphanumerics.
    pub fn generate() -> Self {
        let mut id = String::with_capacity(24);
        id.push_str("req_");
        id.extend(std::iter::repeat_with(fastrand::alphanumeric).take(20));
        Self(Arc::from(id))
    }

    /// The id's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for RequestId {
    type Err = InvalidId;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::new(text)
    }
}

impl AsRef<str> for RequestId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for RequestId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for RequestId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::new(text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_id_alphabet_up_to_64_characters() {
        assert!(RequestId::new("a").is_ok());
        assert!(RequestId::new("A-z_09").is_ok());
        assert!(RequestId::new("x".repeat(64)).is_ok());
    }

    #[test]
    fn rejects_empty_long_and_foreign_characters() {
        assert!(RequestId::new("").is_err());
        assert!(RequestId::new("x".repeat(65)).is_err());
        for bad in ["a b", "a.b", "a/b", "é", "a\n"] {
            assert!(RequestId::new(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn generated_ids_are_valid_and_distinct() {
        let a = RequestId::generate();
        let b = RequestId::generate();
        assert!(validate_id(a.as_str()).is_ok());
        assert_ne!(a, b);
    }
}
