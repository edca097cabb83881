//! Fault injection for tests: stop an order placement dead between two saga
//! steps, leaving the database exactly as a crash there would. Reachable only
//! through [`crate::CartOrderConfig::faults`] in code, never from the
//! environment, so a deployed binary cannot be told to crash.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The points between saga steps where a crash can be injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SagaStep {
    /// The PENDING order is committed; stock not reserved yet.
    OrderInserted,
    /// Catalog reserved the stock; the order is not PLACED yet.
    StockReserved,
}

#[derive(Debug, Clone, Default)]
pub struct Faults {
    crash: Option<(SagaStep, Arc<AtomicBool>)>,
}

impl Faults {
    /// The first placement that reaches `step` stops there; later ones pass.
    pub fn crash_once_at(step: SagaStep) -> Self {
        Self { crash: Some((step, Arc::new(AtomicBool::new(true)))) }
    }

    /// Whether the placement must stop at `step` now.
    pub fn crashes_at(&self, step: SagaStep) -> bool {
        self.crash.as_ref().is_some_and(|(at, armed)| *at == step && armed.swap(false, Ordering::SeqCst))
    }
}
