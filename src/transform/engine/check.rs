//! Parsing the transform's SQL and the checks on its syntax tree, before any planning.
//!
//! Invariant: only one `SELECT … FROM events` statement, with per-record (stateless)
//! operators, gets past these checks; every error carries the line and column it refers to.

use std::ops::ControlFlow;

use datafusion_sql::sqlparser::ast::{
    self, GroupByExpr, Query, Select, SetExpr, Spanned, Statement, TableFactor,
};
use datafusion_sql::sqlparser::dialect::GenericDialect;
use datafusion_sql::sqlparser::parser::{Parser, ParserError};

use super::super::{INPUT_TABLE, TransformError};

pub(super) fn parse(sql: &str) -> Result<Statement, TransformError> {
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

pub(super) fn at(node: &impl Spanned, reason: impl Into<String>) -> TransformError {
    let start = node.span().start;
    TransformError::Invalid {
        line: (start.line > 0).then_some(start.line),
        column: (start.line > 0).then_some(start.column),
        reason: reason.into(),
    }
}

pub(super) const STATELESS: &str = "a transform is stateless per record";

pub(super) fn check_statement(statement: &Statement) -> Result<(), TransformError> {
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
