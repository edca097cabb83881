use shop_platform::kernel::time::timestamp;
use shop_proto::cart::wishlist_service_server::WishlistService;
use shop_proto::cart::{AddToWishlistRequest, GetWishlistRequest, RemoveFromWishlistRequest, Wishlist};
use shop_proto::catalog::{Category, Product};
use tonic::{Request, Response, Status};

use super::CustomerApi;
use crate::error::Error;
use crate::model::{self, parse_id};
use shop_platform::error::FieldRefusal as _;

/// The products as catalog listed them when the wishlist was read.
fn wishlist(products: Vec<model::Product>) -> Wishlist {
    let products = products
        .into_iter()
        .map(|product| Product {
            id: product.id,
            title: product.title,
            description: product.description,
            price: product.price.to_string(),
            stock: product.stock,
            image_url: product.image_url,
            category: Some(Category {
                id: product.category.id,
                name: product.category.name,
                slug: product.category.slug,
            }),
            created_at: product.created_at.map(timestamp),
            updated_at: product.updated_at.map(timestamp),
            sold_count: product.sold_count,
        })
        .collect();
    Wishlist { products }
}

#[tonic::async_trait]
impl WishlistService for CustomerApi {
    async fn get_wishlist(&self, request: Request<GetWishlistRequest>) -> Result<Response<Wishlist>, Status> {
        let (user_id, context) = self.call(&request)?;
        Ok(Response::new(wishlist(self.carts.wishlist(&context, user_id).await?)))
    }

    async fn add_to_wishlist(&self, request: Request<AddToWishlistRequest>) -> Result<Response<Wishlist>, Status> {
        let (user_id, context) = self.call(&request)?;
        let product_id = parse_id(request.into_inner().product_id).map_err(Error::field("product_id"))?;
        Ok(Response::new(wishlist(self.carts.wish(&context, user_id, product_id).await?)))
    }

    async fn remove_from_wishlist(
        &self,
        request: Request<RemoveFromWishlistRequest>,
    ) -> Result<Response<Wishlist>, Status> {
        let (user_id, context) = self.call(&request)?;
        let product_id = parse_id(request.into_inner().product_id).map_err(Error::field("product_id"))?;
        Ok(Response::new(wishlist(self.carts.unwish(&context, user_id, product_id).await?)))
    }
}
