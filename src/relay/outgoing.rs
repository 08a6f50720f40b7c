//! A message on its way out: written whole, or as fragments of bounded size.
//!
//! tungstenite formats a whole frame into its write buffer, which never
//! shrinks; a large message is therefore written as fragments of at most
//! [`PIECE`] bytes (RFC 6455 §5.4), so the buffer stays small. Fragments are
//! slices of the message: nothing is copied.

use bytes::Bytes;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

use crate::split_frames::PIECE;

/// A message read from one side that the other side has not fully taken.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// Written as it is.
    Whole(Message),
    /// Written in fragments; `sent` bytes of `payload` are out.
    Fragments {
        payload: Bytes,
        kind: Data,
        sent: usize,
    },
}

impl Outgoing {
    pub(crate) fn new(message: Message) -> Self {
        match message {
            Message::Text(text) if text.len() > PIECE => Outgoing::Fragments {
                payload: Bytes::from(text),
                kind: Data::Text,
                sent: 0,
            },
            Message::Binary(payload) if payload.len() > PIECE => Outgoing::Fragments {
                payload,
                kind: Data::Binary,
                sent: 0,
            },
            message => Outgoing::Whole(message),
        }
    }

    /// The next message or frame to write, and what is left after it.
    pub(crate) fn next(self) -> (Message, Option<Outgoing>) {
        match self {
            Outgoing::Whole(message) => (message, None),
            Outgoing::Fragments {
                payload,
                kind,
                sent,
            } => {
                let end = (sent + PIECE).min(payload.len());
                let opcode = if sent == 0 { kind } else { Data::Continue };
                let last = end == payload.len();
                let frame = Frame::message(payload.slice(sent..end), OpCode::Data(opcode), last);
                let rest = (!last).then_some(Outgoing::Fragments {
                    payload,
                    kind,
                    sent: end,
                });
                (Message::Frame(frame), rest)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(message: Message) -> Vec<(OpCode, bool, usize)> {
        let mut outgoing = Some(Outgoing::new(message));
        let mut frames = Vec::new();
        while let Some(now) = outgoing {
            let (message, rest) = now.next();
            match message {
                Message::Frame(frame) => frames.push((
                    frame.header().opcode,
                    frame.header().is_final,
                    frame.payload().len(),
                )),
                other => frames.push((OpCode::Data(Data::Text), true, other.len())),
            }
            outgoing = rest;
        }
        frames
    }

    #[test]
    fn small_messages_go_whole_and_large_ones_in_pieces() {
        assert_eq!(
            frames(Message::text("hi")),
            [(OpCode::Data(Data::Text), true, 2)]
        );
        let text = Message::text("é".repeat(PIECE));
        let pieces = frames(text);
        assert_eq!(pieces.len(), 2);
        assert_eq!(pieces[0].0, OpCode::Data(Data::Text));
        assert!(!pieces[0].1 && pieces[1].1);
        assert_eq!(pieces[1].0, OpCode::Data(Data::Continue));
        let binary = frames(Message::binary(vec![0u8; 2 * PIECE + 1]));
        assert_eq!(binary.len(), 3);
        assert_eq!(binary[0].0, OpCode::Data(Data::Binary));
    }
}
