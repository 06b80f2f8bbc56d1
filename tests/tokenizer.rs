//! Tokenizers against their fixture files (`../shared/fixtures/tokenizers`).
//!
//! The checks are plain `pub fn`s that take the files' bytes; `native` runs them on the files, and
//! `wasm` (Node.js, and headless Chromium: `wasm-pack test --node`, `wasm-pack test --headless --chrome`) on copies embedded at
//! compile time (a browser has no file system).
//! NeoX's expected ids come from Hugging Face `tokenizers` 0.23.3:
//! `Tokenizer.from_file("20B_tokenizer.json").encode(s).ids`.
#![allow(dead_code)]

#[cfg(target_arch = "wasm32")]
#[path = "common/wasm_mode.rs"]
mod wasm_mode;

use echo_engine::tokenizer::{kind_for_vocab, Tokenizer, TokenizerKind};
use echo_engine::ErrorCode;

/// Varied text that every tokenizer must give back unchanged (all of it already NFC).
pub fn round_trip_texts() -> Vec<String> {
    let mut texts: Vec<String> = [
        "",
        "Hello, world!",
        "以下は、日本語のテキストです。中文也可以。한국어",
        "Привет, мир! Съешь же ещё этих мягких французских булок.",
        "مرحبا بالعالم، هذا نص عربي.",
        "नमस्ते दुनिया, हिन्दी",
        "family 👨‍👩‍👧‍👦, flags 🇯🇵🇺🇸🏳️‍🌈, skin 👍🏽",
        "fn main() {\n\tlet x = 1;\r\n\t\tif x > 0 { return; }\n}\n",
        "nul \u{0} esc \u{1b}[31m bell \u{7} del \u{7f} \u{85}\u{a0}\u{2028}",
        "I'll 've 'D <|endoftext|><|padding|>  double  spaces   and tabs\t\t",
        "Numbers 3.14159 1234567890 ①②③ ٣٤٥",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    texts.push(" ".repeat(10_000));
    texts.push("a".repeat(5_000));
    texts.push("ab\n".repeat(2_000));
    texts
}

pub fn check_round_trips(tok: &Tokenizer) {
    for text in round_trip_texts() {
        let ids = tok.encode(&text);
        assert!(ids.iter().all(|&id| (id as usize) < tok.vocab_size()), "{}: id out of range", tok.name());
        assert_eq!(tok.decode(&ids).unwrap(), text.as_bytes(), "{} round trip of {text:?}", tok.name());
        assert_eq!(ids.is_empty(), text.is_empty());
    }
    // Long runs become few tokens (the byte tokenizer aside, which has no merges).
    if tok.kind() != TokenizerKind::Byte {
        assert!(tok.encode(&" ".repeat(10_000)).len() < 1_000, "{}", tok.name());
    }
}

/// Arbitrary ids: known ones decode, unknown ones are InvalidOptions errors naming the id.
pub fn check_decode_arbitrary_ids(tok: &Tokenizer) {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut ids: Vec<u32> = (0..5_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % (tok.vocab_size() as u64 + 1_000)) as u32
        })
        .collect();
    ids.extend([0, u32::MAX, tok.vocab_size() as u32, tok.vocab_size() as u32 - 1]);
    let mut unknown = 0;
    for &id in &ids {
        match tok.decode(&[id]) {
            Ok(bytes) => {
                assert!(!bytes.is_empty(), "{}: id {id} decodes to nothing", tok.name());
                assert!((id as usize) < tok.vocab_size());
            }
            Err(e) => {
                assert_eq!(e.code, ErrorCode::InvalidOptions);
                assert!(e.message.contains(&id.to_string()), "{}: {}", tok.name(), e.message);
                unknown += 1;
            }
        }
    }
    assert!(unknown > 0 && unknown < ids.len(), "{}: {unknown} unknown ids", tok.name());
    // One unknown id spoils the whole sequence.
    assert!(tok.decode(&[1, 2, u32::MAX, 3]).is_err());
}

pub fn check_world_known_vector(vocab: &[u8]) {
    let tok = Tokenizer::world(vocab).unwrap();
    assert_eq!(tok.name(), "world");
    assert_eq!(tok.vocab_size(), 65_530);
    let text = "I'll 'd test блабла 以下は、]) -> <|endoftext|><|padding|> int";
    let expected = [
        74, 5229, 274, 101, 32223, 5092, 27980, 2795, 27980, 33, 10399, 10258, 10139, 10079, 1682, 3463, 295, 125,
        25258, 7588, 2318, 125, 790, 125, 49520, 125, 63, 21888,
    ];
    assert_eq!(tok.encode(text), expected);
    assert_eq!(tok.decode(&expected).unwrap(), text.as_bytes());
    // Token 3082 is b'\xe5\xbd', half of a character: decode gives the raw bytes.
    assert_eq!(tok.decode(&[3082]).unwrap(), b"\xe5\xbd");
    // Id 0 (end of text) has no token in the vocabulary.
    assert_eq!(tok.decode(&[0]).unwrap_err().code, ErrorCode::InvalidOptions);
}

/// 1 MB of mixed text encodes fast (a trie, not a scan of the vocabulary) and round-trips.
pub fn check_speed(tok: &Tokenizer, limit_secs: f64) {
    let unit = "The quick brown fox 以下は、 Привет 👨‍👩‍👧‍👦 fn(x) {\n\treturn 42;\n}  ";
    let text = unit.repeat(1_000_000 / unit.len() + 1);
    let start = std::time::Instant::now();
    let ids = tok.encode(&text);
    let secs = start.elapsed().as_secs_f64();
    println!("{}: {} bytes → {} tokens in {secs:.3} s", tok.name(), text.len(), ids.len());
    assert!(secs < limit_secs, "{}: 1 MB took {secs:.3} s", tok.name());
    assert_eq!(tok.decode(&ids).unwrap(), text.as_bytes());
}

/// (text, ids from the Hugging Face tokenizer).
pub const NEOX_CASES: &[(&str, &[u32])] = &[
    ("Hello, world! This is a test.", &[12092, 13, 1533, 2, 831, 310, 247, 1071, 15]),
    ("<|endoftext|>The end.<|padding|>", &[0, 510, 990, 15, 1]),
    ("a  b   c    d                              e", &[66, 50276, 67, 50275, 68, 50274, 69, 50254, 50272, 70]),
    ("line one\nline two\n\n\tindented\r\n", &[1282, 581, 187, 1282, 767, 535, 186, 527, 8006, 2379]),
    (
        "Numbers: 3.14159, 1234567890, 2^64 = 18446744073709551616",
        &[
            45972, 27, 495, 15, 1047, 17220, 13, 1249, 16767, 25025, 2270, 13, 374, 63, 1540, 426, 1283, 2031, 29327,
            24769, 23139, 31722, 1036, 1036,
        ],
    ),
    (
        "以下は、日本語のテキストです。中文也可以。",
        &[
            16877, 20720, 6418, 4746, 49868, 19119, 241, 3917, 28656, 33548, 38206, 20776, 4340, 13609, 20855, 35724,
            33018, 4340,
        ],
    ),
    (
        "emoji 👨\u{200d}👩\u{200d}👧\u{200d}👦 and flags 🇯🇵🇺🇸 😀",
        &[
            43208, 8020, 22692, 228, 103, 325, 224, 14931, 228, 104, 325, 224, 14931, 228, 102, 325, 224, 14931, 228,
            101, 285, 12201, 22692, 218, 109, 14931, 218, 115, 14931, 218, 120, 14931, 218, 118, 49042, 211,
        ],
    ),
    ("Привет, мир! Ελληνικά", &[21715, 1697, 16423, 7508, 13, 8277, 20650, 2, 29830, 29704, 4992, 3147, 12388, 8348]),
    ("I'll 've 'D don't WE'RE", &[42, 1833, 686, 306, 686, 37, 1053, 626, 13573, 8, 1848]),
    ("def f(x):\n    return x  # comment\n", &[1545, 269, 9, 89, 2262, 187, 50274, 2309, 1269, 50276, 4, 4385, 187]),
    // Not NFC: "e" + combining acute, and the Ångström sign; NFC makes them é and Å.
    ("e\u{301} cafe\u{301} \u{212b}", &[860, 36241, 17732]),
    ("हिन्दी العربية", &[30598, 20489, 23068, 17665, 46175, 22224, 9445, 13793, 6900, 13621, 32229]),
    ("x\u{a0}\u{a0}y\u{3000}z \u{2028} end  ", &[89, 575, 575, 90, 19409, 91, 541, 103, 990, 50276]),
    ("", &[]),
];

pub fn check_neox_reference_ids(json: &[u8]) {
    let tok = Tokenizer::neox(json).unwrap();
    assert_eq!(tok.name(), "neox");
    assert_eq!(tok.vocab_size(), 50_277);
    for (text, expected) in NEOX_CASES {
        assert_eq!(tok.encode(text), *expected, "neox ids of {text:?}");
    }
    // Normalization is the one way text does not come back verbatim.
    assert_eq!(tok.decode(&tok.encode("cafe\u{301}")).unwrap(), "café".as_bytes());
}

fn assert_invalid(result: echo_engine::Result<Tokenizer>, needle: &str, what: &str) {
    match result {
        Ok(_) => panic!("{what}: loaded"),
        Err(e) => {
            assert_eq!(e.code, ErrorCode::InvalidOptions, "{what}");
            assert!(e.message.contains(needle), "{what}: {:?} lacks {needle:?}", e.message);
        }
    }
}

pub fn check_world_malformed(vocab: &[u8]) {
    let text = std::str::from_utf8(vocab).unwrap();
    let with_line = |line: &str| format!("{text}{line}\n").into_bytes();
    assert_invalid(Tokenizer::world(&with_line("70000 'zzq' 4")), "line 65530", "wrong length");
    assert_invalid(Tokenizer::world(&with_line("70000 'zzq 3")), "quote", "unterminated literal");
    assert_invalid(Tokenizer::world(&with_line("70000 '\\q' 1")), "escape", "bad escape");
    assert_invalid(Tokenizer::world(&with_line("x 'zzq' 3")), "id", "bad id");
    assert_invalid(Tokenizer::world(&with_line("70000 'zzq'")), "byte_length", "missing length");
    assert_invalid(Tokenizer::world(&with_line("5 'zzq' 3")), "twice", "duplicate id");
    assert_invalid(Tokenizer::world(&with_line("70000 'the' 3")), "twice", "duplicate token");
    assert_invalid(Tokenizer::world(&with_line("4000000000 'zzq' 3")), "too large", "huge id");
    assert_invalid(Tokenizer::world(&with_line("70000 '' 0")), "empty", "empty token");
    assert_invalid(Tokenizer::world(b"1 '\xff' 1\n"), "UTF-8", "not UTF-8");
    assert_invalid(Tokenizer::world(b""), "byte 0x00", "empty file");
    assert_invalid(Tokenizer::world(b"1 'a' 1\n"), "byte 0x00", "missing single bytes");
    // Every prefix of the real file either loads or fails cleanly.
    for cut in [1, 10, 1000, vocab.len() / 2, vocab.len() - 3] {
        if let Err(e) = Tokenizer::world(&vocab[..cut]) {
            assert_eq!(e.code, ErrorCode::InvalidOptions);
        }
    }
}

pub fn check_neox_malformed(json: &[u8]) {
    let text = std::str::from_utf8(json).unwrap();
    let edit = |from: &str, to: &str| {
        assert!(text.contains(from), "fixture lacks {from:?}");
        text.replacen(from, to, 1).into_bytes()
    };
    assert_invalid(Tokenizer::neox(b""), "malformed tokenizer JSON", "empty");
    assert_invalid(Tokenizer::neox(&json[..json.len() / 2]), "malformed tokenizer JSON", "truncated");
    assert_invalid(Tokenizer::neox(b"{}"), "pre_tokenizer", "empty object");
    assert_invalid(Tokenizer::neox(&edit("\"type\": \"BPE\"", "\"type\": \"Unigram\"")), "BPE", "model type");
    assert_invalid(Tokenizer::neox(&edit("\"type\": \"NFC\"", "\"type\": \"NFKC\"")), "NFC", "normalizer");
    assert_invalid(
        Tokenizer::neox(&edit("\"\\u0120 \\u0120\"", "\"\\u0120 Qzx\"")),
        "Qzx",
        "merge of an unknown token",
    );
    assert_invalid(
        Tokenizer::neox(&edit("\"\\u0120 \\u0120\"", "\"\\u0120\\u0120\"")),
        "merge #0",
        "merge without a space",
    );
    assert_invalid(Tokenizer::neox(&edit("\"!\": 2", "\"!\": 1")), "appears twice", "duplicate id");
    assert_invalid(Tokenizer::neox(&edit("\"!\": 2", "\"!\": -2")), "integer", "negative id");
    assert_invalid(Tokenizer::neox(&edit("\"!\": 2", "\"!\": 99999999")), "too large", "huge id");
    assert_invalid(Tokenizer::neox(&edit("\"!\": 2", "\"\\u0001\": 2")), "byte-level", "raw control char");
    assert_invalid(Tokenizer::neox(&edit("\"lstrip\": false", "\"lstrip\": true")), "lstrip", "lstrip");
    assert_invalid(Tokenizer::neox(&edit("\"vocab\": {", "\"vocab\": [{")), "malformed", "bad nesting");
    // Every prefix of the real file fails cleanly.
    for cut in [1, 2, 100, 10_000, json.len() - 2] {
        assert_eq!(Tokenizer::neox(&json[..cut]).unwrap_err().code, ErrorCode::InvalidOptions);
    }
}

pub fn check_byte() {
    let tok = Tokenizer::byte();
    assert_eq!((tok.name(), tok.vocab_size()), ("byte", 256));
    assert_eq!(tok.encode("\"in"), [34, 105, 110]);
    assert_eq!(tok.encode("é"), [0xc3, 0xa9]);
    assert_eq!(tok.decode(&[0xe4, 0xbd]).unwrap(), b"\xe4\xbd");
    let e = tok.decode(&[256]).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidOptions);
    assert!(e.message.contains("256"));
    check_round_trips(&tok);
    check_decode_arbitrary_ids(&tok);
}

pub fn check_kinds() {
    assert_eq!(kind_for_vocab(65_536), Some(TokenizerKind::World));
    for n in [50_277, 50_304, 50_432] {
        assert_eq!(kind_for_vocab(n), Some(TokenizerKind::NeoX), "{n}");
    }
    assert_eq!(kind_for_vocab(256), Some(TokenizerKind::Byte));
    for n in [0, 255, 257, 50_276, 65_535, 65_537, 100_000] {
        assert_eq!(kind_for_vocab(n), None, "{n}");
    }
    for (name, kind) in [
        ("world", TokenizerKind::World),
        ("neox", TokenizerKind::NeoX),
        ("20b", TokenizerKind::NeoX),
        ("20B", TokenizerKind::NeoX),
        ("pile", TokenizerKind::NeoX),
        ("byte", TokenizerKind::Byte),
    ] {
        assert_eq!(TokenizerKind::from_name(name).unwrap(), kind);
    }
    for name in ["", "World", "gpt2", "bytes"] {
        let e = TokenizerKind::from_name(name).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidOptions);
        assert!(e.message.contains("world"), "{}", e.message);
    }
    assert_eq!(Tokenizer::load(TokenizerKind::Byte, b"").unwrap().name(), "byte");
    assert_eq!(format!("{:?}", Tokenizer::byte()), "Tokenizer(byte, 256 ids)");
    assert_eq!(Tokenizer::load(TokenizerKind::World, b"").unwrap_err().code, ErrorCode::InvalidOptions);
}

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use super::*;
    use std::path::PathBuf;

    /// A tokenizer fixture's bytes (tests that call this are ignored when the folder is missing).
    fn fixture(name: &str) -> Vec<u8> {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/tokenizers").join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("tokenizer fixture {}: {e}", path.display()))
    }

    const WORLD: &str = "rwkv_vocab_v20230424.txt";
    const NEOX: &str = "20B_tokenizer.json";

    #[test]
    #[cfg_attr(not(echo_tokenizers), ignore = "tokenizer fixtures not found at ../shared/fixtures/tokenizers")]
    fn world_known_vector() {
        let v = fixture(WORLD);
        check_world_known_vector(&v);
    }

    #[test]
    #[cfg_attr(not(echo_tokenizers), ignore = "tokenizer fixtures not found at ../shared/fixtures/tokenizers")]
    fn world_round_trips_and_decoding() {
        let v = fixture(WORLD);
        let tok = Tokenizer::world(&v).unwrap();
        check_round_trips(&tok);
        check_decode_arbitrary_ids(&tok);
    }

    #[test]
    #[cfg_attr(not(echo_tokenizers), ignore = "tokenizer fixtures not found at ../shared/fixtures/tokenizers")]
    fn world_is_fast() {
        let v = fixture(WORLD);
        check_speed(&Tokenizer::world(&v).unwrap(), 1.0);
    }

    #[test]
    #[cfg_attr(not(echo_tokenizers), ignore = "tokenizer fixtures not found at ../shared/fixtures/tokenizers")]
    fn world_malformed_files() {
        let v = fixture(WORLD);
        check_world_malformed(&v);
    }

    #[test]
    #[cfg_attr(not(echo_tokenizers), ignore = "tokenizer fixtures not found at ../shared/fixtures/tokenizers")]
    fn neox_matches_reference_ids() {
        let j = fixture(NEOX);
        check_neox_reference_ids(&j);
    }

    #[test]
    #[cfg_attr(not(echo_tokenizers), ignore = "tokenizer fixtures not found at ../shared/fixtures/tokenizers")]
    fn neox_round_trips_and_decoding() {
        let j = fixture(NEOX);
        let tok = Tokenizer::neox(&j).unwrap();
        check_round_trips(&tok);
        check_decode_arbitrary_ids(&tok);
    }

    #[test]
    #[cfg_attr(not(echo_tokenizers), ignore = "tokenizer fixtures not found at ../shared/fixtures/tokenizers")]
    fn neox_is_fast() {
        let j = fixture(NEOX);
        check_speed(&Tokenizer::neox(&j).unwrap(), 3.0);
    }

    #[test]
    #[cfg_attr(not(echo_tokenizers), ignore = "tokenizer fixtures not found at ../shared/fixtures/tokenizers")]
    fn neox_malformed_files() {
        let j = fixture(NEOX);
        check_neox_malformed(&j);
    }

    #[test]
    fn byte_tokenizer() {
        check_byte();
    }

    #[test]
    fn kinds_and_names() {
        check_kinds();
    }
}

#[cfg(target_arch = "wasm32")]
mod wasm {
    use super::*;
    use wasm_bindgen_test::*;

    /// (World vocabulary, NeoX tokenizer.json), embedded at build time; the tests that use them
    /// are ignored when the folder was missing then.
    #[cfg(echo_tokenizers)]
    fn files() -> (&'static [u8], &'static [u8]) {
        (
            include_bytes!(concat!(env!("ECHO_TOKENIZERS"), "/rwkv_vocab_v20230424.txt")),
            include_bytes!(concat!(env!("ECHO_TOKENIZERS"), "/20B_tokenizer.json")),
        )
    }
    #[cfg(not(echo_tokenizers))]
    fn files() -> (&'static [u8], &'static [u8]) {
        unreachable!("ignored without the tokenizer fixtures")
    }

    #[wasm_bindgen_test]
    #[cfg_attr(not(echo_tokenizers), ignore = "tokenizer fixtures not found at ../shared/fixtures/tokenizers")]
    fn world() {
        let (world, _) = files();
        check_world_known_vector(world);
        let tok = Tokenizer::world(world).unwrap();
        check_round_trips(&tok);
        check_decode_arbitrary_ids(&tok);
        check_world_malformed(world);
    }

    #[wasm_bindgen_test]
    #[cfg_attr(not(echo_tokenizers), ignore = "tokenizer fixtures not found at ../shared/fixtures/tokenizers")]
    fn neox() {
        let (_, json) = files();
        check_neox_reference_ids(json);
        let tok = Tokenizer::neox(json).unwrap();
        check_round_trips(&tok);
        check_decode_arbitrary_ids(&tok);
        check_neox_malformed(json);
    }

    #[wasm_bindgen_test]
    fn byte_and_kinds() {
        check_byte();
        check_kinds();
    }
}
