//! Streaming UTF-8: token bytes in, complete text out. A token may end in the middle of a
//! character (byte-level and World vocabularies split multi-byte characters), so an incomplete
//! trailing sequence is held back until the next bytes complete it. Bytes that can never form a
//! character become U+FFFD, the way `String::from_utf8_lossy` replaces them.

#[derive(Debug, Default, Clone)]
pub struct Utf8Stream {
    /// The start of a character whose remaining bytes have not arrived (at most 3 bytes).
    pending: Vec<u8>,
}

impl Utf8Stream {
    pub fn new() -> Utf8Stream {
        Utf8Stream::default()
    }

    /// Appends `bytes`; returns the text they complete (possibly empty).
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        let mut rest: &[u8] = &self.pending;
        loop {
            match std::str::from_utf8(rest) {
                Ok(text) => {
                    out.push_str(text);
                    rest = &[];
                    break;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    // `valid_up_to` guarantees this prefix is valid, so the fallback never applies.
                    out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                    match e.error_len() {
                        // A sequence cut short by the end of the input: wait for more bytes.
                        None => {
                            rest = after;
                            break;
                        }
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            rest = &after[bad..];
                        }
                    }
                }
            }
        }
        let consumed = self.pending.len() - rest.len();
        self.pending.drain(..consumed);
        out
    }

    /// Ends the stream: a held incomplete sequence becomes U+FFFD.
    pub fn finish(&mut self) -> String {
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        out
    }

    /// Whether bytes are held back.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_a_split_character_until_complete() {
        let mut s = Utf8Stream::new();
        assert_eq!(s.push(b"a\xE4\xB8"), "a");
        assert!(s.has_pending());
        assert_eq!(s.push(b"\xADb"), "中b");
        assert_eq!(s.finish(), "");
    }

    #[test]
    fn invalid_bytes_become_replacement_characters() {
        let mut s = Utf8Stream::new();
        assert_eq!(s.push(b"\xFFa\x80"), "\u{FFFD}a\u{FFFD}");
        // A lead byte followed by a non-continuation byte: the lead alone is replaced.
        assert_eq!(s.push(b"\xE4b"), "\u{FFFD}b");
        assert_eq!(s.push(b"\xF0\x9F"), "");
        assert_eq!(s.finish(), "\u{FFFD}");
        assert!(!s.has_pending());
    }
}
