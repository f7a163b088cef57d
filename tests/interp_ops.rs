//! Cross-module checks of the interpreter's tensor and generic kernels.

use torchlift::interp::ops::{create, elementwise as ew, index, linalg, reduce, shape};
use torchlift::interp::{Scalar, Tensor};
use torchlift::DType;

fn f(v: &[f32], s: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), s).unwrap()
}

fn close(a: &[f64], b: &[f64], tol: f64) {
    assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= tol, "{a:?} vs {b:?}");
    }
}

#[test]
fn inplace_relu_on_a_view_of_a_buffer_is_seen_by_the_base() {
    let base = f(&[-1., 2., -3., 4., -5., 6.], &[2, 3]);
    // relu_ on base.t()[1:] (rows 1.. of the transpose = columns 1.. of base)
    let v = base.t().unwrap().slice(0, Some(1), None, 1).unwrap();
    v.copy_(&ew::relu(&v).unwrap()).unwrap();
    assert_eq!(base.to_f64_vec(), vec![-1., 2., 0., 4., 0., 6.]);
    // add_ through an as_strided view (the diagonal of a 2x3 base).
    let d = base.as_strided(&[2], &[4], Some(0)).unwrap();
    d.copy_(&ew::add(&d, 10i64, Scalar::Int(1)).unwrap())
        .unwrap();
    assert_eq!(base.to_f64_vec(), vec![9., 2., 0., 4., 10., 6.]);
    // A clone does not alias.
    let c = shape::clone(&base).unwrap();
    c.fill_(Scalar::Int(0)).unwrap();
    assert_eq!(base.to_f64_vec()[0], 9.0);
}

#[test]
fn copy_casts_and_broadcasts() {
    let x = Tensor::zeros(DType::I32, &[2, 3]);
    x.copy_(&f(&[1.7, -2.7, 3.0], &[3])).unwrap();
    assert_eq!(x.to_i64_vec(), vec![1, -2, 3, 1, -2, 3]);
    assert!(x.copy_(&f(&[1.0, 2.0], &[2])).is_err());
}

#[test]
fn attention_like_pipeline() {
    let q = create::arange(
        Scalar::Int(0),
        Scalar::Int(24),
        Scalar::Int(1),
        Some(DType::F32),
    )
    .unwrap()
    .view(&[2, 3, 4])
    .unwrap();
    let k = ew::mul(&q, 0.1).unwrap();
    let scores = linalg::matmul(&q, &k.transpose(-2, -1).unwrap()).unwrap();
    assert_eq!(scores.sizes(), &[2, 3, 3]);
    let mask = shape::triu(&Tensor::full(DType::Bool, &[3, 3], Scalar::Bool(true)), 1).unwrap();
    let masked = ew::masked_fill(&scores, &mask, f64::NEG_INFINITY).unwrap();
    let p = reduce::softmax(&masked, -1).unwrap();
    let rows = reduce::sum(&p, Some(&[-1]), false, None).unwrap();
    close(&rows.to_f64_vec(), &[1.0; 6], 1e-6);
    assert_eq!(p.to_f64_vec()[1], 0.0);
    assert_eq!(p.to_f64_vec()[0], 1.0);
}

#[test]
fn embedding_and_index_put_roundtrip() {
    let w = create::arange(
        Scalar::Int(0),
        Scalar::Int(12),
        Scalar::Int(1),
        Some(DType::F32),
    )
    .unwrap()
    .view(&[4, 3])
    .unwrap();
    let ids = Tensor::from_vec(vec![3i64, 0, -1], &[1, 3]).unwrap();
    let e = index::embedding(&w, &ids).unwrap();
    assert_eq!(e.sizes(), &[1, 3, 3]);
    assert_eq!(e.to_f64_vec()[..3], [9., 10., 11.]);
    assert!(index::embedding(&w, &Tensor::from_vec(vec![4i64], &[1]).unwrap()).is_err());
    let z = Tensor::zeros(DType::F32, &[4, 3]);
    let back = index::index_put(
        &z,
        &[Some(Tensor::from_vec(vec![3i64], &[1]).unwrap())],
        &e.select(1, 0).unwrap(),
        false,
    )
    .unwrap();
    assert_eq!(back.to_f64_vec()[9..], [9., 10., 11.]);
}

#[test]
fn bad_arguments_are_errors() {
    let x = f(&[1., 2., 3., 4.], &[2, 2]);
    assert!(x.select(2, 0).is_err());
    assert!(x.select(0, 2).is_err());
    assert!(x.permute(&[0, 0]).is_err());
    assert!(x.view(&[3]).is_err());
    assert!(x.as_strided(&[3, 3], &[1, 1], None).is_err());
    assert!(reduce::softmax(&x, 3).is_err());
    assert!(shape::cat(&[], 0).is_err());
    assert!(linalg::bmm(&x, &x).is_err());
    assert!(index::gather(&x, 0, &f(&[0.0], &[1, 1])).is_err());
    assert!(ew::where_(&f(&[1.0, 0.0, 1.0], &[3]), &x, &x).is_err());
    assert!(Tensor::from_vec(vec![1.0f32; 3], &[2, 2]).is_err());
    // Extreme arguments are errors (or clamp), never overflows.
    assert_eq!(
        x.slice(0, Some(0), None, i64::MAX).unwrap().sizes(),
        &[1, 2]
    );
    assert!(x.narrow(0, 1, i64::MAX).is_err());
    assert_eq!(x.chunk(i64::MAX, 0).unwrap().len(), 2);
    assert!(x.expand(&[1 << 40, 1 << 40, 2, 2]).is_err());
    assert!(shape::repeat(&x, &[1 << 40, 1 << 40]).is_err());
    assert!(shape::constant_pad_nd(&x, &[i64::MAX, 1], Scalar::Int(0)).is_err());
    assert!(create::linspace(0.0, 1.0, i64::MAX, None).is_err());
    assert!(create::arange(Scalar::Int(0), Scalar::Int(i64::MAX), Scalar::Int(1), None).is_err());
    assert!(create::empty_strided(&[1 << 30, 2], &[1 << 40, 1], None).is_err());
}

#[test]
fn matmul_is_fast_enough() {
    let a = Tensor::full(DType::F32, &[128, 768], Scalar::Float(0.01));
    let w = Tensor::full(DType::F32, &[768, 768], Scalar::Float(0.5));
    let t0 = std::time::Instant::now();
    for _ in 0..4 {
        let y = linalg::linear(&a, &w, None).unwrap();
        assert_eq!(y.sizes(), &[128, 768]);
    }
    assert!(t0.elapsed().as_secs_f64() < 20.0);
}

#[test]
fn half_precision_roundtrip_through_kernels() {
    let bytes: Vec<u8> = [0x3c00u16, 0x4000, 0xc200]
        .iter()
        .flat_map(|h| h.to_le_bytes())
        .collect(); // 1.0, 2.0, -3.0
    let h = Tensor::from_raw_bytes(DType::F16, &[3], &[1], 0, &bytes).unwrap();
    let y = ew::add(&h, 0.5, Scalar::Int(1)).unwrap();
    assert_eq!(y.dtype(), DType::F16);
    assert_eq!(y.to_f64_vec(), vec![1.5, 2.5, -2.5]);
    let s = reduce::sum(&h, None, false, None).unwrap();
    assert_eq!((s.dtype(), s.item_f64().unwrap()), (DType::F16, 0.0));
    let b = h.to_dtype(DType::BF16);
    let m = linalg::matmul(&b.unsqueeze(0).unwrap(), &b.unsqueeze(1).unwrap()).unwrap();
    assert_eq!((m.dtype(), m.to_f64_vec()), (DType::BF16, vec![14.0]));
    assert_eq!(y.to_contiguous_bytes()[..2], 0x3e00u16.to_le_bytes());
}
