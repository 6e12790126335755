//! The one error a component's start function returns: a sentence saying what could not start
//! and why, printed by the binary as `<binary>: <reason>`.

use std::fmt;

/// A component could not start; the message says which part and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartError(String);

impl StartError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }

    /// Prefixes the message with what was being started (`"the gateway: ..."`).
    pub fn context(self, what: &str) -> Self {
        Self(format!("{what}: {}", self.0))
    }
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

impl From<String> for StartError {
    fn from(message: String) -> Self {
        Self(message)
    }
}

impl From<&str> for StartError {
    fn from(message: &str) -> Self {
        Self(message.to_owned())
    }
}
