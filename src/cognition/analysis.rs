//! The grammar membrane's linguistic analysis of a user's input: counts, sentence types,
//! readability, script, language, source code and markup. It feeds
//! `membranes.grammar.analysis` in the cognitive loop's JSON response (see [`Analysis::to_json`]).
//!
//! Every number is computed from the text by the rule documented on its field; nothing is a
//! placeholder. [`analyze`] never panics and looks at no more than [`MAX_INPUT_BYTES`] of input.

use serde_json::{json, Value};
use unicode_script::{Script, UnicodeScript};
use unicode_segmentation::UnicodeSegmentation;

/// Only this many bytes of the input are analysed (cut back to a char boundary), so that a pasted
/// book costs no more than a long message; [`Analysis::truncated`] says when it happened.
pub const MAX_INPUT_BYTES: usize = 64 * 1024;
/// [`Analysis::sentence_list`] keeps the first this many sentences; the UI panel shows no more.
pub const MAX_SENTENCE_LIST: usize = 32;
/// A sentence's text in [`Analysis::sentence_list`] is cut to this many chars (then `…` is added).
pub const MAX_SENTENCE_CHARS: usize = 280;
/// Source code is reported when at least this share of non-empty lines carries a code signal.
pub const CODE_THRESHOLD: f64 = 0.3;
/// Fewer prose words than this give no language guess: trigram statistics are noise below it.
pub const MIN_LANGUAGE_WORDS: usize = 3;

/// What a sentence does. See [`sentence_type_of`] for the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SentenceType {
    Question,
    Command,
    Statement,
    Exclamation,
}

impl SentenceType {
    pub fn as_str(self) -> &'static str {
        match self {
            SentenceType::Question => "question",
            SentenceType::Command => "command",
            SentenceType::Statement => "statement",
            SentenceType::Exclamation => "exclamation",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sentence {
    /// The sentence, trimmed, cut to [`MAX_SENTENCE_CHARS`] chars.
    pub text: String,
    pub kind: SentenceType,
}

/// Flesch scores over the analysed text. They rest on an English syllable heuristic and English
/// calibration, so they mean something only for English; they are computed for any text anyway.
#[derive(Debug, Clone, PartialEq)]
pub struct Readability {
    /// `206.835 − 1.015·(words/sentences) − 84.6·(syllables/words)`; higher is easier.
    pub flesch_reading_ease: f64,
    /// `0.39·(words/sentences) + 11.8·(syllables/words) − 15.59`, a US school grade.
    pub flesch_kincaid_grade: f64,
    /// Sum of [`syllables`] over the words.
    pub syllables: usize,
}

/// The Unicode script (UAX #24) that most letters belong to.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptShare {
    /// The script's Unicode name: "Latin", "Cyrillic", "Han", "Hiragana", "Arabic", …
    pub name: &'static str,
    /// Letters in this script / letters with a specific script (Common and Inherited excluded).
    pub share: f64,
    /// Letters with a specific script, the share's denominator.
    pub letters: usize,
}

/// The language guess of the `whatlang` crate (character trigrams, per script).
#[derive(Debug, Clone, PartialEq)]
pub struct LanguageGuess {
    /// ISO 639-3 code, e.g. "eng".
    pub code: &'static str,
    /// English name, e.g. "English".
    pub name: &'static str,
    /// whatlang's confidence in [0, 1]: how far the best trigram distance is ahead of the second.
    pub confidence: f64,
    /// whatlang's own verdict that the gap is large enough to trust.
    pub reliable: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CodeDetection {
    /// `score >= CODE_THRESHOLD`.
    pub detected: bool,
    /// From a fence's info string (```` ```rust ````), else the language with most keyword
    /// markers (see `CODE_MARKERS`); `None` when not detected or no marker matched.
    pub language: Option<String>,
    /// Non-empty lines carrying a code signal / non-empty lines; 0 for text without lines.
    /// Signals: a fence line or a line inside a fence; a line ending in `;` `{` `}` `(` `[`;
    /// a line starting with a (case-sensitive) keyword such as `fn` `def` `function` `class`
    /// `import` and holding code punctuation; `#include`/`#define`/`#!`; an operator such as `=>`
    /// `->` `::` `:=` `==`; or at least 3 of `(){}[];=` making up ≥ 20% of the line's visible chars.
    pub score: f64,
    /// The distinct signals seen, at most 8, for the UI.
    pub evidence: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Markup {
    /// An opening tag `<name>`, `<name/>`, `<name attr=…>` or a closing tag `</name>`; a `<` right
    /// after a letter or digit (`Vec<u8>`) or followed by a space (`a < b`) is no tag.
    pub html: bool,
    /// A heading `# `…`###### `, a list item `- ` `* ` `+ ` `1. ` `1) `, a quote `> `, a fence,
    /// a link `[x](y)`, or `**x**`, `__x__`, `*x*`, `` `x` `` delimited by spaces or line ends.
    pub markdown: bool,
}

/// The analysis of one input. Counts are over the analysed text (the first [`MAX_INPUT_BYTES`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    /// The input was longer than [`MAX_INPUT_BYTES`] and only its prefix was analysed.
    pub truncated: bool,
    /// Unicode scalar values.
    pub characters: usize,
    /// UAX #29 word segments holding an alphanumeric char (one per CJK ideograph).
    pub words: usize,
    /// UAX #29 sentence segments holding an alphanumeric char.
    pub sentences: usize,
    /// The first [`MAX_SENTENCE_LIST`] sentences with their types.
    pub sentence_list: Vec<Sentence>,
    /// The input's type as a whole: that of its last sentence, since a message's closing sentence
    /// is the one that asks or tells ("I read your note. Can you help?"). `None` without sentences.
    pub sentence_type: Option<SentenceType>,
    /// `None` when there are no words.
    pub readability: Option<Readability>,
    /// `None` when there are no letters with a specific script.
    pub script: Option<ScriptShare>,
    /// Guessed from the prose lines alone (those with no code signal, outside fences), since
    /// whatlang takes code for some language; `None` when they hold under [`MIN_LANGUAGE_WORDS`]
    /// words or whatlang has no answer.
    pub language: Option<LanguageGuess>,
    pub code: CodeDetection,
    pub markup: Markup,
    /// Confidence in the analysis as a whole: the language guess's confidence, 0 without a guess,
    /// since the language underlies the word-list rules (sentence types, readability).
    pub confidence: f64,
}

impl Analysis {
    /// The camelCase JSON for `membranes.grammar.analysis`; absent parts are `null`.
    pub fn to_json(&self) -> Value {
        json!({
            "truncated": self.truncated,
            "characters": self.characters,
            "words": self.words,
            "sentences": self.sentences,
            "sentenceType": self.sentence_type.map(SentenceType::as_str),
            "sentenceList": self.sentence_list.iter()
                .map(|s| json!({ "text": s.text, "type": s.kind.as_str() }))
                .collect::<Vec<_>>(),
            "readability": self.readability.as_ref().map(|r| json!({
                "fleschReadingEase": r.flesch_reading_ease,
                "fleschKincaidGrade": r.flesch_kincaid_grade,
                "syllables": r.syllables,
            })),
            "script": self.script.as_ref().map(|s| json!({
                "name": s.name, "share": s.share, "letters": s.letters,
            })),
            "language": self.language.as_ref().map(|l| json!({
                "code": l.code, "name": l.name, "confidence": l.confidence, "reliable": l.reliable,
            })),
            "code": {
                "detected": self.code.detected,
                "language": self.code.language,
                "score": self.code.score,
                "evidence": self.code.evidence,
            },
            "markup": { "html": self.markup.html, "markdown": self.markup.markdown },
            "confidence": self.confidence,
        })
    }
}

/// Analyses `text`; see [`Analysis`] for what each field means.
pub fn analyze(text: &str) -> Analysis {
    let truncated = text.len() > MAX_INPUT_BYTES;
    let text = if truncated {
        &text[..floor_char_boundary(text, MAX_INPUT_BYTES)]
    } else {
        text
    };

    let words: Vec<&str> = text.unicode_words().collect();
    let mut sentences = 0;
    let mut sentence_list = Vec::new();
    let mut sentence_type = None;
    for s in text.unicode_sentences() {
        let kind = sentence_type_of(s);
        sentences += 1;
        sentence_type = Some(kind);
        if sentence_list.len() < MAX_SENTENCE_LIST {
            sentence_list.push(Sentence {
                text: cap_chars(s.trim(), MAX_SENTENCE_CHARS),
                kind,
            });
        }
    }

    let (code, prose) = detect_code(text);
    let language = if prose.unicode_words().count() < MIN_LANGUAGE_WORDS {
        None
    } else {
        whatlang::detect(&prose).map(|info| LanguageGuess {
            code: info.lang().code(),
            name: info.lang().eng_name(),
            confidence: info.confidence(),
            reliable: info.is_reliable(),
        })
    };
    let confidence = language.as_ref().map_or(0.0, |l| l.confidence);

    Analysis {
        truncated,
        characters: text.chars().count(),
        words: words.len(),
        sentences,
        sentence_list,
        sentence_type,
        readability: readability(&words, sentences),
        script: dominant_script(text),
        language,
        code,
        markup: Markup {
            html: has_html(text),
            markdown: has_markdown(text),
        },
        confidence,
    }
}

/// The largest char boundary ≤ `max` (`str::floor_char_boundary` is newer than our rust-version).
fn floor_char_boundary(text: &str, max: usize) -> usize {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    end
}

fn cap_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_string(),
    }
}

/// Interrogative pronouns and auxiliaries that open an English question even when the writer
/// leaves out the `?`.
const INTERROGATIVES: &[&str] = &[
    "who", "what", "when", "where", "why", "how", "which", "whose", "whom", "is", "are", "was",
    "were", "do", "does", "did", "can", "could", "will", "would", "should", "shall", "may",
    "might", "must", "have", "has", "had",
];

/// Bare verbs (and "please") that commonly open an English imperative addressed to an assistant.
const IMPERATIVES: &[&str] = &[
    "tell",
    "give",
    "show",
    "list",
    "write",
    "explain",
    "describe",
    "find",
    "make",
    "let",
    "let's",
    "please",
    "kindly",
    "remember",
    "summarize",
    "summarise",
    "translate",
    "help",
    "create",
    "generate",
    "calculate",
    "compute",
    "draw",
    "define",
    "compare",
    "check",
    "fix",
    "add",
    "remove",
    "delete",
    "open",
    "close",
    "stop",
    "start",
    "go",
    "look",
    "read",
    "print",
    "run",
    "use",
    "try",
    "keep",
    "take",
    "put",
    "send",
    "call",
    "count",
    "sort",
    "convert",
    "rewrite",
    "answer",
    "consider",
    "imagine",
    "suppose",
    "note",
    "forget",
    "ignore",
    "continue",
    "repeat",
    "say",
    "choose",
    "pick",
    "build",
    "update",
    "change",
    "set",
    "get",
    "bring",
    "wait",
    "don't",
    "never",
];

const QUESTION_MARKS: &[char] = &['?', '？', '؟', '\u{37E}', '⁇', '⁈', '⁉'];
const EXCLAMATION_MARKS: &[char] = &['!', '！', '‼'];
const FULL_STOPS: &[char] = &['.', '。', '．', '…', '।'];
/// Closing quotes and brackets may follow the final mark: `"Really?"`, `(see above.)`.
const CLOSERS: &[char] = &[
    '"', '\'', ')', ']', '}', '”', '’', '»', '›', '」', '』', '）',
];

/// A sentence's type, in this order:
/// 1. Question: a `?` (or `？`, `؟`, Greek `;`) in its final run of punctuation, or it opens with `¿`.
/// 2. With a final `!` (or it opens with `¡`): Command when the first word is in `IMPERATIVES`,
///    else Exclamation ("Tell me now!" vs "What a day!").
/// 3. Question when the first word is in `INTERROGATIVES` and no full stop ends the sentence
///    (a writer who ends "What I mean is this." with a stop made a statement).
/// 4. Command when the first word is in `IMPERATIVES`.
/// 5. Statement.
///
/// The word lists are English; other languages get types from punctuation alone.
pub fn sentence_type_of(sentence: &str) -> SentenceType {
    let body = sentence.trim_end_matches(|c: char| c.is_whitespace() || CLOSERS.contains(&c));
    let opening = sentence.trim_start_matches(|c: char| {
        c.is_whitespace() || matches!(c, '"' | '\'' | '“' | '‘' | '«' | '(')
    });
    let tail = || {
        body.chars().rev().take_while(|c| {
            QUESTION_MARKS.contains(c) || EXCLAMATION_MARKS.contains(c) || FULL_STOPS.contains(c)
        })
    };
    let first = opening
        .unicode_words()
        .next()
        .map(|w| w.to_lowercase().replace('’', "'"));
    let in_list = |list: &[&str]| first.as_deref().is_some_and(|w| list.contains(&w));

    if opening.starts_with('¿') || tail().any(|c| QUESTION_MARKS.contains(&c)) {
        return SentenceType::Question;
    }
    let imperative = in_list(IMPERATIVES);
    if opening.starts_with('¡') || tail().any(|c| EXCLAMATION_MARKS.contains(&c)) {
        return if imperative {
            SentenceType::Command
        } else {
            SentenceType::Exclamation
        };
    }
    if in_list(INTERROGATIVES) && !tail().any(|c| FULL_STOPS.contains(&c)) {
        return SentenceType::Question;
    }
    if imperative {
        SentenceType::Command
    } else {
        SentenceType::Statement
    }
}

/// English syllables in a word, by heuristic: the number of vowel groups (runs of a e i o u y,
/// accented forms included), less one for a silent final `e` (a lone `e` after a consonant, as in
/// "make", but not "-le" after a consonant, as in "table"), and at least 1.
pub fn syllables(word: &str) -> usize {
    let chars: Vec<char> = word
        .chars()
        .flat_map(char::to_lowercase)
        .filter(|c| c.is_alphabetic())
        .collect();
    let is_vowel = |c: char| "aeiouyàáâäãåèéêëìíîïòóôöõùúûüýÿæœ".contains(c);
    let mut groups = 0;
    let mut previous_vowel = false;
    for &c in &chars {
        let vowel = is_vowel(c);
        if vowel && !previous_vowel {
            groups += 1;
        }
        previous_vowel = vowel;
    }
    let n = chars.len();
    let silent_e = n >= 2
        && chars[n - 1] == 'e'
        && !is_vowel(chars[n - 2])
        && !(n >= 3 && chars[n - 2] == 'l' && !is_vowel(chars[n - 3]));
    if silent_e && groups > 1 {
        groups -= 1;
    }
    groups.max(1)
}

fn readability(words: &[&str], sentences: usize) -> Option<Readability> {
    if words.is_empty() || sentences == 0 {
        return None;
    }
    let syllable_count: usize = words.iter().map(|w| syllables(w)).sum();
    let words_per_sentence = words.len() as f64 / sentences as f64;
    let syllables_per_word = syllable_count as f64 / words.len() as f64;
    Some(Readability {
        flesch_reading_ease: 206.835 - 1.015 * words_per_sentence - 84.6 * syllables_per_word,
        flesch_kincaid_grade: 0.39 * words_per_sentence + 11.8 * syllables_per_word - 15.59,
        syllables: syllable_count,
    })
}

/// Ties go to the script seen first.
fn dominant_script(text: &str) -> Option<ScriptShare> {
    let mut counts: Vec<(Script, usize)> = Vec::new();
    for c in text.chars().filter(|c| c.is_alphabetic()) {
        let script = c.script();
        if matches!(script, Script::Common | Script::Inherited | Script::Unknown) {
            continue;
        }
        match counts.iter_mut().find(|(s, _)| *s == script) {
            Some((_, n)) => *n += 1,
            None => counts.push((script, 1)),
        }
    }
    let letters: usize = counts.iter().map(|(_, n)| n).sum();
    let (script, n) = counts
        .into_iter()
        .fold(None, |best: Option<(Script, usize)>, (s, n)| match best {
            Some((_, m)) if m >= n => best,
            _ => Some((s, n)),
        })?;
    Some(ScriptShare {
        name: script.full_name(),
        share: n as f64 / letters as f64,
        letters,
    })
}

/// Line-opening keywords of common languages; they count only with code punctuation on the line,
/// so that prose opening with "for" or "if" does not.
const CODE_KEYWORDS: &[&str] = &[
    "fn",
    "pub",
    "let",
    "const",
    "var",
    "def",
    "function",
    "class",
    "struct",
    "impl",
    "enum",
    "trait",
    "mod",
    "use",
    "import",
    "from",
    "return",
    "package",
    "func",
    "interface",
    "async",
    "public",
    "private",
    "protected",
    "static",
    "void",
    "int",
    "elif",
    "else",
    "if",
    "for",
    "while",
    "match",
    "switch",
    "case",
    "try",
    "except",
    "catch",
    "lambda",
    "export",
    "SELECT",
    "INSERT",
    "UPDATE",
    "CREATE",
];
const CODE_OPERATORS: &[&str] = &["=>", "->", "::", ":=", "==", "!=", "&&", "||", "+=", "-="];

/// Substrings that point at one language; the guess is the language with most distinct markers.
const CODE_MARKERS: &[(&str, &[&str])] = &[
    (
        "rust",
        &[
            "fn ",
            "let mut ",
            "impl ",
            "pub fn",
            "println!",
            "::new(",
            "&mut ",
            "use std::",
            "-> Self",
            "#[derive",
        ],
    ),
    (
        "python",
        &[
            "def ", "elif ", "self.", "print(", "None", "__init__", "lambda ", "import ",
        ],
    ),
    (
        "javascript",
        &[
            "function ",
            "const ",
            "=> ",
            "console.log",
            "let ",
            "var ",
            "===",
            "document.",
        ],
    ),
    ("c", &["#include", "int main", "printf(", "malloc(", "NULL"]),
    (
        "cpp",
        &[
            "std::",
            "#include <iostream>",
            "cout <<",
            "template<",
            "nullptr",
        ],
    ),
    (
        "java",
        &[
            "public class",
            "System.out",
            "public static void",
            "@Override",
            "new ArrayList",
        ],
    ),
    ("go", &["func ", "package ", ":= ", "fmt.", "go func"]),
    (
        "sql",
        &["SELECT ", " FROM ", "WHERE ", "INSERT INTO", "CREATE TABLE"],
    ),
    ("shell", &["#!/bin/", "echo ", "$(", "sudo ", "export "]),
];

/// The first code signal on a trimmed, non-empty line (see [`CodeDetection::score`]).
fn line_signal(line: &str) -> Option<String> {
    for directive in ["#include", "#define", "#!"] {
        if line.starts_with(directive) {
            return Some(format!("directive '{directive}'"));
        }
    }
    let first = line
        .split(|c: char| c.is_whitespace() || c == '(')
        .next()
        .unwrap_or("");
    if CODE_KEYWORDS.contains(&first)
        && line.contains(['(', ')', '{', '}', '[', '=', ':', '<', ';', '"'])
    {
        return Some(format!("keyword '{first}'"));
    }
    if let Some(end) = line
        .chars()
        .last()
        .filter(|c| matches!(c, ';' | '{' | '}' | '(' | '['))
    {
        return Some(format!("line ends with '{end}'"));
    }
    if let Some(op) = CODE_OPERATORS.iter().find(|op| line.contains(*op)) {
        return Some(format!("operator '{op}'"));
    }
    let visible = line.chars().filter(|c| !c.is_whitespace()).count();
    let symbols = line.chars().filter(|c| "(){}[];=".contains(*c)).count();
    if symbols >= 3 && symbols * 5 >= visible {
        return Some("symbol density".to_string());
    }
    None
}

/// A fence's info string as a language name: its first word, lowercased, common short names
/// expanded; `None` when empty or not name-like.
fn fence_language(info: &str) -> Option<String> {
    let word = info.split_whitespace().next()?.to_lowercase();
    if word.len() > 32
        || !word
            .chars()
            .all(|c| c.is_alphanumeric() || "+#-_.".contains(c))
    {
        return None;
    }
    let expanded = match word.as_str() {
        "rs" => "rust",
        "py" | "python3" => "python",
        "js" | "node" => "javascript",
        "ts" => "typescript",
        "sh" | "bash" | "zsh" => "shell",
        "c++" | "cc" | "cxx" => "cpp",
        other => other,
    };
    Some(expanded.to_string())
}

/// The detection, and the lines without a code signal outside fences (the prose), `\n`-joined.
fn detect_code(text: &str) -> (CodeDetection, String) {
    let mut lines = 0usize;
    let mut signalled = 0usize;
    let mut evidence: Vec<String> = Vec::new();
    let mut in_fence = false;
    let mut fence_lang = None;
    let mut prose = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        lines += 1;
        let signal = if let Some(info) = line
            .strip_prefix("```")
            .or_else(|| line.strip_prefix("~~~"))
        {
            if !in_fence && fence_lang.is_none() {
                fence_lang = fence_language(info);
            }
            in_fence = !in_fence;
            Some("fenced block".to_string())
        } else {
            line_signal(line).or_else(|| in_fence.then(|| "line inside a fence".to_string()))
        };
        if let Some(signal) = signal {
            signalled += 1;
            if evidence.len() < 8 && !evidence.contains(&signal) {
                evidence.push(signal);
            }
        } else {
            prose.push_str(line);
            prose.push('\n');
        }
    }
    let score = if lines == 0 {
        0.0
    } else {
        signalled as f64 / lines as f64
    };
    let detected = score >= CODE_THRESHOLD;
    let language = if !detected {
        None
    } else {
        fence_lang.or_else(|| {
            CODE_MARKERS
                .iter()
                .map(|(lang, markers)| {
                    (*lang, markers.iter().filter(|m| text.contains(*m)).count())
                })
                .fold(None, |best: Option<(&str, usize)>, (lang, n)| match best {
                    Some((_, m)) if m >= n => best,
                    _ if n > 0 => Some((lang, n)),
                    _ => best,
                })
                .map(|(lang, _)| lang.to_string())
        })
    };
    let detection = CodeDetection {
        detected,
        language,
        score,
        evidence,
    };
    (detection, prose)
}

fn has_html(text: &str) -> bool {
    let bytes = text.as_bytes();
    text.match_indices('<').any(|(i, _)| {
        if i > 0 && bytes[i - 1].is_ascii_alphanumeric() {
            return false;
        }
        let rest = &bytes[i + 1..];
        let rest = rest.strip_prefix(b"/").unwrap_or(rest);
        if !rest.first().is_some_and(u8::is_ascii_alphabetic) {
            return false;
        }
        let name = rest
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'-')
            .count();
        let after = &rest[name..];
        match after.first() {
            Some(b'>') => true,
            Some(b'/') => after.starts_with(b"/>"),
            // Attributes: `<a href="…">` — an `=` before the `>`, all on one line.
            Some(b' ' | b'\t') => after
                .iter()
                .position(|b| matches!(b, b'>' | b'\n' | b'<'))
                .is_some_and(|end| after[end] == b'>' && after[..end].contains(&b'=')),
            _ => false,
        }
    })
}

fn has_markdown(text: &str) -> bool {
    text.lines().any(|line| {
        let t = line.trim_start();
        let hashes = t.bytes().take_while(|b| *b == b'#').count();
        let digits = t.bytes().take_while(u8::is_ascii_digit).count();
        (1..=6).contains(&hashes) && t[hashes..].starts_with(' ')
            || ["- ", "* ", "+ ", "> ", "```", "~~~"]
                .iter()
                .any(|p| t.starts_with(p))
            || (1..=9).contains(&digits)
                && (t[digits..].starts_with(". ") || t[digits..].starts_with(") "))
            || has_link(t)
            || ["**", "__", "*", "`"].iter().any(|d| has_wrapped(t, d))
    })
}

/// `[text](target)` with non-empty text and target.
fn has_link(line: &str) -> bool {
    line.match_indices("](").any(|(i, _)| {
        let before = &line[..i];
        let after = &line[i + 2..];
        before
            .rfind('[')
            .is_some_and(|open| open + 1 < before.len())
            && after.find(')').is_some_and(|close| close > 0)
    })
}

/// `delim` + non-space … non-space + `delim`, the opener at the line start or after a space and
/// the closer before a space, punctuation or the line end (so `x**2` and `snake_case` don't count).
fn has_wrapped(line: &str, delim: &str) -> bool {
    let mut from = 0;
    while let Some(offset) = line[from..].find(delim) {
        let open = from + offset;
        let inner_start = open + delim.len();
        from = inner_start;
        let opens = line[..open]
            .chars()
            .next_back()
            .map_or(true, char::is_whitespace)
            && line[inner_start..]
                .chars()
                .next()
                .is_some_and(|c| !c.is_whitespace() && !delim.contains(c));
        if !opens {
            continue;
        }
        let Some(close_offset) = line[inner_start..].find(delim) else {
            return false;
        };
        let close = inner_start + close_offset;
        let after_close = &line[close + delim.len()..];
        let closes = line[..close]
            .chars()
            .next_back()
            .is_some_and(|c| !c.is_whitespace())
            && after_close
                .chars()
                .next()
                .map_or(true, |c| c.is_whitespace() || c.is_ascii_punctuation());
        if closes {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(text: &str) -> Option<SentenceType> {
        analyze(text).sentence_type
    }

    #[test]
    fn sentence_types_with_and_without_punctuation() {
        use SentenceType::*;
        assert_eq!(
            kind("Can you tell me where the Eiffel Tower is?"),
            Some(Question)
        );
        assert_eq!(kind("where is the eiffel tower"), Some(Question));
        assert_eq!(kind("¿Dónde está la torre Eiffel"), Some(Question));
        assert_eq!(kind("东京在哪里？"), Some(Question));
        assert_eq!(kind("You said \"really?\""), Some(Question));
        assert_eq!(kind("Tell me a story."), Some(Command));
        assert_eq!(kind("please summarize this article"), Some(Command));
        assert_eq!(kind("Don’t forget the milk!"), Some(Command));
        assert_eq!(kind("What a beautiful day!"), Some(Exclamation));
        assert_eq!(kind("Wow!!"), Some(Exclamation));
        assert_eq!(kind("The tower is in Paris."), Some(Statement));
        assert_eq!(kind("the tower is in paris"), Some(Statement));
        assert_eq!(kind("What I mean is this."), Some(Statement));
        // The last sentence decides.
        assert_eq!(kind("I read your note. Can you help"), Some(Question));
        assert_eq!(kind("Is it late? Go to bed."), Some(Command));
        assert_eq!(kind(""), None);
        assert_eq!(kind("  \n\t "), None);
    }

    #[test]
    fn counts_on_a_known_paragraph() {
        let a = analyze("The sun rose early. Birds sang in the trees! Did you hear them?");
        assert_eq!((a.sentences, a.words, a.characters), (3, 13, 63));
        let kinds: Vec<_> = a
            .sentence_list
            .iter()
            .map(|s| (s.text.as_str(), s.kind))
            .collect();
        assert_eq!(
            kinds,
            [
                ("The sun rose early.", SentenceType::Statement),
                ("Birds sang in the trees!", SentenceType::Exclamation),
                ("Did you hear them?", SentenceType::Question),
            ]
        );
        assert!(!a.truncated);
        // One word per ideograph; "。" ends the sentence.
        let cjk = analyze("我爱北京。");
        assert_eq!((cjk.words, cjk.sentences, cjk.characters), (4, 1, 5));
    }

    #[test]
    fn syllable_heuristic() {
        let counted: Vec<usize> = [
            "the",
            "make",
            "table",
            "free",
            "lazy",
            "beautiful",
            "rhythm",
            "a",
            "42",
        ]
        .iter()
        .map(|w| syllables(w))
        .collect();
        // "beautiful": eau-i-u → 3; "rhythm": y → 1; "42": no vowel → minimum 1.
        assert_eq!(counted, [1, 1, 2, 1, 2, 3, 1, 1, 1]);
    }

    #[test]
    fn flesch_on_a_known_sentence() {
        // 9 words, 1 sentence, syllables the1 quick1 brown1 fox1 jumps1 o·ver2 the1 la·zy2 dog1 = 11.
        // Ease  = 206.835 − 1.015·9 − 84.6·11/9 = 206.835 − 9.135 − 103.4 = 94.3.
        // Grade = 0.39·9 + 11.8·11/9 − 15.59 = 3.51 + 14.4222… − 15.59 = 2.3422…
        let r = analyze("The quick brown fox jumps over the lazy dog.")
            .readability
            .unwrap();
        assert_eq!(r.syllables, 11);
        assert!(
            (r.flesch_reading_ease - 94.3).abs() < 1e-9,
            "{}",
            r.flesch_reading_ease
        );
        assert!((r.flesch_kincaid_grade - (3.51 + 11.8 * 11.0 / 9.0 - 15.59)).abs() < 1e-9);
        assert!((r.flesch_kincaid_grade - 2.3422).abs() < 1e-4);
        assert_eq!(analyze("").readability, None);
        assert_eq!(analyze("?!").readability, None);
    }

    #[test]
    fn script_detection() {
        let script = |t: &str| analyze(t).script.map(|s| (s.name, s.share));
        assert_eq!(script("Hello world"), Some(("Latin", 1.0)));
        assert_eq!(script("Привет, мир"), Some(("Cyrillic", 1.0)));
        assert_eq!(script("你好世界"), Some(("Han", 1.0)));
        assert_eq!(script("مرحبا بالعالم"), Some(("Arabic", 1.0)));
        // 5 Cyrillic letters of 7.
        assert_eq!(script("Мир ok да"), Some(("Cyrillic", 5.0 / 7.0)));
        assert_eq!(script("123 !?"), None);
    }

    #[test]
    fn language_guess() {
        let lang = |t: &str| analyze(t).language.map(|l| l.code);
        assert_eq!(
            lang("Can you tell me where the Eiffel Tower is and how I can get there?"),
            Some("eng")
        );
        assert_eq!(
            lang("Je voudrais savoir où se trouve la tour Eiffel, s'il vous plaît."),
            Some("fra")
        );
        assert_eq!(
            lang("Ich möchte wissen, wo sich der Eiffelturm befindet und wie ich dorthin komme."),
            Some("deu")
        );
        assert_eq!(
            lang("¿Dónde está la torre Eiffel? Quiero visitarla mañana con mis amigos."),
            Some("spa")
        );
        assert_eq!(lang("Hello there"), None, "under MIN_LANGUAGE_WORDS");
        let a = analyze("The weather is lovely today and we are going to the beach together.");
        let l = a.language.as_ref().unwrap();
        assert_eq!(l.name, "English");
        assert!(l.confidence > 0.0 && l.confidence <= 1.0);
        assert_eq!(a.confidence, l.confidence);
    }

    #[test]
    fn code_detection_positive() {
        let rust = "fn main() {\n    let mut v = Vec::new();\n    v.push(1);\n    println!(\"{:?}\", v);\n}\n";
        let python = "import math\n\ndef area(r):\n    return math.pi * r ** 2\n\nprint(area(2))\n";
        let js = "const add = (a, b) => a + b;\nconsole.log(add(1, 2));\n";
        let fenced = "Here is my code:\n```rs\nlet x = 1\n```\n";
        for (snippet, lang) in [
            (rust, "rust"),
            (python, "python"),
            (js, "javascript"),
            (fenced, "rust"),
        ] {
            let c = analyze(snippet).code;
            assert!(c.detected, "{snippet:?}: {c:?}");
            assert!(c.score >= CODE_THRESHOLD && c.score <= 1.0);
            assert_eq!(c.language.as_deref(), Some(lang), "{snippet:?}");
            assert!(!c.evidence.is_empty());
        }
        assert_eq!(analyze(rust).code.score, 1.0);
        // The language comes from the prose lines: none for code alone.
        assert_eq!(analyze(rust).language, None);
        let mixed =
            format!("Could you please explain what this little program does?\n```\n{rust}```");
        assert_eq!(analyze(&mixed).language.map(|l| l.code), Some("eng"));
    }

    #[test]
    fn code_detection_negative() {
        let prose =
            "If you go to Paris, visit the Eiffel Tower.\nFor dinner, try a small bistro.\n\
                     Let me know what you think (and what you ate)!";
        let c = analyze(prose).code;
        assert!(!c.detected, "{c:?}");
        assert_eq!(c.language, None);
        assert_eq!(c.score, 0.0);
        assert!(!analyze("").code.detected);
    }

    #[test]
    fn markup_detection() {
        let m = |t: &str| {
            let m = analyze(t).markup;
            (m.html, m.markdown)
        };
        assert_eq!(m("<p>Hello <b>world</b></p>"), (true, false));
        assert_eq!(m("<a href=\"https://example.org\">link</a>"), (true, false));
        assert_eq!(m("line<br/>break"), (false, false), "'<' after a letter");
        assert_eq!(m("<br/> break"), (true, false));
        assert_eq!(m("if a < b and c > d then Vec<u8>"), (false, false));
        assert_eq!(m("# Title\n\nSome text."), (false, true));
        assert_eq!(m("Shopping:\n- milk\n- eggs"), (false, true));
        assert_eq!(m("1. first\n2. second"), (false, true));
        assert_eq!(m("See [the docs](https://example.org)."), (false, true));
        assert_eq!(m("This is **very** important."), (false, true));
        assert_eq!(m("Run `cargo test` now."), (false, true));
        assert_eq!(m("x**2 + my_var_name * 3"), (false, false));
        assert_eq!(m("Plain prose, nothing more."), (false, false));
    }

    #[test]
    fn empty_and_blank_input() {
        for text in ["", "   \n\t  ", "\u{0}\u{1}\u{7f}"] {
            let a = analyze(text);
            assert_eq!((a.words, a.sentences), (0, 0));
            assert_eq!(a.sentence_type, None);
            assert_eq!((a.readability, a.script, a.language), (None, None, None));
            assert_eq!(a.confidence, 0.0);
            assert!(!a.code.detected && !a.markup.html && !a.markup.markdown);
        }
        assert_eq!(analyze("").to_json()["readability"], Value::Null);
    }

    #[test]
    fn huge_input_is_truncated_at_a_char_boundary() {
        let big = "The cat sat on the mat. ".repeat(1 << 20 >> 4);
        assert!(big.len() >= 1 << 20);
        let a = analyze(&big);
        assert!(a.truncated);
        assert!(a.characters <= MAX_INPUT_BYTES);
        assert_eq!(a.sentence_list.len(), MAX_SENTENCE_LIST);
        assert_eq!(a.language.as_ref().map(|l| l.code), Some("eng"));
        // 'é' is 2 bytes at odd offsets, so byte MAX_INPUT_BYTES falls inside one.
        let accented = format!("a{}", "é".repeat(MAX_INPUT_BYTES));
        let a = analyze(&accented);
        assert!(a.truncated);
        assert_eq!(a.characters, 1 + (MAX_INPUT_BYTES - 2) / 2);
        assert!(!analyze(&"x".repeat(MAX_INPUT_BYTES)).truncated);
    }

    #[test]
    fn long_sentences_are_capped_in_the_list() {
        let a = analyze(&"word ".repeat(1000));
        let text = &a.sentence_list[0].text;
        assert_eq!(text.chars().count(), MAX_SENTENCE_CHARS + 1);
        assert!(text.ends_with('…'));
    }

    #[test]
    fn json_shape() {
        let v = analyze("Can you tell me where the Eiffel Tower is?").to_json();
        assert_eq!(v["sentenceType"], "question");
        assert_eq!(v["sentenceList"][0]["type"], "question");
        assert_eq!(v["words"], 9);
        assert_eq!(v["script"]["name"], "Latin");
        assert_eq!(v["language"]["code"], "eng");
        assert_eq!(v["code"]["detected"], false);
        assert!(v["readability"]["fleschReadingEase"].is_f64());
        assert_eq!(v["confidence"], v["language"]["confidence"]);
    }

    #[test]
    fn random_input_never_panics() {
        // xorshift64: a fixed seed keeps failures reproducible.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let palette = [
            "<",
            ">",
            "</",
            "`",
            "```",
            "*",
            "**",
            "_",
            "#",
            "# ",
            "- ",
            "1. ",
            "](",
            "[",
            "?",
            "!",
            "¿",
            "¡",
            ".",
            "…",
            "\n",
            "\r\n",
            " ",
            "\t",
            "é",
            "中",
            "م",
            "ש",
            "\u{202E}",
            "\u{0}",
            "🙂",
            "👩‍👩‍👧",
            "a",
            "the",
            "fn",
            "def",
            "{",
            "}",
            ";",
            "=>",
            "'",
            "\"",
            "’",
            "e",
            "le",
            "\u{301}",
            "\u{FEFF}",
        ];
        for round in 0..400 {
            let len = (next() % 600) as usize;
            let text = if round % 2 == 0 {
                let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                String::from_utf8_lossy(&bytes).into_owned()
            } else {
                (0..len)
                    .map(|_| palette[(next() % palette.len() as u64) as usize])
                    .collect()
            };
            let a = analyze(&text);
            assert!((0.0..=1.0).contains(&a.confidence), "{text:?}");
            assert!((0.0..=1.0).contains(&a.code.score));
            assert!(a
                .script
                .as_ref()
                .map_or(true, |s| s.share > 0.0 && s.share <= 1.0));
            assert!(a
                .readability
                .as_ref()
                .map_or(true, |r| r.flesch_reading_ease.is_finite()));
            assert!(a.sentence_list.len() <= a.sentences.min(MAX_SENTENCE_LIST));
            let _ = a.to_json().to_string();
        }
    }
}
