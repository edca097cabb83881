//! The one policy table: full method name → who may call it. Anything absent
//! (every internal service, any unknown method) is refused before routing.

use std::collections::HashMap;
use std::sync::LazyLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

use Access::{Admin, Public, User};

/// Every public RPC of API.md and its access level.
pub const POLICY: &[(&str, Access)] = &[
    ("shop.identity.v1.IdentityService/Register", Public),
    ("shop.identity.v1.IdentityService/Login", Public),
    ("shop.identity.v1.IdentityService/RefreshToken", Public),
    ("shop.identity.v1.IdentityService/Logout", Public),
    ("shop.identity.v1.IdentityService/GetCurrentUser", User),
    ("shop.catalog.v1.CatalogService/ListProducts", Public),
    ("shop.catalog.v1.CatalogService/GetProduct", Public),
    ("shop.catalog.v1.CatalogService/BatchGetProducts", Public),
    ("shop.catalog.v1.CatalogService/CreateProduct", Admin),
    ("shop.catalog.v1.CatalogService/UpdateProduct", Admin),
    ("shop.catalog.v1.CatalogService/DeleteProduct", Admin),
    ("shop.catalog.v1.CatalogService/ListCategories", Public),
    ("shop.catalog.v1.CatalogService/GetCategory", Public),
    ("shop.catalog.v1.CatalogService/CreateCategory", Admin),
    ("shop.catalog.v1.CatalogService/UpdateCategory", Admin),
    ("shop.catalog.v1.CatalogService/DeleteCategory", Admin),
    ("shop.cart.v1.CartService/GetCart", User),
    ("shop.cart.v1.CartService/AddCartItem", User),
    ("shop.cart.v1.CartService/UpdateCartItem", User),
    ("shop.cart.v1.CartService/RemoveCartItem", User),
    ("shop.cart.v1.CartService/Checkout", User),
    ("shop.cart.v1.WishlistService/GetWishlist", User),
    ("shop.cart.v1.WishlistService/AddToWishlist", User),
    ("shop.cart.v1.WishlistService/RemoveFromWishlist", User),
    ("shop.order.v1.OrderService/ListOrders", User),
    ("shop.order.v1.OrderService/GetOrder", User),
    ("shop.order.v1.OrderService/CancelOrder", User),
    ("shop.order.v1.OrderService/ListAllOrders", Admin),
    ("shop.order.v1.OrderService/UpdateOrderStatus", Admin),
    ("shop.reporting.v1.ReportingService/GetProductSalesReport", Admin),
];

/// The calls that change nothing: sent twice, they answer the same. One
/// that a backend replica drops before answering (it stopped, or its
/// connection broke) is sent again, to another replica where there is one.
pub const READS: &[&str] = &[
    "shop.identity.v1.IdentityService/GetCurrentUser",
    "shop.catalog.v1.CatalogService/ListProducts",
    "shop.catalog.v1.CatalogService/GetProduct",
    "shop.catalog.v1.CatalogService/BatchGetProducts",
    "shop.catalog.v1.CatalogService/ListCategories",
    "shop.catalog.v1.CatalogService/GetCategory",
    "shop.cart.v1.CartService/GetCart",
    "shop.cart.v1.WishlistService/GetWishlist",
    "shop.order.v1.OrderService/ListOrders",
    "shop.order.v1.OrderService/GetOrder",
    "shop.order.v1.OrderService/ListAllOrders",
    "shop.reporting.v1.ReportingService/GetProductSalesReport",
];

static READ_PATHS: LazyLock<std::collections::HashSet<String>> =
    LazyLock::new(|| READS.iter().map(|method| format!("/{method}")).collect());

/// Whether the call at `path` changes nothing (see [`READS`]).
pub fn is_read(path: &str) -> bool {
    READ_PATHS.contains(path)
}

static BY_PATH: LazyLock<HashMap<String, Access>> =
    LazyLock::new(|| POLICY.iter().map(|(method, access)| (format!("/{method}"), *access)).collect());

/// The access level of an HTTP/2 path such as `/shop.cart.v1.CartService/GetCart`.
pub fn access_for(path: &str) -> Option<Access> {
    BY_PATH.get(path).copied()
}

#[cfg(test)]
mod read_tests {
    use super::*;

    #[test]
    fn every_read_is_in_the_policy_table_and_no_write_is_a_read() {
        for read in READS {
            assert!(access_for(&format!("/{read}")).is_some(), "{read}");
        }
        for write in ["Register", "Login", "RefreshToken", "Checkout", "AddCartItem", "CancelOrder", "CreateProduct"] {
            assert!(!READS.iter().any(|read| read.ends_with(&format!("/{write}"))), "{write}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::PathBuf;

    use prost::Message as _;

    use super::*;

    fn table() -> BTreeMap<String, String> {
        POLICY.iter().map(|(method, access)| (method.to_string(), access.as_str().to_owned())).collect()
    }

    /// docs/api-access.txt, the machine-readable list kept beside the contract.
    fn access_list() -> BTreeMap<String, String> {
        let text = std::fs::read_to_string(docs("api-access.txt")).expect("docs/api-access.txt");
        text.lines()
            .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
            .map(|line| {
                let (method, access) = line.split_once(' ').expect("'<method> <access>'");
                (method.to_owned(), access.trim().to_owned())
            })
            .collect()
    }

    fn docs(file: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs").join(file)
    }

    /// Reads the access level of every RPC out of API.md's tables and
    /// headings (docs/API.md, the copy kept beside the access list).
    fn api_md() -> BTreeMap<String, String> {
        let text = std::fs::read_to_string(docs("API.md")).expect("docs/API.md");
        let mut levels = BTreeMap::new();
        let mut service: Option<(String, Option<String>)> = None;
        for line in text.lines() {
            if let Some(heading) = line.strip_prefix("## ") {
                // "## shop.cart.v1.CartService (user; each user sees only their own)"
                let mut words = heading.split_whitespace();
                let name = words.next().unwrap_or_default();
                service = name.starts_with("shop.").then(|| {
                    let level = ["public", "user", "admin"]
                        .into_iter()
                        .find(|level| heading.contains(&format!("({level}")))
                        .map(str::to_owned);
                    (name.to_owned(), level)
                });
                if heading.starts_with("Internal") {
                    service = None;
                }
                continue;
            }
            let Some((name, heading_level)) = &service else { continue };
            if let Some(row) = line.strip_prefix("| `") {
                // "| `Register` | public | …" or "| `GetCart` | `GetCartRequest…` |"
                let cells: Vec<&str> = row.split('|').map(str::trim).collect();
                let rpc = cells[0].trim_end_matches('`');
                let level = match cells.get(1) {
                    Some(cell) if ["public", "user", "admin"].contains(cell) => cell.to_string(),
                    _ => heading_level.clone().expect("a level in the table or the heading"),
                };
                levels.insert(format!("{name}/{rpc}"), level);
            } else if let Some(level) = heading_level {
                // "`GetWishlist(GetWishlistRequest{})` → …" lines under a heading.
                for rpc in line.split('`').skip(1).step_by(2) {
                    if let Some((rpc, _)) = rpc.split_once('(')
                        && rpc.chars().next().is_some_and(char::is_uppercase)
                    {
                        levels.insert(format!("{name}/{rpc}"), level.clone());
                    }
                }
            }
        }
        levels
    }

    #[test]
    fn the_policy_table_matches_the_access_list() {
        assert_eq!(table(), access_list());
    }

    #[test]
    fn the_access_list_matches_api_md() {
        let from_api_md = api_md();
        assert_eq!(from_api_md.len(), 30, "API.md names 30 public RPCs: {from_api_md:#?}");
        assert_eq!(access_list(), from_api_md);
    }

    /// The design's API.md lives in ../shared beside the repository (as in CI);
    /// the copy in docs/ must not drift from it.
    #[test]
    fn the_copy_of_api_md_matches_the_design() {
        let design = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/design/API.md");
        match std::fs::read_to_string(&design) {
            Ok(design) => assert_eq!(
                std::fs::read_to_string(docs("API.md")).expect("docs/API.md"),
                design,
                "docs/API.md differs from shared/design/API.md: copy the new contract in and update the policy"
            ),
            Err(_) => eprintln!("{} is not here; checked the docs/ copy only", design.display()),
        }
    }

    #[test]
    fn every_method_of_every_public_service_is_in_the_table_and_no_other() {
        let descriptors = prost_types::FileDescriptorSet::decode(shop_proto::FILE_DESCRIPTOR_SET).unwrap();
        let mut public_methods = BTreeSet::new();
        for file in &descriptors.file {
            for service in &file.service {
                let full = format!("{}.{}", file.package(), service.name());
                if shop_proto::PUBLIC_SERVICES.contains(&full.as_str()) {
                    for method in &service.method {
                        public_methods.insert(format!("{full}/{}", method.name()));
                    }
                }
            }
        }
        let table: BTreeSet<String> = table().into_keys().collect();
        assert_eq!(table, public_methods);
    }

    #[test]
    fn internal_and_unknown_methods_have_no_access_level() {
        for path in [
            "/shop.catalog.v1.InventoryService/ReserveStock",
            "/shop.order.v1.OrderPlacementService/PlaceOrder",
            "/shop.identity.v1.SigningKeysService/ListSigningKeys",
            "/shop.identity.v1.IdentityService/Nope",
            "shop.identity.v1.IdentityService/Login",
        ] {
            assert_eq!(access_for(path), None, "{path}");
        }
        assert_eq!(access_for("/shop.identity.v1.IdentityService/Login"), Some(Access::Public));
    }
}
