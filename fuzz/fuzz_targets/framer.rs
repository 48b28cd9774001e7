//! Fuzzes `ingestor_decode::framer`: pushing the stream in pieces must give exactly
//! what pushing it whole gives, and every frame must be a verbatim, ordered,
//! consecutively indexed slice of the stream. Framing with the validator finding
//! the ends of objects (`Framer::with_check`) must give the same records too.
//!
//! Input: the first byte picks the piece size (low 5 bits + 1) and, when its
//! top bit is set, a small record size limit; the rest is the stream.
#![no_main]

use ingestor_decode::framer::{CheckFn, FrameError, FrameKind, Framer, Frames};
use ingestor_decode::validate::{ReadsAll, validate_leading_object};
use libfuzzer_sys::fuzz_target;

/// (bytes, index, offset, kind) of one record.
type Rec = (Vec<u8>, u64, u64, FrameKind);

/// Moves the records out of `out`, checking the buffer's own invariants.
fn drain(out: &mut Frames, recs: &mut Vec<Rec>) {
    for (f, bytes) in out.iter() {
        assert!(f.start <= f.end && f.end <= out.bytes.len(), "{f:?}");
        if let Some(checked) = f.checked {
            // SAFETY: the framer emitted these bytes with this verdict; with debug
            // assertions (cargo fuzz's default) `apply` compares it with validating the
            // record alone.
            let (text, _, _) = unsafe { checked.apply::<ReadsAll>(bytes) };
            assert_eq!(text.as_bytes(), bytes);
        }
    }
    recs.extend(
        out.iter()
            .map(|(f, b)| (b.to_vec(), f.index, f.offset, f.kind)),
    );
    out.clear();
}

fn run<'a>(
    pieces: impl Iterator<Item = &'a [u8]>,
    limit: usize,
    check: Option<CheckFn>,
) -> (Vec<Rec>, Option<FrameError>) {
    let mut framer = Framer::new().with_max_record_bytes(limit);
    if let Some(check) = check {
        framer = framer.with_check(check);
    }
    let mut out = Frames::new();
    let mut recs = Vec::new();
    for piece in pieces {
        let result = framer.push(piece, &mut out);
        drain(&mut out, &mut recs);
        if let Err(e) = result {
            // The framer stays failed.
            assert_eq!(framer.push(b"{}", &mut out).err(), Some(e.clone()));
            assert_eq!(framer.finish(&mut out).err(), Some(e.clone()));
            assert!(out.is_empty());
            return (recs, Some(e));
        }
    }
    let result = framer.finish(&mut out);
    drain(&mut out, &mut recs);
    assert_eq!(framer.records_framed(), recs.len() as u64);
    (recs, result.err())
}

fn check_records(stream: &[u8], recs: &[Rec]) {
    let mut prev_offset = None;
    for (i, (bytes, index, offset, _)) in recs.iter().enumerate() {
        assert_eq!(*index, i as u64, "indices are consecutive from 0");
        assert!(prev_offset < Some(*offset), "offsets strictly increase");
        prev_offset = Some(*offset);
        let at = usize::try_from(*offset).unwrap();
        // Records never start with JSON whitespace (form feed is not one).
        assert!(!bytes.is_empty() && !matches!(bytes[0], b' ' | b'\t' | b'\n' | b'\r'));
        assert_eq!(
            stream.get(at..at + bytes.len()),
            Some(&bytes[..]),
            "a record is the stream's bytes at its offset"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, stream)) = data.split_first() else {
        return;
    };
    let piece = usize::from(first & 0x1f) + 1;
    let limit = if first & 0x80 != 0 {
        usize::from(first & 0x60)
    } else {
        usize::MAX
    };
    let whole = run(std::iter::once(stream), limit, None);
    let split = run(stream.chunks(piece), limit, None);
    assert_eq!(split, whole, "piece size {piece}");
    let check: CheckFn = validate_leading_object::<ReadsAll>;
    let checked = run(stream.chunks(piece), limit, Some(check));
    assert_eq!(checked, whole, "piece size {piece}, objects framed by the validator");
    check_records(stream, &whole.0);
});
