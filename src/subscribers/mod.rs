//! Built-in subscribers.
