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
