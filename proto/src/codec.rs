//! The codec every generated client and server uses: prost's, except that a
//! message that does not decode (bad wire format, a string that is not UTF-8)
//! is the caller's `INVALID_ARGUMENT`, never `INTERNAL`. The gRPC status-code
//! guide suggests INTERNAL here, but for Shop INTERNAL means "our bug", and
//! a malformed request is not one.

use std::marker::PhantomData;

use prost::Message;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic::{Code, Status};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};
use tonic_types::{ErrorDetails, StatusExt as _};

#[derive(Debug, Clone)]
pub struct ShopCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for ShopCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for ShopCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = StrictDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        StrictDecoder(ProstCodec::<T, U>::raw_decoder(BufferSettings::default()))
    }
}

#[derive(Debug)]
pub struct StrictDecoder<U>(ProstDecoder<U>);

impl<U: Message + Default> Decoder for StrictDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.0.decode(buf).map_err(|status| {
            let field = field_path(status.message());
            let mut details = ErrorDetails::new();
            details.add_bad_request_violation(field.clone(), "is not a valid protobuf value");
            Status::with_error_details(
                Code::InvalidArgument,
                format!("{field}: malformed message ({})", status.message()),
                details,
            )
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}

/// The field a prost decode error names: "failed to decode Protobuf message:
/// Outer.inner: Inner.name: invalid string value…" → "inner.name"; "request"
/// when the error names none (e.g. a truncated message).
fn field_path(message: &str) -> String {
    let detail = message.strip_prefix("failed to decode Protobuf message: ").unwrap_or(message);
    let fields: Vec<&str> = detail
        .split(": ")
        .map_while(|part| {
            part.split_once('.')
                .filter(|(message, field)| !message.is_empty() && !field.is_empty() && !part.contains(' '))
                .map(|(_, field)| field)
        })
        .collect();
    if fields.is_empty() { "request".to_owned() } else { fields.join(".") }
}

#[cfg(test)]
mod tests {
    use super::field_path;

    #[test]
    fn the_field_is_read_out_of_prost_errors() {
        let utf8 = "failed to decode Protobuf message: RegisterRequest.username: invalid string value: data is not UTF-8 encoded";
        assert_eq!(field_path(utf8), "username");
        let nested = "failed to decode Protobuf message: Outer.inner: Inner.name: invalid string value";
        assert_eq!(field_path(nested), "inner.name");
        assert_eq!(field_path("failed to decode Protobuf message: buffer underflow"), "request");
    }
}
