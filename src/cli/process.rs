//! `process`: one `process(context)` call of the cognitive loop (`cognition::process`) on a
//! context file, with the memories of `--memory-path` (written back when the input is stored).

use super::memory::{open_stores, save_stores, session};
use super::{read_all, Args, Io};
use crate::cognition::{Context, Event, Process, ProcessOptions};
use crate::error::{Error, Result};
use crate::memory::Stores;

pub(super) const PROCESS_OPTIONS: &[&str] =
    &["model", "tokenizer", "vocab", "pooling", "backend", "context", "options", "memory-path", "cache-mb"];

pub(super) fn process(args: &Args, io: &mut dyn Io) -> Result<()> {
    let json = |path: &str, io: &mut dyn Io| -> Result<serde_json::Value> {
        let bytes = read_all(io, path)?;
        serde_json::from_slice(&bytes).map_err(|e| Error::invalid_options(format!("{path} is not JSON: {e}")))
    };
    let ctx = Context::from_json(&json(args.required("context")?, io)?)?;
    let opts = match args.optional("options") {
        Some(path) => ProcessOptions::from_json(&json(path, io)?)?,
        None => ProcessOptions::default(),
    };
    let cache_bytes = args.number("cache-mb", 64)?.saturating_mul(1 << 20);
    let (mut session, embedder) = session(args, io, usize::try_from(cache_bytes).unwrap_or(usize::MAX))?;
    session.warm_up()?;
    let path = args.optional("memory-path");
    let mut stores = match path {
        Some(path) => open_stores(path, true, embedder, &mut session, io)?,
        None => Stores::new(embedder),
    };
    let mut process = Process::new(ctx, opts, &session);
    let response = loop {
        if let Event::Done(response) = process.step(&mut session, &mut stores)? {
            break response;
        }
    };
    if let (Some(path), false) = (path, response["membranes"]["memory"]["stored"].is_null()) {
        save_stores(path, &stores, io)?;
    }
    io.stdout(&response.to_string());
    Ok(())
}
