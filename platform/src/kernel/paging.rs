//! Page rules shared by every list RPC: `page` is 1-based (0 means 1),
//! `page_size` 0 means the default, above the maximum or negative is refused.

use crate::error::Invalid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub number: i32,
    pub size: i32,
}

/// Which of the two fields was wrong.
#[derive(Debug, PartialEq, Eq)]
pub enum PageProblem {
    Page(Invalid),
    PageSize(Invalid),
}

impl Page {
    pub fn parse(page: i32, page_size: i32, default_size: i32, max_size: i32) -> Result<Self, PageProblem> {
        if page < 0 {
            return Err(PageProblem::Page(Invalid::new("must not be negative")));
        }
        if page_size < 0 {
            return Err(PageProblem::PageSize(Invalid::new("must not be negative")));
        }
        if page_size > max_size {
            return Err(PageProblem::PageSize(Invalid::new(format!("must be at most {max_size}"))));
        }
        Ok(Page { number: page.max(1), size: if page_size == 0 { default_size } else { page_size } })
    }

    pub fn offset(self) -> i64 {
        i64::from(self.number - 1) * i64::from(self.size)
    }

    pub fn limit(self) -> i64 {
        i64::from(self.size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_means_first_page_and_default_size() {
        assert_eq!(Page::parse(0, 0, 10, 100).unwrap(), Page { number: 1, size: 10 });
        assert_eq!(Page::parse(3, 20, 10, 100).unwrap().offset(), 40);
    }

    #[test]
    fn oversized_or_negative_values_name_their_field() {
        assert!(matches!(Page::parse(1, 101, 10, 100), Err(PageProblem::PageSize(_))));
        assert!(matches!(Page::parse(1, -1, 10, 100), Err(PageProblem::PageSize(_))));
        assert!(matches!(Page::parse(-1, 10, 10, 100), Err(PageProblem::Page(_))));
    }
}
