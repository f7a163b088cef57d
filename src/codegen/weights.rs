//! The weights a compiled model reads, and the blob format artifacts keep
//! them in.
//!
//! The JIT copies the state it uses into 64-byte aligned memory of its own.
//! An artifact keeps the same bytes in one blob: in its read-only data
//! (embedded), or in a side file that is memory-mapped at load (external).
//! Either way loading reads only the blob's index, and the code reads the
//! weights where they lie; nothing is copied except the buffers that calls
//! update, which every session owns.
//!
//! The blob, all integers little-endian:
//!
//! ```text
//! magic "TLWEIGHT"  version u32  reserved u32
//! blob length u64             (a shorter or longer file is refused)
//! plan fingerprint u64        (ties a side file to its artifact)
//! data checksum u64           (see `checksum`; checked by `verify`)
//! entry count u64   index length u64
//! index: per entry  name (u64 length + UTF-8), dtype name (same),
//!                   rank u64, dims u64 each, offset u64, byte length u64
//! index checksum u64          (FNV-1a of everything before it)
//! zero padding to a multiple of 64, then the data: each entry at its
//! offset from the blob's start, a multiple of 64
//! ```

use std::collections::{BTreeMap, HashMap};

use crate::error::{Error, Result};
use crate::tensor::Tensor;
use crate::DType;

const MAGIC: &[u8; 8] = b"TLWEIGHT";
const VERSION: u32 = 1;
/// The alignment of every entry's data: the arena's.
pub use super::memory::ALIGN;
/// The most entries a blob may claim, and the highest rank.
const MAX_ENTRIES: u64 = 1 << 20;
const MAX_RANK: u64 = 64;

/// 64-byte aligned bytes.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; ALIGN]);

/// A growable 64-byte aligned byte buffer.
#[derive(Default)]
pub(crate) struct Aligned {
    lines: Vec<Line>,
}

impl Aligned {
    pub(crate) fn ensure(&mut self, bytes: usize) {
        let n = bytes.div_ceil(ALIGN);
        if self.lines.len() < n {
            self.lines.resize(n, Line([0; ALIGN]));
        }
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        let n = self.lines.len() * ALIGN;
        // SAFETY: `Line` is `repr(C)` plain bytes without padding, so the
        // lines are `n` contiguous initialized bytes.
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast::<u8>(), n) }
    }

    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        let n = self.lines.len() * ALIGN;
        // SAFETY: as in `bytes`, and the borrow is unique.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast::<u8>(), n) }
    }

    pub(crate) fn from_bytes(b: &[u8]) -> Aligned {
        let mut a = Aligned::default();
        a.ensure(b.len().max(1));
        a.bytes_mut()[..b.len()].copy_from_slice(b);
        a
    }
}

/// One weight: its type and where its dense row-major bytes lie.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub dtype: DType,
    pub sizes: Vec<usize>,
    ptr: *const u8,
    len: usize,
}

impl Entry {
    /// The first byte; the entry's `len` bytes after it are readable (and
    /// at least one byte, even for an empty tensor).
    pub fn ptr(&self) -> *const u8 {
        self.ptr
    }

    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `Weights` guarantees `len` readable bytes at `ptr` for as
        // long as it lives, and entries are only reached through it.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// The weights of a compiled model, read-only.
pub(crate) struct Weights {
    entries: HashMap<String, Entry>,
    checksum: Option<u64>,
    data: Option<(*const u8, usize)>,
    /// Where the blob came from, for messages.
    what: String,
    /// What keeps the bytes alive: copies owned here (the JIT, or an
    /// unaligned caller buffer), or a mapped side file. Otherwise the
    /// caller does (an artifact's read-only data, a buffer given to the C
    /// API).
    _owned: Vec<Aligned>,
    _map: Option<memmap2::Mmap>,
}

// SAFETY: every pointer addresses read-only bytes that `_backing` (or the
// caller, for borrowed memory) keeps alive and that nothing writes.
unsafe impl Send for Weights {}
// SAFETY: as above; `&Weights` only reads.
unsafe impl Sync for Weights {}

impl Weights {
    /// Copies of the `names` of `state` (the ones a plan reads).
    pub fn from_state<'a>(
        state: &BTreeMap<String, Tensor>,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<Weights> {
        let mut owned = Vec::new();
        let mut entries = HashMap::new();
        for name in names {
            let t = state
                .get(name)
                .ok_or_else(|| Error::other(format!("the archive has no weight named {name}")))?;
            let bytes = t.to_contiguous_bytes();
            let a = Aligned::from_bytes(&bytes);
            let e = Entry {
                dtype: t.dtype(),
                sizes: t.sizes().to_vec(),
                ptr: a.bytes().as_ptr(),
                len: bytes.len(),
            };
            owned.push(a);
            entries.insert(name.to_string(), e);
        }
        Ok(Weights {
            entries,
            checksum: None,
            data: None,
            what: "copied from the archive".into(),
            _owned: owned,
            _map: None,
        })
    }

    /// The weights of a blob in memory that stays valid and unchanged for
    /// as long as the result lives.
    ///
    /// # Safety
    /// `bytes` must outlive the result and never be written while it lives.
    pub unsafe fn borrowed(bytes: &[u8], fingerprint: u64, what: &str) -> Result<Weights> {
        if (bytes.as_ptr() as usize) % ALIGN != 0 {
            // The code reads weights with their natural alignment: a copy.
            let a = Aligned::from_bytes(bytes);
            // SAFETY: `a`'s bytes move with it into the result, unchanged.
            let mut w = unsafe { parse(&a.bytes()[..bytes.len()], fingerprint, what)? };
            w._owned.push(a);
            return Ok(w);
        }
        // SAFETY: the caller keeps `bytes` alive and unchanged.
        unsafe { parse(bytes, fingerprint, what) }
    }

    /// The weights of the side file at `path`, mapped read-only.
    pub fn map_file(path: &std::path::Path, fingerprint: u64) -> Result<Weights> {
        let what = path.display().to_string();
        let f =
            std::fs::File::open(path).map_err(|e| Error::other(format!("weights {what}: {e}")))?;
        // SAFETY: the file is mapped read-only and private; torchlift never
        // writes it. Another process truncating it while it is mapped is
        // outside what any mapping can guard against (the README says so).
        let map = unsafe { memmap2::Mmap::map(&f) }
            .map_err(|e| Error::other(format!("weights {what}: mapping: {e}")))?;
        // SAFETY: the map moves into the result and is never written.
        let mut w = unsafe { parse(&map, fingerprint, &what)? };
        w._map = Some(map);
        Ok(w)
    }

    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.entries.get(name)
    }

    /// Checksums the data against the blob's header: reads every byte.
    pub fn verify(&self) -> Result<()> {
        let (Some(want), Some((p, n))) = (self.checksum, self.data) else {
            return Ok(());
        };
        // SAFETY: `data` addresses `n` bytes of the live blob.
        let data = unsafe { std::slice::from_raw_parts(p, n) };
        if checksum(data) != want {
            return Err(Error::other(format!(
                "weights {}: the data do not match their checksum (corrupt)",
                self.what
            )));
        }
        Ok(())
    }
}

/// FNV-1a.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A checksum of the data that runs at memory speed: four independent
/// multiply-rotate lanes over 8-byte words, FNV-1a over the tail.
pub(crate) fn checksum(data: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut lanes = [K, K ^ 1, K ^ 2, K ^ 3];
    let mut chunks = data.chunks_exact(32);
    for c in &mut chunks {
        for (l, w) in lanes.iter_mut().zip(c.chunks_exact(8)) {
            let w = u64::from_le_bytes(w.try_into().unwrap_or([0; 8]));
            *l = (*l ^ w).wrapping_mul(K).rotate_left(29);
        }
    }
    let tail = fnv1a(chunks.remainder());
    lanes.iter().fold(tail ^ data.len() as u64, |h, &l| {
        (h ^ l).wrapping_mul(K).rotate_left(31)
    })
}

/// The blob of `names` from `state`, for an artifact whose plan has
/// `fingerprint`.
pub(crate) fn write_blob<'a>(
    state: &BTreeMap<String, Tensor>,
    names: impl IntoIterator<Item = &'a str>,
    fingerprint: u64,
) -> Result<Vec<u8>> {
    let mut parts: Vec<(&str, &Tensor, Vec<u8>)> = Vec::new();
    for name in names {
        let t = state
            .get(name)
            .ok_or_else(|| Error::other(format!("the archive has no weight named {name}")))?;
        parts.push((name, t, t.to_contiguous_bytes()));
    }
    // The index's length is known before the offsets are: write it with
    // zero offsets first, measure, then again.
    let index = |offsets: &[u64]| {
        let mut out = Vec::new();
        for ((name, t, bytes), off) in parts.iter().zip(offsets) {
            put_str(&mut out, name);
            put_str(&mut out, t.dtype().name());
            out.extend_from_slice(&(t.sizes().len() as u64).to_le_bytes());
            for &s in t.sizes() {
                out.extend_from_slice(&(s as u64).to_le_bytes());
            }
            out.extend_from_slice(&off.to_le_bytes());
            out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        }
        out
    };
    const HEADER: usize = 8 + 4 + 4 + 8 + 8 + 8 + 8 + 8;
    let index_len = index(&vec![0; parts.len()]).len();
    let data_start = (HEADER + index_len + 8).next_multiple_of(ALIGN);
    let mut offsets = Vec::with_capacity(parts.len());
    let mut at = data_start;
    for (_, _, bytes) in &parts {
        offsets.push(at as u64);
        at = (at + bytes.len().max(1)).next_multiple_of(ALIGN);
    }
    let mut data = vec![0u8; at - data_start];
    for ((_, _, bytes), &off) in parts.iter().zip(&offsets) {
        let o = off as usize - data_start;
        data[o..o + bytes.len()].copy_from_slice(bytes);
    }
    let mut out = Vec::with_capacity(at);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&(at as u64).to_le_bytes());
    out.extend_from_slice(&fingerprint.to_le_bytes());
    out.extend_from_slice(&checksum(&data).to_le_bytes());
    out.extend_from_slice(&(parts.len() as u64).to_le_bytes());
    out.extend_from_slice(&(index_len as u64).to_le_bytes());
    out.extend_from_slice(&index(&offsets));
    let h = fnv1a(&out);
    out.extend_from_slice(&h.to_le_bytes());
    out.resize(data_start, 0);
    out.extend_from_slice(&data);
    Ok(out)
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

struct Reader<'a> {
    b: &'a [u8],
    what: &'a str,
}

impl<'a> Reader<'a> {
    fn bad(&self, why: &str) -> Error {
        Error::other(format!("weights {}: {why}", self.what))
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8]> {
        match usize::try_from(n) {
            Ok(n) if n <= self.b.len() => {
                let (h, t) = self.b.split_at(n);
                self.b = t;
                Ok(h)
            }
            _ => Err(self.bad("truncated or corrupt")),
        }
    }

    fn u64(&mut self) -> Result<u64> {
        let b = self.take(8)?;
        let mut a = [0; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn str(&mut self) -> Result<&'a str> {
        let n = self.u64()?;
        if n > 4096 {
            return Err(self.bad("a name is longer than 4096 bytes (corrupt)"));
        }
        let b = self.take(n)?;
        std::str::from_utf8(b).map_err(|_| self.bad("a name is not UTF-8 (corrupt)"))
    }
}

/// Reads a blob's header and index.
///
/// # Safety
/// `blob` must stay valid and unchanged for as long as the result lives.
unsafe fn parse(blob: &[u8], fingerprint: u64, what: &str) -> Result<Weights> {
    let mut r = Reader { b: blob, what };
    if r.take(8).ok() != Some(MAGIC.as_slice()) {
        return Err(r.bad("not a torchlift weight blob (bad magic)"));
    }
    let version = r.take(4)?;
    if version != VERSION.to_le_bytes() {
        return Err(r.bad(&format!(
            "format version {version:?}, this torchlift reads {VERSION}"
        )));
    }
    r.take(4)?;
    let total = r.u64()?;
    if total != blob.len() as u64 {
        return Err(r.bad(&format!(
            "{} bytes, but it was written with {total} (truncated or corrupt)",
            blob.len()
        )));
    }
    if r.u64()? != fingerprint {
        return Err(r.bad("written for a different compiled model (fingerprint mismatch)"));
    }
    let checksum = r.u64()?;
    let count = r.u64()?;
    let index_len = r.u64()?;
    if count > MAX_ENTRIES {
        return Err(r.bad(&format!("claims {count} entries (corrupt)")));
    }
    let head_len = blob.len() - r.b.len();
    let index = r.take(index_len)?;
    let stored = r.u64()?;
    let end_of_index = blob.len() - r.b.len() - 8;
    if fnv1a(&blob[..end_of_index]) != stored {
        return Err(r.bad("the header or index does not match its checksum (corrupt)"));
    }
    let data_start = (head_len + index.len() + 8).next_multiple_of(ALIGN);
    if data_start > blob.len() {
        return Err(r.bad("truncated or corrupt"));
    }
    let mut ix = Reader { b: index, what };
    let mut entries = HashMap::new();
    for _ in 0..count {
        let name = ix.str()?.to_string();
        let dt = ix.str()?;
        let dtype = DType::from_name(dt)
            .ok_or_else(|| ix.bad(&format!("weight {name} has dtype {dt:?}")))?;
        let rank = ix.u64()?;
        if rank > MAX_RANK {
            return Err(ix.bad(&format!("weight {name} has rank {rank} (corrupt)")));
        }
        let mut sizes = Vec::new();
        for _ in 0..rank {
            sizes.push(usize::try_from(ix.u64()?).map_err(|_| ix.bad("a dim is too large"))?);
        }
        let (off, len) = (ix.u64()?, ix.u64()?);
        let want = sizes
            .iter()
            .try_fold(dtype.size_bytes(), |a, &d| a.checked_mul(d));
        let in_blob = usize::try_from(off)
            .ok()
            .zip(usize::try_from(len).ok())
            .filter(|&(o, n)| {
                o >= data_start
                    && o % ALIGN == 0
                    && o.checked_add(n.max(1)).is_some_and(|e| e <= blob.len())
            });
        let Some((o, n)) = in_blob.filter(|&(_, n)| want == Some(n)) else {
            return Err(ix.bad(&format!(
                "weight {name}: {len} bytes at {off} do not fit the blob or its shape (truncated or corrupt)"
            )));
        };
        let e = Entry {
            dtype,
            sizes,
            ptr: blob[o..].as_ptr(),
            len: n,
        };
        entries.insert(name, e);
    }
    if !ix.b.is_empty() {
        return Err(ix.bad("the index has trailing bytes (corrupt)"));
    }
    let data = &blob[data_start..];
    Ok(Weights {
        entries,
        checksum: Some(checksum),
        data: Some((data.as_ptr(), data.len())),
        what: what.to_string(),
        _owned: Vec::new(),
        _map: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> BTreeMap<String, Tensor> {
        let mut s = BTreeMap::new();
        s.insert(
            "w".to_string(),
            Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]).unwrap(),
        );
        s.insert("n".to_string(), Tensor::from_vec(vec![7i64], &[]).unwrap());
        s.insert(
            "unused".to_string(),
            Tensor::from_vec(vec![0.0f32], &[1]).unwrap(),
        );
        s
    }

    fn aligned(blob: &[u8]) -> Aligned {
        Aligned::from_bytes(blob)
    }

    #[test]
    fn round_trip_reads_the_bytes_in_place() {
        let blob = write_blob(&state(), ["w", "n"], 42).unwrap();
        let a = aligned(&blob);
        // SAFETY: `a` outlives `w` and is not written.
        let w = unsafe { Weights::borrowed(&a.bytes()[..blob.len()], 42, "test") }.unwrap();
        let e = w.get("w").unwrap();
        assert_eq!((e.dtype, e.sizes.clone()), (DType::F32, vec![2, 3]));
        assert_eq!(e.bytes(), state()["w"].to_contiguous_bytes().as_slice());
        assert_eq!(e.ptr() as usize % ALIGN, 0);
        assert!(w.get("unused").is_none());
        w.verify().unwrap();
    }

    #[test]
    fn refuses_damage() {
        let blob = write_blob(&state(), ["w", "n"], 42).unwrap();
        let load = |b: &[u8], fp: u64| {
            let a = aligned(b);
            // SAFETY: `a` outlives the result, which is dropped here.
            unsafe { Weights::borrowed(&a.bytes()[..b.len()], fp, "test") }
                .and_then(|w| w.verify())
                .map_err(|e| e.to_string())
        };
        assert!(load(&blob, 42).is_ok());
        assert!(load(&blob, 43).unwrap_err().contains("fingerprint"));
        for cut in [0, 7, 40, blob.len() / 2, blob.len() - 1] {
            let e = load(&blob[..cut], 42).unwrap_err();
            assert!(e.contains("weights test:"), "cut at {cut}: {e}");
        }
        for at in [0, 9, 50, 70, blob.len() - 3] {
            let mut b = blob.clone();
            b[at] ^= 0x40;
            let e = load(&b, 42).unwrap_err();
            assert!(
                e.contains("corrupt") || e.contains("magic") || e.contains("version"),
                "flip at {at}: {e}"
            );
        }
    }
}
