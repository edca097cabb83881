//! What the contract says of each RPC beyond its messages, read once from
//! the descriptor set: who may call it through the gateway (the
//! `shop.api.v1.access` method option) and whether it changes nothing (the
//! standard `idempotency_level = NO_SIDE_EFFECTS`). This is the one source
//! the gateway's policy, its resend rule and the JSON faces read; a service
//! whose RPCs carry an access level is public, every other one internal.

use std::collections::HashMap;
use std::sync::LazyLock;

use prost_reflect::{DescriptorPool, MethodDescriptor, Value};

/// Who may call an RPC through the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// No token needed (one that is sent must still be valid).
    Public,
    /// Any valid access token.
    User,
    /// A valid access token of an admin.
    Admin,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Public => "public",
            Access::User => "user",
            Access::Admin => "admin",
        }
    }
}

/// One public RPC, as the gateway routes it.
#[derive(Debug, Clone)]
pub struct Rpc {
    /// `shop.catalog.v1.CatalogService/GetProduct`.
    pub name: String,
    /// `shop.catalog.v1.CatalogService`.
    pub service: String,
    pub access: Access,
    /// Changes nothing: sent twice, it answers the same.
    pub is_read: bool,
    pub method: MethodDescriptor,
}

/// One of the old REST routes, bound to a public RPC by its
/// `google.api.http` option (`get: "/api/products/{id}/"`).
#[derive(Debug, Clone)]
pub struct HttpRoute {
    /// `GET`, `POST`, `PUT`, `PATCH` or `DELETE`.
    pub method: &'static str,
    /// The path template: literal segments and `{field}` ones.
    pub template: String,
    /// Which request fields the body fills: `*` for all, empty for none.
    pub body: String,
    /// The RPC's HTTP/2 path (`/shop.catalog.v1.CatalogService/GetProduct`).
    pub rpc: String,
}

/// The contract's public RPCs, by HTTP/2 path (`/pkg.Service/Method`).
#[derive(Debug)]
pub struct Contract {
    pool: DescriptorPool,
    by_path: HashMap<String, Rpc>,
    public_services: Vec<String>,
    http_routes: Vec<HttpRoute>,
}

/// Why the descriptor set is not a contract the gateway can serve.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ContractError {
    #[error("the descriptor set does not decode: {0}")]
    Descriptors(String),
    #[error("the descriptor set lacks the shop.api.v1.access option")]
    NoAccessOption,
    #[error("{0} has no access level, though other RPCs of its service do: give it `option (shop.api.v1.access)`")]
    MissingAccess(String),
    #[error("{0} has an access level the gateway does not know ({1})")]
    UnknownAccess(String, i32),
    /// The gateway's faces (Connect, the JSON mapping, resends) are unary.
    #[error("{0} streams, and a public RPC must be unary")]
    Streaming(String),
    /// A `google.api.http` rule the REST face cannot serve.
    #[error("{0}: its google.api.http route is not one the REST face serves ({1})")]
    BadHttpRoute(String, String),
}

static CONTRACT: LazyLock<Result<Contract, ContractError>> =
    LazyLock::new(|| Contract::from_descriptors(crate::FILE_DESCRIPTOR_SET));

/// Shop's own contract, read once.
pub fn contract() -> Result<&'static Contract, ContractError> {
    CONTRACT.as_ref().map_err(Clone::clone)
}

impl Contract {
    /// Reads the public RPCs out of an encoded descriptor set, which must
    /// keep extension options (protox's own encoding does).
    pub fn from_descriptors(encoded: &[u8]) -> Result<Self, ContractError> {
        let pool = DescriptorPool::decode(encoded).map_err(|error| ContractError::Descriptors(error.to_string()))?;
        let access_option = pool.get_extension_by_name("shop.api.v1.access").ok_or(ContractError::NoAccessOption)?;
        let http_option = pool.get_extension_by_name("google.api.http");
        let mut by_path = HashMap::new();
        let mut public_services = Vec::new();
        let mut http_routes = Vec::new();
        for service in pool.services() {
            let levels: Vec<(MethodDescriptor, Option<i32>)> = service
                .methods()
                .map(|method| {
                    let options = method.options();
                    let level = options
                        .has_extension(&access_option)
                        .then(|| options.get_extension(&access_option).as_enum_number())
                        .flatten();
                    (method, level)
                })
                .collect();
            if levels.iter().all(|(_, level)| level.is_none()) {
                continue; // internal: never routed
            }
            for (method, level) in levels {
                let name = format!("{}/{}", service.full_name(), method.name());
                let access = match level {
                    None | Some(0) => return Err(ContractError::MissingAccess(name)),
                    Some(1) => Access::Public,
                    Some(2) => Access::User,
                    Some(3) => Access::Admin,
                    Some(other) => return Err(ContractError::UnknownAccess(name, other)),
                };
                if method.is_client_streaming() || method.is_server_streaming() {
                    return Err(ContractError::Streaming(name));
                }
                let is_read = method
                    .options()
                    .get_field_by_name("idempotency_level")
                    .is_some_and(|level| matches!(level.as_ref(), Value::EnumNumber(1)));
                if let Some(option) = &http_option
                    && method.options().has_extension(option)
                {
                    let options = method.options();
                    let rule = options.get_extension(option);
                    if let Some(rule) = rule.as_message() {
                        http_routes.extend(http_routes_of(&name, rule)?);
                    }
                }
                let rpc = Rpc { name: name.clone(), service: service.full_name().to_owned(), access, is_read, method };
                by_path.insert(format!("/{name}"), rpc);
            }
            public_services.push(service.full_name().to_owned());
        }
        public_services.sort();
        Ok(Self { pool, by_path, public_services, http_routes })
    }

    /// The old REST routes, as the protos' `google.api.http` options bind them.
    pub fn http_routes(&self) -> &[HttpRoute] {
        &self.http_routes
    }

    /// The public RPC at an HTTP/2 path such as `/shop.cart.v1.CartService/GetCart`.
    pub fn rpc(&self, path: &str) -> Option<&Rpc> {
        self.by_path.get(path)
    }

    /// Every public RPC, in no particular order.
    pub fn rpcs(&self) -> impl Iterator<Item = &Rpc> {
        self.by_path.values()
    }

    /// The services clients may call through the gateway.
    pub fn public_services(&self) -> &[String] {
        &self.public_services
    }

    /// Every message, enum and service of the contract.
    pub fn pool(&self) -> &DescriptorPool {
        &self.pool
    }
}

/// The routes one `google.api.http` rule binds: its own and its additional
/// bindings. Only what the REST face serves is taken: one of the five
/// methods, an absolute path of literal and `{field}` segments.
fn http_routes_of(rpc: &str, rule: &prost_reflect::DynamicMessage) -> Result<Vec<HttpRoute>, ContractError> {
    let text = |field: &str| rule.get_field_by_name(field).and_then(|value| value.as_str().map(str::to_owned));
    let bad = |why: &str| ContractError::BadHttpRoute(rpc.to_owned(), why.to_owned());
    let mut routes = Vec::new();
    let found = ["get", "post", "put", "patch", "delete"]
        .into_iter()
        .find(|method| rule.has_field_by_name(method))
        .ok_or_else(|| bad("no get, post, put, patch or delete"))?;
    let template = text(found).unwrap_or_default();
    let well_formed = template.starts_with('/')
        && template.split('/').skip(1).all(|segment| {
            let variable = segment.strip_prefix('{').and_then(|rest| rest.strip_suffix('}'));
            match variable {
                Some(field) => !field.is_empty() && field.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                None => !segment.contains(['{', '}', '*']),
            }
        });
    if !well_formed {
        return Err(bad(&format!("the path {template:?} is not literal and {{field}} segments")));
    }
    routes.push(HttpRoute {
        method: match found {
            "get" => "GET",
            "post" => "POST",
            "put" => "PUT",
            "patch" => "PATCH",
            _ => "DELETE",
        },
        template,
        body: text("body").unwrap_or_default(),
        rpc: format!("/{rpc}"),
    });
    if let Some(more) = rule.get_field_by_name("additional_bindings")
        && let Some(list) = more.as_list()
    {
        for binding in list.iter().filter_map(Value::as_message) {
            routes.extend(http_routes_of(rpc, binding)?);
        }
    }
    Ok(routes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contract_names_the_six_public_services_and_every_rpc_of_them() {
        let contract = contract().expect("the contract loads");
        assert_eq!(
            contract.public_services(),
            [
                "shop.cart.v1.CartService",
                "shop.cart.v1.WishlistService",
                "shop.catalog.v1.CatalogService",
                "shop.identity.v1.IdentityService",
                "shop.order.v1.OrderService",
                "shop.reporting.v1.ReportingService",
            ]
        );
        let checkout = contract.rpc("/shop.cart.v1.CartService/Checkout").unwrap();
        assert_eq!((checkout.access, checkout.is_read), (Access::User, false));
        let listing = contract.rpc("/shop.catalog.v1.CatalogService/ListProducts").unwrap();
        assert_eq!((listing.access, listing.is_read), (Access::Public, true));
        let report = contract.rpc("/shop.reporting.v1.ReportingService/GetProductSalesReport").unwrap();
        assert_eq!((report.access, report.is_read), (Access::Admin, true));
    }

    #[test]
    fn internal_services_and_unknown_paths_are_not_in_the_contract() {
        let contract = contract().unwrap();
        for path in [
            "/shop.catalog.v1.InventoryService/ReserveStock",
            "/shop.order.v1.OrderPlacementService/PlaceOrder",
            "/shop.identity.v1.SigningKeysService/ListSigningKeys",
            "/shop.identity.v1.IdentityService/Nope",
            "shop.identity.v1.IdentityService/Login",
        ] {
            assert!(contract.rpc(path).is_none(), "{path}");
        }
    }

    #[test]
    fn the_old_rest_routes_are_bound_to_their_rpcs() {
        let contract = contract().unwrap();
        let bound = |method: &str, template: &str| {
            contract
                .http_routes()
                .iter()
                .find(|route| route.method == method && route.template == template)
                .map(|route| route.rpc.as_str())
        };
        assert_eq!(bound("GET", "/api/products/{id}/"), Some("/shop.catalog.v1.CatalogService/GetProduct"));
        assert_eq!(bound("PATCH", "/api/products/{id}/"), Some("/shop.catalog.v1.CatalogService/UpdateProduct"));
        assert_eq!(bound("POST", "/api/auth/login/"), Some("/shop.identity.v1.IdentityService/Login"));
        assert_eq!(bound("DELETE", "/api/wishlist/"), Some("/shop.cart.v1.WishlistService/RemoveFromWishlist"));
        // Every route of the old backend's URL files, and no other.
        assert_eq!(contract.http_routes().len(), 23);
        for route in contract.http_routes() {
            assert!(contract.rpc(&route.rpc).is_some(), "{route:?}");
        }
    }

    #[test]
    fn a_write_is_never_a_read() {
        let contract = contract().unwrap();
        for write in ["Register", "Login", "RefreshToken", "Checkout", "AddCartItem", "CancelOrder", "CreateProduct"] {
            assert!(contract.rpcs().filter(|rpc| rpc.method.name() == write).all(|rpc| !rpc.is_read), "{write}");
        }
    }
}
