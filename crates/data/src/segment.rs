//! The ingest log: append-only segment files of checksummed frames on local disk.
//!
//! One frame holds one accepted batch (one bulk request, or one import batch): its kind, the
//! sequence number of its first record, the arrival time, an optional batch key (for idempotent
//! imports) and the records as JSON lines. A frame is written with one `write` and made durable
//! with `fdatasync` before the request is acknowledged.
//!
//! ```text
//! segment := "TYLOG001" frame*
//! frame   := magic u32 "TYFR" | body_length u32 | crc32c(body) u32 | body
//! body    := kind u8 | record_count u32 | element_count u32 | first_sequence u64
//!            | received_ms i64 | batch_key_length u16 | batch_key | records (JSON, one per line)
//! ```
//! (`element_count` is how many elements the push carried, refused ones included: a batch key
//! applied again must come with the same count.)
//! ```text
//! ```
//! All integers little-endian. Only the tail of the newest segment can be torn (a crash in the
//! middle of an append): it is cut off when the segment is reopened. A bad frame followed by a
//! good one means the file was damaged, not torn, and opening fails loudly instead of dropping
//! acknowledged data.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};

use crate::error::DataError;
use crate::records::{DatasetKind, IngestRecord};

const SEGMENT_MAGIC: &[u8; 8] = b"TYLOG001";
const FRAME_MAGIC: u32 = u32::from_le_bytes(*b"TYFR");
const FRAME_HEADER_BYTES: usize = 12;
const BODY_FIXED_BYTES: usize = 1 + 4 + 4 + 8 + 8 + 2;
/// The largest frame body accepted when reading (a corrupt length cannot make us allocate more).
const MAX_FRAME_BODY_BYTES: usize = 64 * 1024 * 1024;

/// The file name of the segment whose first record has `first_sequence`.
pub fn segment_file_name(first_sequence: u64) -> String {
    format!("segment-{first_sequence:020}.log")
}

/// The first sequence encoded in a segment file name.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    name.strip_prefix("segment-")?.strip_suffix(".log")?.parse().ok()
}

/// A decoded frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub kind: DatasetKind,
    pub first_sequence: u64,
    pub received_ms: i64,
    pub batch_key: Option<String>,
    /// Elements the push carried (refused ones included).
    pub element_count: u32,
    /// Records in the frame (also when they were not decoded).
    pub record_count: usize,
    /// The records; empty when read with [`Decode::HeadersOnly`].
    pub records: Vec<IngestRecord>,
}

impl Frame {
    /// The sequence of the last record (the frame's first sequence when it holds none).
    pub fn last_sequence(&self) -> u64 {
        self.first_sequence + (self.record_count as u64).saturating_sub(1)
    }
}

/// How much of each frame to decode. Both verify every checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decode {
    /// Parse the records too.
    Records,
    /// Only the headers (sequences, counts, batch keys): what reopening a log needs, at a
    /// fraction of the cost.
    HeadersOnly,
}

/// Encodes a frame (the store encodes the payload and the frame separately).
#[cfg(test)]
pub fn encode_frame(
    kind: DatasetKind,
    first_sequence: u64,
    received_ms: i64,
    batch_key: Option<&str>,
    element_count: u32,
    records: &[IngestRecord],
) -> Vec<u8> {
    debug_assert!(records.iter().all(|record| record.kind() == kind));
    let payload = encode_payload(records);
    encode_frame_with_payload(kind, first_sequence, received_ms, batch_key, element_count, records.len(), &payload)
}

/// The records part of a frame: one JSON line per record.
pub fn encode_payload(records: &[IngestRecord]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(records.len() * 320);
    for record in records {
        payload.extend_from_slice(&record.to_log_line());
        payload.push(b'\n');
    }
    payload
}

/// A frame around an already encoded payload of `record_count` records.
pub fn encode_frame_with_payload(
    kind: DatasetKind,
    first_sequence: u64,
    received_ms: i64,
    batch_key: Option<&str>,
    element_count: u32,
    record_count: usize,
    payload: &[u8],
) -> Vec<u8> {
    let key = batch_key.unwrap_or("").as_bytes();
    let key_length = u16::try_from(key.len()).expect("batch keys are at most 256 bytes");
    let body_length = BODY_FIXED_BYTES + key.len() + payload.len();
    let mut frame = Vec::with_capacity(FRAME_HEADER_BYTES + body_length);
    frame.extend_from_slice(&FRAME_MAGIC.to_le_bytes());
    frame.extend_from_slice(&(body_length as u32).to_le_bytes());
    frame.extend_from_slice(&[0; 4]);
    frame.push(kind.code());
    frame.extend_from_slice(&(record_count as u32).to_le_bytes());
    frame.extend_from_slice(&element_count.to_le_bytes());
    frame.extend_from_slice(&first_sequence.to_le_bytes());
    frame.extend_from_slice(&received_ms.to_le_bytes());
    frame.extend_from_slice(&key_length.to_le_bytes());
    frame.extend_from_slice(key);
    frame.extend_from_slice(payload);
    let checksum = crc32c::crc32c(&frame[FRAME_HEADER_BYTES..]);
    frame[8..12].copy_from_slice(&checksum.to_le_bytes());
    frame
}

/// What reading a frame at some offset found.
enum FrameRead {
    Frame(Frame, usize),
    /// Not a complete, intact frame (torn, or damaged).
    Bad,
    End,
}

fn read_frame_at(bytes: &[u8], offset: usize, decode: Decode) -> Result<FrameRead, DataError> {
    if offset == bytes.len() {
        return Ok(FrameRead::End);
    }
    let Some(header) = bytes.get(offset..offset + FRAME_HEADER_BYTES) else {
        return Ok(FrameRead::Bad);
    };
    let magic = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes"));
    let body_length = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes")) as usize;
    let checksum = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
    if magic != FRAME_MAGIC || !(BODY_FIXED_BYTES..=MAX_FRAME_BODY_BYTES).contains(&body_length) {
        return Ok(FrameRead::Bad);
    }
    let body_start = offset + FRAME_HEADER_BYTES;
    let Some(body) = bytes.get(body_start..body_start + body_length) else {
        return Ok(FrameRead::Bad);
    };
    if crc32c::crc32c(body) != checksum {
        return Ok(FrameRead::Bad);
    }
    let kind = DatasetKind::from_code(body[0])
        .ok_or_else(|| DataError::Corrupt(format!("unknown record kind {} in a checksummed frame", body[0])))?;
    let record_count = u32::from_le_bytes(body[1..5].try_into().expect("4 bytes")) as usize;
    let element_count = u32::from_le_bytes(body[5..9].try_into().expect("4 bytes"));
    let first_sequence = u64::from_le_bytes(body[9..17].try_into().expect("8 bytes"));
    let received_ms = i64::from_le_bytes(body[17..25].try_into().expect("8 bytes"));
    let key_length = u16::from_le_bytes(body[25..27].try_into().expect("2 bytes")) as usize;
    let key_end = BODY_FIXED_BYTES + key_length;
    let key_bytes = body
        .get(BODY_FIXED_BYTES..key_end)
        .ok_or_else(|| DataError::Corrupt("a frame's batch key overruns it".into()))?;
    let batch_key = if key_length == 0 {
        None
    } else {
        Some(String::from_utf8(key_bytes.to_vec()).map_err(|_| DataError::Corrupt("a batch key is not UTF-8".into()))?)
    };
    if decode == Decode::HeadersOnly {
        let frame =
            Frame { kind, first_sequence, received_ms, batch_key, element_count, record_count, records: Vec::new() };
        return Ok(FrameRead::Frame(frame, body_start + body_length));
    }
    let mut records = Vec::with_capacity(record_count);
    for line in body[key_end..].split(|byte| *byte == b'\n').filter(|line| !line.is_empty()) {
        records.push(
            IngestRecord::from_log_line(kind, line)
                .map_err(|error| DataError::Corrupt(format!("a logged record does not decode: {error}")))?,
        );
    }
    if records.len() != record_count {
        return Err(DataError::Corrupt(format!(
            "a frame announces {record_count} records and holds {}",
            records.len()
        )));
    }
    Ok(FrameRead::Frame(
        Frame { kind, first_sequence, received_ms, batch_key, element_count, record_count, records },
        body_start + body_length,
    ))
}

/// Every frame of a segment's bytes, up to `end` (exclusive); `Err` when damaged.
///
/// With `allow_torn_tail`, a bad frame that no good frame follows ends the segment there and its
/// offset is returned; otherwise any bad frame is an error.
pub fn decode_segment(
    bytes: &[u8],
    end: usize,
    allow_torn_tail: bool,
    decode: Decode,
) -> Result<(Vec<Frame>, usize), DataError> {
    let bytes = &bytes[..end.min(bytes.len())];
    if bytes.len() < SEGMENT_MAGIC.len() || &bytes[..SEGMENT_MAGIC.len()] != SEGMENT_MAGIC {
        if allow_torn_tail && bytes.len() < SEGMENT_MAGIC.len() && SEGMENT_MAGIC.starts_with(bytes) {
            return Ok((Vec::new(), 0));
        }
        return Err(DataError::Corrupt("the segment does not start with the log header".into()));
    }
    let mut frames = Vec::new();
    let mut offset = SEGMENT_MAGIC.len();
    loop {
        match read_frame_at(bytes, offset, decode)? {
            FrameRead::End => return Ok((frames, offset)),
            FrameRead::Frame(frame, next) => {
                frames.push(frame);
                offset = next;
            }
            FrameRead::Bad => {
                if allow_torn_tail && !good_frame_after(bytes, offset + 1)? {
                    return Ok((frames, offset));
                }
                return Err(DataError::Corrupt(format!("a damaged frame at byte {offset} is followed by intact data")));
            }
        }
    }
}

fn good_frame_after(bytes: &[u8], from: usize) -> Result<bool, DataError> {
    let magic = FRAME_MAGIC.to_le_bytes();
    let mut position = from;
    while let Some(found) = bytes.get(position..).and_then(|rest| rest.windows(4).position(|window| window == magic)) {
        let candidate = position + found;
        if let FrameRead::Frame(..) = read_frame_at(bytes, candidate, Decode::HeadersOnly)? {
            return Ok(true);
        }
        position = candidate + 1;
    }
    Ok(false)
}

/// Reads a whole segment file (it is bounded by the rotation size).
pub fn read_segment_file(
    path: &Path,
    end: Option<u64>,
    allow_torn_tail: bool,
    decode: Decode,
) -> Result<(Vec<Frame>, usize), DataError> {
    let mut file = File::open(path).map_err(|error| DataError::io(path, error))?;
    let mut bytes = Vec::new();
    match end {
        Some(limit) => {
            std::io::Read::by_ref(&mut file)
                .take(limit)
                .read_to_end(&mut bytes)
                .map_err(|error| DataError::io(path, error))?;
        }
        None => {
            file.read_to_end(&mut bytes).map_err(|error| DataError::io(path, error))?;
        }
    }
    let length = bytes.len();
    decode_segment(&bytes, length, allow_torn_tail, decode)
}

/// The open, newest segment of a stream.
#[derive(Debug)]
pub struct ActiveSegment {
    pub path: PathBuf,
    pub first_sequence: u64,
    file: File,
    length: u64,
    frame_count: usize,
}

impl ActiveSegment {
    /// Creates a new, empty segment (durably: the file and its directory entry are synced).
    pub fn create(directory: &Path, first_sequence: u64) -> Result<ActiveSegment, DataError> {
        let path = directory.join(segment_file_name(first_sequence));
        let mut file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .read(true)
            .open(&path)
            .map_err(|error| DataError::io(&path, error))?;
        file.write_all(SEGMENT_MAGIC).map_err(|error| DataError::io(&path, error))?;
        file.sync_all().map_err(|error| DataError::io(&path, error))?;
        sync_directory(directory)?;
        Ok(ActiveSegment { path, first_sequence, file, length: SEGMENT_MAGIC.len() as u64, frame_count: 0 })
    }

    /// Reopens the newest segment after a restart, cutting off a torn tail. Returns the segment
    /// and the frames it holds.
    pub fn reopen(path: &Path, first_sequence: u64) -> Result<(ActiveSegment, Vec<Frame>), DataError> {
        let (frames, good_length) = read_segment_file(path, None, true, Decode::HeadersOnly)?;
        let mut file =
            OpenOptions::new().append(true).read(true).open(path).map_err(|error| DataError::io(path, error))?;
        let actual_length = file.metadata().map_err(|error| DataError::io(path, error))?.len();
        let mut length = good_length as u64;
        if good_length < SEGMENT_MAGIC.len() {
            // Torn before its header was complete: rewrite the header.
            file.set_len(0).map_err(|error| DataError::io(path, error))?;
            file.write_all(SEGMENT_MAGIC).map_err(|error| DataError::io(path, error))?;
            length = SEGMENT_MAGIC.len() as u64;
        } else if actual_length > length {
            tracing::warn!(path = %path.display(), dropped_bytes = actual_length - length, "cutting a torn frame off the ingest log");
            file.set_len(length).map_err(|error| DataError::io(path, error))?;
        }
        file.sync_all().map_err(|error| DataError::io(path, error))?;
        file.seek(SeekFrom::End(0)).map_err(|error| DataError::io(path, error))?;
        let frame_count = frames.len();
        Ok((ActiveSegment { path: path.to_path_buf(), first_sequence, file, length, frame_count }, frames))
    }

    /// Appends one encoded frame and makes it durable.
    pub fn append(&mut self, frame: &[u8]) -> Result<(), DataError> {
        if let Err(error) = self.file.write_all(frame).and_then(|()| self.file.sync_data()) {
            // Never leave a partial frame behind a later good one: cut back to the last good end.
            let _ = self.file.set_len(self.length);
            return Err(DataError::io(&self.path, error));
        }
        self.length += frame.len() as u64;
        self.frame_count += 1;
        Ok(())
    }

    pub fn length(&self) -> u64 {
        self.length
    }

    pub fn is_empty(&self) -> bool {
        self.frame_count == 0
    }

    /// Closes the segment; its data is already durable.
    pub fn seal(self) -> PathBuf {
        self.path
    }
}

/// Makes a directory's entries (a created or removed file) durable.
pub fn sync_directory(directory: &Path) -> Result<(), DataError> {
    File::open(directory).and_then(|handle| handle.sync_all()).map_err(|error| DataError::io(directory, error))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{QueryLogEntry, validate_query_log_entry};

    fn entry(query: &str) -> IngestRecord {
        let element = format!(
            "{{\"cmd\":\"ADD\",\"fields\":{{\"query\":\"{query}\",\"raw_query\":true,\"hits\":1,\"timestamp\":1795800000}}}}"
        );
        validate_query_log_entry(element.as_bytes(), 1_795_900_000).unwrap()
    }

    #[test]
    fn frames_round_trip_through_a_segment() {
        let directory = tempfile::tempdir().unwrap();
        let mut segment = ActiveSegment::create(directory.path(), 1).unwrap();
        segment
            .append(&encode_frame(DatasetKind::QueryLog, 1, 1000, Some("import:a:0"), 2, &[entry("a"), entry("b")]))
            .unwrap();
        segment.append(&encode_frame(DatasetKind::QueryLog, 3, 2000, None, 1, &[entry("c")])).unwrap();
        let path = segment.seal();
        let (frames, _) = read_segment_file(&path, None, false, Decode::Records).unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].batch_key.as_deref(), Some("import:a:0"));
        assert_eq!(frames[0].last_sequence(), 2);
        let IngestRecord::QueryLog(QueryLogEntry { query, .. }) = &frames[1].records[0] else { panic!("query log") };
        assert_eq!(query, "c");
    }

    #[test]
    fn a_torn_tail_is_cut_and_damage_in_the_middle_is_refused() {
        let directory = tempfile::tempdir().unwrap();
        let mut segment = ActiveSegment::create(directory.path(), 1).unwrap();
        segment.append(&encode_frame(DatasetKind::QueryLog, 1, 1000, None, 1, &[entry("kept")])).unwrap();
        let good_length = segment.length();
        let second = encode_frame(DatasetKind::QueryLog, 2, 2000, None, 1, &[entry("torn")]);
        let path = segment.seal();
        // A crash halfway through the second append.
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&second[..second.len() / 2]).unwrap();
        drop(file);
        let (reopened, frames) = ActiveSegment::reopen(&path, 1).unwrap();
        assert_eq!(frames.len(), 1);
        assert_eq!(reopened.length(), good_length);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), good_length);
        drop(reopened);

        // Damage the first frame while a good one follows: refused.
        let mut segment = ActiveSegment::reopen(&path, 1).unwrap().0;
        segment.append(&encode_frame(DatasetKind::QueryLog, 2, 2000, None, 1, &[entry("after")])).unwrap();
        drop(segment);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[SEGMENT_MAGIC.len() + FRAME_HEADER_BYTES + 30] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(ActiveSegment::reopen(&path, 1), Err(DataError::Corrupt(_))));
    }

    #[test]
    fn every_truncation_point_of_the_last_frame_is_recovered() {
        let frame_one = encode_frame(DatasetKind::QueryLog, 1, 1000, None, 1, &[entry("one")]);
        let frame_two = encode_frame(DatasetKind::QueryLog, 2, 1000, Some("k"), 1, &[entry("two")]);
        let mut whole = SEGMENT_MAGIC.to_vec();
        whole.extend_from_slice(&frame_one);
        let after_first = whole.len();
        whole.extend_from_slice(&frame_two);
        for cut in 0..whole.len() {
            let (frames, good) = decode_segment(&whole[..cut], cut, true, Decode::Records).unwrap();
            let expected_frames = if cut < after_first { 0 } else { 1 };
            assert_eq!(frames.len(), expected_frames, "cut at {cut}");
            assert!(good <= cut);
        }
        assert_eq!(decode_segment(&whole, whole.len(), false, Decode::Records).unwrap().0.len(), 2);
    }
}
