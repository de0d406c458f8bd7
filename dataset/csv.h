/* csv.h -- a strict RFC 4180 reader for the competition's CSV files.
 *
 * Accepts quoted fields (with "" escapes, commas and newlines inside quotes),
 * LF or CRLF line ends and a UTF-8 byte-order mark. The first record is the
 * header; columns are looked up by name. Blank lines are skipped. Every record
 * knows the line it started on, so errors can name file:line.
 */
#ifndef FOLDLINE_CSV_H
#define FOLDLINE_CSV_H

#include <stdio.h>

#include "base/error.h"

typedef struct fl_csv fl_csv;

/* Reads the whole file and its header. An empty file (no header) is an error. */
fl_code fl_csv_open(const char *path, fl_csv **out, fl_error *err);
void fl_csv_close(fl_csv *csv);

/* Index of the header column called name, or -1. */
int fl_csv_column(const fl_csv *csv, const char *name);
/* Number of header columns (every record has as many fields). */
int fl_csv_columns(const fl_csv *csv);
/* The header as one comma-separated string, for messages. */
const char *fl_csv_header_text(const fl_csv *csv);

/* Advances to the next record: 1 when there is one, 0 at the end, -1 on a
 * malformed record (err says where). A record whose field count differs from
 * the header's is malformed. */
int fl_csv_next(fl_csv *csv, fl_error *err);
/* Field col of the current record (NUL-terminated, quotes removed). */
const char *fl_csv_field(const fl_csv *csv, int col);
/* 1-based line on which the current record starts. */
long fl_csv_line(const fl_csv *csv);
const char *fl_csv_path(const fl_csv *csv);

/* Writes s to f as one CSV field: as it is, or quoted (RFC 4180, quotes doubled) when it holds a
 * comma, a quote or a line break. */
void fl_csv_write_field(FILE *f, const char *s);

#endif
