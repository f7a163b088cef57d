//! Archives built on the fly: a minimal valid one loads; corrupted ones give
//! clear errors, never panics.

use std::io::{Cursor, Write};
use std::path::PathBuf;

use torchlift::pt2::{Archive, PickleValue};
use torchlift::sym::SymExpr;
use torchlift::{DType, Error};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

const WEIGHT: [f32; 6] = [1.0, -2.0, 3.5, 0.25, 5.0, -6.0];

fn program_json(major: i64, size_expr: &str) -> String {
    format!(
        r#"{{
  "graph_module": {{
    "graph": {{
      "inputs": [{{"as_tensor": {{"name": "p_fc_weight"}}}}, {{"as_tensor": {{"name": "x"}}}}],
      "outputs": [{{"as_tensor": {{"name": "mm"}}}}],
      "nodes": [
        {{"target": "torch.ops.aten.mm.default",
          "inputs": [{{"name": "self", "arg": {{"as_tensor": {{"name": "x"}}}}, "kind": 1}},
                     {{"name": "mat2", "arg": {{"as_tensor": {{"name": "p_fc_weight"}}}}, "kind": 1}}],
          "outputs": [{{"as_tensor": {{"name": "mm"}}}}],
          "metadata": {{"stack_trace": "File \"m.py\", line 3, in forward"}},
          "future_field": 1,
          "name": "mm"}}
      ],
      "tensor_values": {{
        "p_fc_weight": {{"dtype": 7, "sizes": [{{"as_int": 2}}, {{"as_int": 3}}], "requires_grad": true,
          "device": {{"type": "cpu"}}, "strides": [{{"as_int": 3}}, {{"as_int": 1}}],
          "storage_offset": {{"as_int": 0}}, "layout": 7}},
        "x": {{"dtype": 7, "sizes": [{{"as_expr": {{"expr_str": "{size_expr}", "hint": {{"as_int": 4}}}}}}, {{"as_int": 2}}],
          "requires_grad": false, "device": {{"type": "cpu", "index": null}},
          "strides": [{{"as_int": 2}}, {{"as_int": 1}}], "storage_offset": {{"as_int": 0}}, "layout": 7}}
      }},
      "sym_int_values": {{}},
      "sym_bool_values": {{}}
    }},
    "signature": {{
      "input_specs": [
        {{"parameter": {{"arg": {{"name": "p_fc_weight"}}, "parameter_name": "fc.weight"}}}},
        {{"user_input": {{"arg": {{"as_tensor": {{"name": "x"}}}}}}}}
      ],
      "output_specs": [{{"user_output": {{"arg": {{"as_tensor": {{"name": "mm"}}}}}}}}]
    }},
    "module_call_graph": []
  }},
  "opset_version": {{"aten": 10}},
  "range_constraints": {{"s0": {{"min_val": 2, "max_val": null}}}},
  "schema_version": {{"major": {major}, "minor": 20}},
  "verifiers": ["TRAINING"],
  "torch_version": "2.15.0"
}}"#
    )
}

fn weights_config(numel: i64) -> String {
    format!(
        r#"{{"config": {{"fc.weight": {{"path_name": "weight_0", "is_param": true, "use_pickle": false,
  "tensor_meta": {{"dtype": 7, "sizes": [{{"as_int": 2}}, {{"as_int": {cols}}}], "requires_grad": true,
  "device": {{"type": "cpu", "index": null}}, "strides": [{{"as_int": {cols}}}, {{"as_int": 1}}],
  "storage_offset": {{"as_int": 0}}, "layout": 7}}}}}}}}"#,
        cols = numel / 2
    )
}

fn weight_bytes() -> Vec<u8> {
    WEIGHT.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A `torch.save` zip holding `((tensor,), {})` with a float tensor of
/// shape [2, 2] whose values are 0, 1, 2, 3.
fn sample_inputs_pt() -> Vec<u8> {
    torch_save_tuple(2, &[0., 1., 2., 3.])
}

/// A `torch.save` zip holding `((tensor,), {})`: a float tensor of shape
/// `[rows, values.len() / rows]`.
fn torch_save_tuple(rows: u8, values: &[f32]) -> Vec<u8> {
    let cols = (values.len() / rows as usize) as u8;
    let mut p = vec![0x80, 2];
    p.extend(b"ctorch._utils\n_rebuild_tensor_v2\nq\x00(");
    p.extend(
        b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK",
    );
    p.push(values.len() as u8);
    p.extend(b"tQK\x00K");
    p.extend([rows, b'K', cols, 0x86, b'K', cols]);
    p.extend(b"K\x01\x86\x89");
    p.extend(b"ccollections\nOrderedDict\n)R");
    p.extend(b"tR\x85}\x86.");
    let data: Vec<u8> = values.iter().flat_map(|x| x.to_le_bytes()).collect();
    build_zip(&[
        ("archive/data.pkl", p),
        ("archive/byteorder", b"little".to_vec()),
        ("archive/data/0", data),
        ("archive/version", b"3\n".to_vec()),
    ])
}

fn build_zip(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut w = ZipWriter::new(Cursor::new(Vec::new()));
    let opts = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
    for (name, data) in entries {
        w.start_file(*name, opts).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

fn entries(major: i64, expr: &str, wcfg: String, wblob: Vec<u8>) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("model/archive_format", b"pt2".to_vec()),
        ("model/archive_version", b"0".to_vec()),
        ("model/byteorder", b"little".to_vec()),
        (
            "model/models/model.json",
            program_json(major, expr).into_bytes(),
        ),
        (
            "model/data/weights/model_weights_config.json",
            wcfg.into_bytes(),
        ),
        ("model/data/weights/weight_0", wblob),
        (
            "model/data/constants/model_constants_config.json",
            br#"{"config": {}}"#.to_vec(),
        ),
        ("model/data/sample_inputs/model.pt", sample_inputs_pt()),
    ]
}

fn valid_entries() -> Vec<(&'static str, Vec<u8>)> {
    entries(
        8,
        "Symbol('s0', positive=True, integer=True)",
        weights_config(6),
        weight_bytes(),
    )
}

struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn write_temp(tag: &str, bytes: &[u8]) -> TempFile {
    let path =
        std::env::temp_dir().join(format!("torchlift-test-{}-{tag}.pt2", std::process::id()));
    std::fs::write(&path, bytes).unwrap();
    TempFile(path)
}

fn open_bytes(tag: &str, bytes: &[u8]) -> Result<Archive, Error> {
    let f = write_temp(tag, bytes);
    Archive::open(&f.0)
}

/// The error of opening `bytes` as an archive. The command line must fail
/// on the same file with exit status 1 and the same message on one line.
fn open_err(tag: &str, bytes: &[u8]) -> String {
    let msg = match open_bytes(tag, bytes) {
        Ok(_) => panic!("{tag}: archive unexpectedly loaded"),
        Err(e) => e.to_string(),
    };
    let cli = cli_error(tag, bytes);
    assert!(
        cli.contains(&msg),
        "{tag}: command line said {cli:?}, library said {msg:?}"
    );
    msg
}

/// Runs `torchlift inspect` on `bytes`; asserts exit status 1 and a
/// one-line error without a panic, and returns that line.
fn cli_error(tag: &str, bytes: &[u8]) -> String {
    let f = write_temp(tag, bytes);
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_torchlift"))
        .arg("inspect")
        .arg(&f.0)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "{tag}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{tag}: {err}");
    assert!(
        err.starts_with("error: ") && !err.contains("panicked"),
        "{tag}: {err}"
    );
    err
}

#[test]
fn minimal_archive_loads() {
    let a = open_bytes("valid", &build_zip(&valid_entries())).unwrap();
    assert_eq!(a.schema_version, (8, 20));
    assert_eq!(a.model_name, "model");
    let w = &a.weights["fc.weight"];
    assert_eq!(w.dtype, DType::F32);
    assert_eq!(w.sizes, vec![2, 3]);
    let vals: Vec<f32> = w
        .contiguous_bytes()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(vals, WEIGHT);
    let g = &a.program.graph_module.graph;
    assert_eq!(g.nodes.len(), 1);
    assert_eq!(g.nodes[0].source_line().as_deref(), Some("m.py:3"));
    let x = &g.tensor_values["x"];
    assert_eq!(x.sizes[0].to_expr().unwrap(), SymExpr::symbol("s0"));
    let ranges = a.program.symbol_ranges();
    assert_eq!(ranges["s0"].min, 2);
    assert_eq!(ranges["s0"].max, None);
}

#[test]
fn sample_inputs_load() {
    let a = open_bytes("sample", &build_zip(&valid_entries())).unwrap();
    let si = a.sample_inputs.expect("sample inputs");
    assert_eq!(si.len(), 1);
    assert_eq!(si[0].sizes, vec![2, 2]);
    let vals: Vec<f32> = si[0]
        .contiguous_bytes()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(vals, vec![0., 1., 2., 3.]);
}

#[test]
fn sample_input_pickle_parses() {
    let z = sample_inputs_pt();
    let mut za = zip::ZipArchive::new(Cursor::new(z)).unwrap();
    let mut pkl = Vec::new();
    std::io::Read::read_to_end(&mut za.by_name("archive/data.pkl").unwrap(), &mut pkl).unwrap();
    let v = torchlift::pt2::pickle::parse(&pkl, "data.pkl").unwrap();
    match &v {
        PickleValue::Tuple(items) => assert_eq!(items.len(), 2),
        other => panic!("{other:?}"),
    }
    assert_eq!(v.tensors().len(), 1);
}

#[test]
fn not_a_zip() {
    let e = open_err("notzip", b"this is not a zip file at all");
    assert!(e.contains("zip"), "{e}");
}

#[test]
fn truncated_zip() {
    let full = build_zip(&valid_entries());
    let e = open_err("trunc", &full[..full.len() / 2]);
    assert!(e.contains("zip"), "{e}");
}

#[test]
fn dotdot_entry() {
    let mut es = valid_entries();
    es.push(("model/../../evil", b"x".to_vec()));
    let e = open_err("dotdot", &build_zip(&es));
    assert!(e.contains("model/../../evil"), "{e}");
}

#[test]
fn absolute_entry() {
    let mut es = valid_entries();
    es.push(("/etc/evil", b"x".to_vec()));
    let e = open_err("abs", &build_zip(&es));
    assert!(e.contains("/etc/evil"), "{e}");
}

#[test]
fn missing_model_json() {
    let es: Vec<_> = valid_entries()
        .into_iter()
        .filter(|(n, _)| !n.ends_with("model.json"))
        .collect();
    let e = open_err("nojson", &build_zip(&es));
    assert!(e.contains("no model json"), "{e}");
}

#[test]
fn schema_major_7() {
    let es = entries(7, "s0", weights_config(6), weight_bytes());
    let e = open_err("major7", &build_zip(&es));
    assert!(e.contains("7.20"), "{e}");
    assert!(!e.contains('\n'), "{e}");
}

#[test]
fn weight_blob_too_short() {
    let es = entries(8, "s0", weights_config(6), weight_bytes()[..20].to_vec());
    let e = open_err("short", &build_zip(&es));
    assert!(e.contains("fc.weight") && e.contains("20"), "{e}");
}

#[test]
fn malformed_json() {
    let mut es = valid_entries();
    for (n, d) in es.iter_mut() {
        if n.ends_with("model.json") {
            let len = d.len();
            d.truncate(len - 40);
        }
    }
    let e = open_err("badjson", &build_zip(&es));
    assert!(e.contains("line") && e.contains("column"), "{e}");
}

#[test]
fn unparsable_expression() {
    let es = entries(8, "Mul(Integer(2), ", weights_config(6), weight_bytes());
    let a = open_bytes("badexpr", &build_zip(&es)).unwrap();
    let x = &a.program.graph_module.graph.tensor_values["x"];
    match x.sizes[0].to_expr() {
        Err(Error::Sym { expr, .. }) => assert_eq!(expr, "Mul(Integer(2), "),
        other => panic!("{other:?}"),
    }
    let e = cli_error("badexpr", &build_zip(&es));
    assert!(e.contains("Mul(Integer(2), "), "{e}");
}

#[test]
fn legacy_layout_loads() {
    let sd = {
        let mut p = vec![0x80, 2];
        p.extend(b"ccollections\nOrderedDict\n)R(X\x09\x00\x00\x00fc.weight");
        p.extend(b"ctorch._utils\n_rebuild_parameter\nctorch._utils\n_rebuild_tensor_v2\n(");
        p.extend(b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x06tQ");
        p.extend(b"K\x00K\x02K\x03\x86K\x03K\x01\x86\x89ccollections\nOrderedDict\n)RtR");
        p.extend(b"\x88ccollections\nOrderedDict\n)R\x87Ru.");
        build_zip(&[
            ("archive/data.pkl", p),
            ("archive/byteorder", b"little".to_vec()),
            ("archive/data/0", weight_bytes()),
        ])
    };
    let es = vec![
        (
            "serialized_exported_program.json",
            program_json(8, "s0")
                .replace("\"minor\": 20", "\"minor\": 2")
                .into_bytes(),
        ),
        ("serialized_state_dict.pt", sd),
        ("serialized_example_inputs.pt", sample_inputs_pt()),
        ("version", b"8.2".to_vec()),
    ];
    let a = open_bytes("legacy", &build_zip(&es)).unwrap();
    assert_eq!(a.schema_version, (8, 2));
    assert_eq!(
        a.weights["fc.weight"].contiguous_bytes().as_ref(),
        &weight_bytes()[..]
    );
    assert_eq!(a.sample_inputs.unwrap().len(), 1);
}

#[test]
fn pickled_weight_loads() {
    let cfg = r#"{"config": {"fc.weight": {"path_name": "weight_0", "is_param": true,
        "use_pickle": true, "tensor_meta": null}}}"#;
    let mut es = valid_entries();
    for (n, d) in es.iter_mut() {
        if n.ends_with("model_weights_config.json") {
            *d = cfg.as_bytes().to_vec();
        }
        if n.ends_with("weight_0") {
            *d = torch_save_tuple(2, &WEIGHT);
        }
    }
    let a = open_bytes("pickled", &build_zip(&es)).unwrap();
    assert_eq!(a.weights["fc.weight"].sizes, vec![2, 3]);
    assert_eq!(
        a.weights["fc.weight"].contiguous_bytes().as_ref(),
        &weight_bytes()[..]
    );
}

#[test]
fn weight_shape_mismatch() {
    let cfg = r#"{"config": {"fc.weight": {"path_name": "weight_0", "is_param": true,
        "use_pickle": true, "tensor_meta": null}}}"#;
    let mut es = valid_entries();
    for (n, d) in es.iter_mut() {
        if n.ends_with("model_weights_config.json") {
            *d = cfg.as_bytes().to_vec();
        }
        if n.ends_with("weight_0") {
            *d = torch_save_tuple(3, &WEIGHT);
        }
    }
    let e = open_err("mismatch", &build_zip(&es));
    assert!(e.contains("fc.weight") && e.contains("[3, 2]"), "{e}");
}

#[test]
fn unsafe_payload_path() {
    let mut es = valid_entries();
    for (n, d) in es.iter_mut() {
        if n.ends_with("model_weights_config.json") {
            *d = String::from_utf8(d.clone())
                .unwrap()
                .replace("weight_0", "../../weight_0")
                .into_bytes();
        }
    }
    let e = open_err("payloadpath", &build_zip(&es));
    assert!(e.contains("../../weight_0"), "{e}");
}

/// A real fixture archive (torch 2.15) with its model JSON passed through
/// `edit`, every other entry copied unchanged.
fn fixture_with_json(rel: &str, edit: impl Fn(&str) -> String) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    let file = std::fs::File::open(&path).unwrap();
    let mut z = zip::ZipArchive::new(file).unwrap();
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    let mut edited = false;
    for i in 0..z.len() {
        let mut e = z.by_index(i).unwrap();
        let name = e.name().unwrap().to_string();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        if name.ends_with("models/model.json") {
            let text = String::from_utf8(data).unwrap();
            let new = edit(&text);
            assert_ne!(new, text, "the edit changed nothing");
            data = new.into_bytes();
            edited = true;
        }
        out.push((name, data));
    }
    assert!(edited, "no model json in {rel}");
    let refs: Vec<(&str, Vec<u8>)> = out.iter().map(|(n, d)| (n.as_str(), d.clone())).collect();
    build_zip(&refs)
}

fn set_torch_version(text: &str, version: &str) -> String {
    let start = text.find("\"torch_version\": \"").unwrap() + "\"torch_version\": \"".len();
    let end = start + text[start..].find('"').unwrap();
    format!("{}{version}{}", &text[..start], &text[end..])
}

const TINY_MLP: &str = "tests/fixtures/cases/tiny_mlp/model.pt2";

#[test]
fn fixture_with_torch_2_6_loads() {
    let bytes = fixture_with_json(TINY_MLP, |t| set_torch_version(t, "2.6.0"));
    open_bytes("fixture26", &bytes).expect("a 2.6 version field is in range");
}

#[test]
fn torch_older_than_2_6_is_refused() {
    for (tag, version) in [("t25", "2.5.1"), ("t24", "2.4.0+cpu"), ("t113", "1.13.1")] {
        let bytes = fixture_with_json(TINY_MLP, |t| set_torch_version(t, version));
        let e = open_err(tag, &bytes);
        assert!(e.contains(&format!("torch {version}")), "{e}");
        assert!(e.contains("torch 2.6 to 2.15"), "{e}");
        assert!(!e.contains("verifier"), "{e}");
    }
}

#[test]
fn fixture_schema_major_other_than_8_is_refused() {
    for major in [7, 9] {
        let bytes = fixture_with_json(TINY_MLP, |t| {
            t.replace(
                "\"schema_version\": {\"major\": 8,",
                &format!("\"schema_version\": {{\"major\": {major},"),
            )
        });
        let e = open_err(&format!("major{major}"), &bytes);
        assert!(e.contains(&format!("schema version {major}.20")), "{e}");
        assert!(e.contains("torch 2.15.0"), "{e}");
        assert!(
            e.contains("schema 8.x archives of torch 2.6 to 2.15"),
            "{e}"
        );
    }
}

#[test]
fn arguments_outside_the_schema_are_refused_naming_the_node() {
    // An overload torch does not have.
    let bytes = fixture_with_json(TINY_MLP, |t| {
        t.replacen(
            "torch.ops.aten.relu.default",
            "torch.ops.aten.relu.Bogus",
            1,
        )
    });
    let e = cli_error("badoverload", &bytes);
    assert!(e.contains("aten.relu.Bogus is not a known overload"), "{e}");
    assert!(e.contains("node relu"), "{e}");
    // An argument name the schema does not have.
    let bytes = fixture_with_json(TINY_MLP, |t| {
        t.replacen("\"name\": \"weight\"", "\"name\": \"wieght\"", 1)
    });
    let e = cli_error("badargname", &bytes);
    assert!(
        e.contains("aten.linear.default has no argument named \"wieght\""),
        "{e}"
    );
}
