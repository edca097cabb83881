//! Who may call what, as the contract says it: each public RPC's access
//! level and whether it changes nothing come from its method options in the
//! protos ([`shop_proto::contract`]), read once at start. Anything absent
//! (every internal service, any unknown method) is refused before routing.

pub use shop_proto::contract::{Access, Contract, Rpc};

/// The gateway's view of the contract.
#[derive(Debug, Clone, Copy)]
pub struct PolicyTable {
    contract: &'static Contract,
}

impl PolicyTable {
    /// Shop's own contract; fails when a public RPC lacks its access level.
    pub fn load() -> anyhow::Result<Self> {
        Ok(Self { contract: shop_proto::contract::contract()? })
    }

    /// The public RPC at an HTTP/2 path such as `/shop.cart.v1.CartService/GetCart`.
    pub fn rpc(&self, path: &str) -> Option<&'static Rpc> {
        self.contract.rpc(path)
    }

    /// The services clients may call, for health and reflection.
    pub fn public_services(&self) -> Vec<&'static str> {
        self.contract.public_services().iter().map(String::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use super::*;

    /// Reads the access level of every RPC out of docs/API.md's tables and
    /// headings: "| `Register` | public | …", or a level in the service's
    /// heading ("## shop.cart.v1.CartService (user; …)") for its rows and
    /// its "`GetWishlist(GetWishlistRequest{})` → …" lines.
    fn api_md() -> BTreeMap<String, String> {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/API.md");
        let text = std::fs::read_to_string(path).expect("docs/API.md");
        let mut levels = BTreeMap::new();
        let mut service: Option<(String, Option<String>)> = None;
        for line in text.lines() {
            if let Some(heading) = line.strip_prefix("## ") {
                let name = heading.split_whitespace().next().unwrap_or_default();
                service = name.starts_with("shop.").then(|| {
                    let level = ["public", "user", "admin"]
                        .into_iter()
                        .find(|level| heading.contains(&format!("({level}")))
                        .map(str::to_owned);
                    (name.to_owned(), level)
                });
                continue;
            }
            let Some((name, heading_level)) = &service else { continue };
            if let Some(row) = line.strip_prefix("| `") {
                let cells: Vec<&str> = row.split('|').map(str::trim).collect();
                let rpc = cells[0].trim_end_matches('`');
                let level = match cells.get(1) {
                    Some(cell) if ["public", "user", "admin"].contains(cell) => cell.to_string(),
                    _ => heading_level.clone().expect("a level in the table or the heading"),
                };
                levels.insert(format!("{name}/{rpc}"), level);
            } else if let Some(level) = heading_level {
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
    fn every_public_rpc_has_the_access_level_api_md_gives_it_and_api_md_names_no_other() {
        let policy = PolicyTable::load().expect("the contract loads");
        let from_protos: BTreeMap<String, String> =
            policy.contract.rpcs().map(|rpc| (rpc.name.clone(), rpc.access.as_str().to_owned())).collect();
        assert!(!from_protos.is_empty());
        assert_eq!(from_protos, api_md(), "the protos' access levels (left) against docs/API.md's (right)");
    }
}
