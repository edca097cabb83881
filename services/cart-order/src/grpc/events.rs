use shop_platform::storage::outbox::EventFeed;
use shop_proto::order::order_events_service_server::OrderEventsService;
use shop_proto::order::{OrderEvent, SubscribeOrderEventsRequest};
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status};

/// Internal: mounted behind the service-credential interceptor.
pub struct OrderEventsApi {
    feed: EventFeed<OrderEvent>,
}

impl OrderEventsApi {
    pub fn new(feed: EventFeed<OrderEvent>) -> Self {
        Self { feed }
    }
}

#[tonic::async_trait]
impl OrderEventsService for OrderEventsApi {
    type SubscribeStream = BoxStream<OrderEvent>;

    async fn subscribe(
        &self,
        request: Request<SubscribeOrderEventsRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        Ok(Response::new(self.feed.subscription(request.into_inner().after_sequence)?))
    }
}
