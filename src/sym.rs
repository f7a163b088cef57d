//! Symbolic dimension expressions (placeholder until the full module lands).
use std::fmt;
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SymExpr {
    Int(i64),
    Symbol(String),
}
impl SymExpr {
    pub fn parse_infix(s: &str) -> crate::Result<SymExpr> {
        let s = s.trim();
        if let Ok(v) = s.parse() {
            return Ok(SymExpr::Int(v));
        }
        Ok(SymExpr::Symbol(s.to_string()))
    }
    pub fn parse_srepr(s: &str) -> crate::Result<SymExpr> {
        Self::parse_infix(s)
    }
    pub fn free_symbols(&self) -> Vec<String> {
        match self {
            SymExpr::Int(_) => vec![],
            SymExpr::Symbol(s) => vec![s.clone()],
        }
    }
    pub fn as_int(&self) -> Option<i64> {
        match self {
            SymExpr::Int(v) => Some(*v),
            _ => None,
        }
    }
    pub fn eval(&self, env: &dyn Fn(&str) -> Option<i64>) -> Option<i64> {
        match self {
            SymExpr::Int(v) => Some(*v),
            SymExpr::Symbol(s) => env(s),
        }
    }
}
impl fmt::Display for SymExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SymExpr::Int(v) => write!(f, "{v}"),
            SymExpr::Symbol(s) => f.write_str(s),
        }
    }
}
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SymRange {
    pub min: i64,
    pub max: Option<i64>,
}
