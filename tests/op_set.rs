//! The op set the export pipeline can leave in a graph, and whether the
//! compiler lowers each op natively.
//!
//! The set is derived from the code: every ATen op the interpreter has a
//! kernel for ([`torchlift::interp::kernel_ops`]) that the export passes
//! do not always remove ([`torchlift::passes::export_removes`]). Each op of
//! the set is either lowered natively, shown by a one-node graph in
//! [`NATIVE`] that the scheduler plans without a fallback kernel, or listed
//! in [`GAPS`] with the reason it still runs its reference kernel. A new op
//! in the set that is in neither fails the test, as does an entry for an op
//! outside the set, an op in both lists, or a gap that turns out lowered.

use std::collections::BTreeSet;

use torchlift::codegen::kernel::KernelKind;
use torchlift::ir::parse::parse_program;

/// One-node graphs (inputs `name: type` separated by `;`, then the node
/// defining `%r`) that the scheduler must plan natively, by op.
const NATIVE: &[(&str, &str, &str)] = &[
    ("__and__", "a: bool[2, 8]; b: bool[2, 8]", "%r: bool[2, 8] = aten.__and__.Tensor(self=%a, other=%b)"),
    ("__or__", "a: bool[2, 8]; b: bool[2, 8]", "%r: bool[2, 8] = aten.__or__.Tensor(self=%a, other=%b)"),
    ("__xor__", "a: bool[2, 8]; b: bool[2, 8]", "%r: bool[2, 8] = aten.__xor__.Tensor(self=%a, other=%b)"),
    ("_adaptive_avg_pool2d", "x: f32[1, 2, 5, 7]", "%r: f32[1, 2, 2, 3] = aten._adaptive_avg_pool2d.default(self=%x, output_size=[2, 3])"),
    ("_cdist_forward", "x: f32[2, 8]; y: f32[3, 8]", "%r: f32[2, 3] = aten._cdist_forward.default(x1=%x, x2=%y, p=2.0, compute_mode=None)"),
    ("_embedding_bag", "w: f32[8, 3]; i: i64[6]; o: i64[3]", "%r: f32[3, 3], %r1: i64[0], %r2: i64[3], %r3: i64[3] = aten._embedding_bag.default(weight=%w, indices=%i, offsets=%o, mode=1)"),
    ("_log_softmax", "x: f32[2, 8]", "%r: f32[2, 8] = aten._log_softmax.default(self=%x, dim=1, half_to_float=false)"),
    ("_native_batch_norm_legit", "x: f32[2, 3, 4]", "%r: f32[2, 3, 4], %r1: f32[3], %r2: f32[3] = aten._native_batch_norm_legit.no_stats(input=%x, weight=None, bias=None, training=true, momentum=0.1, eps=1e-05)"),
    ("_native_batch_norm_legit_no_training", "x: f32[2, 3, 4]; w: f32[3]; b: f32[3]; m: f32[3]; v: f32[3]", "%r: f32[2, 3, 4], %r1: f32[0], %r2: f32[0] = aten._native_batch_norm_legit_no_training.default(input=%x, weight=%w, bias=%b, running_mean=%m, running_var=%v, momentum=0.1, eps=1e-05)"),
    ("_prelu_kernel", "x: f32[2, 3, 4]; w: f32[3]", "%r: f32[2, 3, 4] = aten._prelu_kernel.default(self=%x, weight=%w)"),
    ("_safe_softmax", "x: f32[2, 8]", "%r: f32[2, 8] = aten._safe_softmax.default(self=%x, dim=1)"),
    ("_softmax", "x: f32[2, 8]", "%r: f32[2, 8] = aten._softmax.default(self=%x, dim=1, half_to_float=false)"),
    ("_to_copy", "x: f32[2, 8]", "%r: f64[2, 8] = aten._to_copy.default(self=%x, dtype=f64)"),
    ("_trilinear", "x: f32[2, 4]; w: f32[3, 4, 5]; y: f32[2, 5]", "%r: f32[2, 3] = aten._trilinear.default(i1=%x, i2=%w, i3=%y, expand1=[1, 3], expand2=[0], expand3=[1, 2], sumdim=[2, 3])"),
    ("_unsafe_index", "x: f32[2, 8]; i: i64[3]", "%r: f32[3, 8] = aten._unsafe_index.Tensor(self=%x, indices=[%i])"),
    ("_unsafe_index_put", "x: f32[8, 4]; i: i64[3]; v: f32[3, 4]", "%r: f32[8, 4] = aten._unsafe_index_put.default(self=%x, indices=[%i], values=%v, accumulate=true)"),
    ("_unsafe_view", "x: f32[2, 8]", "%r: f32[16] = aten._unsafe_view.default(self=%x, size=[16])"),
    ("_upsample_nearest_exact2d", "x: f32[1, 2, 3, 4]", "%r: f32[1, 2, 6, 5] = aten._upsample_nearest_exact2d.default(self=%x, output_size=[6, 5])"),
    ("_weight_norm", "v: f32[2, 8]; g: f32[2, 1]", "%r: f32[2, 8] = aten._weight_norm.default(v=%v, g=%g)"),
    ("abs", "x: f32[2, 8]", "%r: f32[2, 8] = aten.abs.default(self=%x)"),
    ("adaptive_avg_pool1d", "x: f32[2, 3, 8]", "%r: f32[2, 3, 3] = aten.adaptive_avg_pool1d.default(self=%x, output_size=[3])"),
    ("adaptive_max_pool2d", "x: f32[1, 2, 5, 7]", "%r: f32[1, 2, 2, 3], %r1: i64[1, 2, 2, 3] = aten.adaptive_max_pool2d.default(self=%x, output_size=[2, 3])"),
    ("add", "x: f32[2, 8]; y: f32[2, 8]", "%r: f32[2, 8] = aten.add.Tensor(self=%x, other=%y)"),
    ("addcdiv", "x: f32[2, 8]; y: f32[2, 8]; z: f32[2, 8]", "%r: f32[2, 8] = aten.addcdiv.default(self=%x, tensor1=%y, tensor2=%z, value=0.5)"),
    ("addcmul", "x: f32[2, 8]; y: f32[2, 8]; z: f32[2, 8]", "%r: f32[2, 8] = aten.addcmul.default(self=%x, tensor1=%y, tensor2=%z)"),
    ("addmm", "b: f32[8]; x: f32[2, 3]; y: f32[3, 8]", "%r: f32[2, 8] = aten.addmm.default(self=%b, mat1=%x, mat2=%y)"),
    ("alias", "x: f32[2, 8]", "%r: f32[2, 8] = aten.alias.default(self=%x)"),
    ("all", "a: bool[2, 8]", "%r: bool[2] = aten.all.dim(self=%a, dim=1)"),
    ("amax", "x: f32[2, 8]", "%r: f32[2] = aten.amax.default(self=%x, dim=[1])"),
    ("amin", "x: f32[2, 8]", "%r: f32[2] = aten.amin.default(self=%x, dim=[1])"),
    ("aminmax", "x: f32[2, 8]", "%r: f32[2], %r1: f32[2] = aten.aminmax.default(self=%x, dim=1)"),
    ("any", "a: bool[2, 8]", "%r: bool[2] = aten.any.dim(self=%a, dim=1)"),
    ("arange", "", "%r: i64[5] = aten.arange.start_step(start=0, end=5, step=1, dtype=i64)"),
    ("argmax", "x: f32[2, 8]", "%r: i64[2] = aten.argmax.default(self=%x, dim=1)"),
    ("argmin", "x: f32[2, 8]", "%r: i64[2] = aten.argmin.default(self=%x, dim=1)"),
    ("argsort", "x: f32[2, 8]", "%r: i64[2, 8] = aten.argsort.default(self=%x)"),
    ("as_strided_scatter", "x: f32[2, 8]; s: f32[2, 3]", "%r: f32[2, 8] = aten.as_strided_scatter.default(self=%x, src=%s, size=[2, 3], stride=[8, 1])"),
    ("atan2", "x: f32[2, 8]; y: f32[2, 8]", "%r: f32[2, 8] = aten.atan2.default(self=%x, other=%y)"),
    ("avg_pool1d", "x: f32[2, 3, 8]", "%r: f32[2, 3, 4] = aten.avg_pool1d.default(self=%x, kernel_size=[2])"),
    ("avg_pool2d", "x: f32[1, 2, 4, 4]", "%r: f32[1, 2, 2, 2] = aten.avg_pool2d.default(self=%x, kernel_size=[2, 2])"),
    ("avg_pool3d", "x: f32[1, 2, 4, 4, 4]", "%r: f32[1, 2, 2, 2, 2] = aten.avg_pool3d.default(self=%x, kernel_size=[2, 2, 2])"),
    ("baddbmm", "s: f32[2, 3, 5]; x: f32[2, 3, 4]; y: f32[2, 4, 5]", "%r: f32[2, 3, 5] = aten.baddbmm.default(self=%s, batch1=%x, batch2=%y)"),
    ("bilinear", "x: f32[2, 4]; y: f32[2, 5]; w: f32[3, 4, 5]", "%r: f32[2, 3] = aten.bilinear.default(input1=%x, input2=%y, weight=%w)"),
    ("bitwise_and", "a: bool[2, 8]; b: bool[2, 8]", "%r: bool[2, 8] = aten.bitwise_and.Tensor(self=%a, other=%b)"),
    ("bitwise_not", "a: bool[2, 8]", "%r: bool[2, 8] = aten.bitwise_not.default(self=%a)"),
    ("bitwise_or", "a: bool[2, 8]; b: bool[2, 8]", "%r: bool[2, 8] = aten.bitwise_or.Tensor(self=%a, other=%b)"),
    ("bitwise_xor", "a: bool[2, 8]; b: bool[2, 8]", "%r: bool[2, 8] = aten.bitwise_xor.Tensor(self=%a, other=%b)"),
    ("bmm", "x: f32[2, 3, 4]; y: f32[2, 4, 5]", "%r: f32[2, 3, 5] = aten.bmm.default(self=%x, mat2=%y)"),
    ("cat", "x: f32[2, 8]; y: f32[2, 8]", "%r: f32[2, 16] = aten.cat.default(tensors=[%x, %y], dim=1)"),
    ("cdist", "x: f32[2, 8]; y: f32[3, 8]", "%r: f32[2, 3] = aten.cdist.default(x1=%x, x2=%y)"),
    ("ceil", "x: f32[2, 8]", "%r: f32[2, 8] = aten.ceil.default(self=%x)"),
    ("celu", "x: f32[2, 8]", "%r: f32[2, 8] = aten.celu.default(self=%x, alpha=2.0)"),
    ("channel_shuffle", "x: f32[2, 8]", "%r: f32[2, 8] = aten.channel_shuffle.default(self=%x, groups=2)"),
    ("chunk", "x: f32[2, 8]", "%r: f32[2, 4], %r1: f32[2, 4] = aten.chunk.default(self=%x, chunks=2, dim=1)"),
    ("clamp", "x: f32[2, 8]", "%r: f32[2, 8] = aten.clamp.default(self=%x, min=-1.0, max=1.0)"),
    ("clamp_max", "x: f32[2, 8]", "%r: f32[2, 8] = aten.clamp_max.default(self=%x, max=1.0)"),
    ("clamp_min", "x: f32[2, 8]", "%r: f32[2, 8] = aten.clamp_min.default(self=%x, min=1.0)"),
    ("clip", "x: f32[2, 8]", "%r: f32[2, 8] = aten.clip.default(self=%x, min=-1.0, max=1.0)"),
    ("clone", "x: f32[2, 8]", "%r: f32[2, 8] = aten.clone.default(self=%x)"),
    ("constant_pad_nd", "x: f32[2, 8]", "%r: f32[2, 10] = aten.constant_pad_nd.default(self=%x, pad=[1, 1], value=0.0)"),
    ("convolution", "x: f32[1, 2, 5, 5]; w: f32[3, 2, 3, 3]", "%r: f32[1, 3, 3, 3] = aten.convolution.default(input=%x, weight=%w, bias=None, stride=[1, 1], padding=[0, 0], dilation=[1, 1], transposed=false, output_padding=[0, 0], groups=1)"),
    ("copy", "x: f32[2, 8]; y: f32[2, 8]", "%r: f32[2, 8] = aten.copy.default(self=%x, src=%y)"),
    ("cos", "x: f32[2, 8]", "%r: f32[2, 8] = aten.cos.default(self=%x)"),
    ("cosine_similarity", "x: f32[2, 8]; y: f32[2, 8]", "%r: f32[2] = aten.cosine_similarity.default(x1=%x, x2=%y)"),
    ("cross", "x: f32[2, 3]; y: f32[2, 3]", "%r: f32[2, 3] = aten.cross.default(self=%x, other=%y)"),
    ("cumprod", "x: f32[2, 8]", "%r: f32[2, 8] = aten.cumprod.default(self=%x, dim=1)"),
    ("cumsum", "x: f32[2, 8]", "%r: f32[2, 8] = aten.cumsum.default(self=%x, dim=1)"),
    ("detach", "x: f32[2, 8]", "%r: f32[2, 8] = aten.detach.default(self=%x)"),
    ("diag", "x: f32[8]", "%r: f32[8, 8] = aten.diag.default(self=%x)"),
    ("diagonal", "x: f32[2, 8]", "%r: f32[2] = aten.diagonal.default(self=%x)"),
    ("diagonal_scatter", "x: f32[2, 8]; s: f32[2]", "%r: f32[2, 8] = aten.diagonal_scatter.default(self=%x, src=%s)"),
    ("diff", "x: f32[2, 8]", "%r: f32[2, 7] = aten.diff.default(self=%x, n=1, dim=1)"),
    ("div", "x: f32[2, 8]; y: f32[2, 8]", "%r: f32[2, 8] = aten.div.Tensor(self=%x, other=%y)"),
    ("dot", "x: f32[8]; y: f32[8]", "%r: f32[] = aten.dot.default(self=%x, tensor=%y)"),
    ("einsum", "x: f32[2, 3]; y: f32[3, 8]", "%r: f32[2, 8] = aten.einsum.default(equation=\"ij,jk->ik\", tensors=[%x, %y])"),
    ("elu", "x: f32[2, 8]", "%r: f32[2, 8] = aten.elu.default(self=%x)"),
    ("embedding", "w: f32[10, 4]; i: i64[3]", "%r: f32[3, 4] = aten.embedding.default(weight=%w, indices=%i)"),
    ("embedding_bag", "w: f32[8, 3]; i: i64[6]; o: i64[3]", "%r: f32[3, 3], %r1: i64[0], %r2: i64[3], %r3: i64[3] = aten.embedding_bag.default(weight=%w, indices=%i, offsets=%o)"),
    ("empty", "", "%r: f32[3] = aten.empty.memory_format(size=[3], dtype=f32)"),
    ("empty_like", "x: f32[2, 8]", "%r: f32[2, 8] = aten.empty_like.default(self=%x)"),
    ("empty_strided", "", "%r: f32[2, 3] = aten.empty_strided.default(size=[2, 3], stride=[3, 1], dtype=f32)"),
    ("eq", "x: f32[2, 8]; y: f32[2, 8]", "%r: bool[2, 8] = aten.eq.Tensor(self=%x, other=%y)"),
    ("erf", "x: f32[2, 8]", "%r: f32[2, 8] = aten.erf.default(self=%x)"),
    ("exp", "x: f32[2, 8]", "%r: f32[2, 8] = aten.exp.default(self=%x)"),
    ("expand", "x: f32[1, 8]", "%r: f32[2, 8] = aten.expand.default(self=%x, size=[2, 8])"),
    ("expand_as", "x: f32[1, 8]; y: f32[2, 8]", "%r: f32[2, 8] = aten.expand_as.default(self=%x, other=%y)"),
    ("expm1", "x: f32[2, 8]", "%r: f32[2, 8] = aten.expm1.default(self=%x)"),
    ("fill", "x: f32[2, 8]", "%r: f32[2, 8] = aten.fill.Scalar(self=%x, value=2.0)"),
    ("flatten", "x: f32[2, 8]", "%r: f32[16] = aten.flatten.using_ints(self=%x)"),
    ("flip", "x: f32[2, 8]", "%r: f32[2, 8] = aten.flip.default(self=%x, dims=[1])"),
    ("floor", "x: f32[2, 8]", "%r: f32[2, 8] = aten.floor.default(self=%x)"),
    ("floor_divide", "x: f32[2, 8]; y: f32[2, 8]", "%r: f32[2, 8] = aten.floor_divide.default(self=%x, other=%y)"),
    ("fmod", "x: f32[2, 8]; y: f32[2, 8]", "%r: f32[2, 8] = aten.fmod.Tensor(self=%x, other=%y)"),
    ("frac", "x: f32[2, 8]", "%r: f32[2, 8] = aten.frac.default(self=%x)"),
    ("full", "", "%r: f32[2, 3] = aten.full.default(size=[2, 3], fill_value=1.5, dtype=f32)"),
    ("full_like", "x: f32[2, 8]", "%r: f32[2, 8] = aten.full_like.default(self=%x, fill_value=2.0)"),
    ("gather", "x: f32[2, 8]; i: i64[2, 8]", "%r: f32[2, 8] = aten.gather.default(self=%x, dim=1, index=%i)"),
    ("ge", "x: f32[2, 8]; y: f32[2, 8]", "%r: bool[2, 8] = aten.ge.Tensor(self=%x, other=%y)"),
    ("gelu", "x: f32[2, 8]", "%r: f32[2, 8] = aten.gelu.default(self=%x)"),
    ("glu", "x: f32[2, 8]", "%r: f32[2, 4] = aten.glu.default(self=%x)"),
    ("gru", "x: f32[3, 2, 3]; h: f32[1, 2, 4]; wi: f32[12, 3]; wh: f32[12, 4]; bi: f32[12]; bh: f32[12]", "%r: f32[3, 2, 4], %r1: f32[1, 2, 4] = aten.gru.input(input=%x, hx=%h, params=[%wi, %wh, %bi, %bh], has_biases=true, num_layers=1, dropout=0.0, train=false, bidirectional=false, batch_first=false)"),
    ("gt", "x: f32[2, 8]; y: f32[2, 8]", "%r: bool[2, 8] = aten.gt.Tensor(self=%x, other=%y)"),
    ("hardshrink", "x: f32[2, 8]", "%r: f32[2, 8] = aten.hardshrink.default(self=%x)"),
    ("hardtanh", "x: f32[2, 8]", "%r: f32[2, 8] = aten.hardtanh.default(self=%x, min_val=-1.0, max_val=1.0)"),
    ("hypot", "x: f32[2, 8]; y: f32[2, 8]", "%r: f32[2, 8] = aten.hypot.default(self=%x, other=%y)"),
    ("im2col", "x: f32[1, 2, 3, 4]", "%r: f32[1, 8, 6] = aten.im2col.default(self=%x, kernel_size=[2, 2], dilation=[1, 1], padding=[0, 0], stride=[1, 1])"),
    ("index", "x: f32[2, 8]; i: i64[3]", "%r: f32[3, 8] = aten.index.Tensor(self=%x, indices=[%i])"),
    ("index_add", "x: f32[8, 3]; i: i64[4]; s: f32[4, 3]", "%r: f32[8, 3] = aten.index_add.default(self=%x, dim=0, index=%i, source=%s)"),
    ("index_copy", "x: f32[8, 3]; i: i64[4]; s: f32[4, 3]", "%r: f32[8, 3] = aten.index_copy.default(self=%x, dim=0, index=%i, source=%s)"),
    ("index_fill", "x: f32[8, 3]; i: i64[4]", "%r: f32[8, 3] = aten.index_fill.int_Scalar(self=%x, dim=0, index=%i, value=2.5)"),
    ("index_put", "x: f32[8, 4]; i: i64[3]; v: f32[3, 4]", "%r: f32[8, 4] = aten.index_put.default(self=%x, indices=[%i], values=%v)"),
    ("index_select", "x: f32[2, 8]; i: i64[3]", "%r: f32[2, 3] = aten.index_select.default(self=%x, dim=1, index=%i)"),
    ("isnan", "x: f32[2, 8]", "%r: bool[2, 8] = aten.isnan.default(self=%x)"),
    ("le", "x: f32[2, 8]; y: f32[2, 8]", "%r: bool[2, 8] = aten.le.Tensor(self=%x, other=%y)"),
    ("leaky_relu", "x: f32[2, 8]", "%r: f32[2, 8] = aten.leaky_relu.default(self=%x, negative_slope=0.1)"),
    ("lerp", "x: f32[2, 8]; y: f32[2, 8]", "%r: f32[2, 8] = aten.lerp.Scalar(self=%x, end=%y, weight=0.25)"),
    ("lift_fresh_copy", "x: f32[2, 8]", "%r: f32[2, 8] = aten.lift_fresh_copy.default(self=%x)"),
    ("linalg_cross", "x: f32[2, 3]; y: f32[2, 3]", "%r: f32[2, 3] = aten.linalg_cross.default(self=%x, other=%y)"),
    ("linalg_vector_norm", "x: f32[2, 8]", "%r: f32[2] = aten.linalg_vector_norm.default(self=%x, dim=[1])"),
    ("linear", "x: f32[2, 3]; w: f32[8, 3]; b: f32[8]", "%r: f32[2, 8] = aten.linear.default(input=%x, weight=%w, bias=%b)"),
    ("linspace", "", "%r: f32[5] = aten.linspace.default(start=0, end=1, steps=5, dtype=f32)"),
    ("log", "x: f32[2, 8]", "%r: f32[2, 8] = aten.log.default(self=%x)"),
    ("log1p", "x: f32[2, 8]", "%r: f32[2, 8] = aten.log1p.default(self=%x)"),
    ("log2", "x: f32[2, 8]", "%r: f32[2, 8] = aten.log2.default(self=%x)"),
    ("log_sigmoid", "x: f32[2, 8]", "%r: f32[2, 8] = aten.log_sigmoid.default(self=%x)"),
    ("log_softmax", "x: f32[2, 8]", "%r: f32[2, 8] = aten.log_softmax.int(self=%x, dim=1)"),
    ("logical_and", "a: bool[2, 8]; b: bool[2, 8]", "%r: bool[2, 8] = aten.logical_and.default(self=%a, other=%b)"),
    ("logical_not", "a: bool[2, 8]", "%r: bool[2, 8] = aten.logical_not.default(self=%a)"),
    ("logical_or", "a: bool[2, 8]; b: bool[2, 8]", "%r: bool[2, 8] = aten.logical_or.default(self=%a, other=%b)"),
    ("logical_xor", "a: bool[2, 8]; b: bool[2, 8]", "%r: bool[2, 8] = aten.logical_xor.default(self=%a, other=%b)"),
    ("logsumexp", "x: f32[2, 8]", "%r: f32[2] = aten.logsumexp.default(self=%x, dim=[1])"),
    ("lstm", "x: f32[3, 2, 3]; h: f32[1, 2, 4]; c: f32[1, 2, 4]; wi: f32[16, 3]; wh: f32[16, 4]; bi: f32[16]; bh: f32[16]", "%r: f32[3, 2, 4], %r1: f32[1, 2, 4], %r2: f32[1, 2, 4] = aten.lstm.input(input=%x, hx=[%h, %c], params=[%wi, %wh, %bi, %bh], has_biases=true, num_layers=1, dropout=0.0, train=false, bidirectional=false, batch_first=false)"),
    ("lt", "x: f32[2, 8]; y: f32[2, 8]", "%r: bool[2, 8] = aten.lt.Tensor(self=%x, other=%y)"),
    ("masked_fill", "x: f32[2, 8]; a: bool[2, 8]", "%r: f32[2, 8] = aten.masked_fill.Scalar(self=%x, mask=%a, value=1.0)"),
    ("matmul", "x: f32[2, 3]; y: f32[3, 8]", "%r: f32[2, 8] = aten.matmul.default(self=%x, other=%y)"),
    ("max", "x: f32[2, 8]", "%r: f32[2], %r1: i64[2] = aten.max.dim(self=%x, dim=1)"),
    ("max_pool1d", "x: f32[2, 3, 8]", "%r: f32[2, 3, 4] = aten.max_pool1d.default(self=%x, kernel_size=[2])"),
    ("max_pool2d_with_indices", "x: f32[1, 2, 4, 4]", "%r: f32[1, 2, 2, 2], %r1: i64[1, 2, 2, 2] = aten.max_pool2d_with_indices.default(self=%x, kernel_size=[2, 2], stride=[2, 2])"),
    ("maximum", "x: f32[2, 8]; y: f32[2, 8]", "%r: f32[2, 8] = aten.maximum.default(self=%x, other=%y)"),
    ("mean", "x: f32[2, 8]", "%r: f32[2] = aten.mean.dim(self=%x, dim=[1])"),
    ("min", "x: f32[2, 8]", "%r: f32[2], %r1: i64[2] = aten.min.dim(self=%x, dim=1)"),
    ("minimum", "x: f32[2, 8]; y: f32[2, 8]", "%r: f32[2, 8] = aten.minimum.default(self=%x, other=%y)"),
    ("mm", "x: f32[2, 3]; y: f32[3, 4]", "%r: f32[2, 4] = aten.mm.default(self=%x, mat2=%y)"),
    ("mul", "x: f32[2, 8]; y: f32[2, 8]", "%r: f32[2, 8] = aten.mul.Tensor(self=%x, other=%y)"),
    ("narrow", "x: f32[2, 8]", "%r: f32[2, 3] = aten.narrow.default(self=%x, dim=1, start=2, length=3)"),
    ("native_dropout", "x: f32[2, 8]", "%r: f32[2, 8], %r1: bool[2, 8] = aten.native_dropout.default(input=%x, p=0.5, train=false)"),
    ("native_group_norm", "x: f32[2, 4, 3]", "%r: f32[2, 4, 3], %r1: f32[2, 2], %r2: f32[2, 2] = aten.native_group_norm.default(input=%x, weight=None, bias=None, N=2, C=4, HxW=3, group=2, eps=1e-05)"),
    ("native_layer_norm", "x: f32[2, 8]", "%r: f32[2, 8], %r1: f32[2, 1], %r2: f32[2, 1] = aten.native_layer_norm.default(input=%x, normalized_shape=[8], weight=None, bias=None, eps=1e-05)"),
    ("ne", "x: f32[2, 8]; y: f32[2, 8]", "%r: bool[2, 8] = aten.ne.Tensor(self=%x, other=%y)"),
    ("neg", "x: f32[2, 8]", "%r: f32[2, 8] = aten.neg.default(self=%x)"),
    ("new_empty", "x: f32[2, 8]", "%r: f32[3] = aten.new_empty.default(self=%x, size=[3])"),
    ("new_full", "x: f32[2, 8]", "%r: f32[3] = aten.new_full.default(self=%x, size=[3], fill_value=2.0)"),
    ("new_ones", "x: f32[2, 8]", "%r: f32[3] = aten.new_ones.default(self=%x, size=[3])"),
    ("new_zeros", "x: f32[2, 8]", "%r: f32[3] = aten.new_zeros.default(self=%x, size=[3])"),
    ("numpy_T", "x: f32[2, 8]", "%r: f32[8, 2] = aten.numpy_T.default(self=%x)"),
    ("ones", "", "%r: f32[3] = aten.ones.default(size=[3], dtype=f32)"),
    ("ones_like", "x: f32[2, 8]", "%r: f32[2, 8] = aten.ones_like.default(self=%x)"),
    ("outer", "x: f32[2]; y: f32[8]", "%r: f32[2, 8] = aten.outer.default(self=%x, vec2=%y)"),
    ("pad", "x: f32[2, 8]", "%r: f32[2, 10] = aten.pad.default(self=%x, pad=[1, 1], mode=\"constant\", value=0.0)"),
    ("pairwise_distance", "x: f32[2, 8]; y: f32[2, 8]", "%r: f32[2] = aten.pairwise_distance.default(x1=%x, x2=%y)"),
    ("permute", "x: f32[2, 8]", "%r: f32[8, 2] = aten.permute.default(self=%x, dims=[1, 0])"),
    ("pixel_shuffle", "x: f32[1, 8, 2, 2]", "%r: f32[1, 2, 4, 4] = aten.pixel_shuffle.default(self=%x, upscale_factor=2)"),
    ("pixel_unshuffle", "x: f32[1, 2, 4, 4]", "%r: f32[1, 8, 2, 2] = aten.pixel_unshuffle.default(self=%x, downscale_factor=2)"),
    ("pow", "x: f32[2, 8]", "%r: f32[2, 8] = aten.pow.Tensor_Scalar(self=%x, exponent=2)"),
    ("prelu", "x: f32[2, 3, 4]; w: f32[3]", "%r: f32[2, 3, 4] = aten.prelu.default(self=%x, weight=%w)"),
    ("prod", "x: f32[2, 8]", "%r: f32[2] = aten.prod.dim_int(self=%x, dim=1)"),
    ("reciprocal", "x: f32[2, 8]", "%r: f32[2, 8] = aten.reciprocal.default(self=%x)"),
    ("reflection_pad1d", "x: f32[2, 8]", "%r: f32[2, 10] = aten.reflection_pad1d.default(self=%x, padding=[1, 1])"),
    ("reflection_pad2d", "x: f32[1, 4, 4]", "%r: f32[1, 6, 6] = aten.reflection_pad2d.default(self=%x, padding=[1, 1, 1, 1])"),
    ("reflection_pad3d", "x: f32[1, 3, 4, 4]", "%r: f32[1, 5, 6, 6] = aten.reflection_pad3d.default(self=%x, padding=[1, 1, 1, 1, 1, 1])"),
    ("relu", "x: f32[2, 8]", "%r: f32[2, 8] = aten.relu.default(self=%x)"),
    ("remainder", "x: f32[2, 8]; y: f32[2, 8]", "%r: f32[2, 8] = aten.remainder.Tensor(self=%x, other=%y)"),
    ("repeat", "x: f32[2, 8]", "%r: f32[4, 8] = aten.repeat.default(self=%x, repeats=[2, 1])"),
    ("repeat_interleave", "x: f32[2, 8]", "%r: f32[4, 8] = aten.repeat_interleave.self_int(self=%x, repeats=2, dim=0)"),
    ("replication_pad1d", "x: f32[2, 8]", "%r: f32[2, 10] = aten.replication_pad1d.default(self=%x, padding=[1, 1])"),
    ("replication_pad2d", "x: f32[1, 4, 4]", "%r: f32[1, 6, 6] = aten.replication_pad2d.default(self=%x, padding=[1, 1, 1, 1])"),
    ("replication_pad3d", "x: f32[1, 3, 4, 4]", "%r: f32[1, 5, 6, 6] = aten.replication_pad3d.default(self=%x, padding=[1, 1, 1, 1, 1, 1])"),
    ("rms_norm", "x: f32[2, 8]", "%r: f32[2, 8] = aten.rms_norm.default(input=%x, normalized_shape=[8])"),
    ("rnn_relu", "x: f32[3, 2, 3]; h: f32[1, 2, 4]; wi: f32[4, 3]; wh: f32[4, 4]; bi: f32[4]; bh: f32[4]", "%r: f32[3, 2, 4], %r1: f32[1, 2, 4] = aten.rnn_relu.input(input=%x, hx=%h, params=[%wi, %wh, %bi, %bh], has_biases=true, num_layers=1, dropout=0.0, train=false, bidirectional=false, batch_first=false)"),
    ("rnn_tanh", "x: f32[3, 2, 3]; h: f32[1, 2, 4]; wi: f32[4, 3]; wh: f32[4, 4]; bi: f32[4]; bh: f32[4]", "%r: f32[3, 2, 4], %r1: f32[1, 2, 4] = aten.rnn_tanh.input(input=%x, hx=%h, params=[%wi, %wh, %bi, %bh], has_biases=true, num_layers=1, dropout=0.0, train=false, bidirectional=false, batch_first=false)"),
    ("roll", "x: f32[2, 8]", "%r: f32[2, 8] = aten.roll.default(self=%x, shifts=[3], dims=[1])"),
    ("round", "x: f32[2, 8]", "%r: f32[2, 8] = aten.round.default(self=%x)"),
    ("rsqrt", "x: f32[2, 8]", "%r: f32[2, 8] = aten.rsqrt.default(self=%x)"),
    ("scalar_tensor", "", "%r: f32[] = aten.scalar_tensor.default(s=1.5, dtype=f32)"),
    ("scaled_dot_product_attention", "q: f32[1, 2, 4, 8]; k: f32[1, 2, 4, 8]; v: f32[1, 2, 4, 8]", "%r: f32[1, 2, 4, 8] = aten.scaled_dot_product_attention.default(query=%q, key=%k, value=%v)"),
    ("scatter", "x: f32[2, 8]; i: i64[2, 8]; s: f32[2, 8]", "%r: f32[2, 8] = aten.scatter.src(self=%x, dim=1, index=%i, src=%s)"),
    ("scatter_add", "x: f32[2, 8]; i: i64[2, 8]; s: f32[2, 8]", "%r: f32[2, 8] = aten.scatter_add.default(self=%x, dim=1, index=%i, src=%s)"),
    ("scatter_reduce", "x: f32[2, 8]; i: i64[2, 8]; s: f32[2, 8]", "%r: f32[2, 8] = aten.scatter_reduce.two(self=%x, dim=1, index=%i, src=%s, reduce=\"amax\")"),
    ("select", "x: f32[2, 8]", "%r: f32[8] = aten.select.int(self=%x, dim=0, index=1)"),
    ("select_scatter", "x: f32[2, 8]; s: f32[8]", "%r: f32[2, 8] = aten.select_scatter.default(self=%x, src=%s, dim=0, index=1)"),
    ("selu", "x: f32[2, 8]", "%r: f32[2, 8] = aten.selu.default(self=%x)"),
    ("sigmoid", "x: f32[2, 8]", "%r: f32[2, 8] = aten.sigmoid.default(self=%x)"),
    ("sign", "x: f32[2, 8]", "%r: f32[2, 8] = aten.sign.default(self=%x)"),
    ("sin", "x: f32[2, 8]", "%r: f32[2, 8] = aten.sin.default(self=%x)"),
    ("slice", "x: f32[2, 8]", "%r: f32[2, 4] = aten.slice.Tensor(self=%x, dim=1, start=1, end=5, step=1)"),
    ("slice_scatter", "x: f32[2, 8]; s: f32[2, 4]", "%r: f32[2, 8] = aten.slice_scatter.default(self=%x, src=%s, dim=1, start=0, end=4, step=1)"),
    ("softmax", "x: f32[2, 8]", "%r: f32[2, 8] = aten.softmax.int(self=%x, dim=1)"),
    ("softplus", "x: f32[2, 8]", "%r: f32[2, 8] = aten.softplus.default(self=%x)"),
    ("sort", "x: f32[2, 8]", "%r: f32[2, 8], %r1: i64[2, 8] = aten.sort.default(self=%x)"),
    ("split", "x: f32[2, 8]", "%r: f32[2, 4], %r1: f32[2, 4] = aten.split.Tensor(self=%x, split_size=4, dim=1)"),
    ("split_with_sizes", "x: f32[2, 8]", "%r: f32[2, 3], %r1: f32[2, 5] = aten.split_with_sizes.default(self=%x, split_sizes=[3, 5], dim=1)"),
    ("sqrt", "x: f32[2, 8]", "%r: f32[2, 8] = aten.sqrt.default(self=%x)"),
    ("squeeze", "x: f32[1, 8]", "%r: f32[8] = aten.squeeze.dims(self=%x, dim=[0])"),
    ("stack", "x: f32[2, 8]; y: f32[2, 8]", "%r: f32[2, 2, 8] = aten.stack.default(tensors=[%x, %y])"),
    ("std", "x: f32[2, 8]", "%r: f32[2] = aten.std.correction(self=%x, dim=[1], correction=1)"),
    ("sub", "x: f32[2, 8]; y: f32[2, 8]", "%r: f32[2, 8] = aten.sub.Tensor(self=%x, other=%y)"),
    ("sum", "x: f32[2, 8]", "%r: f32[2] = aten.sum.dim_IntList(self=%x, dim=[1])"),
    ("sym_numel", "x: f32[2, 8]", "%n: sym_int = aten.sym_numel.default(self=%x)\n%r: f32[16] = aten.view.default(self=%x, size=[%n])"),
    ("sym_size", "x: f32[2, 8]", "%n: sym_int = aten.sym_size.int(self=%x, dim=0)\n%r: f32[2, 8] = aten.view.default(self=%x, size=[%n, 8])"),
    ("t", "x: f32[2, 8]", "%r: f32[8, 2] = aten.t.default(self=%x)"),
    ("tan", "x: f32[2, 8]", "%r: f32[2, 8] = aten.tan.default(self=%x)"),
    ("tanh", "x: f32[2, 8]", "%r: f32[2, 8] = aten.tanh.default(self=%x)"),
    ("to", "x: f32[2, 8]", "%r: f64[2, 8] = aten.to.dtype(self=%x, dtype=f64)"),
    ("topk", "x: f32[2, 8]", "%r: f32[2, 3], %r1: i64[2, 3] = aten.topk.default(self=%x, k=3)"),
    ("transpose", "x: f32[2, 8]", "%r: f32[8, 2] = aten.transpose.int(self=%x, dim0=0, dim1=1)"),
    ("tril", "x: f32[2, 8]", "%r: f32[2, 8] = aten.tril.default(self=%x)"),
    ("triu", "x: f32[2, 8]", "%r: f32[2, 8] = aten.triu.default(self=%x, diagonal=1)"),
    ("trunc", "x: f32[2, 8]", "%r: f32[2, 8] = aten.trunc.default(self=%x)"),
    ("type_as", "x: f32[2, 8]; y: f64[2, 8]", "%r: f64[2, 8] = aten.type_as.default(self=%x, other=%y)"),
    ("unbind", "x: f32[2, 8]", "%r: f32[8], %r1: f32[8] = aten.unbind.int(self=%x)"),
    ("unflatten", "x: f32[2, 8]", "%r: f32[2, 2, 4] = aten.unflatten.int(self=%x, dim=1, sizes=[2, 4])"),
    ("unsqueeze", "x: f32[2, 8]", "%r: f32[1, 2, 8] = aten.unsqueeze.default(self=%x, dim=0)"),
    ("upsample_bicubic2d", "x: f32[1, 2, 3, 4]", "%r: f32[1, 2, 6, 5] = aten.upsample_bicubic2d.default(self=%x, output_size=[6, 5], align_corners=false)"),
    ("upsample_bilinear2d", "x: f32[1, 2, 3, 4]", "%r: f32[1, 2, 6, 5] = aten.upsample_bilinear2d.default(self=%x, output_size=[6, 5], align_corners=false)"),
    ("upsample_linear1d", "x: f32[1, 2, 4]", "%r: f32[1, 2, 7] = aten.upsample_linear1d.default(self=%x, output_size=[7], align_corners=false)"),
    ("upsample_nearest2d", "x: f32[1, 2, 3, 4]", "%r: f32[1, 2, 6, 5] = aten.upsample_nearest2d.default(self=%x, output_size=[6, 5])"),
    ("var", "x: f32[2, 8]", "%r: f32[2] = aten.var.correction(self=%x, dim=[1], correction=1)"),
    ("view", "x: f32[2, 8]", "%r: f32[16] = aten.view.default(self=%x, size=[16])"),
    ("view_as", "x: f32[2, 8]; y: f32[16]", "%r: f32[16] = aten.view_as.default(self=%x, other=%y)"),
    ("where", "a: bool[2, 8]; x: f32[2, 8]; y: f32[2, 8]", "%r: f32[2, 8] = aten.where.self(condition=%a, self=%x, other=%y)"),
    ("zero", "x: f32[2, 8]", "%r: f32[2, 8] = aten.zero.default(self=%x)"),
    ("zeros", "", "%r: f32[3] = aten.zeros.default(size=[3], dtype=f32)"),
    ("zeros_like", "x: f32[2, 8]", "%r: f32[2, 8] = aten.zeros_like.default(self=%x)"),
];

const DATA_SHAPE: &str = "the output shape depends on the data";

/// Ops of the set that still run their reference kernel, with the reason.
const GAPS: &[(&str, &str)] = &[
    (
        "as_strided",
        "a strided view of the storage: lowered only on a clone's fresh storage",
    ),
    ("masked_scatter", DATA_SHAPE),
    ("nonzero", DATA_SHAPE),
];

fn program(inputs: &str, body: &str) -> String {
    let mut text = String::new();
    for i in inputs.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        text.push_str(&format!("input %{i} = user_input\n"));
    }
    text.push_str(body);
    text.push_str("\noutput %r = user_output\n");
    text
}

/// Whether the scheduler plans the graph without a fallback kernel.
fn lowered_natively(inputs: &str, body: &str) -> Result<bool, String> {
    let text = program(inputs, body);
    let p = parse_program(&text).map_err(|e| format!("{e}\n{text}"))?;
    torchlift::ir::verify::verify_program(&p).map_err(|e| format!("{e}\n{text}"))?;
    let plan = torchlift::codegen::schedule(&p).map_err(|e| format!("{e}\n{text}"))?;
    Ok(plan
        .kernels
        .iter()
        .all(|k| !matches!(k.kind, KernelKind::Fallback { .. })))
}

#[test]
fn every_op_the_pipeline_leaves_is_lowered_or_a_listed_gap() {
    let set: BTreeSet<&str> = torchlift::interp::kernel_ops()
        .into_iter()
        .filter(|&a| !torchlift::passes::export_removes(a))
        .map(|a| a.name())
        .collect();
    let native: BTreeSet<&str> = NATIVE.iter().map(|p| p.0).collect();
    let gaps: BTreeSet<&str> = GAPS.iter().map(|g| g.0).collect();
    assert_eq!(native.len(), NATIVE.len(), "an op has two native probes");
    assert_eq!(gaps.len(), GAPS.len(), "an op is listed twice as a gap");
    let mut problems = Vec::new();
    for op in &set {
        match (native.contains(op), gaps.contains(op)) {
            (false, false) => problems.push(format!(
                "{op}: the pipeline can leave it, it has no native lowering probe and is not listed as a gap"
            )),
            (true, true) => problems.push(format!("{op}: both lowered and listed as a gap")),
            _ => {}
        }
    }
    for op in native.union(&gaps) {
        if !set.contains(op) {
            problems.push(format!(
                "{op}: listed, but not in the op set the pipeline can leave"
            ));
        }
    }
    for (op, inputs, body) in NATIVE {
        match lowered_natively(inputs, body) {
            Ok(true) => {}
            Ok(false) => problems.push(format!(
                "{op}: its probe falls back to the reference kernel"
            )),
            Err(e) => problems.push(format!("{op}: its probe does not schedule: {e}")),
        }
    }
    println!(
        "op set the export pipeline can leave: {} ops; {} lowered natively, {} known gaps",
        set.len(),
        native.len(),
        gaps.len()
    );
    for (op, why) in GAPS {
        println!("  gap: {op}: {why}");
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}
