//! Converting PyTorch checkpoints (`.pth`, `.safetensors`) to rwkv.cpp files, as rwkv.cpp's
//! `convert_pytorch_to_ggml.py` does: the same tensors in the checkpoint's order, the same
//! per-version transforms (squeezes, reshapes, transposes, `exp(-exp(·))`), and each tensor in the
//! type the shared table gives it ([`schema::Store`]); a quantized file is the FP16 file run through
//! the [`Quantizer`], as rwkv.cpp quantizes its FP16 files.
//!
//! The converter pulls: [`Converter::need`] names the next byte range of the checkpoint it wants,
//! [`Converter::give`] hands it over, and output comes out as it goes ([`Converter::take_output`]).
//! So it runs on any source, synchronous or not (a file, a `Blob` read slice by slice), and holds
//! at most a 1 MiB chunk of a tensor, except for the small tensors it transposes and any
//! non-contiguous view, which it reads whole (at most 64 MiB; larger ones are refused). A checkpoint is untrusted input: see
//! `pickle.rs` for what the pickle reader accepts; sizes are checked before any allocation.

pub mod pickle;
mod safetensors;
mod zip;

use std::collections::HashMap;

use half::f16;

use crate::error::{Error, Result};
use crate::format::{write_file_header, write_tensor_header, DType, FileHeader, TensorInfo, VERSION};
use crate::model::{schema, Arch};
use crate::quantize::{encode_row, Quantizer};
use pickle::{Elem, TensorRef};

/// Bytes of a tensor read at a time.
const CHUNK_BYTES: u64 = 1 << 20;
/// The largest `data.pkl` read (real ones are a few hundred bytes per tensor).
const MAX_PICKLE_BYTES: u64 = 16 << 20;
/// The largest tensor read whole (a transposed LoRA, a non-contiguous view).
const MAX_GATHER_BYTES: u64 = 64 << 20;
/// Elements converted and encoded at a time from a tensor read whole.
const GATHER_ELEMENTS: usize = 1 << 18;
/// The most tensors a checkpoint may have.
const MAX_TENSORS: usize = 1 << 16;

/// What the converter needs next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// `len` bytes of the checkpoint at `offset` (always within the file).
    Read { offset: u64, len: usize },
    Done,
}

/// What was converted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub arch: Arch,
    pub n_vocab: usize,
    pub n_embed: usize,
    pub n_layer: usize,
    pub dtype: DType,
    pub tensors: usize,
    /// Tensors quantized (0 for FP32 and FP16).
    pub quantized: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    None,
    /// v4's `time_decay`: `-exp(x)`.
    NegExp,
    /// v5's `time_decay`: `exp(-exp(x))`.
    ExpNegExp,
    /// v5.1's `time_first`: `exp(x)`.
    Exp,
}

/// One source tensor's elements in output order: walk `shape` row-major with `stride` from `offset`.
struct Part {
    storage: usize,
    elem: Elem,
    offset: u64,
    shape: Vec<u64>,
    stride: Vec<u64>,
    numel: u64,
    contiguous: bool,
}

struct Out {
    info: TensorInfo,
    parts: Vec<Part>,
    op: Op,
}

struct Storage {
    /// The zip entry's local header, when its data offset is not known yet.
    local_header: Option<u64>,
    data: u64,
    /// Bytes in the entry.
    size: u64,
    name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    Nothing,
    Sniff,
    ZipTail,
    ZipDir,
    PickleHeader,
    Pickle,
    SafeHeader,
    StorageHeader(usize),
    Chunk,
    Gather,
}

enum Stage {
    Start,
    Tensors { out: usize, part: usize, pos: u64, started: bool },
    Done,
}

pub struct Converter {
    file_len: u64,
    target: DType,
    /// What the bytes handed out by `need` are for (until `give`).
    pending: Pending,
    /// The next read, decided by `give` or `need`: (what for, offset, length).
    queued: Option<(Pending, u64, u64)>,
    stage: Stage,
    /// The archive's entries and the folder they are in, until `data.pkl` is read.
    zip: Option<(Vec<zip::Entry>, String)>,
    /// The `data.pkl` entry, while its local header is read.
    pickle: Option<zip::Entry>,
    storages: Vec<Storage>,
    plan: Vec<Out>,
    out: Vec<u8>,
    quantizer: Option<Quantizer>,
    summary: Option<Summary>,
    done_bytes: u64,
    total_bytes: u64,
    floats: Vec<f32>,
}

fn elem_to_f32(elem: Elem, b: &[u8]) -> f32 {
    match elem {
        Elem::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        Elem::F16 => f16::from_le_bytes([b[0], b[1]]).to_f32(),
        Elem::BF16 => f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16),
    }
}

/// PyTorch computes these in f32; each `exp` here is the f32 nearest the exact value (computed
/// in f64, then rounded), the same natively and in wasm. PyTorch's own f32 `exp` (vectorized,
/// CPU-dependent) can be 1 ulp off that, so rwkv.cpp's files may differ from ours by 1 ulp there.
fn exp(x: f32) -> f32 {
    (x as f64).exp() as f32
}

fn apply(op: Op, x: f32) -> f32 {
    match op {
        Op::None => x,
        Op::NegExp => -exp(x),
        Op::ExpNegExp => exp(-exp(x)),
        Op::Exp => exp(x),
    }
}

impl Converter {
    /// A conversion of a checkpoint of `file_len` bytes to a file of type `target`.
    pub fn new(file_len: u64, target: DType) -> Result<Converter> {
        let quantizer = if target.is_quantized() { Some(Quantizer::new(target)?) } else { None };
        if file_len < 8 {
            return Err(Error::invalid_model("the checkpoint is too short to be a .pth or .safetensors file"));
        }
        Ok(Converter {
            file_len,
            target,
            pending: Pending::Nothing,
            queued: None,
            stage: Stage::Start,
            zip: None,
            pickle: None,
            storages: Vec::new(),
            plan: Vec::new(),
            out: Vec::new(),
            quantizer,
            summary: None,
            done_bytes: 0,
            total_bytes: 0,
            floats: Vec::new(),
        })
    }

    /// Output produced so far and not yet taken.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// Tensor bytes read so far and in all (0 until the checkpoint's index is read).
    pub fn progress(&self) -> (u64, u64) {
        (self.done_bytes, self.total_bytes)
    }

    /// Set once the conversion is done.
    pub fn summary(&self) -> Option<&Summary> {
        self.summary.as_ref()
    }

    fn float_type(&self) -> DType {
        if self.target == DType::F32 { DType::F32 } else { DType::F16 }
    }

    /// Queues the next read (`need` hands it out).
    fn read(&mut self, pending: Pending, offset: u64, len: u64) -> Result<Need> {
        // Every range asked for is checked against the file before it is asked for.
        debug_assert!(offset + len <= self.file_len);
        self.queued = Some((pending, offset, len));
        Ok(Need::Read { offset, len: len as usize })
    }

    fn emit(&mut self, bytes: &[u8]) -> Result<()> {
        match self.quantizer.as_mut() {
            Some(q) => {
                q.push(bytes)?;
                self.out.extend_from_slice(&q.take_output());
            }
            None => self.out.extend_from_slice(bytes),
        }
        Ok(())
    }

    /// What to read next. Call `give` with exactly those bytes, then `need` again.
    pub fn need(&mut self) -> Result<Need> {
        if self.pending != Pending::Nothing {
            return Err(Error::invalid_options("the converter is waiting for the bytes it asked for"));
        }
        if self.queued.is_none() {
            match self.stage {
                Stage::Start => self.read(Pending::Sniff, 0, 8)?,
                Stage::Done => Need::Done,
                Stage::Tensors { .. } => self.next_tensor_read()?,
            };
        }
        match self.queued.take() {
            Some((pending, offset, len)) => {
                self.pending = pending;
                Ok(Need::Read { offset, len: len as usize })
            }
            None => Ok(Need::Done),
        }
    }

    /// The bytes asked for by the last `need`.
    pub fn give(&mut self, bytes: &[u8]) -> Result<()> {
        let pending = std::mem::replace(&mut self.pending, Pending::Nothing);
        match pending {
            Pending::Nothing => Err(Error::invalid_options("the converter did not ask for bytes")),
            Pending::Sniff => {
                if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
                    let n = self.file_len.min(zip::MAX_TAIL);
                    self.read(Pending::ZipTail, self.file_len - n, n).map(drop)
                } else if bytes.starts_with(&[0x80]) || bytes.starts_with(b"\x8a\x0a") {
                    Err(Error::invalid_model(
                        "this is a PyTorch checkpoint in the legacy (pre-1.6) format; re-save it with torch.save in a current PyTorch",
                    ))
                } else {
                    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
                    if !(2..=safetensors::MAX_HEADER_BYTES).contains(&n) || n > self.file_len - 8 {
                        return Err(Error::invalid_model(
                            "the file is neither a PyTorch checkpoint (.pth, a zip archive) nor a safetensors file",
                        ));
                    }
                    self.read(Pending::SafeHeader, 8, n).map(drop)
                }
            }
            Pending::ZipTail => {
                let (at, len) = zip::directory(bytes, self.file_len)?;
                self.read(Pending::ZipDir, at, len).map(drop)
            }
            Pending::ZipDir => {
                let entries = zip::entries(bytes, self.file_len)?;
                let pkl = entries
                    .iter()
                    .find(|e| e.name.ends_with("data.pkl") && e.name.matches('/').count() <= 1)
                    .cloned()
                    .ok_or_else(|| Error::invalid_model("the zip archive has no data.pkl: it is not a PyTorch checkpoint"))?;
                let prefix = pkl.name[..pkl.name.len() - "data.pkl".len()].to_string();
                if entries.iter().any(|e| e.name == format!("{prefix}byteorder") && e.size == 3) {
                    return Err(Error::invalid_model("the checkpoint was saved big-endian; only little-endian checkpoints are read"));
                }
                if pkl.size > MAX_PICKLE_BYTES {
                    return Err(Error::invalid_model("the checkpoint's data.pkl is implausibly large"));
                }
                let at = pkl.local_header;
                let n = (zip::LOCAL_HEADER_BYTES as u64).min(self.file_len - at);
                self.zip = Some((entries, prefix));
                self.pickle = Some(pkl);
                self.read(Pending::PickleHeader, at, n).map(drop)
            }
            Pending::PickleHeader => {
                let e = self.pickle.take().expect("set with the directory");
                let data = zip::data_offset(&e, bytes, self.file_len)?;
                self.read(Pending::Pickle, data, e.size).map(drop)
            }
            Pending::Pickle => {
                let tensors = pickle::read_state_dict(bytes)?;
                let (entries, prefix) = self.zip.take().expect("set with the directory");
                let by_name: HashMap<&str, &zip::Entry> = entries.iter().map(|e| (e.name.as_str(), e)).collect();
                let mut keys: HashMap<String, usize> = HashMap::new();
                let mut sources = Vec::with_capacity(tensors.len());
                for (name, t) in tensors {
                    let idx = match keys.get(&t.storage) {
                        Some(&i) => i,
                        None => {
                            let path = format!("{prefix}data/{}", t.storage);
                            let e = by_name.get(path.as_str()).ok_or_else(|| {
                                Error::invalid_model(format!("tensor '{name}' names storage '{}', which is not in the archive", t.storage))
                            })?;
                            self.storages.push(Storage { local_header: Some(e.local_header), data: 0, size: e.size, name: e.name.clone() });
                            keys.insert(t.storage.clone(), self.storages.len() - 1);
                            self.storages.len() - 1
                        }
                    };
                    sources.push((name, t, idx));
                }
                self.plan(sources)
            }
            Pending::SafeHeader => {
                let start = 8 + bytes.len() as u64;
                let tensors = safetensors::tensors(bytes, start, self.file_len)?;
                let mut sources = Vec::with_capacity(tensors.len());
                for (name, t, at) in tensors {
                    let size = t.storage_numel * t.elem.bytes() as u64;
                    self.storages.push(Storage { local_header: None, data: at, size, name: name.clone() });
                    sources.push((name, t, self.storages.len() - 1));
                }
                // A safetensors header has no meaningful order (writers sort it); use the order of
                // a checkpoint, which is the schema's.
                self.plan_ordered(sources)
            }
            Pending::StorageHeader(i) => {
                let s = &self.storages[i];
                let e = zip::Entry { name: s.name.clone(), size: s.size, local_header: s.local_header.expect("pending") };
                self.storages[i].data = zip::data_offset(&e, bytes, self.file_len)?;
                self.storages[i].local_header = None;
                Ok(())
            }
            Pending::Chunk | Pending::Gather => self.tensor_bytes(pending, bytes),
        }
    }

    fn plan_ordered(&mut self, mut sources: Vec<(String, TensorRef, usize)>) -> Result<()> {
        let has = |n: &str| sources.iter().any(|(s, _, _)| s == n);
        let arch = if has("blocks.0.att.k_k") { Arch::V7 } else { schema::detect(has) };
        let n_layer = (0..).take_while(|i| has(&format!("blocks.{i}.ln1.weight"))).count();
        let order: HashMap<String, usize> =
            schema::expected(arch, n_layer).into_iter().enumerate().map(|(i, (name, _))| (name, i)).collect();
        let x_order = ["x_r", "x_w", "x_k", "x_v", "x_a", "x_g"];
        let rank = |name: &str| -> (usize, usize) {
            if let Some(&i) = order.get(name) {
                return (i, 0);
            }
            // v7's token-shift mixes become x_rwkvag, in the order r, w, k, v, a, g.
            if let Some((layer, leaf)) = name.strip_prefix("blocks.").and_then(|r| r.split_once(".att.")) {
                if let (Some(&i), Some(j)) = (order.get(&format!("blocks.{layer}.att.x_rwkvag")), x_order.iter().position(|x| *x == leaf)) {
                    return (i, j);
                }
            }
            (usize::MAX, 0)
        };
        sources.sort_by_cached_key(|(name, _, _)| rank(name));
        self.plan(sources)
    }

    /// Decides the output tensors (names, shapes, types, where their elements come from) and
    /// checks them against the architecture's table; then writes the file header.
    fn plan(&mut self, sources: Vec<(String, TensorRef, usize)>) -> Result<()> {
        if sources.len() > MAX_TENSORS {
            return Err(Error::invalid_model("the checkpoint has too many tensors for an RWKV model"));
        }
        let index: HashMap<&str, usize> = sources.iter().enumerate().map(|(i, (n, _, _))| (n.as_str(), i)).collect();
        let has = |n: &str| index.contains_key(n);
        let emb = index
            .get("emb.weight")
            .map(|&i| &sources[i].1)
            .ok_or_else(|| Error::invalid_model("the checkpoint has no 'emb.weight': it is not an RWKV model"))?;
        let [n_vocab, n_embed] = emb.shape[..] else {
            return Err(Error::invalid_model(format!("'emb.weight' has shape {:?}; an embedding is 2-D", emb.shape)));
        };
        let n_layer = (0..).take_while(|i| has(&format!("blocks.{i}.ln1.weight"))).count();
        if n_layer == 0 {
            return Err(Error::invalid_model("the checkpoint has no 'blocks.0.ln1.weight': it is not an RWKV model"));
        }
        let arch = if has("blocks.0.att.k_k") { Arch::V7 } else { schema::detect(has) };
        let n_head = match arch {
            Arch::V6 => index.get("blocks.0.att.time_faaaa").and_then(|&i| sources[i].1.shape.first().copied()),
            _ => None,
        };
        let float = self.float_type();

        // Bounds: every view lies inside its storage, every storage inside its entry.
        for (name, t, s) in &sources {
            let es = t.elem.bytes() as u64;
            let too_big = || Error::invalid_model(format!("tensor '{name}' has sizes that overflow"));
            let numel = t.shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d)).ok_or_else(too_big)?;
            let storage_bytes = t.storage_numel.checked_mul(es).ok_or_else(too_big)?;
            if storage_bytes > self.storages[*s].size {
                return Err(Error::invalid_model(format!(
                    "tensor '{name}' claims a storage of {storage_bytes} bytes, but the archive holds {}",
                    self.storages[*s].size
                )));
            }
            if numel > 0 {
                let last = t
                    .shape
                    .iter()
                    .zip(&t.stride)
                    .try_fold(t.offset, |a, (&d, &st)| (d - 1).checked_mul(st).and_then(|x| a.checked_add(x)))
                    .ok_or_else(too_big)?;
                if last >= t.storage_numel {
                    return Err(Error::invalid_model(format!("tensor '{name}' reaches past the end of its storage")));
                }
            }
        }

        let mut plan: Vec<Out> = Vec::new();
        let part = |i: usize, transpose: Option<(usize, usize)>| -> Result<Part> {
            let (name, t, s) = &sources[i];
            let mut dims: Vec<(u64, u64)> = t.shape.iter().copied().zip(t.stride.iter().copied()).collect();
            if name.contains(".time_") {
                dims.retain(|&(d, _)| d != 1);
            }
            if let Some((a, b)) = transpose {
                if a.max(b) >= dims.len() {
                    return Err(Error::invalid_model(format!("tensor '{name}' has shape {:?}, which cannot be transposed as RWKV's is", t.shape)));
                }
                dims.swap(a, b);
            }
            let numel = dims.iter().map(|d| d.0).product::<u64>();
            let mut expect = 1u64;
            let mut contiguous = true;
            for &(d, st) in dims.iter().rev() {
                if d != 1 && st != expect {
                    contiguous = false;
                }
                expect = expect.saturating_mul(d);
            }
            Ok(Part {
                storage: *s,
                elem: t.elem,
                offset: t.offset,
                shape: dims.iter().map(|d| d.0).collect(),
                stride: dims.iter().map(|d| d.1).collect(),
                numel,
                contiguous,
            })
        };
        for (i, (name, t, _)) in sources.iter().enumerate() {
            let leaf = name.strip_prefix("blocks.").and_then(|r| r.split_once('.')).map(|(_, l)| l);
            let mut op = Op::None;
            let mut transpose = None;
            let mut parts_of = vec![i];
            let mut out_name = name.clone();
            if arch == Arch::V7 {
                if let Some(x) = leaf.and_then(|l| l.strip_prefix("att.x_")) {
                    // rwkv.cpp concatenates x_r, x_w, x_k, x_v, x_a, x_g into x_rwkvag, where the first one was.
                    let layer = &name["blocks.".len()..name.len() - leaf.expect("some").len() - 1];
                    let merged = format!("blocks.{layer}.att.x_rwkvag");
                    if plan.iter().any(|o| o.info.name == merged) {
                        continue;
                    }
                    if x.len() != 1 {
                        return Err(Error::invalid_model(format!("unexpected tensor '{name}' in an RWKV v7 checkpoint")));
                    }
                    parts_of = "rwkvag"
                        .chars()
                        .map(|c| {
                            let n = format!("blocks.{layer}.att.x_{c}");
                            index.get(n.as_str()).copied().ok_or_else(|| Error::invalid_model(format!("tensor '{n}' is missing (the checkpoint looks like an RWKV v7 model)")))
                        })
                        .collect::<Result<_>>()?;
                    out_name = merged;
                }
            }
            let mut shape: Vec<u64> = t.shape.clone();
            if name.contains(".time_") {
                shape.retain(|&d| d != 1);
            }
            match (arch, leaf.unwrap_or("")) {
                (Arch::V7, "att.w1" | "att.w2" | "att.a1" | "att.a2" | "att.v1" | "att.v2" | "att.g1" | "att.g2") => {
                    transpose = Some((0, 1))
                }
                (Arch::V6, "att.time_faaaa") => shape.push(1),
                (Arch::V6, "att.time_maa_w1" | "att.time_decay_w1" | "att.time_decay_w2") => transpose = Some((0, 1)),
                (Arch::V6, "att.time_maa_w2") => transpose = Some((1, 2)),
                (Arch::V6, "att.time_decay") => {
                    let h = n_head.filter(|&h| h > 0).ok_or_else(|| Error::invalid_model("'blocks.0.att.time_faaaa' is missing or empty"))?;
                    let n = shape.iter().product::<u64>();
                    if n % h != 0 {
                        return Err(Error::invalid_model(format!("tensor '{name}' does not divide into {h} heads")));
                    }
                    shape = vec![h, n / h, 1];
                }
                (Arch::V5_1, "att.time_decay") => {
                    op = Op::ExpNegExp;
                    shape = vec![shape.iter().product(), 1, 1];
                }
                (Arch::V5_2, "att.time_decay") => {
                    op = Op::ExpNegExp;
                    shape.push(1);
                }
                (Arch::V5_1 | Arch::V5_2, "att.time_first") => {
                    op = Op::Exp;
                    shape = vec![shape.iter().product(), 1, 1];
                }
                (Arch::V5_1 | Arch::V5_2, "att.time_faaaa") => shape.push(1),
                (Arch::V4, "att.time_decay") => op = Op::NegExp,
                _ => {}
            }
            if let Some((a, b)) = transpose {
                if a.max(b) < shape.len() {
                    shape.swap(a, b);
                }
            }
            let parts: Vec<Part> = parts_of.iter().map(|&j| part(j, transpose)).collect::<Result<_>>()?;
            if parts.len() > 1 {
                // Concatenated along the first dimension: the parts must agree on the rest.
                if parts.iter().any(|p| p.shape.get(1..) != parts[0].shape.get(1..)) || shape.is_empty() {
                    return Err(Error::invalid_model(format!("the tensors that make '{out_name}' have shapes that disagree")));
                }
                shape[0] = parts.iter().map(|p| p.shape.first().copied().unwrap_or(1)).sum();
            }
            let ggml: Vec<usize> = shape.iter().rev().map(|&d| usize::try_from(d).unwrap_or(usize::MAX)).collect();
            if ggml.is_empty() || ggml.len() > 4 || ggml.iter().any(|&d| d == 0 || d > i32::MAX as usize) {
                return Err(Error::invalid_model(format!("tensor '{name}' has shape {:?}, which no RWKV tensor has", t.shape)));
            }
            let store = schema::store(&out_name)
                .ok_or_else(|| Error::invalid_model(format!("unexpected tensor '{out_name}' in an RWKV {} checkpoint", arch.name())))?;
            let dtype = store.dtype(float, ggml[0]);
            let n: usize = ggml.iter().product();
            let n_bytes = dtype.row_bytes(ggml[0]).and_then(|r| r.checked_mul(n / ggml[0])).ok_or_else(|| Error::invalid_model("a tensor is too large"))?;
            plan.push(Out { info: TensorInfo { name: out_name, dtype, shape: ggml, n_bytes }, parts, op });
        }

        let fits = |n: u64| n > 0 && n <= i32::MAX as u64;
        if !fits(n_vocab) || !fits(n_embed) {
            return Err(Error::invalid_model(format!("'emb.weight' has shape {:?}", emb.shape)));
        }
        let header = FileHeader { version: VERSION, n_vocab: n_vocab as u32, n_embed: n_embed as u32, n_layer: n_layer as u32, dtype: float };
        schema::validate(arch, &header, |n| plan.iter().find(|o| o.info.name == n).map(|o| o.info.clone()), plan.len())?;
        for o in &plan {
            for p in &o.parts {
                if !p.contiguous {
                    let span = p.shape.iter().zip(&p.stride).map(|(&d, &s)| (d - 1) * s).sum::<u64>() + 1;
                    if span * p.elem.bytes() as u64 > MAX_GATHER_BYTES {
                        return Err(Error::invalid_model(format!("tensor '{}' is a large non-contiguous view; save the checkpoint with contiguous tensors", o.info.name)));
                    }
                }
            }
        }
        self.total_bytes = plan.iter().flat_map(|o| &o.parts).map(|p| p.numel * p.elem.bytes() as u64).sum();
        self.summary = Some(Summary {
            arch,
            n_vocab: n_vocab as usize,
            n_embed: n_embed as usize,
            n_layer,
            dtype: self.target,
            tensors: plan.len(),
            quantized: 0,
        });
        self.plan = plan;
        let mut bytes = Vec::new();
        write_file_header(&mut bytes, &header);
        self.emit(&bytes)?;
        self.stage = Stage::Tensors { out: 0, part: 0, pos: 0, started: false };
        Ok(())
    }

    fn next_tensor_read(&mut self) -> Result<Need> {
        loop {
            let Stage::Tensors { out, part, pos, started } = self.stage else { unreachable!("called in the tensor stage") };
            if out == self.plan.len() {
                if let Some(q) = self.quantizer.take() {
                    let (last, _, quantized) = q.finish()?;
                    self.out.extend_from_slice(&last);
                    self.summary.as_mut().expect("planned").quantized = quantized;
                }
                self.stage = Stage::Done;
                return Ok(Need::Done);
            }
            if !started {
                let mut bytes = Vec::new();
                write_tensor_header(&mut bytes, &self.plan[out].info);
                self.emit(&bytes)?;
                self.stage = Stage::Tensors { out, part, pos, started: true };
                continue;
            }
            let o = &self.plan[out];
            let Some(p) = o.parts.get(part) else {
                self.stage = Stage::Tensors { out: out + 1, part: 0, pos: 0, started: false };
                continue;
            };
            let st = &self.storages[p.storage];
            if let Some(at) = st.local_header {
                let n = (zip::LOCAL_HEADER_BYTES as u64).min(self.file_len - at);
                return self.read(Pending::StorageHeader(p.storage), at, n);
            }
            let es = p.elem.bytes() as u64;
            if pos == p.numel {
                self.stage = Stage::Tensors { out, part: part + 1, pos: 0, started };
                continue;
            }
            if p.contiguous {
                let n = (p.numel - pos).min(CHUNK_BYTES / es);
                return self.read(Pending::Chunk, st.data + (p.offset + pos) * es, n * es);
            }
            let span = p.shape.iter().zip(&p.stride).map(|(&d, &s)| (d - 1) * s).sum::<u64>() + 1;
            return self.read(Pending::Gather, st.data + p.offset * es, span * es);
        }
    }

    fn tensor_bytes(&mut self, pending: Pending, bytes: &[u8]) -> Result<()> {
        let Stage::Tensors { out, part, pos, started } = self.stage else { unreachable!("tensor bytes in the tensor stage") };
        let (op, dtype) = (self.plan[out].op, self.plan[out].info.dtype);
        let p = &self.plan[out].parts[part];
        let (elem, es, numel) = (p.elem, p.elem.bytes(), p.numel);
        let mut floats = std::mem::take(&mut self.floats);
        let mut encoded = Vec::new();
        let flush = |floats: &mut Vec<f32>, out: &mut Vec<u8>| {
            encode_row(dtype, floats, out);
            floats.clear();
        };
        floats.clear();
        let n = if pending == Pending::Chunk {
            floats.extend(bytes.chunks_exact(es).map(|b| apply(op, elem_to_f32(elem, b))));
            flush(&mut floats, &mut encoded);
            (bytes.len() / es) as u64
        } else {
            // Row-major walk of the view, encoded a slice at a time.
            let mut idx = vec![0u64; p.shape.len()];
            for _ in 0..numel {
                let at = idx.iter().zip(&p.stride).map(|(&i, &s)| i * s).sum::<u64>() as usize * es;
                floats.push(apply(op, elem_to_f32(elem, &bytes[at..at + es])));
                if floats.len() == GATHER_ELEMENTS {
                    flush(&mut floats, &mut encoded);
                }
                for d in (0..idx.len()).rev() {
                    idx[d] += 1;
                    if idx[d] < p.shape[d] {
                        break;
                    }
                    idx[d] = 0;
                }
            }
            flush(&mut floats, &mut encoded);
            numel
        };
        self.floats = floats;
        self.done_bytes += n * es as u64;
        self.stage = Stage::Tensors { out, part, pos: pos + n, started };
        self.emit(&encoded)
    }
}

/// Converts a checkpoint of `file_len` bytes read with `read_at(offset, buf)` (fill `buf` from
/// `offset`), writing the output with `write` as it is made.
pub fn convert(
    file_len: u64,
    target: DType,
    mut read_at: impl FnMut(u64, &mut [u8]) -> Result<()>,
    mut write: impl FnMut(&[u8]) -> Result<()>,
) -> Result<Summary> {
    let mut c = Converter::new(file_len, target)?;
    let mut buf = Vec::new();
    loop {
        let need = c.need()?;
        let out = c.take_output();
        if !out.is_empty() {
            write(&out)?;
        }
        match need {
            Need::Done => break,
            Need::Read { offset, len } => {
                buf.resize(len, 0);
                read_at(offset, &mut buf)?;
                c.give(&buf)?;
                buf.clear();
                buf.shrink_to(CHUNK_BYTES as usize);
                let out = c.take_output();
                if !out.is_empty() {
                    write(&out)?;
                }
            }
        }
    }
    Ok(c.summary().cloned().expect("done"))
}
