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

/// The contract's public RPCs, by HTTP/2 path (`/pkg.Service/Method`).
#[derive(Debug)]
pub struct Contract {
    pool: DescriptorPool,
    by_path: HashMap<String, Rpc>,
    public_services: Vec<String>,
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
        let mut by_path = HashMap::new();
        let mut public_services = Vec::new();
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
                let rpc = Rpc { name: name.clone(), service: service.full_name().to_owned(), access, is_read, method };
                by_path.insert(format!("/{name}"), rpc);
            }
            public_services.push(service.full_name().to_owned());
        }
        public_services.sort();
        Ok(Self { pool, by_path, public_services })
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
    fn a_write_is_never_a_read() {
        let contract = contract().unwrap();
        for write in ["Register", "Login", "RefreshToken", "Checkout", "AddCartItem", "CancelOrder", "CreateProduct"] {
            assert!(contract.rpcs().filter(|rpc| rpc.method.name() == write).all(|rpc| !rpc.is_read), "{write}");
        }
    }
}
