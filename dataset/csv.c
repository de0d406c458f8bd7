/* csv.c -- see csv.h. The file is read whole (the competition's CSVs are a
 * few MB at most) and parsed one record at a time into a reused buffer. */
#include "dataset/csv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fl_csv {
    char *path;
    char *text;    /* whole file, NUL-terminated */
    size_t len;    /* bytes of text */
    size_t pos;    /* parse position in text */
    long line;     /* current line number (1-based) at pos */
    long rec_line; /* line on which the current record started */
    char *buf;     /* fields of the current record, each NUL-terminated */
    size_t buf_cap;
    int *offs; /* offset of each field in buf */
    int nfields, offs_cap;
    int ncols;   /* header field count */
    char **cols; /* header names */
    char *header_text;
};

/* What is not a UTF-8 text CSV, said by name before any field is parsed:
 * UTF-16 (a byte-order mark, or NUL bytes between ASCII ones), other binary
 * data (a NUL byte), and old Mac line endings (CR without LF), which would
 * otherwise read as one enormous line. */
static fl_code csv_check_text(const char *path, const unsigned char *t, size_t n, fl_error *err)
{
    if (n >= 2 && ((t[0] == 0xFF && t[1] == 0xFE) || (t[0] == 0xFE && t[1] == 0xFF)))
        return fl_fail(err, FL_EINPUT,
                       "%s: is UTF-16 (%s byte-order mark), not UTF-8 text HINT: convert it, e.g. iconv -f UTF-16 -t "
                       "UTF-8 %s > fixed.csv",
                       path, t[0] == 0xFF ? "little-endian" : "big-endian", path);
    const unsigned char *nul = memchr(t, 0, n);
    if (nul) {
        size_t at = (size_t)(nul - t);
        if ((at % 2 == 1 && at >= 1 && t[at - 1] < 0x80) ||
            (at % 2 == 0 && at + 1 < n && t[at + 1] < 0x80 && t[at + 1]))
            return fl_fail(err, FL_EINPUT,
                           "%s: looks like UTF-16 without a byte-order mark (NUL bytes between letters, the first at "
                           "byte %zu), not UTF-8 text HINT: convert it, e.g. iconv -f UTF-16LE -t UTF-8",
                           path, at);
        return fl_fail(err, FL_EINPUT,
                       "%s: binary data at byte %zu (a NUL byte), not a text CSV HINT: check that this is the CSV "
                       "file (image_path,target columns), not an image or archive",
                       path, at);
    }
    if (memchr(t, '\r', n) && !memchr(t, '\n', n))
        return fl_fail(err, FL_EINPUT,
                       "%s: has CR line endings (old Mac style, no LF) HINT: convert them, with dos2unix -c mac %s or "
                       "tr '\\r' '\\n' < %s > fixed.csv",
                       path, path, path);
    return FL_OK;
}

static fl_code csv_read_file(fl_csv *c, const char *open_hint, fl_error *err)
{
    FILE *f = fopen(c->path, "rb");
    if (!f)
        return fl_fail(err, FL_EINPUT, "%s: cannot open CSV (%s) HINT: %s", c->path, strerror(errno),
                       open_hint ? open_hint : "check the path");
    size_t cap = 1 << 16, n = 0;
    char *t = malloc(cap);
    for (;;) {
        if (!t) {
            fclose(f);
            return fl_fail(err, FL_ENOMEM, "%s: out of memory reading CSV", c->path);
        }
        size_t got = fread(t + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
        if (n + 1 == cap) {
            char *nt = realloc(t, cap *= 2);
            if (!nt)
                free(t);
            t = nt;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(t);
        return fl_fail(err, FL_EIO, "%s: read error", c->path);
    }
    t[n] = '\0';
    fl_code rc = csv_check_text(c->path, (const unsigned char *)t, n, err);
    if (rc) {
        free(t);
        return rc;
    }
    c->text = t;
    c->len = n;
    if (n >= 3 && (unsigned char)t[0] == 0xEF && (unsigned char)t[1] == 0xBB && (unsigned char)t[2] == 0xBF)
        c->pos = 3; /* UTF-8 byte-order mark */
    return FL_OK;
}

static int csv_push(fl_csv *c, size_t *blen, char ch)
{
    if (*blen + 1 >= c->buf_cap) {
        size_t cap = c->buf_cap ? c->buf_cap * 2 : 256;
        char *nb = realloc(c->buf, cap);
        if (!nb)
            return -1;
        c->buf = nb;
        c->buf_cap = cap;
    }
    c->buf[(*blen)++] = ch;
    return 0;
}

static int csv_start_field(fl_csv *c, size_t blen)
{
    if (c->nfields == c->offs_cap) {
        int cap = c->offs_cap ? c->offs_cap * 2 : 16;
        int *no = realloc(c->offs, sizeof *no * cap);
        if (!no)
            return -1;
        c->offs = no;
        c->offs_cap = cap;
    }
    c->offs[c->nfields++] = (int)blen;
    return 0;
}

/* Parses one record at c->pos. Returns 1 (record), 0 (end of text), -1 (error). */
static int csv_parse_record(fl_csv *c, fl_error *err)
{
    /* Skip blank lines. */
    for (;;) {
        if (c->pos >= c->len)
            return 0;
        if (c->text[c->pos] == '\n') {
            c->pos++;
            c->line++;
        } else if (c->text[c->pos] == '\r' && c->text[c->pos + 1] == '\n') {
            c->pos += 2;
            c->line++;
        } else {
            break;
        }
    }
    c->rec_line = c->line;
    c->nfields = 0;
    size_t blen = 0;
    if (csv_start_field(c, blen))
        goto oom;
    int quoted = 0, was_quoted = 0;
    while (c->pos < c->len) {
        char ch = c->text[c->pos];
        if (quoted) {
            if (ch == '"') {
                if (c->text[c->pos + 1] == '"') {
                    if (csv_push(c, &blen, '"'))
                        goto oom;
                    c->pos += 2;
                    continue;
                }
                quoted = 0;
                c->pos++;
                continue;
            }
            if (ch == '\n')
                c->line++;
            if (csv_push(c, &blen, ch))
                goto oom;
            c->pos++;
            continue;
        }
        if (ch == '"') {
            if (was_quoted || blen != (size_t)c->offs[c->nfields - 1])
                return fl_fail(err, FL_EINPUT,
                               "%s:%ld: stray quote inside an unquoted field HINT: quote the whole field and double "
                               "inner quotes",
                               c->path, c->line),
                       -1;
            quoted = was_quoted = 1;
            c->pos++;
            continue;
        }
        if (ch == ',') {
            if (csv_push(c, &blen, '\0') || csv_start_field(c, blen))
                goto oom;
            was_quoted = 0;
            c->pos++;
            continue;
        }
        if (ch == '\n' || (ch == '\r' && c->text[c->pos + 1] == '\n')) {
            c->pos += ch == '\n' ? 1 : 2;
            c->line++;
            break;
        }
        if (was_quoted)
            return fl_fail(err, FL_EINPUT, "%s:%ld: text after a closing quote", c->path, c->line), -1;
        if (csv_push(c, &blen, ch))
            goto oom;
        c->pos++;
    }
    if (quoted)
        return fl_fail(err, FL_EINPUT, "%s:%ld: quoted field is not closed before the end of the file", c->path,
                       c->rec_line),
               -1;
    if (csv_push(c, &blen, '\0'))
        goto oom;
    return 1;
oom:
    return fl_fail(err, FL_ENOMEM, "%s: out of memory parsing CSV", c->path), -1;
}

static char *csv_trim_dup(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

fl_code fl_csv_open(const char *path, fl_csv **out, fl_error *err)
{
    return fl_csv_open_hint(path, NULL, out, err);
}

fl_code fl_csv_open_hint(const char *path, const char *open_hint, fl_csv **out, fl_error *err)
{
    *out = NULL;
    fl_csv *c = calloc(1, sizeof *c);
    if (!c || !(c->path = strdup(path))) {
        free(c);
        return fl_fail(err, FL_ENOMEM, "%s: out of memory", path);
    }
    c->line = 1;
    fl_code rc = csv_read_file(c, open_hint, err);
    if (rc)
        goto fail;
    int r = csv_parse_record(c, err);
    if (r < 0) {
        rc = err->code;
        goto fail;
    }
    if (r == 0) {
        rc = fl_fail(err, FL_EINPUT, "%s: empty CSV (no header line) HINT: the first line must name the columns", path);
        goto fail;
    }
    c->ncols = c->nfields;
    c->cols = calloc((size_t)c->ncols, sizeof *c->cols);
    size_t htlen = 1;
    for (int i = 0; i < c->ncols; i++)
        htlen += strlen(c->buf + c->offs[i]) + 1;
    c->header_text = calloc(1, htlen);
    if (!c->cols || !c->header_text)
        goto oom;
    for (int i = 0; i < c->ncols; i++) {
        if (!(c->cols[i] = csv_trim_dup(c->buf + c->offs[i])))
            goto oom;
        if (i)
            strcat(c->header_text, ",");
        strcat(c->header_text, c->cols[i]);
    }
    *out = c;
    return FL_OK;
oom:
    rc = fl_fail(err, FL_ENOMEM, "%s: out of memory", path);
fail:
    fl_csv_close(c);
    return rc;
}

void fl_csv_close(fl_csv *c)
{
    if (!c)
        return;
    for (int i = 0; c->cols && i < c->ncols; i++)
        free(c->cols[i]);
    free(c->cols);
    free(c->header_text);
    free(c->offs);
    free(c->buf);
    free(c->text);
    free(c->path);
    free(c);
}

int fl_csv_column(const fl_csv *c, const char *name)
{
    for (int i = 0; i < c->ncols; i++)
        if (strcmp(c->cols[i], name) == 0)
            return i;
    return -1;
}

int fl_csv_columns(const fl_csv *c)
{
    return c->ncols;
}

const char *fl_csv_header_text(const fl_csv *c)
{
    return c->header_text;
}

int fl_csv_next(fl_csv *c, fl_error *err)
{
    int r = csv_parse_record(c, err);
    if (r <= 0)
        return r;
    if (c->nfields != c->ncols) {
        fl_fail(err, FL_EINPUT, "%s:%ld: %d fields where the header has %d HINT: quote fields that contain commas",
                c->path, c->rec_line, c->nfields, c->ncols);
        return -1;
    }
    return 1;
}

const char *fl_csv_field(const fl_csv *c, int col)
{
    return c->buf + c->offs[col];
}
long fl_csv_line(const fl_csv *c)
{
    return c->rec_line;
}
const char *fl_csv_path(const fl_csv *c)
{
    return c->path;
}

void fl_csv_write_field(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}
