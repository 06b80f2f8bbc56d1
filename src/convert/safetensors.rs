//! `.safetensors`: an 8-byte little-endian header length, a JSON header
//! (`{"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}}`),
//! then the data, offsets relative to its start. The JSON reader here takes exactly that (bounded
//! depth, no numbers beyond u64).

use super::pickle::{Elem, TensorRef};
use crate::error::{Error, Result};

/// A header larger than this is refused (real ones are a few hundred bytes per tensor).
pub const MAX_HEADER_BYTES: u64 = 64 << 20;

fn bad(msg: impl std::fmt::Display) -> Error {
    Error::invalid_model(format!("the safetensors header is malformed: {msg}"))
}

enum Json {
    Str(String),
    Num(u64),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
    Other,
}

struct P<'a> {
    b: &'a [u8],
    i: usize,
}

impl P<'_> {
    fn ws(&mut self) {
        while self.i < self.b.len() && self.b[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }
    fn peek(&mut self) -> Result<u8> {
        self.ws();
        self.b.get(self.i).copied().ok_or_else(|| bad("it ends early"))
    }
    fn eat(&mut self, c: u8) -> Result<()> {
        if self.peek()? != c {
            return Err(bad(format!("expected '{}' at byte {}", c as char, self.i)));
        }
        self.i += 1;
        Ok(())
    }
    fn string(&mut self) -> Result<String> {
        self.eat(b'"')?;
        let mut out = Vec::new();
        loop {
            let c = *self.b.get(self.i).ok_or_else(|| bad("a string is not closed"))?;
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let e = *self.b.get(self.i).ok_or_else(|| bad("a string is not closed"))?;
                    self.i += 1;
                    match e {
                        b'u' => {
                            let hex = self.b.get(self.i..self.i + 4).ok_or_else(|| bad("a \\u escape is cut off"))?;
                            let code = u32::from_str_radix(std::str::from_utf8(hex).map_err(|_| bad("bad escape"))?, 16)
                                .map_err(|_| bad("bad escape"))?;
                            self.i += 4;
                            let ch = char::from_u32(code).unwrap_or('\u{fffd}');
                            out.extend_from_slice(ch.to_string().as_bytes());
                        }
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'r' => out.push(b'\r'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        other => out.push(other),
                    }
                }
                c => out.push(c),
            }
        }
        String::from_utf8(out).map_err(|_| bad("a string is not UTF-8"))
    }
    fn value(&mut self, depth: usize) -> Result<Json> {
        if depth > 8 {
            return Err(bad("it nests too deeply"));
        }
        match self.peek()? {
            b'"' => Ok(Json::Str(self.string()?)),
            b'[' => {
                self.i += 1;
                let mut v = Vec::new();
                if self.peek()? == b']' {
                    self.i += 1;
                    return Ok(Json::Arr(v));
                }
                loop {
                    v.push(self.value(depth + 1)?);
                    match self.peek()? {
                        b',' => self.i += 1,
                        b']' => {
                            self.i += 1;
                            return Ok(Json::Arr(v));
                        }
                        _ => return Err(bad(format!("expected ',' or ']' at byte {}", self.i))),
                    }
                }
            }
            b'{' => {
                self.i += 1;
                let mut v = Vec::new();
                if self.peek()? == b'}' {
                    self.i += 1;
                    return Ok(Json::Obj(v));
                }
                loop {
                    let k = self.string()?;
                    self.eat(b':')?;
                    v.push((k, self.value(depth + 1)?));
                    match self.peek()? {
                        b',' => self.i += 1,
                        b'}' => {
                            self.i += 1;
                            return Ok(Json::Obj(v));
                        }
                        _ => return Err(bad(format!("expected ',' or '}}' at byte {}", self.i))),
                    }
                }
            }
            b'0'..=b'9' => {
                let start = self.i;
                while self.i < self.b.len() && self.b[self.i].is_ascii_digit() {
                    self.i += 1;
                }
                let s = std::str::from_utf8(&self.b[start..self.i]).expect("digits");
                Ok(Json::Num(s.parse().map_err(|_| bad(format!("number {s} is too large")))?))
            }
            _ => {
                // true, false, null, negative or fractional numbers: skipped as one token.
                let start = self.i;
                while self.i < self.b.len() && !b",]}".contains(&self.b[self.i]) {
                    self.i += 1;
                }
                if self.i == start {
                    return Err(bad(format!("unexpected byte at {}", self.i)));
                }
                Ok(Json::Other)
            }
        }
    }
}

/// The tensors of a header, in the header's order, with offsets made absolute (`data_start` is
/// 8 + the header length) and checked against `file_len`: each tensor is its own storage (named
/// as the tensor), returned with the file offset of its data.
pub fn tensors(header: &[u8], data_start: u64, file_len: u64) -> Result<Vec<(String, TensorRef, u64)>> {
    let mut p = P { b: header, i: 0 };
    let Json::Obj(items) = p.value(0)? else { return Err(bad("it is not an object")) };
    let mut out = Vec::new();
    for (name, v) in items {
        if name == "__metadata__" {
            continue;
        }
        let Json::Obj(fields) = v else { return Err(bad(format!("'{name}' is not an object"))) };
        let get = |k: &str| fields.iter().find(|(f, _)| f == k).map(|(_, v)| v);
        let elem = match get("dtype") {
            Some(Json::Str(s)) if s == "F32" => Elem::F32,
            Some(Json::Str(s)) if s == "F16" => Elem::F16,
            Some(Json::Str(s)) if s == "BF16" => Elem::BF16,
            Some(Json::Str(s)) => {
                return Err(Error::invalid_model(format!(
                    "tensor '{name}' is {s}; RWKV weights are F32, F16 or BF16"
                )))
            }
            _ => return Err(bad(format!("'{name}' has no dtype"))),
        };
        let nums = |k: &str| -> Result<Vec<u64>> {
            match get(k) {
                Some(Json::Arr(a)) if a.len() <= 8 => a
                    .iter()
                    .map(|x| match x {
                        Json::Num(n) => Ok(*n),
                        _ => Err(bad(format!("'{name}' has a non-integer in {k}"))),
                    })
                    .collect(),
                _ => Err(bad(format!("'{name}' has no {k}"))),
            }
        };
        let shape = nums("shape")?;
        let offs = nums("data_offsets")?;
        let [begin, end] = offs[..] else { return Err(bad(format!("'{name}' needs two data_offsets"))) };
        let numel = shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d)).ok_or_else(|| bad(format!("'{name}' is too large")))?;
        let bytes = numel.checked_mul(elem.bytes() as u64).ok_or_else(|| bad(format!("'{name}' is too large")))?;
        if end < begin || end - begin != bytes {
            return Err(Error::invalid_model(format!(
                "tensor '{name}' has {} bytes of data but its shape {shape:?} needs {bytes}",
                end.wrapping_sub(begin)
            )));
        }
        let abs = data_start.checked_add(begin).filter(|a| a.checked_add(bytes).is_some_and(|e| e <= file_len));
        let abs = abs.ok_or_else(|| Error::invalid_model(format!("tensor '{name}' lies past the end of the file (truncated?)")))?;
        // Row-major strides.
        let mut stride = vec![1u64; shape.len()];
        for d in (0..shape.len().saturating_sub(1)).rev() {
            stride[d] = stride[d + 1] * shape[d + 1];
        }
        out.push((
            name.clone(),
            TensorRef { storage: name, elem, storage_numel: numel, offset: 0, shape, stride },
            abs,
        ));
    }
    Ok(out)
}
