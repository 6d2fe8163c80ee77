//! The DataFusion-backed transform: parse and check (sqlparser), plan and type-check
//! (DataFusion's SQL planner and analyzer), lower to physical expressions, evaluate per batch.

use std::collections::HashMap;
use std::ops::{ControlFlow, Range};
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray};
use arrow::compute::{cast, concat_batches, filter_record_batch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
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
use datafusion_optimizer::analyzer::Analyzer;
use datafusion_optimizer::simplify_expressions::ExprSimplifier;
use datafusion_physical_expr::{PhysicalExpr, create_physical_expr};
use datafusion_sql::planner::{ParserOptions, SqlToRel};
use datafusion_sql::sqlparser::ast::{
    self, GroupByExpr, Query, Select, SetExpr, Spanned, Statement, TableFactor,
};
use datafusion_sql::sqlparser::dialect::GenericDialect;
use datafusion_sql::sqlparser::parser::{Parser, ParserError};

use super::{Applied, INPUT_TABLE, TransformError, plain_name, storable, stored_type};

mod udf;

/// A compiled transform. Cheap to share (`Arc`) between threads; [`Transform::apply`] takes
/// `&self`.
#[derive(Debug)]
pub struct Transform {
    input: SchemaRef,
    output: SchemaRef,
    steps: Vec<Step>,
    /// `SELECT * FROM events` (or the same columns in the same order): batches pass through.
    identity: bool,
}

#[derive(Debug)]
enum Step {
    /// Keep the rows where the predicate is true.
    Filter(Arc<dyn PhysicalExpr>),
    /// Compute the columns of `schema`.
    Project {
        exprs: Vec<Arc<dyn PhysicalExpr>>,
        schema: SchemaRef,
    },
}

impl Transform {
    /// Parses, checks and plans `sql` over input rows of schema `input`.
    pub fn compile(sql: &str, input: SchemaRef) -> Result<Transform, TransformError> {
        let statement = parse(sql)?;
        check_statement(&statement)?;
        let catalog = Catalog::new(input.clone());
        check_volatility(&statement, &catalog)?;
        let options = ParserOptions::new()
            .with_collect_spans(true)
            .with_map_string_types_to_utf8view(false);
        let planner = SqlToRel::new_with_options(&catalog, options);
        let plan = planner
            .sql_statement_to_plan(statement.clone())
            .map_err(planning_error)?;
        let plan = Analyzer::new()
            .execute_and_check(plan, &catalog.options, |_, _| {})
            .map_err(planning_error)?;
        let mut steps = Vec::new();
        lower(&plan, &mut steps)?;
        let output = output_schema(&plan, &statement)?;
        let identity = is_identity(&steps, &input, &output);
        Ok(Transform {
            input,
            output,
            steps,
            identity,
        })
    }

    /// The schema of the rows the transform produces: the version's table schema.
    pub fn output_schema(&self) -> &SchemaRef {
        &self.output
    }

    /// The schema of the rows it reads.
    pub fn input_schema(&self) -> &SchemaRef {
        &self.input
    }

    /// Applies the transform to `batch` (schema = [`Transform::input_schema`]).
    ///
    /// Rows whose evaluation fails are isolated by bisection — O(k · log n) extra evaluations
    /// for k failing rows — and returned in [`Applied::failed`]; the others are transformed.
    pub fn apply(&self, batch: &RecordBatch) -> Applied {
        let n = batch.num_rows();
        if self.identity {
            return Applied {
                batch: batch.clone(),
                rows: (0..n).collect(),
                failed: Vec::new(),
            };
        }
        let mut parts = Vec::new();
        let mut rows = Vec::with_capacity(n);
        let mut failed = Vec::new();
        self.apply_range(batch, 0..n, &mut parts, &mut rows, &mut failed);
        let batch = match parts.len() {
            1 => parts
                .pop()
                .unwrap_or_else(|| RecordBatch::new_empty(self.output.clone())),
            _ => concat_batches(&self.output, &parts)
                .unwrap_or_else(|_| RecordBatch::new_empty(self.output.clone())),
        };
        Applied {
            batch,
            rows,
            failed,
        }
    }

    fn apply_range(
        &self,
        batch: &RecordBatch,
        range: Range<usize>,
        parts: &mut Vec<RecordBatch>,
        rows: &mut Vec<usize>,
        failed: &mut Vec<(usize, String)>,
    ) {
        if range.is_empty() {
            return;
        }
        let slice = batch.slice(range.start, range.len());
        match self.run(slice, range.clone().collect()) {
            Ok((out, kept)) => {
                rows.extend(kept);
                parts.push(out);
            }
            Err(e) if range.len() == 1 => failed.push((range.start, e.to_string())),
            Err(_) => {
                let mid = range.start + range.len() / 2;
                self.apply_range(batch, range.start..mid, parts, rows, failed);
                self.apply_range(batch, mid..range.end, parts, rows, failed);
            }
        }
    }

    /// Runs the steps over `batch`, whose row `i` is input row `rows[i]`.
    fn run(
        &self,
        mut batch: RecordBatch,
        mut rows: Vec<usize>,
    ) -> Result<(RecordBatch, Vec<usize>), RowError> {
        for step in &self.steps {
            match step {
                Step::Filter(predicate) => {
                    let mask = evaluate(predicate, &batch)?;
                    let Some(mask) = mask.as_any().downcast_ref::<BooleanArray>() else {
                        return Err(RowError::NotBoolean {
                            data_type: mask.data_type().clone(),
                        });
                    };
                    // A NULL condition drops the row, as in SQL.
                    let keep: BooleanArray = mask.iter().map(|v| Some(v == Some(true))).collect();
                    batch = filter_record_batch(&batch, &keep)?;
                    rows = rows
                        .into_iter()
                        .zip(keep.values().iter())
                        .filter_map(|(r, k)| k.then_some(r))
                        .collect();
                }
                Step::Project { exprs, schema } => {
                    let columns = exprs
                        .iter()
                        .map(|e| evaluate(e, &batch))
                        .collect::<Result<Vec<_>, _>>()?;
                    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
                    batch = RecordBatch::try_new_with_options(schema.clone(), columns, &options)?;
                }
            }
        }
        // Views and the like become their storable types; nullability is checked here, so a
        // NULL in a column declared NOT NULL fails its row, not the batch.
        let columns = batch
            .columns()
            .iter()
            .zip(self.output.fields())
            .map(|(c, f)| {
                if c.data_type() == f.data_type() {
                    Ok(c.clone())
                } else {
                    cast(c, f.data_type()).map_err(|source| RowError::Column {
                        name: f.name().clone(),
                        source,
                    })
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        let batch = RecordBatch::try_new_with_options(self.output.clone(), columns, &options)?;
        Ok((batch, rows))
    }
}

/// Why rows failed the transform (the text their dead letters carry).
#[derive(Debug, thiserror::Error)]
enum RowError {
    /// Evaluating an expression failed (DataFusion's message, without a backtrace).
    #[error("{}", .0.strip_backtrace())]
    Eval(#[source] DataFusionError),
    /// The `WHERE` condition evaluated to another type.
    #[error("the WHERE condition is {data_type}, not a boolean")]
    NotBoolean {
        /// Its type.
        data_type: DataType,
    },
    /// An output column does not cast to its stored type.
    #[error("column `{name}`: {source}")]
    Column {
        /// The column.
        name: String,
        /// The cast's error.
        #[source]
        source: arrow::error::ArrowError,
    },
    /// Assembling the batch failed.
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
}

fn evaluate(expr: &Arc<dyn PhysicalExpr>, batch: &RecordBatch) -> Result<ArrayRef, RowError> {
    expr.evaluate(batch)
        .and_then(|v| v.into_array(batch.num_rows()))
        .map_err(RowError::Eval)
}

fn is_identity(steps: &[Step], input: &SchemaRef, output: &SchemaRef) -> bool {
    use datafusion_physical_expr::expressions::Column;
    let [Step::Project { exprs, .. }] = steps else {
        return false;
    };
    input == output
        && exprs
            .iter()
            .enumerate()
            .all(|(i, e)| e.downcast_ref::<Column>().is_some_and(|c| c.index() == i))
}

// ---------------------------------------------------------------------------------------------
// Parsing and checks on the syntax tree (they carry positions).
// ---------------------------------------------------------------------------------------------

fn parse(sql: &str) -> Result<Statement, TransformError> {
    let mut statements =
        Parser::parse_sql(&GenericDialect {}, sql).map_err(|e| parser_error(e, sql))?;
    match statements.len() {
        1 => Ok(statements.remove(0)),
        0 => Err(TransformError::invalid(
            "the transform is empty; write `SELECT … FROM events`",
        )),
        _ => Err(at(
            &statements[1],
            "a transform is a single SELECT statement; remove the others",
        )),
    }
}

/// sqlparser reports positions in its message ("… at Line: 2, Column: 9"); lift them out.
/// An error at the end of the text ("found: EOF") has none: it points just past the text.
fn parser_error(e: ParserError, sql: &str) -> TransformError {
    let text = match e {
        ParserError::TokenizerError(s) | ParserError::ParserError(s) => s,
        ParserError::RecursionLimitExceeded => "the statement is nested too deeply".to_string(),
    };
    let (reason, line, column) = match text.rsplit_once(" at Line: ") {
        Some((reason, pos)) => {
            let mut it = pos.split(", Column: ");
            let line = it.next().and_then(|l| l.trim().parse().ok());
            let column = it.next().and_then(|c| c.trim().parse().ok());
            (reason.to_string(), line, column)
        }
        None if text.ends_with("found: EOF") => {
            let trimmed = sql.trim_end();
            let line = trimmed.lines().count().max(1) as u64;
            let column = trimmed.lines().last().map_or(0, |l| l.chars().count()) as u64 + 1;
            (text, Some(line), Some(column))
        }
        None => (text, None, None),
    };
    TransformError::Invalid {
        line,
        column,
        reason: format!("invalid SQL: {reason}"),
    }
}

fn at(node: &impl Spanned, reason: impl Into<String>) -> TransformError {
    let start = node.span().start;
    TransformError::Invalid {
        line: (start.line > 0).then_some(start.line),
        column: (start.line > 0).then_some(start.column),
        reason: reason.into(),
    }
}

const STATELESS: &str = "a transform is stateless per record";

fn check_statement(statement: &Statement) -> Result<(), TransformError> {
    let Statement::Query(query) = statement else {
        return Err(at(
            statement,
            "a transform is a query: `SELECT … FROM events [WHERE …]`",
        ));
    };
    check_query(query)?;
    check_expressions(statement)
}

fn check_query(query: &Query) -> Result<(), TransformError> {
    if let Some(with) = &query.with {
        for cte in &with.cte_tables {
            check_query(&cte.query)?;
        }
    }
    if let Some(order_by) = &query.order_by {
        return Err(at(
            order_by,
            format!("ORDER BY is not allowed: {STATELESS} (rows keep their source order)"),
        ));
    }
    if let Some(limit) = &query.limit_clause {
        return Err(at(
            limit,
            format!("LIMIT/OFFSET is not allowed: {STATELESS}"),
        ));
    }
    if let Some(fetch) = &query.fetch {
        return Err(at(fetch, format!("FETCH is not allowed: {STATELESS}")));
    }
    check_body(&query.body)
}

fn check_body(body: &SetExpr) -> Result<(), TransformError> {
    match body {
        SetExpr::Select(select) => check_select(select),
        SetExpr::Query(query) => check_query(query),
        other => Err(at(
            other,
            "only a single SELECT is allowed (no UNION, INTERSECT, EXCEPT or VALUES)",
        )),
    }
}

fn check_select(select: &Select) -> Result<(), TransformError> {
    if let Some(distinct) = &select.distinct {
        let reason = format!("DISTINCT is not allowed: {STATELESS}");
        return Err(match distinct {
            ast::Distinct::On(exprs) if !exprs.is_empty() => at(&exprs[0], reason),
            _ => at(&select.select_token.0, reason),
        });
    }
    match &select.group_by {
        GroupByExpr::Expressions(exprs, _) if exprs.is_empty() => {}
        group_by => {
            return Err(at(
                group_by,
                format!("GROUP BY is not allowed: {STATELESS} (no aggregation across rows)"),
            ));
        }
    }
    if let Some(having) = &select.having {
        return Err(at(having, format!("HAVING is not allowed: {STATELESS}")));
    }
    if let Some(qualify) = &select.qualify {
        return Err(at(qualify, format!("QUALIFY is not allowed: {STATELESS}")));
    }
    if !select.named_window.is_empty() {
        return Err(at(
            &select.select_token.0,
            format!("WINDOW clauses are not allowed: {STATELESS}"),
        ));
    }
    if !select.lateral_views.is_empty() {
        return Err(at(
            &select.select_token.0,
            "LATERAL VIEW is not allowed: a transform writes at most one row per record",
        ));
    }
    let join = format!(
        "joins are not allowed: {STATELESS}; it reads only `{INPUT_TABLE}`, the decoded batch"
    );
    let from = match select.from.as_slice() {
        [] => {
            return Err(at(
                &select.select_token.0,
                format!("a transform reads FROM {INPUT_TABLE}"),
            ));
        }
        [from] => from,
        [_, second, ..] => return Err(at(&second.relation, join)),
    };
    if let Some(j) = from.joins.first() {
        return Err(at(&j.relation, join));
    }
    match &from.relation {
        TableFactor::Table { args: None, .. } => Ok(()),
        TableFactor::Derived { subquery, .. } => check_query(subquery),
        other => Err(at(
            other,
            format!("a transform reads FROM {INPUT_TABLE} (or a subquery over it)"),
        )),
    }
}

/// Aggregate and window functions and subqueries, anywhere in the statement.
fn check_expressions(statement: &Statement) -> Result<(), TransformError> {
    let aggregates: Vec<String> = datafusion_functions_aggregate::all_default_aggregate_functions()
        .iter()
        .flat_map(|f| std::iter::once(f.name().to_string()).chain(f.aliases().iter().cloned()))
        .map(|n| n.to_ascii_lowercase())
        .collect();
    let found = ast::visit_expressions(statement, |expr| {
        let problem = match expr {
            ast::Expr::Function(f) if f.over.is_some() => Some(format!(
                "window function `{}` is not allowed: {STATELESS}",
                f.name
            )),
            ast::Expr::Function(f)
                if aggregates.contains(&f.name.to_string().to_ascii_lowercase()) =>
            {
                Some(format!(
                    "aggregate function `{}` is not allowed: {STATELESS} (no aggregation across rows)",
                    f.name
                ))
            }
            ast::Expr::Subquery(_) | ast::Expr::Exists { .. } | ast::Expr::InSubquery { .. } => {
                Some(format!(
                    "subqueries in expressions are not allowed: {STATELESS}"
                ))
            }
            _ => None,
        };
        match problem {
            Some(reason) => ControlFlow::Break(at(expr, reason)),
            None => ControlFlow::Continue(()),
        }
    });
    match found {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(()),
    }
}

/// Refuses functions whose result is not a function of their arguments (`now()`, `random()`,
/// `uuid()`…): a replay would not reproduce the rows, and a rebuild must.
fn check_volatility(statement: &Statement, catalog: &Catalog) -> Result<(), TransformError> {
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

// ---------------------------------------------------------------------------------------------
// Planning.
// ---------------------------------------------------------------------------------------------

/// What the SQL planner can see: the one input table and the shipped functions.
struct Catalog {
    input: Arc<dyn TableSource>,
    options: ConfigOptions,
    scalars: HashMap<String, Arc<ScalarUDF>>,
    higher_order: HashMap<String, Arc<HigherOrderUDF>>,
    aggregates: HashMap<String, Arc<AggregateUDF>>,
    planners: Vec<Arc<dyn ExprPlanner>>,
}

impl Catalog {
    fn new(input: SchemaRef) -> Catalog {
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
fn planning_error(e: DataFusionError) -> TransformError {
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
fn lower(plan: &LogicalPlan, steps: &mut Vec<Step>) -> Result<(), TransformError> {
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
fn output_schema(plan: &LogicalPlan, statement: &Statement) -> Result<SchemaRef, TransformError> {
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

#[cfg(test)]
mod tests;
