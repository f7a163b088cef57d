use super::*;
use crate::ir::parse::parse_program;

/// Runs the pass on IR text and returns the printed type of `%name`.
fn infer(text: &str, name: &str) -> String {
    let mut p = parse_program(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    propagate(&mut p.graph).unwrap_or_else(|e| panic!("{e}"));
    let v = p.graph.lookup(name).expect("value");
    type_text(p.graph.ty(v))
}

#[test]
fn relu_keeps_type() {
    let t = "range s0 = [1, 64]\ninput %x: f32[s0, 8] = user_input\n%y: ? = aten.relu.default(self=%x)\noutput %y = user_output\n";
    assert_eq!(infer(t, "y"), "f32[s0, 8]");
}
