//! Functions kappa-lake ships for common event needs, beside DataFusion's own.
//!
//! - `from_epoch(value, unit)`: an epoch number (integer, float or numeric string) in `unit`
//!   (`'s'`, `'ms'`, `'us'`, `'ns'`, or `'auto'`, which guesses the unit from the magnitude the
//!   way [`crate::partition`] does for event-time fields) → `TIMESTAMP` (µs, UTC). A value that
//!   does not fit fails its row (dead-lettered), never the batch.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, TimestampMicrosecondArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int64Type, TimeUnit};
use datafusion_common::{DataFusionError, Result, ScalarValue};
use datafusion_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::schema::UTC_TIME_ZONE;

/// The functions kappa-lake adds.
pub fn shipped() -> Vec<Arc<ScalarUDF>> {
    vec![Arc::new(ScalarUDF::new_from_impl(FromEpoch::new()))]
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct FromEpoch {
    signature: Signature,
}

impl FromEpoch {
    fn new() -> FromEpoch {
        FromEpoch {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Unit {
    Seconds,
    Millis,
    Micros,
    Nanos,
    Auto,
}

impl Unit {
    fn parse(s: &str) -> Result<Unit> {
        Ok(match s {
            "s" => Unit::Seconds,
            "ms" => Unit::Millis,
            "us" | "µs" => Unit::Micros,
            "ns" => Unit::Nanos,
            "auto" => Unit::Auto,
            other => {
                return Err(DataFusionError::Plan(format!(
                    "from_epoch: unknown unit '{other}'; use 's', 'ms', 'us', 'ns' or 'auto'"
                )));
            }
        })
    }

    /// The unit of `v` when it is `Auto`: seconds up to 10^11 (year 5138), then ms, µs, ns.
    fn resolve(self, v: f64) -> Unit {
        match self {
            Unit::Auto => match v.abs() {
                a if a < 1e11 => Unit::Seconds,
                a if a < 1e14 => Unit::Millis,
                a if a < 1e17 => Unit::Micros,
                _ => Unit::Nanos,
            },
            u => u,
        }
    }
}

fn micros_int(v: i64, unit: Unit) -> Option<i64> {
    match unit.resolve(v as f64) {
        Unit::Seconds => v.checked_mul(1_000_000),
        Unit::Millis => v.checked_mul(1_000),
        Unit::Micros | Unit::Auto => Some(v),
        Unit::Nanos => Some(v.div_euclid(1_000)),
    }
}

fn micros_float(v: f64, unit: Unit) -> Option<i64> {
    let scaled = match unit.resolve(v) {
        Unit::Seconds => v * 1e6,
        Unit::Millis => v * 1e3,
        Unit::Micros | Unit::Auto => v,
        Unit::Nanos => v / 1e3,
    };
    // i64::MAX as f64 rounds up to 2^63, which is out of range: compare with `<`.
    (scaled.is_finite() && scaled >= i64::MIN as f64 && scaled < i64::MAX as f64)
        .then(|| scaled.floor() as i64)
}

impl ScalarUDFImpl for FromEpoch {
    fn name(&self) -> &str {
        "from_epoch"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        let value = &arg_types[0];
        let ok = value.is_numeric()
            || matches!(
                value,
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null
            );
        if !ok
            || !matches!(
                arg_types[1],
                DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
            )
        {
            return Err(DataFusionError::Plan(format!(
                "from_epoch(value, unit) takes a number (or numeric string) and a unit string, not ({}, {})",
                arg_types[0], arg_types[1]
            )));
        }
        Ok(DataType::Timestamp(
            TimeUnit::Microsecond,
            Some(UTC_TIME_ZONE.into()),
        ))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let unit = match &args.args[1] {
            ColumnarValue::Scalar(
                ScalarValue::Utf8(Some(u))
                | ScalarValue::Utf8View(Some(u))
                | ScalarValue::LargeUtf8(Some(u)),
            ) => Unit::parse(u)?,
            _ => {
                return Err(DataFusionError::Plan(
                    "from_epoch: the unit must be a string literal ('s', 'ms', 'us', 'ns' or 'auto')"
                        .to_string(),
                ));
            }
        };
        let values = args.args[0].to_array(args.number_rows)?;
        let out = convert(&values, unit)?;
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

fn convert(values: &ArrayRef, unit: Unit) -> Result<TimestampMicrosecondArray> {
    let out_of_range = |v: &dyn std::fmt::Display| {
        DataFusionError::Execution(format!(
            "from_epoch: {v} is out of range for a timestamp in {unit:?}"
        ))
    };
    let micros: Vec<Option<i64>> = if values.data_type().is_integer() {
        let ints = cast(values, &DataType::Int64)?;
        ints.as_primitive::<Int64Type>()
            .iter()
            .map(|v| match v {
                Some(v) => micros_int(v, unit)
                    .map(Some)
                    .ok_or_else(|| out_of_range(&v)),
                None => Ok(None),
            })
            .collect::<Result<_>>()?
    } else if values.data_type() == &DataType::Null {
        vec![None; values.len()]
    } else {
        // Floats, decimals and numeric strings; a string that is not a number fails.
        let floats = arrow::compute::cast_with_options(
            values,
            &DataType::Float64,
            &arrow::compute::CastOptions {
                safe: false,
                ..Default::default()
            },
        )
        .map_err(|e| DataFusionError::Execution(format!("from_epoch: {e}")))?;
        floats
            .as_primitive::<Float64Type>()
            .iter()
            .map(|v| match v {
                Some(v) => micros_float(v, unit)
                    .map(Some)
                    .ok_or_else(|| out_of_range(&v)),
                None => Ok(None),
            })
            .collect::<Result<_>>()?
    };
    Ok(TimestampMicrosecondArray::from(micros).with_timezone(UTC_TIME_ZONE))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, Int64Array, StringArray};

    #[test]
    fn units_and_auto_detection() {
        let v: ArrayRef = Arc::new(Int64Array::from(vec![
            Some(1_700_000_000),
            Some(1_700_000_000_000),
            None,
        ]));
        let out = convert(&v, Unit::Auto).unwrap();
        assert_eq!(out.value(0), 1_700_000_000_000_000);
        assert_eq!(out.value(1), 1_700_000_000_000_000);
        assert!(out.is_null(2));
        let out = convert(&v, Unit::Millis).unwrap();
        assert_eq!(out.value(0), 1_700_000_000_000);
        let f: ArrayRef = Arc::new(Float64Array::from(vec![1.5]));
        assert_eq!(convert(&f, Unit::Seconds).unwrap().value(0), 1_500_000);
        let s: ArrayRef = Arc::new(StringArray::from(vec!["1700000000"]));
        assert_eq!(
            convert(&s, Unit::Auto).unwrap().value(0),
            1_700_000_000_000_000
        );
    }

    #[test]
    fn values_that_do_not_fit_fail() {
        let v: ArrayRef = Arc::new(Int64Array::from(vec![i64::MAX]));
        assert!(convert(&v, Unit::Seconds).is_err());
        let s: ArrayRef = Arc::new(StringArray::from(vec!["soon"]));
        assert!(convert(&s, Unit::Seconds).is_err());
        assert!(Unit::parse("hours").is_err());
    }
}
