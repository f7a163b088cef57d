//! The one error type of the compiler.
//!
//! Every error prints as a single line that names the thing at fault: the
//! archive entry, the node (with its Python source line), or the input.

use std::fmt;

/// Where in the user's Python program a node came from, for error messages.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceLoc(pub Option<String>);

impl fmt::Display for SourceLoc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(s) => write!(f, " ({s})"),
            None => Ok(()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The archive itself is unreadable or inconsistent.
    #[error("archive {path}: {msg}")]
    Archive { path: String, msg: String },
    /// An I/O failure on a named file.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The serialized program is malformed or unsupported.
    #[error("schema: {0}")]
    Schema(String),
    /// A symbolic expression did not parse or could not be evaluated.
    #[error("symbolic expression {expr:?}: {msg}")]
    Sym { expr: String, msg: String },
    /// A node could not be handled: unsupported op, bad arguments, shape error.
    #[error("node {node}{loc}: {msg}")]
    Node {
        node: String,
        loc: SourceLoc,
        msg: String,
    },
    /// A user input does not match the signature.
    #[error("input {name}: {msg}")]
    Input { name: String, msg: String },
    /// The graph failed verification.
    #[error("verifier: {0}")]
    Verify(String),
    /// IR text did not parse.
    #[error("ir text line {line}: {msg}")]
    Parse { line: usize, msg: String },
    #[error("{0}")]
    Other(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn archive(path: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Archive {
            path: path.into(),
            msg: msg.into(),
        }
    }
    pub fn schema(msg: impl Into<String>) -> Self {
        Error::Schema(msg.into())
    }
    pub fn other(msg: impl Into<String>) -> Self {
        Error::Other(msg.into())
    }
    pub fn input(name: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Input {
            name: name.into(),
            msg: msg.into(),
        }
    }
}
