//! The serialized program: a serde model of torch's export schema
//! (`torch/_export/serde/schema.py`, major version 8).
//!
//! Union types are single-key JSON objects (`{"as_tensor": {...}}`), which
//! map onto externally tagged enums. Unknown fields are ignored, so newer
//! minor versions load; fields that older minor versions lack have defaults.
//! Enumerations (`ScalarType`, `Layout`, `MemoryFormat`, `ArgumentKind`) stay
//! plain integers so that new codes do not break loading.
//!
//! Floats may be written as JSON numbers or as the strings `"Infinity"`,
//! `"-Infinity"` and `"NaN"`; older writers emit the bare tokens
//! `Infinity`/`NaN`, which [`from_json_text`] turns into strings first.

use std::collections::BTreeMap;

use serde::de::{self, Deserializer, IgnoredAny};
use serde::Deserialize;

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::sym::{SymExpr as Expr, SymRange};

/// The schema major version this reader understands.
pub const SUPPORTED_MAJOR: i64 = 8;

// ---------------------------------------------------------------------------
// Lenient scalar helpers

fn float_from_str(s: &str) -> Option<f64> {
    match s {
        "Infinity" | "inf" => Some(f64::INFINITY),
        "-Infinity" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        other => other.parse().ok(),
    }
}

/// A float written as a number or as one of the strings `"Infinity"`,
/// `"-Infinity"`, `"NaN"`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Float(pub f64);

impl<'de> Deserialize<'de> for Float {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Float;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a float or \"Infinity\"/\"-Infinity\"/\"NaN\"")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Float, E> {
                Ok(Float(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Float, E> {
                Ok(Float(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Float, E> {
                Ok(Float(v as f64))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Float, E> {
                float_from_str(v)
                    .map(Float)
                    .ok_or_else(|| E::custom(format!("bad float {v:?}")))
            }
        }
        d.deserialize_any(V)
    }
}

/// A range bound: an integer, or `None` for infinity (written as `null`,
/// `"Infinity"`, a float infinity, or an integer too large for i64).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Bound(pub Option<i64>);

impl<'de> Deserialize<'de> for Bound {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        crate::sym::json_bound(&v)
            .map(Bound)
            .map_err(de::Error::custom)
    }
}

/// Accepts any value (`true`, `[]`, `null`, ...): used for `as_none`.
fn ignore<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<(), D::Error> {
    IgnoredAny::deserialize(d).map(|_| ())
}

/// `null` or missing → default.
fn null_default<'de, D, T>(d: D) -> std::result::Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

// ---------------------------------------------------------------------------
// Basic types

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Device {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub index: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SymExprHint {
    AsInt(i64),
    AsBool(bool),
    AsFloat(Float),
}

/// A symbolic expression as stored: a sympy `srepr` string plus an optional
/// example value.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct SymExpr {
    pub expr_str: String,
    #[serde(default)]
    pub hint: Option<SymExprHint>,
}

impl SymExpr {
    pub fn parse(&self) -> Result<Expr> {
        Expr::parse_srepr(&self.expr_str)
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SymInt {
    AsExpr(SymExpr),
    AsInt(i64),
}

impl SymInt {
    /// The size as an expression (a constant for `as_int`).
    pub fn to_expr(&self) -> Result<Expr> {
        match self {
            SymInt::AsInt(v) => Ok(Expr::Int(*v)),
            SymInt::AsExpr(e) => e.parse(),
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            SymInt::AsInt(v) => Some(*v),
            SymInt::AsExpr(_) => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SymFloat {
    AsExpr(SymExpr),
    AsFloat(Float),
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SymBool {
    AsExpr(SymExpr),
    AsBool(bool),
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct TensorMeta {
    /// `ScalarType` code; see [`TensorMeta::dtype`].
    pub dtype: i64,
    pub sizes: Vec<SymInt>,
    #[serde(default)]
    pub requires_grad: bool,
    pub device: Device,
    pub strides: Vec<SymInt>,
    pub storage_offset: SymInt,
    /// `Layout` code (7 = strided).
    #[serde(default = "strided")]
    pub layout: i64,
}

fn strided() -> i64 {
    LAYOUT_STRIDED
}

/// The `Layout` code of ordinary dense tensors.
pub const LAYOUT_STRIDED: i64 = 7;

impl TensorMeta {
    pub fn dtype(&self) -> Result<DType> {
        DType::from_schema(self.dtype)
            .ok_or_else(|| Error::schema(format!("unsupported scalar type code {}", self.dtype)))
    }

    /// The sizes, if all are concrete.
    pub fn concrete_sizes(&self) -> Option<Vec<i64>> {
        self.sizes.iter().map(SymInt::as_int).collect()
    }

    /// The strides, if all are concrete.
    pub fn concrete_strides(&self) -> Option<Vec<i64>> {
        self.strides.iter().map(SymInt::as_int).collect()
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SymIntArgument {
    AsName(String),
    AsInt(i64),
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SymFloatArgument {
    AsName(String),
    AsFloat(Float),
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SymBoolArgument {
    AsName(String),
    AsBool(bool),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Deserialize)]
pub struct TensorArgument {
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Deserialize)]
pub struct TokenArgument {
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptionalTensorArgument {
    AsTensor(TensorArgument),
    AsNone(#[serde(deserialize_with = "ignore")] ()),
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct GraphArgument {
    pub name: String,
    pub graph: Box<Graph>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct CustomObjArgument {
    pub name: String,
    pub class_fqn: String,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct ComplexValue {
    pub real: Float,
    pub imag: Float,
}

/// An argument or output of a node: every variant of the schema's
/// `Argument` union.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Argument {
    AsNone(#[serde(deserialize_with = "ignore")] ()),
    AsTensor(TensorArgument),
    AsTensors(Vec<TensorArgument>),
    AsInt(i64),
    AsInts(Vec<i64>),
    AsFloat(Float),
    AsFloats(Vec<Float>),
    AsString(String),
    AsStrings(Vec<String>),
    AsSymInt(SymIntArgument),
    AsSymInts(Vec<SymIntArgument>),
    /// `ScalarType` code.
    AsScalarType(i64),
    /// `MemoryFormat` code.
    AsMemoryFormat(i64),
    /// `Layout` code.
    AsLayout(i64),
    AsDevice(Device),
    AsBool(bool),
    AsBools(Vec<bool>),
    AsSymBool(SymBoolArgument),
    AsSymBools(Vec<SymBoolArgument>),
    AsGraph(GraphArgument),
    AsOptionalTensors(Vec<OptionalTensorArgument>),
    AsCustomObj(CustomObjArgument),
    AsOperator(String),
    AsSymFloat(SymFloatArgument),
    AsSymFloats(Vec<SymFloatArgument>),
    AsOptionalTensor(OptionalTensorArgument),
    AsComplex(ComplexValue),
    AsNestedTensors(Vec<Vec<TensorArgument>>),
    AsIntLists(Vec<Vec<i64>>),
    AsStringToArgument(BTreeMap<String, Argument>),
}

/// `ArgumentKind` codes.
pub const ARG_KIND_POSITIONAL: i64 = 1;
pub const ARG_KIND_KEYWORD: i64 = 2;

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct NamedArgument {
    pub name: String,
    pub arg: Argument,
    /// `ArgumentKind` code: 0 unknown, 1 positional, 2 keyword.
    #[serde(default)]
    pub kind: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Node {
    pub target: String,
    pub inputs: Vec<NamedArgument>,
    pub outputs: Vec<Argument>,
    #[serde(default, deserialize_with = "null_default")]
    pub metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub is_hop_single_tensor_return: Option<bool>,
    #[serde(default)]
    pub name: Option<String>,
}

impl Node {
    /// The Python source line recorded in the node's stack trace, if any
    /// (`file.py:12`).
    pub fn source_line(&self) -> Option<String> {
        let trace = self.metadata.get("stack_trace")?;
        let line = trace
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with("File "))?;
        let rest = line.trim_start().strip_prefix("File \"")?;
        let (file, rest) = rest.split_once('"')?;
        let rest = rest.trim_start_matches(", line ");
        let num: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        let file = file.rsplit('/').next().unwrap_or(file);
        Some(format!("{file}:{num}"))
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Graph {
    pub inputs: Vec<Argument>,
    pub outputs: Vec<Argument>,
    pub nodes: Vec<Node>,
    #[serde(default, deserialize_with = "null_default")]
    pub tensor_values: BTreeMap<String, TensorMeta>,
    #[serde(default, deserialize_with = "null_default")]
    pub sym_int_values: BTreeMap<String, SymInt>,
    #[serde(default, deserialize_with = "null_default")]
    pub sym_bool_values: BTreeMap<String, SymBool>,
    #[serde(default)]
    pub is_single_tensor_return: bool,
    #[serde(default, deserialize_with = "null_default")]
    pub custom_obj_values: BTreeMap<String, CustomObjArgument>,
    #[serde(default, deserialize_with = "null_default")]
    pub sym_float_values: BTreeMap<String, SymFloat>,
}

// ---------------------------------------------------------------------------
// Signature

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct UserInputSpec {
    pub arg: Argument,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConstantValue {
    AsNone(#[serde(deserialize_with = "ignore")] ()),
    AsInt(i64),
    AsFloat(Float),
    AsString(String),
    AsBool(bool),
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct InputToConstantInputSpec {
    pub name: String,
    pub value: ConstantValue,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct InputToParameterSpec {
    pub arg: TensorArgument,
    pub parameter_name: String,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct InputToBufferSpec {
    pub arg: TensorArgument,
    pub buffer_name: String,
    #[serde(default = "yes")]
    pub persistent: bool,
}

fn yes() -> bool {
    true
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct InputToTensorConstantSpec {
    pub arg: TensorArgument,
    pub tensor_constant_name: String,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct InputToCustomObjSpec {
    pub arg: CustomObjArgument,
    pub custom_obj_name: String,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct InputTokenSpec {
    pub arg: TokenArgument,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputSpec {
    UserInput(UserInputSpec),
    Parameter(InputToParameterSpec),
    Buffer(InputToBufferSpec),
    TensorConstant(InputToTensorConstantSpec),
    CustomObj(InputToCustomObjSpec),
    Token(InputTokenSpec),
    ConstantInput(InputToConstantInputSpec),
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct UserOutputSpec {
    pub arg: Argument,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct LossOutputSpec {
    pub arg: TensorArgument,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct BufferMutationSpec {
    pub arg: TensorArgument,
    pub buffer_name: String,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct ParameterMutationSpec {
    pub arg: TensorArgument,
    pub parameter_name: String,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct GradientToParameterSpec {
    pub arg: TensorArgument,
    pub parameter_name: String,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct GradientToUserInputSpec {
    pub arg: TensorArgument,
    pub user_input_name: String,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct UserInputMutationSpec {
    pub arg: TensorArgument,
    pub user_input_name: String,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct OutputTokenSpec {
    pub arg: TokenArgument,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputSpec {
    UserOutput(UserOutputSpec),
    LossOutput(LossOutputSpec),
    BufferMutation(BufferMutationSpec),
    GradientToParameter(GradientToParameterSpec),
    GradientToUserInput(GradientToUserInputSpec),
    UserInputMutation(UserInputMutationSpec),
    Token(OutputTokenSpec),
    ParameterMutation(ParameterMutationSpec),
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct GraphSignature {
    pub input_specs: Vec<InputSpec>,
    pub output_specs: Vec<OutputSpec>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub struct RangeConstraint {
    #[serde(default)]
    pub min_val: Bound,
    #[serde(default)]
    pub max_val: Bound,
}

impl RangeConstraint {
    pub fn to_range(&self) -> SymRange {
        SymRange::from_bounds(self.min_val.0, self.max_val.0)
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct ModuleCallSignature {
    pub inputs: Vec<Argument>,
    pub outputs: Vec<Argument>,
    pub in_spec: String,
    pub out_spec: String,
    #[serde(default)]
    pub forward_arg_names: Option<Vec<String>>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct ModuleCallEntry {
    pub fqn: String,
    #[serde(default)]
    pub signature: Option<ModuleCallSignature>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct NamedTupleDef {
    pub field_names: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct GraphModule {
    pub graph: Graph,
    pub signature: GraphSignature,
    #[serde(default, deserialize_with = "null_default")]
    pub module_call_graph: Vec<ModuleCallEntry>,
    #[serde(default, deserialize_with = "null_default")]
    pub metadata: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "null_default")]
    pub treespec_namedtuple_fields: BTreeMap<String, NamedTupleDef>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub struct SchemaVersion {
    pub major: i64,
    pub minor: i64,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct ExportedProgram {
    pub graph_module: GraphModule,
    #[serde(default, deserialize_with = "null_default")]
    pub opset_version: BTreeMap<String, i64>,
    #[serde(default, deserialize_with = "null_default")]
    pub range_constraints: BTreeMap<String, RangeConstraint>,
    pub schema_version: SchemaVersion,
    #[serde(default, deserialize_with = "null_default")]
    pub verifiers: Vec<String>,
    #[serde(default = "old_torch")]
    pub torch_version: String,
    #[serde(default, deserialize_with = "null_default")]
    pub guards_code: Vec<String>,
}

fn old_torch() -> String {
    "<=2.4".to_string()
}

impl ExportedProgram {
    /// The range of every constrained symbol.
    pub fn symbol_ranges(&self) -> BTreeMap<String, SymRange> {
        self.range_constraints
            .iter()
            .map(|(k, v)| (k.clone(), v.to_range()))
            .collect()
    }
}

// ---------------------------------------------------------------------------
// Weights and constants configs (PT2 layout)

/// Where one payload (parameter, buffer, constant) lives in the archive.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct PayloadMeta {
    pub path_name: String,
    #[serde(default)]
    pub is_param: bool,
    #[serde(default)]
    pub use_pickle: bool,
    #[serde(default)]
    pub tensor_meta: Option<TensorMeta>,
}

/// `<model>_weights_config.json` / `<model>_constants_config.json`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct PayloadConfig {
    #[serde(default, deserialize_with = "null_default")]
    pub config: BTreeMap<String, PayloadMeta>,
}

// ---------------------------------------------------------------------------
// Parsing

/// Quotes the bare `Infinity`, `-Infinity` and `NaN` tokens that Python's
/// `json` module writes for non-finite floats, so that a strict JSON parser
/// accepts them. Text inside strings is left alone. Returns `None` when there
/// is nothing to change.
pub fn quote_non_finite(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out: Option<String> = None;
    let mut last = 0;
    let mut in_str = false;
    let mut escaped = false;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if in_str {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_str = false;
            }
            i += 1;
            continue;
        }
        if b == b'"' {
            in_str = true;
            i += 1;
            continue;
        }
        let rest = bytes.get(i..).unwrap_or(&[]);
        let token: Option<&[u8]> = [&b"-Infinity"[..], &b"Infinity"[..], &b"NaN"[..]]
            .into_iter()
            .find(|t| rest.starts_with(t));
        if let Some(t) = token {
            let o = out.get_or_insert_with(|| String::with_capacity(text.len() + 64));
            o.push_str(text.get(last..i).unwrap_or(""));
            o.push('"');
            o.push_str(std::str::from_utf8(t).unwrap_or(""));
            o.push('"');
            i += t.len();
            last = i;
            continue;
        }
        i += 1;
    }
    let mut o = out?;
    o.push_str(text.get(last..).unwrap_or(""));
    Some(o)
}

/// Parses JSON text (with non-finite float tokens tolerated) into `T`.
/// Errors carry serde's line and column.
pub fn from_json_text<T: de::DeserializeOwned>(text: &str, what: &str) -> Result<T> {
    let fixed = quote_non_finite(text);
    let src = fixed.as_deref().unwrap_or(text);
    serde_json::from_str(src).map_err(|e| Error::schema(format!("{what}: {e}")))
}

/// Parses an exported program, checking the versions first so that an
/// archive out of range gets a one-line error naming the version found and
/// the versions supported (never a failure deep inside): the schema major
/// version must be [`SUPPORTED_MAJOR`], and the writing torch release (the
/// `torch_version` field, absent before torch 2.5) no older than
/// [`crate::ir::releases::SUPPORTED_TORCH`]'s first. Newer releases with
/// the same schema major version are read as far as they go.
pub fn parse_program(text: &str, what: &str) -> Result<ExportedProgram> {
    use crate::ir::releases::{supported_text, torch_release, SUPPORTED_TORCH};
    #[derive(Deserialize)]
    struct VersionOnly {
        schema_version: Option<SchemaVersion>,
        #[serde(default)]
        torch_version: Option<String>,
    }
    let v: VersionOnly = from_json_text(text, what)?;
    let version = v
        .schema_version
        .ok_or_else(|| Error::schema(format!("{what}: missing schema_version")))?;
    let written_by = match &v.torch_version {
        Some(t) => format!("written by torch {t}"),
        None => "written by torch 2.4 or older (no torch_version)".to_string(),
    };
    let supported = format!(
        "torchlift reads schema {SUPPORTED_MAJOR}.x archives of {}",
        supported_text()
    );
    if version.major != SUPPORTED_MAJOR {
        return Err(Error::schema(format!(
            "{what}: unsupported schema version {}.{} ({written_by}); {supported}",
            version.major, version.minor
        )));
    }
    let release = v.torch_version.as_deref().map(torch_release);
    let too_old = match release {
        None => true,
        Some(Some(r)) => r < SUPPORTED_TORCH.0,
        Some(None) => false, // a development build's odd string: read it
    };
    if too_old {
        return Err(Error::schema(format!(
            "{what}: unsupported torch release: archive {written_by} (schema {}.{}); {supported}",
            version.major, version.minor
        )));
    }
    from_json_text(text, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments() {
        let a: Vec<Argument> = serde_json::from_str(
            r#"[{"as_none": true}, {"as_none": []}, {"as_float": "-Infinity"}, {"as_float": 1.5},
                {"as_sym_ints": [{"as_name": "s0"}, {"as_int": 3}]},
                {"as_optional_tensors": [{"as_tensor": {"name": "x"}}, {"as_none": true}]},
                {"as_string_to_argument": {"k": {"as_int": 1}}},
                {"as_complex": {"real": 1.0, "imag": "NaN"}},
                {"as_int_lists": [[1, 2], []]}]"#,
        )
        .unwrap();
        assert_eq!(a[2], Argument::AsFloat(Float(f64::NEG_INFINITY)));
        assert!(matches!(a[4], Argument::AsSymInts(_)));
    }

    #[test]
    fn non_finite_tokens() {
        let t = r#"{"a": -Infinity, "b": "NaN Infinity", "c": [NaN, Infinity]}"#;
        let q = quote_non_finite(t).unwrap();
        assert_eq!(
            q,
            r#"{"a": "-Infinity", "b": "NaN Infinity", "c": ["NaN", "Infinity"]}"#
        );
        assert!(quote_non_finite(r#"{"a": 1}"#).is_none());
    }

    #[test]
    fn version_check() {
        let e = parse_program(r#"{"schema_version": {"major": 7, "minor": 1}}"#, "m.json")
            .unwrap_err()
            .to_string();
        assert!(e.contains("7.1"), "{e}");
        assert!(e.contains("torch 2.6 to 2.15"), "{e}");
        let e = parse_program(
            r#"{"schema_version": {"major": 8, "minor": 1}, "torch_version": "2.5.1"}"#,
            "m.json",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("torch 2.5.1") && e.contains("2.6 to 2.15"),
            "{e}"
        );
        let e = parse_program("{\n  \"schema_version\": ", "m.json")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn deep_nesting_is_an_error() {
        let depth = 5000;
        let text = format!(
            "{}{{\"as_int\": 1}}{}",
            "{\"as_string_to_argument\": {\"k\": ".repeat(depth),
            "}}".repeat(depth)
        );
        assert!(from_json_text::<Argument>(&text, "deep").is_err());
    }

    #[test]
    fn range_bounds() {
        let r: BTreeMap<String, RangeConstraint> = from_json_text(
            r#"{"s0": {"min_val": 2, "max_val": Infinity}, "s1": {"min_val": 0, "max_val": null},
                "s2": {"min_val": 1, "max_val": 99999999999999999999}}"#,
            "t",
        )
        .unwrap();
        assert!(r.values().all(|c| c.to_range().max.is_none()));
    }
}
