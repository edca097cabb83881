use shop_platform::storage::outbox::EventFeed;
use shop_proto::catalog::catalog_events_service_server::CatalogEventsService;
use shop_proto::catalog::{CatalogEvent, SubscribeCatalogEventsRequest};
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status};

/// Internal: mounted behind the service-credential interceptor. Events go
/// out as the outbox stores them (see [`crate::wire`]).
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
    type SubscribeStream = BoxStream<CatalogEvent>;

    async fn subscribe(
        &self,
        request: Request<SubscribeCatalogEventsRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        Ok(Response::new(self.feed.subscription(request.into_inner().after_sequence)?))
    }
}
