//! Opening `.pt2` archives of both layouts.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufReader, Cursor, Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use zip::ZipArchive;

use super::pickle::{self, PickleValue};
use super::schema::{self, ExportedProgram, PayloadConfig, LAYOUT_STRIDED};
use crate::dtype::DType;
use crate::error::{Error, Result};

/// Initial buffer reserved for one entry at most; larger entries grow as
/// they are read, so a lying size field cannot force a huge allocation.
const MAX_PREALLOC: u64 = 64 << 20;

/// A dense tensor whose elements live in a shared blob.
#[derive(Clone, PartialEq)]
pub struct TensorData {
    pub dtype: DType,
    pub sizes: Vec<i64>,
    /// Strides in elements.
    pub strides: Vec<i64>,
    /// Offset of element `[0, ..., 0]` in the blob, in elements.
    pub storage_offset: i64,
    /// The whole storage; shared by every tensor viewing it.
    pub storage: Arc<[u8]>,
}

impl std::fmt::Debug for TensorData {
    /// Describes the layout without dumping the bytes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TensorData")
            .field("dtype", &self.dtype)
            .field("sizes", &self.sizes)
            .field("strides", &self.strides)
            .field("storage_offset", &self.storage_offset)
            .field("storage_bytes", &self.storage.len())
            .finish()
    }
}

impl TensorData {
    /// Checks that `storage` holds every element that `sizes`, `strides`
    /// and `storage_offset` address; `name` is used in the error.
    pub fn new(
        name: &str,
        dtype: DType,
        sizes: Vec<i64>,
        strides: Vec<i64>,
        storage_offset: i64,
        storage: Arc<[u8]>,
    ) -> Result<TensorData> {
        let bad = |msg: String| Error::other(format!("tensor {name}: {msg}"));
        if sizes.len() != strides.len() {
            return Err(bad(format!(
                "{} sizes but {} strides",
                sizes.len(),
                strides.len()
            )));
        }
        if storage_offset < 0 {
            return Err(bad(format!("negative storage offset {storage_offset}")));
        }
        if let Some(s) = sizes.iter().find(|s| **s < 0) {
            return Err(bad(format!("negative size {s}")));
        }
        if let Some(s) = strides.iter().find(|s| **s < 0) {
            return Err(bad(format!("negative stride {s}")));
        }
        let t = TensorData {
            dtype,
            sizes,
            strides,
            storage_offset,
            storage,
        };
        let numel = t
            .numel_checked()
            .ok_or_else(|| bad("element count overflows".into()))?;
        if numel > 0 {
            let needed = t
                .storage_bytes_needed()
                .ok_or_else(|| bad("extent overflows".into()))?;
            if needed > t.storage.len() as u128 {
                return Err(bad(format!(
                    "needs {needed} bytes (sizes {:?}, strides {:?}, offset {}, {}) but its data has {}",
                    t.sizes,
                    t.strides,
                    t.storage_offset,
                    t.dtype.name(),
                    t.storage.len()
                )));
            }
        }
        Ok(t)
    }

    /// A contiguous tensor over a whole blob.
    pub fn contiguous(
        name: &str,
        dtype: DType,
        sizes: Vec<i64>,
        storage: Arc<[u8]>,
    ) -> Result<Self> {
        let strides = contiguous_strides(&sizes);
        TensorData::new(name, dtype, sizes, strides, 0, storage)
    }

    fn numel_checked(&self) -> Option<usize> {
        self.sizes
            .iter()
            .try_fold(1usize, |acc, s| acc.checked_mul(usize::try_from(*s).ok()?))
    }

    /// Bytes from the start of the storage to the end of the last element.
    fn storage_bytes_needed(&self) -> Option<u128> {
        let mut last: u128 = u128::try_from(self.storage_offset).ok()?;
        for (s, st) in self.sizes.iter().zip(&self.strides) {
            let s = u128::try_from(*s).ok()?;
            let st = u128::try_from(*st).ok()?;
            last = last.checked_add(s.checked_sub(1)?.checked_mul(st)?)?;
        }
        last.checked_add(1)?
            .checked_mul(self.dtype.size_bytes() as u128)
    }

    pub fn numel(&self) -> usize {
        self.numel_checked().unwrap_or(0)
    }

    pub fn rank(&self) -> usize {
        self.sizes.len()
    }

    /// Whether the elements are laid out densely in C order (dimensions of
    /// size 1 may have any stride).
    pub fn is_contiguous(&self) -> bool {
        let mut expected: i64 = 1;
        for (s, st) in self.sizes.iter().zip(&self.strides).rev() {
            if *s != 1 && *st != expected {
                return false;
            }
            expected = expected.saturating_mul(*s);
        }
        true
    }

    /// The element bytes in contiguous C order: borrowed when the layout is
    /// already contiguous, gathered otherwise.
    pub fn contiguous_bytes(&self) -> Cow<'_, [u8]> {
        let esize = self.dtype.size_bytes();
        let numel = self.numel();
        let Ok(offset) = usize::try_from(self.storage_offset) else {
            return Cow::Borrowed(&[]);
        };
        if numel == 0 {
            return Cow::Borrowed(&[]);
        }
        if self.is_contiguous() {
            let start = offset.saturating_mul(esize);
            let end = start.saturating_add(numel.saturating_mul(esize));
            return Cow::Borrowed(self.storage.get(start..end).unwrap_or(&[]));
        }
        let mut out = Vec::with_capacity(numel.saturating_mul(esize));
        let rank = self.sizes.len();
        let sizes: Vec<usize> = self.sizes.iter().map(|s| *s as usize).collect();
        let strides: Vec<usize> = self.strides.iter().map(|s| *s as usize).collect();
        let mut idx = vec![0usize; rank];
        for _ in 0..numel {
            let elem = idx.iter().zip(&strides).fold(offset, |acc, (i, s)| {
                acc.saturating_add(i.saturating_mul(*s))
            });
            let start = elem.saturating_mul(esize);
            let end = start.saturating_add(esize);
            out.extend_from_slice(self.storage.get(start..end).unwrap_or(&[]));
            for d in (0..rank).rev() {
                if let (Some(i), Some(s)) = (idx.get_mut(d), sizes.get(d)) {
                    *i += 1;
                    if *i < *s {
                        break;
                    }
                    *i = 0;
                }
            }
        }
        Cow::Owned(out)
    }
}

/// C-order strides for `sizes`.
pub fn contiguous_strides(sizes: &[i64]) -> Vec<i64> {
    let mut strides = vec![1i64; sizes.len()];
    let mut acc: i64 = 1;
    for (st, s) in strides.iter_mut().zip(sizes).rev() {
        *st = acc;
        acc = acc.saturating_mul((*s).max(1));
    }
    strides
}

/// A loaded export archive.
#[derive(Clone, Debug)]
pub struct Archive {
    pub path: PathBuf,
    /// The model name (`model` for `models/model.json`; `model` for the
    /// torch 2.6 and 2.7 layout too).
    pub model_name: String,
    pub program: ExportedProgram,
    /// Parameters and buffers, keyed by fully qualified name (`fc.weight`).
    pub weights: BTreeMap<String, TensorData>,
    /// Tensor constants (and non-persistent buffers where the writer put
    /// them there), keyed by name.
    pub constants: BTreeMap<String, TensorData>,
    /// The sample user inputs, flattened: positional args, then kwargs.
    pub sample_inputs: Option<Vec<TensorData>>,
    pub schema_version: (i64, i64),
}

/// Which layout an archive uses, with the folder prefix (`model/`, or empty).
enum Layout {
    Pt2 { root: String },
    Legacy { root: String },
}

/// A zip opened with every entry name checked.
struct Zip<R: Read + Seek> {
    zip: ZipArchive<R>,
    names: HashMap<String, usize>,
    /// Names in archive order.
    ordered: Vec<String>,
    /// For error messages.
    label: String,
}

fn unsafe_name(name: &str) -> bool {
    name.starts_with('/')
        || name.starts_with('\\')
        || name.as_bytes().get(1) == Some(&b':')
        || name.split(['/', '\\']).any(|c| c == "..")
        || name.contains('\0')
}

impl<R: Read + Seek> Zip<R> {
    fn open(reader: R, label: &str) -> Result<Self> {
        let mut zip = ZipArchive::new(reader).map_err(|e| {
            Error::archive(
                label,
                format!("not a readable zip archive (or truncated): {e}"),
            )
        })?;
        let mut names = HashMap::new();
        let mut ordered = Vec::new();
        for i in 0..zip.len() {
            let name = {
                let f = zip
                    .by_index_raw(i)
                    .map_err(|e| Error::archive(label, format!("zip entry #{i}: {e}")))?;
                String::from_utf8_lossy(f.name_raw()).into_owned()
            };
            if unsafe_name(&name) {
                return Err(Error::archive(
                    label,
                    format!("unsafe entry name {name:?} (absolute or with '..')"),
                ));
            }
            names.insert(name.clone(), i);
            ordered.push(name);
        }
        Ok(Zip {
            zip,
            names,
            ordered,
            label: label.to_string(),
        })
    }

    fn has(&self, name: &str) -> bool {
        self.names.contains_key(name)
    }

    fn read(&mut self, name: &str) -> Result<Vec<u8>> {
        let idx = *self
            .names
            .get(name)
            .ok_or_else(|| Error::archive(&self.label, format!("missing entry {name}")))?;
        let label = self.label.clone();
        let mut f = self
            .zip
            .by_index(idx)
            .map_err(|e| Error::archive(&label, format!("entry {name}: {e}")))?;
        let declared = f.size();
        let mut buf = Vec::with_capacity(declared.min(MAX_PREALLOC) as usize);
        f.read_to_end(&mut buf)
            .map_err(|e| Error::archive(&label, format!("entry {name}: {e}")))?;
        if buf.len() as u64 != declared {
            return Err(Error::archive(
                &label,
                format!(
                    "entry {name}: {} bytes read, {declared} declared",
                    buf.len()
                ),
            ));
        }
        Ok(buf)
    }

    fn read_text(&mut self, name: &str) -> Result<String> {
        let b = self.read(name)?;
        String::from_utf8(b)
            .map_err(|_| Error::archive(&self.label, format!("entry {name} is not UTF-8")))
    }
}

/// A parsed `torch.save` zip: the unpickled value and its storages.
struct TorchSave {
    value: PickleValue,
    storages: HashMap<String, Arc<[u8]>>,
}

fn load_torch_save(bytes: Vec<u8>, label: &str) -> Result<TorchSave> {
    let mut z = Zip::open(Cursor::new(bytes), label)?;
    let pkl = z
        .ordered
        .iter()
        .find(|n| *n == "data.pkl" || n.ends_with("/data.pkl"))
        .cloned()
        .ok_or_else(|| Error::archive(label, "torch.save archive without data.pkl"))?;
    let prefix = pkl.strip_suffix("data.pkl").unwrap_or("").to_string();
    if let Some(bo) = z
        .has(&format!("{prefix}byteorder"))
        .then(|| z.read_text(&format!("{prefix}byteorder")))
        .transpose()?
    {
        if bo.trim() != "little" {
            return Err(Error::archive(
                label,
                format!("unsupported byte order {:?}", bo.trim()),
            ));
        }
    }
    let data = z.read(&pkl)?;
    let value = pickle::parse(&data, &format!("{label}: {pkl}"))?;
    let mut storages = HashMap::new();
    let keys: Vec<String> = value
        .tensors()
        .iter()
        .map(|(_, t)| t.storage.key.clone())
        .collect();
    for key in keys {
        if storages.contains_key(&key) {
            continue;
        }
        let entry = format!("{prefix}data/{key}");
        let blob: Arc<[u8]> = z.read(&entry)?.into();
        storages.insert(key, blob);
    }
    Ok(TorchSave { value, storages })
}

impl TorchSave {
    /// Every tensor, depth first, with its path.
    fn tensors(&self, label: &str) -> Result<Vec<(String, TensorData)>> {
        let mut out = Vec::new();
        for (path, t) in self.value.tensors() {
            let blob = self.storages.get(&t.storage.key).cloned().ok_or_else(|| {
                Error::archive(label, format!("missing storage {}", t.storage.key))
            })?;
            let declared =
                u128::try_from(t.storage.numel).unwrap_or(0) * t.storage.dtype.size_bytes() as u128;
            if declared > blob.len() as u128 {
                return Err(Error::archive(
                    label,
                    format!(
                        "storage {} declares {declared} bytes but holds {}",
                        t.storage.key,
                        blob.len()
                    ),
                ));
            }
            let name = format!("{label}: {path}");
            let td = TensorData::new(
                &name,
                t.storage.dtype,
                t.sizes.clone(),
                t.strides.clone(),
                t.storage_offset,
                blob,
            )?;
            out.push((path, td));
        }
        Ok(out)
    }

    /// The tensors of a top-level dict, keyed by dict key.
    fn tensor_dict(&self, label: &str) -> Result<BTreeMap<String, TensorData>> {
        match &self.value {
            PickleValue::Dict(_) => {}
            other => {
                return Err(Error::archive(
                    label,
                    format!("expected a dict of tensors, found {other:?}")
                        .chars()
                        .take(200)
                        .collect::<String>(),
                ))
            }
        }
        Ok(self.tensors(label)?.into_iter().collect())
    }
}

fn detect_layout<R: Read + Seek>(z: &Zip<R>) -> Result<Layout> {
    let mut roots: Vec<&String> = z
        .ordered
        .iter()
        .filter(|n| *n == "archive_format" || n.ends_with("/archive_format"))
        .collect();
    roots.sort_by_key(|n| n.len());
    if let Some(n) = roots.first() {
        let root = n.strip_suffix("archive_format").unwrap_or("").to_string();
        return Ok(Layout::Pt2 { root });
    }
    let mut legacy: Vec<&String> = z
        .ordered
        .iter()
        .filter(|n| {
            *n == "serialized_exported_program.json"
                || n.ends_with("/serialized_exported_program.json")
        })
        .collect();
    legacy.sort_by_key(|n| n.len());
    if let Some(n) = legacy.first() {
        let root = n
            .strip_suffix("serialized_exported_program.json")
            .unwrap_or("")
            .to_string();
        return Ok(Layout::Legacy { root });
    }
    Err(Error::archive(
        &z.label,
        "neither a PT2 archive (no archive_format entry) nor a torch 2.6 or 2.7 export \
         (no serialized_exported_program.json)",
    ))
}

impl Archive {
    /// Opens and fully loads an archive of either layout.
    pub fn open(path: &Path) -> Result<Archive> {
        let label = path.display().to_string();
        let file = File::open(path).map_err(|source| Error::Io {
            path: label.clone(),
            source,
        })?;
        let mut z = Zip::open(BufReader::new(file), &label)?;
        let mut a = match detect_layout(&z)? {
            Layout::Pt2 { root } => Self::open_pt2(&mut z, &root)?,
            Layout::Legacy { root } => Self::open_legacy(&mut z, &root)?,
        };
        a.path = path.to_path_buf();
        a.check_signature(&label)?;
        Ok(a)
    }

    fn open_pt2<R: Read + Seek>(z: &mut Zip<R>, root: &str) -> Result<Archive> {
        let label = z.label.clone();
        let fmt = z.read_text(&format!("{root}archive_format"))?;
        if fmt.trim() != "pt2" {
            return Err(Error::archive(
                &label,
                format!("archive_format is {:?}, expected \"pt2\"", fmt.trim()),
            ));
        }
        let bo_name = format!("{root}byteorder");
        if z.has(&bo_name) {
            let bo = z.read_text(&bo_name)?;
            if bo.trim() != "little" {
                return Err(Error::archive(
                    &label,
                    format!("unsupported byte order {:?}", bo.trim()),
                ));
            }
        }
        let models_dir = format!("{root}models/");
        let mut models: Vec<String> = z
            .ordered
            .iter()
            .filter_map(|n| {
                let rest = n.strip_prefix(&models_dir)?;
                let stem = rest.strip_suffix(".json")?;
                (!stem.contains('/') && !stem.is_empty()).then(|| stem.to_string())
            })
            .collect();
        models.sort();
        let model = if models.iter().any(|m| m == "model") {
            "model".to_string()
        } else {
            models.into_iter().next().ok_or_else(|| {
                Error::archive(&label, format!("no model json under {models_dir}"))
            })?
        };
        let json_name = format!("{models_dir}{model}.json");
        let text = z.read_text(&json_name)?;
        let program = schema::parse_program(&text, &format!("{label}: {json_name}"))?;

        let weights = Self::load_payloads(z, &format!("{root}data/weights/"), &model, "weights")?;
        let constants =
            Self::load_payloads(z, &format!("{root}data/constants/"), &model, "constants")?;
        let si_name = format!("{root}data/sample_inputs/{model}.pt");
        let sample_inputs = if z.has(&si_name) {
            let bytes = z.read(&si_name)?;
            let what = format!("{label}: {si_name}");
            let ts = load_torch_save(bytes, &what)?;
            Some(ts.tensors(&what)?.into_iter().map(|(_, t)| t).collect())
        } else {
            None
        };
        let v = program.schema_version;
        Ok(Archive {
            path: PathBuf::new(),
            model_name: model,
            schema_version: (v.major, v.minor),
            program,
            weights,
            constants,
            sample_inputs,
        })
    }

    /// The weights or constants of `model` under `dir`, in either form a
    /// PT2 archive holds them:
    ///
    /// - torch 2.9 and later: `DIR/<model>_<kind>_config.json` naming one
    ///   raw (or pickled) payload per tensor;
    /// - torch 2.7 and 2.8: one `torch.save` of a dict by state-dict name,
    ///   `DIR/<model>.pt` (the same pickle as the 2.6 and 2.7 layout's
    ///   `serialized_state_dict.pt`).
    fn load_payloads<R: Read + Seek>(
        z: &mut Zip<R>,
        dir: &str,
        model: &str,
        kind: &str,
    ) -> Result<BTreeMap<String, TensorData>> {
        let label = z.label.clone();
        let cfg_entry = format!("{dir}{model}_{kind}_config.json");
        if !z.has(&cfg_entry) {
            let dict_entry = format!("{dir}{model}.pt");
            if !z.has(&dict_entry) {
                return Ok(BTreeMap::new());
            }
            let bytes = z.read(&dict_entry)?;
            let what = format!("{label}: {dict_entry}");
            return load_torch_save(bytes, &what)?.tensor_dict(&what);
        }
        let text = z.read_text(&cfg_entry)?;
        let cfg: PayloadConfig = schema::from_json_text(&text, &format!("{label}: {cfg_entry}"))?;
        let mut blobs: HashMap<String, Arc<[u8]>> = HashMap::new();
        let mut out = BTreeMap::new();
        for (fqn, meta) in &cfg.config {
            let entry = format!("{dir}{}", meta.path_name);
            if unsafe_name(&meta.path_name) {
                return Err(Error::archive(
                    &label,
                    format!("{fqn}: unsafe path_name {:?}", meta.path_name),
                ));
            }
            let what = format!("{label}: {entry} ({fqn})");
            if meta.use_pickle {
                let bytes = z.read(&entry)?;
                let ts = load_torch_save(bytes, &what)?;
                let mut tensors = ts.tensors(&what)?;
                if tensors.len() != 1 {
                    return Err(Error::archive(
                        &label,
                        format!(
                            "{fqn}: pickled payload holds {} tensors, expected 1 \
                             (custom objects are not supported)",
                            tensors.len()
                        ),
                    ));
                }
                if let Some((_, t)) = tensors.pop() {
                    out.insert(fqn.clone(), t);
                }
                continue;
            }
            let tm = meta.tensor_meta.as_ref().ok_or_else(|| {
                Error::archive(&label, format!("{fqn}: payload without tensor_meta"))
            })?;
            if tm.layout != LAYOUT_STRIDED {
                return Err(Error::archive(
                    &label,
                    format!("{fqn}: unsupported layout code {}", tm.layout),
                ));
            }
            let dtype = tm
                .dtype()
                .map_err(|e| Error::archive(&label, format!("{fqn}: {e}")))?;
            let sizes = tm.concrete_sizes().ok_or_else(|| {
                Error::archive(&label, format!("{fqn}: symbolic sizes in a weight"))
            })?;
            let strides = tm.concrete_strides().ok_or_else(|| {
                Error::archive(&label, format!("{fqn}: symbolic strides in a weight"))
            })?;
            let offset = tm
                .storage_offset
                .as_int()
                .ok_or_else(|| Error::archive(&label, format!("{fqn}: symbolic storage offset")))?;
            let blob = match blobs.get(&meta.path_name) {
                Some(b) => b.clone(),
                None => {
                    let b: Arc<[u8]> = z.read(&entry)?.into();
                    blobs.insert(meta.path_name.clone(), b.clone());
                    b
                }
            };
            let t = TensorData::new(
                &format!("{entry} ({fqn})"),
                dtype,
                sizes,
                strides,
                offset,
                blob,
            )
            .map_err(|e| Error::archive(&label, e.to_string()))?;
            out.insert(fqn.clone(), t);
        }
        Ok(out)
    }

    fn open_legacy<R: Read + Seek>(z: &mut Zip<R>, root: &str) -> Result<Archive> {
        let label = z.label.clone();
        let json_name = format!("{root}serialized_exported_program.json");
        let text = z.read_text(&json_name)?;
        let program = schema::parse_program(&text, &format!("{label}: {json_name}"))?;
        let mut load = |name: &str| -> Result<Option<TorchSave>> {
            let entry = format!("{root}{name}");
            if !z.has(&entry) {
                return Ok(None);
            }
            let bytes = z.read(&entry)?;
            if bytes.is_empty() {
                return Ok(None);
            }
            load_torch_save(bytes, &format!("{label}: {entry}")).map(Some)
        };
        let sd = load("serialized_state_dict.pt")?;
        let consts = load("serialized_constants.pt")?;
        let inputs = load("serialized_example_inputs.pt")?;
        let weights = match sd {
            Some(ts) => ts.tensor_dict(&format!("{label}: serialized_state_dict.pt"))?,
            None => BTreeMap::new(),
        };
        let constants = match consts {
            Some(ts) => ts.tensor_dict(&format!("{label}: serialized_constants.pt"))?,
            None => BTreeMap::new(),
        };
        let sample_inputs = match inputs {
            Some(ts) => Some(
                ts.tensors(&format!("{label}: serialized_example_inputs.pt"))?
                    .into_iter()
                    .map(|(_, t)| t)
                    .collect(),
            ),
            None => None,
        };
        let v = program.schema_version;
        Ok(Archive {
            path: PathBuf::new(),
            model_name: "model".to_string(),
            schema_version: (v.major, v.minor),
            program,
            weights,
            constants,
            sample_inputs,
        })
    }

    /// Every parameter, buffer and tensor constant the signature names must
    /// have data.
    fn check_signature(&self, label: &str) -> Result<()> {
        use schema::InputSpec;
        for spec in &self.program.graph_module.signature.input_specs {
            let name = match spec {
                InputSpec::Parameter(p) => &p.parameter_name,
                InputSpec::Buffer(b) => &b.buffer_name,
                InputSpec::TensorConstant(c) => &c.tensor_constant_name,
                _ => continue,
            };
            let arg = match spec {
                InputSpec::Parameter(p) => &p.arg.name,
                InputSpec::Buffer(b) => &b.arg.name,
                InputSpec::TensorConstant(c) => &c.arg.name,
                _ => continue,
            };
            let Some(data) = self.tensor(name) else {
                return Err(Error::archive(
                    label,
                    format!("no data for {name}, which the signature lifts as an input"),
                ));
            };
            let graph = &self.program.graph_module.graph;
            if let Some(meta) = graph.tensor_values.get(arg) {
                if let Some(sizes) = meta.concrete_sizes() {
                    if sizes != data.sizes {
                        return Err(Error::archive(
                            label,
                            format!(
                                "{name}: data has shape {:?} but the graph expects {:?}",
                                data.sizes, sizes
                            ),
                        ));
                    }
                }
                if let Ok(dtype) = meta.dtype() {
                    if dtype != data.dtype {
                        return Err(Error::archive(
                            label,
                            format!(
                                "{name}: data is {} but the graph expects {}",
                                data.dtype.name(),
                                dtype.name()
                            ),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// A weight or constant by name.
    pub fn tensor(&self, name: &str) -> Option<&TensorData> {
        self.weights.get(name).or_else(|| self.constants.get(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32s(v: &[f32]) -> Arc<[u8]> {
        v.iter()
            .flat_map(|x| x.to_le_bytes())
            .collect::<Vec<u8>>()
            .into()
    }

    #[test]
    fn tensor_checks() {
        let blob = f32s(&[0., 1., 2., 3., 4., 5.]);
        let t = TensorData::new("w", DType::F32, vec![2, 3], vec![3, 1], 0, blob.clone()).unwrap();
        assert!(matches!(t.contiguous_bytes(), Cow::Borrowed(_)));
        let tt = TensorData::new("w", DType::F32, vec![3, 2], vec![1, 3], 0, blob.clone()).unwrap();
        let got: Vec<f32> = tt
            .contiguous_bytes()
            .chunks(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(got, vec![0., 3., 1., 4., 2., 5.]);
        let e = TensorData::new(
            "fc.weight",
            DType::F32,
            vec![2, 4],
            vec![4, 1],
            0,
            blob.clone(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("fc.weight"), "{e}");
        assert!(TensorData::new("w", DType::F32, vec![3], vec![1], 4, blob.clone()).is_err());
        assert!(TensorData::new(
            "w",
            DType::F32,
            vec![i64::MAX, 2],
            vec![1, i64::MAX],
            0,
            blob.clone()
        )
        .is_err());
        assert!(TensorData::new(
            "w",
            DType::F32,
            vec![0, 5],
            vec![5, 1],
            0,
            Arc::from(Vec::new())
        )
        .is_ok());
        assert!(TensorData::new("w", DType::F32, vec![2], vec![-1], 0, blob).is_err());
    }

    #[test]
    fn entry_names() {
        assert!(unsafe_name("../x"));
        assert!(unsafe_name("a/../x"));
        assert!(unsafe_name("/etc/passwd"));
        assert!(unsafe_name("C:/x"));
        assert!(!unsafe_name("model/data/weights/weight_0"));
        assert!(!unsafe_name("model/..data"));
    }
}
