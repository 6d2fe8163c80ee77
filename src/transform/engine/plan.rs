//! Planning a checked statement: DataFusion's SQL planner and analyzer over a catalog of the
//! one input table and the shipped functions, lowered to the per-batch [`Step`]s the parent
//! module evaluates, and the output schema.
//!
//! Invariant: only deterministic functions and per-record operators are planned (a replay
//! must reproduce the rows); the output schema has plain, unique names and storable types.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion_common::config::ConfigOptions;
use datafusion_common::{DFSchemaRef, DataFusionError, TableReference};
use datafusion_expr::execution_props::ExecutionProps;
use datafusion_expr::logical_plan::builder::LogicalTableSource;
use datafusion_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion_expr::planner::{ContextProvider, ExprPlanner};
use datafusion_expr::simplify::SimplifyContext;
use datafusion_expr::{
    AggregateUDF, Expr, HigherOrderUDF, LogicalPlan, ScalarUDF, TableSource, Volatility, WindowUDF,
};
use datafusion_optimizer::simplify_expressions::ExprSimplifier;
use datafusion_physical_expr::create_physical_expr;
use datafusion_sql::sqlparser::ast::{self, SetExpr, Statement};

use super::super::{INPUT_TABLE, TransformError, plain_name, storable, stored_type};
use super::Step;
use super::check::{STATELESS, at};
use super::udf;

/// Refuses functions whose result is not a function of their arguments (`now()`, `random()`,
/// `uuid()`…): a replay would not reproduce the rows, and a rebuild must.
pub(super) fn check_volatility(
    statement: &Statement,
    catalog: &Catalog,
) -> Result<(), TransformError> {
    let found = ast::visit_expressions(statement, |expr| {
        if let ast::Expr::Function(f) = expr {
            let name = f.name.to_string().to_ascii_lowercase();
            if let Some(udf) = catalog.scalars.get(&name)
                && udf.signature().volatility != Volatility::Immutable
            {
                return ControlFlow::Break(at(
                    expr,
                    format!(
                        "function `{}` is not allowed: its result depends on when or how often it runs, so a replay would not reproduce the rows; derive values from the event's fields (e.g. `_kafka_timestamp`)",
                        f.name
                    ),
                ));
            }
        }
        ControlFlow::Continue(())
    });
    match found {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(()),
    }
}

/// What the SQL planner can see: the one input table and the shipped functions.
pub(super) struct Catalog {
    input: Arc<dyn TableSource>,
    pub(super) options: ConfigOptions,
    scalars: HashMap<String, Arc<ScalarUDF>>,
    higher_order: HashMap<String, Arc<HigherOrderUDF>>,
    aggregates: HashMap<String, Arc<AggregateUDF>>,
    planners: Vec<Arc<dyn ExprPlanner>>,
}

impl Catalog {
    pub(super) fn new(input: SchemaRef) -> Catalog {
        let mut scalars = HashMap::new();
        let all = datafusion_functions::all_default_functions()
            .into_iter()
            .chain(datafusion_functions_nested::all_default_nested_functions())
            .chain(udf::shipped());
        for f in all {
            for name in std::iter::once(f.name()).chain(f.aliases().iter().map(String::as_str)) {
                scalars.insert(name.to_string(), f.clone());
            }
        }
        let mut higher_order = HashMap::new();
        for f in datafusion_functions_nested::all_default_higher_order_functions() {
            for name in std::iter::once(f.name()).chain(f.aliases().iter().map(String::as_str)) {
                higher_order.insert(name.to_string(), f.clone());
            }
        }
        // Known to the planner only so that a stray aggregate gets a clear refusal (the syntax
        // check catches them first).
        let mut aggregates = HashMap::new();
        for f in datafusion_functions_aggregate::all_default_aggregate_functions() {
            for name in std::iter::once(f.name()).chain(f.aliases().iter().map(String::as_str)) {
                aggregates.insert(name.to_string(), f.clone());
            }
        }
        let planners: Vec<Arc<dyn ExprPlanner>> = vec![
            Arc::new(datafusion_functions::core::planner::CoreFunctionPlanner::default()),
            Arc::new(datafusion_functions_nested::planner::NestedFunctionPlanner),
            Arc::new(datafusion_functions_nested::planner::FieldAccessPlanner),
            Arc::new(datafusion_functions::datetime::planner::DatetimeFunctionPlanner),
            Arc::new(datafusion_functions::unicode::planner::UnicodeFunctionPlanner),
            Arc::new(datafusion_functions_aggregate::planner::AggregateFunctionPlanner),
        ];
        Catalog {
            input: Arc::new(LogicalTableSource::new(input)),
            options: ConfigOptions::default(),
            scalars,
            higher_order,
            aggregates,
            planners,
        }
    }
}

impl ContextProvider for Catalog {
    fn get_table_source(
        &self,
        name: TableReference,
    ) -> datafusion_common::Result<Arc<dyn TableSource>> {
        if name.table() == INPUT_TABLE && name.schema().is_none() {
            Ok(self.input.clone())
        } else {
            Err(DataFusionError::Plan(format!(
                "unknown table `{name}`: a transform reads only `{INPUT_TABLE}`, the decoded batch"
            )))
        }
    }

    fn get_expr_planners(&self) -> &[Arc<dyn ExprPlanner>] {
        &self.planners
    }

    fn get_function_meta(&self, name: &str) -> Option<Arc<ScalarUDF>> {
        self.scalars.get(name).cloned()
    }

    fn get_higher_order_meta(&self, name: &str) -> Option<Arc<HigherOrderUDF>> {
        self.higher_order.get(name).cloned()
    }

    fn get_aggregate_meta(&self, name: &str) -> Option<Arc<AggregateUDF>> {
        self.aggregates.get(name).cloned()
    }

    fn get_window_meta(&self, _name: &str) -> Option<Arc<WindowUDF>> {
        None
    }

    fn get_variable_type(&self, _variable_names: &[String]) -> Option<DataType> {
        None
    }

    fn options(&self) -> &ConfigOptions {
        &self.options
    }

    fn udf_names(&self) -> Vec<String> {
        self.scalars.keys().cloned().collect()
    }

    fn higher_order_function_names(&self) -> Vec<String> {
        self.higher_order.keys().cloned().collect()
    }

    fn udaf_names(&self) -> Vec<String> {
        self.aggregates.keys().cloned().collect()
    }

    fn udwf_names(&self) -> Vec<String> {
        Vec::new()
    }
}

/// A planning error, with the position DataFusion attached to it when it did.
pub(super) fn planning_error(e: DataFusionError) -> TransformError {
    let span = e.diagnostic().and_then(|d| d.span);
    let reason = e.find_root().strip_backtrace();
    let reason = reason
        .strip_prefix("Error during planning: ")
        .or_else(|| reason.strip_prefix("Schema error: "))
        .unwrap_or(&reason)
        .to_string();
    TransformError::Invalid {
        line: span.map(|s| s.start.line).filter(|&l| l > 0),
        column: span.filter(|s| s.start.line > 0).map(|s| s.start.column),
        reason,
    }
}

/// Lowers the logical plan to steps; only per-record operators are accepted.
pub(super) fn lower(plan: &LogicalPlan, steps: &mut Vec<Step>) -> Result<(), TransformError> {
    let props = ExecutionProps::new();
    let context = PhysicalPlanningContext::default();
    // Simplified first: constant folding, and rewrites some functions rely on (`coalesce`
    // becomes a `CASE`, as DataFusion's optimizer would have done).
    let physical = |e: &Expr, schema: &DFSchemaRef| {
        let simplifier = ExprSimplifier::new(
            SimplifyContext::builder()
                .with_schema(schema.clone())
                .build(),
        );
        let e = simplifier.simplify(e.clone()).map_err(planning_error)?;
        create_physical_expr(&e, schema, &props, &context).map_err(planning_error)
    };
    match plan {
        LogicalPlan::TableScan(scan) => {
            if scan.projection.is_some() || !scan.filters.is_empty() || scan.fetch.is_some() {
                return Err(TransformError::invalid(
                    "internal: the planner pushed work into the input scan",
                ));
            }
            Ok(())
        }
        LogicalPlan::SubqueryAlias(alias) => lower(&alias.input, steps),
        LogicalPlan::Filter(filter) => {
            lower(&filter.input, steps)?;
            steps.push(Step::Filter(physical(
                &filter.predicate,
                filter.input.schema(),
            )?));
            Ok(())
        }
        LogicalPlan::Projection(projection) => {
            lower(&projection.input, steps)?;
            let exprs = projection
                .expr
                .iter()
                .map(|e| physical(e, projection.input.schema()))
                .collect::<Result<Vec<_>, _>>()?;
            let schema = Arc::new(projection.schema.as_arrow().clone());
            steps.push(Step::Project { exprs, schema });
            Ok(())
        }
        other => Err(TransformError::invalid(format!(
            "`{}` is not allowed: {STATELESS}",
            other.display()
        ))),
    }
}

/// The output schema: plain, unique column names and storable types.
pub(super) fn output_schema(
    plan: &LogicalPlan,
    statement: &Statement,
) -> Result<SchemaRef, TransformError> {
    // Positions of the top-level select items, when there is no wildcard to expand.
    let items: Vec<&ast::SelectItem> = match statement {
        Statement::Query(q) => match q.body.as_ref() {
            SetExpr::Select(s) => s.projection.iter().collect(),
            _ => Vec::new(),
        },
        _ => Vec::new(),
    };
    let wildcard = items.iter().any(|i| {
        matches!(
            i,
            ast::SelectItem::Wildcard(_) | ast::SelectItem::QualifiedWildcard(_, _)
        )
    });
    let located = |i: usize, reason: String| match items.get(i) {
        Some(item) if !wildcard => at(*item, reason),
        _ => TransformError::invalid(reason),
    };
    let mut fields = Vec::new();
    for (i, f) in plan.schema().fields().iter().enumerate() {
        let name = f.name();
        if !plain_name(name) {
            return Err(located(
                i,
                format!(
                    "output column {} (`{name}`) needs a plain name: add `AS <name>` (letters, digits and `_`)",
                    i + 1
                ),
            ));
        }
        let t = stored_type(f.data_type());
        if !storable(&t) {
            let hint = if t == DataType::Null {
                "give the NULL a type, e.g. CAST(NULL AS VARCHAR)".to_string()
            } else {
                "CAST it to a signed integer, DOUBLE, VARCHAR or TIMESTAMP".to_string()
            };
            return Err(located(
                i,
                format!(
                    "output column `{name}` has type {t}, which the table cannot store; {hint}"
                ),
            ));
        }
        fields.push(Field::new(name, t, f.is_nullable()).with_metadata(f.metadata().clone()));
    }
    Ok(Arc::new(Schema::new(fields)))
}
