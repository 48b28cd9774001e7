//! `ingestor_record_id(bucket, key, index, timestamp)`: the deterministic id of a record.
//!
//! The id is a UUID in the version 7 layout: the first 48 bits are the record's timestamp in
//! epoch milliseconds (0 when it has none), the other 74 random-looking bits a stable hash
//! of (bucket, key, index). Ingesting the same object again (`--force`, a retry after a
//! crash) reproduces the same ids, and time-ordered logs keep the primary-key index
//! append-mostly, which keeps large backfills fast as the table grows.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use arrow::datatypes::{DataType, Int64Type, TimeUnit};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

/// Stable 64-bit FNV-1a: the id layout must never change between releases or machines.
fn fnv1a(bytes: &[u8], mut hash: u64) -> u64 {
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// splitmix64 finaliser: spreads the index over all bits.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// Hash of the (bucket, key) pair, computed once per batch.
pub fn object_hash(bucket: &str, key: &str) -> u64 {
    let hash = fnv1a(bucket.as_bytes(), FNV_OFFSET);
    fnv1a(key.as_bytes(), fnv1a(&[0xff], hash))
}

/// The id of record `index` of the object with hash `object`, as a UUID string.
pub fn record_id(object: u64, index: i64, millis: i64) -> String {
    let mut text = [0u8; 36];
    write_record_id(object, index, millis, &mut text);
    String::from_utf8(text.to_vec()).expect("hex is ASCII")
}

/// Writes the id into `out` as `xxxxxxxx-xxxx-7xxx-yxxx-xxxxxxxxxxxx` (no allocation).
fn write_record_id(object: u64, index: i64, millis: i64, out: &mut [u8; 36]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let high = mix(object ^ mix(index as u64));
    let low = mix(high ^ object.rotate_left(17));
    let millis = (millis.max(0) as u64) & 0xffff_ffff_ffff;
    let version_and_rand_a = 0x7000 | (high & 0x0fff);
    let variant_and_rand_b = 0x8000_0000_0000_0000 | (low & 0x3fff_ffff_ffff_ffff);
    let bytes: u128 = (u128::from(millis) << 80)
        | (u128::from(version_and_rand_a) << 64)
        | u128::from(variant_and_rand_b);
    let mut at = 0;
    for i in 0..32 {
        if matches!(i, 8 | 12 | 16 | 20) {
            out[at] = b'-';
            at += 1;
        }
        let nibble = (bytes >> (124 - 4 * i)) & 0xf;
        out[at] = HEX[nibble as usize];
        at += 1;
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct RecordIdUdf {
    signature: Signature,
}

impl RecordIdUdf {
    pub fn new() -> Self {
        Self {
            signature: Signature::any(4, Volatility::Immutable),
        }
    }
}

fn millis_of(array: &ArrayRef) -> Result<Vec<Option<i64>>> {
    let per_milli = match array.data_type() {
        DataType::Null => return Ok(vec![None; array.len()]),
        DataType::Timestamp(TimeUnit::Second, _) => -1000,
        DataType::Timestamp(TimeUnit::Millisecond, _) => 1,
        DataType::Timestamp(TimeUnit::Microsecond, _) => 1000,
        DataType::Timestamp(TimeUnit::Nanosecond, _) => 1_000_000,
        other => return exec_err!("ingestor_record_id: the timestamp argument is {other}"),
    };
    let as_i64 = arrow::compute::cast(array, &DataType::Int64)?;
    let values = as_i64.as_primitive::<Int64Type>();
    Ok(values
        .iter()
        .map(|v| {
            v.map(|v| {
                if per_milli < 0 {
                    v.saturating_mul(-per_milli)
                } else {
                    v.div_euclid(per_milli)
                }
            })
        })
        .collect())
}

impl ScalarUDFImpl for RecordIdUdf {
    fn name(&self) -> &str {
        "ingestor_record_id"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let text = |i: usize| arrow::compute::cast(&arrays[i], &DataType::Utf8);
        let (buckets, keys) = (text(0)?, text(1)?);
        let (buckets, keys) = (buckets.as_string::<i32>(), keys.as_string::<i32>());
        let index = arrow::compute::cast(&arrays[2], &DataType::Int64)?;
        let index = index.as_primitive::<Int64Type>();
        let millis = millis_of(&arrays[3])?;
        let mut out = StringBuilder::with_capacity(rows, rows * 36);
        let mut cached: Option<(usize, u64)> = None;
        let mut text = [0u8; 36];
        for (row, millis) in millis.iter().enumerate() {
            if buckets.is_null(row) || keys.is_null(row) || index.is_null(row) {
                out.append_null();
                continue;
            }
            let object = match cached {
                Some((at, hash))
                    if buckets.value(at) == buckets.value(row)
                        && keys.value(at) == keys.value(row) =>
                {
                    hash
                }
                _ => {
                    let hash = object_hash(buckets.value(row), keys.value(row));
                    cached = Some((row, hash));
                    hash
                }
            };
            write_record_id(object, index.value(row), millis.unwrap_or(0), &mut text);
            out.append_value(std::str::from_utf8(&text).expect("hex is ASCII"));
        }
        let array: ArrayRef = Arc::new(out.finish());
        if rows == 1
            && args
                .args
                .iter()
                .all(|a| matches!(a, ColumnarValue::Scalar(_)))
        {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
                &array, 0,
            )?));
        }
        Ok(ColumnarValue::Array(array))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXED_ID: &str = "0192fbc4-517b-7b74-adb4-e87017dbde95";

    #[test]
    fn ids_are_deterministic_uuid_v7_layout_and_time_ordered() {
        let object = object_hash("bucket", "key.json.gz");
        let a = record_id(object, 0, 1_730_800_800_123);
        assert_eq!(a, record_id(object, 0, 1_730_800_800_123));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "7");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
        assert_ne!(a, record_id(object, 1, 1_730_800_800_123));
        assert_ne!(
            a,
            record_id(object_hash("bucket", "other"), 0, 1_730_800_800_123)
        );
        assert!(record_id(object, 5, 1_730_800_800_124) > record_id(object, 9, 1_730_800_800_123));
        // The layout is part of the contract: ids must never change between releases.
        assert_eq!(record_id(object, 0, 1_730_800_800_123), FIXED_ID);
    }
}
