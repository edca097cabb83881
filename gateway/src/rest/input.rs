//! An old route's request as the RPC's request message: the body (JSON, a
//! form, or a multipart form with files), the query string of a read, and
//! the path's `{field}`s, each
//! value taken the way Django REST framework takes it ("7" is an integer,
//! 12.5 a price) and refused with its messages. Fields the message does not
//! have are ignored, as the old serializers ignored them. No message is
//! built by hand: the RPC's descriptor says what each field is.

use bytes::Bytes;
use http::Method;
use http::request::Parts;
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, ReflectMessage as _, Value};
use serde_json::Value as Json;

use super::shapes::{Legacy, Refusal};

/// The request's fields by their old names, in the order they came; a later
/// one of the same name wins, as Django's query dicts have it. Files of a
/// multipart form are apart: only a `bytes` field takes one.
#[derive(Default)]
pub struct Fields {
    pub values: Vec<(String, Json)>,
    pub files: Vec<(String, Bytes)>,
}

impl Fields {
    pub async fn gather(
        parts: &Parts,
        body: Bytes,
        takes_body: bool,
        variables: Vec<(String, String)>,
    ) -> Result<Fields, Refusal> {
        let mut fields = if takes_body {
            body_fields(parts, body).await?
        } else {
            let query = parts.uri.query().unwrap_or_default();
            let values = form_urlencoded::parse(query.as_bytes())
                .map(|(key, value)| (key.into_owned(), Json::String(value.into_owned())))
                .collect();
            Fields { values, files: Vec::new() }
        };
        fields.values.extend(variables.into_iter().map(|(field, value)| (field, Json::String(value))));
        Ok(fields)
    }

    pub fn get(&self, name: &str) -> Option<&Json> {
        self.values.iter().rev().find(|(key, _)| key == name).map(|(_, value)| value)
    }

    pub fn set(&mut self, name: &str, value: Json) {
        self.values.retain(|(key, _)| key != name);
        self.values.push((name.to_owned(), value));
    }

    pub fn remove(&mut self, name: &str) {
        self.values.retain(|(key, _)| key != name);
    }
}

async fn body_fields(parts: &Parts, body: Bytes) -> Result<Fields, Refusal> {
    let content_type = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
        .unwrap_or_default();
    let media = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    if body.iter().all(u8::is_ascii_whitespace) && (media.is_empty() || media == "application/json") {
        return Ok(Fields::default());
    }
    let values = match media.as_str() {
        "application/json" => {
            let json: Json = serde_json::from_slice(&body).map_err(|error| {
                Refusal::detail(http::StatusCode::BAD_REQUEST, format!("JSON parse error - {error}"))
            })?;
            match json {
                Json::Object(map) => Ok(map.into_iter().collect()),
                Json::Null => Err(Refusal::non_field("No data provided")),
                other => Err(Refusal::non_field(format!(
                    "Invalid data. Expected a dictionary, but got {}.",
                    python_type(&other)
                ))),
            }
        }
        "application/x-www-form-urlencoded" => Ok(form_urlencoded::parse(&body)
            .map(|(key, value)| (key.into_owned(), Json::String(value.into_owned())))
            .collect()),
        "multipart/form-data" => return multipart_fields(&content_type, body).await,
        _ => Err(Refusal::unsupported_media(&content_type)),
    }?;
    Ok(Fields { values, files: Vec::new() })
}

/// A multipart form: its text parts as values, its file parts as files.
/// Malformed or truncated, it is DRF's `Multipart form parse error`.
async fn multipart_fields(content_type: &str, body: Bytes) -> Result<Fields, Refusal> {
    let malformed = |error: multer::Error| {
        Refusal::detail(http::StatusCode::BAD_REQUEST, format!("Multipart form parse error - {error}"))
    };
    let boundary = multer::parse_boundary(content_type).map_err(malformed)?;
    let mut form = multer::Multipart::new(tokio_stream::once(Ok::<Bytes, std::io::Error>(body)), boundary);
    let mut fields = Fields::default();
    while let Some(part) = form.next_field().await.map_err(malformed)? {
        let Some(name) = part.name().map(str::to_owned) else { continue };
        match part.file_name() {
            // A form's file input left empty: no file, as Django reads it.
            Some("") => {}
            Some(_) => {
                let bytes = part.bytes().await.map_err(malformed)?;
                if bytes.is_empty() {
                    return Err(Refusal::fields(vec![(name, "The submitted file is empty.".to_owned())]));
                }
                fields.files.push((name, bytes));
            }
            None => fields.values.push((name, Json::String(part.text().await.map_err(malformed)?))),
        }
    }
    Ok(fields)
}

/// The name Python gives a JSON value's type, as DRF's messages say it.
fn python_type(value: &Json) -> &'static str {
    match value {
        Json::Array(_) => "list",
        Json::String(_) => "str",
        Json::Bool(_) => "bool",
        Json::Number(number) if number.is_f64() => "float",
        Json::Number(_) => "int",
        Json::Null => "NoneType",
        Json::Object(_) => "dict",
    }
}

/// The RPC's request message made of `fields`, or every field's refusal.
pub fn message(
    descriptor: MessageDescriptor,
    fields: Fields,
    legacy: &Legacy,
    method: &Method,
) -> Result<DynamicMessage, Refusal> {
    let mut message = DynamicMessage::new(descriptor.clone());
    let mut refused: Vec<(String, String)> = Vec::new();
    let mut set = Vec::new();
    for (name, bytes) in fields.files {
        let Some(field) = descriptor.get_field_by_name(&name) else { continue };
        if field.kind() == Kind::Bytes && !field.is_list() {
            message.set_field(&field, Value::Bytes(bytes));
            set.push(field.name().to_owned());
        }
    }
    for (old_name, value) in fields.values {
        let name = legacy.field_name(&old_name);
        let Some(field) = descriptor.get_field_by_name(name) else { continue };
        if field.is_list() || field.is_map() || matches!(field.kind(), Kind::Message(_)) {
            continue;
        }
        match scalar(&field, &value) {
            Ok(value) => {
                message.set_field(&field, value);
                set.retain(|seen: &String| seen.as_str() != field.name());
                set.push(field.name().to_owned());
            }
            Err(why) => refused.push((old_name, why.to_owned())),
        }
    }
    if !refused.is_empty() {
        return Err(Refusal::fields(refused));
    }
    if descriptor.get_field_by_name("update_mask").is_some() {
        // PATCH changes what it names; PUT replaces every field it may set
        // (a picture only when one came, as the old optional ImageField).
        let paths: Vec<String> = if method == Method::PATCH {
            set.into_iter().filter(|name| name != "id").collect()
        } else {
            descriptor
                .fields()
                .map(|field| field.name().to_owned())
                .filter(|name| !matches!(name.as_str(), "id" | "update_mask" | "image_url"))
                .filter(|name| name != "image" || set.iter().any(|seen| seen == "image"))
                .collect()
        };
        set_update_mask(&mut message, paths);
    }
    Ok(message)
}

/// Sets an update request's `update_mask` to `paths` (nothing, for a
/// message without one).
pub fn set_update_mask(message: &mut DynamicMessage, paths: Vec<String>) {
    let Some(mask) = message.descriptor().get_field_by_name("update_mask") else { return };
    if let Kind::Message(mask_type) = mask.kind() {
        let mut value = DynamicMessage::new(mask_type);
        value.set_field_by_name("paths", Value::List(paths.into_iter().map(Value::String).collect()));
        message.set_field(&mask, Value::Message(value));
    }
}

/// One scalar as DRF takes it, or DRF's message for the kind.
fn scalar(field: &FieldDescriptor, value: &Json) -> Result<Value, &'static str> {
    if value.is_null() {
        return Err("This field may not be null.");
    }
    match field.kind() {
        Kind::String => match value {
            Json::String(text) => Ok(Value::String(text.clone())),
            Json::Number(number) => Ok(Value::String(number.to_string())),
            _ => Err("Not a valid string."),
        },
        Kind::Bool => match value {
            Json::Bool(flag) => Ok(Value::Bool(*flag)),
            Json::Number(number) if number.as_i64() == Some(1) => Ok(Value::Bool(true)),
            Json::Number(number) if number.as_i64() == Some(0) => Ok(Value::Bool(false)),
            Json::String(text) => match text.trim().to_ascii_lowercase().as_str() {
                "true" | "t" | "y" | "yes" | "on" | "1" => Ok(Value::Bool(true)),
                "false" | "f" | "n" | "no" | "off" | "0" => Ok(Value::Bool(false)),
                _ => Err("Must be a valid boolean."),
            },
            _ => Err("Must be a valid boolean."),
        },
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            let number = integer(value)?;
            i32::try_from(number).map(Value::I32).map_err(|_| {
                if number > 0 {
                    "Ensure this value is less than or equal to 2147483647."
                } else {
                    "Ensure this value is greater than or equal to -2147483648."
                }
            })
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => integer(value).map(Value::I64),
        Kind::Uint32 | Kind::Fixed32 => integer(value)
            .and_then(|number| u32::try_from(number).map(Value::U32).map_err(|_| "A valid integer is required.")),
        Kind::Uint64 | Kind::Fixed64 => integer(value)
            .and_then(|number| u64::try_from(number).map(Value::U64).map_err(|_| "A valid integer is required.")),
        Kind::Double | Kind::Float => {
            let number = match value {
                Json::Number(number) => number.as_f64(),
                Json::String(text) => text.trim().parse::<f64>().ok(),
                _ => None,
            };
            match (number, field.kind()) {
                (Some(number), Kind::Float) if number.is_finite() => Ok(Value::F32(number as f32)),
                (Some(number), _) if number.is_finite() => Ok(Value::F64(number)),
                _ => Err("A valid number is required."),
            }
        }
        Kind::Enum(enumeration) => {
            let text = match value {
                Json::String(text) => text.trim().to_ascii_uppercase(),
                Json::Number(number) => {
                    let number = number.as_i64().and_then(|number| i32::try_from(number).ok());
                    return Ok(Value::EnumNumber(number.filter(|n| enumeration.get_value(*n).is_some()).unwrap_or(0)));
                }
                _ => return Ok(Value::EnumNumber(0)),
            };
            // `most_sold` for REPORT_SORT_MOST_SOLD; an unknown name is the
            // default, as the old views ignored what they did not know.
            let prefix = enumeration
                .values()
                .next()
                .map(|first| first.name().trim_end_matches("UNSPECIFIED").to_owned())
                .unwrap_or_default();
            let number = enumeration
                .values()
                .find(|candidate| candidate.name() == text || candidate.name() == format!("{prefix}{text}"))
                .map_or(0, |found| found.number());
            Ok(Value::EnumNumber(number))
        }
        Kind::Bytes => Err("The submitted data was not a file. Check the encoding type on the form."),
        Kind::Message(_) => Err("Not a valid string."),
    }
}

/// An integer as DRF's IntegerField takes it: a whole number, or a string of one.
fn integer(value: &Json) -> Result<i64, &'static str> {
    const INVALID: &str = "A valid integer is required.";
    match value {
        Json::Number(number) => match (number.as_i64(), number.as_f64()) {
            (Some(whole), _) => Ok(whole),
            (None, Some(float)) if float.fract() == 0.0 && float.abs() < 9.0e15 => Ok(float as i64),
            _ => Err(INVALID),
        },
        Json::String(text) => text.trim().parse::<i64>().map_err(|_| INVALID),
        _ => Err(INVALID),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(message: &str, name: &str) -> FieldDescriptor {
        let contract = shop_proto::contract::contract().unwrap();
        contract.pool().get_message_by_name(message).unwrap().get_field_by_name(name).unwrap()
    }

    #[test]
    fn values_are_taken_as_drf_takes_them() {
        let stock = field("shop.catalog.v1.CreateProductRequest", "stock");
        assert_eq!(scalar(&stock, &json!("7")), Ok(Value::I32(7)));
        assert_eq!(scalar(&stock, &json!(1.0)), Ok(Value::I32(1)));
        assert_eq!(scalar(&stock, &json!("1.5")), Err("A valid integer is required."));
        assert_eq!(scalar(&stock, &json!(true)), Err("A valid integer is required."));
        assert_eq!(
            scalar(&stock, &json!(3_000_000_000_i64)),
            Err("Ensure this value is less than or equal to 2147483647.")
        );
        let price = field("shop.catalog.v1.CreateProductRequest", "price");
        assert_eq!(scalar(&price, &json!(12.5)), Ok(Value::String("12.5".to_owned())));
        assert_eq!(scalar(&price, &json!(null)), Err("This field may not be null."));
        assert_eq!(scalar(&price, &json!([1])), Err("Not a valid string."));
        let admin = field("shop.identity.v1.RegisterRequest", "is_admin");
        assert_eq!(scalar(&admin, &json!("Yes")), Ok(Value::Bool(true)));
        assert_eq!(scalar(&admin, &json!("maybe")), Err("Must be a valid boolean."));
        let sort = field("shop.reporting.v1.GetProductSalesReportRequest", "sort");
        assert_eq!(scalar(&sort, &json!("least_sold")), Ok(Value::EnumNumber(2)));
        assert_eq!(scalar(&sort, &json!("sideways")), Ok(Value::EnumNumber(0)));
    }
}
