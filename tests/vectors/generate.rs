//! Seeded generations with pinned output: the byte tokenizer's tokens (= the output bytes) for
//! `PROMPT`, `SEED` and `MAX_TOKENS` with the default sampler. Native (tests/generate.rs), Node
//! and Chromium (tests/wasm_generate.rs) must all produce exactly these bytes.

pub const PROMPT: &str = "In the beginning";
pub const SEED: u64 = 2024;
pub const MAX_TOKENS: usize = 64;

/// (fixture file, output bytes)
pub const SEEDED: &[(&str, &[u8])] = &[
    ("tiny-rwkv-4v0-660K-Q5_1.bin", b" theal on pilindity fersid vour conmousses cagme.\\n\\n\\ A.\"D\"3, \\"),
    ("tiny-rwkv-5v1-730K-Q5_0.bin", b" their offecestoly\\n1. Apdadity of understanding, and using even"),
    ("tiny-rwkv-5v2-730K-FP32.bin", b" of dispreaders larger cates of communication, which characters "),
    ("tiny-rwkv-6v0-3m-Q5_1.bin", b"\x00u\x00e\x00 \x00a\x00n\x00d\x00 \x00m\x00a\x00k\x00e\x00 \x00b\x00u\x00s\x00i\x00n\x00e\x00s\x00s\x00e\x00s\x00.\x00\\\x00n\x00\\\x00n\x003\x00.\x00 \x00C\x00a"),
    ("tiny-rwkv-7v0-834K-FP16.bin", b"\xe7eet\xf1ge1mh.x=\xcf \xb1\xfevT&\xf7\x19n\xd3/[+\x8ct,\x8d~\x9ein]e\xdf\x9e\x18\xb7R d\x15H\x00{W= w\x13iPs\xfby;G\x8b\xbbB\xaf"),
];
