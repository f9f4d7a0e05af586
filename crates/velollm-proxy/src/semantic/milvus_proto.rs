//! The few Milvus messages the semantic layer's Milvus store sends and reads (`milvus.proto.milvus`,
//! `milvus.proto.schema`, `milvus.proto.common`), written out with their field numbers: protobuf ignores
//! the fields a side does not know, so a message holds only what velollm uses. Field numbers and enum values
//! are those of Milvus's published `.proto` files.

use prost::Message;

/// `schema.DataType` values used here.
pub mod data_type {
    /// 64-bit integer.
    pub const INT64: i32 = 5;
    /// Variable-length string.
    pub const VARCHAR: i32 = 21;
    /// Vector of 32-bit floats.
    pub const FLOAT_VECTOR: i32 = 101;
}

/// `common.PlaceholderType::FloatVector`.
pub const PLACEHOLDER_FLOAT_VECTOR: i32 = 101;
/// `common.DslType::BoolExprV1`: the filter is a boolean expression.
pub const DSL_BOOL_EXPR: i32 = 1;
/// `common.ConsistencyLevel::Strong`: a search sees every write acknowledged before it.
pub const CONSISTENCY_STRONG: i32 = 0;
/// `common.ConsistencyLevel::Bounded`: a search sees the writes the server has applied, and may miss those
/// of the last moments (at most `common.gracefulTime`, 5 s by default); it does not wait for a time tick.
pub const CONSISTENCY_BOUNDED: i32 = 2;

/// `common.Status`: `code` 0 (and `error_code` 0) is success.
#[derive(Clone, PartialEq, Message)]
pub struct Status {
    /// The legacy error code.
    #[prost(int32, tag = "1")]
    pub error_code: i32,
    /// Why it failed.
    #[prost(string, tag = "2")]
    pub reason: String,
    /// The error code.
    #[prost(int32, tag = "3")]
    pub code: i32,
}

impl Status {
    /// `Err(reason)` unless the status says success.
    pub fn ok(&self) -> Result<(), String> {
        if self.code == 0 && self.error_code == 0 {
            return Ok(());
        }
        Err(if self.reason.is_empty() { format!("Milvus error code {}", self.code) } else { self.reason.clone() })
    }
}

/// `common.KeyValuePair`.
#[derive(Clone, PartialEq, Message)]
pub struct KeyValuePair {
    /// Key.
    #[prost(string, tag = "1")]
    pub key: String,
    /// Value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// A key-value pair.
pub fn kv(key: &str, value: impl Into<String>) -> KeyValuePair {
    KeyValuePair { key: key.into(), value: value.into() }
}

/// `schema.FieldSchema`.
#[derive(Clone, PartialEq, Message)]
pub struct FieldSchema {
    /// Field name.
    #[prost(string, tag = "2")]
    pub name: String,
    /// Whether it is the primary key.
    #[prost(bool, tag = "3")]
    pub is_primary_key: bool,
    /// A `data_type` value.
    #[prost(int32, tag = "5")]
    pub data_type: i32,
    /// `dim` of a vector, `max_length` of a string.
    #[prost(message, repeated, tag = "6")]
    pub type_params: Vec<KeyValuePair>,
}

/// `schema.CollectionSchema`.
#[derive(Clone, PartialEq, Message)]
pub struct CollectionSchema {
    /// Collection name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Fields.
    #[prost(message, repeated, tag = "4")]
    pub fields: Vec<FieldSchema>,
}

/// `milvus.HasCollectionRequest` (also the shape of `DropCollectionRequest` and `DescribeCollectionRequest`).
#[derive(Clone, PartialEq, Message)]
pub struct CollectionRequest {
    /// Collection name.
    #[prost(string, tag = "3")]
    pub collection_name: String,
}

/// `milvus.GetLoadStateRequest`.
#[derive(Clone, PartialEq, Message)]
pub struct LoadStateRequest {
    /// Collection name.
    #[prost(string, tag = "2")]
    pub collection_name: String,
}

/// `common.LoadState::LoadStateLoaded`: every segment of the collection is searchable.
pub const LOAD_STATE_LOADED: i32 = 3;

/// `milvus.GetLoadStateResponse`.
#[derive(Clone, PartialEq, Message)]
pub struct LoadStateResponse {
    /// Status.
    #[prost(message, optional, tag = "1")]
    pub status: Option<Status>,
    /// `common.LoadState`: 0 no collection, 1 not loaded, 2 loading, 3 loaded.
    #[prost(int32, tag = "2")]
    pub state: i32,
}

/// `milvus.GetVersionRequest`.
#[derive(Clone, PartialEq, Message)]
pub struct VersionRequest {}

/// `milvus.GetVersionResponse`.
#[derive(Clone, PartialEq, Message)]
pub struct VersionResponse {
    /// Status.
    #[prost(message, optional, tag = "1")]
    pub status: Option<Status>,
    /// The server's version (`v2.3.5-lite`).
    #[prost(string, tag = "2")]
    pub version: String,
}

/// `milvus.BoolResponse`.
#[derive(Clone, PartialEq, Message)]
pub struct BoolResponse {
    /// Status.
    #[prost(message, optional, tag = "1")]
    pub status: Option<Status>,
    /// The answer.
    #[prost(bool, tag = "2")]
    pub value: bool,
}

/// `milvus.DescribeCollectionResponse`.
#[derive(Clone, PartialEq, Message)]
pub struct DescribeCollectionResponse {
    /// Status.
    #[prost(message, optional, tag = "1")]
    pub status: Option<Status>,
    /// The schema.
    #[prost(message, optional, tag = "2")]
    pub schema: Option<CollectionSchema>,
}

/// `milvus.CreateCollectionRequest`.
#[derive(Clone, PartialEq, Message)]
pub struct CreateCollectionRequest {
    /// Collection name.
    #[prost(string, tag = "3")]
    pub collection_name: String,
    /// The serialized [`CollectionSchema`].
    #[prost(bytes = "vec", tag = "4")]
    pub schema: Vec<u8>,
    /// Shards.
    #[prost(int32, tag = "5")]
    pub shards_num: i32,
    /// Consistency level.
    #[prost(int32, tag = "6")]
    pub consistency_level: i32,
}

/// `milvus.CreateIndexRequest`.
#[derive(Clone, PartialEq, Message)]
pub struct CreateIndexRequest {
    /// Collection name.
    #[prost(string, tag = "3")]
    pub collection_name: String,
    /// The indexed field.
    #[prost(string, tag = "4")]
    pub field_name: String,
    /// `index_type`, `metric_type`, `params`.
    #[prost(message, repeated, tag = "5")]
    pub extra_params: Vec<KeyValuePair>,
    /// Index name.
    #[prost(string, tag = "6")]
    pub index_name: String,
}

/// `schema.FloatArray`.
#[derive(Clone, PartialEq, Message)]
pub struct FloatArray {
    /// Values.
    #[prost(float, repeated, tag = "1")]
    pub data: Vec<f32>,
}

/// `schema.LongArray`.
#[derive(Clone, PartialEq, Message)]
pub struct LongArray {
    /// Values.
    #[prost(int64, repeated, tag = "1")]
    pub data: Vec<i64>,
}

/// `schema.StringArray`.
#[derive(Clone, PartialEq, Message)]
pub struct StringArray {
    /// Values.
    #[prost(string, repeated, tag = "1")]
    pub data: Vec<String>,
}

/// `schema.ScalarField`: one of its arrays.
#[derive(Clone, PartialEq, Message)]
pub struct ScalarField {
    /// 64-bit integers.
    #[prost(message, optional, tag = "3")]
    pub long_data: Option<LongArray>,
    /// Strings.
    #[prost(message, optional, tag = "6")]
    pub string_data: Option<StringArray>,
}

/// `schema.VectorField`.
#[derive(Clone, PartialEq, Message)]
pub struct VectorField {
    /// Dimension.
    #[prost(int64, tag = "1")]
    pub dim: i64,
    /// The vectors, one after the other.
    #[prost(message, optional, tag = "2")]
    pub float_vector: Option<FloatArray>,
}

/// `schema.FieldData`: one column of rows.
#[derive(Clone, PartialEq, Message)]
pub struct FieldData {
    /// A `data_type` value.
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    /// Field name.
    #[prost(string, tag = "2")]
    pub field_name: String,
    /// Scalar values.
    #[prost(message, optional, tag = "3")]
    pub scalars: Option<ScalarField>,
    /// Vector values.
    #[prost(message, optional, tag = "4")]
    pub vectors: Option<VectorField>,
}

impl FieldData {
    /// A string column.
    pub fn strings(name: &str, values: Vec<String>) -> FieldData {
        let scalars = ScalarField { string_data: Some(StringArray { data: values }), long_data: None };
        FieldData { r#type: data_type::VARCHAR, field_name: name.into(), scalars: Some(scalars), vectors: None }
    }

    /// A 64-bit integer column.
    pub fn longs(name: &str, values: Vec<i64>) -> FieldData {
        let scalars = ScalarField { long_data: Some(LongArray { data: values }), string_data: None };
        FieldData { r#type: data_type::INT64, field_name: name.into(), scalars: Some(scalars), vectors: None }
    }

    /// A float-vector column of one vector.
    pub fn vector(name: &str, v: &[f32]) -> FieldData {
        let vectors = VectorField { dim: v.len() as i64, float_vector: Some(FloatArray { data: v.to_vec() }) };
        FieldData { r#type: data_type::FLOAT_VECTOR, field_name: name.into(), scalars: None, vectors: Some(vectors) }
    }

    /// The strings of a string column.
    pub fn string_values(&self) -> &[String] {
        self.scalars.as_ref().and_then(|s| s.string_data.as_ref()).map_or(&[], |s| &s.data)
    }
}

/// `milvus.UpsertRequest`: rows replacing those with the same primary keys.
#[derive(Clone, PartialEq, Message)]
pub struct UpsertRequest {
    /// Collection name.
    #[prost(string, tag = "3")]
    pub collection_name: String,
    /// The columns.
    #[prost(message, repeated, tag = "5")]
    pub fields_data: Vec<FieldData>,
    /// Rows.
    #[prost(uint32, tag = "7")]
    pub num_rows: u32,
}

/// `milvus.DeleteRequest`.
#[derive(Clone, PartialEq, Message)]
pub struct DeleteRequest {
    /// Collection name.
    #[prost(string, tag = "3")]
    pub collection_name: String,
    /// Which rows: a boolean expression.
    #[prost(string, tag = "5")]
    pub expr: String,
}

/// `milvus.MutationResult`.
#[derive(Clone, PartialEq, Message)]
pub struct MutationResult {
    /// Status.
    #[prost(message, optional, tag = "1")]
    pub status: Option<Status>,
}

/// `common.PlaceholderValue`: the query vectors.
#[derive(Clone, PartialEq, Message)]
pub struct PlaceholderValue {
    /// `$0`.
    #[prost(string, tag = "1")]
    pub tag: String,
    /// [`PLACEHOLDER_FLOAT_VECTOR`].
    #[prost(int32, tag = "2")]
    pub r#type: i32,
    /// Each vector as little-endian 32-bit floats.
    #[prost(bytes = "vec", repeated, tag = "3")]
    pub values: Vec<Vec<u8>>,
}

/// `common.PlaceholderGroup`.
#[derive(Clone, PartialEq, Message)]
pub struct PlaceholderGroup {
    /// The placeholders.
    #[prost(message, repeated, tag = "1")]
    pub placeholders: Vec<PlaceholderValue>,
}

/// `milvus.SearchRequest`.
#[derive(Clone, PartialEq, Message)]
pub struct SearchRequest {
    /// Collection name.
    #[prost(string, tag = "3")]
    pub collection_name: String,
    /// The filter, a boolean expression.
    #[prost(string, tag = "5")]
    pub dsl: String,
    /// The serialized [`PlaceholderGroup`].
    #[prost(bytes = "vec", tag = "6")]
    pub placeholder_group: Vec<u8>,
    /// [`DSL_BOOL_EXPR`].
    #[prost(int32, tag = "7")]
    pub dsl_type: i32,
    /// Fields returned with each hit.
    #[prost(string, repeated, tag = "8")]
    pub output_fields: Vec<String>,
    /// `anns_field`, `topk`, `metric_type`, `params`.
    #[prost(message, repeated, tag = "9")]
    pub search_params: Vec<KeyValuePair>,
    /// Queries.
    #[prost(int64, tag = "12")]
    pub nq: i64,
    /// Consistency level.
    #[prost(int32, tag = "14")]
    pub consistency_level: i32,
}

/// `schema.SearchResultData`.
#[derive(Clone, PartialEq, Message)]
pub struct SearchResultData {
    /// The output fields of the hits.
    #[prost(message, repeated, tag = "3")]
    pub fields_data: Vec<FieldData>,
    /// The hits' scores (for COSINE: the similarity).
    #[prost(float, repeated, tag = "4")]
    pub scores: Vec<f32>,
}

/// `milvus.SearchResults`.
#[derive(Clone, PartialEq, Message)]
pub struct SearchResults {
    /// Status.
    #[prost(message, optional, tag = "1")]
    pub status: Option<Status>,
    /// The hits.
    #[prost(message, optional, tag = "2")]
    pub results: Option<SearchResultData>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_request_encodes_its_fields_under_their_numbers() {
        let r = SearchRequest { collection_name: "c".into(), nq: 1, ..Default::default() };
        // Field 3 (length-delimited) "c", then field 12 (varint) 1.
        assert_eq!(r.encode_to_vec(), [0x1a, 1, b'c', 0x60, 1]);
        let back = SearchRequest::decode(&r.encode_to_vec()[..]).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn a_status_that_is_not_zero_is_its_reason() {
        assert_eq!(Status::default().ok(), Ok(()));
        let s = Status { code: 100, reason: "collection not found".into(), error_code: 0 };
        assert_eq!(s.ok(), Err("collection not found".into()));
    }
}
