use shop_platform::auth::ServiceCredentials;
use shop_platform::error::Invalid;
use shop_platform::kernel::money::Money;
use shop_platform::kernel::paging::{Page, PageProblem};
use shop_proto::catalog::catalog_service_server::CatalogService;
use shop_proto::catalog::get_category_request::Key;
use shop_proto::catalog::{
    BatchGetProductsRequest, BatchGetProductsResponse, Category, CategoryCount, CategoryFacet, CreateCategoryRequest,
    CreateProductRequest, DeleteCategoryRequest, DeleteCategoryResponse, DeleteProductRequest, DeleteProductResponse,
    GetCategoryRequest, GetProductRequest, ListCategoriesRequest, ListCategoriesResponse, ListCategoryCountsRequest,
    ListCategoryCountsResponse, ListProductsRequest, ListProductsResponse, PriceBandFacet, Product, SearchHit,
    SearchProductsRequest, SearchProductsResponse, UpdateCategoryRequest, UpdateProductRequest,
};
use tonic::{Request, Response, Status};

use crate::domain::categories::{Categories, CategoryFields};
use crate::domain::pictures::PictureChange;
use crate::domain::products::Products;
use crate::error::Error;
use crate::model::search_box::{Hit, SearchFilter, SearchText};
use crate::model::{
    self, CategoryName, Ordering, ProductField, ProductFields, ProductFilter, Slug, Title, parse_description, parse_id,
    parse_image_url, parse_search, parse_stock,
};
use shop_platform::error::FieldRefusal as _;

pub struct CatalogApi {
    categories: Categories,
    products: Products,
    credentials: ServiceCredentials,
}

impl CatalogApi {
    pub fn new(categories: Categories, products: Products, credentials: ServiceCredentials) -> Self {
        Self { categories, products, credentials }
    }

    /// The id of the category a listing names by its slug; none when empty
    /// (every category), NOT_FOUND when no category has it.
    async fn category_named(&self, slug: &str) -> Result<Option<i64>, Error> {
        if slug.is_empty() {
            return Ok(None);
        }
        Ok(Some(self.categories.category_by_slug(slug).await?.id))
    }

    /// Admin RPCs are guarded by the gateway's policy table; a backend reached
    /// directly checks the vouched-for caller again.
    fn require_admin<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let caller = self.credentials.caller(request.metadata())?;
        caller.require_user()?;
        if caller.is_admin() { Ok(()) } else { Err(Status::permission_denied("admins only")) }
    }
}

const LIST_DEFAULT_PAGE_SIZE: i32 = 10;
const LIST_MAX_PAGE_SIZE: i32 = 100;
const BATCH_MAX_IDS: usize = 100;

fn mask_paths(mask: Option<&prost_types::FieldMask>) -> &[String] {
    mask.map_or(&[], |mask| mask.paths.as_slice())
}

/// The product fields a request sets: those its mask names, or all of them.
fn product_fields(
    current: &model::Product,
    mask: &[String],
    requested: &UpdateProductRequest,
) -> Result<ProductFields, Error> {
    let fields: Vec<ProductField> = if mask.is_empty() {
        ProductField::ALL.to_vec()
    } else {
        mask.iter()
            .map(|path| ProductField::parse(path))
            .collect::<Result<_, _>>()
            .map_err(Error::field("update_mask"))?
    };
    let mut merged = ProductFields {
        title: Title::parse(&current.title).map_err(Error::field("title"))?,
        description: current.description.clone(),
        price: current.price,
        stock: current.stock,
        category_id: current.category_id,
        image_url: current.image_url.clone(),
    };
    for field in fields {
        match field {
            ProductField::Title => merged.title = Title::parse(&requested.title).map_err(Error::field("title"))?,
            ProductField::Description => {
                merged.description =
                    parse_description(&requested.description).map_err(Error::field("description"))?.into()
            }
            ProductField::Price => merged.price = Money::parse(&requested.price).map_err(Error::field("price"))?,
            ProductField::Stock => merged.stock = parse_stock(requested.stock).map_err(Error::field("stock"))?,
            ProductField::CategoryId => {
                merged.category_id = parse_id(requested.category_id).map_err(Error::field("category_id"))?
            }
            ProductField::ImageUrl => {
                merged.image_url = parse_image_url(&requested.image_url).map_err(Error::field("image_url"))?.into()
            }
            // The picture is read apart ([`picture_change`]).
            ProductField::Image => {}
        }
    }
    Ok(merged)
}

/// What an update does to the product's picture: only a mask naming
/// `image` changes it (empty bytes remove it).
async fn picture_change(products: &Products, mask: &[String], image: Vec<u8>) -> Result<PictureChange, Error> {
    if !mask.iter().any(|path| path == "image") {
        return Ok(PictureChange::Keep);
    }
    if image.is_empty() {
        return Ok(PictureChange::Remove);
    }
    Ok(PictureChange::Set(products.pictures().prepare(image).await?))
}

fn new_product_fields(req: &CreateProductRequest) -> Result<ProductFields, Error> {
    Ok(ProductFields {
        title: Title::parse(&req.title).map_err(Error::field("title"))?,
        description: parse_description(&req.description).map_err(Error::field("description"))?.into(),
        price: Money::parse(&req.price).map_err(Error::field("price"))?,
        stock: parse_stock(req.stock).map_err(Error::field("stock"))?,
        category_id: parse_id(req.category_id).map_err(Error::field("category_id"))?,
        image_url: parse_image_url(&req.image_url).map_err(Error::field("image_url"))?.into(),
    })
}

/// A listing's price range as asked: each bound a money string or empty.
fn price_range(min: &str, max: &str) -> Result<(Option<Money>, Option<Money>), Error> {
    let min = Money::parse_optional(min).map_err(Error::field("min_price"))?;
    Ok((min, Money::parse_optional(max).map_err(Error::field("max_price"))?))
}

fn page(page: i32, page_size: i32) -> Result<Page, Error> {
    Page::parse(page, page_size, LIST_DEFAULT_PAGE_SIZE, LIST_MAX_PAGE_SIZE).map_err(|problem| match problem {
        PageProblem::Page(reason) => Error::field("page")(reason),
        PageProblem::PageSize(reason) => Error::field("page_size")(reason),
    })
}

#[tonic::async_trait]
impl CatalogService for CatalogApi {
    async fn list_products(
        &self,
        request: Request<ListProductsRequest>,
    ) -> Result<Response<ListProductsResponse>, Status> {
        let req = request.into_inner();
        let terms = parse_search(&req.search).map_err(Error::field("search"))?;
        let (min_price, max_price) = price_range(&req.min_price, &req.max_price)?;
        let ordering = Ordering::parse(&req.ordering).map_err(Error::field("ordering"))?;
        let page = page(req.page, req.page_size)?;
        let category_id = self.category_named(&req.category).await?;
        let filter = ProductFilter { terms, category_id, min_price, max_price };
        let (products, total_count) = self.products.list_products(&filter, ordering, page).await?;
        Ok(Response::new(ListProductsResponse {
            products: products.into_iter().map(Product::from).collect(),
            total_count,
            page: page.number,
            page_size: page.size,
        }))
    }

    async fn search_products(
        &self,
        request: Request<SearchProductsRequest>,
    ) -> Result<Response<SearchProductsResponse>, Status> {
        let req = request.into_inner();
        let text = SearchText::parse(&req.query).map_err(Error::field("query"))?;
        let (min_price, max_price) = price_range(&req.min_price, &req.max_price)?;
        let page = page(req.page, req.page_size)?;
        let category_id = self.category_named(&req.category).await?;
        let filter = SearchFilter { text, category_id, min_price, max_price };
        let found = self.products.search_products(&filter, page).await?;
        Ok(Response::new(SearchProductsResponse {
            hits: found.hits.into_iter().map(SearchHit::from).collect(),
            total_count: found.total,
            page: page.number,
            page_size: page.size,
            categories: found
                .categories
                .into_iter()
                .map(|(category, count)| CategoryFacet {
                    category_id: category.id,
                    name: category.name,
                    slug: category.slug,
                    count,
                })
                .collect(),
            price_bands: found
                .price_bands
                .into_iter()
                .map(|(low, high, count)| PriceBandFacet {
                    min_price: low.to_string(),
                    max_price: high.map(|high| high.to_string()).unwrap_or_default(),
                    count,
                })
                .collect(),
            did_you_mean: found.did_you_mean.unwrap_or_default(),
        }))
    }

    async fn get_product(&self, request: Request<GetProductRequest>) -> Result<Response<Product>, Status> {
        let id = parse_id(request.into_inner().id).map_err(Error::field("id"))?;
        Ok(Response::new(self.products.product(id).await?.into()))
    }

    async fn batch_get_products(
        &self,
        request: Request<BatchGetProductsRequest>,
    ) -> Result<Response<BatchGetProductsResponse>, Status> {
        let ids = request.into_inner().ids;
        if ids.len() > BATCH_MAX_IDS {
            return Err(Error::field("ids")(Invalid::new("at most 100 ids")).into());
        }
        let products = self.products.products(&ids).await?;
        Ok(Response::new(BatchGetProductsResponse { products: products.into_iter().map(Product::from).collect() }))
    }

    async fn create_product(&self, request: Request<CreateProductRequest>) -> Result<Response<Product>, Status> {
        self.require_admin(&request)?;
        let mut req = request.into_inner();
        let fields = new_product_fields(&req)?;
        let picture = match std::mem::take(&mut req.image) {
            image if image.is_empty() => None,
            image => Some(self.products.pictures().prepare(image).await?),
        };
        let product = self.products.create_product(fields, picture).await?;
        tracing::info!(product_id = product.id, "product created");
        Ok(Response::new(product.into()))
    }

    async fn update_product(&self, request: Request<UpdateProductRequest>) -> Result<Response<Product>, Status> {
        self.require_admin(&request)?;
        let mut req = request.into_inner();
        let id = parse_id(req.id).map_err(Error::field("id"))?;
        let mask = mask_paths(req.update_mask.as_ref()).to_vec();
        let picture = picture_change(&self.products, &mask, std::mem::take(&mut req.image)).await?;
        let product = self.products.update_product(id, |current| product_fields(current, &mask, &req), picture).await?;
        Ok(Response::new(product.into()))
    }

    async fn delete_product(
        &self,
        request: Request<DeleteProductRequest>,
    ) -> Result<Response<DeleteProductResponse>, Status> {
        self.require_admin(&request)?;
        let id = parse_id(request.into_inner().id).map_err(Error::field("id"))?;
        self.products.archive_product(id).await?;
        tracing::info!(product_id = id, "product archived");
        Ok(Response::new(DeleteProductResponse {}))
    }

    async fn list_categories(
        &self,
        _request: Request<ListCategoriesRequest>,
    ) -> Result<Response<ListCategoriesResponse>, Status> {
        let categories = self.categories.categories().await?;
        Ok(Response::new(ListCategoriesResponse { categories: categories.into_iter().map(Category::from).collect() }))
    }

    async fn list_category_counts(
        &self,
        _request: Request<ListCategoryCountsRequest>,
    ) -> Result<Response<ListCategoryCountsResponse>, Status> {
        let counted = self.categories.categories_with_counts().await?;
        let categories = counted
            .into_iter()
            .map(|(category, product_count)| CategoryCount { category: Some(category.into()), product_count })
            .collect();
        Ok(Response::new(ListCategoryCountsResponse { categories }))
    }

    async fn get_category(&self, request: Request<GetCategoryRequest>) -> Result<Response<Category>, Status> {
        let category = match request.into_inner().key {
            Some(Key::Id(id)) => self.categories.category(parse_id(id).map_err(Error::field("id"))?).await?,
            Some(Key::Slug(slug)) => {
                if slug.is_empty() {
                    return Err(Error::field("slug")(Invalid::new("is required")).into());
                }
                self.categories.category_by_slug(&slug).await?
            }
            None => return Err(Error::field("key")(Invalid::new("set id or slug")).into()),
        };
        Ok(Response::new(category.into()))
    }

    async fn create_category(&self, request: Request<CreateCategoryRequest>) -> Result<Response<Category>, Status> {
        self.require_admin(&request)?;
        let req = request.into_inner();
        let name = CategoryName::parse(&req.name).map_err(Error::field("name"))?;
        let slug = Slug::given_or_derived(&req.slug, &name).map_err(Error::field("slug"))?;
        let category = self.categories.create_category(CategoryFields { name, slug }).await?;
        Ok(Response::new(category.into()))
    }

    async fn update_category(&self, request: Request<UpdateCategoryRequest>) -> Result<Response<Category>, Status> {
        self.require_admin(&request)?;
        let req = request.into_inner();
        let id = parse_id(req.id).map_err(Error::field("id"))?;
        let mask = mask_paths(req.update_mask.as_ref()).to_vec();
        for path in &mask {
            if path != "name" && path != "slug" {
                let reason =
                    Invalid::new(format!("unknown path {}; use name, slug", shop_platform::kernel::text::echo(path)));
                return Err(Error::field("update_mask")(reason).into());
            }
        }
        let changes = |path: &str| mask.is_empty() || mask.iter().any(|named| named == path);
        let category = self
            .categories
            .update_category(id, |current| {
                let name = if changes("name") {
                    CategoryName::parse(&req.name).map_err(Error::field("name"))?
                } else {
                    CategoryName::parse(&current.name).map_err(Error::field("name"))?
                };
                let slug = if changes("slug") {
                    Slug::given_or_derived(&req.slug, &name).map_err(Error::field("slug"))?
                } else {
                    Slug::parse(&current.slug).map_err(Error::field("slug"))?
                };
                Ok(CategoryFields { name, slug })
            })
            .await?;
        Ok(Response::new(category.into()))
    }

    async fn delete_category(
        &self,
        request: Request<DeleteCategoryRequest>,
    ) -> Result<Response<DeleteCategoryResponse>, Status> {
        self.require_admin(&request)?;
        let id = parse_id(request.into_inner().id).map_err(Error::field("id"))?;
        self.categories.delete_category(id).await?;
        Ok(Response::new(DeleteCategoryResponse {}))
    }
}

impl From<Hit> for SearchHit {
    fn from(hit: Hit) -> Self {
        let to_i32 = |at: usize| i32::try_from(at).unwrap_or(i32::MAX);
        SearchHit {
            product: Some(hit.product.into()),
            highlights: hit
                .highlights
                .into_iter()
                .map(|highlight| shop_proto::catalog::Highlight {
                    field: highlight.field.to_owned(),
                    start: to_i32(highlight.start),
                    end: to_i32(highlight.end),
                })
                .collect(),
            matched_words: hit.matched_words as i32,
            typos: hit.typos as i32,
        }
    }
}
