//! Incoming WebSocket frames re-framed into pieces of bounded size.
//!
//! tungstenite reserves read buffer for a whole frame and never gives the
//! memory back, so one 4 MiB frame would pin 4 MiB to a session for its whole
//! life. [`SplitFrames`] sits between a socket and tungstenite and rewrites
//! every data frame longer than [`PIECE`] into a first fragment and
//! continuations of at most `PIECE` bytes. Fragmentation is transparent to
//! WebSocket applications (RFC 6455 §5.4): tungstenite reassembles the same
//! message, in a buffer it frees when the message has been relayed.
//!
//! Only frame headers are rewritten; payload bytes pass through where they
//! were read, unchanged (masked payloads too: pieces start at multiples of
//! four bytes, so the masking key of the original frame still applies).
//! Control frames, frames no longer than a piece and frames over the
//! configured frame limit (which tungstenite then refuses) pass unchanged.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::read_ahead::ReadAhead;

/// The largest payload of a frame handed to tungstenite: 16 KiB, less four
/// bytes so that every piece starts on a masking-key boundary.
pub(crate) const PIECE: usize = 16 * 1024 - 4;

/// The longest frame header: 2 bytes, a 64-bit length and a masking key.
const MAX_HEADER: usize = 14;

/// A socket whose incoming frames are re-framed into pieces of at most
/// [`PIECE`] bytes, read through [`ReadAhead`]; writes pass through untouched.
#[derive(Debug)]
pub(crate) struct SplitFrames<S> {
    inner: S,
    ahead: ReadAhead,
    scanner: Scanner,
    /// Rewritten bytes waiting to be read.
    carry: Vec<u8>,
    carry_read: usize,
}

impl<S> SplitFrames<S> {
    /// Wraps `inner`; `already_read` are bytes of the WebSocket stream that
    /// were read with the handshake. Frames longer than `frame_limit` are
    /// left for tungstenite to refuse.
    pub(crate) fn new(inner: S, already_read: &[u8], frame_limit: Option<usize>) -> Self {
        let mut split = Self {
            inner,
            ahead: ReadAhead::default(),
            scanner: Scanner::new(frame_limit),
            carry: Vec::new(),
            carry_read: 0,
        };
        split.scanner.rewrite(already_read, &mut split.carry);
        split
    }

    /// Hands out rewritten bytes; `true` when some were.
    fn drain_carry(&mut self, out: &mut ReadBuf<'_>) -> bool {
        let waiting = &self.carry[self.carry_read..];
        if waiting.is_empty() {
            return false;
        }
        let n = waiting.len().min(out.remaining());
        out.put_slice(&waiting[..n]);
        self.carry_read += n;
        if self.carry_read == self.carry.len() {
            // Rewriting is rare: an idle socket keeps no buffer for it.
            self.carry = Vec::new();
            self.carry_read = 0;
        }
        n > 0
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for SplitFrames<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if out.remaining() == 0 || this.drain_carry(out) {
            return Poll::Ready(Ok(()));
        }
        loop {
            let start = out.filled().len();
            ready!(this.ahead.poll_read(&mut this.inner, cx, out))?;
            let end = out.filled().len();
            if end == start {
                // End of stream.
                return Poll::Ready(Ok(()));
            }
            let fresh = &out.filled()[start..];
            if let Some(at) = this.scanner.scan(fresh) {
                // From `at` on, bytes need rewriting: take them back.
                let rest = fresh[at..].to_vec();
                out.set_filled(start + at);
                this.scanner.rewrite(&rest, &mut this.carry);
                this.drain_carry(out);
            }
            if out.filled().len() > start {
                return Poll::Ready(Ok(()));
            }
            // Only part of a header so far: it is held back until complete.
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for SplitFrames<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Where the byte stream is, frame-wise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a frame header; `have` bytes of it so far.
    Header {
        bytes: [u8; MAX_HEADER],
        have: usize,
    },
    /// Inside the payload of a frame passed unchanged.
    Payload { left: u64 },
    /// Inside a frame being split: `left_in_piece` bytes of the current
    /// piece, then `left_after` bytes in further pieces.
    Split(Split),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Split {
    left_in_piece: u64,
    left_after: u64,
    fin: bool,
    key: Option<[u8; 4]>,
}

/// A complete frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    first_byte: u8,
    length: u64,
    key: Option<[u8; 4]>,
    size: usize,
}

impl Header {
    /// How long a header starting with `bytes` is, once two bytes are known.
    fn size(bytes: &[u8]) -> Option<usize> {
        let second = *bytes.get(1)?;
        let length_bytes = match second & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let key_bytes = if second & 0x80 != 0 { 4 } else { 0 };
        Some(2 + length_bytes + key_bytes)
    }

    /// Decodes a complete header (`bytes.len()` is its [`Header::size`]).
    fn parse(bytes: &[u8]) -> Header {
        let second = bytes[1];
        let (length, mut at) = match second & 0x7f {
            126 => (u64::from(u16::from_be_bytes([bytes[2], bytes[3]])), 4),
            127 => (
                u64::from_be_bytes(bytes[2..10].try_into().expect("eight bytes")),
                10,
            ),
            n => (u64::from(n), 2),
        };
        let key = (second & 0x80 != 0).then(|| {
            at += 4;
            [bytes[at - 4], bytes[at - 3], bytes[at - 2], bytes[at - 1]]
        });
        Header {
            first_byte: bytes[0],
            length,
            key,
            size: at,
        }
    }

    fn is_final(&self) -> bool {
        self.first_byte & 0x80 != 0
    }

    /// Text, binary or continuation: the frames that may be fragmented.
    fn is_data(&self) -> bool {
        matches!(self.first_byte & 0x0f, 0..=2)
    }
}

/// Follows frame boundaries through the byte stream and rewrites the headers
/// of frames that must be split.
#[derive(Debug)]
struct Scanner {
    state: State,
    frame_limit: u64,
}

impl Scanner {
    fn new(frame_limit: Option<usize>) -> Self {
        Self {
            state: State::Header {
                bytes: [0; MAX_HEADER],
                have: 0,
            },
            frame_limit: frame_limit.map_or(u64::MAX, |limit| limit as u64),
        }
    }

    fn must_split(&self, header: &Header) -> bool {
        header.is_data() && header.length > PIECE as u64 && header.length <= self.frame_limit
    }

    /// Follows `bytes` as they are. Returns `None` when all of them can be
    /// handed on unchanged, or the offset from which they must go through
    /// [`Scanner::rewrite`] instead (the state is then the one at that offset).
    fn scan(&mut self, bytes: &[u8]) -> Option<usize> {
        let mut at = 0;
        while at < bytes.len() {
            match &mut self.state {
                State::Payload { left } => {
                    let take = (*left).min((bytes.len() - at) as u64);
                    *left -= take;
                    at += take as usize;
                    if *left == 0 {
                        self.state = State::header();
                    }
                }
                State::Split(split) => {
                    let take = split.left_in_piece.min((bytes.len() - at) as u64);
                    split.left_in_piece -= take;
                    at += take as usize;
                    if split.left_in_piece == 0 {
                        if split.left_after == 0 {
                            self.state = State::header();
                        } else {
                            // The next piece needs a header of its own.
                            return Some(at);
                        }
                    }
                }
                State::Header { have, .. } => {
                    if *have > 0 {
                        // The start of this header was held back.
                        return Some(at);
                    }
                    let Some(size) = Header::size(&bytes[at..]) else {
                        return Some(at);
                    };
                    if bytes.len() - at < size {
                        return Some(at);
                    }
                    let header = Header::parse(&bytes[at..at + size]);
                    if self.must_split(&header) {
                        return Some(at);
                    }
                    at += size;
                    self.state = State::payload(header.length);
                }
            }
        }
        // A piece that ends exactly here still needs the next header.
        match self.state {
            State::Split(split) if split.left_in_piece == 0 && split.left_after > 0 => {
                Some(bytes.len())
            }
            _ => None,
        }
    }

    /// Appends `bytes` to `out`, rewritten: split frames get a header per
    /// piece. A header that is not complete yet is held back.
    fn rewrite(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        let mut at = 0;
        loop {
            match &mut self.state {
                State::Split(split) if split.left_in_piece == 0 && split.left_after > 0 => {
                    let this = split.left_after.min(PIECE as u64);
                    split.left_after -= this;
                    split.left_in_piece = this;
                    let fin = split.fin && split.left_after == 0;
                    piece_header(out, if fin { 0x80 } else { 0x00 }, this, split.key);
                    continue;
                }
                _ if at == bytes.len() => return,
                State::Payload { left } => {
                    let take = (*left).min((bytes.len() - at) as u64) as usize;
                    out.extend_from_slice(&bytes[at..at + take]);
                    *left -= take as u64;
                    at += take;
                    if *left == 0 {
                        self.state = State::header();
                    }
                }
                State::Split(split) => {
                    let take = split.left_in_piece.min((bytes.len() - at) as u64) as usize;
                    out.extend_from_slice(&bytes[at..at + take]);
                    split.left_in_piece -= take as u64;
                    at += take;
                    if split.left_in_piece == 0 && split.left_after == 0 {
                        self.state = State::header();
                    }
                }
                State::Header { bytes: held, have } => {
                    let size = Header::size(&held[..*have]).unwrap_or(2);
                    let take = (size - *have).min(bytes.len() - at);
                    held[*have..*have + take].copy_from_slice(&bytes[at..at + take]);
                    *have += take;
                    at += take;
                    if Header::size(&held[..*have]) != Some(*have) {
                        // Either only one byte so far, or more to come.
                        continue;
                    }
                    let raw = *held;
                    let header = Header::parse(&raw[..*have]);
                    if self.must_split(&header) {
                        let piece = PIECE as u64;
                        // The first piece keeps the opcode and reserved bits.
                        piece_header(out, header.first_byte & 0x7f, piece, header.key);
                        self.state = State::Split(Split {
                            left_in_piece: piece,
                            left_after: header.length - piece,
                            fin: header.is_final(),
                            key: header.key,
                        });
                    } else {
                        out.extend_from_slice(&raw[..header.size]);
                        self.state = State::payload(header.length);
                    }
                }
            }
        }
    }
}

impl State {
    fn header() -> State {
        State::Header {
            bytes: [0; MAX_HEADER],
            have: 0,
        }
    }

    fn payload(length: u64) -> State {
        if length == 0 {
            State::header()
        } else {
            State::Payload { left: length }
        }
    }
}

/// Writes a frame header: `first_byte` (FIN, reserved bits, opcode), the
/// shortest length encoding, and the masking key if any.
fn piece_header(out: &mut Vec<u8>, first_byte: u8, length: u64, key: Option<[u8; 4]>) {
    let mask_bit = if key.is_some() { 0x80 } else { 0 };
    out.push(first_byte);
    match length {
        0..=125 => out.push(mask_bit | length as u8),
        126..=0xffff => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(length as u16).to_be_bytes());
        }
        _ => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&length.to_be_bytes());
        }
    }
    if let Some(key) = key {
        out.extend_from_slice(&key);
    }
}

#[cfg(test)]
mod tests;
