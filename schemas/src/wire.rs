//! The Confluent wire format: byte `0x00`, the schema id as 4 big-endian bytes, then the payload
//! (here UTF-8 JSON).

/// The first byte of every framed value.
pub const MAGIC_BYTE: u8 = 0;

/// Length of the header before the payload.
pub const HEADER_LEN: usize = 5;

/// Why bytes are not a framed value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The record has no value at all (a tombstone).
    #[error("the record has no value")]
    Missing,
    /// Fewer bytes than the header needs.
    #[error(
        "the value is {len} bytes long, shorter than the 5-byte Confluent header (magic byte 0x00 and a 4-byte schema id)"
    )]
    TooShort {
        /// The value's length.
        len: usize,
    },
    /// The first byte is not the magic byte.
    #[error(
        "the value starts with byte 0x{found:02x}, not the Confluent magic byte 0x00; it was not written by a schema-registry serializer"
    )]
    BadMagicByte {
        /// The byte found instead.
        found: u8,
    },
}

/// Prefixes a payload with the header for `schema_id`.
pub fn frame(schema_id: u32, payload: &[u8]) -> Vec<u8> {
    let mut framed = Vec::with_capacity(HEADER_LEN + payload.len());
    framed.push(MAGIC_BYTE);
    framed.extend_from_slice(&schema_id.to_be_bytes());
    framed.extend_from_slice(payload);
    framed
}

/// Splits a framed value into its schema id and payload.
pub fn unframe(value: Option<&[u8]>) -> Result<(u32, &[u8]), FrameError> {
    let bytes = value.ok_or(FrameError::Missing)?;
    if bytes.len() < HEADER_LEN {
        // An empty value, or a header cut short; a bad first byte is the clearer message.
        if let Some(&first) = bytes.first().filter(|&&b| b != MAGIC_BYTE) {
            return Err(FrameError::BadMagicByte { found: first });
        }
        return Err(FrameError::TooShort { len: bytes.len() });
    }
    if bytes[0] != MAGIC_BYTE {
        return Err(FrameError::BadMagicByte { found: bytes[0] });
    }
    let id = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    Ok((id, &bytes[HEADER_LEN..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn framing_round_trips(id in any::<u32>(), payload in prop::collection::vec(any::<u8>(), 0..64)) {
            let framed = frame(id, &payload);
            prop_assert_eq!(unframe(Some(&framed)), Ok((id, &payload[..])));
        }

        #[test]
        fn unframing_any_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..16)) {
            match unframe(Some(&bytes)) {
                Ok((_, payload)) => prop_assert_eq!(payload.len() + HEADER_LEN, bytes.len()),
                Err(FrameError::BadMagicByte { found }) => prop_assert_ne!(found, MAGIC_BYTE),
                Err(FrameError::TooShort { len }) => prop_assert!(len < HEADER_LEN),
                Err(FrameError::Missing) => prop_assert!(false),
            }
        }
    }

    #[test]
    fn layout_is_magic_byte_then_big_endian_id_then_payload() {
        let framed = frame(0x0102_0304, b"{}");
        assert_eq!(framed, [0x00, 0x01, 0x02, 0x03, 0x04, b'{', b'}']);
        assert_eq!(unframe(Some(&framed)), Ok((0x0102_0304, &b"{}"[..])));
    }

    #[test]
    fn each_malformed_value_has_its_own_error() {
        assert_eq!(unframe(None), Err(FrameError::Missing));
        assert_eq!(unframe(Some(&[])), Err(FrameError::TooShort { len: 0 }));
        assert_eq!(
            unframe(Some(&[0, 0, 1])),
            Err(FrameError::TooShort { len: 3 })
        );
        assert_eq!(
            unframe(Some(b"{\"name\":\"x\"}")),
            Err(FrameError::BadMagicByte { found: b'{' })
        );
        assert_eq!(
            unframe(Some(&[1])),
            Err(FrameError::BadMagicByte { found: 1 })
        );
    }
}
