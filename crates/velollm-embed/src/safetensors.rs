//! The safetensors format: an 8-byte little-endian header length, a JSON header naming each tensor's dtype,
//! shape and byte range, then the tensors' bytes. Only `F32` tensors are read; anything else is an error that
//! names the tensor.

use std::collections::HashMap;

use serde_json::Value;

/// A tensor read as `f32`, with its shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// The dimensions, outermost first.
    pub shape: Vec<usize>,
    /// The values, row-major.
    pub data: Vec<f32>,
}

/// What is wrong with a weights file.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// The header is missing, truncated or not JSON.
    #[error("not a safetensors file: {0}")]
    Header(String),
    /// A tensor the model needs is not in the file.
    #[error("the weights have no tensor {0:?}")]
    Missing(String),
    /// A tensor has another dtype or a byte range outside the file.
    #[error("tensor {name:?}: {why}")]
    Tensor {
        /// The tensor's name.
        name: String,
        /// What is wrong with it.
        why: String,
    },
}

/// The tensors of one file, read on demand.
#[derive(Debug)]
pub struct SafeTensors {
    header: HashMap<String, Value>,
    data: Vec<u8>,
}

impl SafeTensors {
    /// Parses a whole file's bytes.
    pub fn parse(bytes: Vec<u8>) -> Result<SafeTensors, FormatError> {
        let len = bytes.get(..8).ok_or_else(|| FormatError::Header("shorter than 8 bytes".into()))?;
        let len = u64::from_le_bytes(len.try_into().map_err(|_| FormatError::Header("no length".into()))?) as usize;
        let end = 8usize.checked_add(len).filter(|&e| e <= bytes.len());
        let end = end.ok_or_else(|| FormatError::Header(format!("a header of {len} bytes in a shorter file")))?;
        let header: HashMap<String, Value> =
            serde_json::from_slice(&bytes[8..end]).map_err(|e| FormatError::Header(e.to_string()))?;
        let mut data = bytes;
        data.drain(..end);
        Ok(SafeTensors { header, data })
    }

    /// The tensor `name` as `f32`.
    pub fn get(&self, name: &str) -> Result<Tensor, FormatError> {
        let info = self.header.get(name).ok_or_else(|| FormatError::Missing(name.to_owned()))?;
        let bad = |why: String| FormatError::Tensor { name: name.to_owned(), why };
        let dtype = info.get("dtype").and_then(Value::as_str).unwrap_or("");
        if dtype != "F32" {
            return Err(bad(format!("dtype {dtype:?}; only F32 weights are read")));
        }
        let shape: Vec<usize> = info
            .get("shape")
            .and_then(Value::as_array)
            .map(|s| s.iter().filter_map(Value::as_u64).map(|d| d as usize).collect())
            .ok_or_else(|| bad("no shape".into()))?;
        let offsets: Vec<usize> = info
            .get("data_offsets")
            .and_then(Value::as_array)
            .map(|s| s.iter().filter_map(Value::as_u64).map(|d| d as usize).collect())
            .unwrap_or_default();
        let [start, end] = offsets[..] else { return Err(bad("no data_offsets".into())) };
        let bytes = self.data.get(start..end).ok_or_else(|| bad(format!("bytes {start}..{end} outside the file")))?;
        if bytes.len() != shape.iter().product::<usize>() * 4 {
            return Err(bad(format!("{} bytes for shape {shape:?}", bytes.len())));
        }
        let data = bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        Ok(Tensor { shape, data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(header: &str, data: &[u8]) -> Vec<u8> {
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn reads_f32_tensors_and_names_what_is_wrong() {
        let data: Vec<u8> = [1.0f32, -2.5].iter().flat_map(|v| v.to_le_bytes()).collect();
        let header = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},"c":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#;
        let st = SafeTensors::parse(file(header, &data)).unwrap();
        assert_eq!(st.get("a").unwrap(), Tensor { shape: vec![2], data: vec![1.0, -2.5] });
        assert!(st.get("b").unwrap_err().to_string().contains("only F32"));
        assert!(st.get("c").unwrap_err().to_string().contains("for shape"));
        assert!(matches!(st.get("d"), Err(FormatError::Missing(_))));
        assert!(SafeTensors::parse(vec![1, 2]).is_err());
        assert!(SafeTensors::parse(file("{nope", &[])).is_err());
    }
}
