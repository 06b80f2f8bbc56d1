//! GBNF (llama.cpp's grammar format) → the Lark dialect llguidance takes.
//!
//! Supported: rules `name ::= …` (names of letters, digits, `-` and `_`; the start rule is `root`),
//! alternatives `|`, grouping `( … )`, string literals `"…"`, character classes `[a-z]`, `[^…]`,
//! any character `.`, the repetitions `*`, `+`, `?`, `{m}`, `{m,}`, `{m,n}`, `{,n}`, comments `#`,
//! the escapes `\n \r \t \\ \" \[ \] \- \xHH \uHHHH \UHHHHHHHH`, and rules spanning lines inside
//! parentheses or after `::=` and `|`, as llama.cpp reads them. Not supported (refused with the
//! position): llama.cpp's token references `<[id]>` / `!<…>`, and a repetition of zero (`{0}`).
//!
//! Each rule becomes a Lark rule, each literal a Lark string and each class a one-character
//! regular expression, so the grammar keeps GBNF's character-level meaning.

use crate::error::{Error, Result};

/// One element of a sequence.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Literal(String),
    /// Inclusive ranges of characters; `negated`: any character outside them.
    Class { negated: bool, ranges: Vec<(char, char)> },
    Any,
    /// A rule, by its index.
    Rule(usize),
    Group(Vec<Vec<Node>>),
    /// At least `min`, at most `max` (None: no limit).
    Repeat(Box<Node>, u32, Option<u32>),
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
    names: Vec<String>,
    /// Where each rule was first referenced (for "undefined rule" errors) and whether it is defined.
    first_use: Vec<usize>,
    bodies: Vec<Option<Vec<Vec<Node>>>>,
}

/// Converts GBNF text to a Lark grammar whose start rule is GBNF's `root`. Errors are
/// `invalid_options` with the line and column.
pub fn to_lark(src: &str) -> Result<String> {
    let mut p = Parser { src, pos: 0, names: Vec::new(), first_use: Vec::new(), bodies: Vec::new() };
    p.parse_rules()?;
    for (i, body) in p.bodies.iter().enumerate() {
        if body.is_none() {
            return Err(p.error_at(p.first_use[i], &format!("rule '{}' is used but never defined", p.names[i])));
        }
    }
    let root = p.names.iter().position(|n| n == "root").ok_or_else(|| p.error_at(0, "the grammar has no 'root' rule"))?;
    let mut out = format!("start: {}\n", lark_name(root, &p.names[root]));
    for (i, body) in p.bodies.iter().enumerate() {
        out.push_str(&format!("{}: {}\n", lark_name(i, &p.names[i]), alternatives(body.as_ref().unwrap(), &p.names)));
    }
    Ok(out)
}

/// Lark rule names are lower case: GBNF's names are made so and numbered to stay distinct.
fn lark_name(i: usize, name: &str) -> String {
    let clean: String = name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    format!("r{i}_{clean}")
}

fn alternatives(alts: &[Vec<Node>], names: &[String]) -> String {
    let seqs: Vec<String> = alts
        .iter()
        .map(|seq| if seq.is_empty() { "\"\"".to_string() } else { seq.iter().map(|n| node(n, names)).collect::<Vec<_>>().join(" ") })
        .collect();
    seqs.join(" | ")
}

fn node(n: &Node, names: &[String]) -> String {
    match n {
        Node::Literal(s) => lark_string(s),
        Node::Class { negated, ranges } => {
            let mut rx = String::from(if *negated { "/[^" } else { "/[" });
            for &(a, b) in ranges {
                rx.push_str(&format!("\\x{{{:x}}}", a as u32));
                if a != b {
                    rx.push_str(&format!("-\\x{{{:x}}}", b as u32));
                }
            }
            rx.push_str("]/");
            rx
        }
        Node::Any => "/(?s:.)/".to_string(),
        Node::Rule(i) => lark_name(*i, &names[*i]),
        Node::Group(alts) => format!("({})", alternatives(alts, names)),
        Node::Repeat(inner, min, max) => {
            let inner = node(inner, names);
            match (min, max) {
                (0, None) => format!("{inner}*"),
                (1, None) => format!("{inner}+"),
                (0, Some(1)) => format!("{inner}?"),
                (m, None) => format!("{inner}{{{m},}}"),
                (m, Some(n)) if m == n => format!("{inner}{{{m}}}"),
                (m, Some(n)) => format!("{inner}{{{m},{n}}}"),
            }
        }
    }
}

/// A Lark (JSON-syntax) string literal; everything but printable ASCII is escaped.
fn lark_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
        }
    }
    out.push('"');
    out
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn error_at(&self, pos: usize, reason: &str) -> Error {
        let before = &self.src[..pos.min(self.src.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Error::invalid_options(format!("gbnf: line {line}, column {column}: {reason}"))
    }

    fn error(&self, reason: &str) -> Error {
        self.error_at(self.pos, reason)
    }

    /// Skips spaces, tabs and comments, and newlines too if `newlines`.
    fn space(&mut self, newlines: bool) {
        while let Some(c) = self.peek() {
            match c {
                ' ' | '\t' => self.pos += 1,
                '\r' | '\n' if newlines => self.pos += 1,
                '#' => {
                    while self.peek().is_some_and(|c| c != '\n') {
                        self.bump();
                    }
                }
                _ => break,
            }
        }
    }

    fn name(&mut self) -> Option<&'a str> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            self.pos += 1;
        }
        (self.pos > start).then(|| &self.src[start..self.pos])
    }

    fn rule_index(&mut self, name: &str, at: usize) -> usize {
        match self.names.iter().position(|n| n == name) {
            Some(i) => i,
            None => {
                self.names.push(name.to_string());
                self.first_use.push(at);
                self.bodies.push(None);
                self.names.len() - 1
            }
        }
    }

    fn parse_rules(&mut self) -> Result<()> {
        self.space(true);
        if self.peek().is_none() {
            return Err(self.error("the grammar is empty"));
        }
        while self.peek().is_some() {
            let at = self.pos;
            let name = self.name().ok_or_else(|| self.error("expected a rule name"))?;
            self.space(false);
            if !self.rest().starts_with("::=") {
                return Err(self.error("expected '::=' after the rule name"));
            }
            self.pos += 3;
            self.space(true);
            let i = self.rule_index(name, at);
            if self.bodies[i].is_some() {
                return Err(self.error_at(at, &format!("rule '{name}' is defined twice")));
            }
            let body = self.alternatives(false)?;
            self.bodies[i] = Some(body);
            match self.peek() {
                None | Some('\n') | Some('\r') => self.space(true),
                Some(_) => return Err(self.error("expected the end of the line after the rule")),
            }
        }
        Ok(())
    }

    fn alternatives(&mut self, nested: bool) -> Result<Vec<Vec<Node>>> {
        let mut alts = vec![self.sequence(nested)?];
        while self.peek() == Some('|') {
            self.pos += 1;
            self.space(true);
            alts.push(self.sequence(nested)?);
        }
        Ok(alts)
    }

    fn sequence(&mut self, nested: bool) -> Result<Vec<Node>> {
        let mut seq = Vec::new();
        loop {
            let at = self.pos;
            let node = match self.peek() {
                Some('"') => {
                    self.pos += 1;
                    let mut s = String::new();
                    loop {
                        match self.peek() {
                            None | Some('\n') => return Err(self.error_at(at, "the string is not closed")),
                            Some('"') => {
                                self.pos += 1;
                                break;
                            }
                            Some(_) => s.push(self.char_in_literal()?),
                        }
                    }
                    Node::Literal(s)
                }
                Some('[') => self.class()?,
                Some('.') => {
                    self.pos += 1;
                    Node::Any
                }
                Some('(') => {
                    self.pos += 1;
                    self.space(true);
                    let alts = self.alternatives(true)?;
                    if self.peek() != Some(')') {
                        return Err(self.error_at(at, "'(' is not closed"));
                    }
                    self.pos += 1;
                    Node::Group(alts)
                }
                Some('<') | Some('!') => return Err(self.error("token references (<[id]>, !<…>) are not supported")),
                Some(c) if c.is_ascii_alphanumeric() || c == '-' || c == '_' => {
                    let name = self.name().unwrap_or_default();
                    // The next rule's definition: this rule has ended.
                    let save = self.pos;
                    self.space(false);
                    if self.rest().starts_with("::=") {
                        return Err(self.error_at(at, "expected the end of the line before the next rule"));
                    }
                    self.pos = save;
                    Node::Rule(self.rule_index(name, at))
                }
                _ => break,
            };
            self.space(nested);
            let node = self.postfix(node, nested)?;
            seq.push(node);
        }
        Ok(seq)
    }

    fn postfix(&mut self, mut node: Node, nested: bool) -> Result<Node> {
        loop {
            let at = self.pos;
            let (min, max) = match self.peek() {
                Some('*') => (0, None),
                Some('+') => (1, None),
                Some('?') => (0, Some(1)),
                Some('{') => {
                    self.pos += 1;
                    self.space(false);
                    let min = self.number()?;
                    self.space(false);
                    let max = if self.peek() == Some(',') {
                        self.pos += 1;
                        self.space(false);
                        self.number()?
                    } else {
                        Some(min.unwrap_or(0))
                    };
                    self.space(false);
                    if self.peek() != Some('}') {
                        return Err(self.error_at(at, "expected '}' to close the repetition"));
                    }
                    let min = min.unwrap_or(0);
                    if max.is_some_and(|m| m < min) {
                        return Err(self.error_at(at, "the repetition's maximum is below its minimum"));
                    }
                    if max == Some(0) {
                        return Err(self.error_at(at, "a repetition of zero times is not supported"));
                    }
                    (min, max)
                }
                _ => return Ok(node),
            };
            self.pos += 1;
            self.space(nested);
            node = Node::Repeat(Box::new(node), min, max);
        }
    }

    fn number(&mut self) -> Result<Option<u32>> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        if start == self.pos {
            return Ok(None);
        }
        self.src[start..self.pos].parse().map(Some).map_err(|_| self.error_at(start, "the repetition count is too large"))
    }

    fn class(&mut self) -> Result<Node> {
        let at = self.pos;
        self.pos += 1;
        let negated = self.peek() == Some('^');
        if negated {
            self.pos += 1;
        }
        let mut ranges = Vec::new();
        loop {
            match self.peek() {
                None | Some('\n') => return Err(self.error_at(at, "the character class is not closed")),
                Some(']') => {
                    self.pos += 1;
                    break;
                }
                Some(_) => {
                    let a = self.char_in_literal()?;
                    let b = if self.peek() == Some('-') && !matches!(self.rest()[1..].chars().next(), None | Some(']') | Some('\n')) {
                        self.pos += 1;
                        self.char_in_literal()?
                    } else {
                        a
                    };
                    if b < a {
                        return Err(self.error(&format!("the range {a:?}-{b:?} is empty")));
                    }
                    ranges.push((a, b));
                }
            }
        }
        if ranges.is_empty() {
            return Err(self.error_at(at, "the character class is empty"));
        }
        Ok(Node::Class { negated, ranges })
    }

    /// One character of a literal or class, with its escape.
    fn char_in_literal(&mut self) -> Result<char> {
        let at = self.pos;
        let c = self.bump().ok_or_else(|| self.error("unexpected end of the grammar"))?;
        if c != '\\' {
            return Ok(c);
        }
        let e = self.bump().ok_or_else(|| self.error("unexpected end after '\\'"))?;
        let hex = |p: &mut Self, n: usize| -> Result<char> {
            let digits = p.rest().get(..n).filter(|d| d.chars().all(|c| c.is_ascii_hexdigit()));
            let value = digits.and_then(|d| u32::from_str_radix(d, 16).ok()).and_then(char::from_u32);
            let c = value.ok_or_else(|| p.error_at(at, &format!("'\\{e}' needs {n} hex digits of a valid character")))?;
            p.pos += n;
            Ok(c)
        };
        match e {
            'n' => Ok('\n'),
            'r' => Ok('\r'),
            't' => Ok('\t'),
            '\\' | '"' | '[' | ']' | '-' | '/' | '^' => Ok(e),
            'x' => hex(self, 2),
            'u' => hex(self, 4),
            'U' => hex(self, 8),
            _ => Err(self.error_at(at, &format!("unknown escape '\\{e}'"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_become_lark_rules() {
        let lark = to_lark("root ::= item (\",\" item)* # a list\nitem ::= [a-z]+ | \"n/a\"\n").unwrap();
        assert_eq!(lark, "start: r0_root\nr0_root: r1_item (\",\" r1_item)*\nr1_item: /[\\x{61}-\\x{7a}]/+ | \"n/a\"\n");
    }

    #[test]
    fn rules_span_lines_inside_parentheses_and_after_operators() {
        let src = "root ::=\n  \"{\" (\n    ws\n    | \"x\"*\n  ) \"}\" |\n  \"-\"\nws ::= [ \\t\\n]{0,3}\n";
        let lark = to_lark(src).unwrap();
        assert!(lark.contains("r0_root: \"{\" (r1_ws | \"x\"*) \"}\" | \"-\""), "{lark}");
        assert!(lark.contains("r1_ws: /[\\x{20}\\x{9}\\x{a}]/{0,3}"), "{lark}");
    }

    #[test]
    fn escapes_negation_any_and_repetitions() {
        let lark = to_lark("root ::= \"\\x41\\u00e9\\\"\" [^\"\\\\] . \"a\"{2} \"b\"{1,} \"c\"{,4} \"d\"? \"\"").unwrap();
        assert_eq!(lark, "start: r0_root\nr0_root: \"A\\u00e9\\\"\" /[^\\x{22}\\x{5c}]/ /(?s:.)/ \"a\"{2} \"b\"+ \"c\"{0,4} \"d\"? \"\"\n");
    }

    #[test]
    fn errors_say_where_and_why() {
        let err = |src: &str| to_lark(src).unwrap_err().message;
        assert_eq!(err("root ::= foo\n"), "gbnf: line 1, column 10: rule 'foo' is used but never defined");
        assert_eq!(err("item ::= \"a\"\n"), "gbnf: line 1, column 1: the grammar has no 'root' rule");
        assert_eq!(err("root ::= \"a\n"), "gbnf: line 1, column 10: the string is not closed");
        assert_eq!(err("root ::= \"a\"\n\nx = \"b\""), "gbnf: line 3, column 3: expected '::=' after the rule name");
        assert_eq!(err("root ::= [a-\n"), "gbnf: line 1, column 10: the character class is not closed");
        assert_eq!(err("root ::= (\"a\"\n"), "gbnf: line 1, column 10: '(' is not closed");
        assert_eq!(err("root ::= \"\\q\""), "gbnf: line 1, column 11: unknown escape '\\q'");
        assert_eq!(err("root ::= \"a\"{3,1}"), "gbnf: line 1, column 13: the repetition's maximum is below its minimum");
        assert_eq!(err("root ::= <[12]>"), "gbnf: line 1, column 10: token references (<[id]>, !<…>) are not supported");
        assert_eq!(err("root ::= \"a\"\nroot ::= \"b\""), "gbnf: line 2, column 1: rule 'root' is defined twice");
        assert_eq!(err(" # only a comment\n"), "gbnf: line 2, column 1: the grammar is empty");
    }
}
