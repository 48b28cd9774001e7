//! The PostgreSQL column types the COPY encoder can write, and which Arrow types each one
//! accepts.

use arrow::compute::can_cast_types;
use arrow::datatypes::DataType;

/// A column type the binary COPY encoder writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgType {
    Text,
    Json,
    Jsonb,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Bool,
    Timestamptz,
    Timestamp,
    Date,
    Uuid,
}

impl PgType {
    /// The type for a `pg_type.typname`, or None when the encoder cannot write it.
    pub fn from_typname(typname: &str) -> Option<Self> {
        Some(match typname {
            "text" | "varchar" | "bpchar" | "name" | "citext" => Self::Text,
            "json" => Self::Json,
            "jsonb" => Self::Jsonb,
            "int2" => Self::Int2,
            "int4" => Self::Int4,
            "int8" => Self::Int8,
            "float4" => Self::Float4,
            "float8" => Self::Float8,
            "bool" => Self::Bool,
            "timestamptz" => Self::Timestamptz,
            "timestamp" => Self::Timestamp,
            "date" => Self::Date,
            "uuid" => Self::Uuid,
            _ => return None,
        })
    }

    /// True when values of Arrow type `from` can be written into this column (values that
    /// do not fit, such as an overflowing integer or a malformed uuid, become NULL).
    pub fn accepts(self, from: &DataType) -> bool {
        if from == &DataType::Null {
            return true;
        }
        let is_text = matches!(
            from,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        );
        match self {
            Self::Text => can_cast_types(from, &DataType::Utf8),
            Self::Json | Self::Jsonb => is_text || from.is_numeric() || from == &DataType::Boolean,
            Self::Int2 => can_cast_types(from, &DataType::Int16),
            Self::Int4 => can_cast_types(from, &DataType::Int32),
            Self::Int8 => can_cast_types(from, &DataType::Int64),
            Self::Float4 => can_cast_types(from, &DataType::Float32),
            Self::Float8 => can_cast_types(from, &DataType::Float64),
            Self::Bool => can_cast_types(from, &DataType::Boolean),
            Self::Timestamptz | Self::Timestamp | Self::Date => {
                is_text
                    || matches!(
                        from,
                        DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64
                    )
            }
            Self::Uuid => is_text || from == &DataType::FixedSizeBinary(16),
        }
    }
}
