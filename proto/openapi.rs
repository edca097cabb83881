//! OpenAPI 3.1 for the Connect face, made from the contract at build time
//! (included by build.rs): every public RPC's `POST /<package>.<Service>/<Method>`
//! and, for those marked `NO_SIDE_EFFECTS`, its `GET`; the request and answer
//! schemas in the proto3 JSON mapping (64-bit integers as strings, enums by
//! name, Timestamp as date-time, FieldMask as a comma-separated string); the
//! Connect error; and bearer auth where the access level needs a token.

use std::collections::{BTreeMap, BTreeSet};

use prost_reflect::{DescriptorPool, FieldDescriptor, Kind, MessageDescriptor, MethodDescriptor, ServiceDescriptor};
use serde_json::{Value, json};

/// The access option's values, as options.proto numbers them.
const ACCESS_PUBLIC: i32 = 1;

pub fn generate(pool: &DescriptorPool) -> Result<Value, String> {
    let access_option =
        pool.get_extension_by_name("shop.api.v1.access").ok_or("no shop.api.v1.access option in the contract")?;
    let mut paths = BTreeMap::new();
    let mut tags = Vec::new();
    let mut reached = BTreeSet::new();
    let mut services: Vec<ServiceDescriptor> = pool.services().collect();
    services.sort_by(|a, b| a.full_name().cmp(b.full_name()));
    for service in services {
        let mut public = false;
        for method in service.methods() {
            let options = method.options();
            if !options.has_extension(&access_option) {
                continue;
            }
            public = true;
            let access = options.get_extension(&access_option).as_enum_number().unwrap_or(0);
            let is_read =
                options.get_field_by_name("idempotency_level").is_some_and(|level| level.as_enum_number() == Some(1));
            reached.insert(method.input().full_name().to_owned());
            reached.insert(method.output().full_name().to_owned());
            let mut operations = serde_json::Map::new();
            operations.insert("post".into(), operation(&method, access, false));
            if is_read {
                operations.insert("get".into(), operation(&method, access, true));
            }
            paths.insert(format!("/{}/{}", service.full_name(), method.name()), Value::Object(operations));
        }
        if public {
            tags.push(json!({
                "name": service.full_name(),
                "description": comment(&service.parent_file(), service.path()).unwrap_or_default(),
            }));
        }
    }
    let mut schemas = BTreeMap::new();
    let mut pending: Vec<String> = reached.into_iter().collect();
    while let Some(name) = pending.pop() {
        if schemas.contains_key(&name) {
            continue;
        }
        let message = pool.get_message_by_name(&name).ok_or_else(|| format!("no message {name}"))?;
        let (schema, more) = message_schema(&message);
        schemas.insert(name, schema);
        pending.extend(more);
    }
    schemas.insert("connect.error".into(), connect_error());
    Ok(json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Shop",
            "version": "v1",
            "description": "Shop's public RPCs over the Connect protocol (https://connectrpc.com/docs/protocol): \
                POST /<package>.<Service>/<Method> with a JSON (or binary protobuf) body, and GET for the RPCs \
                that change nothing. The same RPCs answer gRPC and gRPC-Web on the same port. docs/API.md is \
                the contract.",
        },
        "tags": tags,
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                    "description": "An access token from IdentityService/Login or RefreshToken."},
            },
        },
    }))
}

fn operation(method: &MethodDescriptor, access: i32, is_get: bool) -> Value {
    let full = method.full_name();
    let input = format!("#/components/schemas/{}", method.input().full_name());
    let output = format!("#/components/schemas/{}", method.output().full_name());
    let text = comment(&method.parent_file(), method.path()).unwrap_or_default();
    let summary =
        text.lines().find(|line| !line.trim().is_empty() && !line.starts_with("Access:")).unwrap_or(method.name());
    // Connect-Timeout-Ms is Connect's own (every call takes it, as the
    // protocol says); it is no part of an RPC's description.
    let mut parameters = Vec::new();
    let mut operation = json!({
        "tags": [method.parent_service().full_name()],
        "operationId": if is_get { format!("{full}.get") } else { full.to_owned() },
        "summary": summary.trim(),
        "description": text.trim(),
        "responses": {
            "200": {"description": "Success", "content": {"application/json": {"schema": {"$ref": output}}}},
            "default": {"description": "Error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/connect.error"}}}},
        },
    });
    if is_get {
        parameters.extend([
            json!({"name": "connect", "in": "query", "required": true, "schema": {"type": "string", "enum": ["v1"]}}),
            json!({"name": "encoding", "in": "query", "required": true, "schema": {"type": "string", "enum": ["json"]}}),
            json!({"name": "message", "in": "query", "required": true,
                   "description": "The request message in the proto3 JSON mapping.",
                   "content": {"application/json": {"schema": {"$ref": input}}}}),
        ]);
    } else {
        parameters.push(json!({
            "name": "Connect-Protocol-Version", "in": "header", "required": true,
            "schema": {"type": "string", "enum": ["1"]},
        }));
        operation["requestBody"] =
            json!({"required": true, "content": {"application/json": {"schema": {"$ref": input}}}});
    }
    operation["parameters"] = Value::Array(parameters);
    operation["security"] = if access == ACCESS_PUBLIC { json!([{}, {"bearer": []}]) } else { json!([{"bearer": []}]) };
    operation
}

/// A message's schema, and the messages its fields reach.
fn message_schema(message: &MessageDescriptor) -> (Value, Vec<String>) {
    match message.full_name() {
        "google.protobuf.Timestamp" => {
            return (json!({"type": "string", "format": "date-time", "examples": ["2026-11-25T22:07:59Z"]}), vec![]);
        }
        "google.protobuf.FieldMask" => {
            return (
                json!({"type": "string", "description": "Field paths, lowerCamelCase, comma-separated: \"price,stock\"."}),
                vec![],
            );
        }
        _ => {}
    }
    let mut properties = serde_json::Map::new();
    let mut reached = Vec::new();
    for field in message.fields() {
        let (schema, more) = field_schema(&field);
        reached.extend(more);
        let mut schema = schema;
        if let Some(text) = comment(&field.parent_file(), field.path()) {
            schema["description"] = Value::String(text);
        }
        properties.insert(field.json_name().to_owned(), schema);
    }
    let mut schema = json!({
        "type": "object",
        "title": message.name(),
        "additionalProperties": false,
        "properties": properties,
    });
    if let Some(text) = comment(&message.parent_file(), message.path()) {
        schema["description"] = Value::String(text);
    }
    (schema, reached)
}

fn field_schema(field: &FieldDescriptor) -> (Value, Vec<String>) {
    let (item, reached) = kind_schema(&field.kind());
    if field.is_map() {
        let Kind::Message(entry) = field.kind() else { return (item, reached) };
        let value = entry.map_entry_value_field();
        let (value_schema, reached) = kind_schema(&value.kind());
        return (json!({"type": "object", "additionalProperties": value_schema}), reached);
    }
    if field.is_list() {
        return (json!({"type": "array", "items": item}), reached);
    }
    let nullable = field.containing_oneof().is_some() || field.supports_presence();
    if nullable && matches!(field.kind(), Kind::Message(_)) {
        return (json!({"oneOf": [item, {"type": "null"}]}), reached);
    }
    (item, reached)
}

fn kind_schema(kind: &Kind) -> (Value, Vec<String>) {
    let schema = match kind {
        Kind::Bool => json!({"type": "boolean"}),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => json!({"type": "integer", "format": "int32"}),
        Kind::Uint32 | Kind::Fixed32 => json!({"type": "integer", "format": "int32", "minimum": 0}),
        // Written as strings (exact where JSON numbers are not); read from either.
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 | Kind::Uint64 | Kind::Fixed64 => {
            json!({"type": ["string", "integer"], "format": "int64", "pattern": "^-?[0-9]+$"})
        }
        Kind::Double => json!({"type": "number", "format": "double"}),
        Kind::Float => json!({"type": "number", "format": "float"}),
        Kind::String => json!({"type": "string"}),
        Kind::Bytes => json!({"type": "string", "format": "byte"}),
        Kind::Enum(enumeration) => {
            let values: Vec<String> = enumeration.values().map(|value| value.name().to_owned()).collect();
            json!({"type": "string", "title": enumeration.name(), "enum": values})
        }
        Kind::Message(message) => {
            let name = message.full_name().to_owned();
            return (json!({"$ref": format!("#/components/schemas/{name}")}), vec![name]);
        }
    };
    (schema, Vec::new())
}

/// The leading comment at `path` of a file, trimmed; `None` when there is none.
fn comment(file: &prost_reflect::FileDescriptor, path: &[i32]) -> Option<String> {
    let info = file.file_descriptor_proto().source_code_info.as_ref()?;
    let location = info.location.iter().find(|location| location.path == path)?;
    let text = location.leading_comments.as_deref()?;
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let text = lines.join("\n").trim().to_owned();
    (!text.is_empty()).then_some(text)
}

fn connect_error() -> Value {
    json!({
        "type": "object",
        "title": "Connect error",
        "description": "An error as the Connect protocol writes it (https://connectrpc.com/docs/protocol/#error-end-stream).",
        "required": ["code"],
        "properties": {
            "code": {"type": "string", "enum": [
                "canceled", "unknown", "invalid_argument", "deadline_exceeded", "not_found", "already_exists",
                "permission_denied", "resource_exhausted", "failed_precondition", "aborted", "out_of_range",
                "unimplemented", "internal", "unavailable", "data_loss", "unauthenticated"]},
            "message": {"type": "string"},
            "details": {"type": "array", "items": {
                "type": "object",
                "required": ["type", "value"],
                "properties": {
                    "type": {"type": "string", "description": "The detail's message name, e.g. google.rpc.BadRequest."},
                    "value": {"type": "string", "description": "The detail, binary protobuf in unpadded base64."},
                    "debug": {"type": "object", "description": "The detail in the proto3 JSON mapping."},
                },
            }},
        },
    })
}
