//! A small, bounded pickle reader for `torch.save` archives.
//!
//! It understands the opcodes of pickle protocols 2 to 4 that `torch.save`
//! emits for containers of tensors, and only the globals needed to rebuild
//! them (`torch._utils._rebuild_tensor_v2`, `torch._utils._rebuild_parameter`,
//! `collections.OrderedDict`, the typed storage classes). Anything else is a
//! clear error naming the global. Nesting depth, the number of values built
//! and every length prefix are checked, so hostile input cannot exhaust the
//! stack or memory.

use std::collections::HashMap;

use crate::dtype::DType;
use crate::error::{Error, Result};

/// Deepest container nesting accepted.
const MAX_DEPTH: usize = 64;
/// Most values (counting every element of every container) the reader will
/// materialize in total, copies from the memo included.
const MAX_VALUES: usize = 10_000_000;

/// A storage reference from a persistent id:
/// `('storage', torch.FloatStorage, key, location, numel)`.
#[derive(Clone, Debug, PartialEq)]
pub struct StorageRef {
    pub dtype: DType,
    /// The entry name under `<prefix>/data/`.
    pub key: String,
    pub location: String,
    /// Number of elements.
    pub numel: i64,
}

/// A tensor rebuilt by `_rebuild_tensor_v2` (or `_rebuild_parameter`).
#[derive(Clone, Debug, PartialEq)]
pub struct TensorRef {
    pub storage: StorageRef,
    pub storage_offset: i64,
    pub sizes: Vec<i64>,
    pub strides: Vec<i64>,
    pub requires_grad: bool,
    pub is_param: bool,
}

/// A decoded pickle value.
#[derive(Clone, Debug, PartialEq)]
pub enum PickleValue {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<PickleValue>),
    List(Vec<PickleValue>),
    /// A dict or `OrderedDict`, in insertion order.
    Dict(Vec<(PickleValue, PickleValue)>),
    /// A class or function reference, `module.name`.
    Global(String, String),
    Storage(StorageRef),
    Tensor(TensorRef),
}

impl PickleValue {
    fn kind(&self) -> &'static str {
        match self {
            PickleValue::None => "None",
            PickleValue::Bool(_) => "bool",
            PickleValue::Int(_) => "int",
            PickleValue::Float(_) => "float",
            PickleValue::Str(_) => "str",
            PickleValue::Bytes(_) => "bytes",
            PickleValue::Tuple(_) => "tuple",
            PickleValue::List(_) => "list",
            PickleValue::Dict(_) => "dict",
            PickleValue::Global(..) => "global",
            PickleValue::Storage(_) => "storage",
            PickleValue::Tensor(_) => "tensor",
        }
    }

    /// Every tensor in the tree, depth first, in order, with a path naming
    /// it: dict keys (strings) and sequence indices joined by `.`.
    pub fn tensors(&self) -> Vec<(String, &TensorRef)> {
        let mut out = Vec::new();
        self.collect(String::new(), &mut out);
        out
    }

    fn collect<'a>(&'a self, path: String, out: &mut Vec<(String, &'a TensorRef)>) {
        let join = |p: &str, k: &str| {
            if p.is_empty() {
                k.to_string()
            } else {
                format!("{p}.{k}")
            }
        };
        match self {
            PickleValue::Tensor(t) => out.push((path, t)),
            PickleValue::Tuple(v) | PickleValue::List(v) => {
                for (i, x) in v.iter().enumerate() {
                    x.collect(join(&path, &i.to_string()), out);
                }
            }
            PickleValue::Dict(kv) => {
                for (i, (k, x)) in kv.iter().enumerate() {
                    let key = match k {
                        PickleValue::Str(s) => s.clone(),
                        PickleValue::Int(n) => n.to_string(),
                        _ => i.to_string(),
                    };
                    x.collect(join(&path, &key), out);
                }
            }
            _ => {}
        }
    }
}

/// The element type of a typed storage class such as `torch.FloatStorage`.
pub fn storage_dtype(class: &str) -> Option<DType> {
    Some(match class {
        "FloatStorage" => DType::F32,
        "DoubleStorage" => DType::F64,
        "HalfStorage" => DType::F16,
        "BFloat16Storage" => DType::BF16,
        "LongStorage" => DType::I64,
        "IntStorage" => DType::I32,
        "ShortStorage" => DType::I16,
        "CharStorage" => DType::I8,
        "ByteStorage" => DType::U8,
        "BoolStorage" => DType::Bool,
        _ => return None,
    })
}

#[derive(Clone, Debug)]
enum Item {
    Mark,
    Val {
        v: PickleValue,
        depth: usize,
        size: usize,
    },
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    what: &'a str,
    stack: Vec<Item>,
    memo: HashMap<u32, (PickleValue, usize, usize)>,
    budget: usize,
}

fn err(what: &str, msg: impl Into<String>) -> Error {
    Error::archive(what, format!("pickle: {}", msg.into()))
}

/// Parses a pickle. `what` names the entry in error messages.
pub fn parse(data: &[u8], what: &str) -> Result<PickleValue> {
    let mut r = Reader {
        data,
        pos: 0,
        what,
        stack: Vec::new(),
        memo: HashMap::new(),
        budget: MAX_VALUES,
    };
    r.run()
}

impl<'a> Reader<'a> {
    fn e(&self, msg: impl Into<String>) -> Error {
        err(self.what, format!("at byte {}: {}", self.pos, msg.into()))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.data.len())
            .ok_or_else(|| self.e(format!("truncated (wanted {n} more bytes)")))?;
        let data: &'a [u8] = self.data;
        let s = data.get(self.pos..end).unwrap_or(&[]);
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let b = self.take(N)?;
        b.try_into().map_err(|_| self.e("truncated"))
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?.first().copied().unwrap_or(0))
    }

    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn line(&mut self) -> Result<String> {
        let rest = self.data.get(self.pos..).unwrap_or(&[]);
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| self.e("unterminated text line"))?;
        let s = String::from_utf8_lossy(rest.get(..n).unwrap_or(&[])).into_owned();
        self.pos += n + 1;
        Ok(s)
    }

    fn string(&mut self, n: usize) -> Result<String> {
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| self.e("invalid UTF-8 string"))
    }

    fn charge(&mut self, n: usize) -> Result<()> {
        self.budget = self
            .budget
            .checked_sub(n)
            .ok_or_else(|| self.e("too many values"))?;
        Ok(())
    }

    fn push(&mut self, v: PickleValue) -> Result<()> {
        self.push_sized(v, 0, 1)
    }

    fn push_sized(&mut self, v: PickleValue, depth: usize, size: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(self.e("values nested too deeply"));
        }
        self.charge(1)?;
        self.stack.push(Item::Val { v, depth, size });
        Ok(())
    }

    fn pop(&mut self) -> Result<(PickleValue, usize, usize)> {
        match self.stack.pop() {
            Some(Item::Val { v, depth, size }) => Ok((v, depth, size)),
            Some(Item::Mark) => Err(self.e("unexpected mark")),
            None => Err(self.e("stack underflow")),
        }
    }

    /// Pops everything above the topmost mark (and the mark).
    fn pop_mark(&mut self) -> Result<Vec<(PickleValue, usize, usize)>> {
        let at = self
            .stack
            .iter()
            .rposition(|i| matches!(i, Item::Mark))
            .ok_or_else(|| self.e("no mark on the stack"))?;
        let items = self.stack.split_off(at);
        let mut out = Vec::with_capacity(items.len());
        for it in items.into_iter().skip(1) {
            if let Item::Val { v, depth, size } = it {
                out.push((v, depth, size));
            }
        }
        Ok(out)
    }

    fn top_mut(&mut self) -> Result<(&mut PickleValue, &mut usize, &mut usize)> {
        let pos = self.pos;
        match self.stack.last_mut() {
            Some(Item::Val { v, depth, size }) => Ok((v, depth, size)),
            _ => Err(err(
                self.what,
                format!("at byte {pos}: expected a value on the stack"),
            )),
        }
    }

    fn push_seq(&mut self, items: Vec<(PickleValue, usize, usize)>, tuple: bool) -> Result<()> {
        let depth = 1 + items.iter().map(|i| i.1).max().unwrap_or(0);
        let size = 1 + items.iter().map(|i| i.2).sum::<usize>();
        let vals = items.into_iter().map(|i| i.0).collect();
        let v = if tuple {
            PickleValue::Tuple(vals)
        } else {
            PickleValue::List(vals)
        };
        self.push_sized(v, depth, size)
    }

    fn extend_top(&mut self, items: Vec<(PickleValue, usize, usize)>, what: &str) -> Result<()> {
        let add_depth = 1 + items.iter().map(|i| i.1).max().unwrap_or(0);
        let add_size: usize = items.iter().map(|i| i.2).sum();
        let pos = self.pos;
        let name = self.what;
        let (top, depth, size) = self.top_mut()?;
        *depth = (*depth).max(add_depth);
        *size += add_size;
        let too_deep = *depth > MAX_DEPTH;
        match (what, top) {
            ("append", PickleValue::List(v)) => v.extend(items.into_iter().map(|i| i.0)),
            ("setitem", PickleValue::Dict(kv)) => {
                let mut it = items.into_iter();
                while let Some((k, _, _)) = it.next() {
                    let (v, _, _) = it
                        .next()
                        .ok_or_else(|| err(name, format!("at byte {pos}: odd SETITEMS")))?;
                    kv.push((k, v));
                }
            }
            (w, other) => {
                return Err(err(
                    name,
                    format!("at byte {pos}: cannot {w} to a {}", other.kind()),
                ))
            }
        }
        if too_deep {
            return Err(self.e("values nested too deeply"));
        }
        Ok(())
    }

    fn memo_put(&mut self, key: u32) -> Result<()> {
        let (v, depth, size) = match self.stack.last() {
            Some(Item::Val { v, depth, size }) => (v.clone(), *depth, *size),
            _ => return Err(self.e("memoize without a value")),
        };
        self.charge(size)?;
        self.memo.insert(key, (v, depth, size));
        Ok(())
    }

    fn memo_get(&mut self, key: u32) -> Result<()> {
        let (v, depth, size) = self
            .memo
            .get(&key)
            .cloned()
            .ok_or_else(|| self.e(format!("memo key {key} not found")))?;
        self.charge(size)?;
        self.stack.push(Item::Val { v, depth, size });
        Ok(())
    }

    fn int_arg(v: &PickleValue) -> Option<i64> {
        match v {
            PickleValue::Int(i) => Some(*i),
            PickleValue::Bool(b) => Some(*b as i64),
            _ => None,
        }
    }

    fn ints(&self, v: &PickleValue, what: &str) -> Result<Vec<i64>> {
        match v {
            PickleValue::Tuple(xs) | PickleValue::List(xs) => xs
                .iter()
                .map(|x| Self::int_arg(x).ok_or_else(|| self.e(format!("{what}: not an int"))))
                .collect(),
            other => Err(self.e(format!("{what}: expected a tuple, found {}", other.kind()))),
        }
    }

    fn persistent_load(&self, pid: PickleValue) -> Result<PickleValue> {
        let items = match pid {
            PickleValue::Tuple(v) => v,
            other => return Err(self.e(format!("persistent id is a {}", other.kind()))),
        };
        match items.as_slice() {
            [PickleValue::Str(tag), PickleValue::Global(module, class), PickleValue::Str(key), PickleValue::Str(location), numel]
                if tag == "storage" =>
            {
                let dtype = if module == "torch" {
                    storage_dtype(class)
                } else {
                    None
                }
                .ok_or_else(|| self.e(format!("unsupported storage type {module}.{class}")))?;
                let numel = Self::int_arg(numel)
                    .filter(|n| *n >= 0)
                    .ok_or_else(|| self.e("storage size is not a non-negative int"))?;
                Ok(PickleValue::Storage(StorageRef {
                    dtype,
                    key: key.clone(),
                    location: location.clone(),
                    numel,
                }))
            }
            _ => Err(self.e("unsupported persistent id (expected a storage tuple)")),
        }
    }

    fn check_global(&self, module: &str, name: &str) -> Result<()> {
        let ok = matches!(
            (module, name),
            ("torch._utils", "_rebuild_tensor_v2")
                | ("torch._utils", "_rebuild_parameter")
                | ("torch._utils", "_rebuild_parameter_with_state")
                | ("collections", "OrderedDict")
        ) || (module == "torch" && storage_dtype(name).is_some());
        if ok {
            Ok(())
        } else {
            Err(self.e(format!("unsupported global {module}.{name}")))
        }
    }

    fn reduce(&self, callable: PickleValue, args: PickleValue) -> Result<PickleValue> {
        let (module, name) = match callable {
            PickleValue::Global(m, n) => (m, n),
            other => return Err(self.e(format!("cannot call a {}", other.kind()))),
        };
        let args = match args {
            PickleValue::Tuple(a) => a,
            other => return Err(self.e(format!("call arguments are a {}", other.kind()))),
        };
        match (module.as_str(), name.as_str()) {
            ("collections", "OrderedDict") => match args.into_iter().next() {
                None => Ok(PickleValue::Dict(Vec::new())),
                Some(PickleValue::List(pairs)) | Some(PickleValue::Tuple(pairs)) => {
                    let mut kv = Vec::new();
                    for p in pairs {
                        match p {
                            PickleValue::Tuple(mut t) if t.len() == 2 => {
                                let v = t.pop().unwrap_or(PickleValue::None);
                                let k = t.pop().unwrap_or(PickleValue::None);
                                kv.push((k, v));
                            }
                            _ => return Err(self.e("OrderedDict item is not a pair")),
                        }
                    }
                    Ok(PickleValue::Dict(kv))
                }
                Some(other) => Err(self.e(format!("OrderedDict of a {}", other.kind()))),
            },
            ("torch._utils", "_rebuild_tensor_v2") => {
                if args.len() < 6 {
                    return Err(self.e("_rebuild_tensor_v2 takes at least 6 arguments"));
                }
                let mut it = args.into_iter();
                let storage = match it.next() {
                    Some(PickleValue::Storage(s)) => s,
                    _ => return Err(self.e("_rebuild_tensor_v2: first argument is not a storage")),
                };
                let offset = it
                    .next()
                    .as_ref()
                    .and_then(Self::int_arg)
                    .ok_or_else(|| self.e("_rebuild_tensor_v2: bad storage offset"))?;
                let sizes = self.ints(&it.next().unwrap_or(PickleValue::None), "size")?;
                let strides = self.ints(&it.next().unwrap_or(PickleValue::None), "stride")?;
                let requires_grad = matches!(it.next(), Some(PickleValue::Bool(true)));
                if sizes.len() != strides.len() {
                    return Err(self.e("_rebuild_tensor_v2: size and stride lengths differ"));
                }
                Ok(PickleValue::Tensor(TensorRef {
                    storage,
                    storage_offset: offset,
                    sizes,
                    strides,
                    requires_grad,
                    is_param: false,
                }))
            }
            ("torch._utils", "_rebuild_parameter")
            | ("torch._utils", "_rebuild_parameter_with_state") => {
                let mut it = args.into_iter();
                match (it.next(), it.next()) {
                    (Some(PickleValue::Tensor(mut t)), rg) => {
                        t.requires_grad = matches!(rg, Some(PickleValue::Bool(true)));
                        t.is_param = true;
                        Ok(PickleValue::Tensor(t))
                    }
                    _ => Err(self.e(format!("{name}: first argument is not a tensor"))),
                }
            }
            (m, n) => Err(self.e(format!("unsupported call to {m}.{n}"))),
        }
    }

    fn run(&mut self) -> Result<PickleValue> {
        loop {
            let op = self.u8()?;
            match op {
                0x80 => {
                    let proto = self.u8()?;
                    if proto > 5 {
                        return Err(self.e(format!("unsupported protocol {proto}")));
                    }
                }
                0x95 => {
                    // FRAME: an 8-byte length hint.
                    self.u64()?;
                }
                b'.' => {
                    let (v, _, _) = self.pop()?;
                    return Ok(v);
                }
                b'(' => self.stack.push(Item::Mark),
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let top = self
                        .stack
                        .last()
                        .cloned()
                        .ok_or_else(|| self.e("DUP on an empty stack"))?;
                    if let Item::Val { size, .. } = &top {
                        self.charge(*size)?;
                    }
                    self.stack.push(top);
                }
                b'N' => self.push(PickleValue::None)?,
                0x88 => self.push(PickleValue::Bool(true))?,
                0x89 => self.push(PickleValue::Bool(false))?,
                b'J' => {
                    let v = self.u32()? as i32;
                    self.push(PickleValue::Int(v as i64))?
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push(PickleValue::Int(v as i64))?
                }
                b'M' => {
                    let v = self.u16()?;
                    self.push(PickleValue::Int(v as i64))?
                }
                0x8a => {
                    let n = self.u8()? as usize;
                    let b = self.take(n)?;
                    if n > 8 {
                        return Err(self.e("integer too large"));
                    }
                    let neg = b.last().is_some_and(|x| x & 0x80 != 0);
                    let mut a = if neg { [0xffu8; 8] } else { [0u8; 8] };
                    a.get_mut(..n).unwrap_or(&mut []).copy_from_slice(b);
                    self.push(PickleValue::Int(i64::from_le_bytes(a)))?
                }
                b'I' => {
                    let l = self.line()?;
                    let v = match l.as_str() {
                        "01" => PickleValue::Bool(true),
                        "00" => PickleValue::Bool(false),
                        s => PickleValue::Int(
                            s.parse().map_err(|_| self.e(format!("bad INT {s:?}")))?,
                        ),
                    };
                    self.push(v)?
                }
                b'G' => {
                    let a = self.array()?;
                    self.push(PickleValue::Float(f64::from_be_bytes(a)))?
                }
                b'X' => {
                    let n = self.u32()? as usize;
                    let s = self.string(n)?;
                    self.push(PickleValue::Str(s))?
                }
                0x8c => {
                    let n = self.u8()? as usize;
                    let s = self.string(n)?;
                    self.push(PickleValue::Str(s))?
                }
                0x8d => {
                    let n = usize::try_from(self.u64()?).map_err(|_| self.e("length too large"))?;
                    let s = self.string(n)?;
                    self.push(PickleValue::Str(s))?
                }
                b'T' => {
                    let n = self.u32()? as usize;
                    let s = self.take(n)?.to_vec();
                    self.push(PickleValue::Str(String::from_utf8_lossy(&s).into_owned()))?
                }
                b'U' => {
                    let n = self.u8()? as usize;
                    let s = self.take(n)?.to_vec();
                    self.push(PickleValue::Str(String::from_utf8_lossy(&s).into_owned()))?
                }
                b'B' => {
                    let n = self.u32()? as usize;
                    let s = self.take(n)?.to_vec();
                    self.push(PickleValue::Bytes(s))?
                }
                b'C' => {
                    let n = self.u8()? as usize;
                    let s = self.take(n)?.to_vec();
                    self.push(PickleValue::Bytes(s))?
                }
                b'}' => self.push(PickleValue::Dict(Vec::new()))?,
                b']' => self.push(PickleValue::List(Vec::new()))?,
                b')' => self.push(PickleValue::Tuple(Vec::new()))?,
                b't' => {
                    let items = self.pop_mark()?;
                    self.push_seq(items, true)?
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push_seq(items, false)?
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    self.push(PickleValue::Dict(Vec::new()))?;
                    self.extend_top(items, "setitem")?
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.push_seq(items, true)?
                }
                b'a' => {
                    let v = self.pop()?;
                    self.extend_top(vec![v], "append")?
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    self.extend_top(items, "append")?
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.extend_top(vec![k, v], "setitem")?
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.extend_top(items, "setitem")?
                }
                b'q' => {
                    let k = self.u8()? as u32;
                    self.memo_put(k)?
                }
                b'r' => {
                    let k = self.u32()?;
                    self.memo_put(k)?
                }
                0x94 => {
                    let k = u32::try_from(self.memo.len()).map_err(|_| self.e("memo full"))?;
                    self.memo_put(k)?
                }
                b'h' => {
                    let k = self.u8()? as u32;
                    self.memo_get(k)?
                }
                b'j' => {
                    let k = self.u32()?;
                    self.memo_get(k)?
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.check_global(&module, &name)?;
                    self.push(PickleValue::Global(module, name))?
                }
                0x93 => {
                    let (name, _, _) = self.pop()?;
                    let (module, _, _) = self.pop()?;
                    match (module, name) {
                        (PickleValue::Str(m), PickleValue::Str(n)) => {
                            self.check_global(&m, &n)?;
                            self.push(PickleValue::Global(m, n))?
                        }
                        _ => return Err(self.e("STACK_GLOBAL needs two strings")),
                    }
                }
                b'Q' => {
                    let (pid, _, _) = self.pop()?;
                    let v = self.persistent_load(pid)?;
                    self.push(v)?
                }
                b'R' | 0x81 => {
                    let (args, _, _) = self.pop()?;
                    let (callable, _, _) = self.pop()?;
                    let v = self.reduce(callable, args)?;
                    self.push(v)?
                }
                b'b' => {
                    // BUILD: object state (e.g. tensor metadata); ignored.
                    self.pop()?;
                    self.top_mut()?;
                }
                other => {
                    return Err(self.e(format!("unsupported opcode 0x{other:02x}")));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `OrderedDict([('w', _rebuild_tensor_v2(storage('0', float, 6), 0, (2, 3), (3, 1), False, OrderedDict()))])`
    /// as protocol 2, built by hand.
    pub(crate) fn tensor_dict_pickle() -> Vec<u8> {
        let mut p = vec![0x80, 2];
        p.extend(b"ccollections\nOrderedDict\n)R");
        p.extend(b"(X\x01\x00\x00\x00w");
        p.extend(b"ctorch._utils\n_rebuild_tensor_v2\n(");
        p.extend(b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x06tQ");
        p.extend(b"K\x00K\x02K\x03\x86K\x03K\x01\x86\x89");
        p.extend(b"ccollections\nOrderedDict\n)R");
        p.extend(b"tRu.");
        p
    }

    #[test]
    fn tensor_dict() {
        let v = parse(&tensor_dict_pickle(), "t").unwrap();
        let ts = v.tensors();
        assert_eq!(ts.len(), 1);
        assert_eq!(ts[0].0, "w");
        assert_eq!(ts[0].1.sizes, vec![2, 3]);
        assert_eq!(ts[0].1.storage.numel, 6);
    }

    #[test]
    fn bad_inputs() {
        let e = parse(b"\x80\x02cos\nsystem\n.", "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("os.system"), "{e}");
        assert!(parse(b"", "t").is_err());
        assert!(parse(b"\x80\x02X\xff\xff\xff\xff", "t").is_err());
        assert!(parse(b"\x80\x02\xff", "t").is_err());
        // Deep nesting.
        let mut deep = vec![0x80, 2];
        deep.extend(std::iter::repeat_n(b']', 100));
        deep.extend(std::iter::repeat_n(b'a', 99));
        deep.push(b'.');
        assert!(parse(&deep, "t").is_err());
        // Memo doubling.
        let mut bomb = vec![0x80, 2, b']', b'q', 0];
        for _ in 0..60 {
            bomb.extend(b"(h\x00h\x00lq\x00");
        }
        bomb.push(b'.');
        assert!(parse(&bomb, "t").is_err());
    }
}
