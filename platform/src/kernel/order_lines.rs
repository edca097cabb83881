//! What an order asks for, in the words every service that handles one
//! shares (cart-order's cart and order placement, catalog's reservations):
//! product ids and quantities, under one set of rules.

use std::collections::BTreeMap;

use crate::error::Invalid;

/// One product and how many units of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OrderLine {
    pub product_id: i64,
    pub quantity: i32,
}

/// The lines of one order: 1–100 products, 1–1000 units each. A product
/// named on several lines is one line with their units summed, so every
/// holder of an `OrderLines` sees each product once, sorted by id (the order
/// stock rows are locked in, so two orders wait instead of deadlocking).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderLines(Vec<OrderLine>);

impl OrderLines {
    /// Units of one product per line (the cart's per-line limit too).
    pub const MAX_QUANTITY: i32 = 1000;
    /// Products in one order (also what a cart or wishlist holds).
    pub const MAX_PRODUCTS: usize = 100;

    pub fn parse(lines: impl IntoIterator<Item = OrderLine>) -> Result<Self, Invalid> {
        let mut merged = BTreeMap::<i64, i32>::new();
        for OrderLine { product_id, quantity } in lines {
            if product_id <= 0 {
                return Err(Invalid::new("every product_id must be a positive id"));
            }
            if quantity <= 0 {
                return Err(Invalid::new("every quantity must be at least 1"));
            }
            let total = merged.entry(product_id).or_default();
            *total = total.saturating_add(quantity);
            if *total > Self::MAX_QUANTITY {
                return Err(Invalid::new(format!("at most {} units of product {product_id}", Self::MAX_QUANTITY)));
            }
        }
        if merged.is_empty() {
            return Err(Invalid::new("at least one line is required"));
        }
        if merged.len() > Self::MAX_PRODUCTS {
            return Err(Invalid::new(format!("at most {} products per order", Self::MAX_PRODUCTS)));
        }
        Ok(Self(merged.into_iter().map(|(product_id, quantity)| OrderLine { product_id, quantity }).collect()))
    }

    pub fn lines(&self) -> &[OrderLine] {
        &self.0
    }

    pub fn product_ids(&self) -> Vec<i64> {
        self.0.iter().map(|line| line.product_id).collect()
    }

    /// Units over all lines.
    pub fn total_quantity(&self) -> i32 {
        self.0.iter().map(|line| line.quantity).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(raw: &[(i64, i32)]) -> Result<OrderLines, Invalid> {
        OrderLines::parse(raw.iter().map(|&(product_id, quantity)| OrderLine { product_id, quantity }))
    }

    #[test]
    fn lines_merge_per_product_and_sort_by_id() {
        let parsed = lines(&[(5, 1), (2, 3), (5, 2)]).unwrap();
        let pairs: Vec<_> = parsed.lines().iter().map(|line| (line.product_id, line.quantity)).collect();
        assert_eq!(pairs, [(2, 3), (5, 3)]);
        assert_eq!(parsed.total_quantity(), 6);
    }

    #[test]
    fn empty_zero_negative_and_oversized_orders_are_refused() {
        assert!(lines(&[]).is_err());
        assert!(lines(&[(1, 0)]).is_err());
        assert!(lines(&[(0, 1)]).is_err());
        assert!(lines(&[(3, 1001)]).is_err());
        assert!(lines(&[(1, 600), (1, 600)]).is_err(), "merged units count");
        assert!(lines(&(1..=101).map(|id| (id, 1)).collect::<Vec<_>>()).is_err());
        assert!(lines(&(1..=100).map(|id| (id, 1000)).collect::<Vec<_>>()).is_ok());
    }
}
