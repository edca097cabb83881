//! The values services share, with their rules: money, order lines, pages,
//! what free text may hold, time. No I/O.

pub mod money;
pub mod order_lines;
pub mod paging;
pub mod text;
pub mod time;
