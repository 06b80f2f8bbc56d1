//! GPT-2's pre-tokenizer, which NeoX's byte-level BPE runs before merging: text is cut into
//! pieces by the pattern
//!
//! ```text
//! 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//! ```
//!
//! Written as a hand scanner rather than with a regex crate: the lookahead `(?!\S)` is beyond
//! `regex`, and the alternatives reduce to "one optional space, then a run of one character
//! class", which is a few lines. Classes are Unicode general categories (letters L*, numbers N*)
//! and White_Space, as in the Oniguruma regex the reference tokenizer uses.

use unicode_properties::{GeneralCategoryGroup, UnicodeGeneralCategory};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Letter,
    Number,
    Space,
    Other,
}

fn class(c: char) -> Class {
    if c.is_ascii() {
        // The common case, without the table lookups.
        return match c {
            'a'..='z' | 'A'..='Z' => Class::Letter,
            '0'..='9' => Class::Number,
            ' ' | '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' => Class::Space,
            _ => Class::Other,
        };
    }
    if c.is_whitespace() {
        return Class::Space;
    }
    match c.general_category_group() {
        GeneralCategoryGroup::Letter => Class::Letter,
        GeneralCategoryGroup::Number => Class::Number,
        _ => Class::Other,
    }
}

/// Byte length of the leading run of characters of class `k`.
fn run(s: &str, k: Class) -> usize {
    s.char_indices().find(|&(_, c)| class(c) != k).map_or(s.len(), |(i, _)| i)
}

const CONTRACTIONS: [&str; 7] = ["s", "t", "re", "ve", "m", "ll", "d"];

/// Byte length of the first piece of a non-empty `s` (the first alternative that matches wins).
fn first_piece(s: &str) -> usize {
    let mut chars = s.chars();
    let Some(c) = chars.next() else { return 0 };
    if c == '\'' {
        if let Some(suffix) = CONTRACTIONS.iter().find(|suffix| s[1..].starts_with(*suffix)) {
            return 1 + suffix.len();
        }
    }
    // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: a space joins the run that follows it.
    let (skip, head) = match (c, chars.next()) {
        (' ', Some(next)) if class(next) != Class::Space => (1, next),
        _ => (0, c),
    };
    let k = class(head);
    if k != Class::Space {
        return skip + run(&s[skip..], k);
    }
    // `\s+(?!\S)`: all the whitespace at the end of the text; before a non-space character, all
    // but the last whitespace character (which then joins the word). `\s+` for a lone one.
    let n = run(s, Class::Space);
    if n == s.len() {
        return n;
    }
    let last = s[..n].chars().next_back().map_or(0, char::len_utf8);
    if n > last {
        n - last
    } else {
        n
    }
}

/// Calls `f` with each piece of `text`, in order; the pieces concatenate back to `text`.
pub fn split<'a>(mut text: &'a str, mut f: impl FnMut(&'a str)) {
    while !text.is_empty() {
        let n = first_piece(text);
        f(&text[..n]);
        text = &text[n..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(s: &str) -> Vec<&str> {
        let mut out = Vec::new();
        split(s, |p| out.push(p));
        out
    }

    #[test]
    fn splits_like_the_gpt2_pattern() {
        assert_eq!(pieces("Hello world's 42x"), ["Hello", " world", "'s", " 42", "x"]);
        assert_eq!(pieces("a   b"), ["a", "  ", " b"]);
        assert_eq!(pieces("a \n\nb  "), ["a", " \n", "\n", "b", "  "]);
        assert_eq!(pieces("\t\tb"), ["\t", "\t", "b"]);
        assert_eq!(pieces("x?!'ve ''"), ["x", "?!'", "ve", " ''"]);
        // Devanagari vowel signs are marks, not letters, so they split from the consonants.
        assert_eq!(pieces("हिन"), ["ह", "ि", "न"]);
        assert_eq!(pieces("x\u{a0}\u{a0}y"), ["x", "\u{a0}", "\u{a0}", "y"]);
        assert_eq!(pieces(""), Vec::<&str>::new());
    }
}
