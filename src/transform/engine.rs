//! The DataFusion-backed transform: parse and check (sqlparser), plan and type-check
//! (DataFusion's SQL planner and analyzer), lower to physical expressions, evaluate per batch.
//!
//! This file compiles a [`Transform`] and evaluates it per batch; `check.rs` parses the SQL and
//! checks its syntax tree, `plan.rs` plans, type-checks and lowers it to steps.

use std::ops::Range;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray};
use arrow::compute::{cast, concat_batches, filter_record_batch};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion_common::DataFusionError;
use datafusion_optimizer::analyzer::Analyzer;
use datafusion_physical_expr::PhysicalExpr;
use datafusion_sql::planner::{ParserOptions, SqlToRel};

use super::{Applied, TransformError};

mod check;
mod plan;
mod udf;

use check::{check_statement, parse};
use plan::{Catalog, check_volatility, lower, output_schema, planning_error};

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

#[cfg(test)]
mod tests;
