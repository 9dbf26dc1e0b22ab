//! Bus.
