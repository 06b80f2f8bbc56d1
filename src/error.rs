//! One typed error for the whole engine. `code` is the stable, machine-readable part that crosses
//! the JS boundary (see the `EchoError` codes in the browser API); `message` says what to do.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The bytes are not a valid rwkv.cpp model (bad magic, truncated, bad shapes, missing tensors).
    InvalidModel,
    /// A format version or data type this engine does not read (e.g. version-100 quantized files).
    UnsupportedVersion,
    /// The model needs more memory than the engine's limit allows.
    ModelTooLarge,
    /// The caller aborted the operation.
    Aborted,
    /// Reading the source failed (network, file system).
    LoadFailed,
    /// An operation needs a loaded model and there is none.
    NoModel,
    /// An argument is out of range or malformed (tokens, state sizes, option values).
    InvalidOptions,
    /// An allocation failed even though the model fit the budget when it was checked.
    OutOfMemory,
    /// ggml's graph computation did not complete, for a reason other than memory.
    ComputeFailed,
    /// The engine is already running an operation that cannot be interleaved.
    Busy,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidModel => "invalid_model",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::ModelTooLarge => "model_too_large",
            ErrorCode::Aborted => "aborted",
            ErrorCode::LoadFailed => "load_failed",
            ErrorCode::NoModel => "no_model",
            ErrorCode::InvalidOptions => "invalid_options",
            ErrorCode::OutOfMemory => "out_of_memory",
            ErrorCode::ComputeFailed => "compute_failed",
            ErrorCode::Busy => "busy",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
    /// Set for `ModelTooLarge`: bytes the model needs and the limit it was checked against.
    pub needed_bytes: Option<u64>,
    pub limit_bytes: Option<u64>,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error { code, message: message.into(), needed_bytes: None, limit_bytes: None }
    }
    pub fn invalid_model(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidModel, message)
    }
    pub fn invalid_options(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidOptions, message)
    }
    pub fn too_large(needed: u64, limit: u64) -> Self {
        Error {
            code: ErrorCode::ModelTooLarge,
            message: format!(
                "the model needs {} MB but the memory limit is {} MB; use a smaller or more \
                 strongly quantized model, or raise the limit",
                mb(needed),
                mb(limit)
            ),
            needed_bytes: Some(needed),
            limit_bytes: Some(limit),
        }
    }
    /// `bytes` 0: the size is not known.
    pub fn out_of_memory(what: &str, bytes: usize) -> Self {
        let size = if bytes == 0 { String::new() } else { format!("{} MB ", mb(bytes as u64)) };
        Self::new(ErrorCode::OutOfMemory, format!("could not allocate {size}for {what}; free memory (unload a model) and retry"))
    }

    /// One JSON object: `{"code": …, "message": …}` (+ byte counts for `model_too_large`).
    pub fn to_json(&self) -> String {
        let mut s = format!("{{\"code\":\"{}\",\"message\":{}", self.code.as_str(), json_string(&self.message));
        if let (Some(n), Some(l)) = (self.needed_bytes, self.limit_bytes) {
            s.push_str(&format!(",\"neededBytes\":{n},\"limitBytes\":{l}"));
        }
        s.push('}');
        s
    }
}

fn mb(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / (1024.0 * 1024.0))
}

/// A JSON string literal (quotes and escapes) — enough for messages, without a JSON dependency.
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for Error {}
