//! Which old route a request is for: the templates of the protos'
//! `google.api.http` options, matched segment by segment. A `{field}`
//! segment takes digits only, as Django's `<int:pk>` does.

use std::sync::Arc;

use http::Method;
use shop_proto::contract::Contract;

/// One route: a method and a template, bound to an RPC.
#[derive(Debug)]
pub struct Route {
    pub method: Method,
    segments: Vec<Segment>,
    /// The RPC's HTTP/2 path.
    pub rpc: String,
    /// Whether the body fills the request (`body: "*"`).
    pub takes_body: bool,
}

#[derive(Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Field(String),
}

/// A route's `{field}` values in a path: (field, value).
pub type PathVariables = Vec<(String, String)>;

/// What a request's method and path are.
pub enum Found {
    Route(Arc<Route>, PathVariables),
    /// A route's path without its trailing slash.
    WithSlash,
    /// A route's path, not with this method: the methods it takes.
    WrongMethod(Vec<Method>),
    Nothing,
}

#[derive(Debug)]
pub struct RouteTable {
    routes: Vec<Arc<Route>>,
}

impl RouteTable {
    pub fn new(contract: &Contract) -> anyhow::Result<Self> {
        let mut routes = Vec::new();
        for route in contract.http_routes() {
            let segments = route
                .template
                .trim_start_matches('/')
                .split('/')
                .map(|segment| match segment.strip_prefix('{').and_then(|rest| rest.strip_suffix('}')) {
                    Some(field) => Segment::Field(field.to_owned()),
                    None => Segment::Literal(segment.to_owned()),
                })
                .collect();
            routes.push(Arc::new(Route {
                method: route.method.parse()?,
                segments,
                rpc: route.rpc.clone(),
                takes_body: route.body == "*",
            }));
        }
        Ok(Self { routes })
    }

    pub fn find(&self, method: &Method, path: &str) -> Found {
        let on_path: Vec<(&Arc<Route>, PathVariables)> =
            self.routes.iter().filter_map(|route| route.matches(path).map(|variables| (route, variables))).collect();
        if on_path.is_empty() {
            let with_slash = format!("{path}/");
            if !path.ends_with('/') && self.routes.iter().any(|route| route.matches(&with_slash).is_some()) {
                return Found::WithSlash;
            }
            return Found::Nothing;
        }
        let wanted = if method == Method::HEAD { Method::GET } else { method.clone() };
        if let Some((route, variables)) = on_path.iter().find(|(route, _)| route.method == wanted) {
            return Found::Route(Arc::clone(route), variables.clone());
        }
        let mut allowed: Vec<Method> = on_path.iter().map(|(route, _)| route.method.clone()).collect();
        if allowed.contains(&Method::GET) {
            allowed.push(Method::HEAD);
        }
        allowed.push(Method::OPTIONS);
        Found::WrongMethod(allowed)
    }
}

impl Route {
    /// The `{field}` values when `path` is this route's.
    fn matches(&self, path: &str) -> Option<PathVariables> {
        let parts: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
        if parts.len() != self.segments.len() {
            return None;
        }
        let mut variables = Vec::new();
        for (segment, part) in self.segments.iter().zip(parts) {
            match segment {
                Segment::Literal(literal) if literal == part => {}
                Segment::Field(field) if !part.is_empty() && part.bytes().all(|byte| byte.is_ascii_digit()) => {
                    variables.push((field.clone(), part.to_owned()));
                }
                _ => return None,
            }
        }
        Some(variables)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RouteTable {
        RouteTable::new(shop_proto::contract::contract().unwrap()).unwrap()
    }

    fn rpc_of(found: Found) -> String {
        match found {
            Found::Route(route, _) => route.rpc.clone(),
            _ => "none".to_owned(),
        }
    }

    #[test]
    fn paths_find_their_rpcs_and_ids_take_digits_only() {
        let table = table();
        assert_eq!(rpc_of(table.find(&Method::GET, "/api/products/")), "/shop.catalog.v1.CatalogService/ListProducts");
        assert_eq!(rpc_of(table.find(&Method::HEAD, "/api/products/7/")), "/shop.catalog.v1.CatalogService/GetProduct");
        assert_eq!(
            rpc_of(table.find(&Method::GET, "/api/products/categories/")),
            "/shop.catalog.v1.CatalogService/ListCategories"
        );
        match table.find(&Method::PATCH, "/api/products/12/") {
            Found::Route(route, variables) => {
                assert_eq!(route.rpc, "/shop.catalog.v1.CatalogService/UpdateProduct");
                assert_eq!(variables, [("id".to_owned(), "12".to_owned())]);
            }
            _ => panic!("PATCH /api/products/12/ has a route"),
        }
        assert!(matches!(table.find(&Method::GET, "/api/products/abc/"), Found::Nothing));
        assert!(matches!(table.find(&Method::GET, "/api/products"), Found::WithSlash));
        assert!(matches!(table.find(&Method::POST, "/api/cart/add"), Found::WithSlash));
        match table.find(&Method::GET, "/api/cart/add/") {
            Found::WrongMethod(allowed) => assert_eq!(allowed, [Method::POST, Method::OPTIONS]),
            _ => panic!("GET /api/cart/add/ is the wrong method"),
        }
    }
}
