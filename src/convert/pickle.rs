//! A restricted reader for the pickle in a PyTorch checkpoint (`data.pkl`): the opcodes and the few
//! callables that `torch.save` of a state dict produces, and nothing else. It is an interpreter of
//! data, never of code: the callables it accepts (an ordered dict, tensor rebuilding, storage types)
//! are recognised by name and turned into plain values here; any other name, and any opcode outside
//! the subset, is refused before anything happens. Allocation is bounded by the pickle's length
//! (every opcode reads at least one byte and pushes at most one value; strings are checked against
//! the bytes left).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use crate::error::{Error, Result};

/// A storage's element type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elem {
    F32,
    F16,
    BF16,
}

impl Elem {
    pub fn bytes(self) -> usize {
        match self {
            Elem::F32 => 4,
            Elem::F16 | Elem::BF16 => 2,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Elem::F32 => "float32",
            Elem::F16 => "float16",
            Elem::BF16 => "bfloat16",
        }
    }
}

/// A tensor as the pickle describes it: a view of a storage (an archive entry `data/<key>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorRef {
    pub storage: String,
    pub elem: Elem,
    /// Elements in the storage, as the pickle says.
    pub storage_numel: u64,
    /// In elements.
    pub offset: u64,
    pub shape: Vec<u64>,
    pub stride: Vec<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Global {
    OrderedDict,
    RebuildTensorV2,
    RebuildTensor,
    RebuildParameter,
    Storage(Option<Elem>),
}

#[derive(Debug, Clone)]
enum Value {
    None,
    Bool,
    Int(i64),
    Float,
    Str(Rc<str>),
    Tuple(Rc<Items>),
    List(Rc<RefCell<Items>>),
    /// Keys and values, alternating.
    Dict(Rc<RefCell<Items>>),
    Global(Global),
    Storage(Rc<(String, Option<Elem>, u64)>),
    Tensor(Rc<TensorRef>),
}

/// The items of a tuple, list or dict. Dropped without recursion: a pickle can nest a million
/// tuples in a million bytes, and a recursive drop of that would overflow the stack.
#[derive(Debug, Default)]
struct Items(Vec<Value>);

impl std::ops::Deref for Items {
    type Target = Vec<Value>;
    fn deref(&self) -> &Vec<Value> {
        &self.0
    }
}

impl std::ops::DerefMut for Items {
    fn deref_mut(&mut self) -> &mut Vec<Value> {
        &mut self.0
    }
}

impl Drop for Items {
    fn drop(&mut self) {
        let mut work = std::mem::take(&mut self.0);
        while let Some(v) = work.pop() {
            match v {
                Value::Tuple(rc) => {
                    if let Ok(mut inner) = Rc::try_unwrap(rc) {
                        work.append(&mut inner.0);
                    }
                }
                Value::List(rc) | Value::Dict(rc) => {
                    if let Ok(cell) = Rc::try_unwrap(rc) {
                        work.append(&mut cell.into_inner().0);
                    }
                }
                _ => {}
            }
        }
    }
}

fn items(v: Vec<Value>) -> Items {
    Items(v)
}

fn empty() -> Rc<RefCell<Items>> {
    Rc::new(RefCell::new(Items::default()))
}

/// The most opcodes a pickle may run: each makes at most one value, so this bounds memory
/// (a state dict needs about 20 per tensor).
const MAX_OPS: usize = 4 << 20;

fn bad(msg: impl Into<String>) -> Error {
    Error::invalid_model(format!("the checkpoint's pickle (data.pkl) {}", msg.into()))
}

fn global(module: &str, name: &str) -> Result<Global> {
    Ok(match (module, name) {
        ("collections", "OrderedDict") => Global::OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2") => Global::RebuildTensorV2,
        ("torch._utils", "_rebuild_tensor") => Global::RebuildTensor,
        ("torch._utils", "_rebuild_parameter") => Global::RebuildParameter,
        ("torch", "FloatStorage") => Global::Storage(Some(Elem::F32)),
        ("torch", "HalfStorage") => Global::Storage(Some(Elem::F16)),
        ("torch", "BFloat16Storage") => Global::Storage(Some(Elem::BF16)),
        // Other tensor types are named so that the error says which dtype it is.
        ("torch", n) if n.ends_with("Storage") && n.len() < 32 => Global::Storage(None),
        _ => {
            return Err(bad(format!(
                "refers to '{module}.{name}', which a PyTorch state dict never does; refused (nothing was run)"
            )))
        }
    })
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.b.len() - self.at {
            return Err(bad("ends in the middle of an opcode (truncated)"));
        }
        let s = &self.b[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        let s = self.take(2)?;
        Ok(u16::from_le_bytes([s[0], s[1]]))
    }
    fn u32(&mut self) -> Result<u32> {
        let s = self.take(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn u64(&mut self) -> Result<u64> {
        let s = self.take(8)?;
        Ok(u64::from_le_bytes(s.try_into().expect("8 bytes")))
    }
    fn line(&mut self) -> Result<&'a str> {
        let rest = &self.b[self.at..];
        let n = rest.iter().take(256).position(|&c| c == b'\n').ok_or_else(|| bad("has a malformed GLOBAL"))?;
        let s = std::str::from_utf8(&rest[..n]).map_err(|_| bad("has a GLOBAL that is not text"))?;
        self.at += n + 1;
        Ok(s)
    }
    fn utf8(&mut self, n: usize) -> Result<Rc<str>> {
        let s = self.take(n)?;
        Ok(Rc::from(std::str::from_utf8(s).map_err(|_| bad("has a string that is not UTF-8"))?))
    }
}

fn as_u64(v: &Value, what: &str) -> Result<u64> {
    match v {
        Value::Int(n) if *n >= 0 => Ok(*n as u64),
        _ => Err(bad(format!("has a tensor whose {what} is not a non-negative integer"))),
    }
}

fn int_tuple(v: &Value, what: &str) -> Result<Vec<u64>> {
    match v {
        Value::Tuple(t) if t.len() <= 8 => t.iter().map(|x| as_u64(x, what)).collect(),
        _ => Err(bad(format!("has a tensor whose {what} is not a tuple of up to 8 integers"))),
    }
}

fn rebuild_tensor(args: &[Value]) -> Result<Value> {
    if args.len() < 4 {
        return Err(bad("rebuilds a tensor with too few arguments"));
    }
    let Value::Storage(st) = &args[0] else { return Err(bad("rebuilds a tensor from something that is not a storage")) };
    let (key, elem, numel) = (&st.0, st.1, st.2);
    let elem = elem.ok_or_else(|| {
        Error::invalid_model("the checkpoint has a tensor type other than float32, float16 and bfloat16 (RWKV weights are floats)")
    })?;
    let shape = int_tuple(&args[2], "size")?;
    let stride = int_tuple(&args[3], "stride")?;
    if shape.len() != stride.len() {
        return Err(bad("has a tensor whose size and stride differ in length"));
    }
    Ok(Value::Tensor(Rc::new(TensorRef {
        storage: key.clone(),
        elem,
        storage_numel: numel,
        offset: as_u64(&args[1], "offset")?,
        shape,
        stride,
    })))
}

/// Reads a state dict: (name, tensor) in the pickle's order. Anything else is `invalid_model`.
pub fn read_state_dict(bytes: &[u8]) -> Result<Vec<(String, TensorRef)>> {
    let mut r = Reader { b: bytes, at: 0 };
    let mut stack: Vec<Value> = Vec::new();
    let mut marks: Vec<usize> = Vec::new();
    let mut memo: HashMap<u32, Value> = HashMap::new();
    let put = |memo: &mut HashMap<u32, Value>, i: usize, v: Value| -> Result<()> {
        memo.insert(u32::try_from(i).map_err(|_| bad("memoizes at an index beyond 2^32"))?, v);
        Ok(())
    };
    let mut ops = 0usize;
    fn pop(stack: &mut Vec<Value>) -> Result<Value> {
        stack.pop().ok_or_else(|| bad("pops an empty stack"))
    }
    fn since_mark(stack: &mut Vec<Value>, marks: &mut Vec<usize>) -> Result<Vec<Value>> {
        let m = marks.pop().ok_or_else(|| bad("has no MARK where one is needed"))?;
        if m > stack.len() {
            return Err(bad("has a MARK below the stack"));
        }
        Ok(stack.split_off(m))
    }
    loop {
        let op = r.u8()?;
        ops += 1;
        if ops > MAX_OPS {
            return Err(bad("is too long for a state dict"));
        }
        match op {
            0x80 => {
                let p = r.u8()?;
                if p > 5 {
                    return Err(bad(format!("uses pickle protocol {p}")));
                }
            }
            0x95 => {
                r.u64()?;
            }
            b'.' => break,
            b'(' => marks.push(stack.len()),
            b'}' => stack.push(Value::Dict(empty())),
            b']' => stack.push(Value::List(empty())),
            b')' => stack.push(Value::Tuple(Rc::new(Items::default()))),
            b't' => {
                let taken = since_mark(&mut stack, &mut marks)?;
                stack.push(Value::Tuple(Rc::new(items(taken))));
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                if stack.len() < n {
                    return Err(bad("builds a tuple from an empty stack"));
                }
                let taken = stack.split_off(stack.len() - n);
                stack.push(Value::Tuple(Rc::new(items(taken))));
            }
            b'X' => {
                let n = r.u32()? as usize;
                stack.push(Value::Str(r.utf8(n)?));
            }
            0x8c => {
                let n = r.u8()? as usize;
                stack.push(Value::Str(r.utf8(n)?));
            }
            0x8d => {
                let n = usize::try_from(r.u64()?).unwrap_or(usize::MAX);
                stack.push(Value::Str(r.utf8(n)?));
            }
            b'J' => stack.push(Value::Int(r.u32()? as i32 as i64)),
            b'K' => stack.push(Value::Int(r.u8()? as i64)),
            b'M' => stack.push(Value::Int(r.u16()? as i64)),
            0x8a => {
                let n = r.u8()? as usize;
                let s = r.take(n)?;
                if n > 8 {
                    return Err(bad("has an integer wider than 64 bits"));
                }
                let mut v: i64 = 0;
                for (i, &b) in s.iter().enumerate() {
                    v |= (b as i64) << (8 * i);
                }
                if n > 0 && n < 8 && s[n - 1] & 0x80 != 0 {
                    v -= 1i64 << (8 * n);
                }
                stack.push(Value::Int(v));
            }
            b'G' => {
                r.take(8)?;
                stack.push(Value::Float);
            }
            b'N' => stack.push(Value::None),
            0x88 => stack.push(Value::Bool),
            0x89 => stack.push(Value::Bool),
            b'q' => {
                let i = r.u8()? as usize;
                let v = stack.last().cloned().ok_or_else(|| bad("memoizes an empty stack"))?;
                put(&mut memo, i, v)?;
            }
            b'r' => {
                let i = r.u32()? as usize;
                let v = stack.last().cloned().ok_or_else(|| bad("memoizes an empty stack"))?;
                put(&mut memo, i, v)?;
            }
            0x94 => {
                let v = stack.last().cloned().ok_or_else(|| bad("memoizes an empty stack"))?;
                let i = memo.len();
                put(&mut memo, i, v)?;
            }
            b'h' | b'j' => {
                let i = if op == b'h' { r.u8()? as usize } else { r.u32()? as usize };
                let v = u32::try_from(i).ok().and_then(|i| memo.get(&i)).cloned().ok_or_else(|| bad(format!("reads memo {i}, which was never stored")))?;
                stack.push(v);
            }
            b'c' => {
                let module = r.line()?;
                let name = r.line()?;
                stack.push(Value::Global(global(module, name)?));
            }
            0x93 => {
                let name = pop(&mut stack)?;
                let module = pop(&mut stack)?;
                match (module, name) {
                    (Value::Str(m), Value::Str(n)) => stack.push(Value::Global(global(&m, &n)?)),
                    _ => return Err(bad("has a STACK_GLOBAL without names")),
                }
            }
            b'Q' => {
                // A storage: ('storage', storage type, key, location, numel).
                let pid = pop(&mut stack)?;
                let Value::Tuple(t) = pid else { return Err(bad("has a persistent id that is not a tuple")) };
                match &t[..] {
                    [Value::Str(kind), Value::Global(Global::Storage(elem)), Value::Str(key), Value::Str(_), numel]
                        if &**kind == "storage" =>
                    {
                        let numel = as_u64(numel, "storage size")?;
                        stack.push(Value::Storage(Rc::new((key.to_string(), *elem, numel))));
                    }
                    _ => return Err(bad("has a persistent id that is not a tensor storage")),
                }
            }
            b'R' => {
                let args = pop(&mut stack)?;
                let f = pop(&mut stack)?;
                let Value::Tuple(args) = args else { return Err(bad("calls with arguments that are not a tuple")) };
                let v = match f {
                    Value::Global(Global::OrderedDict) if args.is_empty() => Value::Dict(empty()),
                    Value::Global(Global::RebuildTensorV2 | Global::RebuildTensor) => rebuild_tensor(&args)?,
                    Value::Global(Global::RebuildParameter) => match args.first() {
                        Some(t @ Value::Tensor(_)) => t.clone(),
                        _ => return Err(bad("rebuilds a parameter from something that is not a tensor")),
                    },
                    _ => return Err(bad("calls something other than the tensor rebuilding functions; refused (nothing was run)")),
                };
                stack.push(v);
            }
            b'b' => {
                // BUILD: only an ordered dict's attributes (`_metadata`), which are dropped.
                let _state = pop(&mut stack)?;
                match stack.last() {
                    Some(Value::Dict(_)) => {}
                    _ => return Err(bad("sets the state of something other than a dict; refused")),
                }
            }
            b's' | b'u' => {
                let taken = if op == b's' {
                    if stack.len() < 2 {
                        return Err(bad("sets an item from an empty stack"));
                    }
                    stack.split_off(stack.len() - 2)
                } else {
                    since_mark(&mut stack, &mut marks)?
                };
                if taken.len() % 2 != 0 {
                    return Err(bad("sets items from an odd number of values"));
                }
                let Some(Value::Dict(d)) = stack.last() else { return Err(bad("sets items on something that is not a dict")) };
                d.borrow_mut().extend(taken);
            }
            b'a' | b'e' => {
                let taken = if op == b'a' { vec![pop(&mut stack)?] } else { since_mark(&mut stack, &mut marks)? };
                let Some(Value::List(l)) = stack.last() else { return Err(bad("appends to something that is not a list")) };
                l.borrow_mut().extend(taken);
            }
            b'0' => {
                pop(&mut stack)?;
            }
            _ => return Err(bad(format!("uses opcode 0x{op:02x}, which PyTorch state dicts do not; refused (nothing was run)"))),
        }
    }
    let top = stack.pop().ok_or_else(|| bad("is empty"))?;
    let Value::Dict(d) = top else { return Err(bad("holds something other than a state dict")) };
    let d = d.borrow();
    let mut out = Vec::with_capacity(d.len() / 2);
    for kv in d.chunks_exact(2) {
        let (k, v) = (&kv[0], &kv[1]);
        let Value::Str(k) = k else { return Err(bad("has a key that is not a string")) };
        match v {
            Value::Tensor(t) => out.push((k.to_string(), (**t).clone())),
            _ => {
                return Err(Error::invalid_model(format!(
                    "'{k}' in the checkpoint is not a tensor: expected a state dict of tensors (an RWKV .pth)"
                )))
            }
        }
    }
    Ok(out)
}
