//! One typed error for the whole engine. Messages follow the convention
//! "component: expected X, found Y"; `context` prepends where it happened.

use std::fmt;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Shapes that do not fit the op (broadcast, matmul inner dims, axis out of range, …).
    #[error("{0}")]
    Shape(String),
    /// Dtypes the op does not accept.
    #[error("{0}")]
    DType(String),
    /// A primitive has no kernel on this device: never a silent fallback.
    #[error("{op}: not implemented on {device}")]
    NotImplemented { op: String, device: String },
    /// Malformed model files and bad metadata.
    #[error("{0}")]
    Format(String),
    /// Out of memory on a device, or an allocation larger than allowed.
    #[error("{0}")]
    OutOfMemory(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Msg(String),
    #[error("{context}: {inner}")]
    Context { context: String, inner: Box<Error> },
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn msg(m: impl fmt::Display) -> Self {
        Error::Msg(m.to_string())
    }
    pub fn shape(m: impl fmt::Display) -> Self {
        Error::Shape(m.to_string())
    }
    pub fn dtype(m: impl fmt::Display) -> Self {
        Error::DType(m.to_string())
    }
    pub fn format(m: impl fmt::Display) -> Self {
        Error::Format(m.to_string())
    }
    pub fn io(context: impl fmt::Display, source: std::io::Error) -> Self {
        Error::Io {
            context: context.to_string(),
            source,
        }
    }
    pub fn context(self, c: impl fmt::Display) -> Self {
        Error::Context {
            context: c.to_string(),
            inner: Box::new(self),
        }
    }
}

/// `.context("loading layer 3")` on any `Result<T, Error>`.
pub trait ResultExt<T> {
    fn context(self, c: impl fmt::Display) -> Result<T>;
    fn with_context<F: FnOnce() -> String>(self, f: F) -> Result<T>;
}

impl<T> ResultExt<T> for Result<T> {
    fn context(self, c: impl fmt::Display) -> Result<T> {
        self.map_err(|e| e.context(c))
    }
    fn with_context<F: FnOnce() -> String>(self, f: F) -> Result<T> {
        self.map_err(|e| e.context(f()))
    }
}

/// Early return with a formatted error: `bail!(Shape, "matmul: expected …, found …")`.
#[macro_export]
macro_rules! bail {
    ($kind:ident, $($arg:tt)*) => {
        return Err($crate::Error::$kind(format!($($arg)*)))
    };
}
