//! gRPC server reflection (v1 and v1alpha) over the descriptors a server
//! shows. A lookup that finds nothing is answered inside the stream with an
//! `ErrorResponse` (NOT_FOUND), and the stream stays open for the client's
//! next lookup, as grpc-go and grpc-java do; tonic-reflection's own server
//! ends the whole stream instead, which breaks clients that look up several
//! symbols on one stream. The generated types come from tonic-reflection.

use std::collections::HashMap;
use std::sync::Arc;

use prost::Message as _;
use prost_types::{DescriptorProto, EnumDescriptorProto, FileDescriptorSet};
use tonic::Code;

/// Every file by name, every symbol to its file, and the services listed.
#[derive(Debug, Default)]
pub struct Index {
    files: HashMap<String, Arc<[u8]>>,
    symbols: HashMap<String, Arc<[u8]>>,
    services: Vec<String>,
}

/// What one lookup found, in terms both protocol versions share.
enum Answer {
    Files(Vec<Vec<u8>>),
    Services(Vec<String>),
    ExtensionNumbers(String),
    NotFound(String),
}

impl Index {
    /// The index of `set`, listing `services` (fully qualified names).
    pub fn new(set: &FileDescriptorSet, services: &[&str]) -> Self {
        let mut index = Index { services: services.iter().map(|name| name.to_string()).collect(), ..Index::default() };
        for file in &set.file {
            let raw: Arc<[u8]> = file.encode_to_vec().into();
            index.files.insert(file.name().to_owned(), raw.clone());
            let package = file.package();
            let prefix = |name: &str| if package.is_empty() { name.to_owned() } else { format!("{package}.{name}") };
            for service in &file.service {
                let name = prefix(service.name());
                for method in &service.method {
                    index.symbols.insert(format!("{name}.{}", method.name()), raw.clone());
                }
                index.symbols.insert(name, raw.clone());
            }
            for message in &file.message_type {
                index.message(&raw, &prefix(message.name()), message);
            }
            for enumeration in &file.enum_type {
                index.enumeration(&raw, &prefix(enumeration.name()), enumeration);
            }
        }
        index
    }

    fn message(&mut self, raw: &Arc<[u8]>, name: &str, message: &DescriptorProto) {
        for field in &message.field {
            self.symbols.insert(format!("{name}.{}", field.name()), raw.clone());
        }
        for nested in &message.nested_type {
            self.message(raw, &format!("{name}.{}", nested.name()), nested);
        }
        for nested in &message.enum_type {
            self.enumeration(raw, &format!("{name}.{}", nested.name()), nested);
        }
        self.symbols.insert(name.to_owned(), raw.clone());
    }

    fn enumeration(&mut self, raw: &Arc<[u8]>, name: &str, enumeration: &EnumDescriptorProto) {
        for value in &enumeration.value {
            self.symbols.insert(format!("{name}.{}", value.name()), raw.clone());
        }
        self.symbols.insert(name.to_owned(), raw.clone());
    }

    fn file(&self, name: &str) -> Answer {
        match self.files.get(name) {
            Some(raw) => Answer::Files(vec![raw.to_vec()]),
            None => Answer::NotFound(format!("file {} not found", crate::kernel::text::echo(name))),
        }
    }

    fn symbol(&self, name: &str) -> Answer {
        match self.symbols.get(name) {
            Some(raw) => Answer::Files(vec![raw.to_vec()]),
            None => Answer::NotFound(format!("symbol {} not found", crate::kernel::text::echo(name))),
        }
    }
}

/// A `ServerReflection` service for one protocol version, over one index.
macro_rules! reflection_version {
    ($module:ident, $pb:path) => {
        pub mod $module {
            use std::pin::Pin;
            use std::sync::Arc;

            use tokio_stream::{Stream, StreamExt as _};
            use tonic::{Request, Response, Status, Streaming};

            use super::{Answer, Code, Index};
            use pb::server_reflection_request::MessageRequest;
            use pb::server_reflection_response::MessageResponse;
            use pb::server_reflection_server::{ServerReflection, ServerReflectionServer};
            use $pb as pb;

            pub struct Reflection(pub Arc<Index>);

            /// The service, ready to add to a server's routes.
            pub fn service(index: Arc<Index>) -> ServerReflectionServer<Reflection> {
                ServerReflectionServer::new(Reflection(index))
            }

            fn answer(index: &Index, request: &MessageRequest) -> Answer {
                match request {
                    MessageRequest::FileByFilename(name) => index.file(name),
                    MessageRequest::FileContainingSymbol(name) => index.symbol(name),
                    MessageRequest::FileContainingExtension(_) => {
                        Answer::NotFound("extensions are not supported".to_owned())
                    }
                    MessageRequest::AllExtensionNumbersOfType(name) => Answer::ExtensionNumbers(name.clone()),
                    MessageRequest::ListServices(_) => Answer::Services(index.services.clone()),
                }
            }

            fn respond(index: &Index, request: pb::ServerReflectionRequest) -> pb::ServerReflectionResponse {
                let message_response = match request.message_request.as_ref().map(|asked| answer(index, asked)) {
                    Some(Answer::Files(files)) => MessageResponse::FileDescriptorResponse(pb::FileDescriptorResponse {
                        file_descriptor_proto: files,
                    }),
                    Some(Answer::Services(names)) => MessageResponse::ListServicesResponse(pb::ListServiceResponse {
                        service: names.into_iter().map(|name| pb::ServiceResponse { name }).collect(),
                    }),
                    Some(Answer::ExtensionNumbers(base_type_name)) => {
                        MessageResponse::AllExtensionNumbersResponse(pb::ExtensionNumberResponse {
                            base_type_name,
                            extension_number: Vec::new(),
                        })
                    }
                    Some(Answer::NotFound(message)) => MessageResponse::ErrorResponse(pb::ErrorResponse {
                        error_code: Code::NotFound as i32,
                        error_message: message,
                    }),
                    None => MessageResponse::ErrorResponse(pb::ErrorResponse {
                        error_code: Code::InvalidArgument as i32,
                        error_message: "message_request: one lookup is required".to_owned(),
                    }),
                };
                pb::ServerReflectionResponse {
                    valid_host: request.host.clone(),
                    original_request: Some(request),
                    message_response: Some(message_response),
                }
            }

            type Answers = Pin<Box<dyn Stream<Item = Result<pb::ServerReflectionResponse, Status>> + Send>>;

            #[tonic::async_trait]
            impl ServerReflection for Reflection {
                type ServerReflectionInfoStream = Answers;

                async fn server_reflection_info(
                    &self,
                    request: Request<Streaming<pb::ServerReflectionRequest>>,
                ) -> Result<Response<Answers>, Status> {
                    let index = self.0.clone();
                    let answers = request.into_inner().map(move |asked| asked.map(|asked| respond(&index, asked)));
                    Ok(Response::new(Box::pin(answers)))
                }
            }
        }
    };
}

reflection_version!(v1, tonic_reflection::pb::v1);
reflection_version!(v1alpha, tonic_reflection::pb::v1alpha);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_files_and_services_are_found_and_the_rest_is_not_found() {
        let set = FileDescriptorSet::decode(shop_proto::FILE_DESCRIPTOR_SET).unwrap();
        let index = Index::new(&set, &["shop.catalog.v1.CatalogService"]);
        for symbol in [
            "shop.catalog.v1.CatalogService",
            "shop.catalog.v1.CatalogService.ListProducts",
            "shop.catalog.v1.ListProductsRequest",
            "shop.catalog.v1.ListProductsRequest.page_size",
        ] {
            assert!(matches!(index.symbol(symbol), Answer::Files(_)), "{symbol}");
        }
        assert!(matches!(index.symbol("shop.Nope"), Answer::NotFound(_)));
        assert!(matches!(index.file("shop/catalog/v1/catalog.proto"), Answer::Files(_)));
        assert_eq!(index.services, ["shop.catalog.v1.CatalogService"]);
    }
}
