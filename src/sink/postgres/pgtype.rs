//! The PostgreSQL column types the COPY encoder can write. Which Arrow types each one
//! accepts is the encoder's own table (`writer.rs`).

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
}
