use super::*;
use crate::ir::parse::parse_program;

fn prog(text: &str) -> Program {
    parse_program(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// Runs the pass on IR text and returns the printed types of `names`.
fn infer_all(text: &str, names: &[&str]) -> Vec<String> {
    let mut p = prog(text);
    ShapeProp
        .run(&mut p, &mut PassContext::default())
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    names
        .iter()
        .map(|n| type_text(p.graph.ty(p.graph.lookup(n).expect("value"))))
        .collect()
}

fn infer(text: &str, name: &str) -> String {
    infer_all(text, &[name]).remove(0)
}

/// The type of `%y` computed by `node` (which defines `%y: ?`) over
/// the given inputs.
fn node_type(inputs: &str, node: &str) -> String {
    let text = format!("range s0 = [2, 64]\nrange s1 = [1, 64]\n{inputs}\n%y: ? = {node}\noutput %y = user_output\n");
    infer(&text, "y")
}

fn node_err(inputs: &str, node: &str) -> String {
    let text = format!("{inputs}\n%y: ? = {node}\noutput %y = user_output\n");
    let mut p = prog(&text);
    match propagate(&mut p.graph) {
        Ok(_) => panic!("expected an error for {node}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn relu_keeps_type() {
    let t = "range s0 = [1, 64]\ninput %x: f32[s0, 8] = user_input\n%y: ? = aten.relu.default(self=%x)\noutput %y = user_output\n";
    assert_eq!(infer(t, "y"), "f32[s0, 8]");
}

#[test]
fn broadcasting_with_symbols() {
    let two = |a: &str, b: &str| {
        node_type(
            &format!("input %a: f32[{a}] = user_input\ninput %b: f32[{b}] = user_input"),
            "aten.add.Tensor(self=%a, other=%b)",
        )
    };
    assert_eq!(two("s0, 1", "1, 8"), "f32[s0, 8]");
    assert_eq!(two("s0, 8", "8"), "f32[s0, 8]");
    assert_eq!(two("s0, s1", "s0, 1"), "f32[s0, s1]");
    // A symbol against a constant > 1 takes the constant.
    assert_eq!(two("s0", "3"), "f32[3]");
    assert_eq!(two("1", "s0"), "f32[s0]");
    assert_eq!(two("", "s0, 2"), "f32[s0, 2]");
    let e = node_err(
        "input %a: f32[3] = user_input\ninput %b: f32[4] = user_input",
        "aten.add.Tensor(self=%a, other=%b)",
    );
    assert!(e.contains("broadcast"), "{e}");
}

#[test]
fn type_promotion() {
    let bin = |a: &str, b: &str, op: &str, other: &str| {
        node_type(
            &format!("input %a: {a} = user_input\ninput %b: {b} = user_input"),
            &format!("aten.{op}(self=%a, other={other})"),
        )
    };
    assert_eq!(bin("i64[4]", "f32[4]", "mul.Tensor", "0.5"), "f32[4]");
    assert_eq!(bin("i64[4]", "f32[4]", "mul.Tensor", "2"), "i64[4]");
    assert_eq!(bin("i32[4]", "i64[4]", "add.Tensor", "%b"), "i64[4]");
    assert_eq!(bin("bool[4]", "bool[4]", "add.Tensor", "%b"), "bool[4]");
    assert_eq!(bin("f32[4]", "f64[]", "add.Tensor", "%b"), "f32[4]");
    assert_eq!(bin("i32[4]", "f64[]", "add.Tensor", "%b"), "f64[4]");
    assert_eq!(bin("f16[4]", "f32[]", "mul.Tensor", "%b"), "f16[4]");
    assert_eq!(bin("i64[4]", "i64[4]", "div.Tensor", "%b"), "f32[4]");
    assert_eq!(bin("i64[4]", "i64[4]", "lt.Tensor", "%b"), "bool[4]");
    assert_eq!(bin("f32[4]", "f32[4]", "eq.Scalar", "1.0"), "bool[4]");
    assert_eq!(bin("i32[4]", "i64[]", "sub.Tensor", "%b"), "i32[4]");
    assert_eq!(
        node_type(
            "input %a: i64[4] = user_input",
            "aten.div.Tensor_mode(self=%a, other=2, rounding_mode=\"floor\")"
        ),
        "i64[4]"
    );
    assert_eq!(
        node_type(
            "input %a: i64[4] = user_input",
            "aten.sigmoid.default(self=%a)"
        ),
        "f32[4]"
    );
    assert_eq!(
        node_type(
            "input %c: bool[s0, 1] = user_input\ninput %a: f32[s0, 4] = user_input",
            "aten.where.self(condition=%c, self=%a, other=%a)"
        ),
        "f32[s0, 4]"
    );
}

#[test]
fn views_with_symbolic_sizes() {
    let x = "input %x: f32[s0, 24] = user_input";
    assert_eq!(
        node_type(x, "aten.view.default(self=%x, size=[-1])"),
        "f32[24*s0]"
    );
    assert_eq!(
        node_type(
            "input %x: f32[s0, 8] = user_input",
            "aten.reshape.default(self=%x, shape=[-1, 4])"
        ),
        "f32[2*s0, 4]"
    );
    assert_eq!(
        node_type(x, "aten.view.default(self=%x, size=[2, -1, 3])"),
        "f32[2, 4*s0, 3]"
    );
    assert_eq!(
        node_type(
            "input %x: f32[s0, s1, 6] = user_input",
            "aten.view.default(self=%x, size=[-1, 3])"
        ),
        "f32[2*s0*s1, 3]"
    );
}

#[test]
fn view_through_sym_size() {
    let t = "range s0 = [1, 64]\ninput %x: f32[s0, 24] = user_input\n\
             %n: sym_int = aten.sym_size.int(self=%x, dim=0)\n\
             %y: ? = aten.view.default(self=%x, size=[%n, 4, -1])\n\
             %z: ? = aten.flatten.using_ints(self=%y, start_dim=1)\n\
             output %z = user_output\n";
    assert_eq!(infer_all(t, &["y", "z"]), ["f32[s0, 4, 6]", "f32[s0, 24]"]);
}

#[test]
fn bad_view_is_an_error() {
    let e = node_err(
        "input %x: f32[3, 5] = user_input",
        "aten.view.default(self=%x, size=[4, 4])",
    );
    assert!(e.contains("node y") && e.contains("view"), "{e}");
}

#[test]
fn layout_ops() {
    let x = "input %x: f32[s0, 3, 8] = user_input";
    assert_eq!(
        node_type(x, "aten.permute.default(self=%x, dims=[2, 0, 1])"),
        "f32[8, s0, 3]"
    );
    assert_eq!(
        node_type(x, "aten.transpose.int(self=%x, dim0=0, dim1=-1)"),
        "f32[8, 3, s0]"
    );
    assert_eq!(
        node_type(x, "aten.unsqueeze.default(self=%x, dim=-1)"),
        "f32[s0, 3, 8, 1]"
    );
    assert_eq!(
        node_type(x, "aten.select.int(self=%x, dim=1, index=2)"),
        "f32[s0, 8]"
    );
    assert_eq!(
        node_type(x, "aten.expand.default(self=%x, size=[2, -1, 3, 8])"),
        "f32[2, s0, 3, 8]"
    );
    assert_eq!(
        node_type(
            "input %x: f32[s0, 1, 8] = user_input",
            "aten.squeeze.dims(self=%x, dim=[1, 2])"
        ),
        "f32[s0, 8]"
    );
    // Slices: exact for constant sizes, clamped; "to the end" on symbols.
    assert_eq!(
        node_type(
            x,
            "aten.slice.Tensor(self=%x, dim=2, start=2, end=100, step=3)"
        ),
        "f32[s0, 3, 2]"
    );
    assert_eq!(
        node_type(
            x,
            "aten.slice.Tensor(self=%x, dim=2, start=-3, end=9223372036854775807)"
        ),
        "f32[s0, 3, 3]"
    );
    assert_eq!(
        node_type(
            x,
            "aten.slice.Tensor(self=%x, dim=0, start=1, end=9223372036854775807)"
        ),
        "f32[s0 - 1, 3, 8]"
    );
    assert_eq!(
        node_type(x, "aten.slice.Tensor(self=%x, dim=1, start=5, end=9)"),
        "f32[s0, 0, 8]"
    );
    assert_eq!(
        node_type(
            "input %a: f32[s0, 3] = user_input\ninput %b: f32[s1, 3] = user_input",
            "aten.cat.default(tensors=[%a, %b, %a])"
        ),
        "f32[2*s0 + s1, 3]"
    );
}

#[test]
fn reductions() {
    let x = "input %x: i32[s0, 3, 8] = user_input";
    assert_eq!(node_type(x, "aten.sum.default(self=%x)"), "i64[]");
    assert_eq!(
        node_type(
            x,
            "aten.sum.dim_IntList(self=%x, dim=[1, -1], keepdim=true)"
        ),
        "i64[s0, 1, 1]"
    );
    assert_eq!(
        node_type(x, "aten.sum.dim_IntList(self=%x, dim=[1], dtype=f32)"),
        "f32[s0, 8]"
    );
    assert_eq!(
        node_type(x, "aten.amax.default(self=%x, dim=[0])"),
        "i32[3, 8]"
    );
    assert_eq!(
        node_type(x, "aten.argmax.default(self=%x, dim=2)"),
        "i64[s0, 3]"
    );
    assert_eq!(node_type(x, "aten.argmax.default(self=%x)"), "i64[]");
    assert_eq!(
        node_type(x, "aten.cumsum.default(self=%x, dim=1)"),
        "i64[s0, 3, 8]"
    );
    assert_eq!(
        node_type(
            "input %x: f32[s0, 8] = user_input",
            "aten.mean.dim(self=%x, dim=[-1], keepdim=true)"
        ),
        "f32[s0, 1]"
    );
}

#[test]
fn conv_output_sizes() {
    let x = "input %x: f32[s0, 3, 32, 30] = user_input\ninput %w: f32[16, 3, 3, 3] = user_input";
    assert_eq!(
        node_type(x, "aten.conv2d.default(input=%x, weight=%w, bias=None, stride=[2, 2], padding=[1, 1], dilation=[1, 1], groups=1)"),
        "f32[s0, 16, 16, 15]"
    );
    assert_eq!(
        node_type(
            x,
            "aten.conv2d.default(input=%x, weight=%w, stride=[1], padding=[0], dilation=[2])"
        ),
        "f32[s0, 16, 28, 26]"
    );
    assert_eq!(
        node_type(
            x,
            "aten.conv2d.padding(input=%x, weight=%w, padding=\"same\")"
        ),
        "f32[s0, 16, 32, 30]"
    );
    // Transposed: (in - 1) * stride - 2 * pad + dilation * (k - 1) + output_padding + 1.
    let t = "input %x: f32[1, 16, 7, 7] = user_input\ninput %w: f32[16, 4, 3, 3] = user_input";
    assert_eq!(
        node_type(t, "aten.convolution.default(input=%x, weight=%w, bias=None, stride=[2, 2], padding=[1, 1], dilation=[1, 1], transposed=true, output_padding=[1, 1], groups=2)"),
        "f32[1, 8, 14, 14]"
    );
    let sym = "input %x: f32[1, 3, s0] = user_input\ninput %w: f32[8, 3, 5] = user_input";
    assert_eq!(
        node_type(
            sym,
            "aten.conv1d.default(input=%x, weight=%w, stride=[1], padding=[2])"
        ),
        "f32[1, 8, s0]"
    );
}

#[test]
fn pooling_and_ceil_mode() {
    let x = "input %x: f32[1, 2, 5, 6] = user_input";
    assert_eq!(
        node_type(
            x,
            "aten.max_pool2d.default(self=%x, kernel_size=[2, 2], stride=[2, 2])"
        ),
        "f32[1, 2, 2, 3]"
    );
    assert_eq!(
        node_type(x, "aten.max_pool2d.default(self=%x, kernel_size=[2, 2], stride=[2, 2], padding=[0, 0], dilation=[1, 1], ceil_mode=true)"),
        "f32[1, 2, 3, 3]"
    );
    // The last window would start in the padding: dropped.
    assert_eq!(
        node_type(x, "aten.max_pool2d.default(self=%x, kernel_size=[2, 2], stride=[2, 2], padding=[1, 1], ceil_mode=true)"),
        "f32[1, 2, 3, 4]"
    );
    assert_eq!(
        node_type(
            x,
            "aten.avg_pool2d.default(self=%x, kernel_size=[3, 3], stride=[], ceil_mode=true)"
        ),
        "f32[1, 2, 2, 2]"
    );
    assert_eq!(
        node_type(
            x,
            "aten.adaptive_avg_pool2d.default(self=%x, output_size=[1, 1])"
        ),
        "f32[1, 2, 1, 1]"
    );
    let t = "input %x: f32[1, 2, 5, 6] = user_input\n%v: ?, %i: ? = aten.max_pool2d_with_indices.default(self=%x, kernel_size=[3, 3], stride=[2, 2], padding=[1, 1])\noutput %v = user_output\n";
    assert_eq!(
        infer_all(t, &["v", "i"]),
        ["f32[1, 2, 3, 3]", "i64[1, 2, 3, 3]"]
    );
}

#[test]
fn split_list_outputs() {
    let t = "range s0 = [1, 64]\ninput %x: f32[10, s0] = user_input\n\
             [%a: ?, %b: ?, %c: ?] = aten.split.Tensor(self=%x, split_size=4)\n\
             [%d: ?, %e: ?] = aten.split_with_sizes.default(self=%x, split_sizes=[3, 7])\n\
             [%f: ?, %g: ?] = aten.unbind.int(self=%x, dim=1)\n\
             output %a = user_output\n";
    assert_eq!(
        infer_all(t, &["a", "b", "c", "d", "e", "f"]),
        [
            "f32[4, s0]",
            "f32[4, s0]",
            "f32[2, s0]",
            "f32[3, s0]",
            "f32[7, s0]",
            "f32[10]"
        ]
    );
    let s =
        "range s0 = [1, 64]\ninput %x: f32[s0, 6] = user_input\ninput %k: f32[s1] = user_input\n\
             %n: sym_int = aten.sym_size.int(self=%k, dim=0)\n\
             [%a: ?, %b: ?] = aten.split.Tensor(self=%x, split_size=%n)\n\
             output %a = user_output\n";
    assert_eq!(infer_all(s, &["a", "b"]), ["f32[s1, 6]", "f32[s0 - s1, 6]"]);
}

#[test]
fn matmul_family() {
    let mm = |a: &str, b: &str, op: &str| {
        node_type(
            &format!("input %a: f32[{a}] = user_input\ninput %b: f32[{b}] = user_input"),
            &format!("aten.{op}(self=%a, other=%b)"),
        )
    };
    assert_eq!(mm("s0, 3, 4", "4, 5", "matmul.default"), "f32[s0, 3, 5]");
    assert_eq!(mm("4", "2, 4, 5", "matmul.default"), "f32[2, 5]");
    assert_eq!(
        mm("s0, 1, 3, 4", "7, 4, 5", "matmul.default"),
        "f32[s0, 7, 3, 5]"
    );
    assert_eq!(mm("3, 4", "4", "matmul.default"), "f32[3]");
    assert_eq!(mm("4", "4", "matmul.default"), "f32[]");
    assert_eq!(
        node_type(
            "input %x: f32[s0, 7, 16] = user_input\ninput %w: f32[32, 16] = user_input\ninput %b: f32[32] = user_input",
            "aten.linear.default(input=%x, weight=%w, bias=%b)"
        ),
        "f32[s0, 7, 32]"
    );
    assert_eq!(
        node_type(
            "input %b: f32[32] = user_input\ninput %x: f32[s0, 16] = user_input\ninput %w: f32[16, 32] = user_input",
            "aten.addmm.default(self=%b, mat1=%x, mat2=%w)"
        ),
        "f32[s0, 32]"
    );
    let e = node_err(
        "input %a: f32[3, 4] = user_input\ninput %b: f32[5, 6] = user_input",
        "aten.mm.default(self=%a, mat2=%b)",
    );
    assert!(e.contains("inner dims"), "{e}");
}

#[test]
fn norms_indexing_creation() {
    let t = "input %x: f32[s0, 4, 6] = user_input\ninput %w: f32[4] = user_input\n\
             %o: ?, %m: ?, %v: ? = aten._native_batch_norm_legit_no_training.default(input=%x, weight=%w, bias=%w, running_mean=%w, running_var=%w, momentum=0.1, eps=1e-5)\n\
             %lo: ?, %lm: ?, %lr: ? = aten.native_layer_norm.default(input=%x, normalized_shape=[6], weight=None, bias=None, eps=1e-5)\n\
             output %o = user_output\n";
    assert_eq!(
        infer_all(t, &["o", "m", "v", "lm"]),
        ["f32[s0, 4, 6]", "f32[0]", "f32[0]", "f32[s0, 4, 1]"]
    );
    assert_eq!(
        node_type(
            "input %w: f32[100, 16] = user_input\ninput %i: i64[s0, 7] = user_input",
            "aten.embedding.default(weight=%w, indices=%i)"
        ),
        "f32[s0, 7, 16]"
    );
    assert_eq!(
        node_type(
            "input %x: f32[5, 6, 7] = user_input\ninput %i: i64[s0] = user_input",
            "aten.index.Tensor(self=%x, indices=[None, %i])"
        ),
        "f32[5, s0, 7]"
    );
    assert_eq!(
        node_type(
            "input %x: f32[5, 6, 7] = user_input\ninput %i: i64[2, 1] = user_input\ninput %j: i64[3] = user_input",
            "aten.index.Tensor(self=%x, indices=[%i, None, %j])"
        ),
        "f32[2, 3, 6]"
    );
    assert_eq!(
        node_type("", "aten.arange.start_step(start=0, end=10, step=3)"),
        "i64[4]"
    );
    assert_eq!(node_type("", "aten.arange.default(end=2.5)"), "f32[3]");
    assert_eq!(
        node_type("", "aten.arange.start(start=1, end=5, dtype=f32)"),
        "f32[4]"
    );
    assert_eq!(
        node_type(
            "input %x: f32[s0, 3] = user_input\n%n: sym_int = aten.sym_size.int(self=%x, dim=0)",
            "aten.arange.default(end=%n)"
        ),
        "i64[s0]"
    );
    assert_eq!(
        node_type("", "aten.full.default(size=[2, 3], fill_value=1)"),
        "i64[2, 3]"
    );
    assert_eq!(node_type("", "aten.zeros.default(size=[2])"), "f32[2]");
    assert_eq!(
        node_type(
            "input %x: f32[s0] = user_input",
            "aten._to_copy.default(self=%x, dtype=f16)"
        ),
        "f16[s0]"
    );
}

#[test]
fn inplace_and_scatter_keep_self() {
    let x = "input %x: f32[s0, 4] = user_input\ninput %s: f32[4] = user_input";
    assert_eq!(node_type(x, "aten.relu_.default(self=%x)"), "f32[s0, 4]");
    assert_eq!(
        node_type(x, "aten.add_.Tensor(self=%x, other=%s)"),
        "f32[s0, 4]"
    );
    assert_eq!(
        node_type(
            x,
            "aten.select_scatter.default(self=%x, src=%s, dim=0, index=0)"
        ),
        "f32[s0, 4]"
    );
}

#[test]
fn lstm_and_attention() {
    let t = "input %x: f32[s0, 5, 8] = user_input\ninput %h: f32[2, 5, 16] = user_input\ninput %c: f32[2, 5, 16] = user_input\ninput %w: f32[64, 8] = user_input\n\
             %o: ?, %hn: ?, %cn: ? = aten.lstm.input(input=%x, hx=[%h, %c], params=[%w], has_biases=false, num_layers=1, dropout=0.0, train=false, bidirectional=true, batch_first=false)\n\
             output %o = user_output\n";
    assert_eq!(
        infer_all(t, &["o", "hn", "cn"]),
        ["f32[s0, 5, 32]", "f32[2, 5, 16]", "f32[2, 5, 16]"]
    );
    assert_eq!(
        node_type(
            "input %q: f32[2, 4, s0, 8] = user_input\ninput %v: f32[2, 4, s1, 6] = user_input",
            "aten.scaled_dot_product_attention.default(query=%q, key=%q, value=%v)"
        ),
        "f32[2, 4, s0, 6]"
    );
}

#[test]
fn subgraphs_are_typed_from_outer_args() {
    let t = "input %x: f32[3, 4] = user_input\n\
             %r: ? = higher_order.wrap_with_set_grad_enabled(false, graph g {\n\
               input %a: ?\n\
               %b: ? = aten.sum.dim_IntList(self=%a, dim=[0])\n\
               output %b\n\
             }, %x)\n\
             output %r = user_output\n";
    assert_eq!(infer(t, "r"), "f32[4]");
}

#[test]
fn map_and_scan_bodies_see_one_element_and_outputs_are_stacked() {
    let t = "range s0 = [1, 64]\n\
             input %xs: f32[s0, 2, 3] = user_input\n\
             input %w: f32[3, 4] = user_input\n\
             %m: ?, %n: ? = higher_order.map_impl(graph body {\n\
               input %x: ?\n\
               input %v: ?\n\
               %y: ? = aten.mm.default(self=%x, mat2=%v)\n\
               %s: ? = aten.sum.dim_IntList(self=%x, dim=[-1])\n\
               output %y\n\
               output %s\n\
             }, [%xs], [%w])\n\
             output %m = user_output\n\
             output %n = user_output\n";
    assert_eq!(infer_all(t, &["m", "n"]), ["f32[s0, 2, 4]", "f32[s0, 2]"]);
    let t = "range s0 = [1, 64]\n\
             input %xs: f32[s0, 3] = user_input\n\
             input %init: f32[3] = user_input\n\
             %c: ?, %ys: ? = higher_order.scan(graph combine {\n\
               input %a: ?\n\
               input %b: ?\n\
               %n: ? = aten.add.Tensor(self=%a, other=%b)\n\
               %e: ? = aten.sum.default(self=%n)\n\
               output %n\n\
               output %e\n\
             }, [%init], [%xs], [])\n\
             output %c = user_output\n\
             output %ys = user_output\n";
    assert_eq!(infer_all(t, &["c", "ys"]), ["f32[3]", "f32[s0]"]);
    let t = "input %x: f32[3] = user_input\n\
             %p: ? = aten.gt.Scalar(self=%x, other=0)\n\
             %q: ? = aten.any.default(self=%p)\n\
             %r: ? = higher_order.cond(%q, graph t {\n\
               input %a: ?\n\
               %b: ? = aten.sum.dim_IntList(self=%a, dim=[0], keepdim=true)\n\
               output %b\n\
             }, graph f {\n\
               input %a: ?\n\
               %b: ? = aten.amax.default(self=%a, dim=[0], keepdim=true)\n\
               output %b\n\
             }, [%x])\n\
             output %r = user_output\n";
    assert_eq!(infer(t, "r"), "f32[1]");
}

#[test]
fn while_loop_body_changing_a_carried_shape_is_refused() {
    let t = "input %x: f32[2] = user_input\n\
             input %i: i64[] = user_input\n\
             %k: ?, %y: ? = higher_order.while_loop(graph c {\n\
               input %j: ?\n\
               input %h: ?\n\
               %l: ? = aten.lt.Scalar(self=%j, other=3)\n\
               output %l\n\
             }, graph body {\n\
               input %j: ?\n\
               input %h: ?\n\
               %j1: ? = aten.add.Scalar(self=%j, other=1)\n\
               %h1: ? = aten.cat.default(tensors=[%h, %h])\n\
               output %j1\n\
               output %h1\n\
             }, [%i, %x], [])\n\
             output %y = user_output\n";
    let e = propagate(&mut prog(t).graph).unwrap_err().to_string();
    assert!(
        e.contains("node k") && e.contains("returns f32[4] for carried input 1, which is f32[2]"),
        "{e}"
    );
    let ok = t.replace(
        "aten.cat.default(tensors=[%h, %h])",
        "aten.neg.default(self=%h)",
    );
    assert_eq!(infer(&ok, "y"), "f32[2]");
}

#[test]
fn recorded_mismatch_is_a_verify_error() {
    let t = "input %x: f32[3, 4] = user_input\n%y: f32[3, 5] = aten.relu.default(self=%x)\noutput %y = user_output\n";
    let mut p = prog(t);
    let e = ShapeProp
        .run(&mut p, &mut PassContext::default())
        .unwrap_err();
    assert!(matches!(e, Error::Verify(_)), "{e}");
    let s = e.to_string();
    assert!(
        s.contains("f32[3, 5]") && s.contains("f32[3, 4]") && s.contains("y"),
        "{s}"
    );
    // Symbolic dims that are not provably different are accepted.
    let ok = "range s0 = [1, 8]\ninput %x: f32[s0] = user_input\n%y: f32[s1] = aten.relu.default(self=%x)\noutput %y = user_output\n";
    assert!(propagate(&mut prog(ok).graph).is_ok());
    let dt = "input %x: f32[3] = user_input\n%y: i64[3] = aten.relu.default(self=%x)\noutput %y = user_output\n";
    assert!(matches!(
        propagate(&mut prog(dt).graph),
        Err(Error::Verify(_))
    ));
}

#[test]
fn unknown_op_is_named() {
    let e = node_err(
        "input %x: f32[3] = user_input",
        "aten.bincount.default(self=%x)",
    );
    assert!(e.contains("no shape rule for aten.bincount.default"), "{e}");
    let e = node_err(
        "input %x: f32[3] = user_input",
        "\"mylib.foo.default\"(x=%x)",
    );
    assert!(e.contains("no shape rule for mylib.foo.default"), "{e}");
}

const SIG: &str = "range s0 = [1, 4096]\n\
    input %w: f32[8, 8] = parameter \"w\"\n\
    input %x: f32[s0, 8] = user_input\n\
    input %m: i64[s0, 2*s0] = user_input\n\
    %y: ? = aten.relu.default(self=%x)\n\
    output %y = user_output\n";

fn bind(inputs: &[(DType, Vec<usize>)]) -> Result<HashMap<String, i64>> {
    bind_inputs(&prog(SIG), inputs)
}

fn bind_err(inputs: &[(DType, Vec<usize>)]) -> (String, String) {
    match bind(inputs) {
        Err(Error::Input { name, msg }) => (name, msg),
        other => panic!("expected an input error, got {other:?}"),
    }
}

#[test]
fn bind_inputs_binds_and_checks() {
    let env = bind(&[(DType::F32, vec![5, 8]), (DType::I64, vec![5, 10])]).unwrap();
    assert_eq!(env.get("s0"), Some(&5));

    let (n, m) = bind_err(&[(DType::F32, vec![5, 8])]);
    assert!(m.contains("expected 2 inputs but got 1"), "{n}: {m}");

    let (n, m) = bind_err(&[(DType::F64, vec![5, 8]), (DType::I64, vec![5, 10])]);
    assert_eq!(n, "x");
    assert!(m.contains("dtype is f64") && m.contains("f32"), "{m}");

    let (n, m) = bind_err(&[(DType::F32, vec![5, 8, 1]), (DType::I64, vec![5, 10])]);
    assert_eq!(n, "x");
    assert!(m.contains("rank is 3"), "{m}");

    let (n, m) = bind_err(&[(DType::F32, vec![5, 9]), (DType::I64, vec![5, 10])]);
    assert_eq!(n, "x");
    assert!(m.contains("dim 1 is 9") && m.contains("expects 8"), "{m}");

    let (n, m) = bind_err(&[(DType::F32, vec![5000, 8]), (DType::I64, vec![5000, 10000])]);
    assert_eq!(n, "x");
    assert_eq!(m, "dim 0 is 5000, outside the range [1, 4096] of s0");

    let (n, m) = bind_err(&[(DType::F32, vec![5, 8]), (DType::I64, vec![6, 12])]);
    assert_eq!(n, "m");
    assert!(m.contains("dim 0 is 6") && m.contains("s0 is 5"), "{m}");

    // A compound dim is evaluated once its symbols are bound.
    let (n, m) = bind_err(&[(DType::F32, vec![5, 8]), (DType::I64, vec![5, 11])]);
    assert_eq!(n, "m");
    assert!(m.contains("dim 1 is 11") && m.contains("10"), "{m}");

    let e = bind(&[(DType::F32, vec![5, 8]), (DType::I64, vec![5, 11])]).unwrap_err();
    assert!(e.to_string().starts_with("input m: dim 1"), "{e}");
}

#[test]
fn subgraph_input_mismatch_is_reported() {
    let t = "input %x: f32[3, 4] = user_input\n\
             %r: ? = higher_order.wrap_with_set_grad_enabled(false, graph g {\n\
               input %a: f32[3, 5]\n\
               %b: ? = aten.neg.default(self=%a)\n\
               output %b\n\
             }, %x)\n\
             output %r = user_output\n";
    let e = propagate(&mut prog(t).graph).unwrap_err().to_string();
    assert!(e.contains("node r") && e.contains("f32[3, 5]"), "{e}");
}

#[test]
fn autocast_region_lowers_matmuls() {
    let t = "input %x: f32[2, 4] = user_input\ninput %w: f32[3, 4] = user_input\n\
             %r: ? = higher_order.wrap_with_autocast(\"cpu\", bf16, true, false, graph g {\n\
               input %a: ?\n\
               input %b: ?\n\
               %l: ? = aten.linear.default(input=%a, weight=%b)\n\
               %s: ? = aten.relu.default(self=%l)\n\
               output %s\n\
             }, %x, %w)\n\
             output %r = user_output\n";
    assert_eq!(infer(t, "r"), "bf16[2, 3]");
}

#[test]
fn symbolic_scalar_builtins() {
    let t = "range s0 = [1, 64]\ninput %x: f32[s0, 6] = user_input\n\
             %n: sym_int = aten.sym_size.int(self=%x, dim=0)\n\
             %m: sym_int = _operator.mul(%n, 6)\n\
             %y: ? = aten.view.default(self=%x, size=[%m])\n\
             output %y = user_output\n";
    assert_eq!(infer(t, "y"), "f32[6*s0]");
}

/// No rule panics, whatever the arguments: every op is tried with 0-dim
/// and odd inputs and out-of-range constants.
#[test]
fn no_rule_panics_on_bad_arguments() {
    let inputs = "range s0 = [1, 8]\ninput %s: f32[] = user_input\ninput %x: f32[s0, 3] = user_input\ninput %i: i64[0] = user_input\n";
    let arg_sets = [
        "self=%s",
        "self=%s, dim=0, other=%s, input=%s, weight=%s, index=%s, tensors=[%s, %s]",
        "self=%x, dim=-100, other=%i, input=%x, weight=%x, mat2=%x, size=[-1, -1], shape=[0, -1]",
        "self=%x, dim=1, start=-9223372036854775808, end=9223372036854775807, step=9223372036854775807, split_size=9223372036854775807, chunks=0",
        "self=%x, input=%x, weight=%x, kernel_size=[0], stride=[0], padding=[-5], dilation=[0], output_size=[-3, 2], normalized_shape=[1, 2, 3, 4], indices=[%x, %x, %x], tensors=[%x, %s], dims=[0, 0], sizes=[-1, -1], pad=[1, 2, 3], split_sizes=[9223372036854775807, 9223372036854775807]",
        "self=%i, dim=0, index=%i, src=%i, query=%x, key=%x, value=%s, hx=[%s], end=%s, start=1.5",
    ];
    for a in crate::ir::Aten::ALL {
        for ov in ["default", "int", "Tensor", "dim"] {
            for args in arg_sets {
                let text = format!(
                    "{inputs}%y: ?, %z: ?, %w: ? = aten.{}.{ov}({args})\noutput %y = user_output\n",
                    a.name()
                );
                let p = prog(&text);
                let _ = infer_node(&p.graph, &p.graph.nodes[0]);
            }
        }
    }
}

#[test]
fn einsum_and_friends() {
    let x = "input %a: f32[s0, 3, 4] = user_input\ninput %b: f32[s0, 4, 5] = user_input";
    assert_eq!(
        node_type(
            x,
            "aten.einsum.default(equation=\"bij,bjk->bik\", tensors=[%a, %b])"
        ),
        "f32[s0, 3, 5]"
    );
    assert_eq!(
        node_type(
            x,
            "aten.einsum.default(equation=\"bij,bjk\", tensors=[%a, %b])"
        ),
        "f32[3, 5]"
    );
    assert_eq!(
        node_type(
            "input %a: f32[2, 3, 4] = user_input",
            "aten.repeat_interleave.self_int(self=%a, repeats=2, dim=1)"
        ),
        "f32[2, 6, 4]"
    );
}

#[test]
fn clamp_promotes_integer_inputs() {
    let x = "input %x: i64[s0] = user_input\ninput %m: f32[1] = user_input";
    assert_eq!(
        node_type(x, "aten.clamp.default(self=%x, min=0.5)"),
        "f32[s0]"
    );
    assert_eq!(
        node_type(x, "aten.clamp.default(self=%x, min=0, max=3)"),
        "i64[s0]"
    );
    assert_eq!(
        node_type(x, "aten.clamp.Tensor(self=%x, min=%m)"),
        "f32[s0]"
    );
}

#[test]
fn bind_inputs_solves_linear_dims() {
    let p = prog(
        "range s0 = [1, 100]\ninput %x: f32[2*s0 + 1] = user_input\ninput %y: f32[s0 + 3] = user_input\n%z: ? = aten.relu.default(self=%y)\noutput %z = user_output\n",
    );
    let env = bind_inputs(&p, &[(DType::F32, vec![9]), (DType::F32, vec![7])]).unwrap();
    assert_eq!(env.get("s0"), Some(&4));
    let e = bind_inputs(&p, &[(DType::F32, vec![9]), (DType::F32, vec![8])]).unwrap_err();
    assert!(
        matches!(&e, Error::Input { name, msg } if name == "y" && msg.contains("dim 0 is 8")),
        "{e}"
    );
    // 10 = 2*s0 + 1 has no integer solution.
    let e = bind_inputs(&p, &[(DType::F32, vec![10]), (DType::F32, vec![7])]).unwrap_err();
    assert!(
        matches!(&e, Error::Input { name, .. } if name == "x"),
        "{e}"
    );
}

#[test]
fn slice_bounds_use_symbol_ranges() {
    let t = |range: &str, node: &str| {
        infer(
            &format!("range s0 = {range}\ninput %x: f32[s0, 2] = user_input\n%y: ? = {node}\noutput %y = user_output\n"),
            "y",
        )
    };
    let head = "aten.slice.Tensor(self=%x, dim=0, start=0, end=3)";
    assert_eq!(t("[4, 64]", head), "f32[3, 2]");
    assert_eq!(t("[1, 64]", head), "f32[Min(3, s0), 2]");
    let tail = "aten.slice.Tensor(self=%x, dim=0, start=-3, end=9223372036854775807)";
    assert_eq!(t("[3, 64]", tail), "f32[3, 2]");
    let mid = "aten.slice.Tensor(self=%x, dim=0, start=1, end=-1)";
    assert_eq!(t("[2, 64]", mid), "f32[s0 - 2, 2]");
}

#[test]
fn getitem_assert_and_gru() {
    let t = "input %x: f32[s0, 5, 8] = user_input\ninput %h: f32[1, 5, 16] = user_input\ninput %w: f32[48, 8] = user_input\n\
             aten._assert_tensor_metadata.default(a=%x, dtype=f32) @check\n\
             %o: ?, %hn: ? = aten.gru.input(input=%x, hx=%h, params=[%w], has_biases=false, num_layers=1, dropout=0.0, train=false, bidirectional=false, batch_first=false)\n\
             %g: ? = _operator.getitem(%o, 0)\n\
             [%a: ?, %b: ?] = aten.unbind.int(self=%x)\n\
             %c: ? = _operator.getitem([%a, %b], -1)\n\
             output %g = user_output\n";
    assert_eq!(
        infer_all(t, &["o", "hn", "g", "c"]),
        [
            "f32[s0, 5, 16]",
            "f32[1, 5, 16]",
            "f32[s0, 5, 16]",
            "f32[5, 8]"
        ]
    );
}
