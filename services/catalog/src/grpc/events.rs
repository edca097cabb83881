use shop_platform::outbox::EventFeed;
use shop_proto::catalog::catalog_events_service_server::CatalogEventsService;
use shop_proto::catalog::{CatalogEvent, SubscribeCatalogEventsRequest};
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status};

use crate::error::Error;

/// Internal: mounted behind the service-credential interceptor.
pub struct CatalogEventsApi {
    feed: EventFeed<CatalogEvent>,
}

impl CatalogEventsApi {
    pub fn new(feed: EventFeed<CatalogEvent>) -> Self {
        Self { feed }
    }
}

#[tonic::async_trait]
impl CatalogEventsService for CatalogEventsApi {
    async fn subscribe(
        &self,
        request: Request<SubscribeCatalogEventsRequest>,
    ) -> Result<Response<BoxStream<CatalogEvent>>, Status> {
        let after = request.into_inner().after_sequence;
        if after < 0 {
            return Err(
                Error::field("after_sequence")(shop_platform::error::Invalid::new("must not be negative")).into()
            );
        }
        Ok(Response::new(Box::pin(ReceiverStream::new(self.feed.subscribe(after)))))
    }
}
