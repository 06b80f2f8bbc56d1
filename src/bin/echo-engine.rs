//! Native `echo-engine` CLI: the same commands and output as the Node (wasm) CLI.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::time::Instant;

use echo_engine::cli::{self, io_error, Io};
use echo_engine::Result;

struct NativeIo {
    start: Instant,
    readers: HashMap<String, File>,
    writers: HashMap<String, File>,
}

impl Io for NativeIo {
    fn open(&mut self, path: &str) -> Result<u64> {
        let file = File::open(path).map_err(|e| io_error("open", path, e))?;
        let size = file.metadata().map_err(|e| io_error("stat", path, e))?.len();
        self.readers.insert(path.to_string(), file);
        Ok(size)
    }
    fn read(&mut self, path: &str, buf: &mut [u8]) -> Result<usize> {
        let file = self.readers.get_mut(path).ok_or_else(|| io_error("read", path, "not open"))?;
        file.read(buf).map_err(|e| io_error("read", path, e))
    }
    fn seek(&mut self, path: &str, offset: u64) -> Result<()> {
        let file = self.readers.get_mut(path).ok_or_else(|| io_error("seek", path, "not open"))?;
        file.seek(SeekFrom::Start(offset)).map(drop).map_err(|e| io_error("seek", path, e))
    }
    fn create(&mut self, path: &str) -> Result<()> {
        let file = File::create(path).map_err(|e| io_error("create", path, e))?;
        self.writers.insert(path.to_string(), file);
        Ok(())
    }
    fn append(&mut self, path: &str, bytes: &[u8]) -> Result<()> {
        let file = self.writers.get_mut(path).ok_or_else(|| io_error("write", path, "not created"))?;
        file.write_all(bytes).map_err(|e| io_error("write", path, e))
    }
    fn rename(&mut self, from: &str, to: &str) -> Result<()> {
        if let Some(file) = self.writers.remove(from) {
            file.sync_all().map_err(|e| io_error("sync", from, e))?;
        }
        std::fs::rename(from, to).map_err(|e| io_error("rename", from, e))
    }
    fn exists(&mut self, path: &str) -> bool {
        std::path::Path::new(path).exists()
    }
    fn stdout(&mut self, line: &str) {
        println!("{line}");
    }
    fn stdout_raw(&mut self, text: &str) {
        let mut out = std::io::stdout().lock();
        // Streamed text shows as it comes; a closed pipe just ends the output.
        let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    }
    fn stderr(&mut self, line: &str) {
        eprintln!("{line}");
    }
    fn clock(&self) -> Box<dyn Fn() -> f64> {
        let start = self.start;
        Box::new(move || start.elapsed().as_secs_f64() * 1000.0)
    }
    fn runtime(&self) -> String {
        "native".into()
    }
    fn peak_memory_bytes(&self) -> u64 {
        echo_ggml_sys::mem::peak_bytes() as u64
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut io = NativeIo { start: Instant::now(), readers: HashMap::new(), writers: HashMap::new() };
    std::process::exit(cli::run(&args, &mut io));
}
