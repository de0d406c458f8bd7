/* test_csv.c -- the CSV reader: quoting, line ends, BOM, line numbers, errors. */
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "tmpdir.h"
#include "dataset/csv.h"

static char tmpl[600];

/* Writes text to a fresh temporary file and returns its path. */
static const char *write_tmp(const char *text, size_t len)
{
    snprintf(tmpl, sizeof tmpl, "%s/fl_csv_XXXXXX", test_tmpdir());
    int fd = mkstemp(tmpl);
    if (fd < 0 || write(fd, text, len) != (ssize_t)len)
        abort();
    close(fd);
    return tmpl;
}

static fl_csv *open_text(const char *text, fl_error *err)
{
    fl_csv *c = NULL;
    const char *p = write_tmp(text, strlen(text));
    fl_csv_open(p, &c, err);
    return c;
}

static void test_plain_rows_and_columns_by_name(void)
{
    fl_error err;
    fl_csv *c = open_text("class_name,image_path,target\nn01,n01/a.JPEG,59\nn02,n02/b.JPEG,3\n", &err);
    CHECK(c != NULL);
    if (!c)
        return;
    CHECK(fl_csv_column(c, "target") == 2);
    CHECK(fl_csv_column(c, "image_path") == 1);
    CHECK(fl_csv_column(c, "nope") == -1);
    CHECK(fl_csv_next(c, &err) == 1);
    CHECK_STR(fl_csv_field(c, 1), "n01/a.JPEG");
    CHECK(fl_csv_line(c) == 2);
    CHECK(fl_csv_next(c, &err) == 1);
    CHECK_STR(fl_csv_field(c, 2), "3");
    CHECK(fl_csv_next(c, &err) == 0);
    fl_csv_close(c);
    unlink(tmpl);
}

static void test_bom_and_crlf_are_accepted(void)
{
    fl_error err;
    fl_csv *c = open_text("\xEF\xBB\xBFimage_path,target\r\na.png,1\r\nb.png,2\r\n", &err);
    CHECK(c != NULL);
    if (!c)
        return;
    CHECK(fl_csv_column(c, "image_path") == 0);
    CHECK(fl_csv_next(c, &err) == 1);
    CHECK_STR(fl_csv_field(c, 1), "1");
    CHECK(fl_csv_next(c, &err) == 1);
    CHECK_STR(fl_csv_field(c, 0), "b.png");
    CHECK_STR(fl_csv_field(c, 1), "2");
    CHECK(fl_csv_next(c, &err) == 0);
    fl_csv_close(c);
    unlink(tmpl);
}

static void test_quoted_fields_keep_commas_quotes_and_newlines(void)
{
    fl_error err;
    fl_csv *c = open_text("a,b\n\"x, y\",\"say \"\"hi\"\"\"\n\"two\nlines\",z\nlast,row\n", &err);
    CHECK(c != NULL);
    if (!c)
        return;
    CHECK(fl_csv_next(c, &err) == 1);
    CHECK_STR(fl_csv_field(c, 0), "x, y");
    CHECK_STR(fl_csv_field(c, 1), "say \"hi\"");
    CHECK(fl_csv_next(c, &err) == 1);
    CHECK_STR(fl_csv_field(c, 0), "two\nlines");
    CHECK(fl_csv_line(c) == 3);
    CHECK(fl_csv_next(c, &err) == 1);
    CHECK(fl_csv_line(c) == 5); /* the quoted newline counted as a line */
    fl_csv_close(c);
    unlink(tmpl);
}

static void test_blank_lines_are_skipped_but_counted(void)
{
    fl_error err;
    fl_csv *c = open_text("a\n\n1\n\n\n2", &err);
    CHECK(c != NULL);
    if (!c)
        return;
    CHECK(fl_csv_next(c, &err) == 1);
    CHECK(fl_csv_line(c) == 3);
    CHECK(fl_csv_next(c, &err) == 1);
    CHECK(fl_csv_line(c) == 6);
    CHECK_STR(fl_csv_field(c, 0), "2");
    CHECK(fl_csv_next(c, &err) == 0);
    fl_csv_close(c);
    unlink(tmpl);
}

static void test_field_count_mismatch_names_the_line(void)
{
    fl_error err;
    fl_csv *c = open_text("a,b\n1,2\n3\n", &err);
    CHECK(c != NULL);
    if (!c)
        return;
    CHECK(fl_csv_next(c, &err) == 1);
    CHECK(fl_csv_next(c, &err) == -1);
    CHECK(strstr(err.msg, ":3:") != NULL);
    CHECK(strstr(err.msg, "1 fields where the header has 2") != NULL);
    fl_csv_close(c);
    unlink(tmpl);
}

static void test_unclosed_quote_is_an_error(void)
{
    fl_error err;
    fl_csv *c = open_text("a,b\n\"open,2\n", &err);
    CHECK(c != NULL);
    if (!c)
        return;
    CHECK(fl_csv_next(c, &err) == -1);
    CHECK(strstr(err.msg, "not closed") != NULL);
    fl_csv_close(c);
    unlink(tmpl);
}

static void test_stray_quote_is_an_error(void)
{
    fl_error err;
    fl_csv *c = open_text("a,b\nab\"c,2\n", &err);
    CHECK(c != NULL);
    if (!c)
        return;
    CHECK(fl_csv_next(c, &err) == -1);
    CHECK(strstr(err.msg, ":2:") != NULL);
    fl_csv_close(c);
    unlink(tmpl);
}

static void test_empty_file_is_an_error(void)
{
    fl_error err;
    fl_csv *c = open_text("", &err);
    CHECK(c == NULL);
    CHECK(strstr(err.msg, "empty CSV") != NULL);
    unlink(tmpl);
    c = open_text("\xEF\xBB\xBF\r\n\n", &err);
    CHECK(c == NULL);
    unlink(tmpl);
}

static void test_missing_file_names_the_path(void)
{
    fl_error err;
    fl_csv *c = NULL;
    CHECK(fl_csv_open("/nonexistent/dir/train.csv", &c, &err) == FL_EINPUT);
    CHECK(c == NULL);
    CHECK(strstr(err.msg, "/nonexistent/dir/train.csv") != NULL);
}

static void test_embedded_nul_free_large_file(void)
{
    /* 20,000 rows: the buffer grows and every row is read. */
    size_t cap = 20000 * 32 + 64, n = 0;
    char *text = malloc(cap);
    n += (size_t)sprintf(text, "image_path,target\n");
    for (int i = 0; i < 20000; i++)
        n += (size_t)sprintf(text + n, "dir/img_%05d.png,%d\n", i, i % 500);
    fl_error err;
    fl_csv *c = NULL;
    fl_csv_open(write_tmp(text, n), &c, &err);
    free(text);
    CHECK(c != NULL);
    if (!c)
        return;
    int rows = 0, last = -1;
    while (fl_csv_next(c, &err) == 1) {
        rows++;
        last = atoi(fl_csv_field(c, 1));
    }
    CHECK(rows == 20000);
    CHECK(last == 19999 % 500);
    fl_csv_close(c);
    unlink(tmpl);
}

int main(void)
{
    RUN(test_plain_rows_and_columns_by_name);
    RUN(test_bom_and_crlf_are_accepted);
    RUN(test_quoted_fields_keep_commas_quotes_and_newlines);
    RUN(test_blank_lines_are_skipped_but_counted);
    RUN(test_field_count_mismatch_names_the_line);
    RUN(test_unclosed_quote_is_an_error);
    RUN(test_stray_quote_is_an_error);
    RUN(test_empty_file_is_an_error);
    RUN(test_missing_file_names_the_path);
    RUN(test_embedded_nul_free_large_file);
    return check_summary();
}
