//! Diagnostics: errors and warnings with a `file:line:col` location.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// A position in a configuration file (1-based line and column; the column
/// counts characters).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Location {
    pub file: Arc<str>,
    pub line: u32,
    pub col: u32,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One finding. Errors make a configuration unusable; warnings do not.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub location: Option<Location>,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    /// Errors print as `file:line:col: message`, warnings as
    /// `file:line:col: warning: message`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(loc) = &self.location {
            write!(f, "{loc}: ")?;
        }
        if self.severity == Severity::Warning {
            write!(f, "warning: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Collects diagnostics while a configuration is read.
#[derive(Clone, Debug, Default)]
pub struct Diagnostics {
    pub items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn error(&mut self, loc: &Location, msg: impl Into<String>) {
        self.items.push(Diagnostic {
            severity: Severity::Error,
            location: Some(loc.clone()),
            message: msg.into(),
        });
    }
    pub fn warn(&mut self, loc: &Location, msg: impl Into<String>) {
        self.items.push(Diagnostic {
            severity: Severity::Warning,
            location: Some(loc.clone()),
            message: msg.into(),
        });
    }
    pub fn error_noloc(&mut self, msg: impl Into<String>) {
        self.items.push(Diagnostic {
            severity: Severity::Error,
            location: None,
            message: msg.into(),
        });
    }
    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter().filter(|d| d.severity == Severity::Error)
    }
    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items
            .iter()
            .filter(|d| d.severity == Severity::Warning)
    }
}
