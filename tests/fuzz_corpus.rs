//! Replays the fuzzing corpora (`fuzz/corpus/<target>/`) and every input that once found a bug
//! (`fuzz/regressions/<target>/`) through the fuzz targets' bodies, on stable Rust without
//! cargo-fuzz: a target panics on a bug, and each target must have a corpus to replay.

#[path = "../fuzz/targets.rs"]
mod targets;

use std::path::Path;

/// Runs every file of the target's corpus and regressions; returns how many there were.
fn replay(target: &str, run: impl Fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut n = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else { continue };
        for entry in entries {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            // The file's name on a failure: libFuzzer's own output is not there to say it.
            eprintln!("{target}: {}", path.display());
            run(&data);
            n += 1;
        }
    }
    n
}

fn replay_all(target: &str, run: impl Fn(&[u8])) {
    let n = replay(target, run);
    assert!(n > 0, "fuzz/corpus/{target}/ is missing or empty");
}

#[test]
fn model_file() {
    replay_all("model_file", targets::model_file);
}

#[test]
fn checkpoint() {
    replay_all("checkpoint", targets::checkpoint);
}

#[test]
fn state() {
    replay_all("state", targets::state);
}

#[test]
fn memory_export() {
    replay_all("memory_export", targets::memory_export);
}

#[test]
fn world_vocab() {
    replay_all("world_vocab", targets::world_vocab);
}

#[test]
fn neox_json() {
    replay_all("neox_json", targets::neox_json);
}

#[test]
#[cfg_attr(not(echo_tokenizers), ignore = "tokenizers not found at ../shared/fixtures/tokenizers")]
fn tokenize() {
    #[cfg(echo_tokenizers)]
    {
        let path = Path::new(env!("ECHO_TOKENIZERS")).join("rwkv_vocab_v20230424.txt");
        let world = echo_engine::tokenizer::Tokenizer::world(&std::fs::read(path).unwrap()).unwrap();
        replay_all("tokenize", |data| targets::tokenize(&world, data));
    }
}

#[test]
fn grammar() {
    replay_all("grammar", targets::grammar);
}

#[test]
fn cli_args() {
    replay_all("cli_args", targets::cli_args);
}
