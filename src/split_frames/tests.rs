use futures_util::FutureExt;
use proptest::prelude::*;
use tokio::io::AsyncReadExt;

use super::*;

/// A reader that hands out its bytes in chunks of the given sizes.
struct Chunked {
    bytes: Vec<u8>,
    at: usize,
    sizes: Vec<usize>,
    turn: usize,
}

impl AsyncRead for Chunked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let size = self.sizes[self.turn % self.sizes.len()];
        self.turn += 1;
        let n = size.min(out.remaining()).min(self.bytes.len() - self.at);
        let at = self.at;
        out.put_slice(&self.bytes[at..at + n]);
        self.at += n;
        Poll::Ready(Ok(()))
    }
}

/// One frame as written on the wire.
#[derive(Debug, Clone)]
struct Frame {
    first_byte: u8,
    key: Option<[u8; 4]>,
    payload: Vec<u8>,
}

impl Frame {
    fn opcode(&self) -> u8 {
        self.first_byte & 0x0f
    }

    fn fin(&self) -> bool {
        self.first_byte & 0x80 != 0
    }

    fn encode(&self, out: &mut Vec<u8>) {
        let masked: Vec<u8> = match self.key {
            Some(key) => self
                .payload
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ key[i % 4])
                .collect(),
            None => self.payload.clone(),
        };
        piece_header(out, self.first_byte, masked.len() as u64, self.key);
        out.extend_from_slice(&masked);
    }
}

/// Decodes frames, unmasking payloads.
fn decode(mut bytes: &[u8]) -> Vec<Frame> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        let size = Header::size(bytes).expect("a header");
        let header = Header::parse(&bytes[..size]);
        let end = size + header.length as usize;
        let mut payload = bytes[size..end].to_vec();
        if let Some(key) = header.key {
            payload
                .iter_mut()
                .enumerate()
                .for_each(|(i, b)| *b ^= key[i % 4]);
        }
        frames.push(Frame {
            first_byte: header.first_byte,
            key: header.key,
            payload,
        });
        bytes = &bytes[end..];
    }
    frames
}

/// Runs `wire` through `SplitFrames`: `prefix` bytes as read with the
/// handshake, the rest in chunks of `sizes`, read with buffers of `reads`.
fn split(
    wire: &[u8],
    prefix: usize,
    sizes: Vec<usize>,
    reads: &[usize],
    limit: Option<usize>,
) -> Vec<u8> {
    let prefix = prefix.min(wire.len());
    let inner = Chunked {
        bytes: wire[prefix..].to_vec(),
        at: 0,
        sizes,
        turn: 0,
    };
    let mut split = SplitFrames::new(inner, &wire[..prefix], limit);
    let mut out = Vec::new();
    for turn in 0.. {
        let mut buffer = vec![0u8; reads[turn % reads.len()]];
        let n = split
            .read(&mut buffer)
            .now_or_never()
            .expect("never pending")
            .unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buffer[..n]);
    }
    out
}

/// What `frame` must become.
fn expected(frame: &Frame, limit: u64) -> Vec<Frame> {
    let is_data = frame.opcode() <= 2;
    if !is_data || frame.payload.len() <= PIECE || frame.payload.len() as u64 > limit {
        return vec![frame.clone()];
    }
    let pieces: Vec<&[u8]> = frame.payload.chunks(PIECE).collect();
    let last = pieces.len() - 1;
    pieces
        .into_iter()
        .enumerate()
        .map(|(i, piece)| {
            let fin = if i == last && frame.fin() { 0x80 } else { 0 };
            let kind = if i == 0 { frame.first_byte & 0x7f } else { 0 };
            Frame {
                first_byte: fin | kind,
                key: frame.key,
                payload: piece.to_vec(),
            }
        })
        .collect()
}

fn same(a: &[Frame], b: &[Frame]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(a, b)| a.first_byte == b.first_byte && a.key == b.key && a.payload == b.payload)
}

fn frame_strategy() -> impl Strategy<Value = Frame> {
    let length = prop_oneof![
        Just(0usize),
        Just(125),
        Just(126),
        Just(PIECE),
        Just(PIECE + 1),
        Just(2 * PIECE),
        Just(65_535),
        Just(65_536),
        0usize..300,
        0usize..70_000,
    ];
    let first_byte = prop_oneof![
        Just(0x81u8),
        Just(0x82),
        Just(0x01),
        Just(0x02),
        Just(0x00),
        Just(0x80),
        Just(0xc1),
        Just(0x89),
        Just(0x8a),
        Just(0x88),
    ];
    (first_byte, any::<Option<[u8; 4]>>(), length, any::<u8>()).prop_map(
        |(first_byte, key, length, seed)| {
            // Control frames are short.
            let length = if first_byte & 0x08 != 0 {
                length % 126
            } else {
                length
            };
            Frame {
                first_byte,
                key,
                payload: (0..length)
                    .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
                    .collect(),
            }
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn frames_are_split_into_pieces_and_nothing_else_changes(
        frames in proptest::collection::vec(frame_strategy(), 1..8),
        prefix in 0usize..40,
        sizes in proptest::collection::vec(1usize..5_000, 1..6),
        reads in proptest::collection::vec(1usize..9_000, 1..6),
        limited in any::<bool>(),
    ) {
        let limit = limited.then_some(50_000usize);
        let mut wire = Vec::new();
        for frame in &frames {
            frame.encode(&mut wire);
        }
        let output = decode(&split(&wire, prefix, sizes, &reads, limit));
        let wanted: Vec<Frame> = frames
            .iter()
            .flat_map(|frame| expected(frame, limit.map_or(u64::MAX, |l| l as u64)))
            .collect();
        prop_assert!(same(&output, &wanted), "{} frames out, {} expected", output.len(), wanted.len());
    }
}

#[test]
fn a_big_frame_becomes_pieces_of_at_most_a_piece() {
    let frame = Frame {
        first_byte: 0x81,
        key: Some([1, 2, 3, 4]),
        payload: vec![b'a'; 4 * PIECE + 10],
    };
    let mut wire = Vec::new();
    frame.encode(&mut wire);
    let output = decode(&split(&wire, 0, vec![4096], &[4096], None));
    let lengths: Vec<usize> = output.iter().map(|f| f.payload.len()).collect();
    assert_eq!(lengths, [PIECE, PIECE, PIECE, PIECE, 10]);
    let first_bytes: Vec<u8> = output.iter().map(|f| f.first_byte).collect();
    assert_eq!(first_bytes, [0x01, 0x00, 0x00, 0x00, 0x80]);
}

#[test]
fn frames_over_the_limit_and_small_frames_pass_byte_for_byte() {
    let mut wire = Vec::new();
    for frame in [
        Frame {
            first_byte: 0x82,
            key: Some([9, 9, 9, 9]),
            payload: vec![0; 100_000],
        },
        Frame {
            first_byte: 0x81,
            key: None,
            payload: b"hello".to_vec(),
        },
        Frame {
            first_byte: 0x89,
            key: Some([1, 1, 1, 1]),
            payload: b"ping".to_vec(),
        },
    ] {
        frame.encode(&mut wire);
    }
    assert_eq!(split(&wire, 3, vec![7, 4096], &[4096], Some(60_000)), wire);
}

#[test]
fn an_announced_length_beyond_the_limit_is_left_to_tungstenite() {
    // A header announcing 2^62 bytes, then nothing.
    let mut wire = vec![0x82, 0xff];
    wire.extend_from_slice(&(1u64 << 62).to_be_bytes());
    wire.extend_from_slice(&[1, 2, 3, 4]);
    assert_eq!(split(&wire, 0, vec![5], &[4096], Some(16 << 20)), wire);
}
