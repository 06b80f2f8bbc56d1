#![no_main]

use std::sync::OnceLock;

use echo_engine::tokenizer::Tokenizer;

/// The real World vocabulary, from the fixtures beside the repository (`../shared`).
fn world() -> &'static Tokenizer {
    static WORLD: OnceLock<Tokenizer> = OnceLock::new();
    WORLD.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/fixtures/tokenizers/rwkv_vocab_v20230424.txt");
        let vocab = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        Tokenizer::world(&vocab).expect("the World vocabulary loads")
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| echo_fuzz::tokenize(world(), data));
