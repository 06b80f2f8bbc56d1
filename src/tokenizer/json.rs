//! A small JSON reader, just enough for a Hugging Face `tokenizer.json` (and the CLI's `--stop`
//! arrays): the whole document becomes a `Json` tree. Written here rather than pulling in
//! serde_json because the engine needs so little of it and every kilobyte counts in the `.wasm`.
//! Errors carry the byte offset.

use crate::error::{Error, ErrorCode, Result};

#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    /// Numbers stay f64: token ids and ranks are far below 2^53, so they are exact.
    Number(f64),
    String(String),
    Array(Vec<Json>),
    /// Members in file order; lookups are linear, which is fine for the few keys we read.
    Object(Vec<(String, Json)>),
}

/// Deeper nesting than this is rejected, so hostile input cannot overflow the stack.
const MAX_DEPTH: usize = 64;

impl Json {
    /// A tokenizer's JSON (errors are `invalid_options`: the caller passed the file).
    pub fn parse(bytes: &[u8]) -> Result<Json> {
        Json::parse_as(bytes, "tokenizer JSON", ErrorCode::InvalidOptions)
    }

    /// A JSON document; errors say "malformed {what} at byte N" with `code`.
    pub fn parse_as(bytes: &[u8], what: &'static str, code: ErrorCode) -> Result<Json> {
        let mut p = Parser { s: bytes, i: 0, what, code };
        p.skip_ws();
        let v = p.value(0)?;
        p.skip_ws();
        if p.i != bytes.len() {
            return Err(p.err("unexpected data after the JSON document"));
        }
        Ok(v)
    }

    /// The member `key` of an object (None for other values or a missing key).
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    /// A non-negative integer that fits u32.
    pub fn as_u32(&self) -> Option<u32> {
        match *self {
            Json::Number(n) if n >= 0.0 && n <= u32::MAX as f64 && n.fract() == 0.0 => Some(n as u32),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Json::Bool(b) => Some(b),
            _ => None,
        }
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    what: &'static str,
    code: ErrorCode,
}

impl Parser<'_> {
    fn err(&self, what: &str) -> Error {
        Error::new(self.code, format!("malformed {} at byte {}: {what}", self.what, self.i))
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.s.get(self.i) {
            self.i += 1;
        }
    }

    fn expect(&mut self, lit: &[u8]) -> Result<()> {
        if self.s[self.i..].starts_with(lit) {
            self.i += lit.len();
            Ok(())
        } else {
            Err(self.err("unexpected character"))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Json> {
        if depth > MAX_DEPTH {
            return Err(self.err("nested too deeply"));
        }
        match self.s.get(self.i) {
            None => Err(self.err("unexpected end of data")),
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => Ok(Json::String(self.string()?)),
            Some(b't') => self.expect(b"true").map(|_| Json::Bool(true)),
            Some(b'f') => self.expect(b"false").map(|_| Json::Bool(false)),
            Some(b'n') => self.expect(b"null").map(|_| Json::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.err("unexpected character")),
        }
    }

    /// Shared loop of arrays and objects: items separated by commas until `close`.
    fn items(&mut self, close: u8, mut item: impl FnMut(&mut Self) -> Result<()>) -> Result<()> {
        self.i += 1; // the opening bracket
        self.skip_ws();
        if self.s.get(self.i) == Some(&close) {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.skip_ws();
            item(self)?;
            self.skip_ws();
            match self.s.get(self.i) {
                Some(b',') => self.i += 1,
                Some(&c) if c == close => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(self.err("expected ',' or a closing bracket")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Json> {
        let mut out = Vec::new();
        self.items(b']', |p| {
            out.push(p.value(depth + 1)?);
            Ok(())
        })?;
        Ok(Json::Array(out))
    }

    fn object(&mut self, depth: usize) -> Result<Json> {
        let mut out = Vec::new();
        self.items(b'}', |p| {
            if p.s.get(p.i) != Some(&b'"') {
                return Err(p.err("expected a string key"));
            }
            let key = p.string()?;
            p.skip_ws();
            p.expect(b":")?;
            p.skip_ws();
            out.push((key, p.value(depth + 1)?));
            Ok(())
        })?;
        Ok(Json::Object(out))
    }

    fn number(&mut self) -> Result<Json> {
        let start = self.i;
        while let Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') = self.s.get(self.i) {
            self.i += 1;
        }
        // The scanned bytes are ASCII, so from_utf8 cannot fail; Rust's f64 parser checks the rest.
        let text = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
        text.parse::<f64>().map(Json::Number).map_err(|_| self.err("bad number"))
    }

    fn hex4(&mut self) -> Result<u32> {
        let digits = self.s.get(self.i..self.i + 4).ok_or_else(|| self.err("truncated \\u escape"))?;
        let mut v = 0;
        for &d in digits {
            v = v * 16 + (d as char).to_digit(16).ok_or_else(|| self.err("bad \\u escape"))?;
        }
        self.i += 4;
        Ok(v)
    }

    fn string(&mut self) -> Result<String> {
        self.i += 1; // the opening quote
        let mut out = Vec::new();
        loop {
            // Copy the run up to the next quote or backslash in one go (most strings have neither).
            let run = self.s[self.i..].iter().position(|&b| b == b'"' || b == b'\\');
            let Some(n) = run else { return Err(self.err("unterminated string")) };
            out.extend_from_slice(&self.s[self.i..self.i + n]);
            self.i += n;
            if self.s[self.i] == b'"' {
                self.i += 1;
                return String::from_utf8(out).map_err(|_| self.err("string is not valid UTF-8"));
            }
            self.i += 1; // the backslash
            let esc = *self.s.get(self.i).ok_or_else(|| self.err("truncated escape"))?;
            self.i += 1;
            let c = match esc {
                b'"' => '"',
                b'\\' => '\\',
                b'/' => '/',
                b'b' => '\u{8}',
                b'f' => '\u{c}',
                b'n' => '\n',
                b'r' => '\r',
                b't' => '\t',
                b'u' => self.unicode_escape()?,
                _ => return Err(self.err("unknown escape")),
            };
            out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
        }
    }

    /// `\uXXXX`, joining a UTF-16 surrogate pair written as two escapes.
    fn unicode_escape(&mut self) -> Result<char> {
        let hi = self.hex4()?;
        let code = if (0xD800..0xDC00).contains(&hi) {
            if !self.s[self.i..].starts_with(b"\\u") {
                return Err(self.err("lone surrogate in \\u escape"));
            }
            self.i += 2;
            let lo = self.hex4()?;
            if !(0xDC00..0xE000).contains(&lo) {
                return Err(self.err("lone surrogate in \\u escape"));
            }
            0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
        } else {
            hi
        };
        char::from_u32(code).ok_or_else(|| self.err("lone surrogate in \\u escape"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nested_values_and_escapes() {
        let v = Json::parse(br#" {"a": [1, -2.5e1, true, null], "b": "x\"\u00e9\ud83d\ude00\n"} "#).unwrap();
        let a = v.get("a").unwrap();
        assert_eq!(*a, Json::Array(vec![Json::Number(1.0), Json::Number(-25.0), Json::Bool(true), Json::Null]));
        assert_eq!(v.get("b").unwrap().as_str(), Some("x\"é😀\n"));
        assert_eq!(Json::parse(b"[]").unwrap(), Json::Array(vec![]));
        assert_eq!(Json::parse(b"{}").unwrap(), Json::Object(vec![]));
    }

    #[test]
    fn rejects_malformed_documents() {
        let bad: &[&[u8]] = &[
            b"",
            b"{",
            b"[1,]",
            b"[1 2]",
            b"{\"a\" 1}",
            b"\"abc",
            b"\"\\q\"",
            b"\"\\ud800\"",
            b"tru",
            b"[1] x",
            b"{1: 2}",
            b"\"\xff\"",
            b"-",
            b"\"\\u12\"",
        ];
        for doc in bad {
            let e = Json::parse(doc).unwrap_err();
            assert_eq!(e.code, crate::error::ErrorCode::InvalidOptions, "{doc:?}");
        }
        let deep = "[".repeat(10_000);
        assert!(Json::parse(deep.as_bytes()).unwrap_err().message.contains("deeply"));
    }
}
