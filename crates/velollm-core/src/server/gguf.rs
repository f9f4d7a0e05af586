//! A GGUF metadata reader: what `velollm optimize --model FILE.gguf` needs to size a model, read from the
//! file's header without loading its weights.
//!
//! The format (ggml's `docs/gguf.md`): magic `GGUF`, a `u32` version (2 or 3; little-endian), a `u64`
//! tensor count, a `u64` key/value count, the typed key/value pairs, then one info record per tensor (name,
//! dimensions, type, offset). Only scalar values are kept; arrays (the tokenizer's vocabulary) are skipped
//! as they stream past. The reader never allocates more than the input's declared length allows and
//! returns an error, never panics, on truncated or hostile input.

use std::collections::BTreeMap;
use std::io::Read;

/// Why a GGUF header could not be read.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    /// The file does not start with `GGUF`.
    #[error("not a GGUF file (it does not start with the bytes 'GGUF'): pass a .gguf model file")]
    NotGguf,
    /// A version this reader does not know.
    #[error("GGUF version {0} is not supported (velollm reads versions 2 and 3; big-endian files are not supported)")]
    Version(u32),
    /// The header ends early or claims more data than the file holds.
    #[error("the GGUF header is truncated or corrupt: {0}")]
    Corrupt(String),
    /// Reading failed.
    #[error("cannot read the GGUF file: {0}")]
    Io(#[from] std::io::Error),
}

/// A scalar metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Any unsigned or (non-negative) signed integer.
    Uint(u64),
    /// A negative integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A string.
    Str(String),
}

impl Value {
    /// The value as an unsigned integer, when it is one.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Uint(v) => Some(*v),
            _ => None,
        }
    }

    /// The value as a string, when it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// What a GGUF header says about its model.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GgufInfo {
    /// Format version.
    pub version: u32,
    /// Number of tensors.
    pub tensor_count: u64,
    /// Scalar metadata values by key (arrays are skipped).
    pub metadata: BTreeMap<String, Value>,
    /// Sum of every tensor's element count.
    pub tensor_elements: u64,
}

impl GgufInfo {
    fn u64(&self, key: &str) -> Option<u64> {
        self.metadata.get(key).and_then(Value::as_u64)
    }

    fn str(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).and_then(Value::as_str)
    }

    fn arch_u64(&self, suffix: &str) -> Option<u64> {
        self.architecture().and_then(|a| self.u64(&format!("{a}.{suffix}")))
    }

    /// `general.architecture`, e.g. `llama`.
    pub fn architecture(&self) -> Option<&str> {
        self.str("general.architecture")
    }

    /// `general.name`.
    pub fn name(&self) -> Option<&str> {
        self.str("general.name")
    }

    /// `general.size_label`, e.g. `135M`.
    pub fn size_label(&self) -> Option<&str> {
        self.str("general.size_label")
    }

    /// Parameter count: `general.parameter_count`, else the sum of the tensors' element counts.
    pub fn parameter_count(&self) -> Option<u64> {
        self.u64("general.parameter_count").or((self.tensor_elements > 0).then_some(self.tensor_elements))
    }

    /// `general.file_type` (llama.cpp's `llama_ftype`).
    pub fn file_type(&self) -> Option<u64> {
        self.u64("general.file_type")
    }

    /// The quantisation name of `general.file_type`, e.g. `Q4_K_M`.
    pub fn quantization(&self) -> Option<&'static str> {
        self.file_type().and_then(file_type_name)
    }

    /// `<arch>.context_length`: the context the model was trained for.
    pub fn context_length(&self) -> Option<u64> {
        self.arch_u64("context_length")
    }

    /// `<arch>.block_count`: transformer layers.
    pub fn block_count(&self) -> Option<u64> {
        self.arch_u64("block_count")
    }

    /// `<arch>.embedding_length`.
    pub fn embedding_length(&self) -> Option<u64> {
        self.arch_u64("embedding_length")
    }

    /// `<arch>.attention.head_count`.
    pub fn head_count(&self) -> Option<u64> {
        self.arch_u64("attention.head_count")
    }

    /// `<arch>.attention.head_count_kv`, defaulting (as llama.cpp does) to the head count.
    pub fn head_count_kv(&self) -> Option<u64> {
        self.arch_u64("attention.head_count_kv").or_else(|| self.head_count())
    }

    /// Key and value head dimensions: `<arch>.attention.key_length`/`value_length`, defaulting (as
    /// llama.cpp does) to embedding length ÷ head count.
    pub fn head_dims(&self) -> Option<(u64, u64)> {
        let default = match (self.embedding_length(), self.head_count()) {
            (Some(e), Some(h)) if h > 0 => Some(e / h),
            _ => None,
        };
        let k = self.arch_u64("attention.key_length").or(default)?;
        let v = self.arch_u64("attention.value_length").or(default)?;
        Some((k, v))
    }
}

/// llama.cpp's `llama_ftype` values (include/llama.h) and their quantisation names.
pub fn file_type_name(file_type: u64) -> Option<&'static str> {
    Some(match file_type {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        19 => "IQ2_XXS",
        20 => "IQ2_XS",
        21 => "Q2_K_S",
        22 => "IQ3_XS",
        23 => "IQ3_XXS",
        24 => "IQ1_S",
        25 => "IQ4_NL",
        26 => "IQ3_S",
        27 => "IQ3_M",
        28 => "IQ2_S",
        29 => "IQ2_M",
        30 => "IQ4_XS",
        31 => "IQ1_M",
        32 => "BF16",
        36 => "TQ1_0",
        37 => "TQ2_0",
        38 => "MXFP4_MOE",
        _ => return None,
    })
}

/// Read a GGUF header from bytes in memory.
pub fn parse(bytes: &[u8]) -> Result<GgufInfo, GgufError> {
    read(bytes, bytes.len() as u64)
}

/// Read a GGUF header from a reader whose total length is `len` bytes (the file size). Reading stops after
/// the tensor infos; no allocation is larger than what remains of `len`.
pub fn read(r: impl Read, len: u64) -> Result<GgufInfo, GgufError> {
    let mut c = Cursor { r, remaining: len };
    if c.bytes::<4>()? != *b"GGUF" {
        return Err(GgufError::NotGguf);
    }
    let version = c.u32()?;
    if !(2..=3).contains(&version) {
        return Err(GgufError::Version(version));
    }
    let tensor_count = c.u64()?;
    let kv_count = c.u64()?;
    let mut info = GgufInfo { version, tensor_count, ..Default::default() };
    for _ in 0..kv_count {
        let key = c.string()?;
        let ty = c.u32()?;
        if let Some(v) = c.value(ty)? {
            info.metadata.insert(key, v);
        }
    }
    for _ in 0..tensor_count {
        c.skip_string()?;
        let dims = c.u32()?;
        if dims > MAX_DIMS {
            return Err(corrupt(format!("a tensor claims {dims} dimensions (ggml allows at most {MAX_DIMS})")));
        }
        let mut elements: u64 = 1;
        for _ in 0..dims {
            elements = elements.checked_mul(c.u64()?).ok_or_else(|| corrupt("a tensor's size overflows"))?;
        }
        let _type = c.u32()?;
        let _offset = c.u64()?;
        info.tensor_elements =
            info.tensor_elements.checked_add(elements).ok_or_else(|| corrupt("the tensor sizes overflow"))?;
    }
    Ok(info)
}

/// ggml's `GGML_MAX_DIMS`.
const MAX_DIMS: u32 = 4;
/// Arrays nest at most this deep (real files never nest).
const MAX_DEPTH: u32 = 4;
/// Strings longer than this are skipped rather than kept.
const MAX_KEPT_STRING: u64 = 64 * 1024;

fn corrupt(msg: impl Into<String>) -> GgufError {
    GgufError::Corrupt(msg.into())
}

/// A reader that knows how many bytes may still follow.
struct Cursor<R> {
    r: R,
    remaining: u64,
}

impl<R: Read> Cursor<R> {
    fn take(&mut self, n: u64) -> Result<(), GgufError> {
        if n > self.remaining {
            return Err(corrupt(format!("it claims {n} more bytes but only {} remain", self.remaining)));
        }
        self.remaining -= n;
        Ok(())
    }

    fn bytes<const N: usize>(&mut self) -> Result<[u8; N], GgufError> {
        self.take(N as u64)?;
        let mut b = [0u8; N];
        self.r.read_exact(&mut b).map_err(eof)?;
        Ok(b)
    }

    fn u32(&mut self) -> Result<u32, GgufError> {
        self.bytes::<4>().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, GgufError> {
        self.bytes::<8>().map(u64::from_le_bytes)
    }

    fn skip(&mut self, n: u64) -> Result<(), GgufError> {
        self.take(n)?;
        let copied = std::io::copy(&mut (&mut self.r).take(n), &mut std::io::sink())?;
        if copied < n {
            return Err(corrupt("the file ends early"));
        }
        Ok(())
    }

    /// Read a string of at most [`MAX_KEPT_STRING`] bytes (the caller checked the length `n`).
    fn string_of(&mut self, n: u64) -> Result<String, GgufError> {
        self.take(n)?;
        let mut buf = Vec::new();
        (&mut self.r).take(n).read_to_end(&mut buf)?;
        if (buf.len() as u64) < n {
            return Err(corrupt("the file ends inside a string"));
        }
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    /// A key: a string of at most [`MAX_KEPT_STRING`] bytes.
    fn string(&mut self) -> Result<String, GgufError> {
        let n = self.u64()?;
        if n > MAX_KEPT_STRING {
            return Err(corrupt(format!("a key claims {n} bytes")));
        }
        self.string_of(n)
    }

    fn skip_string(&mut self) -> Result<(), GgufError> {
        let n = self.u64()?;
        self.skip(n)
    }

    /// Read a value of GGUF type `ty`; `None` for arrays and over-long strings (skipped).
    fn value(&mut self, ty: u32) -> Result<Option<Value>, GgufError> {
        Ok(Some(match ty {
            0 => Value::Uint(u64::from(self.bytes::<1>()?[0])),
            1 => int(i64::from(i8::from_le_bytes(self.bytes::<1>()?))),
            2 => Value::Uint(u64::from(u16::from_le_bytes(self.bytes::<2>()?))),
            3 => int(i64::from(i16::from_le_bytes(self.bytes::<2>()?))),
            4 => Value::Uint(u64::from(self.u32()?)),
            5 => int(i64::from(i32::from_le_bytes(self.bytes::<4>()?))),
            6 => Value::Float(f64::from(f32::from_le_bytes(self.bytes::<4>()?))),
            7 => Value::Bool(self.bytes::<1>()?[0] != 0),
            8 => {
                let n = self.u64()?;
                if n > MAX_KEPT_STRING {
                    self.skip(n)?;
                    return Ok(None);
                }
                Value::Str(self.string_of(n)?)
            }
            9 => {
                self.skip_array(0)?;
                return Ok(None);
            }
            10 => Value::Uint(self.u64()?),
            11 => int(i64::from_le_bytes(self.bytes::<8>()?)),
            12 => Value::Float(f64::from_le_bytes(self.bytes::<8>()?)),
            other => return Err(corrupt(format!("unknown value type {other}"))),
        }))
    }

    fn skip_array(&mut self, depth: u32) -> Result<(), GgufError> {
        if depth >= MAX_DEPTH {
            return Err(corrupt("arrays nested too deep"));
        }
        let ty = self.u32()?;
        let n = self.u64()?;
        let fixed = match ty {
            0 | 1 | 7 => Some(1),
            2 | 3 => Some(2),
            4..=6 => Some(4),
            10..=12 => Some(8),
            8 | 9 => None,
            other => return Err(corrupt(format!("unknown array element type {other}"))),
        };
        match fixed {
            Some(size) => self.skip(n.checked_mul(size).ok_or_else(|| corrupt("an array's size overflows"))?),
            None => {
                // Every string or nested array takes at least 8 bytes, so a hostile count ends at the
                // declared length.
                if n > self.remaining / 8 {
                    return Err(corrupt(format!("an array claims {n} elements, more than the file can hold")));
                }
                for _ in 0..n {
                    if ty == 8 { self.skip_string()? } else { self.skip_array(depth + 1)? }
                }
                Ok(())
            }
        }
    }
}

fn int(v: i64) -> Value {
    u64::try_from(v).map(Value::Uint).unwrap_or(Value::Int(v))
}

fn eof(e: std::io::Error) -> GgufError {
    if e.kind() == std::io::ErrorKind::UnexpectedEof { corrupt("the file ends early") } else { GgufError::Io(e) }
}

/// Build GGUF bytes for tests (here and in other crates' tests): a version-3 header with `kvs` and tensors
/// given as `(name, dims, ggml type)`.
pub mod build {
    /// A metadata value to write.
    pub enum Kv<'a> {
        /// `u32`.
        U32(u32),
        /// `u64`.
        U64(u64),
        /// `f32`.
        F32(f32),
        /// string.
        Str(&'a str),
        /// array of strings.
        StrArray(&'a [&'a str]),
        /// array of `i32`.
        I32Array(&'a [i32]),
    }

    fn string(out: &mut Vec<u8>, s: &str) {
        out.extend((s.len() as u64).to_le_bytes());
        out.extend(s.as_bytes());
    }

    /// The bytes of a GGUF v3 file header (no tensor data).
    pub fn gguf(kvs: &[(&str, Kv<'_>)], tensors: &[(&str, &[u64], u32)]) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend(3u32.to_le_bytes());
        out.extend((tensors.len() as u64).to_le_bytes());
        out.extend((kvs.len() as u64).to_le_bytes());
        for (key, v) in kvs {
            string(&mut out, key);
            match v {
                Kv::U32(x) => {
                    out.extend(4u32.to_le_bytes());
                    out.extend(x.to_le_bytes());
                }
                Kv::U64(x) => {
                    out.extend(10u32.to_le_bytes());
                    out.extend(x.to_le_bytes());
                }
                Kv::F32(x) => {
                    out.extend(6u32.to_le_bytes());
                    out.extend(x.to_le_bytes());
                }
                Kv::Str(s) => {
                    out.extend(8u32.to_le_bytes());
                    string(&mut out, s);
                }
                Kv::StrArray(items) => {
                    out.extend(9u32.to_le_bytes());
                    out.extend(8u32.to_le_bytes());
                    out.extend((items.len() as u64).to_le_bytes());
                    for s in *items {
                        string(&mut out, s);
                    }
                }
                Kv::I32Array(items) => {
                    out.extend(9u32.to_le_bytes());
                    out.extend(5u32.to_le_bytes());
                    out.extend((items.len() as u64).to_le_bytes());
                    for x in *items {
                        out.extend(x.to_le_bytes());
                    }
                }
            }
        }
        let mut offset = 0u64;
        for (name, dims, ty) in tensors {
            string(&mut out, name);
            out.extend((dims.len() as u32).to_le_bytes());
            for d in *dims {
                out.extend(d.to_le_bytes());
            }
            out.extend(ty.to_le_bytes());
            out.extend(offset.to_le_bytes());
            offset += dims.iter().product::<u64>();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::build::{Kv, gguf};
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Vec<u8> {
        gguf(
            &[
                ("general.architecture", Kv::Str("llama")),
                ("general.name", Kv::Str("Tiny Test")),
                ("general.size_label", Kv::Str("1K")),
                ("general.file_type", Kv::U32(15)),
                ("tokenizer.ggml.tokens", Kv::StrArray(&["<s>", "</s>", "hello"])),
                ("tokenizer.ggml.token_type", Kv::I32Array(&[1, 1, 1])),
                ("llama.context_length", Kv::U32(8192)),
                ("llama.block_count", Kv::U32(2)),
                ("llama.embedding_length", Kv::U32(64)),
                ("llama.attention.head_count", Kv::U32(8)),
                ("llama.attention.head_count_kv", Kv::U32(2)),
                ("llama.rope.freq_base", Kv::F32(10000.0)),
            ],
            &[("token_embd.weight", &[64, 3], 12), ("blk.0.attn_q.weight", &[64, 64], 12), ("norm", &[64], 0)],
        )
    }

    #[test]
    fn reads_what_optimize_needs() {
        let info = parse(&sample()).unwrap();
        assert_eq!(info.version, 3);
        assert_eq!(info.tensor_count, 3);
        assert_eq!(info.architecture(), Some("llama"));
        assert_eq!(info.name(), Some("Tiny Test"));
        assert_eq!(info.size_label(), Some("1K"));
        assert_eq!(info.quantization(), Some("Q4_K_M"));
        assert_eq!(info.context_length(), Some(8192));
        assert_eq!(info.block_count(), Some(2));
        assert_eq!(info.head_count(), Some(8));
        assert_eq!(info.head_count_kv(), Some(2));
        assert_eq!(info.head_dims(), Some((8, 8)));
        // No general.parameter_count: the tensors' elements, 64·3 + 64·64 + 64.
        assert_eq!(info.parameter_count(), Some(64 * 3 + 64 * 64 + 64));
        assert_eq!(info.metadata.get("llama.rope.freq_base"), Some(&Value::Float(10000.0)));
        assert!(!info.metadata.contains_key("tokenizer.ggml.tokens"), "arrays are skipped");
    }

    #[test]
    fn general_parameter_count_wins_over_the_tensor_sum() {
        let bytes = gguf(&[("general.parameter_count", Kv::U64(134_515_008))], &[("w", &[10], 0)]);
        assert_eq!(parse(&bytes).unwrap().parameter_count(), Some(134_515_008));
    }

    #[test]
    fn not_gguf_and_bad_versions_are_named() {
        assert!(matches!(parse(b"PK\x03\x04 a zip"), Err(GgufError::NotGguf)));
        let mut v1 = sample();
        v1[4..8].copy_from_slice(&1u32.to_le_bytes());
        assert!(matches!(parse(&v1), Err(GgufError::Version(1))));
        assert!(matches!(parse(b"GG"), Err(GgufError::Corrupt(_))));
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = sample();
        for n in 0..bytes.len() {
            assert!(parse(&bytes[..n]).is_err(), "a header cut at {n} bytes must not parse");
        }
    }

    #[test]
    fn hostile_counts_fail_without_allocating() {
        // A string that claims 2^62 bytes, and an array that claims 2^60 strings.
        let mut huge_string = b"GGUF".to_vec();
        huge_string.extend(3u32.to_le_bytes());
        huge_string.extend(0u64.to_le_bytes());
        huge_string.extend(1u64.to_le_bytes());
        huge_string.extend((1u64 << 62).to_le_bytes());
        assert!(matches!(parse(&huge_string), Err(GgufError::Corrupt(_))));
        let mut huge_array = b"GGUF".to_vec();
        huge_array.extend(3u32.to_le_bytes());
        huge_array.extend(0u64.to_le_bytes());
        huge_array.extend(1u64.to_le_bytes());
        huge_array.extend(1u64.to_le_bytes());
        huge_array.push(b'k');
        huge_array.extend(9u32.to_le_bytes());
        huge_array.extend(8u32.to_le_bytes());
        huge_array.extend((1u64 << 60).to_le_bytes());
        assert!(matches!(parse(&huge_array), Err(GgufError::Corrupt(_))));
        // Billions of key/value pairs declared in a tiny file end at its end.
        let mut many = b"GGUF".to_vec();
        many.extend(3u32.to_le_bytes());
        many.extend(u64::MAX.to_le_bytes());
        many.extend(u64::MAX.to_le_bytes());
        assert!(parse(&many).is_err());
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&bytes);
            let mut with_magic = b"GGUF\x03\0\0\0".to_vec();
            with_magic.extend(&bytes);
            let _ = parse(&with_magic);
        }

        #[test]
        fn mutated_headers_never_panic(pos in 0usize..400, byte in any::<u8>()) {
            let mut bytes = sample();
            let i = pos % bytes.len();
            bytes[i] = byte;
            let _ = parse(&bytes);
        }
    }
}
