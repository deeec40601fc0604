//! Apache Parquet tables, read with the `parquet` crate's row reader into the fields of a table
//! (the column names first), so that they are read by the same rules as CSV tables.

use std::path::Path;

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;

use crate::{DataError, Result};

/// The rows of the Parquet file `path` as text fields, the column names first: numbers as they
/// print (`f64` and `f32` exactly), booleans as 1 and 0, strings as they are, null as an empty
/// field (a missing value). Rows are numbered as lines of a CSV file with a header: the first
/// row of data is 2. Nested columns (lists, maps, groups) are an error that names the column.
pub(crate) fn rows(path: &Path) -> Result<Vec<(usize, Vec<String>)>> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let bad = |line: usize, e: &dyn std::fmt::Display| {
        DataError::at(path, line, format!("not a readable Parquet file: {e}"))
    };
    let reader = SerializedFileReader::new(file).map_err(|e| bad(0, &e))?;
    let schema = reader.metadata().file_metadata().schema_descr();
    let header: Vec<String> = schema
        .root_schema()
        .get_fields()
        .iter()
        .map(|f| f.name().to_string())
        .collect();
    if header.is_empty() {
        return Err(DataError::at(path, 0, "the Parquet file has no columns"));
    }
    let mut out = vec![(1, header)];
    for (i, row) in reader
        .get_row_iter(None)
        .map_err(|e| bad(0, &e))?
        .enumerate()
    {
        let line = i + 2;
        let row = row.map_err(|e| bad(line, &e))?;
        let fields = row
            .get_column_iter()
            .map(|(name, field)| {
                text(field).ok_or_else(|| {
                    DataError::at(
                        path,
                        line,
                        format!("column `{name}` holds {field}, not a number or a string"),
                    )
                })
            })
            .collect::<Result<Vec<String>>>()?;
        out.push((line, fields));
    }
    if out.len() == 1 {
        return Err(DataError::at(path, 0, "the table has a header but no rows"));
    }
    Ok(out)
}

/// One value as a table field; `None` for nested values.
fn text(field: &Field) -> Option<String> {
    Some(match field {
        Field::Null => String::new(),
        Field::Bool(b) => u8::from(*b).to_string(),
        Field::Byte(v) => v.to_string(),
        Field::Short(v) => v.to_string(),
        Field::Int(v) => v.to_string(),
        Field::Long(v) => v.to_string(),
        Field::UByte(v) => v.to_string(),
        Field::UShort(v) => v.to_string(),
        Field::UInt(v) => v.to_string(),
        Field::ULong(v) => v.to_string(),
        Field::Float16(v) => v.to_string(),
        Field::Float(v) => v.to_string(),
        Field::Double(v) => v.to_string(),
        Field::Str(s) => s.clone(),
        Field::Bytes(b) => String::from_utf8_lossy(b.data()).into_owned(),
        Field::Group(_) | Field::ListInternal(_) | Field::MapInternal(_) => return None,
        other => other.to_string(),
    })
}
