//! Generates `src/ir/schema_table.rs` from PyTorch's schema strings in
//! `src/ir/gen/schemas.txt`, and fails when the committed file differs.
//!
//! `TORCHLIFT_BLESS=1 cargo test --test schema_table` rewrites the table after
//! `schemas.txt` changes (`src/ir/gen/dump_schemas.py` writes that file from
//! an installed torch).

use std::fmt::Write as _;
use std::path::Path;

/// One parsed argument: `int[2]? padding=0` and the like.
struct Param {
    name: String,
    base: &'static str,
    list: Option<u8>,
    elem_optional: bool,
    optional: bool,
    mutable: bool,
    kwarg_only: bool,
    default: Option<String>,
}

/// Splits on commas outside brackets and parentheses.
fn split_top(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for ch in s.chars() {
        match ch {
            '[' | '(' => depth += 1,
            ']' | ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(cur.trim().to_string());
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(ch);
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

fn base_of(s: &str) -> Result<&'static str, String> {
    Ok(match s {
        "Tensor" => "Tensor",
        "int" => "Int",
        "SymInt" => "SymInt",
        "float" => "Float",
        "bool" => "Bool",
        "Scalar" => "Scalar",
        "ScalarType" => "ScalarType",
        "Layout" => "Layout",
        "Device" => "Device",
        "MemoryFormat" => "MemoryFormat",
        "str" => "Str",
        "Generator" => "Generator",
        other => return Err(format!("unknown type {other}")),
    })
}

fn parse_param(text: &str, kwarg_only: bool) -> Result<Param, String> {
    let (decl, default) = match text.split_once('=') {
        Some((d, v)) => (d.trim(), Some(v.trim().to_string())),
        None => (text, None),
    };
    let (ty, name) = decl
        .rsplit_once(' ')
        .ok_or_else(|| format!("no name in {text:?}"))?;
    // Alias annotations: `Tensor(a!)`, `Tensor(a -> *)`.
    let mut mutable = false;
    let mut plain = String::new();
    let mut rest = ty;
    while let Some(open) = rest.find('(') {
        let close = rest[open..]
            .find(')')
            .ok_or_else(|| format!("unclosed annotation in {text:?}"))?;
        mutable |= rest[open..open + close].contains('!');
        plain.push_str(&rest[..open]);
        rest = &rest[open + close + 1..];
    }
    plain.push_str(rest);
    let mut t = plain.as_str();
    let mut optional = false;
    if let Some(s) = t.strip_suffix('?') {
        optional = true;
        t = s;
    }
    let mut list = None;
    if let Some(s) = t.strip_suffix(']') {
        let open = s
            .rfind('[')
            .ok_or_else(|| format!("bad list in {text:?}"))?;
        let n = &s[open + 1..];
        list = Some(if n.is_empty() {
            0
        } else {
            n.parse::<u8>().map_err(|e| format!("{text:?}: {e}"))?
        });
        t = &s[..open];
    }
    let mut elem_optional = false;
    if let Some(s) = t.strip_suffix('?') {
        elem_optional = true;
        t = s;
    }
    Ok(Param {
        name: name.to_string(),
        base: base_of(t)?,
        list,
        elem_optional,
        optional,
        mutable,
        kwarg_only,
        default,
    })
}

/// The Rust expression of a default value.
fn default_expr(p: &Param, v: &str) -> Result<String, String> {
    let bad = || format!("default {v:?} of {}", p.name);
    if v == "None" {
        return Ok("DefaultArg::None".into());
    }
    if let Some(items) = v.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        let items: Vec<&str> = items
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        return Ok(match p.base {
            "Int" | "SymInt" => {
                let v: Vec<i64> = items
                    .iter()
                    .map(|s| s.parse().map_err(|_| bad()))
                    .collect::<Result<_, _>>()?;
                format!("DefaultArg::Ints(&{v:?})")
            }
            "Float" => {
                let v: Vec<f64> = items
                    .iter()
                    .map(|s| s.parse().map_err(|_| bad()))
                    .collect::<Result<_, _>>()?;
                format!("DefaultArg::Floats(&{v:?})")
            }
            "Bool" => {
                let v: Vec<bool> = items
                    .iter()
                    .map(|s| match *s {
                        "True" => Ok(true),
                        "False" => Ok(false),
                        _ => Err(bad()),
                    })
                    .collect::<Result<_, _>>()?;
                format!("DefaultArg::Bools(&{v:?})")
            }
            _ => return Err(bad()),
        });
    }
    if let Some(s) = v.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        return Ok(format!("DefaultArg::Str({s:?})"));
    }
    match v {
        "True" => return Ok("DefaultArg::Bool(true)".into()),
        "False" => return Ok("DefaultArg::Bool(false)".into()),
        _ => {}
    }
    if let Ok(i) = v.parse::<i64>() {
        return Ok(format!("DefaultArg::Int({i})"));
    }
    if let Ok(f) = v.parse::<f64>() {
        return Ok(format!("DefaultArg::Float({f:?})"));
    }
    Err(bad())
}

/// `name.overload(params) -> returns`, as one table entry.
fn entry(line: &str) -> Result<(String, String, String), String> {
    let open = line.find('(').ok_or("no parameters")?;
    let arrow = line.rfind(") -> ").ok_or("no return")?;
    let qual = &line[..open];
    let (name, overload) = qual.split_once('.').unwrap_or((qual, "default"));
    let overload = if overload.is_empty() {
        "default"
    } else {
        overload
    };
    let mut kwarg_only = false;
    let mut args = String::new();
    for p in split_top(&line[open + 1..arrow]) {
        if p == "*" {
            kwarg_only = true;
            continue;
        }
        let p = parse_param(&p, kwarg_only)?;
        let list = match p.list {
            Some(n) => format!("Some({n})"),
            None => "None".into(),
        };
        let default = match &p.default {
            Some(v) => format!("Some({})", default_expr(&p, v)?),
            None => "None".into(),
        };
        write!(
            args,
            "\n            a({:?}, Base::{}, {list}, {}, {}, {}, {default}, {}),",
            p.name, p.base, p.elem_optional, p.optional, p.kwarg_only, p.mutable
        )
        .unwrap();
    }
    let ret = line[arrow + 5..].trim();
    let ret = ret
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or(ret);
    let returns: Vec<String> = split_top(ret)
        .into_iter()
        .filter(|r| !r.is_empty())
        .collect();
    let code = format!(
        "    OpSchema {{\n        name: {name:?},\n        overload: {overload:?},\n        args: &[{args}\n        ],\n        returns: &{returns:?},\n    }},\n"
    );
    Ok((name.to_string(), overload.to_string(), code))
}

fn generate(schemas: &str) -> String {
    let mut entries = Vec::new();
    for (i, line) in schemas.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let e = entry(line).unwrap_or_else(|e| panic!("schemas.txt:{}: {e}: {line}", i + 1));
        entries.push(e);
    }
    entries.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    entries.dedup_by(|a, b| (&a.0, &a.1) == (&b.0, &b.1));
    let mut out = String::from(
        "// @generated by tests/schema_table.rs from src/ir/gen/schemas.txt; do not edit.\n\
         // TORCHLIFT_BLESS=1 cargo test --test schema_table rewrites it.\n\n\
         use super::schema::{ArgSchema, ArgType, Base, DefaultArg, OpSchema};\n\n\
         #[allow(clippy::too_many_arguments)]\n\
         const fn a(\n    name: &'static str,\n    base: Base,\n    list: Option<u8>,\n    \
         elem_optional: bool,\n    optional: bool,\n    kwarg_only: bool,\n    \
         default: Option<DefaultArg>,\n    mutable: bool,\n) -> ArgSchema {\n    ArgSchema {\n        \
         name,\n        ty: ArgType {\n            base,\n            list,\n            \
         elem_optional,\n            optional,\n        },\n        default,\n        \
         kwarg_only,\n        mutable,\n    }\n}\n\n\
         pub(super) static SCHEMAS: &[OpSchema] = &[\n",
    );
    for (_, _, code) in &entries {
        out.push_str(code);
    }
    out.push_str("];\n");
    out
}

#[test]
fn schema_table_is_up_to_date() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let schemas = std::fs::read_to_string(root.join("src/ir/gen/schemas.txt")).unwrap();
    let want = generate(&schemas);
    let path = root.join("src/ir/schema_table.rs");
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    if have != want {
        if std::env::var_os("TORCHLIFT_BLESS").is_some() {
            std::fs::write(&path, want).unwrap();
            return;
        }
        panic!(
            "src/ir/schema_table.rs is out of date with src/ir/gen/schemas.txt; \
             TORCHLIFT_BLESS=1 cargo test --test schema_table rewrites it"
        );
    }
}

#[test]
fn parses_the_forms_torch_writes() {
    let (name, overload, code) = entry(
        "max_pool2d(Tensor self, int[2] kernel_size, int[2] stride=[], int[2] padding=0, \
         int[2] dilation=1, bool ceil_mode=False) -> Tensor",
    )
    .unwrap();
    assert_eq!(
        (name.as_str(), overload.as_str()),
        ("max_pool2d", "default")
    );
    assert!(code.contains(r#"a("stride", Base::Int, Some(2), false, false, false, Some(DefaultArg::Ints(&[])), false)"#), "{code}");
    assert!(code.contains(r#"a("padding", Base::Int, Some(2), false, false, false, Some(DefaultArg::Int(0)), false)"#), "{code}");
    let (_, overload, code) = entry(
        "index_put_(Tensor(a!) self, Tensor?[] indices, Tensor values, bool accumulate=False) -> Tensor(a!)",
    )
    .unwrap();
    assert_eq!(overload, "default");
    assert!(
        code.contains(r#"a("self", Base::Tensor, None, false, false, false, None, true)"#),
        "{code}"
    );
    assert!(
        code.contains(r#"a("indices", Base::Tensor, Some(0), true, false, false, None, false)"#),
        "{code}"
    );
    let (_, overload, code) = entry(
        "add.out(Tensor self, Tensor other, *, Scalar alpha=1, Tensor(a!) out) -> Tensor(a!)",
    )
    .unwrap();
    assert_eq!(overload, "out");
    assert!(
        code.contains(
            r#"a("alpha", Base::Scalar, None, false, false, true, Some(DefaultArg::Int(1)), false)"#
        ),
        "{code}"
    );
    assert!(entry("f(Dimname x) -> Tensor").is_err());
}
