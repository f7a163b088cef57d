//! Reads the text form written by [`super::print`] back into a [`Program`].
//!
//! `//` starts a comment that runs to the end of the line.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::sym::{SymExpr, SymRange};
use crate::DType;

use super::graph::{
    Arg, Graph, NamedArg, Node, NodeMeta, SubGraph, TensorType, ValueId, ValueType,
};
use super::op::Op;
use super::program::{InputKind, InputSpec, OutputKind, OutputSpec, Program, Signature};

pub fn parse_program(text: &str) -> Result<Program> {
    let mut p = Parser {
        s: text.as_bytes(),
        pos: 0,
    };
    let mut prog = Program::default();
    let mut ranges = BTreeMap::new();
    p.parse_body(
        &mut prog.graph,
        Some(&mut prog.signature),
        Some(&mut ranges),
        false,
    )?;
    prog.range_constraints = ranges;
    Ok(prog)
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'.'
}

impl<'a> Parser<'a> {
    fn line(&self) -> usize {
        1 + self.s[..self.pos.min(self.s.len())]
            .iter()
            .filter(|&&c| c == b'\n')
            .count()
    }

    fn err<T>(&self, msg: impl Into<String>) -> Result<T> {
        Err(Error::Parse {
            line: self.line(),
            msg: msg.into(),
        })
    }

    fn skip_ws(&mut self) {
        loop {
            while self.pos < self.s.len() && self.s[self.pos].is_ascii_whitespace() {
                self.pos += 1;
            }
            if self.s[self.pos..].starts_with(b"//") {
                while self.pos < self.s.len() && self.s[self.pos] != b'\n' {
                    self.pos += 1;
                }
            } else {
                return;
            }
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.s.get(self.pos).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) -> Result<()> {
        if self.eat(c) {
            Ok(())
        } else {
            let found = self
                .peek()
                .map_or("end of input".to_string(), |f| format!("{:?}", f as char));
            self.err(format!("expected {:?}, found {found}", c as char))
        }
    }

    fn ident(&mut self) -> Result<String> {
        self.skip_ws();
        let start = self.pos;
        while self.pos < self.s.len() && is_ident(self.s[self.pos]) {
            self.pos += 1;
        }
        if start == self.pos {
            return self.err("expected a name");
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.pos]).into_owned())
    }

    /// The identifier at the cursor, without consuming it.
    fn peek_ident(&mut self) -> Option<String> {
        let save = self.pos;
        let r = self.ident().ok();
        self.pos = save;
        r
    }

    fn string(&mut self) -> Result<String> {
        self.expect(b'"')?;
        let mut out = String::new();
        loop {
            let Some(&c) = self.s.get(self.pos) else {
                return self.err("unterminated string");
            };
            self.pos += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let Some(&e) = self.s.get(self.pos) else {
                        return self.err("unterminated string");
                    };
                    self.pos += 1;
                    match e {
                        b'n' => out.push('\n'),
                        b't' => out.push('\t'),
                        b'r' => out.push('\r'),
                        b'0' => out.push('\0'),
                        b'\\' => out.push('\\'),
                        b'"' => out.push('"'),
                        b'\'' => out.push('\''),
                        b'u' => {
                            self.expect(b'{')?;
                            let start = self.pos;
                            while self.pos < self.s.len() && self.s[self.pos] != b'}' {
                                self.pos += 1;
                            }
                            let hex =
                                String::from_utf8_lossy(&self.s[start..self.pos]).into_owned();
                            self.expect(b'}')?;
                            match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                                Some(ch) => out.push(ch),
                                None => return self.err(format!("bad escape \\u{{{hex}}}")),
                            }
                        }
                        other => return self.err(format!("bad escape \\{}", other as char)),
                    }
                }
                _ => {
                    // Copy a whole UTF-8 sequence.
                    let start = self.pos - 1;
                    let mut end = self.pos;
                    while end < self.s.len() && (self.s[end] & 0xC0) == 0x80 {
                        end += 1;
                    }
                    out.push_str(&String::from_utf8_lossy(&self.s[start..end]));
                    self.pos = end;
                }
            }
        }
        Ok(out)
    }

    fn value_name(&mut self) -> Result<String> {
        self.expect(b'%')?;
        let start = self.pos;
        while self.pos < self.s.len()
            && (self.s[self.pos].is_ascii_alphanumeric() || self.s[self.pos] == b'_')
        {
            self.pos += 1;
        }
        if start == self.pos {
            return self.err("expected a value name after %");
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.pos]).into_owned())
    }

    fn int(&mut self) -> Result<i64> {
        let t = self.number_text();
        t.parse()
            .or_else(|_| self.err(format!("expected an integer, found {t:?}")))
    }

    fn number_text(&mut self) -> String {
        self.skip_ws();
        let start = self.pos;
        while self.pos < self.s.len() {
            let c = self.s[self.pos];
            let sign_after_e = (c == b'-' || c == b'+')
                && self.pos > start
                && matches!(self.s[self.pos - 1], b'e' | b'E');
            if c.is_ascii_alphanumeric()
                || c == b'.'
                || (c == b'-' && self.pos == start)
                || sign_after_e
            {
                self.pos += 1;
            } else {
                break;
            }
        }
        String::from_utf8_lossy(&self.s[start..self.pos]).into_owned()
    }

    fn ty(&mut self) -> Result<ValueType> {
        if self.eat(b'?') {
            return Ok(ValueType::UnknownTensor);
        }
        let name = self.ident()?;
        match name.as_str() {
            "sym_int" => return Ok(ValueType::SymInt),
            "sym_float" => return Ok(ValueType::SymFloat),
            "sym_bool" => return Ok(ValueType::SymBool),
            "opaque" => return Ok(ValueType::Opaque),
            _ => {}
        }
        let Some(dtype) = DType::from_name(&name) else {
            return self.err(format!("unknown type {name:?}"));
        };
        self.expect(b'[')?;
        let start = self.pos;
        let mut depth = 0;
        while self.pos < self.s.len() {
            match self.s[self.pos] {
                b'(' => depth += 1,
                b')' => depth -= 1,
                b']' if depth == 0 => break,
                _ => {}
            }
            self.pos += 1;
        }
        let inner = String::from_utf8_lossy(&self.s[start..self.pos]).into_owned();
        self.expect(b']')?;
        let mut shape = Vec::new();
        for part in split_top_level(&inner) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            shape.push(SymExpr::parse_infix(part).map_err(|e| Error::Parse {
                line: self.line(),
                msg: e.to_string(),
            })?);
        }
        Ok(ValueType::Tensor(TensorType::new(dtype, shape)))
    }

    /// `%name: type`, defining a new value in `g`.
    fn def(&mut self, g: &mut Graph) -> Result<ValueId> {
        let name = self.value_name()?;
        self.expect(b':')?;
        let ty = self.ty()?;
        if g.lookup(&name).is_some() {
            return self.err(format!("value %{name} is defined twice"));
        }
        Ok(g.add_value(&name, ty))
    }

    fn use_value(&mut self, g: &Graph) -> Result<ValueId> {
        let name = self.value_name()?;
        match g.lookup(&name) {
            Some(v) => Ok(v),
            None => self.err(format!("use of undefined value %{name}")),
        }
    }

    fn parse_body(
        &mut self,
        g: &mut Graph,
        mut sig: Option<&mut Signature>,
        mut ranges: Option<&mut BTreeMap<String, SymRange>>,
        nested: bool,
    ) -> Result<()> {
        loop {
            match self.peek() {
                None if !nested => return Ok(()),
                None => return self.err("missing '}' at the end of a subgraph"),
                Some(b'}') if nested => return Ok(()),
                Some(b'%') | Some(b'[') | Some(b'"') => self.node(g)?,
                Some(_) => {
                    let save = self.pos;
                    let word = self.ident()?;
                    match word.as_str() {
                        "range" => {
                            let Some(r) = ranges.as_deref_mut() else {
                                return self.err("range inside a subgraph");
                            };
                            let sym = self.ident()?;
                            self.expect(b'=')?;
                            self.expect(b'[')?;
                            let min = self.int()?;
                            self.expect(b',')?;
                            let max_text = self.number_text();
                            let max = if max_text == "inf" {
                                None
                            } else {
                                Some(max_text.parse().or_else(|_| self.err("bad range bound"))?)
                            };
                            self.expect(b']')?;
                            r.insert(sym, SymRange { min, max });
                        }
                        "input" => {
                            let v = self.def(g)?;
                            g.inputs.push(v);
                            if let Some(sig) = sig.as_deref_mut() {
                                self.expect(b'=')?;
                                let kind = self.input_kind(g)?;
                                let target = if self.peek() == Some(b'"') {
                                    Some(self.string()?)
                                } else {
                                    None
                                };
                                sig.inputs.push(InputSpec {
                                    kind,
                                    value: v,
                                    target,
                                });
                            }
                        }
                        "output" => {
                            let a = self.arg(g)?;
                            g.outputs.push(a);
                            if let Some(sig) = sig.as_deref_mut() {
                                self.expect(b'=')?;
                                let k = self.ident()?;
                                let Some(kind) = OutputKind::from_name(&k) else {
                                    return self.err(format!("unknown output kind {k:?}"));
                                };
                                let target = if self.peek() == Some(b'"') {
                                    Some(self.string()?)
                                } else {
                                    None
                                };
                                sig.outputs.push(OutputSpec { kind, target });
                            }
                        }
                        _ => {
                            self.pos = save;
                            self.node(g)?;
                        }
                    }
                }
            }
        }
    }

    fn input_kind(&mut self, g: &mut Graph) -> Result<InputKind> {
        let k = self.ident()?;
        Ok(match k.as_str() {
            "user_input" => InputKind::UserInput,
            "parameter" => InputKind::Parameter,
            "buffer" => InputKind::Buffer { persistent: true },
            "buffer_nonpersistent" => InputKind::Buffer { persistent: false },
            "constant_tensor" => InputKind::ConstantTensor,
            "custom_obj" => InputKind::CustomObj,
            "token" => InputKind::Token,
            "constant_input" => InputKind::ConstantInput(self.arg(g)?),
            _ => return self.err(format!("unknown input kind {k:?}")),
        })
    }

    fn node(&mut self, g: &mut Graph) -> Result<()> {
        let mut outputs = Vec::new();
        let mut list_output = false;
        match self.peek() {
            Some(b'%') => {
                outputs.push(self.def(g)?);
                while self.eat(b',') {
                    outputs.push(self.def(g)?);
                }
                self.expect(b'=')?;
            }
            Some(b'[') => {
                self.pos += 1;
                list_output = true;
                if self.peek() != Some(b']') {
                    outputs.push(self.def(g)?);
                    while self.eat(b',') {
                        outputs.push(self.def(g)?);
                    }
                }
                self.expect(b']')?;
                self.expect(b'=')?;
            }
            _ => {}
        }
        let op = if self.peek() == Some(b'"') {
            Op::Unsupported(self.string()?)
        } else {
            let t = self.ident()?;
            if t == "custom" && self.peek() == Some(b'"') {
                Op::Custom(self.string()?)
            } else {
                let full = if t.starts_with("aten.") || t.starts_with("higher_order.") {
                    format!("torch.ops.{t}")
                } else {
                    t
                };
                Op::from_target(&full)
            }
        };
        self.expect(b'(')?;
        let mut args = Vec::new();
        if !self.eat(b')') {
            loop {
                let save = self.pos;
                let mut name = String::new();
                if let Some(id) = self.peek_ident() {
                    self.ident()?;
                    if self.peek() == Some(b'=') {
                        self.pos += 1;
                        name = id;
                    } else {
                        self.pos = save;
                    }
                }
                let value = self.arg(g)?;
                args.push(NamedArg {
                    name,
                    value,
                    kwarg: false,
                });
                if self.eat(b')') {
                    break;
                }
                self.expect(b',')?;
            }
        }
        // A `// file.py:LINE` comment on the node's line (as `print` writes
        // with `source_lines`) is its source line.
        let eol = self.s[self.pos..]
            .iter()
            .position(|&c| c == b'\n')
            .map_or(self.s.len(), |k| self.pos + k);
        let line = String::from_utf8_lossy(&self.s[self.pos..eol]).into_owned();
        let meta = match line.split_once("//").map(|(_, c)| c.trim()) {
            Some(c) => match c.rsplit_once(':') {
                Some((file, no)) if !file.is_empty() && no.parse::<u64>().is_ok() => NodeMeta {
                    stack_trace: Some(format!("File \"{file}\", line {no}")),
                    ..NodeMeta::default()
                },
                _ => NodeMeta::default(),
            },
            None => NodeMeta::default(),
        };
        let name = if self.eat(b'@') {
            self.ident()?
        } else if let Some(&o) = outputs.first() {
            g.name(o).to_string()
        } else {
            return self.err("a node without outputs needs an @name");
        };
        g.nodes.push(Node {
            name,
            op,
            args,
            outputs,
            list_output,
            meta,
        });
        Ok(())
    }

    fn arg(&mut self, g: &mut Graph) -> Result<Arg> {
        match self.peek() {
            None => self.err("expected an argument"),
            Some(b'%') => Ok(Arg::Value(self.use_value(g)?)),
            Some(b'"') => Ok(Arg::Str(self.string()?)),
            Some(b'[') => {
                self.pos += 1;
                let mut items = Vec::new();
                if !self.eat(b']') {
                    loop {
                        items.push(self.arg(g)?);
                        if self.eat(b']') {
                            break;
                        }
                        self.expect(b',')?;
                    }
                }
                Ok(collect_list(items))
            }
            Some(b'#') => {
                self.pos += 1;
                let tag = self.ident()?;
                self.expect(b'(')?;
                let v = if self.peek() == Some(b'"') {
                    self.string()?
                } else {
                    self.ident()?
                };
                self.expect(b')')?;
                Ok(match tag.as_str() {
                    "layout" => Arg::Layout(v),
                    "memory_format" => Arg::MemoryFormat(v),
                    "device" => Arg::Device(v),
                    "op" => Arg::Operator(v),
                    "obj" => Arg::CustomObj(v),
                    _ => return self.err(format!("unknown tag #{tag}")),
                })
            }
            Some(c) if c.is_ascii_digit() || c == b'-' => {
                let t = self.number_text();
                if let Ok(i) = t.parse::<i64>() {
                    Ok(Arg::Int(i))
                } else if let Ok(f) = t.parse::<f64>() {
                    Ok(Arg::Float(f))
                } else {
                    self.err(format!("bad number {t:?}"))
                }
            }
            Some(_) => {
                let w = self.ident()?;
                match w.as_str() {
                    "None" => Ok(Arg::None),
                    "true" => Ok(Arg::Bool(true)),
                    "false" => Ok(Arg::Bool(false)),
                    "inf" => Ok(Arg::Float(f64::INFINITY)),
                    "NaN" => Ok(Arg::Float(f64::NAN)),
                    "graph" => {
                        let name = self.ident()?;
                        self.expect(b'{')?;
                        let mut sub = Graph::new();
                        self.parse_body(&mut sub, None, None, true)?;
                        self.expect(b'}')?;
                        Ok(Arg::Graph(Box::new(SubGraph { name, graph: sub })))
                    }
                    _ => match DType::from_name(&w) {
                        Some(d) => Ok(Arg::DType(d)),
                        None => self.err(format!("unexpected {w:?}")),
                    },
                }
            }
        }
    }
}

/// Lists of plain constants get their dedicated variants, as import makes them.
pub(crate) fn collect_list(items: Vec<Arg>) -> Arg {
    if items.iter().all(|a| matches!(a, Arg::Int(_))) {
        return Arg::Ints(
            items
                .iter()
                .filter_map(|a| if let Arg::Int(v) = a { Some(*v) } else { None })
                .collect(),
        );
    }
    if items.iter().all(|a| matches!(a, Arg::Float(_))) {
        return Arg::Floats(
            items
                .iter()
                .filter_map(|a| {
                    if let Arg::Float(v) = a {
                        Some(*v)
                    } else {
                        None
                    }
                })
                .collect(),
        );
    }
    if items.iter().all(|a| matches!(a, Arg::Bool(_))) {
        return Arg::Bools(
            items
                .iter()
                .filter_map(|a| if let Arg::Bool(v) = a { Some(*v) } else { None })
                .collect(),
        );
    }
    if items.iter().all(|a| matches!(a, Arg::Str(_))) {
        return Arg::Strs(
            items
                .into_iter()
                .filter_map(|a| if let Arg::Str(v) = a { Some(v) } else { None })
                .collect(),
        );
    }
    Arg::List(items)
}

fn split_top_level(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}
