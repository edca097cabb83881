use shop_platform::auth::ServiceCredentials;
use shop_platform::error::Invalid;
use shop_platform::kernel::paging::{Page, PageProblem};
use shop_platform::kernel::time::timestamp;
use shop_proto::reporting::reporting_service_server::ReportingService;
use shop_proto::reporting::{GetProductSalesReportRequest, GetProductSalesReportResponse, ProductSalesRow, ReportSort};
use tonic::{Request, Response, Status};

use crate::domain::report::Reports;
use crate::error::Error;
use crate::model::{ReportQuery, SalesReport};
use shop_platform::error::FieldRefusal as _;

const REPORT_DEFAULT_PAGE_SIZE: i32 = 50;
const REPORT_MAX_PAGE_SIZE: i32 = 500;

pub struct ReportingApi {
    reports: Reports,
    credentials: ServiceCredentials,
}

impl ReportingApi {
    pub fn new(reports: Reports, credentials: ServiceCredentials) -> Self {
        Self { reports, credentials }
    }
}

impl From<SalesReport> for GetProductSalesReportResponse {
    fn from(report: SalesReport) -> Self {
        GetProductSalesReportResponse {
            rows: report
                .rows
                .into_iter()
                .map(|row| ProductSalesRow {
                    product_id: row.product_id,
                    title: row.title,
                    category_name: row.category_name,
                    category_slug: row.category_slug,
                    units_sold: row.units_sold,
                    order_count: row.order_count,
                    revenue: row.revenue.to_string(),
                })
                .collect(),
            total_count: report.total_count,
            as_of: report.as_of.map(timestamp),
        }
    }
}

fn parse(req: &GetProductSalesReportRequest) -> Result<ReportQuery, Error> {
    let most_sold_first = match ReportSort::try_from(req.sort) {
        Ok(ReportSort::Unspecified | ReportSort::MostSold) => true,
        Ok(ReportSort::LeastSold) => false,
        Err(_) => return Err(Error::field("sort")(Invalid::new("is not a report sort"))),
    };
    let page =
        Page::parse(req.page, req.page_size, REPORT_DEFAULT_PAGE_SIZE, REPORT_MAX_PAGE_SIZE).map_err(|problem| {
            match problem {
                PageProblem::Page(reason) => Error::field("page")(reason),
                PageProblem::PageSize(reason) => Error::field("page_size")(reason),
            }
        })?;
    let category = (!req.category.is_empty()).then(|| req.category.clone());
    Ok(ReportQuery { most_sold_first, category, exclude_unsold: req.exclude_unsold, page })
}

#[tonic::async_trait]
impl ReportingService for ReportingApi {
    async fn get_product_sales_report(
        &self,
        request: Request<GetProductSalesReportRequest>,
    ) -> Result<Response<GetProductSalesReportResponse>, Status> {
        // Guarded by the gateway's policy table too; a backend reached
        // directly checks the vouched-for caller again.
        let caller = self.credentials.caller(request.metadata())?;
        caller.require_user()?;
        if !caller.is_admin() {
            return Err(Status::permission_denied("admins only"));
        }
        let query = parse(request.get_ref())?;
        Ok(Response::new(self.reports.product_sales(&query).await?.into()))
    }
}

#[cfg(test)]
mod tests {
    use shop_platform::kernel::money::Money;
    use tonic::Code;
    use tonic_types::StatusExt as _;

    use super::*;
    use crate::model::SalesRow;

    fn refused_field(request: GetProductSalesReportRequest) -> String {
        let status = Status::from(parse(&request).unwrap_err());
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        let details = status.get_details_bad_request().expect("a BadRequest detail");
        details.field_violations[0].field.clone()
    }

    #[test]
    fn an_unset_sort_is_most_sold_first_and_least_sold_turns_it_around() {
        let most = parse(&GetProductSalesReportRequest::default()).unwrap();
        assert!(most.most_sold_first && most.category.is_none() && !most.exclude_unsold);
        let least = GetProductSalesReportRequest { sort: ReportSort::LeastSold as i32, ..Default::default() };
        assert!(!parse(&least).unwrap().most_sold_first);
    }

    #[test]
    fn pages_default_to_50_rows_and_stop_at_500() {
        let first = parse(&GetProductSalesReportRequest::default()).unwrap().page;
        assert_eq!((first.number, first.size), (1, 50));
        let widest = GetProductSalesReportRequest { page_size: 500, ..Default::default() };
        assert_eq!(parse(&widest).unwrap().page.size, 500);
        assert_eq!(refused_field(GetProductSalesReportRequest { page_size: 501, ..Default::default() }), "page_size");
        assert_eq!(refused_field(GetProductSalesReportRequest { page: -1, ..Default::default() }), "page");
    }

    #[test]
    fn an_unknown_sort_is_refused_naming_sort() {
        assert_eq!(refused_field(GetProductSalesReportRequest { sort: 42, ..Default::default() }), "sort");
    }

    #[test]
    fn a_category_and_exclude_unsold_pass_through() {
        let request =
            GetProductSalesReportRequest { category: "lamps".into(), exclude_unsold: true, ..Default::default() };
        let query = parse(&request).unwrap();
        assert_eq!(query.category.as_deref(), Some("lamps"));
        assert!(query.exclude_unsold);
    }

    #[test]
    fn revenue_goes_out_with_two_fraction_digits_and_as_of_as_a_timestamp() {
        let row = SalesRow {
            product_id: 7,
            title: "Desk lamp".into(),
            category_name: "Lamps".into(),
            category_slug: "lamps".into(),
            units_sold: 3,
            order_count: 2,
            revenue: Money::parse("59.7").unwrap(),
        };
        let as_of = chrono::DateTime::from_timestamp(1_700_000_000, 0);
        let answer = GetProductSalesReportResponse::from(SalesReport { rows: vec![row], total_count: 1, as_of });
        assert_eq!(answer.rows[0].revenue, "59.70");
        assert_eq!(answer.rows[0].units_sold, 3);
        assert_eq!(answer.as_of.unwrap().seconds, 1_700_000_000);
        let never = GetProductSalesReportResponse::from(SalesReport { rows: vec![], total_count: 0, as_of: None });
        assert!(never.as_of.is_none(), "no event applied yet: no as_of");
    }
}
